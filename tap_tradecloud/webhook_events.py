"""The ``webhook_events`` stream: the receiver's spool, one record per acknowledged event.

One partition (and one bookmark) per receiver instance; the bookmark is the spool sequence,
which grows without gaps in the order files became visible. The stream is sorted within a
partition, so interim STATE is resumable: an interrupted run resumes after the last event the
target committed and never skips one.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import typing as t
from pathlib import Path

from singer_sdk import StreamSchema
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_tradecloud import spool
from tap_tradecloud.client import TradecloudStream
from tap_tradecloud.schemas import SCHEMAS
from tap_tradecloud.timestamps import normalise
from tap_tradecloud.webhook.events import NOTIFICATION, UnacceptableBodyError, parse_event_body

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

PARTITION_KEY = "receiver_instance"


def event_id(body: bytes, document: dict[str, t.Any], payload: dict[str, t.Any]) -> str:
    """``meta.messageId`` (top level or in the event), else the SHA-256 of the raw body."""
    for holder in (document, payload):
        meta = holder.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("messageId"), str) and meta["messageId"]:
            return str(meta["messageId"])
    return hashlib.sha256(body).hexdigest()


def notification_body(order_id: str) -> bytes:
    """The canonical body of a GET notification; its SHA-256 is the notification's event id."""
    return json.dumps({"orderId": order_id}, separators=(",", ":")).encode()


class WebhookEventsStream(TradecloudStream):
    """Events spooled by ``tap-tradecloud-webhook`` under the ``spool_dir`` setting."""

    name = "webhook_events"
    primary_keys = ("event_id",)
    replication_key = "spool_sequence"
    is_sorted = True  # within a partition; state_partitioning_keys stays None so it counts
    schema = StreamSchema(SCHEMAS, key="webhook_event")
    path = "/order/{orderId}"  # the only API call: GET-notification enrichment
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY
    STATE_MSG_FREQUENCY = 500

    @property
    def spool_dir(self) -> Path:
        """The ``spool_dir`` setting."""
        return Path(self.config["spool_dir"]).expanduser()

    @property
    def partitions(self) -> list[dict]:
        """One context per receiver instance folder in the spool."""
        return [{PARTITION_KEY: name} for name in spool.list_partitions(self.spool_dir)]

    def get_records(self, context: Context | None) -> Iterable[dict]:
        """The partition's events after its bookmark, in spool order; prune loaded ones first."""
        if not context:  # the spool has no partition yet
            return
        instance = context[PARTITION_KEY]
        bookmark = self._starting_sequence(context)
        self._prune(instance, bookmark)
        highest = spool.highest_sequence(self.spool_dir, instance)
        if highest < bookmark:
            self.logger.warning(
                "Spool partition %s ends at sequence %d, below its bookmark %d: the partition "
                "was recreated, so its events up to %d are not read. Remove the bookmark of "
                "this partition from the state to read them.",
                instance,
                highest,
                bookmark,
                bookmark,
            )
        for event in spool.iter_events(self.spool_dir, instance, after=bookmark):
            yield self._record(event)

    def _starting_sequence(self, context: Context) -> int:
        value = self.get_starting_replication_key_value(context)
        # Without a bookmark the SDK offers the start_date setting here, which means nothing
        # for a spool sequence: start at the beginning of the partition.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return 0

    def _prune(self, instance: str, bookmark: int) -> None:
        hours = float(self.config.get("spool_retention_hours", 168))
        if hours <= 0 or bookmark <= 0:
            return
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)
        deleted = spool.prune_events(
            self.spool_dir, instance, up_to=bookmark, received_before=cutoff
        )
        if deleted:
            self.logger.info(
                "Pruned %d loaded events (sequences %d to %d) older than %s hours from %s",
                len(deleted),
                deleted[0],
                deleted[-1],
                hours,
                instance,
            )

    def _record(self, event: spool.SpooledEvent) -> dict[str, t.Any]:
        meta = event.meta
        if meta.method == "GET":
            order_id = meta.order_id or ""
            body = notification_body(order_id)
            document: dict[str, t.Any] = {"orderId": order_id}
            event_type, payload = NOTIFICATION, document
        else:
            body = event.body
            event_type, document = self._parse(event)
            payload = document[event_type]
            order_id = payload.get("orderId")
        return {
            "event_id": event_id(body, document, payload),
            "spool_sequence": event.sequence,
            PARTITION_KEY: event.instance,
            "received_at": meta.received_at,
            "http_method": meta.method,
            "event_type": event_type,
            "event_name": document.get("eventName"),
            "order_id": order_id,
            "last_updated_at": self._last_updated_at(payload, event),
            "event": document,
            "order": self._order_for(event_type, order_id),
        }

    def _parse(self, event: spool.SpooledEvent) -> tuple[str, dict[str, t.Any]]:
        try:
            return parse_event_body(event.body, parse_float=decimal.Decimal)
        except UnacceptableBodyError as exc:
            msg = (
                f"Spool event {event.sequence} of {event.instance} is not a Tradecloud event "
                f"({exc}); it was not written by tap-tradecloud-webhook. Move it out of the "
                "events folder."
            )
            raise spool.CorruptEventError(msg) from exc

    def _last_updated_at(self, payload: dict[str, t.Any], event: spool.SpooledEvent) -> str | None:
        value = payload.get("lastUpdatedAt")
        if value is None:
            return None
        try:
            return normalise(str(value))
        except ValueError:
            self.logger.warning(
                "Event %d of %s has an unreadable lastUpdatedAt %r; emitting null (the raw "
                "value stays in `event`)",
                event.sequence,
                event.instance,
                value,
            )
            return None

    def _order_for(self, event_type: str, order_id: str | None) -> dict | None:
        if event_type != NOTIFICATION or not order_id:
            return None
        if not self.config.get("fetch_orders_for_notifications", True):
            return None
        return self.fetch_order(order_id)
