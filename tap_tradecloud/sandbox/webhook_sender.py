"""Fires each order change as a webhook, retried by Tradecloud's rule.

Tradecloud treats 2xx as delivered, does not retry 4xx nor exactly 500, and retries codes above
500 (and connection failures) with exponential backoff. A retry re-sends the identical bytes,
so the receiver sees the same ``meta.messageId`` again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

logger = logging.getLogger("tap_tradecloud.sandbox.webhooks")

METHODS = ("POST", "PUT", "GET")


@dataclass(frozen=True)
class WebhookDelivery:
    """A webhook the receiver accepted (answered 2xx)."""

    message_id: str
    order_id: str
    method: str
    event_name: str
    body: dict[str, Any] | None  # None for a GET notification
    status: int
    attempts: int

    def as_json(self) -> dict[str, Any]:
        """The delivery as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Event:
    order_id: str
    body: dict[str, Any]
    payload: bytes  # serialized once, so every retry sends the same bytes


def authorization_header(auth: tuple[str, ...] | None) -> str | None:
    """``("basic", user, password)`` or ``("bearer", token)`` as an Authorization value."""
    if auth is None:
        return None
    kind, *values = auth
    if kind == "basic" and len(values) == 2:
        return aiohttp.encode_basic_auth(values[0], values[1])
    if kind == "bearer" and len(values) == 1:
        return f"Bearer {values[0]}"
    msg = 'webhook_auth must be ("basic", user, password) or ("bearer", token)'
    raise ValueError(msg)


def should_retry(status: int) -> bool:
    """Tradecloud's rule: only codes above 500 are retried (4xx and exactly 500 are final)."""
    return status > 500


class WebhookSender:
    """A queue of events delivered one at a time, in order, from the sandbox's event loop."""

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        auth: tuple[str, ...] | None = None,
        max_attempts: int | None = 8,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        if method not in METHODS:
            msg = f"webhook method must be one of {METHODS}, got {method!r}"
            raise ValueError(msg)
        self.url = url
        self.method = method
        self._authorization = authorization_header(auth)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.delivered: list[WebhookDelivery] = []
        self.failed: list[tuple[str, str]] = []  # (messageId, why it was given up)
        self._pending = 0
        self._idle = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Event] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start delivering; call from inside ``loop``."""
        self._loop = loop
        self._queue = asyncio.Queue()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._worker = loop.create_task(self._deliver_all())

    def submit(self, body: dict[str, Any], order_id: str) -> None:
        """Queue an event; safe to call from any thread."""
        if self._loop is None or self._queue is None:
            msg = "the webhook sender is not started"
            raise RuntimeError(msg)
        event = _Event(order_id, body, json.dumps(body, separators=(",", ":")).encode())
        with self._idle:
            self._pending += 1
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no webhook is pending; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    async def close(self) -> None:
        """Stop sending and close the HTTP session."""
        if self._worker is not None:
            self._worker.cancel()
        if self._session is not None:
            await self._session.close()

    async def _deliver_all(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self._deliver(event)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _request(self, event: _Event) -> tuple[str, dict[str, str], bytes | None]:
        headers = {} if self._authorization is None else {"Authorization": self._authorization}
        if self.method == "GET":
            if "{orderId}" in self.url:
                return self.url.replace("{orderId}", quote(event.order_id, safe="")), headers, None
            separator = "&" if "?" in self.url else "?"
            return f"{self.url}{separator}orderId={quote(event.order_id, safe='')}", headers, None
        headers["Content-Type"] = "application/json"
        return self.url, headers, event.payload

    async def _deliver(self, event: _Event) -> None:
        assert self._session is not None
        url, headers, payload = self._request(event)
        message_id = event.body["meta"]["messageId"]
        attempt = 0
        while self.max_attempts is None or attempt < self.max_attempts:
            attempt += 1
            try:
                async with self._session.request(
                    self.method, url, data=payload, headers=headers
                ) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                outcome = f"{type(error).__name__}"
                logger.info(
                    "webhook %s %s: %s (attempt %d)", self.method, message_id, outcome, attempt
                )
            else:
                logger.info(
                    "webhook %s %s: %d (attempt %d)", self.method, message_id, status, attempt
                )
                if 200 <= status < 300:
                    self.delivered.append(self._delivery(event, status, attempt))
                    return
                if not should_retry(status):
                    self.failed.append((message_id, f"HTTP {status}, not retried"))
                    return
            await asyncio.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
        self.failed.append((message_id, f"gave up after {attempt} attempts"))

    def _delivery(self, event: _Event, status: int, attempts: int) -> WebhookDelivery:
        return WebhookDelivery(
            message_id=event.body["meta"]["messageId"],
            order_id=event.order_id,
            method=self.method,
            event_name=event.body["eventName"],
            body=None if self.method == "GET" else event.body,
            status=status,
            attempts=attempts,
        )
