"""A bounded webhook load generator (aiohttp client), and the 2 KB event bodies it sends.

    python bench/webhook_load.py URL --events 4000 --concurrency 16            # closed loop
    python bench/webhook_load.py URL --rate 100 --seconds 10 --concurrency 16  # paced, open loop

The Bearer token comes from $TRADECLOUD_WEBHOOK_TOKEN. Prints one JSON object: events sent,
acknowledged (2xx), failed, seconds, events/s and latency percentiles in ms. In the paced mode
latency counts from the moment an event was due, so a stalled receiver shows as latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid

import aiohttp

EVENT_BYTES = 2048
MAX_SECONDS = 120.0


def event_body(number: int) -> bytes:
    """A Tradecloud ``orderEvent`` of about 2 KB with a unique ``meta.messageId``."""
    lines: list[dict[str, object]] = []
    event = {
        "eventName": "OrderLinesConfirmedBySupplier",
        "meta": {"messageId": str(uuid.UUID(int=number + 1)), "source": "bench"},
        "orderEvent": {
            "orderId": f"bench-order-{number:08d}",
            "lastUpdatedAt": "2024-06-01T12:00:00.000Z",
            "buyerOrder": {"companyId": "buyer-1", "purchaseOrderNumber": f"PO-{number}"},
            "lines": lines,
        },
    }
    while len(body := json.dumps(event).encode()) < EVENT_BYTES - 120:
        position = len(lines) + 1
        lines.append(
            {
                "position": f"{position:04d}",
                "itemNumber": f"ITEM-{number % 997:05d}-{position}",
                "quantity": 10 * position,
                "price": {"value": "12.50", "currency": "EUR"},
                "deliveryDate": "2024-07-01",
            }
        )
    return body


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


class Load:
    def __init__(self, url: str, token: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.latencies: list[float] = []
        self.failed = 0

    async def send(self, number: int, due: float) -> None:
        try:
            async with self.session.post(
                self.url, data=event_body(number), headers=self.headers
            ) as response:
                await response.read()
                ok = 200 <= response.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok = False
        if ok:
            self.latencies.append((time.perf_counter() - due) * 1000)
        else:
            self.failed += 1


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
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    token = os.environ.get("TRADECLOUD_WEBHOOK_TOKEN", "")
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        load = Load(args.url, token, session)
        started = time.perf_counter()
        deadline = started + args.max_seconds
        if args.rate:
            await paced(load, args.rate, args.seconds, deadline)
        else:
            await closed_loop(load, args.events, args.concurrency, deadline)
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
