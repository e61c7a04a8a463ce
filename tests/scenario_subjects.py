"""What the scenario tests run against: orders (poll or search) or shipments, in the sandbox.

Each subject knows how to fill a sandbox, change its records, hook its requests and run the tap
on its stream alone, so that one scenario test checks every polled stream the same way.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from tap_tradecloud.sandbox import (
    RequestRecord,
    SandboxConfig,
    SandboxServer,
    generate_orders,
    generate_shipments,
)
from tests.tap_helpers import RunOutput, run_tap, run_tap_failing

SEED = 7
ORDERS_FOR_SHIPMENTS = 30  # the orders whose lines the generated shipments carry


@dataclass(frozen=True)
class Subject:
    """One polled stream under test; ``polling_api`` only for orders."""

    stream: str
    polling_api: str | None = None

    def __str__(self) -> str:
        return f"{self.stream}-{self.polling_api}" if self.polling_api else self.stream

    @property
    def path(self) -> str:
        if self.stream == "shipments":
            return "/v2/shipment/poll"
        return f"/v2/order-search/{self.polling_api}"

    def sandbox(
        self,
        count: int,
        *,
        same_timestamp: bool = False,
        lines: tuple[int, int] = (1, 2),
        **cfg: t.Any,
    ) -> SandboxServer:
        """A sandbox holding ``count`` records of this subject."""
        if self.stream == "orders":
            orders = generate_orders(
                count, seed=SEED, lines_per_order=lines, same_timestamp=same_timestamp
            )
            return SandboxServer(SandboxConfig(seed=SEED, lines_per_order=lines, **cfg), orders)
        orders = generate_orders(ORDERS_FOR_SHIPMENTS, seed=SEED, lines_per_order=(1, 3))
        shipments = generate_shipments(count, orders, seed=SEED, same_timestamp=same_timestamp)
        config = SandboxConfig(seed=SEED, lines_per_order=(1, 3), **cfg)
        return SandboxServer(config, orders, shipments)

    def records(self, sb: SandboxServer) -> list[dict]:
        """The sandbox's current records of this subject, with a top-level ``lastUpdatedAt``."""
        if self.stream == "orders":
            return sb.orders()
        return [
            {**s, "lastUpdatedAt": s["meta"]["lastUpdatedAt"]}
            for s in sb.shipments.store.snapshot()
        ]

    def keys(self, records: list[dict]) -> set[tuple[str, t.Any]]:
        """(id, version) of records; a shipment's version is its ``lastUpdatedAt``."""
        version = "version" if self.stream == "orders" else "lastUpdatedAt"
        return {(r["id"], r[version]) for r in records}

    def source_keys(self, sb: SandboxServer) -> set[tuple[str, t.Any]]:
        return self.keys(self.records(sb))

    def change(self, sb: SandboxServer, count: int) -> list[str]:
        if self.stream == "orders":
            return sb.change_orders(count)
        return sb.change_shipments(count)

    def on_request(self, sb: SandboxServer, hook: t.Callable[[int], None] | None) -> None:
        """Call ``hook(n)`` on the n-th poll/search request of this subject."""
        if self.stream == "orders":
            sb.on_order_request = hook
        else:
            sb.shipments.on_request = hook

    def requests(self, sb: SandboxServer) -> list[RequestRecord]:
        return [r for r in sb.requests_log if r.path == self.path]

    def bodies(self, sb: SandboxServer) -> list[dict]:
        return [r.json for r in self.requests(sb)]

    def config(self, sb: SandboxServer, **overrides: t.Any) -> dict[str, t.Any]:
        cfg = {
            "api_url": sb.api_url,
            "username": sb.config.username,
            "password": sb.config.password,
            "start_date": "2020-01-01T00:00:00Z",
            "max_requests_per_second": 1000,
            "retry_max_wait_seconds": 0.01,
        }
        if self.polling_api:
            cfg["polling_api"] = self.polling_api
        return {**cfg, **overrides}

    def run(self, cfg: dict[str, t.Any], state: dict | None = None) -> RunOutput:
        return run_tap(cfg, state, self.stream)

    def run_failing(
        self, cfg: dict[str, t.Any], state: dict | None = None
    ) -> tuple[RunOutput, Exception | None]:
        return run_tap_failing(cfg, state, self.stream)


SUBJECTS = [Subject("orders", "poll"), Subject("orders", "search"), Subject("shipments")]
