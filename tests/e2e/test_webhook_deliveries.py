"""End to end: awkward but genuine deliveries go through the receiver and `meltano run
tap-tradecloud target-postgres`: every stored event lands as one row, and the next run loads 0.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import pytest
import requests

from tap_tradecloud import spool
from tap_tradecloud.sandbox import SandboxConfig, SandboxServer, free_port
from tests.e2e.pipeline import (
    WEBHOOK_TOKEN,
    MeltanoProject,
    Receiver,
    Warehouse,
    running,
)
from tests.e2e.test_pipeline import mark_all_rows_old, rows_loaded_since_mark

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
JSON = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
XML = {**JSON, "Content-Type": "application/xml"}
TXML = '<?xml version="1.0" encoding="UTF-8"?><tXML><Order id="PO#9"/></tXML>'


@pytest.fixture
def warehouse() -> Iterator[Warehouse]:
    wh = Warehouse(schema=f"e2e_{uuid.uuid4().hex[:10]}")
    yield wh
    wh.drop()


def order_event(message_id: str, **fields: object) -> dict:
    event = {"orderId": f"order-{message_id}", "lastUpdatedAt": "2026-01-01T10:00:00.000Z"}
    event.update(fields)
    return {
        "eventName": "OrderLinesUpdatedByBuyer",
        "orderEvent": event,
        "meta": {"messageId": message_id},
    }


def big_order_event() -> bytes:
    line = {"buyerLine": {"description": "Hex bolt M12 x 80 DIN 933 A4-80 " * 70}}
    body = json.dumps(order_event("big", lines=[{**line, "id": f"l{n}"} for n in range(500)]))
    assert len(body) > 1_100_000
    return body.encode()


def deliveries() -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(name, method + url suffix, body, headers) of rows 1-4 and 6-9 of issue 9."""
    shipment = {
        "eventName": "ShipmentIssuedBySupplier",
        "shipment": {"id": "shp-1"},
        "meta": {"messageId": "shp"},
    }
    return [
        ("large", "POST", big_order_event(), JSON),
        ("hash id", "GET /3fa85f64-PO%23123", b"", JSON),
        ("shipment", "POST", json.dumps(shipment).encode(), JSON),
        ("txml", "POST", TXML.encode(), XML),
        ("surrogate", "POST", json.dumps(order_event("sur", note="a\ud800b")).encode(), JSON),
        (
            "timestamp",
            "POST",
            json.dumps(order_event("ts", lastUpdatedAt="9999-12-31T23:59:59.999-23:59")).encode(),
            JSON,
        ),
        ("object id", "POST", json.dumps(order_event("obj", orderId={"id": 1})).encode(), JSON),
        ("nul", "POST", json.dumps(order_event("nul", note="a\x00b")).encode(), JSON),
    ]


def test_every_genuine_delivery_lands_as_one_row_and_the_next_run_loads_none(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    spool_dir = tmp_path / "spool"
    receiver = Receiver(spool_dir=spool_dir, port=free_port())
    with running(receiver), SandboxServer(SandboxConfig(seed=5, order_count=3)) as sb:
        for name, target, body, headers in deliveries():
            method, _, suffix = target.partition(" ")
            answer = requests.request(
                method, receiver.url + suffix, data=body, headers=headers, timeout=60
            )
            assert answer.status_code == 200, (name, answer.text)
        deep = b'{"a": ' * 1000 + b"1" + b"}" * 1000
        refused = requests.post(receiver.url, data=deep, headers=JSON, timeout=60)
        assert refused.status_code == 400  # not a Tradecloud body: kept in quarantine
        assert len(list(spool.iter_quarantine(spool_dir, "e2e-receiver"))) == 1

        project = MeltanoProject(tmp_path, sb.api_url, spool_dir, warehouse.schema)
        project.run_pipeline()
        rows = warehouse.query(
            "select spool_sequence, event_type, order_id, shipment_id, last_updated_at, "
            'event::text, body_text from "{schema}".webhook_events order by spool_sequence'
        )
        assert [row[:4] for row in rows] == [
            (1, "orderEvent", "order-big", None),
            (2, "notification", "3fa85f64-PO#123", None),
            (3, "shipment", None, "shp-1"),
            (4, "tXML", None, None),
            (5, "orderEvent", "order-sur", None),
            (6, "orderEvent", "order-ts", None),
            (7, "orderEvent", None, None),
            (8, "orderEvent", "order-nul", None),
        ]
        assert rows[3][6] == TXML
        assert "a\ufffdb" in rows[4][5]
        assert rows[5][4] is None
        assert "9999-12-31T23:59:59.999-23:59" in rows[5][5]
        assert '"ab"' in rows[7][5]

        mark_all_rows_old(warehouse, "webhook_events")
        project.run_pipeline()
        assert rows_loaded_since_mark(warehouse, "webhook_events", "event_id") == []
