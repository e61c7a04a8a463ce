"""The SDK's standard tap tests, against the in-memory Tradecloud (mocked for the whole class)."""

from __future__ import annotations

import typing as t

import pytest
import requests_mock
from singer_sdk.testing import get_tap_test_class

from tap_tradecloud.tap import TapTradecloud
from tests.tap_helpers import FakeTradecloud, config, make_order, make_shipment, ts

ORDERS = [make_order(i, ts(i // 2)) for i in range(60)]
SHIPMENTS = [make_shipment(i, ts(i // 3)) for i in range(30)]

_StandardTests = get_tap_test_class(TapTradecloud, config=config(), parse_env_config=False)


class TestTapTradecloudStandard(_StandardTests):  # type: ignore[misc,valid-type]
    """Discovery, CLI, schema and record tests of the SDK."""

    @pytest.fixture(scope="class")
    @classmethod
    def resource(cls) -> t.Iterator[requests_mock.Mocker]:
        with requests_mock.Mocker() as mock:
            FakeTradecloud(
                orders=[dict(o) for o in ORDERS], shipments=[dict(s) for s in SHIPMENTS]
            ).install(mock)
            yield mock
