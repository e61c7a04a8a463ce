"""The spool reader and pruning: in order from a bookmark, no skips, no unloaded file pruned."""

from __future__ import annotations

import array
import datetime
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from tap_tradecloud import spool
from tap_tradecloud.spool import EventMeta, SpoolWriter

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

UTC = datetime.timezone.utc


def meta_at(received_at: str) -> EventMeta:
    return EventMeta(received_at=received_at, method="POST", path="/webhooks/tradecloud")


def write(tmp_path: Path, received: list[str], instance: str = "r1") -> None:
    """One segment per event (written one after the other), stored when it was received."""
    with SpoolWriter(tmp_path, instance, min_free_bytes=0) as writer:
        for i, received_at in enumerate(received):
            sequence = writer.write_event(f'{{"n":{i}}}'.encode(), meta_at(received_at))
            stored_at = spool.parse_utc_ms(received_at).timestamp()
            segment = tmp_path / instance / "events" / spool.event_file_name(sequence)
            os.utime(segment, (stored_at, stored_at))


def sequences(tmp_path: Path, after: int = 0, instance: str = "r1") -> list[int]:
    return [event.sequence for event in spool.iter_events(tmp_path, instance, after)]


def test_reads_in_sequence_order_strictly_after_the_bookmark(tmp_path: Path) -> None:
    write(tmp_path, ["2026-01-01T00:00:00.000Z"] * 12)

    assert sequences(tmp_path) == list(range(1, 13))
    assert sequences(tmp_path, after=10) == [11, 12]
    assert sequences(tmp_path, after=12) == []
    assert sequences(tmp_path, instance="absent") == []
    assert spool.list_partitions(tmp_path / "absent") == []


def test_files_deleted_outside_the_tap_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, ["2026-01-01T00:00:00.000Z"] * 5)
    for sequence in (2, 3):
        (tmp_path / "r1" / "events" / spool.event_file_name(sequence)).unlink()

    with caplog.at_level(logging.WARNING):
        assert sequences(tmp_path) == [1, 4, 5]
    assert "has no events 2 to 3" in caplog.text


def test_segments_read_ahead_in_batches_come_in_order_from_any_bookmark(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = spool.open_store(tmp_path)
    count = 3 * store.read_batch + 5  # several batches, read by the read-ahead thread
    write(tmp_path, ["2026-01-01T00:00:00.000Z"] * count)

    for after in (0, 1, store.read_batch, store.read_batch + 1, count - 1):
        assert sequences(tmp_path, after) == list(range(after + 1, count + 1))
    events = spool.iter_events(tmp_path, "r1")
    assert next(events).sequence == 1
    gone = count - 2  # pruned by another run after the listing, before it is read
    (tmp_path / "r1" / "events" / spool.event_file_name(gone)).unlink()
    with caplog.at_level(logging.WARNING):
        rest = [event.sequence for event in events]
    assert rest == [n for n in range(2, count + 1) if n != gone]
    assert f"has no events {gone} to {gone}" in caplog.text


def test_a_corrupt_file_is_yielded_with_its_damage_so_the_stream_can_set_it_aside(
    tmp_path: Path,
) -> None:
    write(tmp_path, ["2026-01-01T00:00:00.000Z"])
    (tmp_path / "r1" / "events" / spool.event_file_name(1)).write_bytes(b"garbage")

    [event] = spool.iter_events(tmp_path, "r1")
    assert event.damage is not None
    assert "not in the spool format" in event.damage


def test_pruning_removes_only_old_files_at_or_below_the_bookmark(tmp_path: Path) -> None:
    write(
        tmp_path,
        [
            "2026-01-01T00:00:00.000Z",  # 1 old
            "2026-01-05T00:00:00.000Z",  # 2 young
            "2026-01-01T00:00:00.000Z",  # 3 old
            "2026-01-01T00:00:00.000Z",  # 4 old, above the bookmark
            "2026-01-01T00:00:00.000Z",  # 5 old, above the bookmark, highest
        ],
    )
    cutoff = datetime.datetime(2026, 1, 3, tzinfo=UTC)

    deleted = spool.prune_events(tmp_path, "r1", up_to=3, received_before=cutoff)

    assert deleted == [1, 3]
    assert sequences(tmp_path) == [2, 4, 5]


def test_pruning_keeps_the_highest_event_so_a_restarted_writer_never_reuses_numbers(
    tmp_path: Path,
) -> None:
    write(tmp_path, ["2026-01-01T00:00:00.000Z"] * 3)
    cutoff = datetime.datetime(2026, 2, 1, tzinfo=UTC)

    assert spool.prune_events(tmp_path, "r1", up_to=3, received_before=cutoff) == [1, 2]
    with SpoolWriter(tmp_path, "r1", min_free_bytes=0) as writer:
        assert writer.write_event(b"{}", meta_at("2026-02-02T00:00:00.000Z")) == 4
    assert sequences(tmp_path, after=3) == [4]


def test_concurrent_writers_and_a_repeated_reader_never_skip_or_repeat(tmp_path: Path) -> None:
    threads, per_thread = 8, 150
    seen: list[bytes] = []
    bookmark = 0
    with SpoolWriter(tmp_path, "r1", min_free_bytes=0) as writer:

        def produce(worker: int) -> None:
            for i in range(per_thread):
                writer.write_event(f"{worker}-{i}".encode(), meta_at("2026-01-01T00:00:00.000Z"))

        producers = [threading.Thread(target=produce, args=(w,)) for w in range(threads)]
        for producer in producers:
            producer.start()
        reads = 0
        while any(p.is_alive() for p in producers) and reads < 100_000:
            for event in spool.iter_events(tmp_path, "r1", after=bookmark):
                assert event.sequence == bookmark + 1
                seen.append(event.body)
                bookmark = event.sequence
            reads += 1
        for producer in producers:
            producer.join(timeout=60)
    # Closed: the last journalled groups are in segments too (a running writer moves them
    # within PUBLISH_AFTER_SECONDS).
    for event in spool.iter_events(tmp_path, "r1", after=bookmark):
        seen.append(event.body)
        bookmark = event.sequence

    assert reads > 1
    assert bookmark == threads * per_thread
    expected = {f"{w}-{i}".encode() for w in range(threads) for i in range(per_thread)}
    assert len(seen) == len(expected)
    assert set(seen) == expected


def test_the_reader_makes_the_folder_durable_before_yielding_and_stops_at_that_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, ["2026-01-01T00:00:00.000Z"] * 2)
    synced: list[Path] = []
    real_fsync_dir = spool.local._fsync_dir
    monkeypatch.setattr(spool.local, "_fsync_dir", lambda d: (synced.append(d), real_fsync_dir(d)))

    reader = spool.iter_events(tmp_path, "r1")
    first = next(reader)
    assert synced == [tmp_path / "r1" / "events"]
    write(tmp_path, ["2026-01-01T00:00:00.000Z"])  # arrives during the read: next run's
    rest = [event.sequence for event in reader]

    assert (first.sequence, rest) == (1, [2])
    assert sequences(tmp_path, after=2) == [3]


class _SlowStore:
    """A store whose reads take a while, recording how many bytes are being read at once."""

    read_ahead = 4
    read_batch = 1

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.lock = threading.Lock()
        self.reading = 0
        self.most = 0

    def read(self, key: str) -> bytes:
        size = self.sizes[int(key.rsplit("/", 1)[1].split(".", maxsplit=1)[0]) - 1]
        with self.lock:
            self.reading += size
            self.most = max(self.most, self.reading)
        time.sleep(0.01)
        with self.lock:
            self.reading -= size
        return b"x" * size


def test_reads_ahead_stay_within_the_byte_budget_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spool.reader, "READ_AHEAD_BYTES", 1000)
    sizes = [300] * 10 + [2500] + [100] * 20  # one segment larger than the whole budget
    store = _SlowStore(sizes)

    firsts = list(range(1, len(sizes) + 1))
    read = list(spool.reader._read_segments(store, "r1", firsts, array.array("q", sizes)))  # type: ignore[arg-type]

    assert [first for first, _ in read] == firsts
    assert [len(data or b"") for _, data in read] == sizes
    assert store.most == 2500  # the large one went alone; otherwise at most 1,000 bytes at once


def test_without_sizes_reads_ahead_are_bounded_by_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool.reader, "READ_AHEAD_BYTES", 1)
    store = _SlowStore([100] * 12)

    read = list(spool.reader._read_segments(store, "r1", list(range(1, 13))))  # type: ignore[arg-type]

    assert [first for first, _ in read] == list(range(1, 13))
    assert 100 < store.most <= 4 * 100  # read_ahead reads at once; no sizes, no byte budget


class _LocalLikeStore:
    """Reads like a local folder (a batch ahead), counting the segments read so far."""

    read_ahead = 1
    read_batch = 16

    def __init__(self, size: int) -> None:
        self.size = size
        self.reads = 0

    def read(self, key: str) -> bytes:
        self.reads += 1
        return b"x" * self.size


def test_a_local_read_ahead_holds_about_two_batches_of_bytes_not_of_segments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Segments merged from the journal hold up to a megabyte: 16 of them ahead was 16 MB."""
    monkeypatch.setattr(spool.reader, "READ_BATCH_BYTES", 1000)
    store = _LocalLikeStore(size=600)  # a batch ends at its second segment
    firsts = list(range(1, 41))

    ahead = []
    consumed = 0
    for _first, data in spool.reader._read_segments(store, "r1", firsts):  # type: ignore[arg-type]
        consumed += 1
        ahead.append(store.reads - consumed)
        assert data == b"x" * 600

    assert consumed == 40
    assert max(ahead) <= 3  # the rest of this batch and the next one
