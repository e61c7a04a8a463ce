"""``SandboxServer``: the sandbox served by aiohttp on its own event loop in a background thread."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tap_tradecloud.sandbox.api import build_app
from tap_tradecloud.sandbox.core import Sandbox, SandboxConfig
from tap_tradecloud.sandbox.webhook_sender import WebhookDelivery, WebhookSender

if TYPE_CHECKING:
    from types import TracebackType

    from tap_tradecloud.sandbox.data import Order
    from tap_tradecloud.sandbox.shipments import Shipment

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0
_SHUTDOWN_GRACE = 5.0  # seconds in-flight requests get to finish on stop


def is_loopback(host: str) -> bool:
    """Whether ``host`` names a loopback address (controls are served only there)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SandboxServer(Sandbox):
    """A running sandbox: ``with SandboxServer(cfg) as sb: ... sb.api_url ...``."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        orders: list[Order] | None = None,
        shipments: list[Shipment] | None = None,
    ) -> None:
        super().__init__(config or SandboxConfig(), orders, shipments)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._activity: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self.webhooks: WebhookSender | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The API base URL, ``http://HOST:PORT/v2``: the tap's ``api_url``."""
        return f"{self.base_url}/v2"

    @property
    def controls_enabled(self) -> bool:
        """The ``/_sandbox`` routes need no auth, so they exist only on a loopback address."""
        return is_loopback(self.config.host)

    @property
    def webhook_log(self) -> list[WebhookDelivery]:
        """Every webhook the sender considers delivered (answered 2xx), in order."""
        return [] if self.webhooks is None else list(self.webhooks.delivered)

    def wait_for_webhooks(self, timeout: float) -> bool:
        """Wait until no webhook is queued or being retried; False if that took too long."""
        return True if self.webhooks is None else self.webhooks.wait_idle(timeout)

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Serve in a background thread; return once it listens."""
        self._thread = threading.Thread(target=self._run, name="tradecloud-sandbox", daemon=True)
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT):
            msg = "the sandbox server did not start within a minute"
            raise RuntimeError(msg)
        if self._startup_error is not None:
            self._thread.join(_STOP_TIMEOUT)
            msg = (
                f"the sandbox could not start on {self.config.host}:{self.config.port}: "
                f"{self._startup_error}"
            )
            raise RuntimeError(msg) from self._startup_error

    def stop(self) -> None:
        """Stop serving and wait for the thread to finish."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(_STOP_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_STOP_TIMEOUT)
        self._loop = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except Exception as error:  # handed to the thread that starts the server
            self._startup_error = error
            loop.run_until_complete(self._shutdown())
            loop.close()
            self._started.set()
            return
        self._loop = loop
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _startup(self) -> None:
        cfg = self.config
        if cfg.webhook_url:
            self.webhooks = WebhookSender(
                cfg.webhook_url,
                method=cfg.webhook_method,
                auth=cfg.webhook_auth,
                max_attempts=cfg.webhook_max_attempts,
                backoff=cfg.webhook_backoff,
                max_backoff=cfg.webhook_max_backoff,
                timeout=cfg.webhook_timeout,
            )
            self.webhooks.start(asyncio.get_running_loop())
            self.on_change = self.webhooks.submit
        app = build_app(self, webhook_log=self._webhook_log_json, controls=self.controls_enabled)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        if cfg.activity_interval:
            self._activity = asyncio.create_task(self._run_activity(cfg.activity_interval))

    async def _shutdown(self) -> None:
        if self._activity is not None:
            self._activity.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.webhooks is not None:
            await self.webhooks.close()

    async def _run_activity(self, interval: float) -> None:
        """Change (and now and then add) one order per interval, up to ``activity_changes``."""
        done = 0
        limit = self.config.activity_changes
        while limit is None or done < limit:
            await asyncio.sleep(interval)
            if self._change_rng.random() < 0.2:
                self.add_orders(1)
            else:
                self.change_orders(1)
            done += 1

    def _webhook_log_json(self) -> list[dict[str, Any]]:
        return [delivery.as_json() for delivery in self.webhook_log]
