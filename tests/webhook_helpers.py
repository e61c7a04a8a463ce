"""Shared pieces of the spool, receiver and webhook_events tests."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from aiohttp import web

from tap_tradecloud.sandbox import free_port
from tap_tradecloud.spool import SpoolWriter
from tap_tradecloud.tap import TapTradecloud
from tap_tradecloud.webhook.app import DEFAULT_MAX_BODY_BYTES, ReceiverConfig, create_app
from tap_tradecloud.webhook.auth import Credentials

if TYPE_CHECKING:
    from collections.abc import Iterator

TOKEN = "test-webhook-token"
USERNAME = "tradecloud"
PASSWORD = "test-webhook-password"
PATH = "/webhooks/tradecloud"
API_URL = "https://tradecloud.test/v2"
RECEIVER_SCRIPT = Path(sys.executable).parent / "tap-tradecloud-webhook"


def event_body(
    kind: str = "orderEvent",
    *,
    order_id: str = "order-1",
    message_id: str | None = None,
    event_name: str = "OrderLinesAcceptedBySupplier",
    last_updated_at: str = "2025-04-23T10:01:53.812Z",
    padding: int = 0,
) -> bytes:
    """Return a Tradecloud-shaped webhook body; ``message_id`` goes into ``meta`` of the event."""
    event: dict[str, object] = {"orderId": order_id, "lastUpdatedAt": last_updated_at}
    if message_id is not None:
        event["meta"] = {"messageId": message_id, "createdDateTime": last_updated_at}
    if padding:
        event["buyerOrder"] = {"description": "x" * padding}
    return json.dumps({"eventName": event_name, kind: event}).encode()


@contextmanager
def small_tmpfs(mount_point: Path, size: str = "256k") -> Iterator[Path]:
    """Mount a tiny tmpfs (needs root); skip the test when this machine does not allow it."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def spool_files(spool_dir: Path, instance: str, folder: str) -> list[str]:
    """Return the sorted file names in one folder of a partition."""
    path = spool_dir / instance / folder
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


@dataclass
class InThreadReceiver:
    """A receiver app served from a background thread on 127.0.0.1."""

    url: str
    writer: SpoolWriter
    app: web.Application

    @property
    def webhook_url(self) -> str:
        return self.url + PATH


@contextmanager
def receiver_in_thread(
    spool_dir: Path,
    *,
    instance: str = "r1",
    credentials: Credentials | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    min_free_bytes: int = 0,
    max_pending_writes: int = 256,
) -> Iterator[InThreadReceiver]:
    """Run the receiver app in a thread; stop it and release the spool on exit."""
    if credentials is None:
        credentials = Credentials(token=TOKEN.encode())
    writer = SpoolWriter(spool_dir, instance, min_free_bytes=min_free_bytes, min_free_inodes=0)
    writer.open()
    config = ReceiverConfig(
        credentials=credentials,
        path=PATH,
        max_body_bytes=max_body_bytes,
        max_pending_writes=max_pending_writes,
    )
    loop = asyncio.new_event_loop()
    app = create_app(config, writer)
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    port = free_port()
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield InThreadReceiver(url=f"http://127.0.0.1:{port}", writer=writer, app=app)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()
        writer.close()


class ReceiverProcess:
    """``tap-tradecloud-webhook`` started from its console script, as a user would."""

    def __init__(
        self,
        spool_dir: Path | str,
        instance: str,
        *extra_args: str,
        tls: tuple[Path, Path] | None = None,
        log_dir: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.verify: str | bool = str(tls[0]) if tls else True
        if tls:
            extra_args = (*extra_args, "--tls-cert", str(tls[0]), "--tls-key", str(tls[1]))
        log_dir = log_dir or Path(spool_dir).parent
        self.log_path = log_dir / f"receiver-{instance}-{uuid.uuid4().hex[:6]}.log"
        env = {**os.environ, "TRADECLOUD_WEBHOOK_TOKEN": TOKEN}
        args = [str(RECEIVER_SCRIPT), "--spool-dir", str(spool_dir), "--instance-id", instance]
        args += ["--port", str(self.port), "--min-free-bytes", "0", *extra_args]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
            )

    @property
    def webhook_url(self) -> str:
        return self.url + PATH

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"receiver exited: {self.log_path.read_text()}"
                raise RuntimeError(msg)
            try:
                health = requests.get(self.url + "/healthz", timeout=5, verify=self.verify)
                if health.status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                # Not listening yet, or too slow to answer on a loaded machine: ask again.
                time.sleep(0.05)
        msg = "receiver did not become healthy"
        raise RuntimeError(msg)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=timeout)


def auth_headers() -> dict[str, str]:
    """Headers of an authenticated JSON request."""
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def config(spool_dir: Path, **overrides: Any) -> dict[str, Any]:
    """Tap settings for reading ``spool_dir`` (Basic auth against a mocked API)."""
    return {
        "username": "integration@example.com",
        "password": "tap-password",
        "auth_method": "basic",
        "polling_api": "poll",
        "api_url": API_URL,
        "spool_dir": str(spool_dir),
        "fetch_orders_for_notifications": False,
        **overrides,
    }


def sync(settings: dict[str, Any], state: dict | None = None) -> tuple[list[dict], list[dict], str]:
    """Run the tap with only webhook_events selected; return records, STATE values, stdout."""
    tap = TapTradecloud(config=settings, state=copy.deepcopy(state) if state else None)
    for name, stream in tap.streams.items():
        stream.selected = name == "webhook_events"
    out = io.StringIO()
    with redirect_stdout(out):
        tap.sync_all()
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    return records, states, out.getvalue()


def bookmarks(state: dict) -> dict[str, int]:
    """The webhook_events bookmark of each receiver partition in a STATE value."""
    partitions = state["bookmarks"]["webhook_events"]["partitions"]
    assert all("progress_markers" not in p for p in partitions)
    return {p["context"]["receiver_instance"]: p["replication_key_value"] for p in partitions}


class Load:
    """Client threads POSTing events with unique message ids; remembers which got a 200."""

    def __init__(self, url: str, *, threads: int, per_thread: int, prefix: str = "m") -> None:
        self.url = url
        self.lock = threading.Lock()
        self.attempted: set[str] = set()
        self.acknowledged: set[str] = set()
        self.failed = 0
        self.threads = [
            threading.Thread(target=self._post, args=(f"{prefix}-{t}", per_thread), daemon=True)
            for t in range(threads)
        ]

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def join(self, timeout: float = 120.0) -> None:
        for thread in self.threads:
            thread.join(timeout=timeout)

    def wait_for_acknowledgements(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count and time.monotonic() < deadline and self.running():
            time.sleep(0.01)

    def _post(self, name: str, count: int) -> None:
        with requests.Session() as session:
            for i in range(count):
                message_id = f"{name}-{i}"
                with self.lock:
                    self.attempted.add(message_id)
                try:
                    answer = session.post(
                        self.url,
                        data=event_body(message_id=message_id, padding=1500),
                        headers=auth_headers(),
                        timeout=10,
                    )
                except requests.ConnectionError:
                    with self.lock:
                        self.failed += 1
                    return
                with self.lock:
                    if answer.status_code == 200:
                        self.acknowledged.add(message_id)
                    else:
                        self.failed += 1


def ten_events_after_restart(receiver: ReceiverProcess) -> Load:
    """Send 10 events to a restarted ``receiver`` (2 clients x 5), then stop it."""
    try:
        receiver.wait_healthy()
        after = Load(receiver.webhook_url, threads=2, per_thread=5, prefix="after").start()
        after.join()
    finally:
        receiver.stop()
    return after
