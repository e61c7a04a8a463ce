"""Validation of search/poll request bodies into a ``Query``, with readable 400 messages."""

from __future__ import annotations

from typing import Any

from tap_tradecloud.sandbox.clock import parse_us
from tap_tradecloud.sandbox.filters import (
    FILTER_KEYS,
    BadRequest,
    Sort,
    expect,
    only_keys,
    parse_filter,
    parse_sort,
    strings,
)
from tap_tradecloud.sandbox.store import Query

__all__ = ["MAX_LIMIT", "BadRequest", "paging", "parse_query", "parse_timestamp", "strings"]

MAX_LIMIT = 100  # "the maximum allowed value" (Tradecloud's polling docs)
RESULT_WINDOW = 10_000
DEFAULT_LIMIT = 10  # Elasticsearch's default page size; clients should always send `limit`
_TOP_LEVEL = {"filters", "offset", "limit", "sort", "query"}


def _int_field(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    expect(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"`{name}` must be a non-negative integer, got {value!r}",
    )
    return value


def parse_timestamp(value: Any, name: str) -> int:
    """A request timestamp in microseconds, or BadRequest naming the field."""
    expect(isinstance(value, str), f"`{name}` must be a timestamp string, got {value!r}")
    try:
        return parse_us(value)
    except ValueError as error:
        msg = f"`{name}`: {error}"
        raise BadRequest(msg) from None


def paging(body: dict[str, Any], max_limit: int = MAX_LIMIT) -> tuple[int, int]:
    """``(offset, limit)`` of a search/poll body, under the limit and result-window rules."""
    offset = _int_field(body, "offset", 0)
    limit = _int_field(body, "limit", DEFAULT_LIMIT)
    expect(limit <= max_limit, f"`limit` must be at most {max_limit}, got {limit}")
    expect(
        offset + limit <= RESULT_WINDOW,
        f"Result window is too large, offset + limit must be less than or equal to: "
        f"[{RESULT_WINDOW}] but was [{offset + limit}]; page by moving the lastUpdated filter "
        "instead of the offset",
    )
    return offset, limit


def parse_query(body: Any, endpoint: str, *, max_limit: int = MAX_LIMIT) -> Query:
    """Validate the JSON body of ``search`` or ``poll`` and return what it asks for."""
    expect(
        isinstance(body, dict),
        "the request body must be a JSON object such as "
        '{"filters": {...}, "offset": 0, "limit": 100}',
    )
    only_keys(body, "body", _TOP_LEVEL)
    offset, limit = paging(body, max_limit)
    time_filters = (
        {"lastUpdatedAfter"} if endpoint == "poll" else {"lastUpdatedSince", "lastUpdatedAfter"}
    )
    filters = only_keys(body.get("filters", {}), "filters", FILTER_KEYS | time_filters)
    expect(
        len(time_filters & set(filters)) <= 1,
        "send either `lastUpdatedSince` or `lastUpdatedAfter`, not both",
    )
    since_us, inclusive = None, True
    for name in time_filters & set(filters):
        since_us = parse_timestamp(filters[name], f"filters.{name}")
        inclusive = name == "lastUpdatedSince"
    return Query(
        since_us=since_us,
        inclusive=inclusive,
        filter=parse_filter(filters, body.get("query")),
        sort=parse_sort(body["sort"]) if "sort" in body else Sort(),
        offset=offset,
        limit=limit,
    )
