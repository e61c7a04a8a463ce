"""The generated orders are realistic, consistent and reproducible."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tap_tradecloud.sandbox import generate_orders
from tap_tradecloud.sandbox.data import (
    IN_PROGRESS_STATUSES,
    LOGISTICS_STATUSES,
    PROCESS_STATUSES,
    order_logistics_status,
    order_process_status,
)

TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


@pytest.fixture(scope="module")
def orders() -> list[dict]:
    return generate_orders(600, seed=11, lines_per_order=(1, 12))


def test_same_seed_same_orders_other_seed_other_orders() -> None:
    first = generate_orders(50, seed=5, lines_per_order=(1, 5))
    assert first == generate_orders(50, seed=5, lines_per_order=(1, 5))
    assert first != generate_orders(50, seed=6, lines_per_order=(1, 5))


def test_orders_are_sorted_like_the_api_and_start_at_start(orders: list[dict]) -> None:
    keys = [(order["lastUpdatedAt"], order["id"]) for order in orders]
    assert keys == sorted(keys)
    assert orders[0]["lastUpdatedAt"] == "2024-01-01T00:00:00.000Z"
    assert len({order["id"] for order in orders}) == len(orders)


def test_many_orders_share_a_millisecond(orders: list[dict]) -> None:
    groups = Counter(order["lastUpdatedAt"] for order in orders)
    assert max(groups.values()) >= 20  # an ERP batch import
    assert sum(size for size in groups.values() if size > 1) > len(orders) // 4


def test_same_timestamp_gives_one_last_updated_at() -> None:
    orders = generate_orders(30, seed=1, start="2025-04-23T10:01:53.812Z", same_timestamp=True)
    assert {order["lastUpdatedAt"] for order in orders} == {"2025-04-23T10:01:53.812Z"}


def test_order_shape_follows_the_reference(orders: list[dict]) -> None:
    for order in orders:
        buyer = order["buyerOrder"]
        assert order["id"] == f"{buyer['companyId']}-{buyer['purchaseOrderNumber']}"
        assert {"companyId", "buyerAccountNumber"} <= set(order["supplierOrder"])
        assert set(order) >= {"indicators", "status", "version", "eventDates", "meta", "lines"}
        assert set(order["meta"]) == {"messageId", "createdDateTime", "source"}
        assert isinstance(order["version"], int)
        assert order["version"] >= 1
        assert 1 <= len(order["lines"]) <= 12
        for line in order["lines"]:
            assert set(line["buyerLine"]["item"]) >= {"number", "name", "purchaseUnitOfMeasureIso"}
            assert line["deliverySchedule"][0]["quantity"] > 0
            assert line["prices"]["netPrice"]["priceInTransactionCurrency"]["currencyIso"]
            assert line["lastUpdatedAt"] <= order["lastUpdatedAt"]
        assert max(line["lastUpdatedAt"] for line in order["lines"]) == order["lastUpdatedAt"]


def test_timestamps_have_the_tradecloud_format(orders: list[dict]) -> None:
    stamps = [order["lastUpdatedAt"] for order in orders]
    stamps += [line["lastUpdatedAt"] for order in orders for line in order["lines"]]
    assert all(re.match(TIMESTAMP, stamp) for stamp in stamps)


def test_statuses_are_documented_values_and_consistent(orders: list[dict]) -> None:
    for order in orders:
        lines = order["lines"]
        assert order["status"]["processStatus"] in PROCESS_STATUSES
        assert order["status"]["logisticsStatus"] in LOGISTICS_STATUSES
        assert order["status"]["processStatus"] == order_process_status(
            line["status"]["processStatus"] for line in lines
        )
        assert order["status"]["logisticsStatus"] == order_logistics_status(
            line["status"]["logisticsStatus"] for line in lines
        )
        for line in lines:
            status = line["status"]
            assert ("inProgressStatus" in status) == (status["processStatus"] == "InProgress")
            if "inProgressStatus" in status:
                assert status["inProgressStatus"] in IN_PROGRESS_STATUSES
            if status["processStatus"] == "Completed":
                assert status["logisticsStatus"] == "Delivered"
    seen = Counter(order["status"]["processStatus"] for order in orders)
    assert set(seen) == set(PROCESS_STATUSES)


def test_some_orders_carry_documents(orders: list[dict]) -> None:
    with_documents = [order for order in orders if order["buyerOrder"]["documents"]]
    assert 0 < len(with_documents) < len(orders)
    document = with_documents[0]["buyerOrder"]["documents"][0]
    assert set(document) == {"code", "revision", "name", "objectId", "type", "description"}


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["Confirmed", "Confirmed"], "Confirmed"),
        (["Issued", "Confirmed"], "InProgress"),
        (["Confirmed", "Cancelled"], "Confirmed"),
        (["Cancelled", "Rejected"], "Cancelled"),
        (["Issued", "Cancelled"], "Issued"),
        (["Issued", "Confirmed", "Cancelled"], "InProgress"),
    ],
)
def test_order_process_status_rule(lines: list[str], expected: str) -> None:
    assert order_process_status(lines) == expected


def test_bad_lines_per_order_is_refused() -> None:
    with pytest.raises(ValueError, match="lines_per_order"):
        generate_orders(1, seed=1, lines_per_order=(3, 2))
