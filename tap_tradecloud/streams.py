"""The polled streams: ``orders`` and ``shipments``, each record once, run after run."""

from __future__ import annotations

import typing as t

from singer_sdk import StreamSchema
from singer_sdk.exceptions import FatalAPIError

from tap_tradecloud.polled_stream import (
    EMITTED_AT_BOOKMARK,
    SORT_BY_LAST_UPDATED,
    PolledStream,
    after_filter,
)
from tap_tradecloud.schemas import SCHEMAS

__all__ = ["EMITTED_AT_BOOKMARK", "OrdersStream", "ShipmentsStream"]


class OrdersStream(PolledStream):
    """Orders from ``POST /order-search/poll`` (default) or ``POST /order-search/search``."""

    name = "orders"
    noun = "order"
    schema = StreamSchema(SCHEMAS, key="order")

    @property
    def path(self) -> str:  # type: ignore[override]
        """The endpoint the ``polling_api`` setting picks."""
        return "/order-search/search" if self._searches else "/order-search/poll"

    @property
    def _searches(self) -> bool:
        return self.config.get("polling_api", "poll") == "search"

    def time_filter(self, since: str) -> dict[str, t.Any]:
        """``lastUpdatedAfter`` (poll, exclusive) or ``lastUpdatedSince`` (search, inclusive)."""
        return {"lastUpdatedSince": since} if self._searches else after_filter(since)

    def sort(self) -> list[dict[str, str]] | None:
        """Search documents a ``sort``: ask for ``lastUpdatedAt`` ascending explicitly.

        Poll documents none, so its body carries none (an unknown key may be refused).
        """
        return SORT_BY_LAST_UPDATED if self._searches else None

    def unsorted_advice(self) -> str:
        """With poll, search is the alternative whose request names the sort."""
        if self._searches:
            return "report it to Tradecloud support"
        return (
            "set polling_api to search (its request asks for this sort explicitly) "
            "and report it to Tradecloud support"
        )

    def filters(self) -> dict[str, t.Any]:
        """Status filters and the company filter, as each endpoint spells them."""
        filters: dict[str, t.Any] = {}
        status = {
            key: self.config[setting]
            for key, setting in (
                ("processStatus", "process_status"),
                ("logisticsStatus", "logistics_status"),
            )
            if self.config.get(setting)
        }
        if status:
            filters["status"] = status
        if company_id := self.config.get("company_id"):
            if self._searches:
                role = self.config.get("company_role", "buyer")
                filters[f"{role}Order"] = {"companyId": [company_id]}
            else:
                filters["companyId"] = company_id
        return filters


class ShipmentsStream(PolledStream):
    """Shipments (despatch advices) from ``POST /shipment/poll``.

    A shipment keeps its ``lastUpdatedAt`` in ``meta``; the record gets it at the top level as
    well (normalised), because that is the replication key.
    """

    name = "shipments"
    noun = "shipment"
    path = "/shipment/poll"
    schema = StreamSchema(SCHEMAS, key="shipment")

    def updated_at(self, record: dict) -> str:
        """``meta.lastUpdatedAt`` (documented), else a top-level ``lastUpdatedAt``."""
        meta = record.get("meta") or {}
        updated_at = meta.get("lastUpdatedAt") or record.get("lastUpdatedAt")
        if not isinstance(updated_at, str):
            raise FatalAPIError(
                f"Tradecloud sent shipment {record.get('id')!r} without meta.lastUpdatedAt, "
                "which the shipments stream pages and bookmarks on; nothing after it was "
                "emitted. Report the shipment id to Tradecloud support, or deselect the "
                "shipments stream until it is fixed."
            )
        return updated_at

    def filters(self) -> dict[str, t.Any]:
        """``buyerShipment.companyId``: the only company filter Tradecloud documents here."""
        company_id = self.config.get("company_id")
        if company_id and self.config.get("company_role", "buyer") == "buyer":
            return {"buyerShipment": {"companyId": company_id}}
        return {}
