"""The sandbox follows the "Corrections and additions" of reference/tradecloud-api.md: the
documented filters and sorts are accepted and applied, statuses and their aggregation are the
documented ones, tokens look like Tradecloud's, documented fields are generated, and `limit`
above 100 is refused unless the sandbox is configured otherwise."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer
from tap_tradecloud.sandbox.data import (
    DELIVERY_LINE_STATUSES,
    order_process_status,
)
from tests.sandbox_helpers import TIMEOUT, USERNAME, ids, login, post

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

Order = dict[str, Any]


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=11, order_count=300, lines_per_order=(1, 4))) as server:
        yield server


@pytest.fixture(scope="module")
def token(sb: SandboxServer) -> str:
    return login(sb)[0]


def everything(sb: SandboxServer, token: str, endpoint: str, body: dict[str, Any]) -> list[str]:
    """Every matching id, paged by offset (the test data stays far below the window)."""
    found: list[str] = []
    while True:
        page = post(sb, endpoint, {**body, "offset": len(found), "limit": 100}, token=token)
        found += ids(page)
        if len(found) >= page.json()["total"]:
            return found


def expected(sb: SandboxServer, keep: Callable[[Order], bool]) -> list[str]:
    return [order["id"] for order in sb.orders() if keep(order)]


def _line_values(order: Order, read: Callable[[dict[str, Any]], Any]) -> set[Any]:
    return {read(line) for line in order["lines"]}


FILTERS: list[tuple[str, Callable[[Order], dict[str, Any]], Callable[[Order, Order], bool]]] = [
    (
        "status.inProgressStatus",
        lambda o: {
            "status": {
                "inProgressStatus": [
                    next(
                        line["status"]["inProgressStatus"]
                        for line in o["lines"]
                        if "inProgressStatus" in line["status"]
                    )
                ]
            }
        },
        lambda o, probe: bool(
            _line_values(o, lambda line: line["status"].get("inProgressStatus"))
            & set(FILTERS[0][1](probe)["status"]["inProgressStatus"])
        ),
    ),
    (
        "status.deliveryLineStatus",
        lambda _: {"status": {"deliveryLineStatus": ["Shipped"]}},
        lambda o, _: any(
            delivery["status"] == "Shipped"
            for line in o["lines"]
            for delivery in line["deliverySchedule"]
        ),
    ),
    (
        "indicators.deliveryOverdue",
        lambda _: {"indicators": {"deliveryOverdue": True}},
        lambda o, _: o["indicators"]["deliveryOverdue"] is True,
    ),
    (
        "buyerOrder.contact.userIds",
        lambda probe: {
            "buyerOrder": {"contact": {"userIds": [probe["buyerOrder"]["contact"]["userId"]]}}
        },
        lambda o, probe: (
            o["buyerOrder"]["contact"]["userId"] == probe["buyerOrder"]["contact"]["userId"]
        ),
    ),
    (
        "supplierOrder.contact.userIds",
        lambda probe: {
            "supplierOrder": {"contact": {"userIds": [probe["supplierOrder"]["contact"]["userId"]]}}
        },
        lambda o, probe: (
            o["supplierOrder"]["contact"]["userId"] == probe["supplierOrder"]["contact"]["userId"]
        ),
    ),
    (
        "buyerOrder.destination.code",
        lambda probe: {
            "buyerOrder": {"destination": {"code": [probe["buyerOrder"]["destination"]["code"]]}}
        },
        lambda o, probe: (
            o["buyerOrder"]["destination"]["code"] == probe["buyerOrder"]["destination"]["code"]
        ),
    ),
]


def _probe(sb: SandboxServer) -> Order:
    """An order with an in-progress line, to draw filter values from."""
    return next(
        order
        for order in sb.orders()
        if any("inProgressStatus" in line["status"] for line in order["lines"])
    )


@pytest.mark.parametrize("endpoint", ["search", "poll"])
@pytest.mark.parametrize(("name", "make_filter", "keep"), FILTERS, ids=[f[0] for f in FILTERS])
def test_documented_filters_are_accepted_and_applied(
    sb: SandboxServer,
    token: str,
    endpoint: str,
    name: str,
    make_filter: Callable[[Order], dict[str, Any]],
    keep: Callable[[Order, Order], bool],
) -> None:
    probe = _probe(sb)
    wanted = expected(sb, lambda order: keep(order, probe))

    found = everything(sb, token, endpoint, {"filters": make_filter(probe)})

    assert found == wanted
    assert 0 < len(wanted) < len(sb.orders()), f"{name}: the data must tell matches apart"


def test_free_text_query_finds_an_order_by_its_purchase_order_number(
    sb: SandboxServer, token: str
) -> None:
    order = sb.orders()[42]
    number = order["buyerOrder"]["purchaseOrderNumber"]

    found = everything(sb, token, "search", {"query": number.lower()})
    by_item = everything(
        sb, token, "search", {"query": order["lines"][0]["buyerLine"]["item"]["number"]}
    )

    assert found == [order["id"]]
    assert order["id"] in by_item
    assert len(by_item) < len(sb.orders())


@pytest.mark.parametrize(
    ("field", "read"),
    [
        ("buyerOrder.erpIssueDateTime", lambda o: o["buyerOrder"]["erpIssueDateTime"]),
        ("buyerOrder.purchaseOrderNumber", lambda o: o["buyerOrder"]["purchaseOrderNumber"]),
        ("lastUpdatedAt", lambda o: o["lastUpdatedAt"]),
    ],
)
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_documented_sorts_are_applied(
    sb: SandboxServer, token: str, field: str, read: Callable[[Order], str], order: str
) -> None:
    found = everything(sb, token, "search", {"sort": [{"field": field, "order": order}]})

    by_id = {o["id"]: o for o in sb.orders()}
    values = [read(by_id[order_id]) for order_id in found]
    assert sorted(found) == sorted(by_id)
    assert values == sorted(values, reverse=order == "desc")
    assert len(set(values)) > 1


def test_an_undocumented_sort_field_is_400(sb: SandboxServer, token: str) -> None:
    answer = post(sb, "search", {"sort": [{"field": "version", "order": "asc"}]}, token=token)

    assert answer.status_code == 400
    assert "buyerOrder.purchaseOrderNumber" in answer.text


def test_search_refuses_basic_but_poll_accepts_it(sb: SandboxServer) -> None:
    def with_basic(endpoint: str) -> int:
        return requests.post(
            f"{sb.api_url}/order-search/{endpoint}",
            json={"limit": 1},
            auth=(USERNAME, "sandbox-password"),
            timeout=TIMEOUT,
        ).status_code

    assert (with_basic("search"), with_basic("poll")) == (401, 200)


def test_delivery_lines_never_have_an_invented_cancelled_status(sb: SandboxServer) -> None:
    statuses = {
        delivery["status"]
        for order in sb.orders()
        for line in order["lines"]
        for delivery in line["deliverySchedule"]
    }
    cancelled_lines = [
        line
        for order in sb.orders()
        for line in order["lines"]
        if line["status"]["logisticsStatus"] == "Cancelled"
    ]

    assert statuses <= set(DELIVERY_LINE_STATUSES)
    assert cancelled_lines, "the data must hold cancelled lines"
    answer = post(sb, "search", {"filters": {"status": {"deliveryLineStatus": ["Cancelled"]}}})
    assert answer.status_code == 400


@pytest.mark.parametrize(
    ("lines", "order_status"),
    [
        (["Confirmed", "Completed"], "Confirmed"),
        (["Confirmed", "Completed", "Cancelled"], "Confirmed"),
        (["Confirmed", "Cancelled"], "Confirmed"),
        (["Issued", "Confirmed"], "InProgress"),
        (["Completed", "Completed"], "Completed"),
    ],
)
def test_order_status_aggregation_follows_the_docs(lines: list[str], order_status: str) -> None:
    assert order_process_status(lines) == order_status


def test_served_orders_aggregate_confirmed_and_completed_lines_to_confirmed(
    sb: SandboxServer,
) -> None:
    mixed = [
        order
        for order in sb.orders()
        if {line["status"]["processStatus"] for line in order["lines"]}
        == {"Confirmed", "Completed"}
    ]

    assert mixed, "the data must hold orders with confirmed and completed lines"
    assert {order["status"]["processStatus"] for order in mixed} == {"Confirmed"}


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_refresh_answers_authenticated_and_claims_look_like_tradecloud(sb: SandboxServer) -> None:
    access, refresh_token = login(sb)
    refreshed = requests.get(
        f"{sb.api_url}/authentication/refresh",
        headers={"Refresh-Token": refresh_token},
        timeout=TIMEOUT,
    )

    assert refreshed.json() == {"username": USERNAME, "status": "authenticated"}
    for token in (access, refreshed.headers["Set-Authorization"]):
        claims = _claims(token)
        assert claims["data"]["username"] == USERNAME
        assert claims["data"]["userId"]
        assert isinstance(claims["exp"], int)
    assert "sub" not in _claims(access)


def test_expired_claims_are_enforced_with_a_whole_second_exp(sb: SandboxServer) -> None:
    sb.expire_access_tokens()  # the server-side revocation still works with the new claims
    stale = login(sb)[0]
    sb.expire_access_tokens()
    assert post(sb, "poll", {"limit": 1}, token=stale).status_code == 401


def test_documented_order_fields_are_generated(sb: SandboxServer) -> None:
    orders = sb.orders()
    for order in orders:
        assert order["portalUrl"].startswith("https://")
        assert "reason" in order
        for line in order["lines"]:
            buyer_line = line["buyerLine"]
            assert buyer_line["deliverySchedule"][0]["quantity"] > 0
            assert buyer_line["prices"]["netPrice"]["priceInTransactionCurrency"]["value"] > 0
            assert buyer_line["originalPosition"] == buyer_line["position"]
            assert line["firstDeliveryDate"] == min(d["date"] for d in line["deliverySchedule"])
            assert "reason" in line
            assert line["deliveryScheduleIncludingRequests"]
            assert line["pricesIncludingRequests"]
    reasons = {
        order["reason"] for order in orders if order["status"]["processStatus"] == "Cancelled"
    }
    assert reasons == {"Cancelled by the buyer"}


def test_limit_above_100_is_refused_by_default_and_configurable() -> None:
    body = {"limit": 1000}
    with SandboxServer(SandboxConfig(seed=2, order_count=150, lines_per_order=(1, 1))) as strict:
        refused = post(strict, "poll", body)
    cfg = SandboxConfig(seed=2, order_count=150, lines_per_order=(1, 1), max_limit=1000)
    with SandboxServer(cfg) as lenient:
        accepted = post(lenient, "poll", body)

    assert refused.status_code == 400
    assert "`limit` must be at most 100" in refused.text
    assert accepted.status_code == 200
    assert len(accepted.json()["data"]) == 150
