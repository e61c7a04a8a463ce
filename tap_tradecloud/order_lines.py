"""The ``order_lines`` stream: one record per order line, only the lines that changed.

A child of ``orders``: its records come from the order the parent just read, never from a request
of its own. Which lines are new is decided without remembering anything per order in the state,
from what the ``orders`` stream had emitted when the run started (:class:`LineWatermarks`).
"""

from __future__ import annotations

import copy
import logging
import typing as t

import singer_sdk.singerlib as singer
from singer_sdk import Stream, metrics
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_tradecloud.compat import override
from tap_tradecloud.schemas import SCHEMAS
from tap_tradecloud.streams import OrdersStream
from tap_tradecloud.timestamps import normalise

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Mapping
    from types import TracebackType

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

#: Order header keys that never change for an order, copied onto each of its lines.
HEADER_KEYS: dict[str, tuple[str, str]] = {
    "buyer_company_id": ("buyerOrder", "companyId"),
    "supplier_company_id": ("supplierOrder", "companyId"),
    "purchase_order_number": ("buyerOrder", "purchaseOrderNumber"),
}


def line_schema(order_schema: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The ``order_lines`` schema: the order schema's line, plus ``order_id`` and header keys."""
    line = copy.deepcopy(order_schema["properties"]["lines"]["items"])
    properties = {
        "order_id": {"type": "string"},
        **{key: {"type": ["string", "null"]} for key in HEADER_KEYS},
        **line["properties"],
        "id": {"type": "string"},  # half of the primary key: never null
    }
    return {
        "type": "object",
        "additionalProperties": True,
        "properties": properties,
        "required": ["order_id", "id"],
    }


class RunRecordCounter(metrics.Counter):
    """A record count kept across the per-order syncs of a child stream.

    The SDK's counter logs a METRIC line at the end of each sync, that is once per order here;
    this one logs on its interval and once at the end of the run (:meth:`exit`).
    """

    @override
    def with_context(self, value: Context | None) -> None:
        """Keep no order id: the count is the run's."""

    @override
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Count on: the next order's sync continues this count."""


class UnloggedTimer(metrics.Timer):
    """A sync timer that logs nothing (a per-order duration tells nobody anything)."""

    @override
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Log nothing."""


class OrderLinesStream(Stream):
    """One record per line of each order the ``orders`` stream emits, if the line changed."""

    name = "order_lines"
    parent_stream_type = OrdersStream
    primary_keys = ("order_id", "id")
    replication_key = None  # the `orders` bookmark decides; see LineWatermarks
    state_partitioning_keys: t.ClassVar[list[str]] = []  # no state entry per order
    schema = line_schema(SCHEMAS.get_schema("order"))
    # Lines are JSON from the API already (and `lastUpdatedAt` normalised): nothing to conform.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, orders: OrdersStream) -> None:
        """``orders``: the parent stream instance, which hands over each order it emits."""
        super().__init__(tap=tap)
        self._orders = orders
        self._schema_written = False
        self._all_selected: bool | None = None
        self._record_counter = RunRecordCounter(
            metrics.Metric.RECORD_COUNT, {metrics.Tag.STREAM: self.name}
        )

    @override
    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: each run sends only changed lines, so a version switch would delete the rest."""
        return False

    @override
    def get_record_counter(
        self, *, endpoint: str | None = None, log_interval: float = metrics.DEFAULT_LOG_INTERVAL
    ) -> metrics.Counter:
        """One count for the whole run (see :class:`RunRecordCounter`)."""
        return self._record_counter

    @override
    def get_sync_timer(self) -> metrics.Timer:
        """No per-order timing (see :class:`UnloggedTimer`)."""
        return UnloggedTimer(metrics.Metric.SYNC_DURATION, {metrics.Tag.STREAM: self.name})

    @override
    def log_sync_costs(self) -> None:
        """At the end of the run: log the run's record count, then the SDK's costs."""
        self._record_counter.exit()
        super().log_sync_costs()

    @override
    def log(self, message: str, *args: t.Any, level: int = logging.INFO, **kwargs: t.Any) -> None:
        """The SDK's log, with its per-order "Beginning sync" line demoted to DEBUG."""
        if message.startswith("Beginning sync"):
            level = logging.DEBUG
        super().log(message, *args, level=level, **kwargs)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """The changed lines of the order the parent stream is emitting."""
        order = self._orders.current_order
        if context is None or order is None or order["id"] != context["order_id"]:
            msg = f"order_lines was synced for {context!r}, not for the order being emitted"
            raise RuntimeError(msg)
        watermarks = self._orders.line_watermarks
        header = {"order_id": order["id"]}
        for key, (part, field) in HEADER_KEYS.items():
            header[key] = (order.get(part) or {}).get(field)
        for line in order.get("lines") or []:
            updated_at = line.get("lastUpdatedAt")
            if updated_at is not None:
                updated_at = normalise(updated_at)
            if watermarks.is_new(order["id"], updated_at):
                yield {**header, **line, "lastUpdatedAt": updated_at}
        watermarks.emitted(order)

    @override
    def _generate_record_messages(
        self, record: dict
    ) -> Generator[singer.RecordMessage, None, None]:
        """The SDK's messages, without its walk through every nested object of every record
        when no property is deselected (that walk cost more than all else for a line)."""
        if self._all_selected is None:
            self._all_selected = all(self.mask.values())
        if not self._all_selected:
            # The SDK pops deselected fields in place: keep the order's own lines intact.
            yield from super()._generate_record_messages(copy.deepcopy(record))
            return
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)  # the type conformance level is NONE
            if mapped is not None:
                yield singer.RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=utc_now(),
                )

    # The SDK syncs a child once per parent record and, each time, writes a SCHEMA message and
    # a STATE message. One SCHEMA per run is enough. The STATE would also be wrong here: it is
    # written before the order's own RECORD, with the parent's bookkeeping already counting that
    # order as emitted. The parent's STATE, written after the order's RECORD, carries this
    # stream's (empty) state too.
    @override
    def _write_schema_message(self) -> None:
        if not self._schema_written:
            super()._write_schema_message()
            self._schema_written = True

    @override
    def _write_state_message(self) -> None:
        pass
