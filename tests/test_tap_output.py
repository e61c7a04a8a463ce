"""The tap's stdout: it keeps downloading while the target is not reading, and loses nothing.

These run the ``tap-tradecloud`` command (its real stdout is a pipe, as under Meltano) against
the sandbox.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from tap_tradecloud.output import WRITE_BYTES, _LineBuffer
from tap_tradecloud.sandbox import SandboxConfig, SandboxServer

TAP = Path(sys.executable).parent / "tap-tradecloud"
ORDER_PAGES_PATH = "/v2/order-search/"  # poll (the default) or search


def write_config(tmp_path: Path, api_url: str) -> Path:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "api_url": api_url,
                "username": "integration@example.com",
                "password": "sandbox-password",
                "start_date": "2024-01-01T00:00:00Z",
                "max_requests_per_second": 1000,
            }
        )
    )
    return config


def searches(sb: SandboxServer) -> int:
    return sum(1 for entry in list(sb.requests_log) if entry.path.startswith(ORDER_PAGES_PATH))


def test_download_goes_on_while_the_target_reads_nothing(tmp_path: Path) -> None:
    # 600 orders of 8-12 lines are about 3 MB of messages: 50 times what a pipe holds.
    config = SandboxConfig(seed=5, order_count=600, lines_per_order=(8, 12))
    with SandboxServer(config) as sb:
        with (tmp_path / "tap.log").open("wb") as log:
            tap = subprocess.Popen(
                [str(TAP), "--config", str(write_config(tmp_path, sb.api_url))],
                stdout=subprocess.PIPE,
                stderr=log,
            )
        try:
            deadline = time.monotonic() + 30
            while searches(sb) < 7 and time.monotonic() < deadline and tap.poll() is None:
                time.sleep(0.1)
            pages_requested_unread = searches(sb)
            output, _ = tap.communicate(timeout=60)
        finally:
            if tap.poll() is None:
                tap.kill()
                tap.wait()
        truth = [order["id"] for order in sb.orders()]

    assert pages_requested_unread == 7, "the tap stopped downloading when the pipe was full"
    assert tap.returncode == 0
    messages = [json.loads(line) for line in output.splitlines()]
    orders = [
        m["record"]["id"] for m in messages if m["type"] == "RECORD" and m["stream"] == "orders"
    ]
    assert orders == truth
    assert messages[-1]["type"] == "STATE"
    assert messages[-1]["value"]["bookmarks"]["orders"]["replication_key_value"]


def test_a_target_that_goes_away_fails_the_tap_instead_of_hanging(tmp_path: Path) -> None:
    config = SandboxConfig(seed=5, order_count=600, lines_per_order=(8, 12))
    with SandboxServer(config) as sb:
        with (tmp_path / "tap.log").open("wb") as log:
            tap = subprocess.Popen(
                [str(TAP), "--config", str(write_config(tmp_path, sb.api_url))],
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert tap.stdout is not None
        tap.stdout.read(1000)
        tap.stdout.close()  # the target died
        try:
            returncode = tap.wait(timeout=60)
        finally:
            if tap.poll() is None:
                tap.kill()
                tap.wait()
    assert returncode != 0, (tmp_path / "tap.log").read_text()


class _RecordingStream:
    """A binary stream that records the size of every write."""

    def __init__(self) -> None:
        self.writes: list[int] = []
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.writes.append(len(chunk))
        self.data += chunk
        return len(chunk)

    def flush(self) -> None:
        pass


def test_a_full_buffer_is_written_in_bounded_chunks_in_order() -> None:
    """A backlog goes out in chunks of at most WRITE_BYTES, never as one copy of the buffer.

    Joining the whole buffer while a slow target blocks the write held twice its bytes (64 MiB
    at 32 MiB buffered): the tap's peak memory then grew with the backlog in benchmark 6.
    """
    buffer = _LineBuffer(max_bytes=64 * WRITE_BYTES)
    lines = [f'{{"n":{n},"pad":"{"x" * 1000}"}}\n'.encode() for n in range(6000)]
    for line in lines[:4000]:  # queued before the writer starts: a backlog of ~4 MB
        buffer.put(line)
    stream = _RecordingStream()
    writer = threading.Thread(target=buffer.drain_into, args=(stream,))
    writer.start()
    for line in lines[4000:]:
        buffer.put(line)
    buffer.finish()
    writer.join(timeout=30)

    assert bytes(stream.data) == b"".join(lines)
    assert max(stream.writes) <= WRITE_BYTES
    assert len(stream.writes) < len(lines) / 50  # still batched, not a write per line
