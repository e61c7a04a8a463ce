"""A bounded webhook load generator (a lean asyncio HTTP/1.1 client), and its 2 KB event bodies.

    python bench/webhook_load.py URL --events 4000 --concurrency 16            # closed loop
    python bench/webhook_load.py URL --rate 100 --seconds 10 --concurrency 16  # paced, open loop

The Bearer token comes from $TRADECLOUD_WEBHOOK_TOKEN. Prints one JSON object: events sent,
acknowledged (2xx), failed, seconds, events/s and latency percentiles in ms. In the paced mode
latency counts from the moment an event was due, so a stalled receiver shows as latency.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import sys
import time
import typing as t
import uuid
from urllib.parse import urlsplit

EVENT_BYTES = 2048
MAX_SECONDS = 120.0
REQUEST_TIMEOUT = 30.0


def event_body(number: int) -> bytes:
    """A Tradecloud ``orderEvent`` of about 2 KB with a unique ``meta.messageId``.

    One ``json.dumps`` per event: the number of lines that makes 2 KB depends only on how many
    digits ``number`` has, so it is found once per digit count (building it line by line for
    every event cost the load generator 160 us of CPU per event, as much as the receiver).
    """
    count = _line_count(len(str(number)))
    return json.dumps(_event(number, count)).encode()


def _event(number: int, line_count: int) -> dict[str, object]:
    lines = [
        {
            "position": f"{position:04d}",
            "itemNumber": f"ITEM-{number % 997:05d}-{position}",
            "quantity": 10 * position,
            "price": {"value": "12.50", "currency": "EUR"},
            "deliveryDate": "2024-07-01",
        }
        for position in range(1, line_count + 1)
    ]
    return {
        "eventName": "OrderLinesConfirmedBySupplier",
        "meta": {"messageId": str(uuid.UUID(int=number + 1)), "source": "bench"},
        "orderEvent": {
            "orderId": f"bench-order-{number:08d}",
            "lastUpdatedAt": "2024-06-01T12:00:00.000Z",
            "buyerOrder": {"companyId": "buyer-1", "purchaseOrderNumber": f"PO-{number}"},
            "lines": lines,
        },
    }


@functools.cache
def _line_count(digits: int) -> int:
    """Lines until the body of a number with ``digits`` digits reaches its size."""
    number = 10 ** (digits - 1)
    count = 0
    while len(json.dumps(_event(number, count))) < EVENT_BYTES - 120:
        count += 1
    return count


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a request and waits for its response.

    aiohttp's client took about 150 us of CPU per request, as much as the null receiver
    takes to answer it: on 2 shared cores the load generator then bounds the baseline. This
    client reads only the status line and the body's framing (Content-Length or chunked).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t.cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        response = _complete_response(self.buffer)
        if response is None:
            return
        status, keep_alive = response
        self.buffer.clear()
        if not keep_alive and self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the receiver closed the connection"))

    async def exchange(self, request: bytes, timeout: float) -> int:
        loop = asyncio.get_running_loop()
        assert self.transport is not None
        self.waiter = loop.create_future()
        timer = loop.call_later(timeout, self.waiter.cancel)
        self.transport.write(request)
        try:
            return await self.waiter
        finally:
            timer.cancel()


def _complete_response(buffer: bytearray) -> tuple[int, bool] | None:
    """The status of the response in ``buffer`` and whether the connection stays open, once
    the response is complete; else None."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    status = int(head[9:12])
    body_start = head_end + 4
    keep_alive = b"\r\nconnection: close" not in head
    length = re.search(rb"\r\ncontent-length: *(\d+)", head)
    if length:
        complete = len(buffer) >= body_start + int(length[1])
    elif b"\r\ntransfer-encoding: chunked" in head:
        complete = buffer.endswith(b"0\r\n\r\n")
    else:
        complete = True  # no body
    return (status, keep_alive) if complete else None


class Load:
    def __init__(self, url: str, token: str, connections: int) -> None:
        parts = urlsplit(url)
        self.connections = asyncio.Semaphore(connections)  # as many as the sender opens
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        self.idle: list[_Connection] = []
        self.latencies: list[float] = []
        self.failed = 0

    async def _connection(self) -> _Connection:
        while self.idle:
            connection = self.idle.pop()
            if connection.transport is not None:
                return connection
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self.host, self.port)
        return connection

    async def send(self, number: int, due: float) -> None:
        body = event_body(number)
        request = self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        async with self.connections:
            try:
                connection = await self._connection()
                status = await connection.exchange(request, REQUEST_TIMEOUT)
            except (OSError, asyncio.CancelledError):
                ok = False
            else:
                self.idle.append(connection)
                ok = 200 <= status < 300
        if ok:
            self.latencies.append((time.perf_counter() - due) * 1000)
        else:
            self.failed += 1

    def close(self) -> None:
        for connection in self.idle:
            if connection.transport is not None:
                connection.transport.close()


async def closed_loop(load: Load, events: int, concurrency: int, deadline: float) -> None:
    numbers = iter(range(events))

    async def worker() -> None:
        for number in numbers:
            if time.perf_counter() > deadline:
                return
            await load.send(number, time.perf_counter())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def paced(load: Load, rate: float, seconds: float, deadline: float) -> None:
    started = time.perf_counter()
    tasks = []
    for number in range(int(rate * seconds)):
        due = started + number / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if time.perf_counter() > deadline:
            break
        tasks.append(asyncio.create_task(load.send(number, due)))
    await asyncio.gather(*tasks)


async def main(args: argparse.Namespace) -> dict[str, float]:
    load = Load(args.url, os.environ.get("TRADECLOUD_WEBHOOK_TOKEN", ""), args.concurrency)
    started = time.perf_counter()
    deadline = started + args.max_seconds
    try:
        if args.rate:
            await paced(load, args.rate, args.seconds, deadline)
        else:
            await closed_loop(load, args.events, args.concurrency, deadline)
    finally:
        load.close()
    elapsed = time.perf_counter() - started
    latencies = sorted(load.latencies)
    return {
        "acknowledged": len(latencies),
        "failed": load.failed,
        "seconds": elapsed,
        "events_per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0: closed loop")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS)
    args = parser.parse_args()
    if not args.url.startswith(("http://127.0.0.1:", "http://localhost:")):
        parser.error("the load generator only sends to 127.0.0.1")
    return args


if __name__ == "__main__":
    json.dump(asyncio.run(main(parse_args())), sys.stdout)
