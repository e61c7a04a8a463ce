"""The sandbox's state and the operations tests and the control endpoint perform on it."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tap_tradecloud.sandbox.activity import OrderChange, OrderChanger, event_body
from tap_tradecloud.sandbox.clock import now_ms, parse_ms
from tap_tradecloud.sandbox.data import (
    DEFAULT_START,
    Order,
    OrderFactory,
    gc_paused,
    generate_orders,
)
from tap_tradecloud.sandbox.faults import Faults
from tap_tradecloud.sandbox.shipments import Shipment, ShipmentBook
from tap_tradecloud.sandbox.store import OrderStore
from tap_tradecloud.sandbox.tokens import TokenService

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_USERNAME = "integration@example.com"
DEFAULT_PASSWORD = "sandbox-password"  # noqa: S105 - the documented default of an offline sandbox
FAULT_KEYS = (
    "rate_limit_per_second",
    "retry_after",
    "error_rate",
    "latency",
    "indexing_lag",
    "access_token_ttl",
    "refresh_token_ttl",
)


def check_fault(name: str, value: Any) -> None:
    """Refuse a fault setting that would make the sandbox misbehave in ways nobody asked for."""
    if name not in FAULT_KEYS:
        msg = f"unknown fault setting {name!r}; known: {list(FAULT_KEYS)}"
        raise ValueError(msg)
    if name == "retry_after":
        valid = isinstance(value, bool)
    elif name == "rate_limit_per_second":
        valid = value is None or (_is_number(value) and value > 0)
    elif name == "error_rate":
        valid = _is_number(value) and 0 <= value <= 1
    elif name.endswith("_token_ttl"):
        valid = _is_number(value) and value > 0
    else:
        valid = _is_number(value) and value >= 0
    if not valid:
        msg = f"bad value {value!r} for fault setting {name!r}"
        raise ValueError(msg)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class SandboxConfig:
    """Everything a sandbox is started with; the same seed gives the same data and faults."""

    seed: int = 1
    order_count: int = 250
    lines_per_order: tuple[int, int] = (1, 50)
    shipment_count: int = 0  # shipments of the generated orders' lines
    start: str = DEFAULT_START  # lastUpdatedAt of the oldest generated order
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    access_token_ttl: float = 3600.0
    refresh_token_ttl: float = 86400.0
    max_limit: int = 100  # larger `limit`s get 400, as documented; the SDK uses 1000 on /poll
    rate_limit_per_second: float | None = None
    retry_after: bool = True
    error_rate: float = 0.0
    latency: float = 0.0
    indexing_lag: float = 0.0
    host: str = "127.0.0.1"
    port: int = 0
    webhook_url: str | None = None
    webhook_method: str = "POST"
    webhook_auth: tuple[str, ...] | None = None  # ("basic", user, password) | ("bearer", token)
    webhook_single_delivery: bool = False
    webhook_max_attempts: int = 8
    webhook_backoff: float = 1.0  # seconds before the first retry; doubles each time
    webhook_max_backoff: float = 60.0
    webhook_timeout: float = 10.0
    activity_interval: float | None = None  # seconds between changes in activity mode
    activity_changes: int | None = None  # stop activity after this many changes


@dataclass(frozen=True)
class RequestRecord:
    """One request to the API, as the sandbox saw and answered it."""

    method: str
    path: str
    json: Any
    status: int
    auth_scheme: str | None  # "Basic", "Bearer" or None


@dataclass(eq=False)  # compared and hashed by identity: it is a live server
class Sandbox:
    """The orders, tokens and faults, shared by the API handlers and the Python interface."""

    config: SandboxConfig
    orders_given: list[Order] | None = None
    shipments_given: list[Shipment] | None = None
    requests_log: list[RequestRecord] = field(default_factory=list)
    on_order_request: Callable[[int], None] | None = None
    # Called with each change's webhook body and order id, when webhooks are configured.
    on_change: Callable[[dict[str, Any], str], None] | None = None

    def __post_init__(self) -> None:
        cfg = self.config
        orders = self.orders_given
        with gc_paused():
            if orders is None:
                orders = generate_orders(
                    cfg.order_count,
                    seed=cfg.seed,
                    start=cfg.start,
                    lines_per_order=cfg.lines_per_order,
                )
            self.store = OrderStore(orders)
            self.shipments = ShipmentBook.create(
                cfg.shipment_count, orders, cfg.seed, self.shipments_given
            )
        self.tokens = TokenService(
            cfg.username,
            cfg.password,
            access_token_ttl=cfg.access_token_ttl,
            refresh_token_ttl=cfg.refresh_token_ttl,
        )
        self.faults = Faults(
            seed=cfg.seed,
            rate_limit_per_second=cfg.rate_limit_per_second,
            retry_after=cfg.retry_after,
            error_rate=cfg.error_rate,
            latency=cfg.latency,
        )
        self.indexing_lag = cfg.indexing_lag
        self._changer = OrderChanger(OrderFactory(cfg.seed, cfg.lines_per_order, stream=1))
        self._change_rng = random.Random(cfg.seed + 2)  # noqa: S311 - reproducible choice
        self._lock = threading.RLock()
        self._next_number = len(self.store) + 1
        self._last_ms = max((parse_ms(order["lastUpdatedAt"]) for order in orders), default=0)
        self._order_requests = 0

    def orders(self) -> list[Order]:
        """Copies of the current orders, sorted as the API sorts them."""
        return self.store.snapshot()

    def get_order(self, order_id: str) -> Order | None:
        """The current version of one order, or None."""
        return self.store.load(order_id)

    def set_faults(self, **settings: Any) -> None:
        """Change fault settings (the names of ``FAULT_KEYS``) while the sandbox runs."""
        for name, value in settings.items():
            check_fault(name, value)
        for name, value in settings.items():
            if name == "indexing_lag":
                self.indexing_lag = value
            elif name.endswith("_token_ttl"):
                setattr(self.tokens, name, value)
            else:
                setattr(self.faults, name, value)

    def inject_responses(self, statuses: list[int], retry_after: float | None = None) -> None:
        """The next API requests (not authentication) get these status codes, in order."""
        self.faults.inject(statuses, retry_after)

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired (clients must refresh)."""
        self.tokens.expire_access_tokens()

    def next_order_request(self) -> int:
        """Count a search/poll request and run the test hook on it."""
        with self._lock:
            self._order_requests += 1
            number = self._order_requests
        if self.on_order_request is not None:
            self.on_order_request(number)
        return number

    def _timestamp(self) -> int:
        # Never earlier than a change already made, so lastUpdatedAt only moves forward.
        self._last_ms = max(self._last_ms, now_ms())
        return self._last_ms

    def _record_shipment(self, shipment: Shipment, body: dict[str, Any]) -> str:
        """Store a shipment version and announce it (shipment webhooks are POST/PUT only)."""
        lag_ms = round(self.indexing_lag * 1000)
        stamp = parse_ms(shipment["meta"]["lastUpdatedAt"])
        self.shipments.store.put(shipment, stamp + lag_ms if lag_ms > 0 else None)
        if self.on_change is not None and self.config.webhook_method != "GET":
            self.on_change(body, shipment["id"])
        return str(shipment["id"])

    def add_shipments(self, count: int) -> list[str]:
        """The supplier ships lines of ``count`` random orders now; returns the shipment ids."""
        with self._lock:
            order_ids = sorted(self.store.ids())
            added: list[str] = []
            for _ in range(count):
                order = self.store.load(self._change_rng.choice(order_ids))
                assert order is not None
                added.append(self._record_shipment(*self.shipments.add(order, self._timestamp())))
            return added

    def change_shipments(self, count: int) -> list[str]:
        """Change ``count`` distinct existing shipments now; returns their ids."""
        with self._lock:
            ids = sorted(self.shipments.store.ids())
            changed: list[str] = []
            for shipment_id in self._change_rng.sample(ids, min(count, len(ids))):
                version = self.shipments.change(shipment_id, self._timestamp())
                if version is not None:
                    changed.append(self._record_shipment(*version))
            return changed

    def _record(self, change: OrderChange) -> str:
        """Store a change (searchable after the indexing lag) and announce it."""
        order = change.order
        stamp = parse_ms(order["lastUpdatedAt"])
        lag_ms = round(self.indexing_lag * 1000)
        self.store.put(order, stamp + lag_ms if lag_ms > 0 else None)
        if self.on_change is not None:
            body = event_body(change, single_delivery=self.config.webhook_single_delivery)
            self.on_change(body, order["id"])
        return order["id"]

    def change_orders(self, count: int) -> list[str]:
        """Change ``count`` distinct existing orders now; returns their ids."""
        with self._lock:
            ids = self.store.ids()
            chosen = self._change_rng.sample(sorted(ids), min(count, len(ids)))
            changed: list[str] = []
            for order_id in chosen:
                order = self.store.load(order_id)
                if order is not None:
                    changed.append(self._record(self._changer.change(order, self._timestamp())))
            return changed

    def add_orders(self, count: int) -> list[str]:
        """Issue ``count`` new orders now; returns their ids."""
        with self._lock:
            added: list[str] = []
            while len(added) < count:
                change = self._changer.new_order(self._next_number, self._timestamp())
                self._next_number += 1
                if self.store.get(change.order["id"]) is None:  # `orders=` may hold this number
                    added.append(self._record(change))
            return added
