"""Shared pieces of the spool journal tests (thread and event-loop paths)."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from tap_tradecloud import spool
from tap_tradecloud.spool import EventMeta, SpoolWriter

if TYPE_CHECKING:
    from pathlib import Path

META = EventMeta(received_at="2026-01-02T03:04:05.678Z", method="POST", path="/webhooks/tradecloud")


def new_writer(spool_dir: Path, **options: int) -> SpoolWriter:
    """A writer of partition r1 with the free-space guards off (the journal on by default)."""
    return SpoolWriter(spool_dir, "r1", min_free_bytes=0, min_free_inodes=0, **options)


def bodies(prefix: str, count: int, pad: int = 0) -> list[bytes]:
    """``count`` distinct JSON bodies, each padded with ``pad`` bytes when asked."""
    filler = f',"pad":"{"x" * pad}"' if pad else ""
    return [f'{{"{prefix}":{n}{filler}}}'.encode() for n in range(count)]


def read(spool_dir: Path) -> list[tuple[int, bytes]]:
    """(sequence, body) of every event of partition r1, in order."""
    return [(event.sequence, event.body) for event in spool.iter_events(spool_dir, "r1")]


def crash(script: str, spool_dir: Path) -> str:
    """Run a writer script that ends with ``os._exit`` (no close); return what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(spool_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()
