"""A loopback TCP proxy that delays every server reply by a fixed time: a remote store's latency.

    python bench/latency_proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS [MAX_SECONDS]

Bytes from the client go upstream at once; bytes from the server are written to the client
DELAY_MS after they arrived, in order, so each request/response exchange takes DELAY_MS longer
without limiting throughput (a pipe with that much latency). Binds 127.0.0.1 only and stops by
itself after MAX_SECONDS (default 600).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

HOST = "127.0.0.1"
CHUNK = 256 * 1024


async def _client_to_server(client: asyncio.StreamReader, server: asyncio.StreamWriter) -> None:
    while data := await client.read(CHUNK):
        server.write(data)
        await server.drain()
    server.close()


async def _server_to_client(
    server: asyncio.StreamReader, client: asyncio.StreamWriter, delay: float
) -> None:
    due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            at, data = await due.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            client.write(data)
            await client.drain()
        client.close()

    delivering = asyncio.create_task(deliver())
    while data := await server.read(CHUNK):
        due.put_nowait((time.monotonic() + delay, data))
    due.put_nowait((time.monotonic() + delay, b""))
    await delivering


async def main(listen: int, upstream: int, delay: float, max_seconds: float) -> None:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(HOST, upstream)
        with contextlib.suppress(ConnectionError):
            await asyncio.gather(
                _client_to_server(client_r, server_w), _server_to_client(server_r, client_w, delay)
            )

    server = await asyncio.start_server(relay, HOST, listen)
    async with server:
        await asyncio.sleep(max_seconds)


if __name__ == "__main__":
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 600.0
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000, seconds))
