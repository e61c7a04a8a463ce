"""Shared pieces of the spool, receiver and webhook_events tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from aiohttp import web

from tap_tradecloud.spool import SpoolWriter
from tap_tradecloud.webhook.app import ReceiverConfig, create_app
from tap_tradecloud.webhook.auth import Credentials

TOKEN = "test-webhook-token"
USERNAME = "tradecloud"
PASSWORD = "test-webhook-password"
PATH = "/webhooks/tradecloud"
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


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spool_files(spool_dir: Path, instance: str, folder: str) -> list[str]:
    """Return the sorted file names in one folder of a partition."""
    path = spool_dir / instance / folder
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


@dataclass
class InThreadReceiver:
    """A receiver app served from a background thread on 127.0.0.1."""

    url: str
    writer: SpoolWriter

    @property
    def webhook_url(self) -> str:
        return self.url + PATH


@contextmanager
def receiver_in_thread(
    spool_dir: Path,
    *,
    instance: str = "r1",
    credentials: Credentials | None = None,
    max_body_bytes: int = 1024 * 1024,
    min_free_bytes: int = 0,
) -> Iterator[InThreadReceiver]:
    """Run the receiver app in a thread; stop it and release the spool on exit."""
    if credentials is None:
        credentials = Credentials(token=TOKEN.encode())
    writer = SpoolWriter(spool_dir, instance, min_free_bytes=min_free_bytes, min_free_inodes=0)
    writer.open()
    config = ReceiverConfig(credentials=credentials, path=PATH, max_body_bytes=max_body_bytes)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(config, writer), access_log=None)
    loop.run_until_complete(runner.setup())
    port = free_port()
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield InThreadReceiver(url=f"http://127.0.0.1:{port}", writer=writer)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()
        writer.close()


class ReceiverProcess:
    """``tap-tradecloud-webhook`` started from its console script, as a user would."""

    def __init__(
        self, spool_dir: Path, instance: str, *extra_args: str, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.verify: str | bool = str(tls[0]) if tls else True
        if tls:
            extra_args = (*extra_args, "--tls-cert", str(tls[0]), "--tls-key", str(tls[1]))
        self.log_path = spool_dir.parent / f"receiver-{instance}-{uuid.uuid4().hex[:6]}.log"
        env = {**os.environ, "TRADECLOUD_WEBHOOK_TOKEN": TOKEN}
        args = [str(RECEIVER_SCRIPT), "--spool-dir", str(spool_dir), "--instance-id", instance]
        args += ["--port", str(self.port), "--min-free-bytes", "0", *extra_args]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def webhook_url(self) -> str:
        return self.url + PATH

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"receiver exited: {self.log_path.read_text()}")
            try:
                health = requests.get(self.url + "/healthz", timeout=1, verify=self.verify)
                if health.status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("receiver did not become healthy")

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
