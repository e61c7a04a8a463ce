"""The local partition's journal: groups acknowledged from it, moved into segments, recovered."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from typing import TYPE_CHECKING

import pytest

from tap_tradecloud.spool import SpoolConflictError, SpoolWriter, journal
from tap_tradecloud.spool.journal import Journal
from tap_tradecloud.spool.records import JOURNAL_FILE, encode_segment
from tests.journal_helpers import META, bodies, crash, new_writer, read
from tests.webhook_helpers import small_tmpfs, spool_files

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def deliver_together(writer: SpoolWriter, bodies: list[bytes]) -> list[int]:
    """Submit while the committer is held on a lone delivery, so the rest form one group."""
    held = threading.Event()
    create = writer.store.create

    def held_create(key: str, data: bytes) -> None:
        held.wait(10)
        create(key, data)

    writer.store.create = held_create  # type: ignore[method-assign]
    try:
        first = writer.submit(b'{"lone":true}', META)
        time.sleep(0.05)
        group = [writer.submit(body, META) for body in bodies]
        held.set()
        first.result(timeout=30)
        return [future.result(timeout=30) for future in group]
    finally:
        writer.store.create = create  # type: ignore[method-assign]


def test_a_group_is_acknowledged_from_the_journal_and_moved_into_a_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    appended: list[int] = []
    real_append = Journal.append

    def recording_append(self: Journal, first: int, count: int, payload: bytes) -> None:
        appended.append(count)
        real_append(self, first, count, payload)

    monkeypatch.setattr(Journal, "append", recording_append)
    group = bodies("g", 5)
    with new_writer(tmp_path) as writer:
        assert deliver_together(writer, group) == [2, 3, 4, 5, 6]
        assert appended == [5]
        deadline = time.monotonic() + 10  # moved within PUBLISH_AFTER_SECONDS, while running
        while len(read(tmp_path)) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert read(tmp_path) == [(1, b'{"lone":true}'), *zip(range(2, 7), group, strict=True)]

    assert spool_files(tmp_path, "r1", "events") == [
        "00000000000000000001.event",
        "00000000000000000002.event",
    ]


def test_concurrent_deliveries_through_the_journal_are_read_once_and_in_order(
    tmp_path: Path,
) -> None:
    with new_writer(tmp_path) as writer:

        def deliver(worker: int) -> None:
            for body in bodies(f"w{worker}", 40):
                writer.write_event(body, META)

        threads = [threading.Thread(target=deliver, args=(w,)) for w in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    events = read(tmp_path)
    assert [sequence for sequence, _ in events] == list(range(1, 16 * 40 + 1))
    assert sorted(body for _, body in events) == sorted(
        body for worker in range(16) for body in bodies(f"w{worker}", 40)
    )
    assert (tmp_path / "r1" / JOURNAL_FILE).stat().st_size == journal.DEFAULT_JOURNAL_BYTES


CRASHING_WRITER = """
import os, sys, threading, time
from tap_tradecloud.spool import EventMeta, SpoolWriter
from tap_tradecloud.spool import writer as writer_module
writer_module.PUBLISH_AFTER_SECONDS = 3600.0  # nothing leaves the journal before the crash
meta = EventMeta(received_at="2026-01-02T03:04:05.678Z", method="POST", path="/")
writer = SpoolWriter(sys.argv[1], "r1", min_free_bytes=0, min_free_inodes=0)
writer.open()
held = threading.Event()
create = writer.store.create
writer.store.create = lambda key, data: (held.wait(10), create(key, data))
lone = writer.submit(b'{"lone":true}', meta)
time.sleep(0.05)
group = [writer.submit(b'{"crash":%d}' % n, meta) for n in range(7)]
held.set()
lone.result(30)
print(",".join(str(future.result(30)) for future in group), flush=True)
os._exit(0)  # no close(): what is only in the journal must survive
"""


def test_a_crash_leaves_acknowledged_groups_in_the_journal_and_the_next_start_moves_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert crash(CRASHING_WRITER, tmp_path) == "2,3,4,5,6,7,8"
    assert spool_files(tmp_path, "r1", "events") == ["00000000000000000001.event"]

    with caplog.at_level(logging.INFO), new_writer(tmp_path) as writer:
        assert writer.last_sequence == 8
        assert writer.write_event(b'{"after":1}', META) == 9

    assert read(tmp_path) == [
        (1, b'{"lone":true}'),
        *((n + 2, b'{"crash":%d}' % n) for n in range(7)),
        (9, b'{"after":1}'),
    ]
    assert "moved 7 acknowledged events (2 to 8) from the journal" in caplog.text
    with new_writer(tmp_path) as again:  # recovered once: a second start moves nothing
        assert again.last_sequence == 9
    assert len(read(tmp_path)) == 9


def journal_with(tmp_path: Path, records: list[tuple[int, list[bytes]]]) -> Path:
    """A journal holding these records, as a crashed writer would have left it."""
    (tmp_path / "r1").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "r1" / JOURNAL_FILE
    made = Journal.open(path, journal.MIN_JOURNAL_BYTES)
    assert made is not None
    for first, events in records:
        made.append(first, len(events), encode_segment([(META, body) for body in events]))
    made.close()
    return path


def test_recovery_stops_at_a_torn_record(tmp_path: Path) -> None:
    path = journal_with(tmp_path, [(1, bodies("a", 2)), (3, bodies("b", 2))])
    size = len(encode_segment([(META, body) for body in bodies("a", 2)]))
    with path.open("r+b") as torn:  # the second record's payload half written
        torn.seek(2 * journal._HEADER.size + size + 10)
        torn.write(b"\x00" * 8)

    with new_writer(tmp_path) as writer:
        assert writer.last_sequence == 2

    assert read(tmp_path) == list(zip([1, 2], bodies("a", 2), strict=True))


def test_records_already_in_segments_or_from_an_earlier_pass_are_not_moved_again(
    tmp_path: Path,
) -> None:
    with new_writer(tmp_path, journal_bytes=0) as writer:
        for body in bodies("seg", 5):
            writer.write_event(body, META)
    # Same-sized records: the current pass (6-7) is followed by one of the pass before (4-5).
    journal_with(tmp_path, [(6, bodies("new", 2)), (4, bodies("old", 2))])

    with new_writer(tmp_path) as writer:
        assert writer.last_sequence == 7

    assert [body for _, body in read(tmp_path)] == [*bodies("seg", 5), *bodies("new", 2)]


def test_where_a_record_was_written_twice_recovery_takes_the_later_write(
    tmp_path: Path,
) -> None:
    (tmp_path / "r1").mkdir()
    made = Journal.open(tmp_path / "r1" / JOURNAL_FILE, journal.MIN_JOURNAL_BYTES)
    assert made is not None

    def segment(prefix: str, count: int) -> bytes:
        return encode_segment([(META, body) for body in bodies(prefix, count)])

    made.append(1, 2, segment("a", 2))
    made.seal()
    made.append(3, 2, segment("failed", 2))  # its fdatasync failed: written again below
    made.append(3, 3, segment("again", 3))
    made.close()

    with new_writer(tmp_path) as writer:
        assert writer.last_sequence == 5

    assert [body for _, body in read(tmp_path)] == [*bodies("a", 2), *bodies("again", 3)]


def test_a_failed_journal_write_answers_every_waiter_and_leaves_no_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with new_writer(tmp_path) as writer:
        monkeypatch.setattr(
            journal.os, "fdatasync", failing(OSError(errno.EIO, os.strerror(errno.EIO)))
        )
        with pytest.raises(OSError, match="Input/output error"):
            deliver_together(writer, bodies("lost", 3))
        monkeypatch.undo()
        assert deliver_together(writer, bodies("kept", 3)) == [3, 4, 5]

    assert [body for _, body in read(tmp_path)] == [
        b'{"lone":true}',
        b'{"lone":true}',
        *bodies("kept", 3),
    ]


def failing(error: Exception) -> Callable[..., None]:
    def fail(*args: object) -> None:
        raise error

    return fail


def test_a_segment_that_cannot_be_made_yet_keeps_the_events_safe_in_the_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), new_writer(tmp_path) as writer:
        assert deliver_together(writer, bodies("g", 4)) == [2, 3, 4, 5]
        create = writer.store.create
        writer.store.create = failing(OSError(errno.ENOSPC, "No space left on device"))  # type: ignore[method-assign]
        time.sleep(0.3)  # the journal's events fall due and fail to move, quietly after once
        assert read(tmp_path) == [(1, b'{"lone":true}')]
        writer.store.create = create  # type: ignore[method-assign]
        assert writer.write_event(b'{"next":1}', META) == 6  # moves the journal's events first

    assert [sequence for sequence, _ in read(tmp_path)] == list(range(1, 7))
    warnings = [r for r in caplog.records if "could not move journalled events" in r.message]
    assert len(warnings) == 1
    assert "moved into segments again" in caplog.text


def test_a_partition_deleted_under_the_writer_stops_it_with_a_conflict(
    tmp_path: Path,
) -> None:
    with new_writer(tmp_path) as writer:
        assert deliver_together(writer, bodies("a", 2)) == [2, 3]
        time.sleep(0.2)
        shutil.rmtree(tmp_path / "r1")
        with new_writer(tmp_path) as second:  # another receiver takes the recreated folder
            second.write_event(b'{"second":1}', META)
            with pytest.raises(SpoolConflictError, match=r"was deleted under this running"):
                writer.write_event(b'{"lone":2}', META)
            with pytest.raises(SpoolConflictError, match=r"was deleted under this running"):
                deliver_together(writer, bodies("b", 2))

    assert read(tmp_path) == [(1, b'{"second":1}')]


def test_an_old_journal_is_recovered_and_removed_when_journals_are_turned_off(
    tmp_path: Path,
) -> None:
    path = journal_with(tmp_path, [(1, bodies("j", 3))])
    half_made = Journal.partial_path(path)  # a crash while a journal was being made
    half_made.write_bytes(bytes(4096))

    with new_writer(tmp_path, journal_bytes=0) as writer:
        assert writer.write_event(b'{"after":1}', META) == 4

    assert not path.exists()
    assert not half_made.exists()
    assert [body for _, body in read(tmp_path)] == [*bodies("j", 3), b'{"after":1}']


def test_without_room_for_a_journal_every_group_becomes_a_segment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        small_tmpfs(tmp_path / "small") as mount_point,
        caplog.at_level(logging.WARNING),
        new_writer(mount_point) as writer,
    ):
        assert deliver_together(writer, bodies("g", 3)) == [2, 3, 4]
        events = [body for _, body in read(mount_point)]
        journal_left = (mount_point / "r1" / JOURNAL_FILE).exists()

    assert events == [b'{"lone":true}', *bodies("g", 3)]  # in a segment when acknowledged
    assert not journal_left
    assert "no room for a 4194304-byte journal" in caplog.text
