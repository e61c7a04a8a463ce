"""The sandbox's shipments: ``POST /shipment/poll`` pages like order poll; changes fire webhooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from tap_tradecloud.sandbox import (
    SandboxConfig,
    SandboxServer,
    generate_orders,
    generate_shipments,
)
from tap_tradecloud.sandbox.shipments import SHIPMENT_EVENTS
from tests.sandbox_helpers import PASSWORD, TIMEOUT, USERNAME, Receiver, bearer, login
from tests.webhook_helpers import TOKEN, receiver_in_thread, spool_files

if TYPE_CHECKING:
    from collections.abc import Iterator

START = "2024-03-01T08:00:00.000Z"
NEXT_MS = "2024-03-01T08:00:00.001Z"


def poll(sb: SandboxServer, body: object, token: str | None = None) -> requests.Response:
    token = token or login(sb)[0]
    return requests.post(
        f"{sb.api_url}/shipment/poll", json=body, headers=bearer(token), timeout=TIMEOUT
    )


def ids(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [shipment["id"] for shipment in response.json()["data"]]


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    config = SandboxConfig(seed=7, order_count=40, lines_per_order=(1, 4), shipment_count=300)
    with SandboxServer(config) as server:
        yield server


def shipments(sb: SandboxServer) -> list[dict]:
    return sb.shipments.store.snapshot()


def test_shipments_look_like_tradecloud_documents_them(sb: SandboxServer) -> None:
    orders = {o["buyerOrder"]["purchaseOrderNumber"]: o for o in sb.orders()}
    for shipment in shipments(sb):
        assert "lastUpdatedAt" not in shipment  # it lives in meta
        stamp = shipment["meta"]["lastUpdatedAt"]
        loaded = [line for carrier in shipment["loadCarriers"] for line in carrier["lines"]]
        lines = shipment["lines"] + loaded
        assert lines
        for line in lines:
            order = orders[line["purchaseOrderNumber"]]
            positions = {ol["buyerLine"]["position"] for ol in order["lines"]}
            assert line["purchaseOrderLinePosition"] in positions
            assert line["meta"]["lastUpdatedAt"] == stamp
            assert line["supplierLine"]["despatchQuantity"] > 0
        assert shipment["buyerShipment"]["companyId"] == order["buyerOrder"]["companyId"]
        assert shipment["supplierShipment"]["companyId"] == order["supplierOrder"]["companyId"]
        assert shipment["status"]["processStatus"] in {"Issued", "Approved", "Rejected"}
        assert shipment["locations"]["destinations"]


def test_poll_pages_everything_sorted_with_ties_and_the_response_last_updated_at(
    sb: SandboxServer,
) -> None:
    token = login(sb)[0]
    seen: list[dict] = []
    for offset in range(0, 300, 100):
        page = poll(sb, {"offset": offset, "limit": 100}, token=token)
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] == 300
        assert body["lastUpdatedAt"] == body["data"][-1]["meta"]["lastUpdatedAt"]
        seen += body["data"]
    keys = [(s["meta"]["lastUpdatedAt"], s["id"]) for s in seen]
    assert keys == sorted(keys)
    assert len({s["id"] for s in seen}) == 300
    stamps = [stamp for stamp, _ in keys]
    assert len(set(stamps)) < len(stamps), "the generated data must contain timestamp ties"


def test_last_updated_after_is_exclusive_and_an_empty_page_echoes_it() -> None:
    orders = generate_orders(5, seed=3, start=START, lines_per_order=(1, 2))
    first = generate_shipments(4, orders, seed=3, start=START, same_timestamp=True)
    second = generate_shipments(3, orders, seed=4, start=NEXT_MS, same_timestamp=True)
    with SandboxServer(SandboxConfig(seed=1), orders, first + second) as sb:
        after = poll(sb, {"filters": {"lastUpdatedAfter": START}, "limit": 100})
        assert sorted(ids(after)) == sorted(s["id"] for s in second)
        empty = poll(sb, {"filters": {"lastUpdatedAfter": NEXT_MS}, "limit": 100}).json()
        assert empty == {"data": [], "total": 0, "lastUpdatedAt": NEXT_MS}


def test_buyer_company_filter(sb: SandboxServer) -> None:
    buyer = shipments(sb)[0]["buyerShipment"]["companyId"]
    expected = [s["id"] for s in shipments(sb) if s["buyerShipment"]["companyId"] == buyer]
    for value in (buyer, [buyer]):
        body = {"filters": {"buyerShipment": {"companyId": value}}, "limit": 100}
        assert ids(poll(sb, body)) == expected[:100]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"limit": 101}, "`limit` must be at most 100"),
        ({"offset": 9950, "limit": 100}, "Result window is too large"),
        ({"filters": {"lastUpdatedSince": START}}, "lastUpdatedSince"),
        ({"filters": {"lastUpdatedAfter": "2024-03-01T08:00:00"}}, "has no time zone"),
        ({"filters": {"buyerShipment": {"id": "x"}}}, "buyerShipment"),
        ({"sort": [{"field": "lastUpdatedAt", "order": "asc"}]}, "sort"),
        ([], "JSON object"),
    ],
)
def test_bad_requests_get_400_saying_what_is_wrong(
    sb: SandboxServer, body: object, message: str
) -> None:
    response = poll(sb, body)
    assert response.status_code == 400
    assert message in response.text


def test_basic_auth_is_accepted_as_tradecloud_documents(sb: SandboxServer) -> None:
    url = f"{sb.api_url}/shipment/poll"
    ok = requests.post(url, json={"limit": 1}, auth=(USERNAME, PASSWORD), timeout=TIMEOUT)
    assert ok.status_code == 200
    wrong = requests.post(url, json={"limit": 1}, auth=(USERNAME, "nope"), timeout=TIMEOUT)
    assert wrong.status_code == 401


def test_changes_and_new_shipments_fire_shipment_webhooks() -> None:
    with Receiver() as receiver:
        config = SandboxConfig(
            seed=5,
            order_count=20,
            lines_per_order=(1, 3),
            shipment_count=10,
            webhook_url=receiver.url,
            webhook_backoff=0.01,
        )
        with SandboxServer(config) as sb:
            changed = sb.change_shipments(3)
            added = sb.add_shipments(2)
            assert sb.wait_for_webhooks(20)
            current = {s["id"]: s for s in shipments(sb)}
            delivered = sb.webhook_log
    assert len(set(changed)) == 3
    assert [d.order_id for d in delivered] == changed + added
    bodies = [json.loads(attempt.body) for attempt in receiver.received]
    for body, shipment_id in zip(bodies, changed + added, strict=True):
        assert set(body) == {"eventName", "shipment", "meta"}
        assert body["eventName"] in SHIPMENT_EVENTS
        assert body["shipment"] == current[shipment_id]
        assert body["meta"]["messageId"]
    assert [b["eventName"] for b in bodies[3:]] == ["ShipmentIssuedBySupplier"] * 2
    assert len({b["meta"]["messageId"] for b in bodies}) == 5


def test_a_get_webhook_setup_gets_no_shipment_notifications() -> None:
    with Receiver() as receiver:
        config = SandboxConfig(
            seed=5, order_count=10, shipment_count=5, webhook_url=receiver.url, webhook_method="GET"
        )
        with SandboxServer(config) as sb:
            sb.change_shipments(2)
            sb.change_orders(1)
            assert sb.wait_for_webhooks(20)
    assert len(receiver.received) == 1  # the order's; GET carries order ids only


def test_a_shipment_webhook_reaches_the_receivers_spool(tmp_path: Path) -> None:
    with receiver_in_thread(tmp_path, instance="sandbox") as receiver:
        config = SandboxConfig(
            seed=5,
            order_count=10,
            shipment_count=3,
            webhook_url=receiver.webhook_url,
            webhook_auth=("bearer", TOKEN),
            webhook_max_attempts=1,
        )
        with SandboxServer(config) as sb:
            (shipment_id,) = sb.change_shipments(1)
            assert sb.wait_for_webhooks(20)
            failed = list(sb.webhooks.failed) if sb.webhooks else []
    assert failed == []
    (event_file,) = spool_files(tmp_path, "sandbox", "events")
    assert shipment_id in (tmp_path / "sandbox" / "events" / event_file).read_text()


def undeclared(value: object, schema: dict, path: str = "") -> set[str]:
    """Paths in ``value`` that ``schema`` does not declare (SQL targets would drop them)."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        missing = {f"{path}.{key}" for key in value if key not in properties}
        for key, child in value.items():
            if key in properties:
                missing |= undeclared(child, properties[key], f"{path}.{key}")
        return missing
    if isinstance(value, list):
        return set().union(
            *(undeclared(item, schema.get("items", {}), f"{path}[]") for item in value)
        )
    return set()


def test_the_shipment_schema_declares_every_field_the_sandbox_sends(sb: SandboxServer) -> None:
    schema = json.loads(
        (Path(__file__).parents[1] / "tap_tradecloud/schemas/shipment.json").read_text()
    )
    changed = sb.change_shipments(40)  # approvals, header updates, documents
    assert changed
    missing = set().union(*(undeclared(s, schema) for s in shipments(sb)))
    assert missing == set()
