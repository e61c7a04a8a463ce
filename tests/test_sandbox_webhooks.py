"""The sandbox fires each change as a webhook and retries by Tradecloud's rule."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer
from tests.sandbox_helpers import TIMEOUT, Receiver

WAIT = 20.0


def _config(url: str, **settings: object) -> SandboxConfig:
    defaults: dict[str, object] = {
        "seed": 5,
        "order_count": 40,
        "lines_per_order": (2, 6),
        "webhook_url": url,
        "webhook_backoff": 0.01,
        "webhook_max_backoff": 0.05,
    }
    return SandboxConfig(**{**defaults, **settings})  # type: ignore[arg-type]


def test_503_twice_then_200_is_delivered_once_after_three_identical_attempts() -> None:
    with Receiver(answers=[503, 503]) as receiver, SandboxServer(_config(receiver.url)) as sb:
        (order_id,) = sb.change_orders(1)
        assert sb.wait_for_webhooks(WAIT)
        assert len(receiver.received) == 3
        assert len({attempt.body for attempt in receiver.received}) == 1
        (delivery,) = sb.webhook_log
        body = json.loads(receiver.received[0].body)
        assert (delivery.order_id, delivery.method, delivery.attempts, delivery.status) == (
            order_id,
            "POST",
            3,
            200,
        )
        assert delivery.message_id == body["meta"]["messageId"]
        assert delivery.event_name == body["eventName"]
        assert delivery.body == body


@pytest.mark.parametrize("status", [500, 400, 401, 404])
def test_4xx_and_exactly_500_are_not_retried(status: int) -> None:
    with Receiver(answers=[status]) as receiver, SandboxServer(_config(receiver.url)) as sb:
        sb.change_orders(1)
        assert sb.wait_for_webhooks(WAIT)
        assert len(receiver.received) == 1
        assert sb.webhook_log == []
        assert sb.webhooks is not None
        assert sb.webhooks.failed[0][1] == f"HTTP {status}, not retried"


def test_connection_errors_are_retried_up_to_max_attempts() -> None:
    with Receiver() as receiver:
        closed_url = receiver.url  # nothing listens there once the receiver stops
    with SandboxServer(_config(closed_url, webhook_max_attempts=3)) as sb:
        sb.change_orders(1)
        assert sb.wait_for_webhooks(WAIT)
        assert sb.webhook_log == []
        assert sb.webhooks is not None
        assert sb.webhooks.failed[0][1] == "gave up after 3 attempts"


def test_a_timed_out_delivery_is_resent_with_the_identical_body() -> None:
    with (
        Receiver(delays=[2.0]) as receiver,
        SandboxServer(_config(receiver.url, webhook_timeout=0.5)) as sb,
    ):
        sb.change_orders(1)
        assert sb.wait_for_webhooks(WAIT)
        assert len(receiver.received) == 2
        assert receiver.received[0].body == receiver.received[1].body
        assert [delivery.attempts for delivery in sb.webhook_log] == [2]


def test_post_body_carries_only_the_affected_lines_of_the_new_version() -> None:
    auth = ("basic", "hook-user", "hook-pass")
    with (
        Receiver() as receiver,
        SandboxServer(_config(receiver.url, webhook_auth=auth)) as sb,
    ):
        changed = sb.change_orders(6)
        assert sb.wait_for_webhooks(WAIT)
        assert [delivery.order_id for delivery in sb.webhook_log] == changed
        expected_auth = "Basic " + base64.b64encode(b"hook-user:hook-pass").decode()
        assert {attempt.authorization for attempt in receiver.received} == {expected_auth}
        for attempt, order_id in zip(receiver.received, changed, strict=True):
            body = json.loads(attempt.body)
            order = sb.get_order(order_id)
            payload_key = "orderEvent" if "orderEvent" in body else "orderDocumentsEvent"
            assert set(body) == {"eventName", "meta", payload_key}
            event = body[payload_key]
            assert event["orderId"] == order_id
            assert event["version"] == order["version"]
            assert event["lastUpdatedAt"] == order["lastUpdatedAt"]
            assert body["meta"]["messageId"] == order["meta"]["messageId"]
            if "orderEvent" in body:
                assert 1 <= len(event["lines"]) <= 3
                for line in event["lines"]:
                    assert line in order["lines"]
                    assert line["lastUpdatedAt"] == order["lastUpdatedAt"]
            else:
                assert body["eventName"] == "OrderDocumentsAttachedByBuyer"
                assert event["buyerOrder"]["documents"][0] in order["buyerOrder"]["documents"]


def test_get_webhook_with_order_id_in_the_path_and_bearer_token() -> None:
    with Receiver() as receiver:
        cfg = _config(
            receiver.url + "/hooks/{orderId}",
            webhook_method="GET",
            webhook_auth=("bearer", "hook-token"),
        )
        with SandboxServer(cfg) as sb:
            (order_id,) = sb.change_orders(1)
            assert sb.wait_for_webhooks(WAIT)
        (attempt,) = receiver.received
        assert (attempt.method, attempt.path, attempt.body) == ("GET", f"/hooks/{order_id}", b"")
        assert attempt.authorization == "Bearer hook-token"
        assert sb.webhook_log[0].body is None


def test_get_webhook_with_order_id_in_the_query() -> None:
    with Receiver() as receiver:
        with SandboxServer(_config(receiver.url + "/hooks", webhook_method="GET")) as sb:
            (order_id,) = sb.add_orders(1)
            assert sb.wait_for_webhooks(WAIT)
        (attempt,) = receiver.received
        assert (attempt.path, attempt.query) == ("/hooks", {"orderId": order_id})


def test_put_webhook_and_new_orders_carry_every_line() -> None:
    with Receiver() as receiver:
        with SandboxServer(_config(receiver.url, webhook_method="PUT")) as sb:
            (order_id,) = sb.add_orders(1)
            assert sb.wait_for_webhooks(WAIT)
            order = sb.get_order(order_id)
        (attempt,) = receiver.received
        body = json.loads(attempt.body)
        assert attempt.method == "PUT"
        assert body["eventName"] == "OrderIssuedByBuyer"
        assert body["orderEvent"]["lines"] == order["lines"]
        assert order["status"]["processStatus"] == "Issued"


def test_single_delivery_events() -> None:
    with Receiver() as receiver:
        with SandboxServer(_config(receiver.url, webhook_single_delivery=True)) as sb:
            sb.add_orders(1)
            assert sb.wait_for_webhooks(WAIT)
        body = json.loads(receiver.received[0].body)
        line = body["singleDeliveryOrderEvent"]["lines"][0]
        assert "deliverySchedule" not in line
        status_line = line["statusLine"]
        assert set(status_line) == {
            "scheduledDelivery",
            "scheduledDeliveryInclRequests",
            "prices",
            "pricesInclRequests",
        }
        scheduled = status_line["scheduledDelivery"]
        assert set(scheduled) == {"date", "quantity", "status"}
        assert scheduled["quantity"] > 0
        assert status_line["prices"]["netPrice"]["priceInTransactionCurrency"]["value"] > 0


def test_activity_mode_changes_orders_and_fires_webhooks_until_its_bound() -> None:
    with Receiver() as receiver:
        cfg = _config(receiver.url, activity_interval=0.05, activity_changes=4)
        with SandboxServer(cfg) as sb:
            deadline = time.monotonic() + WAIT
            while len(sb.webhook_log) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)  # a fifth change would have happened by now
            assert sb.wait_for_webhooks(WAIT)
            delivered = requests.get(f"{sb.base_url}/_sandbox/webhooks/delivered", timeout=TIMEOUT)
        assert len(receiver.received) == 4
        assert [entry["message_id"] for entry in delivered.json()] == [
            json.loads(attempt.body)["meta"]["messageId"] for attempt in receiver.received
        ]
