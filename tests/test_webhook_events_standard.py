"""The SDK's standard tap tests with a spool configured, so they cover ``webhook_events`` too."""

from __future__ import annotations

import os
import shutil
import tempfile
import typing as t
from pathlib import Path

import pytest
import requests_mock
from singer_sdk.testing import get_tap_test_class

from tap_tradecloud.spool import EventMeta, SpoolWriter
from tap_tradecloud.tap import TapTradecloud
from tests.tap_helpers import FakeTradecloud, config, make_order, make_shipment, ts
from tests.webhook_helpers import event_body

# The SDK builds the test class (and its config) at import time; the class fixture fills and
# removes the folder.
SPOOL_DIR = Path(tempfile.gettempdir()) / f"tap-tradecloud-standard-spool-{os.getpid()}"
ORDERS = [make_order(i, ts(i)) for i in range(5)]
SHIPMENTS = [make_shipment(i, ts(i)) for i in range(3)]
RECEIVED = "2026-01-01T00:00:00.000Z"

_StandardTests = get_tap_test_class(
    TapTradecloud,
    config=config(spool_dir=str(SPOOL_DIR), fetch_orders_for_notifications=False),
    parse_env_config=False,
)


def fill_spool() -> None:
    kinds = ["orderEvent", "singleDeliveryOrderEvent", "orderDocumentsEvent"]
    with SpoolWriter(SPOOL_DIR, "standard", min_free_bytes=0) as writer:
        for i, kind in enumerate(kinds):
            body = event_body(kind, order_id=f"order-{i}", message_id=f"message-{i}")
            meta = EventMeta(RECEIVED, "POST", "/webhooks/tradecloud", "application/json")
            writer.write_event(body, meta)
        get = EventMeta(RECEIVED, "GET", "/webhooks/tradecloud/order-9", order_id="order-9")
        writer.write_event(b"", get)


class TestTapTradecloudWithSpool(_StandardTests):  # type: ignore[misc,valid-type]
    """Discovery, CLI, schema and record tests of the SDK, webhook_events included."""

    @pytest.fixture(scope="class")
    @classmethod
    def resource(cls) -> t.Iterator[requests_mock.Mocker]:
        shutil.rmtree(SPOOL_DIR, ignore_errors=True)
        fill_spool()
        with requests_mock.Mocker() as mock:
            FakeTradecloud(
                orders=[dict(o) for o in ORDERS], shipments=[dict(s) for s in SHIPMENTS]
            ).install(mock)
            yield mock
        shutil.rmtree(SPOOL_DIR, ignore_errors=True)
