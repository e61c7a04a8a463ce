"""The SDK's standard tap tests, against the in-memory Tradecloud (mocked for the whole class)."""

from __future__ import annotations

import typing as t

import pytest
import requests_mock
from singer_sdk.testing import get_tap_test_class

from tap_tradecloud.tap import TapTradecloud
from tests.tap_helpers import FakeTradecloud, config, make_order, ts


def full_line(number: int, updated_at: str) -> dict[str, t.Any]:
    """A line with every top-level field, so each `order_lines` attribute test has data."""
    schedule = [{"position": "0001", "date": "2024-02-01", "quantity": 10, "status": "Open"}]
    prices = {
        "netPrice": {"priceInTransactionCurrency": {"value": 12.5, "currencyIso": "EUR"}},
        "priceUnitQuantity": 1,
    }
    return {
        "id": f"line-{number}",
        "lineType": "Item",
        "chargeReasonCode": None,
        "buyerLine": {"position": f"{number:04d}", "item": {"number": "10001"}},
        "supplierLine": {"salesOrderNumber": "SO1"},
        "confirmedLine": {"deliverySchedule": schedule, "prices": prices},
        "deliverySchedule": schedule,
        "deliveryScheduleIncludingRequests": schedule,
        "prices": prices,
        "pricesIncludingRequests": prices,
        "indicators": {"deliveryOverdue": False},
        "status": {"processStatus": "Confirmed", "logisticsStatus": "Open"},
        "eventDates": {"confirmedAt": updated_at},
        "mergedItemDetails": {"countryOfOriginCodeIso2": "NL"},
        "lastUpdatedAt": updated_at,
    }


ORDERS = [
    make_order(i, ts(i // 2), lines=[full_line(n, ts(i // 2)) for n in (1, 2)]) for i in range(60)
]

_StandardTests = get_tap_test_class(TapTradecloud, config=config(), parse_env_config=False)


class TestTapTradecloudStandard(_StandardTests):  # type: ignore[misc,valid-type]
    """Discovery, CLI, schema and record tests of the SDK."""

    @pytest.fixture(scope="class")
    @classmethod
    def resource(cls) -> t.Iterator[requests_mock.Mocker]:
        with requests_mock.Mocker() as mock:
            FakeTradecloud(orders=[dict(o) for o in ORDERS]).install(mock)
            yield mock
