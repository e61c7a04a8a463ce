"""The aiohttp receiver: authenticate, check, spool durably, and only then acknowledge.

Status codes, as Tradecloud reads them: 2xx delivered; 4xx (400, 401, 404, 405, 413, 415) and
exactly 500 are never retried; codes above 500 are retried for ever. So every transient or
unexpected failure answers 503 with ``Retry-After``, never 500, and an authenticated request
gets a 4xx only when it is no Tradecloud delivery at all (400, kept in quarantine), is larger
than the configured limit (413) or has a content type Tradecloud never sends (415).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from aiohttp import hdrs, web

from tap_tradecloud.spool import (
    EventMeta,
    SpoolConflictError,
    SpoolError,
    SpoolWriter,
    is_disk_full,
    utc_now_ms,
)
from tap_tradecloud.webhook.events import (
    UnacceptableBodyError,
    check_xml_body,
    is_json,
    is_xml,
    parse_event_body,
    validate_order_id,
)
from tap_tradecloud.webhook.log_redaction import redact_aiohttp_logs

if TYPE_CHECKING:
    from tap_tradecloud.webhook.auth import Credentials

ACCESS_LOGGER = logging.getLogger("tap_tradecloud.webhook.access")
LOGGER = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
DEFAULT_PATH = "/webhooks/tradecloud"
# A 500-line order event is about 1.2 MB; a body above the limit is lost (413), so leave room.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

# Checking a body parses it; a small one is parsed on the event loop (tens of microseconds),
# a large one (up to about 10 ms per MB) in a thread, so that it never stalls other requests.
INLINE_CHECK_BYTES = 64 * 1024

_T = TypeVar("_T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ReceiverConfig:
    """How the receiver behaves; ``credentials=None`` means no authentication at all."""

    credentials: Credentials | None
    path: str = DEFAULT_PATH
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    retry_after_seconds: int = 10
    write_threads: int = 8
    max_pending_writes: int = 256


@dataclass
class _Stored:
    sequence: int | None = None
    quarantine_name: str | None = None
    reason: str | None = None


class _SpoolGate:
    """Queues spool writes from the event loop; refuses work when too much is queued.

    A delivery goes straight from the event loop to the writer's group-commit queue: no thread
    hop on the way in, one on the way back. The thread pool is only for work that may block or
    take long: checking a large body, writing a quarantined one, the health check.
    """

    def __init__(self, writer: SpoolWriter, threads: int, max_pending: int) -> None:
        self.writer = writer
        self.max_pending = max_pending
        self.pending = 0
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="spool")

    async def run(self, body: bytes, meta: EventMeta, check: Callable[[], object]) -> _Stored:
        if self.pending >= self.max_pending:
            msg = f"{self.pending} spool writes already queued; the spool is too slow"
            raise SpoolError(msg)
        self.pending += 1
        try:
            try:
                if len(body) > INLINE_CHECK_BYTES:
                    await self.in_thread(check)
                else:
                    check()
            except UnacceptableBodyError as exc:
                reason = str(exc)
                name = await self.in_thread(lambda: self.writer.quarantine(body, meta, reason))
                return _Stored(quarantine_name=name, reason=reason)
            sequence = await self.writer.submit_from_loop(body, meta)
            return _Stored(sequence=sequence)
        finally:
            self.pending -= 1

    async def in_thread(self, work: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)


CONFIG_KEY = web.AppKey("config", ReceiverConfig)
GATE_KEY = web.AppKey("gate", _SpoolGate)
RESULT_KEY = web.RequestKey("result", _Stored)
BODY_BYTES_KEY = web.RequestKey("body_bytes", int)


def _service_unavailable(config: ReceiverConfig, reason: str) -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(
        headers={hdrs.RETRY_AFTER: str(config.retry_after_seconds)},
        text=json.dumps({"error": reason}),
        content_type="application/json",
    )


def _describe_failure(exc: Exception) -> str:
    if isinstance(exc, ConnectionError):
        return "client connection lost"
    if is_disk_full(exc):
        return "spool disk full"
    if isinstance(exc, OSError):
        return "spool I/O error"
    if isinstance(exc, SpoolError):
        return "spool unavailable"
    return "internal error"


@web.middleware
async def log_and_map_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every unexpected failure into 503 and log one JSON line per request."""
    started = time.perf_counter()
    config = request.app[CONFIG_KEY]
    status = 503
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        if exc.status == 500:  # Tradecloud drops a 500 for good; make it retry instead.
            LOGGER.exception("Handler answered 500; answering 503 instead")
            raise _service_unavailable(config, "internal error") from exc
        status = exc.status
        raise
    except Exception as exc:
        reason = _describe_failure(exc)
        if isinstance(exc, SpoolConflictError):
            LOGGER.error("Answering 503 (%s): %s", reason, exc)  # noqa: TRY400 - no traceback
        elif isinstance(exc, (OSError, SpoolError)):
            LOGGER.warning("Answering 503 (%s): %s", reason, exc)
        else:
            LOGGER.exception("Answering 503 (%s)", reason)
        raise _service_unavailable(config, reason) from exc
    finally:
        _log_request(request, status, started)
    return response


def _log_request(request: web.Request, status: int, started: float) -> None:
    stored = request.get(RESULT_KEY)
    fields = {
        "method": request.method,
        "path": request.path,  # never the query string: it may hold an order id or worse
        "status": status,
        "bytes": request.get(BODY_BYTES_KEY, 0),
        "ms": round((time.perf_counter() - started) * 1000, 2),
        "remote": request.remote,
    }
    if stored is not None and stored.sequence is not None:
        fields["sequence"] = stored.sequence
    if stored is not None and stored.quarantine_name is not None:
        fields["quarantine"] = stored.quarantine_name
    ACCESS_LOGGER.info("request", extra={"fields": fields})


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check credentials before anything else; a failure writes nothing."""
    credentials = request.app[CONFIG_KEY].credentials
    if request.path == HEALTH_PATH or credentials is None:
        return await handler(request)
    if not await credentials.authorize(request.headers.get(hdrs.AUTHORIZATION)):
        raise web.HTTPUnauthorized(
            headers={hdrs.WWW_AUTHENTICATE: credentials.challenge()},
            text="Missing or wrong credentials",
        )
    return await handler(request)


async def _store(
    request: web.Request, body: bytes, meta: EventMeta, check: Callable[[], object]
) -> web.Response:
    stored = await request.app[GATE_KEY].run(body, meta, check)
    request[RESULT_KEY] = stored
    if stored.reason is not None:
        LOGGER.warning(
            "Quarantined %s as %s: %s", meta.method, stored.quarantine_name, stored.reason
        )
        raise web.HTTPBadRequest(
            text=json.dumps({"error": stored.reason, "quarantined": True}),
            content_type="application/json",
        )
    return web.json_response({"status": "stored"})


async def receive_event(request: web.Request) -> web.Response:
    """POST or PUT with a JSON or tXML event body."""
    config = request.app[CONFIG_KEY]
    if is_json(request.content_type):
        check: Callable[[bytes], object] = parse_event_body
    elif is_xml(request.content_type):
        check = check_xml_body
    else:
        raise web.HTTPUnsupportedMediaType(
            text="Send the event as Content-Type: application/json (or application/xml for tXML)"
        )
    declared = request.content_length
    if declared is not None and declared > config.max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=config.max_body_bytes, actual_size=declared)
    body = await request.read()  # client_max_size stops a chunked body that grows too large
    request[BODY_BYTES_KEY] = len(body)
    meta = EventMeta(
        received_at=utc_now_ms(),
        method=request.method,
        path=request.path,
        content_type=request.headers.get(hdrs.CONTENT_TYPE),
    )
    return await _store(request, body, meta, lambda: check(body))


async def receive_notification(request: web.Request) -> web.Response:
    """Legacy GET notification: ``<path>/{orderId}`` or ``<path>?orderId=``."""
    order_id = request.match_info.get("order_id") or request.query.get("orderId")
    meta = EventMeta(
        received_at=utc_now_ms(), method=request.method, path=request.path, order_id=order_id
    )
    return await _store(request, b"", meta, lambda: validate_order_id(order_id))


async def health(request: web.Request) -> web.Response:
    """200 when the spool is writable and above the free-space guard, else 503."""
    gate = request.app[GATE_KEY]

    try:
        await gate.in_thread(gate.writer.check_health)
    except (SpoolError, OSError) as exc:
        # Anyone may ask: paths, OS errors and free space go to the log only.
        LOGGER.warning("Health check failed: %s", exc)
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})


async def _stop_gate(app: web.Application) -> None:
    # Let writes that already started finish before the writer's lock is released.
    await asyncio.to_thread(app[GATE_KEY].executor.shutdown, True)


def create_app(config: ReceiverConfig, writer: SpoolWriter) -> web.Application:
    """Build the receiver application around an opened spool writer."""
    redact_aiohttp_logs()
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[log_and_map_errors, authenticate],
    )
    app[CONFIG_KEY] = config
    app[GATE_KEY] = _SpoolGate(writer, config.write_threads, config.max_pending_writes)
    path = config.path.rstrip("/") or ""
    app.router.add_get(HEALTH_PATH, health, allow_head=False)
    app.router.add_post(path or "/", receive_event)
    app.router.add_put(path or "/", receive_event)
    app.router.add_get(path or "/", receive_notification, allow_head=False)
    app.router.add_get(f"{path}/{{order_id}}", receive_notification, allow_head=False)
    app.on_cleanup.append(_stop_gate)
    return app
