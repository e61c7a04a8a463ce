"""The benchmark's load generator: every event reaches the server once and is counted right.

Benchmark 4's ratio depends on it: it must send each event body once, read every response to
its end (Content-Length or chunked), count 2xx as acknowledged and anything else as failed, and
open a new connection when the server closes one.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

from bench.webhook_load import event_body, main

TOKEN = "load-test-token"


def _app(seen: list[str]) -> web.Application:
    async def accept(request: web.Request) -> web.StreamResponse:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        seen.append(json.loads(await request.read())["meta"]["messageId"])
        mode = request.match_info["mode"]
        if mode == "chunked":
            response = web.StreamResponse(status=202)
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b'{"stored":')
            await response.write(b"true}")
            await response.write_eof()
            return response
        if mode == "closing":
            return web.json_response({"stored": True}, status=202, headers={"Connection": "close"})
        if mode == "refusing":
            return web.json_response({"error": "no"}, status=400)
        return web.json_response({"stored": True}, status=202)

    app = web.Application()
    app.router.add_post("/hook/{mode}", accept)
    return app


async def _run(mode: str, **options: float) -> tuple[dict[str, float], list[str]]:
    seen: list[str] = []
    runner = web.AppRunner(_app(seen))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    args = argparse.Namespace(
        url=f"http://127.0.0.1:{port}/hook/{mode}",
        events=int(options.get("events", 0)),
        concurrency=4,
        rate=options.get("rate", 0.0),
        seconds=options.get("seconds", 0.0),
        max_seconds=20.0,
    )
    try:
        figures = await main(args)
    finally:
        await runner.cleanup()
    return figures, seen


def test_every_event_is_sent_once_and_acknowledged(monkeypatch) -> None:
    monkeypatch.setenv("TRADECLOUD_WEBHOOK_TOKEN", TOKEN)
    for mode in ("plain", "chunked", "closing"):
        figures, seen = asyncio.run(_run(mode, events=200))
        assert figures["acknowledged"] == 200, mode
        assert figures["failed"] == 0, mode
        assert sorted(seen) == sorted(
            json.loads(event_body(number))["meta"]["messageId"] for number in range(200)
        ), mode


def test_refused_events_count_as_failed(monkeypatch) -> None:
    monkeypatch.setenv("TRADECLOUD_WEBHOOK_TOKEN", TOKEN)
    figures, seen = asyncio.run(_run("refusing", events=20))
    assert (figures["acknowledged"], figures["failed"], len(seen)) == (0, 20, 20)


def test_paced_mode_sends_at_the_rate(monkeypatch) -> None:
    monkeypatch.setenv("TRADECLOUD_WEBHOOK_TOKEN", TOKEN)
    figures, seen = asyncio.run(_run("plain", rate=50.0, seconds=1.0))
    assert figures["acknowledged"] == len(seen) == 50
