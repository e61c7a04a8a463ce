"""Graceful shutdown (what SIGTERM triggers in ``web.run_app``): a started spool write finishes."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from tap_tradecloud import spool
from tap_tradecloud.spool import SpoolWriter
from tap_tradecloud.webhook.app import ReceiverConfig, create_app
from tap_tradecloud.webhook.auth import Credentials
from tests.webhook_helpers import PATH, TOKEN, auth_headers, event_body, free_port

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_shutdown_waits_for_a_spool_write_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_started, disk_may_finish = threading.Event(), threading.Event()
    real_write_all = spool.local._write_all

    def slow_disk(fd: int, data: bytes) -> None:
        if b"in-flight" in data:  # the event's segment, not the partition's identity
            write_started.set()
            disk_may_finish.wait(timeout=20)
        real_write_all(fd, data)

    monkeypatch.setattr(spool.local, "_write_all", slow_disk)
    body = event_body(message_id="in-flight")

    async def scenario() -> tuple[int, bool]:
        with SpoolWriter(tmp_path, "r1", min_free_bytes=0) as writer:
            config = ReceiverConfig(credentials=Credentials(token=TOKEN.encode()))
            runner = web.AppRunner(create_app(config, writer), shutdown_timeout=20)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            async with aiohttp.ClientSession() as client:
                posting = asyncio.create_task(
                    client.post(f"http://127.0.0.1:{port}{PATH}", data=body, headers=auth_headers())
                )
                assert await asyncio.to_thread(write_started.wait, 20)
                stopping = asyncio.create_task(runner.cleanup())
                await asyncio.sleep(0.2)  # ordering only: cleanup is now waiting on the handler
                finished_early = stopping.done()
                disk_may_finish.set()
                response = await posting
                await stopping
                return response.status, finished_early

    status, finished_early = asyncio.run(scenario())

    assert (status, finished_early) == (200, False)
    assert [e.body for e in spool.iter_events(tmp_path, "r1")] == [body]
