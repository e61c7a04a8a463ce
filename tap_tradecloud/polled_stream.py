"""The base of every stream read by polling ``lastUpdatedAt``: each record once, run after run.

A subclass says where to poll and how to filter (:meth:`PolledStream.filters`,
:meth:`PolledStream.time_filter`); this class owns the sliding-window paging, the bookmark with the
ids already emitted at its timestamp, and the optional lookback.
"""

from __future__ import annotations

import typing as t

from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_tradecloud.client import TradecloudStream, page_json
from tap_tradecloud.compat import override
from tap_tradecloud.lookback import RecentRecords
from tap_tradecloud.pagination import SlidingWindowPaginator, WindowToken
from tap_tradecloud.timestamps import EPOCH, normalise, one_ms_before

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

#: State key, beside the SDK's bookmark, listing the ids emitted at the bookmark's timestamp.
EMITTED_AT_BOOKMARK = "emitted_at_bookmark"
#: Where a request body accepts a sort, the tap asks for the one its paging relies on.
SORT_BY_LAST_UPDATED = [{"field": "lastUpdatedAt", "order": "asc"}]


def after_filter(since: str) -> dict[str, str]:
    """The exclusive ``lastUpdatedAfter`` filter that still includes ``since`` itself."""
    return {"lastUpdatedAfter": one_ms_before(since)}


class PolledStream(TradecloudStream):
    """Records with ``id`` and ``lastUpdatedAt``, read in pages sorted by ``lastUpdatedAt``."""

    primary_keys = ("id",)
    replication_key = "lastUpdatedAt"
    is_sorted = True
    # Records are JSON already; conforming only the top level keeps unknown nested fields
    # and spares a walk over every line.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY
    #: What one record is, in messages ("order", "shipment").
    noun = "record"

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Emit STATE at least once per page of records."""
        super().__init__(*args, **kwargs)
        self.STATE_MSG_FREQUENCY = int(self.config.get("page_size", 100))
        self._paginator: SlidingWindowPaginator | None = None
        self._recent: RecentRecords | None = None

    def time_filter(self, since: str) -> dict[str, t.Any]:
        """The filter that asks for records updated at or after ``since``."""
        return after_filter(since)

    def filters(self) -> dict[str, t.Any]:
        """The filters besides the time filter (company, status...)."""
        return {}

    def sort(self) -> list[dict[str, str]] | None:
        """The request's ``sort``, for endpoints documented to accept one."""
        return None

    def unsorted_advice(self) -> str:
        """What the user can do when the endpoint answers out of ``lastUpdatedAt`` order."""
        return "report it to Tradecloud support"

    def updated_at(self, record: dict) -> str:
        """The record's ``lastUpdatedAt`` as Tradecloud sends it."""
        return t.cast("str", record["lastUpdatedAt"])

    @override
    def get_new_paginator(self) -> SlidingWindowPaginator:
        """A window starting at the bookmark (or start_date), skipping ids emitted there."""
        since = normalise(self.get_starting_replication_key_value(self.context) or EPOCH)
        if lookback := float(self.config.get("lookback_seconds", 0)):
            since = self._start_lookback(since, lookback)
        emitted = self.stream_state.get(EMITTED_AT_BOOKMARK) or {}
        seen = emitted.get("ids", []) if emitted.get("lastUpdatedAt") == since else []
        #: Where this run's window starts, and the ids already emitted at that timestamp.
        self.window_start: tuple[str, list[str]] = (since, seen)
        self._paginator = SlidingWindowPaginator(
            since=since,
            page_size=int(self.config.get("page_size", 100)),
            seen_at_since=seen,
            noun=self.noun,
            unsorted_advice=self.unsorted_advice(),
        )
        return self._paginator

    @override
    def prepare_request_payload(
        self, context: Context | None, next_page_token: WindowToken | None
    ) -> dict[str, t.Any]:
        """The poll/search body: filters, sort, offset and limit of one window page."""
        assert next_page_token is not None  # the paginator always has a token
        body: dict[str, t.Any] = {
            "filters": {**self.time_filter(next_page_token["since"]), **self.filters()}
        }
        if (sort := self.sort()) is not None:
            body["sort"] = sort
        body["offset"] = next_page_token["offset"]
        body["limit"] = next_page_token["limit"]
        return body

    @override
    def parse_response(self, response: requests.Response) -> list[dict]:
        """The page's records not emitted before, with ``lastUpdatedAt`` normalised."""
        body = page_json(response)
        records = body.get("data")
        if records is None:
            records = body.get("orders", [])  # early poll versions answered `orders`
        for record in records:
            record["lastUpdatedAt"] = normalise(self.updated_at(record))
        assert self._paginator is not None  # set by get_new_paginator
        fresh = self._paginator.take_page(records)
        if self._recent is not None:
            self._recent.forget_old()
            fresh = [record for record in fresh if not self._recent.is_emitted(record)]
        return fresh

    @override
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

    def _start_lookback(self, start: str, lookback: float) -> str:
        """Re-read the last ``lookback`` seconds (never before start_date); skip what was sent.

        The SDK bookmark is lowered to the window start for this run, so that a change that
        appears late (older than the old bookmark) passes the SDK's sort check.
        """
        self._recent = RecentRecords(self.stream_state, lookback)
        if "replication_key_value" not in self.stream_state:
            return start  # first run: start_date as given
        since = self._recent.window_start(start)
        if start_date := self.config.get("start_date"):
            since = max(since, normalise(start_date))
        self.stream_state["replication_key_value"] = min(
            since, self.stream_state["replication_key_value"]
        )
        return since
