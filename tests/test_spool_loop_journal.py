"""Deliveries made on an event loop: gathered into groups and journalled on the loop itself."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from typing import TYPE_CHECKING

import pytest

from tap_tradecloud import spool
from tap_tradecloud.spool import SpoolError, SpoolWriter, journal
from tap_tradecloud.spool.journal import Journal
from tap_tradecloud.spool.loop_groups import MAX_TURNS, LoopGroups
from tests.journal_helpers import META, bodies, crash, new_writer, read
from tests.webhook_helpers import spool_files

if TYPE_CHECKING:
    from pathlib import Path


async def deliver(writer: SpoolWriter, group: list[bytes]) -> list[int]:
    """Deliver a group the way concurrent requests do: all made in one turn of the loop."""
    return list(await asyncio.gather(*(writer.submit_from_loop(body, META) for body in group)))


def recording_appends(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, str]]:
    """(first sequence, events, thread name) of every journal append from now on."""
    appends: list[tuple[int, int, str]] = []
    real_append = Journal.append

    def append(self: Journal, first: int, count: int, payload: bytes) -> None:
        real_append(self, first, count, payload)
        appends.append((first, count, threading.current_thread().name))

    monkeypatch.setattr(Journal, "append", append)
    return appends


def test_a_group_made_on_the_loop_is_one_record_appended_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    appends = recording_appends(monkeypatch)
    group = bodies("g", 12)

    async def main(writer: SpoolWriter) -> tuple[int, list[str], list[int]]:
        lone = await writer.submit_from_loop(b'{"lone":true}', META)
        segments_after_lone = spool_files(tmp_path, "r1", "events")
        return lone, segments_after_lone, await deliver(writer, group)

    with new_writer(tmp_path) as writer:
        lone, segments_after_lone, numbers = asyncio.run(main(writer))

    assert lone == 1
    assert segments_after_lone == ["00000000000000000001.event"]  # quiet: its own segment
    assert numbers == list(range(2, 14))
    assert appends == [(2, 12, threading.main_thread().name)]
    assert read(tmp_path) == [(1, b'{"lone":true}'), *zip(range(2, 14), group, strict=True)]


def test_loop_groups_gather_until_a_turn_adds_nothing_or_the_turns_run_out() -> None:
    async def main() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        groups: list[list[int]] = []
        gathering = LoopGroups(loop, groups.append)

        def add_over_turns(item: int, last: int) -> None:
            if item < last:  # the next request is read in the next turn
                loop.call_soon(add_over_turns, item + 1, last)
            gathering.add(item)

        add_over_turns(0, 3)  # one item in each of 4 turns: one group
        await asyncio.sleep(0.01)
        add_over_turns(10, 10 + 3 * MAX_TURNS)  # an item in every turn: cut every MAX_TURNS
        await asyncio.sleep(0.01)
        gathering.add(100)  # lone: handed on after one turn
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return groups

    groups = asyncio.run(main())

    assert groups[0] == [0, 1, 2, 3]
    steady = groups[1:-1]
    assert [item for group in steady for item in group] == list(range(10, 11 + 3 * MAX_TURNS))
    assert len(steady) > 1
    assert all(len(group) <= MAX_TURNS + 1 for group in steady)
    assert groups[-1] == [100]


def test_a_sealed_half_is_moved_while_the_loop_appends_to_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool.writer, "PUBLISH_AFTER_SECONDS", 3600.0)  # sealed when half full
    # 64 KiB: halves of 32 KiB, due at 16 KiB; each group of 10 ~1 KB events is ~11 KB.
    groups = [bodies(name, 10, pad=1000) for name in "abc"]
    writing, release, written = threading.Event(), threading.Event(), threading.Event()

    async def main(writer: SpoolWriter) -> list[list[int]]:
        create = writer.store.create

        def held_create(key: str, data: bytes) -> None:
            writing.set()
            release.wait(30)
            create(key, data)
            written.set()

        writer.store.create = held_create  # type: ignore[method-assign]
        first = await deliver(writer, groups[0])
        second = await deliver(writer, groups[1])  # half full: sealed, the committer writes it
        assert await asyncio.to_thread(writing.wait, 10)
        third = await deliver(writer, groups[2])  # acknowledged from the other half meanwhile
        assert not written.is_set()
        release.set()
        return [first, second, third]

    with new_writer(tmp_path, journal_bytes=journal.MIN_JOURNAL_BYTES) as writer:
        numbers = asyncio.run(main(writer))

    assert numbers == [list(range(1, 11)), list(range(11, 21)), list(range(21, 31))]
    assert read(tmp_path) == list(enumerate([b for group in groups for b in group], start=1))
    assert spool_files(tmp_path, "r1", "events") == [
        "00000000000000000001.event",  # the sealed half: groups a and b
        "00000000000000000021.event",  # group c, moved at close
    ]


def test_a_failed_append_on_the_loop_answers_the_group_and_leaves_no_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    async def main(writer: SpoolWriter) -> list[int]:
        monkeypatch.setattr(journal.os, "fdatasync", fail)
        with pytest.raises(OSError, match="Input/output error"):
            await deliver(writer, bodies("lost", 3))
        monkeypatch.undo()
        return await deliver(writer, bodies("kept", 3))

    with new_writer(tmp_path) as writer:
        assert asyncio.run(main(writer)) == [1, 2, 3]

    assert [body for _, body in read(tmp_path)] == bodies("kept", 3)


def test_threads_and_a_loop_delivering_at_once_get_gapless_numbers_each_once(
    tmp_path: Path,
) -> None:
    with new_writer(tmp_path) as writer:

        def from_thread(worker: int) -> list[int]:
            return [writer.write_event(body, META) for body in bodies(f"t{worker}", 50)]

        async def main() -> list[int]:
            threads = [asyncio.to_thread(from_thread, worker) for worker in range(4)]
            groups = [deliver(writer, bodies(f"l{n}", 8)) for n in range(25)]
            results = await asyncio.gather(*threads, *groups)
            return [number for numbers in results for number in numbers]

        numbers = asyncio.run(main())

    assert sorted(numbers) == list(range(1, 4 * 50 + 25 * 8 + 1))
    events = read(tmp_path)
    assert [sequence for sequence, _ in events] == sorted(numbers)
    sent = [body for w in range(4) for body in bodies(f"t{w}", 50)]
    sent += [body for n in range(25) for body in bodies(f"l{n}", 8)]
    assert sorted(body for _, body in events) == sorted(sent)


def test_a_closed_writer_refuses_a_delivery_on_the_loop(tmp_path: Path) -> None:
    writer = new_writer(tmp_path)
    writer.open()
    writer.close()

    async def main() -> None:
        writer.submit_from_loop(b"{}", META)

    with pytest.raises(SpoolError, match="closed"):
        asyncio.run(main())


CRASH_WITH_BOTH_HALVES_FULL = """
import asyncio, os, sys, threading
from tap_tradecloud.spool import EventMeta, SpoolWriter, journal
from tap_tradecloud.spool import writer as writer_module
writer_module.PUBLISH_AFTER_SECONDS = 3600.0
meta = EventMeta(received_at="2026-01-02T03:04:05.678Z", method="POST", path="/")
writer = SpoolWriter(sys.argv[1], "r1", min_free_bytes=0, min_free_inodes=0,
                     journal_bytes=journal.MIN_JOURNAL_BYTES)
writer.open()
writing = threading.Event()
writer.store.create = lambda key, data: (writing.set(), threading.Event().wait(60))

async def main():
    numbers = []
    for group in range(3):  # 2 groups fill and seal half 0; its segment never lands
        bodies = [b'{"g":%d,"n":%d,"pad":"%s"}' % (group, n, b"x" * 1000) for n in range(10)]
        futures = [writer.submit_from_loop(body, meta) for body in bodies]
        numbers += await asyncio.gather(*futures)
        if group == 1:
            await asyncio.to_thread(writing.wait, 10)
    return numbers

print(",".join(map(str, asyncio.run(main()))), flush=True)
os._exit(0)
"""


def test_a_crash_with_groups_in_both_halves_recovers_them_in_order(tmp_path: Path) -> None:
    assert crash(CRASH_WITH_BOTH_HALVES_FULL, tmp_path) == ",".join(str(n) for n in range(1, 31))
    assert spool_files(tmp_path, "r1", "events") == []

    with new_writer(tmp_path) as writer:
        assert writer.last_sequence == 30

    events = read(tmp_path)
    assert [sequence for sequence, _ in events] == list(range(1, 31))
    assert [body[:14] for _, body in events[::10]] == [
        b'{"g":0,"n":0,"',
        b'{"g":1,"n":0,"',
        b'{"g":2,"n":0,"',
    ]


def test_an_unexpected_error_on_the_loop_answers_the_group_instead_of_hanging_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(events: object) -> bytes:
        msg = "a bug"
        raise RuntimeError(msg)

    async def main(writer: SpoolWriter) -> list[int]:
        with monkeypatch.context() as patch:
            patch.setattr(spool.writer, "encode_segment", broken)
            with pytest.raises(RuntimeError, match="a bug"):
                await asyncio.wait_for(deliver(writer, bodies("lost", 3)), timeout=10)
        return await deliver(writer, bodies("kept", 3))

    with new_writer(tmp_path) as writer:
        assert asyncio.run(main(writer)) == [1, 2, 3]

    assert [body for _, body in read(tmp_path)] == bodies("kept", 3)
