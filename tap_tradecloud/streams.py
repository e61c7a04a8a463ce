"""The ``orders`` stream: every order once, in ``lastUpdatedAt`` order, run after run."""

from __future__ import annotations

import typing as t
from importlib import resources

from singer_sdk import SchemaDirectory, StreamSchema
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_tradecloud import schemas
from tap_tradecloud.client import TradecloudStream, page_json
from tap_tradecloud.line_watermarks import LineWatermarks
from tap_tradecloud.lookback import RecentOrders
from tap_tradecloud.pagination import SlidingWindowPaginator, WindowToken
from tap_tradecloud.timestamps import EPOCH, normalise, one_ms_before

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

#: State key, beside the SDK's bookmark, listing the ids emitted at the bookmark's timestamp.
EMITTED_AT_BOOKMARK = "emitted_at_bookmark"
#: State key present while a run is in progress (or was killed): where that run started
#: reading, the oldest line change ``order_lines`` may still owe (see ``line_watermarks``).
LINES_FLOOR = "lines_floor"

SCHEMAS = SchemaDirectory(resources.files(schemas))


class OrdersStream(TradecloudStream):
    """Orders from ``POST /order-search/search`` or ``POST /order-search/poll``."""

    name = "orders"
    primary_keys = ("id",)
    replication_key = "lastUpdatedAt"
    is_sorted = True
    schema = StreamSchema(SCHEMAS, key="order")
    # Records are JSON already; conforming only the top level keeps unknown nested fields
    # and spares a walk over every order line.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Emit STATE at least once per page of records."""
        super().__init__(*args, **kwargs)
        self.STATE_MSG_FREQUENCY = int(self.config.get("page_size", 100))
        self._paginator: SlidingWindowPaginator | None = None
        self._recent: RecentOrders | None = None
        #: For the ``order_lines`` child: the order being emitted, and which lines are new.
        self.current_order: dict | None = None
        self.line_watermarks = LineWatermarks(EPOCH, {})

    @property
    def path(self) -> str:  # type: ignore[override]
        """The endpoint the ``polling_api`` setting picks."""
        return "/order-search/poll" if self._polls else "/order-search/search"

    @property
    def _polls(self) -> bool:
        return self.config.get("polling_api", "search") == "poll"

    def get_new_paginator(self) -> SlidingWindowPaginator:
        """A window starting at the bookmark (or start_date), skipping ids emitted there."""
        since = normalise(self.get_starting_replication_key_value(self.context) or EPOCH)
        first_run = "replication_key_value" not in self.stream_state
        lines_floor = self.stream_state.get(LINES_FLOOR) or (EPOCH if first_run else since)
        if lookback := float(self.config.get("lookback_seconds", 0)):
            since = self._start_lookback(since, lookback)
        emitted = self.stream_state.get(EMITTED_AT_BOOKMARK) or {}
        seen = emitted.get("ids", []) if emitted.get("lastUpdatedAt") == since else []
        recent = self._recent.emitted_versions() if self._recent else {}
        self.line_watermarks = LineWatermarks.at_run_start(lines_floor, since, seen, recent)
        self.stream_state[LINES_FLOOR] = self.line_watermarks.floor
        self._paginator = SlidingWindowPaginator(
            since=since, page_size=int(self.config.get("page_size", 100)), seen_at_since=seen
        )
        return self._paginator

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

    def prepare_request_payload(
        self, context: Context | None, next_page_token: WindowToken | None
    ) -> dict[str, t.Any]:
        """The search/poll body: filters, offset and limit of one window page."""
        assert next_page_token is not None  # the paginator always has a token
        return {
            "filters": self._filters(next_page_token["since"]),
            "offset": next_page_token["offset"],
            "limit": next_page_token["limit"],
        }

    def parse_response(self, response: requests.Response) -> list[dict]:
        """The page's orders not emitted before, with ``lastUpdatedAt`` normalised."""
        body = page_json(response)
        records = body.get("data")
        if records is None:
            records = body.get("orders", [])  # early poll versions answered `orders`
        for record in records:
            record["lastUpdatedAt"] = normalise(record["lastUpdatedAt"])
        assert self._paginator is not None  # set by get_new_paginator
        fresh = self._paginator.take_page(records)
        if self._recent is not None:
            self._recent.forget_old()
            fresh = [record for record in fresh if not self._recent.is_emitted(record)]
        return fresh

    def post_process(self, row: dict, context: Context | None = None) -> dict:
        """Remember the ids emitted at the newest timestamp, next to the bookmark."""
        if self._recent is not None:
            self._recent.remember(row)
        emitted = self.stream_state.get(EMITTED_AT_BOOKMARK)
        if emitted and emitted.get("lastUpdatedAt") == row["lastUpdatedAt"]:
            emitted["ids"].append(row["id"])
        else:
            self.stream_state[EMITTED_AT_BOOKMARK] = {
                "lastUpdatedAt": row["lastUpdatedAt"],
                "ids": [row["id"]],
            }
        return row

    def get_child_context(self, record: dict, context: Context | None) -> dict:
        """Hand the order to ``order_lines``, which reads its lines from it."""
        self.current_order = record
        return {"order_id": record["id"]}

    def _start_lookback(self, start: str, lookback: float) -> str:
        """Re-read the last ``lookback`` seconds (never before start_date); skip what was sent.

        The SDK bookmark is lowered to the window start for this run, so that a change that
        appears late (older than the old bookmark) passes the SDK's sort check.
        """
        self._recent = RecentOrders(self.stream_state, lookback)
        if "replication_key_value" not in self.stream_state:
            return start  # first run: start_date as given
        since = self._recent.window_start(start)
        if start_date := self.config.get("start_date"):
            since = max(since, normalise(start_date))
        self.stream_state["replication_key_value"] = min(
            since, self.stream_state["replication_key_value"]
        )
        return since

    def _filters(self, since: str) -> dict[str, t.Any]:
        filters: dict[str, t.Any] = {}
        if self._polls:
            filters["lastUpdatedAfter"] = one_ms_before(since)  # exclusive: include `since`
        else:
            filters["lastUpdatedSince"] = since
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
            if self._polls:
                filters["companyId"] = company_id
            else:
                role = self.config.get("company_role", "buyer")
                filters[f"{role}Order"] = {"companyId": [company_id]}
        return filters
