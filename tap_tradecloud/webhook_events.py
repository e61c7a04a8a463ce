"""The ``webhook_events`` stream: the receiver's spool, one record per acknowledged event.

One partition (and one bookmark) per receiver instance; the bookmark is the spool sequence,
which grows without gaps in the order files became visible. The stream is sorted within a
partition, so interim STATE is resumable: an interrupted run resumes after the last event the
target committed and never skips one. The partition's identity is kept beside the bookmark:
a recreated partition (its numbers start again at 1) is read from the start.

Every stored event is emitted (see ``event_records``); one that still cannot be is set aside in
the spool and stands as a ``set_aside`` record, so the bookmark passes it: never a crash loop.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from functools import cached_property

from singer_sdk import StreamSchema
from singer_sdk.contrib.msgspec import serialize_jsonl
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform

from tap_tradecloud import event_records, spool
from tap_tradecloud.client import TradecloudStream
from tap_tradecloud.compat import override
from tap_tradecloud.schemas import SCHEMAS
from tap_tradecloud.webhook.events import NOTIFICATION

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

    from tap_tradecloud.output import SingerOutput

PARTITION_KEY = "receiver_instance"
IDENTITY_KEY = "spool_partition_identity"


class WebhookEventsStream(TradecloudStream):
    """Events spooled by ``tap-tradecloud-webhook`` under the ``spool_dir`` setting."""

    name = "webhook_events"
    primary_keys = ("event_id",)
    replication_key = "spool_sequence"
    is_sorted = True  # within a partition; state_partitioning_keys stays None so it counts
    schema = StreamSchema(SCHEMAS, key="webhook_event")
    path = "/order/{orderId}"  # the only API call: GET-notification enrichment
    # Every value of a record is built here JSON-ready (``event_records``): conforming it
    # would only copy the record, at a cost per event.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    STATE_MSG_FREQUENCY = 100  # a crash re-emits at most this many events

    @cached_property
    def spool_dir(self) -> spool.SpoolLocation:
        """The ``spool_dir`` setting's backend: a local folder or an object store."""
        return spool.open_store(self.config["spool_dir"])

    @cached_property
    def emits_records_as_built(self) -> bool:
        """Whether records go out as built, clean bodies as stored (``msgspec.Raw``).

        So they do unless the SDK must change them: a deselected property, a stream map or
        flattening (which also need the body as a dict), or BATCH files (whose encoder does
        not know Raw).
        """
        plain = all(
            type(stream_map) is SameRecordTransform and not stream_map.flattening_enabled
            for stream_map in self.stream_maps
        )
        return plain and all(self.mask.values()) and not self.get_batch_config(self.config)

    @override
    def _write_record_message(self, record: dict) -> None:
        """Write the RECORD line of a record.

        The SDK walks every record against the selection mask and the stream maps and builds a
        message object for it. When neither can change the record (``emits_records_as_built``)
        the line is encoded here as the SDK's writer would: the walk and the message object
        cost about as much per event as reading and building the record.
        """
        if not self.emits_records_as_built:
            super()._write_record_message(record)
            return
        message: dict[str, t.Any] = {
            "type": "RECORD",
            "stream": self.stream_maps[0].stream_alias,
            "record": record,
        }
        if self._stream_version is not None:
            message["version"] = self._stream_version
        message["time_extracted"] = utc_now()
        self._output.write_line(bytes(serialize_jsonl(message)))
        self.state_manager.is_flushed = False

    @cached_property
    def _output(self) -> SingerOutput:
        return t.cast("SingerOutput", self._tap.message_writer)

    @override
    def generate_child_contexts(
        self, record: dict, context: Context | None
    ) -> Iterable[Context | None]:
        """Nothing: no stream is a child of this one (the SDK's default copies the context)."""
        if self.child_streams:
            yield from super().generate_child_contexts(record, context)

    @override
    @property
    def partitions(self) -> list[dict]:
        """One context per receiver instance folder in the spool."""
        return [{PARTITION_KEY: name} for name in spool.list_partitions(self.spool_dir)]

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        """The partition's events after its bookmark, in spool order; prune loaded ones first."""
        if not context:  # the spool has no partition yet
            return
        instance = context[PARTITION_KEY]
        bookmark = self._starting_sequence(context)
        if self._partition_was_recreated(context, instance):
            bookmark = 0
        self._prune(instance, bookmark)
        emitted = False
        for event in spool.iter_events(self.spool_dir, instance, after=bookmark):
            emitted = True
            yield self._record(event)
        if not emitted:  # an event above the bookmark proves the partition reaches past it
            self._warn_if_below_bookmark(instance, bookmark)

    def _warn_if_below_bookmark(self, instance: str, bookmark: int) -> None:
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

    def _starting_sequence(self, context: Context) -> int:
        value = self.get_starting_replication_key_value(context)
        # Without a bookmark the SDK offers the start_date setting here, which means nothing
        # for a spool sequence: start at the beginning of the partition.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return 0

    def _partition_was_recreated(self, context: Context, instance: str) -> bool:
        """Compare the partition's identity with the bookmark's; keep the current one in it.

        A bookmark without an identity (from an older version) counts as the current one.
        """
        identity = spool.partition_identity(self.spool_dir, instance)
        state = self.get_context_state(context)
        kept = state.get(IDENTITY_KEY)
        if identity is None:
            return False
        state[IDENTITY_KEY] = identity
        if kept is None or kept == identity:
            return False
        self.logger.warning(
            "Spool partition %s was recreated (identity %s, the bookmark was kept for %s): "
            "reading it from the start.",
            instance,
            identity,
            kept,
        )
        # The old bookmark belongs to the old partition; sequences start again at 1.
        state.pop("replication_key_value", None)
        return True

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
                "Pruned %d loaded segments (first sequences %d to %d) older than %s hours from %s",
                len(deleted),
                deleted[0],
                deleted[-1],
                hours,
                instance,
            )

    def _record(self, event: spool.SpooledEvent) -> dict[str, t.Any]:
        def warn(problem: str) -> None:
            self.logger.warning("Spool event %d of %s %s", event.sequence, event.instance, problem)

        reason = event.damage
        if reason is None:
            try:
                record = event_records.build_record(event, warn, embed=self.emits_records_as_built)
            except Exception as exc:  # whatever it is, the event must not block the stream
                reason = f"{type(exc).__name__}: {str(exc)[:300]}"
            else:
                record["order"] = self._order_for(record["event_type"], record["order_id"])
                return record
        copy = spool.set_aside(self.spool_dir, event, reason)
        self.logger.warning(
            "Spool event %d of %s cannot be emitted (%s). A copy is set aside at %s; a record "
            "with event_type 'set_aside' stands for it and the bookmark passes it.",
            event.sequence,
            event.instance,
            reason,
            copy,
        )
        return {**event_records.set_aside_record(event), "order": None}

    def _order_for(self, event_type: str, order_id: str | None) -> dict | None:
        if event_type != NOTIFICATION or not order_id:
            return None
        if not self.config.get("fetch_orders_for_notifications", True):
            return None
        return self.fetch_order(order_id)
