"""The sandbox fires webhooks at the receiver; the stream reads them and enriches GET ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer
from tests.webhook_helpers import TOKEN, config, receiver_in_thread, sync

if TYPE_CHECKING:
    from pathlib import Path

CHANGES = 4


@pytest.mark.parametrize("method", ["POST", "PUT", "GET"])
def test_sandbox_webhooks_come_out_of_the_stream_once(tmp_path: Path, method: str) -> None:
    with receiver_in_thread(tmp_path, instance="sandbox") as receiver:
        url = receiver.webhook_url + ("/{orderId}" if method == "GET" else "")
        sandbox_config = SandboxConfig(
            seed=7,
            order_count=20,
            webhook_url=url,
            webhook_method=method,
            webhook_auth=("bearer", TOKEN),
        )
        with SandboxServer(sandbox_config) as sandbox:
            changed = sandbox.change_orders(CHANGES)
            assert sandbox.wait_for_webhooks(timeout=30)
            settings = config(
                tmp_path,
                api_url=sandbox.api_url,
                auth_method="login",
                username=sandbox_config.username,
                password=sandbox_config.password,
                fetch_orders_for_notifications=True,
            )
            records, _, _ = sync(settings)
            orders = {order_id: sandbox.get_order(order_id) for order_id in changed}
            delivered = sandbox.webhook_log
            order_requests = [
                r.path for r in sandbox.requests_log if r.path.startswith("/v2/order/")
            ]

    assert sorted(r["order_id"] for r in records) == sorted(changed)
    assert [r["http_method"] for r in records] == [method] * CHANGES
    if method == "GET":
        assert [r["event_type"] for r in records] == ["notification"] * CHANGES
        assert {r["order_id"]: r["order"] for r in records} == orders
        assert sorted(order_requests) == sorted(f"/v2/order/{i}" for i in changed)
    else:
        assert {r["event_id"] for r in records} == {d.message_id for d in delivered}
        assert {r["event_name"] for r in records} == {d.event_name for d in delivered}
        assert [r["order"] for r in records] == [None] * CHANGES
        assert order_requests == []
