"""Receivers run from the CLI, loaded and killed: the tap reads each acknowledged event once."""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

from tests.webhook_helpers import (
    Load,
    ReceiverProcess,
    bookmarks,
    config,
    sync,
    ten_events_after_restart,
)

if TYPE_CHECKING:
    from pathlib import Path


def test_sigkill_under_load_loses_no_acknowledged_event_and_doubles_none(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    receiver = ReceiverProcess(spool_dir, "crash")
    try:
        receiver.wait_healthy()
        load = Load(receiver.webhook_url, threads=16, per_thread=60, prefix="before").start()
        load.wait_for_acknowledgements(250)
        receiver.process.send_signal(signal.SIGKILL)
        load.join()
    finally:
        receiver.stop()
    restarted = ReceiverProcess(spool_dir, "crash")
    after = ten_events_after_restart(restarted)

    records, states, _ = sync(config(spool_dir))

    assert len(load.acknowledged) >= 250
    assert load.failed > 0  # the kill really hit the receiver under load
    read = [record["event_id"] for record in records]
    assert len(read) == len(set(read))  # none read twice
    assert load.acknowledged | after.acknowledged <= set(read)  # every acknowledged one read
    assert set(read) <= load.attempted | after.attempted  # nothing else
    assert len(after.acknowledged) == 10
    sequences = [record["spool_sequence"] for record in records]
    assert sequences == list(range(1, len(records) + 1))
    assert bookmarks(states[-1]) == {"crash": len(records)}


#: Enough events per client thread that the load outlasts several tap runs, even with group
#: commit making the receivers fast (40 were all stored before the first run ended).
PER_THREAD = 200


def test_several_receivers_share_a_spool_while_the_tap_reads_repeatedly(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    receivers = [ReceiverProcess(spool_dir, f"host-{i}") for i in range(3)]
    read: list[str] = []
    runs = 0
    try:
        for receiver in receivers:
            receiver.wait_healthy()
        loads = [
            Load(r.webhook_url, threads=4, per_thread=PER_THREAD, prefix=f"host-{i}").start()
            for i, r in enumerate(receivers)
        ]
        state: dict | None = None
        while any(load.running() for load in loads) and runs < 200:
            records, states, _ = sync(config(spool_dir), state)
            read += [record["event_id"] for record in records]
            state = states[-1]
            runs += 1
        for load in loads:
            load.join()
        acknowledged = set().union(*(load.acknowledged for load in loads))
        # Groups acknowledged from a receiver's journal reach a segment within 50 ms.
        deadline = time.monotonic() + 5
        while not acknowledged <= set(read) and time.monotonic() < deadline:
            time.sleep(0.06)
            records, states, _ = sync(config(spool_dir), state)
            read += [record["event_id"] for record in records]
            state = states[-1]
    finally:
        for receiver in receivers:
            receiver.stop()

    assert runs > 1
    assert len(acknowledged) == 3 * 4 * PER_THREAD
    assert len(read) == len(set(read))  # none read twice across runs
    assert set(read) == acknowledged  # none skipped
