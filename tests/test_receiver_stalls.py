"""Nothing slow outside the spool write holds a delivery back: not the log, not the thread pool."""

from __future__ import annotations

import os
import subprocess
import threading
from typing import TYPE_CHECKING

import requests

from tap_tradecloud import spool
from tap_tradecloud.sandbox import free_port
from tap_tradecloud.webhook.app import GATE_KEY
from tests.webhook_helpers import (
    PATH,
    RECEIVER_SCRIPT,
    TOKEN,
    auth_headers,
    event_body,
    receiver_in_thread,
)

if TYPE_CHECKING:
    from pathlib import Path

TIMEOUT = 10
PIPE_BYTES = 64 * 1024  # Linux's default pipe buffer


def test_a_delivery_is_stored_while_every_pool_thread_is_busy(tmp_path: Path) -> None:
    with receiver_in_thread(tmp_path) as receiver:
        gate = receiver.app[GATE_KEY]
        release = threading.Event()
        busy = [gate.executor.submit(release.wait) for _ in range(gate.executor._max_workers)]
        try:
            answer = requests.post(
                receiver.webhook_url, data=event_body(), headers=auth_headers(), timeout=TIMEOUT
            )
        finally:
            release.set()
        assert all(done.result(timeout=TIMEOUT) for done in busy)

    assert answer.status_code == 200
    assert [event.sequence for event in spool.iter_events(tmp_path, "r1")] == [1]


def test_a_log_that_cannot_be_written_does_not_stall_deliveries(tmp_path: Path) -> None:
    """stderr is a pipe nobody reads: once it is full, every log write waits."""
    port = free_port()
    command = [
        str(RECEIVER_SCRIPT), "--spool-dir", str(tmp_path), "--instance-id", "r1",
        "--port", str(port), "--min-free-bytes", "0",
    ]  # fmt: skip
    env = {**os.environ, "TRADECLOUD_WEBHOOK_TOKEN": TOKEN}
    receiver = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz")
        sent = 0
        with requests.Session() as session:
            while sent * 150 < 2 * PIPE_BYTES:  # an access log line is longer than 150 bytes
                answer = session.post(
                    url, data=event_body(order_id=f"o-{sent}"), headers=auth_headers(),
                    timeout=TIMEOUT,
                )  # fmt: skip
                assert answer.status_code == 200
                sent += 1
    finally:
        receiver.terminate()
        _, log = receiver.communicate(timeout=30)  # reading the pipe lets the log drain

    assert len(list(spool.iter_events(tmp_path, "r1"))) == sent
    assert log.count(f'"path": "{PATH}"'.encode()) == sent  # no access log line was dropped
    assert b'"message": "Stopped"' in log


def _wait_healthy(url: str) -> None:
    for _ in range(200):
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            threading.Event().wait(0.05)
    msg = f"{url} never answered 200"
    raise AssertionError(msg)
