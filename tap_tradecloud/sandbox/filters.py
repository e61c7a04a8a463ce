"""The documented order-search filters and sorts.

What each order offers them, parsing the request's ``filters``/``query``/``sort``, and applying
them (reference/tradecloud-api.md §3).

Each stored order version gets its ``Facets`` once, when stored, so that a filtered search only
compares strings and sets. Only the free-text ``query`` (rare) re-reads the order JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tap_tradecloud.sandbox.data import (
    DELIVERY_LINE_STATUSES,
    IN_PROGRESS_STATUSES,
    LOGISTICS_STATUSES,
    PROCESS_STATUSES,
    Order,
)


class BadRequest(ValueError):
    """A request the API answers with 400; the message says what is wrong."""


def expect(condition: bool, message: str) -> None:
    """Raise BadRequest with ``message`` unless ``condition`` holds."""
    if not condition:
        raise BadRequest(message)


@dataclass(frozen=True, slots=True)
class Facets:
    """What the filters and sorts look at in one order version."""

    buyer: str
    supplier: str
    process_status: str
    logistics_status: str
    in_progress_statuses: frozenset[str]  # of its lines
    delivery_line_statuses: frozenset[str]  # of its lines' delivery schedules
    delivery_overdue: bool
    buyer_contact: str | None
    supplier_contact: str | None
    destination_code: str | None
    erp_issue_date_time: str
    purchase_order_number: str


def searchable_text(order: Order) -> str:
    """The lower-case text the free-text ``query`` searches: numbers, descriptions, items."""
    buyer, supplier = order["buyerOrder"], order["supplierOrder"]
    words = [
        order["id"],
        buyer.get("purchaseOrderNumber"),
        buyer.get("supplierAccountNumber"),
        buyer.get("description"),
        supplier.get("buyerAccountNumber"),
        supplier.get("description"),
    ]
    for line in order["lines"]:
        item = line["buyerLine"].get("item", {})
        words += [item.get("number"), item.get("name"), item.get("supplierItemNumber")]
        words += [
            line["buyerLine"].get("description"),
            line["supplierLine"].get("salesOrderNumber"),
        ]
    return " ".join(word for word in words if word).lower()


def facets_of(order: Order) -> Facets:
    """The values of ``order`` that filters and sorts compare."""
    buyer, supplier = order["buyerOrder"], order["supplierOrder"]
    lines = order["lines"]
    return Facets(
        buyer=buyer["companyId"],
        supplier=supplier["companyId"],
        process_status=order["status"]["processStatus"],
        logistics_status=order["status"]["logisticsStatus"],
        in_progress_statuses=frozenset(
            line["status"]["inProgressStatus"]
            for line in lines
            if "inProgressStatus" in line["status"]
        ),
        delivery_line_statuses=frozenset(
            delivery["status"]
            for line in lines
            for delivery in line.get("deliverySchedule", ())
            if "status" in delivery
        ),
        delivery_overdue=bool(order.get("indicators", {}).get("deliveryOverdue")),
        buyer_contact=(buyer.get("contact") or {}).get("userId"),
        supplier_contact=(supplier.get("contact") or {}).get("userId"),
        destination_code=(buyer.get("destination") or {}).get("code"),
        erp_issue_date_time=buyer.get("erpIssueDateTime", ""),
        purchase_order_number=buyer.get("purchaseOrderNumber", ""),
    )


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """Every filter a search/poll body can hold except the time filter; None means absent."""

    company_ids: frozenset[str] | None = None  # buyer or supplier
    buyer_ids: frozenset[str] | None = None
    supplier_ids: frozenset[str] | None = None
    buyer_contacts: frozenset[str] | None = None
    supplier_contacts: frozenset[str] | None = None
    destination_codes: frozenset[str] | None = None
    process_statuses: frozenset[str] | None = None
    in_progress_statuses: frozenset[str] | None = None
    logistics_statuses: frozenset[str] | None = None
    delivery_line_statuses: frozenset[str] | None = None
    delivery_overdue: bool | None = None
    words: tuple[str, ...] = ()  # from the free-text `query`, lower case; see matches_text

    def is_empty(self) -> bool:
        """Whether no filter is set."""
        return self == OrderFilter()

    def matches(self, f: Facets) -> bool:
        """Whether an order with these facets passes every filter that is set."""

        def among(allowed: frozenset[str] | None, *values: str | None) -> bool:
            return allowed is None or any(value in allowed for value in values)

        def overlaps(allowed: frozenset[str] | None, values: frozenset[str]) -> bool:
            return allowed is None or not allowed.isdisjoint(values)

        return (
            among(self.company_ids, f.buyer, f.supplier)
            and among(self.buyer_ids, f.buyer)
            and among(self.supplier_ids, f.supplier)
            and among(self.buyer_contacts, f.buyer_contact)
            and among(self.supplier_contacts, f.supplier_contact)
            and among(self.destination_codes, f.destination_code)
            and among(self.process_statuses, f.process_status)
            and overlaps(self.in_progress_statuses, f.in_progress_statuses)
            and among(self.logistics_statuses, f.logistics_status)
            and overlaps(self.delivery_line_statuses, f.delivery_line_statuses)
            and (self.delivery_overdue is None or self.delivery_overdue == f.delivery_overdue)
        )

    def matches_text(self, order: Order) -> bool:
        """Whether every word of the free-text ``query`` appears in the order."""
        text = searchable_text(order)
        return all(word in text for word in self.words)


def strings(value: Any, name: str, allowed: tuple[str, ...] | None = None) -> frozenset[str]:
    """A request's list of strings (optionally from ``allowed``), or BadRequest naming it."""
    expect(
        isinstance(value, list) and all(isinstance(item, str) for item in value),
        f"`{name}` must be a list of strings, got {value!r}",
    )
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        expect(not unknown, f"`{name}` has unknown values {unknown}; allowed: {list(allowed)}")
    return frozenset(value)


def only_keys(mapping: Any, name: str, allowed: set[str]) -> dict[str, Any]:
    """``mapping`` if it is an object with only ``allowed`` keys, else BadRequest."""
    expect(isinstance(mapping, dict), f"`{name}` must be an object, got {mapping!r}")
    unknown = sorted(set(mapping) - allowed)
    expect(
        not unknown,
        f"`{name}` has keys the sandbox does not support: {unknown}; supported: {sorted(allowed)}",
    )
    return mapping


def _list(section: dict[str, Any], key: str, name: str) -> frozenset[str] | None:
    """An empty or absent list means no filter."""
    if key not in section:
        return None
    return strings(section[key], name) or None


def _nested_list(
    section: dict[str, Any], outer: str, inner: str, name: str
) -> frozenset[str] | None:
    if outer not in section:
        return None
    return _list(
        only_keys(section[outer], f"{name}.{outer}", {inner}), inner, f"{name}.{outer}.{inner}"
    )


def _company_ids(filters: dict[str, Any]) -> frozenset[str] | None:
    if "companyId" not in filters:
        return None
    value = filters["companyId"]
    if isinstance(value, str):
        return frozenset((value,))
    return strings(value, "filters.companyId")


_STATUS_LISTS = {
    "processStatus": PROCESS_STATUSES,
    "inProgressStatus": IN_PROGRESS_STATUSES,
    "logisticsStatus": LOGISTICS_STATUSES,
    "deliveryLineStatus": DELIVERY_LINE_STATUSES,
}
FILTER_KEYS = {"companyId", "buyerOrder", "supplierOrder", "status", "indicators"}


def _statuses(filters: dict[str, Any]) -> dict[str, frozenset[str] | None]:
    status = only_keys(filters.get("status", {}), "filters.status", set(_STATUS_LISTS))
    return {
        key: strings(status[key], f"filters.status.{key}", allowed) or None
        if key in status
        else None
        for key, allowed in _STATUS_LISTS.items()
    }


def _overdue(filters: dict[str, Any]) -> bool | None:
    indicators = only_keys(filters.get("indicators", {}), "filters.indicators", {"deliveryOverdue"})
    value = indicators.get("deliveryOverdue")
    expect(
        value is None or isinstance(value, bool),
        f"`filters.indicators.deliveryOverdue` must be true or false, got {value!r}",
    )
    return value


def _words(query: Any) -> tuple[str, ...]:
    expect(query is None or isinstance(query, str), f"`query` must be a string, got {query!r}")
    return tuple((query or "").lower().split())


def parse_filter(filters: dict[str, Any], query: Any) -> OrderFilter:
    """The ``filters`` object (time filter already taken out) and the free-text ``query``."""
    buyer = only_keys(
        filters.get("buyerOrder", {}),
        "filters.buyerOrder",
        {"companyId", "contact", "destination"},
    )
    supplier = only_keys(
        filters.get("supplierOrder", {}), "filters.supplierOrder", {"companyId", "contact"}
    )
    statuses = _statuses(filters)
    return OrderFilter(
        company_ids=_company_ids(filters),
        buyer_ids=_list(buyer, "companyId", "filters.buyerOrder.companyId"),
        supplier_ids=_list(supplier, "companyId", "filters.supplierOrder.companyId"),
        buyer_contacts=_nested_list(buyer, "contact", "userIds", "filters.buyerOrder"),
        supplier_contacts=_nested_list(supplier, "contact", "userIds", "filters.supplierOrder"),
        destination_codes=_nested_list(buyer, "destination", "code", "filters.buyerOrder"),
        process_statuses=statuses["processStatus"],
        in_progress_statuses=statuses["inProgressStatus"],
        logistics_statuses=statuses["logisticsStatus"],
        delivery_line_statuses=statuses["deliveryLineStatus"],
        delivery_overdue=_overdue(filters),
        words=_words(query),
    )


# A sort field and how to read it from (lastUpdatedAt in microseconds, id, facets).
SortKey = Callable[[tuple[int, str], Facets], Any]
_LAST_UPDATED = ("lastUpdatedAt", "data.lastUpdatedAt")
_SORT_FIELDS: dict[str, SortKey] = {
    "lastUpdatedAt": lambda key, _: key[0],
    "data.lastUpdatedAt": lambda key, _: key[0],
    "buyerOrder.erpIssueDateTime": lambda _, f: f.erp_issue_date_time,
    "buyerOrder.purchaseOrderNumber": lambda _, f: f.purchase_order_number,
}


@dataclass(frozen=True, slots=True)
class Sort:
    """Sort fields, most significant first; ties keep the index order (lastUpdatedAt, id)."""

    fields: tuple[tuple[str, bool], ...] = ()  # (field, descending)

    def is_index_order(self) -> bool:
        """Whether this sort is the index's own order (``lastUpdatedAt`` ascending)."""
        return all(field in _LAST_UPDATED and not descending for field, descending in self.fields)

    def apply(
        self, items: Iterable[Any], key_of: Callable[[Any], tuple[tuple[int, str], Facets]]
    ) -> list[Any]:
        """``items`` sorted by these fields; ``key_of`` gives an item's index key and facets."""
        ordered = list(items)
        for field, descending in reversed(self.fields):  # stable sorts, least significant first
            read = _SORT_FIELDS[field]

            def sort_key(item: Any, read: SortKey = read) -> Any:
                return read(*key_of(item))

            ordered.sort(key=sort_key, reverse=descending)
        return ordered


def parse_sort(sort: Any) -> Sort:
    """The request's ``sort`` list, or BadRequest naming what is wrong."""
    expect(isinstance(sort, list), f"`sort` must be a list of {{field, order}}, got {sort!r}")
    fields: list[tuple[str, bool]] = []
    for item in sort:
        entry = only_keys(item, "sort[]", {"field", "order"})
        field, order = entry.get("field"), entry.get("order", "asc")
        expect(
            field in _SORT_FIELDS,
            f"cannot sort on {field!r}; sortable fields: {sorted(_SORT_FIELDS)}",
        )
        expect(order in ("asc", "desc"), f"sort order must be 'asc' or 'desc', got {order!r}")
        fields.append((str(field), order == "desc"))
    return Sort(tuple(fields))
