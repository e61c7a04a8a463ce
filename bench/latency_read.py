"""Part of benchmark 9: the spool reader behind a store's network latency, 8 against 32 GETs ahead.

A bucket in another network answers each GET tens of ms later than SeaweedFS on loopback, so the
reader's speed then follows how many GETs it keeps going. ``bench/latency_proxy.py`` adds that
latency in front of SeaweedFS; the reader (``spool.iter_events``, no tap around it) reads the same
segments with ``read_ahead`` 8 (the value before 2026-11-30) and 32 (now), in one run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from typing import TYPE_CHECKING

from bench.common import BENCH, PYTHON, stop_process
from bench.webhook_load import event_body
from tap_tradecloud import spool
from tap_tradecloud.sandbox import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

LATENCY_MS = 20
READ_AHEADS = (8, 32)
# (events per segment, events): a quiet receiver's single-event segments, a busy one's.
SPOOLS = ((1, 2_000), (16, 16_000))
INSTANCE = "latency"


@contextlib.contextmanager
def _delaying_proxy(upstream_port: int, log: Path) -> Iterator[str]:
    """``bench/latency_proxy.py`` in front of the store; yields its endpoint URL."""
    port = free_port()
    command = [PYTHON, str(BENCH / "latency_proxy.py"), str(port), str(upstream_port)]
    with log.open("ab") as out:
        process = subprocess.Popen([*command, str(LATENCY_MS), "600"], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                msg = "bench/latency_proxy.py did not listen within 10 s"
                raise TimeoutError(msg)
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def _fill(url: str, per_segment: int, events: int) -> None:
    meta = spool.EventMeta(spool.utc_now_ms(), "POST", "/webhooks/tradecloud", "application/json")
    with spool.SpoolWriter(url, INSTANCE, min_free_bytes=0) as writer:
        for first in range(0, events, per_segment):
            numbers = range(first, min(first + per_segment, events))
            for future in [writer.submit(event_body(number), meta) for number in numbers]:
                future.result()  # submitted together: one segment


def _events_per_second(url: str, endpoint: str, read_ahead: int) -> float:
    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = endpoint  # the store is configured when it is opened
    try:
        store = spool.open_store(url)
    finally:
        if saved is not None:
            os.environ["AWS_ENDPOINT_URL"] = saved
    store.read_ahead = read_ahead
    started = time.perf_counter()
    count = sum(1 for _ in spool.iter_events(store, INSTANCE))
    return count / (time.perf_counter() - started)


def reads_behind_latency(bucket: str, store_port: int, workdir: Path) -> list[tuple[str, str]]:
    """Report rows: events/s of the reader for each spool shape and read-ahead."""
    rows = []
    with _delaying_proxy(store_port, workdir / "latency-proxy.log") as endpoint:
        for per_segment, events in SPOOLS:
            url = f"s3://{bucket}/latency-{per_segment}"
            _fill(url, per_segment, events)
            rates = [_events_per_second(url, endpoint, ahead) for ahead in READ_AHEADS]
            rows.append(
                (
                    f"reader, {events:,} events in {per_segment}-event segments, "
                    f"{LATENCY_MS} ms added latency",
                    ", ".join(
                        f"{rate:,.0f} events/s with {ahead} GETs ahead"
                        for ahead, rate in zip(READ_AHEADS, rates, strict=True)
                    ),
                )
            )
    return rows
