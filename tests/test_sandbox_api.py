"""The sandbox's API obeys the rules of reference/tradecloud-api.md."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import pytest
import requests

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer, generate_orders
from tap_tradecloud.sandbox.api import build_app
from tap_tradecloud.sandbox.server import is_loopback
from tests.sandbox_helpers import PASSWORD, TIMEOUT, USERNAME, bearer, ids, login, post

if TYPE_CHECKING:
    from collections.abc import Iterator

START = "2024-03-01T08:00:00.000Z"


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=7, order_count=400, lines_per_order=(1, 3))) as server:
        yield server


@pytest.fixture
def tie_orders() -> list[dict]:
    """Five orders at one millisecond, then five at the next."""
    first = generate_orders(5, seed=3, start=START, lines_per_order=(1, 2), same_timestamp=True)
    second = generate_orders(
        5, seed=4, start="2024-03-01T08:00:00.001Z", lines_per_order=(1, 2), same_timestamp=True
    )
    return first + second


def test_login_returns_tokens_in_headers_and_a_jwt_with_exp(sb: SandboxServer) -> None:
    response = requests.get(
        f"{sb.api_url}/authentication/login", auth=(USERNAME, PASSWORD), timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.json() == {"username": USERNAME, "status": "authenticated"}
    header, payload, signature = response.headers["Set-Authorization"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert json.loads(base64.urlsafe_b64decode(header + "==="))["alg"] == "HS256"
    assert claims["exp"] - claims["iat"] == pytest.approx(3600, abs=1)
    assert signature
    assert response.headers["Set-Refresh-Token"]


def test_login_with_a_wrong_password_is_401_plain_text(sb: SandboxServer) -> None:
    response = requests.get(
        f"{sb.api_url}/authentication/login", auth=(USERNAME, "wrong"), timeout=TIMEOUT
    )
    assert response.status_code == 401
    assert response.text == "The supplied authentication is invalid"
    assert "Set-Authorization" not in response.headers


def test_refresh_tokens_rotate_and_are_single_use(sb: SandboxServer) -> None:
    _, refresh_token = login(sb)
    url = f"{sb.api_url}/authentication/refresh"
    first = requests.get(url, headers={"Refresh-Token": refresh_token}, timeout=TIMEOUT)
    assert first.status_code == 200
    new_access, new_refresh = first.headers["Set-Authorization"], first.headers["Set-Refresh-Token"]
    assert new_refresh != refresh_token
    again = requests.get(url, headers={"Refresh-Token": refresh_token}, timeout=TIMEOUT)
    assert again.status_code == 401
    assert post(sb, "poll", {"limit": 1}, token=new_access).status_code == 200
    assert requests.get(url, headers={"Refresh-Token": new_refresh}, timeout=TIMEOUT).ok


def test_logout_invalidates_the_refresh_token(sb: SandboxServer) -> None:
    _, refresh_token = login(sb)
    headers = {"Refresh-Token": refresh_token}
    logout = requests.post(f"{sb.api_url}/authentication/logout", headers=headers, timeout=TIMEOUT)
    assert logout.status_code == 200
    refresh = requests.get(f"{sb.api_url}/authentication/refresh", headers=headers, timeout=TIMEOUT)
    assert refresh.status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "basic_ok"),
    [
        ("POST", "/order-search/poll", True),
        ("POST", "/order-search/search", False),  # dropped from the Basic list in 2024
        ("GET", "/order/{order_id}", False),
    ],
)
def test_basic_auth_only_where_tradecloud_accepts_it(
    sb: SandboxServer, method: str, path: str, basic_ok: bool
) -> None:
    url = sb.api_url + path.format(order_id=sb.orders()[0]["id"])
    body = {"limit": 1} if method == "POST" else None
    basic = requests.request(method, url, json=body, auth=(USERNAME, PASSWORD), timeout=TIMEOUT)
    assert basic.status_code == (200 if basic_ok else 401)
    wrong = requests.request(method, url, json=body, auth=(USERNAME, "nope"), timeout=TIMEOUT)
    assert wrong.status_code == 401
    token = login(sb)[0]
    assert requests.request(method, url, json=body, headers=bearer(token), timeout=TIMEOUT).ok
    missing = requests.request(method, url, json=body, timeout=TIMEOUT)
    assert missing.status_code == 401
    assert missing.text == "The supplied authentication is invalid"


def test_a_forged_token_is_refused(sb: SandboxServer) -> None:
    header, payload, _ = login(sb)[0].split(".")
    response = post(sb, "poll", {"limit": 1}, token=f"{header}.{payload}.AAAA")
    assert response.status_code == 401


def test_get_order_returns_the_whole_order_or_404(sb: SandboxServer) -> None:
    token = login(sb)[0]
    order = sb.orders()[5]
    found = requests.get(f"{sb.api_url}/order/{order['id']}", headers=bearer(token), timeout=10)
    assert found.status_code == 200
    assert found.json() == order
    missing = requests.get(f"{sb.api_url}/order/nope-PO1", headers=bearer(token), timeout=10)
    assert missing.status_code == 404


def test_search_pages_everything_sorted_by_last_updated_then_id(sb: SandboxServer) -> None:
    token = login(sb)[0]
    seen: list[str] = []
    for offset in range(0, 400, 100):
        page = post(sb, "search", {"offset": offset, "limit": 100}, token=token)
        assert page.json()["total"] == 400
        seen += ids(page)
    expected = sorted(sb.orders(), key=lambda order: (order["lastUpdatedAt"], order["id"]))
    assert seen == [order["id"] for order in expected]
    stamps = [order["lastUpdatedAt"] for order in expected]
    assert len(set(stamps)) < len(stamps), "the generated data must contain timestamp ties"


def test_search_since_is_inclusive_and_poll_after_is_exclusive(tie_orders: list[dict]) -> None:
    with SandboxServer(SandboxConfig(seed=1), orders=tie_orders) as sb:
        first_group = sorted(order["id"] for order in tie_orders[:5])
        second_group = sorted(order["id"] for order in tie_orders[5:])
        since = post(sb, "search", {"filters": {"lastUpdatedSince": START}, "limit": 100})
        assert ids(since) == first_group + second_group
        assert since.json()["total"] == 10
        after = post(sb, "poll", {"filters": {"lastUpdatedAfter": START}, "limit": 100})
        assert ids(after) == second_group
        assert after.json()["total"] == 5
        assert after.json()["lastUpdatedAt"] == "2024-03-01T08:00:00.001Z"
        # Within a tie group, offset pages stably by id.
        pages = [
            ids(
                post(
                    sb, "search", {"filters": {"lastUpdatedSince": START}, "offset": n, "limit": 2}
                )
            )
            for n in (0, 2, 4)
        ]
        assert [order_id for page in pages for order_id in page] == first_group + second_group[:1]


def test_poll_answers_the_filter_value_when_nothing_is_newer(sb: SandboxServer) -> None:
    body = {"filters": {"lastUpdatedAfter": "2099-01-01T00:00:00.000Z"}, "limit": 100}
    response = post(sb, "poll", body)
    assert response.json() == {"data": [], "total": 0, "lastUpdatedAt": "2099-01-01T00:00:00.000Z"}


def test_search_has_no_response_level_last_updated_at(sb: SandboxServer) -> None:
    assert set(post(sb, "search", {"limit": 1}).json()) == {"data", "total"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"limit": 101}, "`limit` must be at most 100"),
        ({"offset": 9901, "limit": 100}, "offset + limit must be less than or equal to: [10000]"),
        ({"limit": "100"}, "`limit` must be a non-negative integer"),
        ({"filters": {"lastUpdatedSince": "yesterday"}}, "is not a timestamp"),
        ({"filters": {"lastUpdatedSince": "2024-01-01T00:00:00"}}, "has no time zone"),
        ({"filters": {"colour": "red"}}, "keys the sandbox does not support: ['colour']"),
        ({"filters": {"status": {"processStatus": ["Done"]}}}, "unknown values ['Done']"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_bodies_get_400_with_a_readable_message(
    sb: SandboxServer, body: object, message: str
) -> None:
    response = post(sb, "search", body)
    assert response.status_code == 400
    assert message in response.text


def test_the_result_window_allows_exactly_ten_thousand(sb: SandboxServer) -> None:
    assert post(sb, "search", {"offset": 9900, "limit": 100}).status_code == 200


def test_unparseable_json_is_400(sb: SandboxServer) -> None:
    response = requests.post(
        f"{sb.api_url}/order-search/poll",
        data=b"{not json",
        headers={**bearer(login(sb)[0]), "Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert "must be JSON" in response.text


def test_poll_refuses_the_inclusive_filter(sb: SandboxServer) -> None:
    response = post(sb, "poll", {"filters": {"lastUpdatedSince": START}})
    assert response.status_code == 400
    assert "lastUpdatedSince" in response.text


def test_company_filters_match_buyer_or_supplier(sb: SandboxServer) -> None:
    orders = sb.orders()
    company = orders[0]["supplierOrder"]["companyId"]
    buyer = orders[0]["buyerOrder"]["companyId"]

    def all_ids(body: dict) -> list[str]:
        return ids(post(sb, "search", {**body, "limit": 100, "offset": 0}))

    either = [
        o["id"]
        for o in orders
        if company in (o["buyerOrder"]["companyId"], o["supplierOrder"]["companyId"])
    ]
    poll = post(sb, "poll", {"filters": {"companyId": company}, "limit": 100})
    assert ids(poll) == either[:100]
    assert poll.json()["total"] == len(either)
    by_supplier = [o["id"] for o in orders if o["supplierOrder"]["companyId"] == company]
    assert all_ids({"filters": {"supplierOrder": {"companyId": [company]}}}) == by_supplier[:100]
    by_buyer = [o["id"] for o in orders if o["buyerOrder"]["companyId"] == buyer]
    response = post(sb, "search", {"filters": {"buyerOrder": {"companyId": [buyer]}}, "limit": 100})
    assert response.json()["total"] == len(by_buyer)


def test_status_filters(sb: SandboxServer) -> None:
    orders = sb.orders()
    wanted = {"Confirmed", "Completed"}
    expected = [
        o["id"]
        for o in orders
        if o["status"]["processStatus"] in wanted and o["status"]["logisticsStatus"] == "Open"
    ]
    body = {
        "filters": {
            "status": {"processStatus": sorted(wanted), "logisticsStatus": ["Open"]},
        },
        "limit": 100,
    }
    response = post(sb, "search", body)
    assert response.json()["total"] == len(expected)
    assert ids(response) == expected[:100]
    assert expected, "the generated data must have confirmed orders"


def test_requests_log_records_what_the_server_saw(sb: SandboxServer) -> None:
    before = len(sb.requests_log)
    requests.post(
        f"{sb.api_url}/order-search/poll",
        json={"limit": 2},
        auth=(USERNAME, PASSWORD),
        timeout=TIMEOUT,
    )
    record = sb.requests_log[before]
    assert (record.method, record.path, record.json, record.status, record.auth_scheme) == (
        "POST",
        "/v2/order-search/poll",
        {"limit": 2},
        200,
        "Basic",
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_controls_only_on_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) == loopback
    app = build_app(
        SandboxServer(SandboxConfig(order_count=1, host=host)),
        webhook_log=list,
        controls=loopback,
    )
    paths = {resource.canonical for resource in app.router.resources()}
    assert ("/_sandbox/control" in paths) == loopback
    assert "/v2/order-search/poll" in paths


def test_control_endpoint_refuses_unknown_keys(sb: SandboxServer) -> None:
    response = requests.post(f"{sb.base_url}/_sandbox/control", json={"nap": 1}, timeout=TIMEOUT)
    assert response.status_code == 400
    assert "Unknown control keys ['nap']" in response.text
