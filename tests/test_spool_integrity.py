"""Spool promises: create-only event files, a partition identity, a reader that follows files."""

from __future__ import annotations

import shutil
import signal
import threading
from typing import TYPE_CHECKING

import pytest

from tap_tradecloud import spool
from tap_tradecloud.spool import EventMeta, SpoolConflictError, SpoolWriter
from tap_tradecloud.spool.records import decode_records, encode_segment

if TYPE_CHECKING:
    from pathlib import Path

META = EventMeta(received_at="2026-01-02T03:04:05.678Z", method="POST", path="/webhooks/tradecloud")


def new_writer(spool_dir: Path, instance: str = "r1") -> SpoolWriter:
    return SpoolWriter(spool_dir, instance, min_free_bytes=0, min_free_inodes=0)


def open_writer(spool_dir: Path, instance: str = "r1") -> SpoolWriter:
    writer = new_writer(spool_dir, instance)
    writer.open()
    return writer


def test_an_existing_event_file_is_never_replaced(tmp_path: Path) -> None:
    first = open_writer(tmp_path)
    try:
        assert [first.write_event(b'{"n":1}', META) for _ in range(3)] == [1, 2, 3]
        shutil.rmtree(tmp_path / "r1")  # the folder deleted under the running receiver
        second = open_writer(tmp_path)  # a second receiver with the same id recreates it
        try:
            bodies = [f'{{"second":{n}}}'.encode() for n in range(1, 6)]
            assert [second.write_event(body, META) for body in bodies] == [1, 2, 3, 4, 5]
            with pytest.raises(SpoolConflictError, match=r"deleted under this running receiver"):
                first.write_event(b'{"first":4}', META)
        finally:
            second.close()
    finally:
        first.close()
    assert [e.body for e in spool.iter_events(tmp_path, "r1")] == bodies
    assert list((tmp_path / "r1" / "tmp").iterdir()) == []


def test_a_partition_keeps_its_identity_and_a_recreated_one_gets_a_new_one(
    tmp_path: Path,
) -> None:
    assert spool.partition_identity(tmp_path, "r1") is None
    with new_writer(tmp_path):
        identity = spool.partition_identity(tmp_path, "r1")
    assert identity
    with new_writer(tmp_path):
        assert spool.partition_identity(tmp_path, "r1") == identity
    shutil.rmtree(tmp_path / "r1")
    with new_writer(tmp_path):
        renewed = spool.partition_identity(tmp_path, "r1")
    assert renewed
    assert renewed != identity


def test_the_reader_cost_follows_the_files_present_not_the_highest_number(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with new_writer(tmp_path) as writer:
        writer.write_event(b'{"n":1}', META)
    stray = tmp_path / "r1" / "events" / "99999999999999999990.event"
    stray.write_bytes((tmp_path / "r1" / "events" / spool.event_file_name(1)).read_bytes())

    def give_up(*_: object) -> None:
        msg = "the reader walked the numbers instead of the files"
        raise TimeoutError(msg)

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(10)
    try:
        read = [event.sequence for event in spool.iter_events(tmp_path, "r1")]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert read == [1, 99999999999999999990]
    assert "has no events 2 to 99999999999999999989" in caplog.text


def test_set_aside_keeps_a_copy_with_the_reason_beside_the_quarantine(tmp_path: Path) -> None:
    with new_writer(tmp_path) as writer:
        writer.write_event(b'{"n":1}', META)
    event = next(spool.iter_events(tmp_path, "r1"))

    copy = spool.set_aside(tmp_path, event, "cannot be emitted: test")

    assert copy == tmp_path / "r1" / "set-aside" / spool.event_file_name(1)
    assert b'"set_aside_reason":"cannot be emitted: test"' in copy.read_bytes()
    assert copy.read_bytes().endswith(b'\n{"n":1}')
    assert [e.sequence for e in spool.iter_events(tmp_path, "r1")] == [1]  # still in place


def test_a_damaged_file_is_yielded_with_its_damage_not_raised(tmp_path: Path) -> None:
    with new_writer(tmp_path) as writer:
        writer.write_event(b'{"n":1}', META)
        writer.write_event(b'{"n":2}', META)
    (tmp_path / "r1" / "events" / spool.event_file_name(1)).write_bytes(b"garbage")

    events = list(spool.iter_events(tmp_path, "r1"))

    assert [(e.sequence, e.damage is not None) for e in events] == [(1, True), (2, False)]
    assert events[0].body == b"garbage"


def test_concurrent_writes_stay_gapless_with_create_only_links(tmp_path: Path) -> None:
    with new_writer(tmp_path) as writer:
        threads = [
            threading.Thread(target=lambda: [writer.write_event(b"{}", META) for _ in range(25)])
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [e.sequence for e in spool.iter_events(tmp_path, "r1")] == list(range(1, 201))


def test_a_group_with_undecodable_header_bytes_is_read_back_whole() -> None:
    """One odd event must not make the tap set its whole segment aside."""
    odd = EventMeta(received_at="t", method="POST", path="/a", content_type="text/xml; x=\udcff")
    plain = EventMeta(received_at="t", method="POST", path="/é")
    segment = encode_segment([(plain, b"{}"), (odd, b"<tXML/>"), (plain, b"[]")])

    records = [(fields, body) for fields, body, _ in decode_records(segment, "test")]

    assert [body for _, body in records] == [b"{}", b"<tXML/>", b"[]"]
    assert [fields["content_type"] for fields, _ in records] == [None, "text/xml; x=\\xff", None]
    assert records[0][0]["path"] == "/é"
