"""Small helpers for the sandbox's own tests: log in and page through the sandbox API."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from aiohttp import web

if TYPE_CHECKING:
    from tap_tradecloud.sandbox import SandboxServer

USERNAME = "integration@example.com"
PASSWORD = "sandbox-password"
TIMEOUT = 10


def login(sb: SandboxServer) -> tuple[str, str]:
    """Log in with Basic credentials; returns (access token, refresh token)."""
    response = requests.get(
        f"{sb.api_url}/authentication/login", auth=(USERNAME, PASSWORD), timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    return response.headers["Set-Authorization"], response.headers["Set-Refresh-Token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(
    sb: SandboxServer, endpoint: str, body: Any, token: str | None = None
) -> requests.Response:
    """POST to ``/order-search/<endpoint>`` with a fresh login unless a token is given."""
    token = token or login(sb)[0]
    return requests.post(
        f"{sb.api_url}/order-search/{endpoint}", json=body, headers=bearer(token), timeout=TIMEOUT
    )


def ids(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [order["id"] for order in response.json()["data"]]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: bytes


class Receiver:
    """A tiny aiohttp webhook receiver on 127.0.0.1 in its own thread.

    It answers each request with the next status from ``answers`` (200 once they run out),
    after waiting ``delays[i]`` seconds for the i-th request when given.
    """

    def __init__(self, answers: list[int] | None = None, delays: list[float] | None = None):
        self.answers = list(answers or [])
        self.delays = list(delays or [])
        self.received: list[Received] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        number = len(self.received)
        self.received.append(
            Received(
                request.method,
                request.path,
                dict(request.query),
                request.headers.get("Authorization"),
                await request.read(),
            )
        )
        if number < len(self.delays):
            await asyncio.sleep(self.delays[number])
        status = self.answers[number] if number < len(self.answers) else 200
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
