"""Every stored event comes out as a record valid against the schema and loadable by PostgreSQL.

Events are written into the spool exactly as the receiver stores them; the stream then runs
through ``TapTradecloud(...).sync_all()``.
"""

from __future__ import annotations

import json
import logging
import shutil
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest

from tap_tradecloud import schemas, spool
from tap_tradecloud.spool import EventMeta, SpoolWriter
from tap_tradecloud.webhook_events import WebhookEventsStream
from tests.webhook_helpers import bookmarks, config, event_body, sync

if TYPE_CHECKING:
    from pathlib import Path

RECEIVED = "2026-01-01T00:00:00.000Z"
SCHEMA = json.loads(resources.files(schemas).joinpath("webhook_event.json").read_text())


def meta(content_type: str = "application/json", method: str = "POST") -> EventMeta:
    return EventMeta(RECEIVED, method, "/webhooks/tradecloud", content_type)


def spool_bodies(spool_dir: Path, *bodies: bytes, content_type: str = "application/json") -> None:
    with SpoolWriter(spool_dir, "r1", min_free_bytes=0, min_free_inodes=0) as writer:
        for body in bodies:
            writer.write_event(body, meta(content_type))


def emitted(stdout: str) -> list[dict[str, Any]]:
    """The records as a target reads them: strict JSON in UTF-8, valid against the schema."""
    stdout.encode("utf-8")  # a lone surrogate raises here, as it does in the SDK's writer
    records = [
        json.loads(line, parse_constant=pytest.fail)["record"]
        for line in stdout.splitlines()
        if '"type":"RECORD"' in line.replace(" ", "")
    ]
    for record in records:
        jsonschema.validate(record, SCHEMA)
    return records


def no_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all(no_nul(k) and no_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return all(no_nul(item) for item in value)
    return True


def test_a_shipment_event_comes_out_with_its_kind_and_shipment_id(tmp_path: Path) -> None:
    body = json.dumps(
        {
            "eventName": "ShipmentIssuedBySupplier",
            "shipment": {"id": "shp-1", "lastUpdatedAt": "2026-01-01T10:00:00.000Z"},
            "meta": {"messageId": "s-1"},
        }
    ).encode()
    spool_bodies(tmp_path, body)

    _, _, stdout = sync(config(tmp_path))

    [record] = emitted(stdout)
    assert record["event_type"] == "shipment"
    assert (record["shipment_id"], record["order_id"], record["event_id"]) == ("shp-1", None, "s-1")
    assert record["last_updated_at"] == "2026-01-01T10:00:00.000Z"


def test_a_txml_body_comes_out_as_text(tmp_path: Path) -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><tXML><Name>Müller</Name></tXML>'
    spool_bodies(tmp_path, body.encode("latin-1"), content_type="application/xml")

    _, _, stdout = sync(config(tmp_path))

    [record] = emitted(stdout)
    assert (record["event_type"], record["event"], record["body_text"]) == ("tXML", None, body)


def test_a_lone_surrogate_is_emitted_as_the_replacement_character(tmp_path: Path) -> None:
    spool_bodies(tmp_path, b'{"orderEvent": {"orderId": "o-1", "note": "a\\ud800b"}}')

    _, _, stdout = sync(config(tmp_path))

    [record] = emitted(stdout)
    assert record["event"]["orderEvent"]["note"] == "a\ufffdb"


def test_an_unreadable_timestamp_is_null_with_a_warning_and_the_raw_value_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = "9999-12-31T23:59:59.999-23:59"
    spool_bodies(tmp_path, event_body(last_updated_at=raw))

    with caplog.at_level(logging.WARNING):
        _, _, stdout = sync(config(tmp_path))

    [record] = emitted(stdout)
    assert record["last_updated_at"] is None
    assert record["event"]["orderEvent"]["lastUpdatedAt"] == raw
    assert f"unreadable lastUpdatedAt {raw!r}" in caplog.text


@pytest.mark.parametrize(
    ("order_id", "expected"),
    [({"nested": 1}, None), (["a"], None), (12345, "12345"), (True, None)],
)
def test_an_order_id_that_is_no_string_gives_a_schema_valid_record(
    tmp_path: Path, order_id: object, expected: str | None
) -> None:
    spool_bodies(tmp_path, json.dumps({"orderEvent": {"orderId": order_id}}).encode())

    _, _, stdout = sync(config(tmp_path))

    [record] = emitted(stdout)
    assert record["order_id"] == expected
    assert record["event"]["orderEvent"]["orderId"] == order_id


def test_nul_characters_are_removed_from_values_and_keys(tmp_path: Path) -> None:
    spool_bodies(
        tmp_path,
        b'{"eventName": "X\\u0000", "orderEvent": {"orderId": "o\\u00001", "k\\u0000": "v"}}',
    )

    _, _, stdout = sync(config(tmp_path))

    [record] = emitted(stdout)
    assert no_nul(record)
    assert (record["event_name"], record["order_id"]) == ("X", "o1")
    assert record["event"]["orderEvent"]["k"] == "v"


def test_bodies_that_are_no_json_object_come_out_as_text(tmp_path: Path) -> None:
    deep = b'{"a": ' * 300 + b"1" + b"}" * 300
    spool_bodies(tmp_path, b"[1, 2]", deep, b'{"n": NaN, "x": 1e999999}', b"\xff{")

    _, _, stdout = sync(config(tmp_path))

    records = emitted(stdout)
    assert [r["event_type"] for r in records] == ["unparsed", "unparsed", "unknown", "unparsed"]
    assert records[0]["body_text"] == "[1, 2]"
    assert records[2]["event"] == {"n": None, "x": "1E+999999"}
    assert records[3]["body_text"] == "\ufffd{"


def test_an_event_that_cannot_be_emitted_is_set_aside_and_the_bookmark_passes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool_bodies(tmp_path, event_body(message_id="m1"), event_body(message_id="m2"))
    (tmp_path / "r1" / "events" / spool.event_file_name(2)).write_bytes(b"no metadata line")
    spool_bodies(tmp_path, event_body(message_id="m3"))

    with caplog.at_level(logging.WARNING):
        _, states, stdout = sync(config(tmp_path))

    records = emitted(stdout)
    assert [(r["spool_sequence"], r["event_type"]) for r in records] == [
        (1, "orderEvent"),
        (2, "set_aside"),
        (3, "orderEvent"),
    ]
    assert bookmarks(states[-1]) == {"r1": 3}
    copy = tmp_path / "r1" / "set-aside" / spool.event_file_name(2)
    assert copy.read_bytes().endswith(b"no metadata line")
    assert "Spool event 2 of r1 cannot be emitted" in caplog.text
    assert str(copy) in caplog.text
    assert sync(config(tmp_path), states[-1])[0] == []


def test_a_recreated_partition_is_read_from_the_start_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_bodies(tmp_path, *[event_body(message_id=f"old-{i}") for i in range(5)])
    _, states, _ = sync(config(tmp_path))
    shutil.rmtree(tmp_path / "r1")  # a new disk, the same instance id
    spool_bodies(tmp_path, *[event_body(message_id=f"new-{i}") for i in range(3)])

    with caplog.at_level(logging.WARNING):
        records, new_states, _ = sync(config(tmp_path), states[-1])

    assert [r["event_id"] for r in records] == ["new-0", "new-1", "new-2"]
    assert "was recreated" in caplog.text
    assert "reading it from the start" in caplog.text
    assert bookmarks(new_states[-1]) == {"r1": 3}
    assert sync(config(tmp_path), new_states[-1])[0] == []


def test_a_bookmark_from_before_partition_identities_is_taken_as_the_current_one(
    tmp_path: Path,
) -> None:
    spool_bodies(tmp_path, *[event_body(message_id=f"m{i}") for i in range(4)])
    old_state = {
        "bookmarks": {
            "webhook_events": {
                "partitions": [
                    {
                        "context": {"receiver_instance": "r1"},
                        "replication_key": "spool_sequence",
                        "replication_key_value": 3,
                    }
                ]
            }
        }
    }

    records, states, _ = sync(config(tmp_path), old_state)

    assert [r["event_id"] for r in records] == ["m3"]
    [partition] = states[-1]["bookmarks"]["webhook_events"]["partitions"]
    assert partition["spool_partition_identity"] == spool.partition_identity(tmp_path, "r1")


def test_state_is_emitted_at_least_every_few_hundred_events() -> None:
    assert WebhookEventsStream.STATE_MSG_FREQUENCY <= 200
