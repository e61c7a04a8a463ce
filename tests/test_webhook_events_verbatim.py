"""Clean bodies go out as stored (``msgspec.Raw``): the same records as the repairing path.

The fast path embeds the stored bytes in the RECORD line after ``verbatim.clean_document``
proved that no repair of ``event_records`` applies. These tests hold it to the repairing path's
output (compared after parsing) and check that every body needing a repair is refused by it.
"""

from __future__ import annotations

import decimal
import json
from typing import TYPE_CHECKING, Any

import pytest

from tap_tradecloud import verbatim
from tap_tradecloud.spool import EventMeta, SpoolWriter
from tests.webhook_helpers import config, sync

if TYPE_CHECKING:
    from pathlib import Path

RECEIVED = "2026-01-01T00:00:00.000Z"

CLEAN_BODIES = [
    # compact, as Tradecloud sends it
    b'{"eventName":"OrderLinesConfirmedBySupplier","meta":{"messageId":"m-1"},'
    b'"orderEvent":{"orderId":"o-1","lastUpdatedAt":"2026-01-01T10:00:00.000Z",'
    b'"lines":[{"position":"0001","quantity":10,"price":{"value":12.50,"exp":1.5E+3}}]}}',
    # spaces and line breaks between tokens, non-ASCII text, an escaped quote and a paired
    # surrogate written as UTF-8, numbers at the edges of what is kept as it is
    b'{\n  "eventName": "OrderIssuedByBuyer",\r\n  "orderEvent": {\n    "orderId": "o-\xc3\xa9",\n'
    b'    "note": "say \\"hi\\" \xf0\x9f\x98\x80", "big": 123456789012345678901234567890,\n'
    b'    "small": -0.000000000000000000001, "e": 1e300, "t": true, "n": null\n  }\n}',
    # a shipment, an id that is a number, no lastUpdatedAt
    b'{"eventName":"ShipmentIssued","shipment":{"id":42,"meta":{"messageId":"s-1"}}}',
    # a kind still to come, and duplicate keys (the last one counts, as in every parser)
    b'{"eventName":"X","futureEvent":{"orderId":"o-9","k":1,"k":2}}',
    b'{"orderEvent":{"orderId":"o-10","lastUpdatedAt":"yesterday"}}',
]

NEEDS_REPAIR = {
    "NaN": b'{"orderEvent":{"x":NaN}}',
    "Infinity": b'{"orderEvent":{"x":-Infinity}}',
    "huge exponent": b'{"orderEvent":{"x":1e99999}}',
    "tiny exponent": b'{"orderEvent":{"x":1e-99999}}',
    "long fraction": b'{"orderEvent":{"x":0.' + b"0" * 17000 + b"1}}",
    "NUL escape": b'{"orderEvent":{"x":"a\\u0000b"}}',
    "lone surrogate": b'{"orderEvent":{"x":"a\\ud800b"}}',
    "surrogate in a key": b'{"orderEvent":{"\\udc00":1}}',
    "invalid UTF-8": b'{"orderEvent":{"x":"\xff"}}',
    "BOM": b'\xef\xbb\xbf{"orderEvent":{}}',
    "array": b"[1, 2]",
    "too deep": b'{"a": ' * 200 + b"1" + b"}" * 200,
    "integer json cannot read": b'{"orderEvent":{"x":' + b"9" * 5000 + b"}}",
    "not JSON": b"<order/>",
}


def spool_bodies(spool_dir: Path, bodies: list[bytes]) -> None:
    meta = EventMeta(RECEIVED, "POST", "/webhooks/tradecloud", "application/json")
    with SpoolWriter(spool_dir, "r1", min_free_bytes=0, min_free_inodes=0) as writer:
        for body in bodies:
            writer.write_event(body, meta)


def parsed_records(stdout: str) -> list[dict[str, Any]]:
    """The records as a target reads them: one JSON document per line, numbers exact."""
    return [
        message["record"]
        for line in stdout.splitlines()
        if (message := json.loads(line, parse_float=decimal.Decimal))["type"] == "RECORD"
    ]


def test_clean_bodies_come_out_as_stored_and_as_the_repairing_path_emits_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool_bodies(tmp_path, CLEAN_BODIES)

    _, _, fast = sync(config(tmp_path))
    with monkeypatch.context() as patch:
        patch.setattr(verbatim, "clean_document", lambda body: None)
        _, _, repaired = sync(config(tmp_path))

    assert parsed_records(fast) == parsed_records(repaired)
    assert len(parsed_records(fast)) == len(CLEAN_BODIES)
    lines = [line for line in fast.splitlines() if '"type":"RECORD"' in line]
    assert f'"event":{CLEAN_BODIES[0].decode()}' in lines[0]  # embedded byte for byte
    assert '"event":{   "eventName": "OrderIssuedByBuyer",' in lines[1]  # breaks became spaces
    assert fast != repaired


@pytest.mark.parametrize("body", NEEDS_REPAIR.values(), ids=NEEDS_REPAIR.keys())
def test_a_body_that_may_need_a_repair_is_not_embedded(body: bytes) -> None:
    assert verbatim.clean_document(body) is None


@pytest.mark.parametrize("body", CLEAN_BODIES)
def test_a_clean_body_is_embedded_and_decoded_as_json_reads_it(body: bytes) -> None:
    clean = verbatim.clean_document(body)

    assert clean is not None
    document, stored = clean
    assert document == json.loads(body, parse_float=decimal.Decimal)
    assert bytes(stored) == body.translate(bytes.maketrans(b"\r\n", b"  "))


def test_a_stream_map_gets_the_body_as_an_object(tmp_path: Path) -> None:
    spool_bodies(tmp_path, CLEAN_BODIES[:1])
    position = "record['event']['orderEvent']['lines'][0]['position']"
    maps = {"webhook_events": {"body_text": None, "first_position": position}}

    records, _, _ = sync(config(tmp_path, stream_maps=maps))

    [record] = records
    assert "body_text" not in record
    assert record["first_position"] == "0001"
    assert record["event"] == json.loads(CLEAN_BODIES[0])
