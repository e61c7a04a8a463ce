"""schemas/order.json declares every documented order field, with precise types: SQL targets
drop what the schema does not declare."""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest

from tap_tradecloud import schemas
from tap_tradecloud.sandbox import generate_orders
from tap_tradecloud.sandbox.activity import OrderChange, event_body

if TYPE_CHECKING:
    from collections.abc import Iterator

SCHEMA = json.loads(resources.files(schemas).joinpath("order.json").read_text())

DOCUMENTED = {
    "lines[].buyerLine.deliverySchedule[].date": "date",
    "lines[].buyerLine.deliverySchedule[].quantity": "number",
    "lines[].buyerLine.prices.netPrice.priceInTransactionCurrency.value": "number",
    "lines[].buyerLine.originalPosition": "string",
    "lines[].firstDeliveryDate": "date",
    "portalUrl": "string",
    "reason": "string",
    "lines[].reason": "string",
    "lines[].statusLine.scheduledDelivery.date": "date",
    "lines[].statusLine.scheduledDelivery.quantity": "number",
    "lines[].statusLine.scheduledDeliveryInclRequests.date": "date",
    "lines[].statusLine.prices.netPrice.priceInTransactionCurrency.value": "number",
    "lines[].statusLine.pricesInclRequests.priceUnitQuantity": "number",
    "lines[].deliverySchedule[].date": "date",
    "lines[].deliverySchedule[].etd": "date",
    "lines[].deliverySchedule[].eta": "date",
    "lines[].confirmedLine.chargeLines[].quantity": "number",
    "lines[].lastUpdatedAt": "date-time",
    "meta.createdDateTime": "date-time",
    "lastUpdatedAt": "date-time",
    "version": "integer",
}


def declared(path: str) -> dict[str, Any]:
    """The schema node of a dotted path (``[]`` steps into array items)."""
    node = SCHEMA
    for step in path.split("."):
        is_array = step.endswith("[]")
        node = node["properties"][step.removesuffix("[]")]
        if is_array:
            node = node["items"]
    return node


def paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every key path in a JSON value, as ``declared`` spells it."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from paths(item, path)
    elif isinstance(value, list):
        for item in value:
            yield from paths(item, f"{prefix}[]")


@pytest.mark.parametrize(("path", "kind"), DOCUMENTED.items())
def test_documented_fields_are_declared_with_precise_types(path: str, kind: str) -> None:
    node = declared(path)
    if kind in ("date", "date-time"):
        assert "string" in node["type"]
        assert node["format"] == kind
    else:
        assert kind in node["type"]


def test_local_erp_times_are_not_declared_as_zoned_date_times() -> None:
    """``erpIssueDateTime`` is a local time without zone: format date-time would refuse it."""
    assert "format" not in declared("buyerOrder.erpIssueDateTime")


def _orders() -> list[dict[str, Any]]:
    orders = generate_orders(60, seed=5, lines_per_order=(1, 6))
    single = event_body(
        OrderChange(orders[0], "OrderLinesConfirmedBySupplier", (orders[0]["lines"][0]["id"],)),
        single_delivery=True,
    )
    with_status_line = {**orders[0], "lines": single["singleDeliveryOrderEvent"]["lines"]}
    return [*orders, with_status_line]


def test_every_field_the_sandbox_generates_is_declared() -> None:
    undeclared = set()
    for order in _orders():
        for path in paths(order):
            if path.startswith(("eventDates.", "lines[].eventDates.")):
                continue  # sub-fields not documented: kept as an object
            try:
                declared(path)
            except KeyError:
                undeclared.add(path)
    assert sorted(undeclared) == []


def test_generated_orders_are_valid_against_the_schema_with_formats() -> None:
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    for order in _orders():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(order)]
        assert errors == []
