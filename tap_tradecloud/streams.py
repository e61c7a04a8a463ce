"""The polled streams: ``orders`` and ``shipments``, each record once, run after run."""

from __future__ import annotations

import typing as t

from singer_sdk import StreamSchema
from singer_sdk.exceptions import FatalAPIError

from tap_tradecloud.compat import override
from tap_tradecloud.line_watermarks import LineWatermarks
from tap_tradecloud.polled_stream import (
    EMITTED_AT_BOOKMARK,
    SORT_BY_LAST_UPDATED,
    PolledStream,
    after_filter,
)
from tap_tradecloud.schemas import SCHEMAS
from tap_tradecloud.timestamps import EPOCH, normalise

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_tradecloud.pagination import SlidingWindowPaginator

__all__ = ["EMITTED_AT_BOOKMARK", "LINES_FLOOR", "OrdersStream", "ShipmentsStream"]

#: State key present while a run is in progress (or was killed): where that run started
#: reading, the oldest line change ``order_lines`` may still owe (see ``line_watermarks``).
LINES_FLOOR = "lines_floor"


class OrdersStream(PolledStream):
    """Orders from ``POST /order-search/poll`` (default) or ``POST /order-search/search``."""

    name = "orders"
    noun = "order"
    schema = StreamSchema(SCHEMAS, key="order")

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Start with no order in hand for the ``order_lines`` child."""
        super().__init__(*args, **kwargs)
        #: For the ``order_lines`` child: the order being emitted, and which lines are new.
        self.current_order: dict | None = None
        self.line_watermarks = LineWatermarks(EPOCH, {})

    @override
    @property
    def path(self) -> str:  # type: ignore[override]
        """The endpoint the ``polling_api`` setting picks."""
        return "/order-search/search" if self._searches else "/order-search/poll"

    @property
    def _searches(self) -> bool:
        return self.config.get("polling_api", "poll") == "search"

    @override
    def get_new_paginator(self) -> SlidingWindowPaginator:
        """The polled window; also fixes which line changes ``order_lines`` owes this run."""
        first_run = "replication_key_value" not in self.stream_state
        bookmark = normalise(self.get_starting_replication_key_value(self.context) or EPOCH)
        lines_floor = self.stream_state.get(LINES_FLOOR) or (EPOCH if first_run else bookmark)
        paginator = super().get_new_paginator()
        since, seen = self.window_start
        recent = self._recent.emitted_versions() if self._recent else {}
        self.line_watermarks = LineWatermarks.at_run_start(lines_floor, since, seen, recent)
        self.stream_state[LINES_FLOOR] = self.line_watermarks.floor
        return paginator

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The orders; once all are read, the next run owes ``order_lines`` nothing older."""
        for record in super().get_records(context):
            yield record
            if not self.selected:  # synced for `order_lines` alone: the SDK would not bookmark
                self.state_manager.increment_state(
                    record, context=context, replication_key=t.cast("str", self.replication_key)
                )
        del self.stream_state[LINES_FLOOR]
        self.state_manager.is_flushed = False  # so that the final STATE says so

    @override
    def get_child_context(self, record: dict, context: Context | None) -> dict:
        """Hand the order to ``order_lines``, which reads its lines from it."""
        self.current_order = record
        return {"order_id": record["id"]}

    @override
    def time_filter(self, since: str) -> dict[str, t.Any]:
        """``lastUpdatedAfter`` (poll, exclusive) or ``lastUpdatedSince`` (search, inclusive)."""
        return {"lastUpdatedSince": since} if self._searches else after_filter(since)

    @override
    def sort(self) -> list[dict[str, str]] | None:
        """Search documents a ``sort``: ask for ``lastUpdatedAt`` ascending explicitly.

        Poll documents none, so its body carries none (an unknown key may be refused).
        """
        return SORT_BY_LAST_UPDATED if self._searches else None

    @override
    def unsorted_advice(self) -> str:
        """With poll, search is the alternative whose request names the sort."""
        if self._searches:
            return "report it to Tradecloud support"
        return (
            "set polling_api to search (its request asks for this sort explicitly) "
            "and report it to Tradecloud support"
        )

    @override
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

    @override
    def updated_at(self, record: dict) -> str:
        """``meta.lastUpdatedAt`` (documented), else a top-level ``lastUpdatedAt``."""
        meta = record.get("meta") or {}
        updated_at = meta.get("lastUpdatedAt") or record.get("lastUpdatedAt")
        if not isinstance(updated_at, str):
            msg = (
                f"Tradecloud sent shipment {record.get('id')!r} without meta.lastUpdatedAt, "
                "which the shipments stream pages and bookmarks on; nothing after it was "
                "emitted. Report the shipment id to Tradecloud support, or deselect the "
                "shipments stream until it is fixed."
            )
            raise FatalAPIError(msg)
        return updated_at

    @override
    def filters(self) -> dict[str, t.Any]:
        """``buyerShipment.companyId``: the only company filter Tradecloud documents here."""
        company_id = self.config.get("company_id")
        if company_id and self.config.get("company_role", "buyer") == "buyer":
            return {"buyerShipment": {"companyId": company_id}}
        return {}
