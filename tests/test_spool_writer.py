"""The spool writer: durable, ordered, all-or-nothing, one writer per partition."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from tap_tradecloud import spool
from tap_tradecloud.spool import EventMeta, SpoolFullError, SpoolLockedError, SpoolWriter
from tests.webhook_helpers import event_body, small_tmpfs, spool_files

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

META = EventMeta(
    received_at="2026-01-02T03:04:05.678Z",
    method="POST",
    path="/webhooks/tradecloud",
    content_type="application/json",
)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[SpoolWriter]:
    """A writer without a journal: every group goes straight into a segment (see
    test_spool_journal for the journal)."""
    with SpoolWriter(
        tmp_path, "r1", min_free_bytes=0, min_free_inodes=0, journal_bytes=0
    ) as opened:
        yield opened


def test_events_get_consecutive_sequences_and_keep_the_raw_body(
    tmp_path: Path, writer: SpoolWriter
) -> None:
    bodies = [event_body(order_id=f"o-{i}") + b"  \n" for i in range(3)]  # odd whitespace kept

    sequences = [writer.write_event(body, META) for body in bodies]

    assert sequences == [1, 2, 3]
    assert spool_files(tmp_path, "r1", "events") == [
        "00000000000000000001.event",
        "00000000000000000002.event",
        "00000000000000000003.event",
    ]
    assert spool_files(tmp_path, "r1", "tmp") == []
    events = list(spool.iter_events(tmp_path, "r1"))
    assert [(e.instance, e.sequence, e.meta, e.body) for e in events] == [
        ("r1", i + 1, META, body) for i, body in enumerate(bodies)
    ]


def test_a_second_writer_on_the_same_instance_is_refused(
    tmp_path: Path, writer: SpoolWriter
) -> None:
    with pytest.raises(
        SpoolLockedError, match=r"already written by another receiver.*--instance-id"
    ):
        SpoolWriter(tmp_path, "r1").open()
    with SpoolWriter(tmp_path, "r2", min_free_bytes=0) as other:
        assert other.write_event(b"{}", META) == 1
    assert spool.list_partitions(tmp_path) == ["r1", "r2"]


def test_a_restarted_writer_continues_after_the_highest_sequence(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path, "r1", min_free_bytes=0) as first:
        first.write_event(b"{}", META)
        first.write_event(b"{}", META)
    with SpoolWriter(tmp_path, "r1", min_free_bytes=0) as second:
        assert second.last_sequence == 2
        assert second.write_event(b"{}", META) == 3


def test_stale_tmp_files_are_removed_at_start_and_never_read(tmp_path: Path) -> None:
    tmp_dir = tmp_path / "r1" / "tmp"
    tmp_dir.mkdir(parents=True)
    stale, fresh = tmp_dir / "stale.tmp", tmp_dir / "fresh.tmp"
    for leftover in (stale, fresh):
        leftover.write_bytes(b'{"received_at":"x"}\n{"orderEvent":{}}')
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    with SpoolWriter(tmp_path, "r1", min_free_bytes=0):
        assert spool_files(tmp_path, "r1", "tmp") == ["fresh.tmp"]
        assert list(spool.iter_events(tmp_path, "r1")) == []


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, writer: SpoolWriter, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    writer.write_event(b"{}", META)

    def fail(fd: int) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(spool.local.os, "fsync", fail)
    with pytest.raises(OSError, match=os.strerror(error)):
        writer.write_event(event_body(), META)
    monkeypatch.undo()

    assert spool_files(tmp_path, "r1", "events") == ["00000000000000000001.event"]
    assert spool_files(tmp_path, "r1", "tmp") == []
    assert writer.write_event(b"{}", META) == 2  # no gap in the sequence


def test_a_failed_rename_leaves_nothing_behind_and_no_gap(
    tmp_path: Path, writer: SpoolWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(spool.local.os, "link", fail)
    with pytest.raises(OSError, match="Input/output"):
        writer.write_event(b"{}", META)
    monkeypatch.undo()

    assert spool_files(tmp_path, "r1", "tmp") == []
    assert spool_files(tmp_path, "r1", "events") == []
    assert writer.write_event(b"{}", META) == 1


def test_the_free_space_guard_refuses_before_writing(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path, "bytes", min_free_bytes=2**62) as by_bytes:
        with pytest.raises(SpoolFullError, match="bytes free, below the guard"):
            by_bytes.write_event(b"{}", META)
        with pytest.raises(SpoolFullError):
            by_bytes.quarantine(b"{}", META, "bad")
    with SpoolWriter(tmp_path, "inodes", min_free_bytes=0, min_free_inodes=2**62) as by_inodes:
        if os.statvfs(tmp_path).f_files == 0:
            pytest.skip("this file system has no inode limit")
        with pytest.raises(SpoolFullError, match="inodes free"):
            by_inodes.write_event(b"{}", META)
    for instance in ("bytes", "inodes"):
        assert spool_files(tmp_path, instance, "events") == []
        assert spool_files(tmp_path, instance, "tmp") == []


def test_quarantine_keeps_the_raw_body_with_metadata_and_reason(
    tmp_path: Path, writer: SpoolWriter
) -> None:
    name = writer.quarantine(b"not json\x00\xff", META, "body is not valid JSON")

    [kept] = spool.iter_quarantine(tmp_path, "r1")
    assert (kept.name, kept.meta, kept.reason, kept.body) == (
        name,
        META,
        "body is not valid JSON",
        b"not json\x00\xff",
    )
    assert name.startswith("20260102030405678-")
    assert spool_files(tmp_path, "r1", "events") == []


def test_instance_names_must_be_safe_folder_names(tmp_path: Path) -> None:
    for bad in ("", "../x", "a/b", ".hidden", "x" * 200):
        with pytest.raises(ValueError, match="Invalid receiver instance id"):
            SpoolWriter(tmp_path, bad)


def test_disk_full_on_a_real_small_tmpfs(tmp_path: Path) -> None:
    acknowledged, refusals = [], []
    with (
        small_tmpfs(tmp_path / "small") as mount_point,
        SpoolWriter(mount_point, "r1", min_free_bytes=0, min_free_inodes=0) as writer,
    ):
        for i in range(200):
            body = event_body(order_id=f"o-{i}", padding=3000)
            try:
                acknowledged.append((writer.write_event(body, META), body))
            except OSError as exc:
                refusals.append(exc.errno)
        read = [(e.sequence, e.body) for e in spool.iter_events(mount_point, "r1")]
        leftovers = spool_files(mount_point, "r1", "tmp")

    assert acknowledged
    assert refusals
    assert set(refusals) == {errno.ENOSPC}
    assert leftovers == []
    assert read == acknowledged


def test_concurrent_submits_on_a_local_folder_share_segments(tmp_path: Path) -> None:
    """Group commit on the local backend: one file and one fsync for deliveries together."""
    with SpoolWriter(tmp_path, "r1", min_free_bytes=0, min_free_inodes=0) as writer:
        start = threading.Barrier(16)
        results: list[int] = []

        def deliver(n: int) -> None:
            start.wait()
            results.extend(writer.write_event(f'{{"n":{n}}}'.encode(), META) for _ in range(20))

        threads = [threading.Thread(target=deliver, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    segments = list((tmp_path / "r1" / "events").iterdir())
    assert sorted(results) == list(range(1, 321))
    assert len(segments) < 320
    assert [e.sequence for e in spool.iter_events(tmp_path, "r1")] == list(range(1, 321))


def test_a_group_that_arrives_one_by_one_shares_a_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a segment of three, the next three are waited for (briefly), not split up."""
    with SpoolWriter(
        tmp_path, "r1", min_free_bytes=0, min_free_inodes=0, max_linger_seconds=2.0, journal_bytes=0
    ) as writer:
        create = writer.store.create
        writing = threading.Event()

        def slow_create(key: str, data: bytes) -> None:
            writing.set()
            time.sleep(0.4)  # a slow store: the writer may wait up to half of this
            create(key, data)

        monkeypatch.setattr(writer.store, "create", slow_create)
        first = writer.submit(b"{}", META)  # a segment of one: the next group is not waited for
        assert writing.wait(timeout=30)
        group = [writer.submit(b"{}", META) for _ in range(3)]  # queued while it is written
        assert [f.result(timeout=30) for f in (first, *group)] == [1, 2, 3, 4]
        trickle = []
        for _ in range(3):
            trickle.append(writer.submit(b"{}", META))
            time.sleep(0.02)
        assert [f.result(timeout=30) for f in trickle] == [5, 6, 7]
        lone = writer.submit(b"{}", META)  # after a group of three, alone: waits, then goes
        assert lone.result(timeout=30) == 8

    names = sorted(spool_files(tmp_path, "r1", "events"))
    assert [int(name.split(".")[0]) for name in names] == [1, 2, 5, 8]


class _CountingCondition(threading.Condition):
    """A condition that counts how often a waiter was woken before its timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.woken = 0

    def wait(self, timeout: float | None = None) -> bool:
        notified = super().wait(timeout)
        self.woken += notified
        return notified


def test_a_trickling_group_wakes_the_committer_once_not_once_per_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the committer waits for a group of five, only the fifth delivery wakes it.

    Each wake-up makes the committer thread take the GIL from the receiver's event loop.
    """
    writer = SpoolWriter(
        tmp_path, "r1", min_free_bytes=0, min_free_inodes=0, max_linger_seconds=5.0, journal_bytes=0
    )
    wake = _CountingCondition()
    writer._wake = wake  # before open(): the committer thread waits on it
    with writer:
        create = writer.store.create
        writing = threading.Event()

        def slow_create(key: str, data: bytes) -> None:
            writing.set()
            time.sleep(1.0)  # the next group is then waited for up to half of this
            create(key, data)

        monkeypatch.setattr(writer.store, "create", slow_create)
        first = writer.submit(b"{}", META)
        assert writing.wait(timeout=30)
        group = [writer.submit(b"{}", META) for _ in range(5)]  # the next segment: five
        assert [f.result(timeout=30) for f in (first, *group)] == [1, 2, 3, 4, 5, 6]
        woken_before = wake.woken
        trickle = []
        for _ in range(5):
            trickle.append(writer.submit(b"{}", META))
            time.sleep(0.02)
        assert [f.result(timeout=30) for f in trickle] == [7, 8, 9, 10, 11]
        woken = wake.woken - woken_before

    assert woken == 2  # the first wakes the idle committer, the fifth completes its group
    names = sorted(spool_files(tmp_path, "r1", "events"))
    assert [int(name.split(".")[0]) for name in names] == [1, 2, 7]


def test_without_unnamed_files_segments_go_through_tmp_and_stay_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without O_TMPFILE (EOPNOTSUPP): write-then-link through tmp/ instead."""
    real_open = os.open
    refused: list[int] = []

    def open_without_tmpfile(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            refused.append(flags)
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(spool.local.os, "open", open_without_tmpfile)
    with SpoolWriter(tmp_path, "r1", min_free_bytes=0, min_free_inodes=0) as writer:
        sequences = [writer.write_event(f'{{"n":{n}}}'.encode(), META) for n in range(3)]

    assert sequences == [1, 2, 3]
    assert len(refused) <= 1  # the store remembers; identity and events then skip the attempt
    assert spool_files(tmp_path, "r1", "tmp") == []
    assert [event.body for event in spool.iter_events(tmp_path, "r1")] == [
        b'{"n":0}',
        b'{"n":1}',
        b'{"n":2}',
    ]


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="Linux only: O_TMPFILE")
def test_segments_are_written_as_unnamed_files_on_linux(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No temporary name is created: nothing goes through tmp/ (where O_TMPFILE works)."""
    made: list[str] = []
    real_open = os.open

    def recording_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_CREAT:
            made.append(str(path))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    with SpoolWriter(tmp_path, "r1", min_free_bytes=0, min_free_inodes=0) as writer:
        monkeypatch.setattr(spool.local.os, "open", recording_open)
        assert writer.write_event(b"{}", META) == 1
    assert made == []
    assert [event.sequence for event in spool.iter_events(tmp_path, "r1")] == [1]


def _submit_together_from_a_loop(
    writer: SpoolWriter, count: int, *, cancel: int | None = None
) -> tuple[list[object], int]:
    """Submit ``count`` deliveries while the committer is held; return outcomes and loop calls."""
    release = threading.Event()
    create = writer.store.create

    def held_create(key: str, data: bytes) -> None:
        release.wait(10)
        create(key, data)

    async def deliver() -> tuple[list[object], int]:
        loop = asyncio.get_running_loop()
        calls = 0
        threadsafe = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return threadsafe(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        blocker = writer.submit_from_loop(b'{"n":"first"}', META)  # the committer holds it
        await asyncio.sleep(0.05)
        waiters = [writer.submit_from_loop(f'{{"n":{n}}}'.encode(), META) for n in range(count)]
        if cancel is not None:
            waiters[cancel].cancel()
        release.set()
        outcomes = await asyncio.gather(blocker, *waiters, return_exceptions=True)
        return list(outcomes[1:]), calls

    writer.store.create = held_create  # type: ignore[method-assign]
    try:
        return asyncio.run(deliver())
    finally:
        writer.store.create = create  # type: ignore[method-assign]


def test_deliveries_from_an_event_loop_are_settled_with_one_call_per_segment(
    tmp_path: Path, writer: SpoolWriter
) -> None:
    outcomes, calls = _submit_together_from_a_loop(writer, 10)

    assert outcomes == list(range(2, 12))
    assert calls == 2  # the first segment, then the ten queued behind it: one call each
    assert [event.sequence for event in spool.iter_events(tmp_path, "r1")] == list(range(1, 12))


def test_a_cancelled_waiter_does_not_keep_the_others_from_their_answers(
    writer: SpoolWriter,
) -> None:
    outcomes, _ = _submit_together_from_a_loop(writer, 5, cancel=2)

    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert [outcomes[i] for i in (0, 1, 3, 4)] == [2, 3, 5, 6]  # its event was stored anyway


def test_every_waiter_of_a_failed_segment_hears_of_the_error(
    tmp_path: Path, writer: SpoolWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(spool.local.os, "fsync", fail)
    outcomes, _ = _submit_together_from_a_loop(writer, 4)
    monkeypatch.undo()

    assert all(isinstance(outcome, OSError) for outcome in outcomes)
    assert spool_files(tmp_path, "r1", "events") == []
    assert writer.write_event(b"{}", META) == 1  # nothing was taken


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="Linux only: O_TMPFILE")
def test_where_proc_links_fail_segments_go_through_tmp_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A restricted /proc (EXDEV, EPERM...) must not turn every delivery into a 503."""
    real_link = os.link
    tried: list[str] = []

    def link_without_proc(source: str, target: str, **kwargs: Any) -> None:
        if str(source).startswith("/proc/"):
            tried.append(str(source))
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real_link(source, target, **kwargs)

    monkeypatch.setattr(spool.local.os, "link", link_without_proc)
    with (
        caplog.at_level(logging.INFO),
        SpoolWriter(tmp_path, "r1", min_free_bytes=0, min_free_inodes=0) as writer,
    ):
        sequences = [writer.write_event(f'{{"n":{n}}}'.encode(), META) for n in range(3)]

    assert sequences == [1, 2, 3]
    assert len(tried) == 1  # the store remembers
    assert "writing through tmp/ instead" in caplog.text
    assert spool_files(tmp_path, "r1", "tmp") == []
    assert [event.sequence for event in spool.iter_events(tmp_path, "r1")] == [1, 2, 3]
