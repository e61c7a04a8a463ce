"""The webhook_events stream read through a real ``TapTradecloud(...).sync_all()``."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
from contextlib import redirect_stdout
from typing import TYPE_CHECKING

import requests_mock

from tap_tradecloud import spool
from tap_tradecloud.spool import EventMeta, SpoolWriter
from tap_tradecloud.tap import TapTradecloud
from tap_tradecloud.webhook_events import WebhookEventsStream
from tests.webhook_helpers import API_URL, bookmarks, config, event_body, sync

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

OLD = "2026-01-01T00:00:00.000Z"


def post_meta(received_at: str = OLD, method: str = "POST") -> EventMeta:
    return EventMeta(received_at, method, "/webhooks/tradecloud", "application/json")


def get_meta(order_id: str, received_at: str = OLD) -> EventMeta:
    return EventMeta(received_at, "GET", f"/webhooks/tradecloud/{order_id}", order_id=order_id)


def spool_events(spool_dir: Path, instance: str, events: list[tuple[bytes, EventMeta]]) -> None:
    """One segment per event, stored (its file's time) when the event was received."""
    with SpoolWriter(spool_dir, instance, min_free_bytes=0) as writer:
        for body, meta in events:
            sequence = writer.write_event(body, meta)
            stored_at = spool.parse_utc_ms(meta.received_at).timestamp()
            segment = spool_dir / instance / "events" / spool.event_file_name(sequence)
            os.utime(segment, (stored_at, stored_at))


def test_records_and_per_partition_state(tmp_path: Path) -> None:
    top_level_meta = json.dumps(
        {
            "eventName": "OrderIssuedByBuyer",
            "meta": {"messageId": "msg-top"},
            "orderEvent": {
                "orderId": "ord-1",
                "lastUpdatedAt": "2025-04-23T12:01:53.8+02:00",
                "lines": [{"price": 1234.56}],
            },
        }
    ).encode()
    nested_meta = event_body("singleDeliveryOrderEvent", order_id="ord-2", message_id="msg-in")
    no_meta = event_body("orderDocumentsEvent", order_id="ord-3", event_name="NewNameFrom2030")
    spool_events(
        tmp_path,
        "r1",
        [
            (top_level_meta, post_meta()),
            (nested_meta, post_meta(method="PUT")),
            (no_meta, post_meta()),
        ],
    )
    spool_events(tmp_path, "r2", [(b"", get_meta("ord-4"))])

    records, states, stdout = sync(config(tmp_path))

    assert records == [
        {
            "event_id": "msg-top",
            "spool_sequence": 1,
            "receiver_instance": "r1",
            "received_at": OLD,
            "http_method": "POST",
            "event_type": "orderEvent",
            "event_name": "OrderIssuedByBuyer",
            "order_id": "ord-1",
            "shipment_id": None,
            "last_updated_at": "2025-04-23T10:01:53.800Z",
            "event": json.loads(top_level_meta),
            "body_text": None,
            "order": None,
        },
        {
            "event_id": "msg-in",
            "spool_sequence": 2,
            "receiver_instance": "r1",
            "received_at": OLD,
            "http_method": "PUT",
            "event_type": "singleDeliveryOrderEvent",
            "event_name": "OrderLinesAcceptedBySupplier",
            "order_id": "ord-2",
            "shipment_id": None,
            "last_updated_at": "2025-04-23T10:01:53.812Z",
            "event": json.loads(nested_meta),
            "body_text": None,
            "order": None,
        },
        {
            "event_id": hashlib.sha256(no_meta).hexdigest(),
            "spool_sequence": 3,
            "receiver_instance": "r1",
            "received_at": OLD,
            "http_method": "POST",
            "event_type": "orderDocumentsEvent",
            "event_name": "NewNameFrom2030",
            "order_id": "ord-3",
            "shipment_id": None,
            "last_updated_at": "2025-04-23T10:01:53.812Z",
            "event": json.loads(no_meta),
            "body_text": None,
            "order": None,
        },
        {
            "event_id": hashlib.sha256(b'{"orderId":"ord-4"}').hexdigest(),
            "spool_sequence": 1,
            "receiver_instance": "r2",
            "received_at": OLD,
            "http_method": "GET",
            "event_type": "notification",
            "event_name": None,
            "order_id": "ord-4",
            "shipment_id": None,
            "last_updated_at": None,
            "event": {"orderId": "ord-4"},
            "body_text": None,
            "order": None,
        },
    ]
    # The number is passed through exactly (a clean body goes out as stored, spaces and all).
    assert re.search(r'"price":\s*1234\.56[,}]', stdout)
    assert bookmarks(states[-1]) == {"r1": 3, "r2": 1}


def test_the_next_run_reads_only_what_arrived_after_the_bookmark(tmp_path: Path) -> None:
    spool_events(tmp_path, "r1", [(event_body(message_id=f"m{i}"), post_meta()) for i in range(3)])
    _, states, _ = sync(config(tmp_path))

    assert sync(config(tmp_path), states[-1])[0] == []

    spool_events(tmp_path, "r1", [(event_body(message_id="m3"), post_meta())])
    spool_events(tmp_path, "r9", [(event_body(message_id="m4"), post_meta())])
    records, states, _ = sync(config(tmp_path), states[-1])

    assert [(r["receiver_instance"], r["event_id"]) for r in records] == [
        ("r1", "m3"),
        ("r9", "m4"),
    ]
    assert bookmarks(states[-1]) == {"r1": 4, "r9": 1}


def test_a_redelivered_body_has_one_event_id(tmp_path: Path) -> None:
    body = event_body(message_id=None)
    spool_events(tmp_path, "r1", [(body, post_meta()), (body, post_meta())])
    spool_events(tmp_path, "r2", [(b"", get_meta("ord-1")), (b"", get_meta("ord-1"))])

    records, _, _ = sync(config(tmp_path))

    assert [r["spool_sequence"] for r in records] == [1, 2, 1, 2]
    assert len({r["event_id"] for r in records[:2]}) == 1
    assert len({r["event_id"] for r in records[2:]}) == 1


def test_interim_states_never_pass_an_unemitted_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WebhookEventsStream, "STATE_MSG_FREQUENCY", 2)
    spool_events(tmp_path, "a", [(event_body(message_id=f"a{i}"), post_meta()) for i in range(5)])
    spool_events(tmp_path, "b", [(event_body(message_id=f"b{i}"), post_meta()) for i in range(4)])
    tap = TapTradecloud(config=config(tmp_path))
    tap.streams["orders"].selected = False
    tap.streams["shipments"].selected = False
    tap.streams["order_lines"].selected = False
    out = io.StringIO()
    with redirect_stdout(out):
        tap.sync_all()

    emitted: dict[str, set[int]] = {"a": set(), "b": set()}
    interim_states = 0
    for message in map(json.loads, out.getvalue().splitlines()):
        if message["type"] == "RECORD":
            record = message["record"]
            emitted[record["receiver_instance"]].add(record["spool_sequence"])
        elif message["type"] == "STATE" and "webhook_events" in message["value"]["bookmarks"]:
            interim_states += 1
            # A run interrupted here resumes after these bookmarks: all below must be out.
            for instance, bookmark in bookmarks(message["value"]).items():
                assert set(range(1, bookmark + 1)) <= emitted[instance]
    assert interim_states >= 4
    assert emitted == {"a": {1, 2, 3, 4, 5}, "b": {1, 2, 3, 4}}


def test_an_interrupted_run_resumes_without_a_skip(tmp_path: Path) -> None:
    spool_events(tmp_path, "r1", [(event_body(message_id=f"m{i}"), post_meta()) for i in range(6)])
    # The state a target committed after the 4th record of an interrupted run:
    committed = {
        "bookmarks": {
            "webhook_events": {
                "partitions": [
                    {
                        "context": {"receiver_instance": "r1"},
                        "replication_key": "spool_sequence",
                        "replication_key_value": 4,
                    }
                ]
            }
        }
    }

    records, states, _ = sync(config(tmp_path), committed)

    assert [r["event_id"] for r in records] == ["m4", "m5"]
    assert bookmarks(states[-1]) == {"r1": 6}


def test_a_start_date_does_not_hide_spooled_events(tmp_path: Path) -> None:
    spool_events(tmp_path, "r1", [(event_body(message_id="m0"), post_meta())])

    records, _, _ = sync(config(tmp_path, start_date="2099-01-01T00:00:00Z"))

    assert [r["event_id"] for r in records] == ["m0"]


def test_get_notifications_are_enriched_with_the_order(tmp_path: Path) -> None:
    spool_events(tmp_path, "r1", [(b"", get_meta("ord-1")), (b"", get_meta("gone"))])
    spool_events(tmp_path, "r1", [(event_body(order_id="ord-2"), post_meta())])
    order = {"id": "ord-1", "lines": [{"id": "l1"}], "lastUpdatedAt": "2025-04-23T10:01:53.812Z"}

    with requests_mock.Mocker() as api:
        api.get(f"{API_URL}/order/ord-1", json=order)
        api.get(f"{API_URL}/order/gone", status_code=404, text="Not found")
        records, _, _ = sync(config(tmp_path, fetch_orders_for_notifications=True))

    assert [r["order"] for r in records] == [order, None, None]
    assert [(h.method, h.path) for h in api.request_history] == [
        ("GET", "/v2/order/ord-1"),
        ("GET", "/v2/order/gone"),
    ]
    basic = base64.b64encode(b"integration@example.com:tap-password").decode()
    assert api.request_history[0].headers["Authorization"] == f"Basic {basic}"


def test_enrichment_can_be_turned_off(tmp_path: Path) -> None:
    spool_events(tmp_path, "r1", [(b"", get_meta("ord-1"))])

    with requests_mock.Mocker() as api:
        records, _, _ = sync(config(tmp_path, fetch_orders_for_notifications=False))

    assert [r["order"] for r in records] == [None]
    assert api.request_history == []


def test_pruning_removes_only_loaded_events_older_than_retention(tmp_path: Path) -> None:
    young = spool.utc_now_ms()
    received = [OLD, OLD, young, OLD, OLD, OLD]  # sequences 1..6
    spool_events(
        tmp_path,
        "r1",
        [(event_body(message_id=f"m{i}"), post_meta(r)) for i, r in enumerate(received)],
    )
    started_with = {
        "bookmarks": {
            "webhook_events": {
                "partitions": [
                    {
                        "context": {"receiver_instance": "r1"},
                        "replication_key": "spool_sequence",
                        "replication_key_value": 4,
                    }
                ]
            }
        }
    }

    records, states, _ = sync(config(tmp_path, spool_retention_hours=1), started_with)

    assert [r["spool_sequence"] for r in records] == [5, 6]
    left = [e.sequence for e in spool.iter_events(tmp_path, "r1")]
    assert left == [3, 5, 6]  # 3 is too young; 5 and 6 were not loaded when the run started
    assert bookmarks(states[-1]) == {"r1": 6}


def test_retention_zero_never_prunes(tmp_path: Path) -> None:
    spool_events(tmp_path, "r1", [(event_body(message_id=f"m{i}"), post_meta()) for i in range(3)])
    _, states, _ = sync(config(tmp_path, spool_retention_hours=0))

    sync(config(tmp_path, spool_retention_hours=0), states[-1])

    assert [e.sequence for e in spool.iter_events(tmp_path, "r1")] == [1, 2, 3]


def test_no_spool_dir_means_no_webhook_stream(tmp_path: Path) -> None:
    settings = config(tmp_path)
    del settings["spool_dir"]

    assert "webhook_events" not in TapTradecloud(config=settings).streams


def test_an_empty_or_missing_spool_gives_no_records_and_no_error(tmp_path: Path) -> None:
    records, states, _ = sync(config(tmp_path / "not-created-yet"))

    assert records == []
    assert "partitions" not in states[-1]["bookmarks"].get("webhook_events", {})


def test_an_unreadable_last_updated_at_becomes_null_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_events(tmp_path, "r1", [(event_body(last_updated_at="yesterday"), post_meta())])

    with caplog.at_level(logging.WARNING):
        records, _, _ = sync(config(tmp_path))

    assert records[0]["last_updated_at"] is None
    assert records[0]["event"]["orderEvent"]["lastUpdatedAt"] == "yesterday"
    assert "unreadable lastUpdatedAt 'yesterday'" in caplog.text


def test_a_json_object_without_a_known_payload_is_an_event_of_kind_unknown(
    tmp_path: Path,
) -> None:
    spool_events(tmp_path, "r1", [(b'{"not": "an event"}', post_meta())])

    records, _, _ = sync(config(tmp_path))

    assert [(r["event_type"], r["event"]) for r in records] == [("unknown", {"not": "an event"})]


def test_a_partition_ending_below_its_bookmark_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Same identity, fewer events than the bookmark (truncated by hand): say so, emit nothing."""
    spool_events(tmp_path, "r1", [(event_body(message_id=f"m{i}"), post_meta()) for i in range(3)])
    _, states, _ = sync(config(tmp_path))
    state = json.loads(
        json.dumps(states[-1]).replace('"replication_key_value": 3', '"replication_key_value": 9')
    )
    assert bookmarks(state) == {"r1": 9}

    with caplog.at_level(logging.WARNING):
        records, _, _ = sync(config(tmp_path), state)

    assert records == []
    assert "Spool partition r1 ends at sequence 3, below its bookmark 9" in caplog.text


def test_a_partition_with_events_to_emit_is_listed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its end is only looked up when nothing lies above the bookmark (a listing per lookup)."""
    spool_events(tmp_path, "r1", [(event_body(message_id=f"m{i}"), post_meta()) for i in range(3)])
    lookups: list[str] = []
    highest = spool.highest_sequence
    monkeypatch.setattr(
        spool,
        "highest_sequence",
        lambda where, name: (lookups.append(name), highest(where, name))[1],
    )

    records, states, _ = sync(config(tmp_path))
    assert len(records) == 3
    assert lookups == []

    assert sync(config(tmp_path), states[-1])[0] == []
    assert lookups == ["r1"]
