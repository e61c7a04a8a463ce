"""Every genuine Tradecloud delivery is stored: large orders, odd ids, every kind, tXML."""

from __future__ import annotations

import json
import logging
import shutil
from typing import TYPE_CHECKING

import pytest
import requests

from tap_tradecloud import spool
from tap_tradecloud.spool import SpoolWriter
from tap_tradecloud.webhook.cli import build_parser
from tests.webhook_helpers import (
    TOKEN,
    InThreadReceiver,
    auth_headers,
    receiver_in_thread,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TIMEOUT = 30


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[InThreadReceiver]:
    with receiver_in_thread(tmp_path) as running:  # the receiver's default body limit
        yield running


def stored(tmp_path: Path) -> list[spool.SpooledEvent]:
    return list(spool.iter_events(tmp_path, "r1"))


def order_event_with_lines(count: int) -> bytes:
    """An order event of ``count`` lines, each the size of a real, busy order line."""
    line = {
        "id": "line-id",
        "buyerLine": {
            "position": "0001",
            "description": "Stainless steel hex bolt M12 x 80 DIN 933 A4-80 " * 20,
            "deliverySchedule": [
                {"position": i, "date": "2026-01-01", "quantity": 10} for i in range(20)
            ],
        },
        "status": {"processStatus": "Confirmed", "logisticsStatus": "Open"},
        "lastUpdatedAt": "2025-04-23T10:01:53.812Z",
    }
    event = {
        "orderId": "big-order",
        "lines": [{**line, "id": f"line-{n}"} for n in range(count)],
        "lastUpdatedAt": "2025-04-23T10:01:53.812Z",
    }
    return json.dumps({"eventName": "OrderIssuedByBuyer", "orderEvent": event}).encode()


def test_a_500_line_order_event_fits_the_default_limit(
    tmp_path: Path, receiver: InThreadReceiver
) -> None:
    body = order_event_with_lines(500)
    assert len(body) > 1_100_000

    answer = requests.post(receiver.webhook_url, data=body, headers=auth_headers(), timeout=30)

    assert answer.status_code == 200
    assert [e.body for e in stored(tmp_path)] == [body]


def test_the_command_line_default_limit_leaves_room_above_the_largest_order() -> None:
    args = build_parser().parse_args(["--spool-dir", "x"])
    assert args.max_body_bytes >= 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("url_suffix", "order_id"),
    [
        ("/3fa85f64-PO%23123", "3fa85f64-PO#123"),
        ("?orderId=3fa85f64-PO%23123", "3fa85f64-PO#123"),
        ("/caf%C3%A9+%2F%26%3F", "café+/&?"),
    ],
)
def test_get_notifications_store_ids_with_any_non_space_character(
    tmp_path: Path, receiver: InThreadReceiver, url_suffix: str, order_id: str
) -> None:
    answer = requests.get(receiver.webhook_url + url_suffix, headers=auth_headers(), timeout=10)

    assert answer.status_code == 200
    assert [e.meta.order_id for e in stored(tmp_path)] == [order_id]


@pytest.mark.parametrize(
    "document",
    [
        {
            "eventName": "ShipmentIssuedBySupplier",
            "shipment": {"id": "shipment-1", "lines": []},
            "meta": {"messageId": "s-1"},
        },
        {"eventName": "InvoiceIssued", "invoiceEvent": {"id": "i-1"}},
        {"eventName": "SomethingNew"},
        {"orderEvent": "not an object"},
    ],
)
def test_any_json_object_is_stored_as_an_event(
    tmp_path: Path, receiver: InThreadReceiver, document: dict
) -> None:
    body = json.dumps(document).encode()

    answer = requests.post(receiver.webhook_url, data=body, headers=auth_headers(), timeout=10)

    assert answer.status_code == 200
    assert [e.body for e in stored(tmp_path)] == [body]
    assert list(spool.iter_quarantine(tmp_path, "r1")) == []


@pytest.mark.parametrize("content_type", ["application/xml", "text/xml; charset=utf-8"])
def test_a_txml_body_is_stored(
    tmp_path: Path, receiver: InThreadReceiver, content_type: str
) -> None:
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n<tXML><Order id="PO#1"/></tXML>'
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}

    answer = requests.post(receiver.webhook_url, data=body, headers=headers, timeout=10)

    assert answer.status_code == 200
    [event] = stored(tmp_path)
    assert (event.body, event.meta.content_type) == (body, content_type)


def test_a_body_declared_xml_that_is_not_is_quarantined(
    tmp_path: Path, receiver: InThreadReceiver
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"}

    answer = requests.post(receiver.webhook_url, data=b"hello", headers=headers, timeout=10)

    assert answer.status_code == 400
    assert stored(tmp_path) == []
    assert [q.body for q in spool.iter_quarantine(tmp_path, "r1")] == [b"hello"]


def test_the_health_check_tells_anonymous_callers_only_its_status(
    tmp_path: Path, receiver: InThreadReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    healthy = requests.get(receiver.url + "/healthz", timeout=TIMEOUT)
    receiver.writer.min_free_bytes = 2**62
    with caplog.at_level(logging.WARNING):
        sick = requests.get(receiver.url + "/healthz", timeout=TIMEOUT)

    assert (healthy.status_code, healthy.json()) == (200, {"status": "ok"})
    assert (sick.status_code, sick.json()) == (503, {"status": "unavailable"})
    assert str(tmp_path) not in healthy.text + sick.text
    assert "below the guard" in caplog.text  # the details are in the log


def test_a_second_writer_on_a_recreated_folder_gets_503_not_an_overwrite(
    tmp_path: Path, receiver: InThreadReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    first = b'{"orderEvent": {"orderId": "first"}}'
    assert requests.post(receiver.webhook_url, data=first, headers=auth_headers(), timeout=10).ok
    shutil.rmtree(tmp_path / "r1")
    with SpoolWriter(tmp_path, "r1", min_free_bytes=0, min_free_inodes=0) as second:
        second.write_event(b'{"n":1}', spool_meta())
        second.write_event(b'{"n":2}', spool_meta())
        with caplog.at_level(logging.ERROR):
            answer = requests.post(
                receiver.webhook_url, data=first, headers=auth_headers(), timeout=10
            )

    assert answer.status_code == 503
    assert [e.body for e in stored(tmp_path)] == [b'{"n":1}', b'{"n":2}']
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "was deleted under this running receiver" in error.getMessage()


def spool_meta() -> spool.EventMeta:
    return spool.EventMeta(received_at="2026-01-01T00:00:00.000Z", method="POST", path="/")


def test_a_content_type_with_bytes_that_are_not_utf8_is_stored_readably(
    tmp_path: Path, receiver: InThreadReceiver
) -> None:
    """aiohttp hands such header bytes over as lone surrogates, which JSON cannot carry."""
    body = b'{"eventName":"OrderIssuedByBuyer"}'
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": b"application/json; x=\xff"}

    answer = requests.post(receiver.webhook_url, data=body, headers=headers, timeout=10)

    assert answer.status_code == 200
    [event] = stored(tmp_path)
    assert event.damage is None
    assert (event.body, event.meta.content_type) == (body, "application/json; x=\\xff")
