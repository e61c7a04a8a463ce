"""The sandbox's HTTP API: Tradecloud's routes under ``/v2`` and the ``/_sandbox`` controls."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tap_tradecloud.sandbox.clock import now_ms
from tap_tradecloud.sandbox.core import FAULT_KEYS, RequestRecord, Sandbox
from tap_tradecloud.sandbox.query import BadRequest, parse_query

if TYPE_CHECKING:
    from tap_tradecloud.sandbox.tokens import TokenPair

logger = logging.getLogger("tap_tradecloud.sandbox")

INVALID_AUTH = "The supplied authentication is invalid"
AUTH_PREFIX = "/v2/authentication/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SANDBOX_KEY = web.AppKey("sandbox", Sandbox)
JSON_KEY = web.RequestKey("json", object)  # the parsed body, read once by the middleware
WebhookLog = Callable[[], list[dict[str, Any]]]
WEBHOOK_LOG_KEY: web.AppKey[WebhookLog] = web.AppKey("webhook_log")


# Control keys that change data: {key: (result key, what it does)}.
_CHANGES: dict[str, tuple[str, Callable[[Sandbox, int], list[str]]]] = {
    "change_orders": ("changed", Sandbox.change_orders),
    "add_orders": ("added", Sandbox.add_orders),
    "change_shipments": ("changed_shipments", Sandbox.change_shipments),
    "add_shipments": ("added_shipments", Sandbox.add_shipments),
}


def _sandbox(request: web.Request) -> Sandbox:
    return request.app[SANDBOX_KEY]


def _unauthorized() -> web.Response:
    return web.Response(status=401, text=INVALID_AUTH)


def _auth_scheme(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme = header.split(" ", 1)[0].capitalize()
    return scheme if scheme in ("Basic", "Bearer") else None


def _authorized(request: web.Request, *, basic_allowed: bool) -> bool:
    """Bearer access tokens everywhere; Basic only where Tradecloud accepts it."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    tokens = _sandbox(request).tokens
    if scheme.lower() == "bearer":
        return tokens.access_ok(credential.strip())
    if scheme.lower() == "basic" and basic_allowed:
        return tokens.basic_ok(credential.strip())
    return False


async def _read_json(request: web.Request) -> Any:
    """The parsed JSON body, or ``None`` when there is none or it is not JSON."""
    if not request.body_exists:
        return None
    try:
        return json.loads(await request.read())
    except ValueError:
        return None


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency, faults and the request log around every ``/v2`` request; one log line each."""
    started = time.perf_counter()
    if not request.path.startswith("/v2/"):
        return await handler(request)
    sandbox = _sandbox(request)
    request[JSON_KEY] = await _read_json(request)
    if sandbox.faults.latency:
        await asyncio.sleep(sandbox.faults.latency)
    failure = sandbox.faults.for_request(is_auth=request.path.startswith(AUTH_PREFIX))
    if failure is not None:
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        text = INVALID_AUTH if failure.status == 401 else f"Sandbox fault: HTTP {failure.status}"
        response: web.StreamResponse = web.Response(
            status=failure.status, text=text, headers=headers
        )
    else:
        try:
            response = await handler(request)
        except web.HTTPException as error:  # an unknown route or method
            response = web.Response(status=error.status, text=error.text)
    sandbox.requests_log.append(
        RequestRecord(
            request.method, request.path, request[JSON_KEY], response.status, _auth_scheme(request)
        )
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info("%s %s %d %.1fms", request.method, request.path, response.status, elapsed_ms)
    return response


def _token_response(sandbox: Sandbox, pair: TokenPair) -> web.Response:
    """Answer a login or refresh: the tokens travel in response headers.

    The body is only informational (login and refresh alike answer ``"authenticated"``).
    """
    return web.json_response(
        {"username": sandbox.tokens.username, "status": "authenticated"},
        headers={"Set-Authorization": pair.access_token, "Set-Refresh-Token": pair.refresh_token},
    )


async def login(request: web.Request) -> web.Response:
    """``GET /authentication/login``: Basic credentials in, a token pair out in the headers."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    sandbox = _sandbox(request)
    if scheme.lower() != "basic" or not sandbox.tokens.basic_ok(credential.strip()):
        return _unauthorized()
    return _token_response(sandbox, sandbox.tokens.issue())


async def refresh(request: web.Request) -> web.Response:
    """``GET /authentication/refresh``: a single-use refresh token in, a new pair out."""
    sandbox = _sandbox(request)
    pair = sandbox.tokens.refresh(request.headers.get("Refresh-Token", ""))
    if pair is None:
        return _unauthorized()
    return _token_response(sandbox, pair)


async def logout(request: web.Request) -> web.Response:
    """``POST /authentication/logout``: the refresh token dies at once."""
    if not _sandbox(request).tokens.logout(request.headers.get("Refresh-Token", "")):
        return _unauthorized()
    return web.json_response({"ok": True})


def _page_body(sandbox: Sandbox, body: Any, endpoint: str) -> bytes:
    query = parse_query(body, endpoint, max_limit=sandbox.config.max_limit)
    page = sandbox.store.page(query, now_ms())
    parts = [b'{"data":[', b",".join(page.bodies), b'],"total":', str(page.total).encode()]
    if endpoint == "poll":
        filter_value = (body.get("filters") or {}).get("lastUpdatedAfter")
        last_updated_at = page.last_updated_at or filter_value
        parts += [b',"lastUpdatedAt":', json.dumps(last_updated_at).encode()]
    parts.append(b"}")
    return b"".join(parts)


def _order_search(endpoint: str) -> Handler:
    # Tradecloud documents Basic on order-search/poll, but no longer on order-search/search.
    basic_allowed = endpoint == "poll"

    async def handle(request: web.Request) -> web.Response:
        if not _authorized(request, basic_allowed=basic_allowed):
            return _unauthorized()
        sandbox = _sandbox(request)
        if request[JSON_KEY] is None:
            return web.Response(
                status=400, text='The request body must be JSON, e.g. {"filters": {}, "limit": 100}'
            )
        sandbox.next_order_request()
        try:
            body = _page_body(sandbox, request[JSON_KEY], endpoint)
        except BadRequest as error:
            return web.Response(status=400, text=str(error))
        return web.Response(body=body, content_type="application/json")

    return handle


async def shipment_poll(request: web.Request) -> web.Response:
    """``POST /shipment/poll``: Basic or Bearer, like order poll."""
    if not _authorized(request, basic_allowed=True):
        return _unauthorized()
    if request[JSON_KEY] is None:
        return web.Response(status=400, text='The request body must be JSON, e.g. {"limit": 100}')
    try:
        body = _sandbox(request).shipments.page_body(request[JSON_KEY], now_ms())
    except BadRequest as error:
        return web.Response(status=400, text=str(error))
    return web.Response(body=body, content_type="application/json")


async def get_order(request: web.Request) -> web.Response:
    """``GET /order/{orderId}``: the whole current order (Bearer only), or 404."""
    if not _authorized(request, basic_allowed=False):
        return _unauthorized()
    body = _sandbox(request).store.get(request.match_info["order_id"])
    if body is None:
        return web.Response(status=404, text="Order not found")
    return web.Response(body=body, content_type="application/json")


async def control(request: web.Request) -> web.Response:
    """Faults and changes for a sandbox running in another process."""
    sandbox = _sandbox(request)
    try:
        command = await request.json()
    except ValueError:
        return web.Response(status=400, text="The control body must be a JSON object")
    if not isinstance(command, dict):
        return web.Response(status=400, text="The control body must be a JSON object")
    known = {*FAULT_KEYS, "expire_access_tokens", "inject_responses", *_CHANGES}
    unknown = sorted(set(command) - known)
    if unknown:
        return web.Response(
            status=400, text=f"Unknown control keys {unknown}; known: {sorted(known)}"
        )
    try:
        return web.json_response(_apply_control(sandbox, command))
    except (KeyError, TypeError, ValueError) as error:
        return web.Response(status=400, text=f"Bad control command {command!r}: {error!r}")


def _apply_control(sandbox: Sandbox, command: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    sandbox.set_faults(**{key: command[key] for key in FAULT_KEYS if key in command})
    if command.get("expire_access_tokens"):
        sandbox.expire_access_tokens()
    if "inject_responses" in command:
        injected = command["inject_responses"]
        sandbox.inject_responses(injected["statuses"], injected.get("retry_after"))
    for key, (result_key, apply) in _CHANGES.items():
        if key in command:
            result[result_key] = apply(sandbox, int(command[key]))
    return result


async def current_orders(request: web.Request) -> web.Response:
    """``GET /_sandbox/orders``: every current order, as a JSON array."""
    bodies = _sandbox(request).store.current_bodies()
    return web.Response(body=b"[" + b",".join(bodies) + b"]", content_type="application/json")


async def delivered_webhooks(request: web.Request) -> web.Response:
    """``GET /_sandbox/webhooks/delivered``: the webhooks the receiver answered with 2xx."""
    return web.json_response(request.app[WEBHOOK_LOG_KEY]())


def build_app(sandbox: Sandbox, *, webhook_log: WebhookLog, controls: bool) -> web.Application:
    """The aiohttp application; ``controls`` adds the unauthenticated ``/_sandbox`` routes."""
    app = web.Application(middlewares=[api_middleware])
    app[SANDBOX_KEY] = sandbox
    app[WEBHOOK_LOG_KEY] = webhook_log
    app.router.add_get("/v2/authentication/login", login)
    app.router.add_get("/v2/authentication/refresh", refresh)
    app.router.add_post("/v2/authentication/logout", logout)
    app.router.add_post("/v2/order-search/search", _order_search("search"))
    app.router.add_post("/v2/order-search/poll", _order_search("poll"))
    app.router.add_get("/v2/order/{order_id}", get_order)
    app.router.add_post("/v2/shipment/poll", shipment_poll)
    if controls:
        app.router.add_post("/_sandbox/control", control)
        app.router.add_get("/_sandbox/orders", current_orders)
        app.router.add_get("/_sandbox/webhooks/delivered", delivered_webhooks)
    return app
