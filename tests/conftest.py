"""Fixtures shared by the test modules; plain helpers live in tests/*_helpers.py."""

from __future__ import annotations

import typing as t

import pytest

from tests.tap_helpers import FakeTradecloud, make_order, ts

if t.TYPE_CHECKING:
    import requests_mock as rm


@pytest.fixture
def fake(requests_mock: rm.Mocker) -> FakeTradecloud:
    """A requests-mock Tradecloud serving five orders, one millisecond apart."""
    server = FakeTradecloud(orders=[make_order(i, ts(i)) for i in range(5)])
    server.install(requests_mock)
    return server
