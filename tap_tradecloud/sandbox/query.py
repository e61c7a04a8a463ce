"""Validation of search/poll request bodies into a ``Query``, with readable 400 messages."""

from __future__ import annotations

from typing import Any

from tap_tradecloud.sandbox.clock import parse_us
from tap_tradecloud.sandbox.data import LOGISTICS_STATUSES, PROCESS_STATUSES
from tap_tradecloud.sandbox.store import Query

MAX_LIMIT = 100
RESULT_WINDOW = 10_000
DEFAULT_LIMIT = 10  # Elasticsearch's default page size; clients should always send `limit`
_TOP_LEVEL = {"filters", "offset", "limit", "sort", "query"}
_SORTABLE = {"lastUpdatedAt", "data.lastUpdatedAt"}


class BadRequest(ValueError):
    """A request the API answers with 400; the message says what is wrong."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise BadRequest(message)


def _int_field(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    _expect(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"`{name}` must be a non-negative integer, got {value!r}",
    )
    return value


def strings(value: Any, name: str, allowed: tuple[str, ...] | None = None) -> frozenset[str]:
    _expect(
        isinstance(value, list) and all(isinstance(item, str) for item in value),
        f"`{name}` must be a list of strings, got {value!r}",
    )
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        _expect(not unknown, f"`{name}` has unknown values {unknown}; allowed: {list(allowed)}")
    return frozenset(value)


def _only_keys(mapping: Any, name: str, allowed: set[str]) -> dict[str, Any]:
    _expect(isinstance(mapping, dict), f"`{name}` must be an object, got {mapping!r}")
    unknown = sorted(set(mapping) - allowed)
    _expect(
        not unknown,
        f"`{name}` has keys the sandbox does not support: {unknown}; supported: {sorted(allowed)}",
    )
    return mapping


def parse_timestamp(value: Any, name: str) -> int:
    _expect(isinstance(value, str), f"`{name}` must be a timestamp string, got {value!r}")
    try:
        return parse_us(value)
    except ValueError as error:
        raise BadRequest(f"`{name}`: {error}") from None


def _company_filter(filters: dict[str, Any], side: str) -> frozenset[str] | None:
    if side not in filters:
        return None
    section = _only_keys(filters[side], f"filters.{side}", {"companyId"})
    return strings(section.get("companyId", []), f"filters.{side}.companyId") or None


def _company_ids(filters: dict[str, Any]) -> frozenset[str] | None:
    if "companyId" not in filters:
        return None
    value = filters["companyId"]
    if isinstance(value, str):
        return frozenset((value,))
    return strings(value, "filters.companyId")


def _status_filter(
    status: dict[str, Any], name: str, allowed: tuple[str, ...]
) -> frozenset[str] | None:
    """An empty or absent list means no filter, as with the company filters."""
    if name not in status:
        return None
    return strings(status[name], f"filters.status.{name}", allowed) or None


def _check_sort(sort: Any) -> None:
    _expect(isinstance(sort, list), f"`sort` must be a list of {{field, order}}, got {sort!r}")
    for item in sort:
        field = _only_keys(item, "sort[]", {"field", "order"})
        _expect(
            field.get("field") in _SORTABLE and field.get("order", "asc") == "asc",
            f"the sandbox sorts only by lastUpdatedAt ascending, got {item!r}",
        )


def paging(body: dict[str, Any]) -> tuple[int, int]:
    """``(offset, limit)`` of a search/poll body, under the limit and result-window rules."""
    offset = _int_field(body, "offset", 0)
    limit = _int_field(body, "limit", DEFAULT_LIMIT)
    _expect(limit <= MAX_LIMIT, f"`limit` must be at most {MAX_LIMIT}, got {limit}")
    _expect(
        offset + limit <= RESULT_WINDOW,
        f"Result window is too large, offset + limit must be less than or equal to: "
        f"[{RESULT_WINDOW}] but was [{offset + limit}]; page by moving the lastUpdated filter "
        "instead of the offset",
    )
    return offset, limit


def parse_query(body: Any, endpoint: str) -> Query:
    """Validate the JSON body of ``search`` or ``poll`` and return what it asks for."""
    _expect(
        isinstance(body, dict),
        "the request body must be a JSON object such as "
        '{"filters": {...}, "offset": 0, "limit": 100}',
    )
    _only_keys(body, "body", _TOP_LEVEL)
    _expect(not body.get("query"), "free-text `query` is not supported by the sandbox")
    if "sort" in body:
        _check_sort(body["sort"])
    offset, limit = paging(body)
    time_filters = (
        {"lastUpdatedAfter"} if endpoint == "poll" else {"lastUpdatedSince", "lastUpdatedAfter"}
    )
    filters = _only_keys(
        body.get("filters", {}),
        "filters",
        {"companyId", "buyerOrder", "supplierOrder", "status"} | time_filters,
    )
    _expect(
        len(time_filters & set(filters)) <= 1,
        "send either `lastUpdatedSince` or `lastUpdatedAfter`, not both",
    )
    since_us, inclusive = None, True
    for name in time_filters & set(filters):
        since_us = parse_timestamp(filters[name], f"filters.{name}")
        inclusive = name == "lastUpdatedSince"
    status = _only_keys(
        filters.get("status", {}), "filters.status", {"processStatus", "logisticsStatus"}
    )
    return Query(
        since_us=since_us,
        inclusive=inclusive,
        company_ids=_company_ids(filters),
        buyer_ids=_company_filter(filters, "buyerOrder"),
        supplier_ids=_company_filter(filters, "supplierOrder"),
        process_statuses=_status_filter(status, "processStatus", PROCESS_STATUSES),
        logistics_statuses=_status_filter(status, "logisticsStatus", LOGISTICS_STATUSES),
        offset=offset,
        limit=limit,
    )
