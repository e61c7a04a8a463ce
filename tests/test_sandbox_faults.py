"""Faults on demand, token lifetimes, indexing lag and changes while a client pages."""

from __future__ import annotations

import time

import pytest
import requests

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer
from tests.sandbox_helpers import PASSWORD, TIMEOUT, USERNAME, bearer, ids, login, post


def _server(**settings: object) -> SandboxServer:
    return SandboxServer(SandboxConfig(seed=3, order_count=60, lines_per_order=(1, 2), **settings))


def _poll(sb: SandboxServer, token: str, body: dict | None = None) -> requests.Response:
    return post(sb, "poll", body or {"limit": 5}, token=token)


def test_rate_limit_answers_429_with_retry_after() -> None:
    with _server(rate_limit_per_second=2) as sb:
        token = login(sb)[0]  # the login counts too
        statuses = [_poll(sb, token) for _ in range(3)]
        assert [response.status_code for response in statuses] == [200, 429, 429]
        assert statuses[1].headers["Retry-After"] == "1"


def test_rate_limit_without_retry_after() -> None:
    with _server(rate_limit_per_second=1, retry_after=False) as sb:
        token = login(sb)[0]
        response = _poll(sb, token)
        assert response.status_code == 429
        assert "Retry-After" not in response.headers


def test_injected_responses_come_in_order_then_normal_service() -> None:
    with _server() as sb:
        token = login(sb)[0]
        sb.inject_responses([429, 503, 502], retry_after=2)
        answers = [_poll(sb, token) for _ in range(4)]
        assert [answer.status_code for answer in answers] == [429, 503, 502, 200]
        assert [answer.headers.get("Retry-After") for answer in answers[:3]] == ["2"] * 3
        assert [record.status for record in sb.requests_log[-4:]] == [429, 503, 502, 200]


def test_injected_responses_spare_authentication() -> None:
    with _server() as sb:
        sb.inject_responses([503])
        token = login(sb)[0]
        answer = _poll(sb, token)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "1"


def test_error_rate_one_fails_every_api_request_but_not_login() -> None:
    with _server(error_rate=1.0, retry_after=False) as sb:
        token = login(sb)[0]
        codes = {_poll(sb, token).status_code for _ in range(12)}
        assert codes <= {502, 503, 504}
        assert len(codes) > 1


def test_latency_delays_every_answer() -> None:
    with _server(latency=0.2) as sb:
        response = requests.get(
            f"{sb.api_url}/authentication/login", auth=(USERNAME, PASSWORD), timeout=TIMEOUT
        )
        assert response.elapsed.total_seconds() >= 0.2


def test_expire_access_tokens_rejects_every_token_issued_so_far() -> None:
    with _server() as sb:
        token = login(sb)[0]
        assert _poll(sb, token).status_code == 200
        sb.expire_access_tokens()
        assert _poll(sb, token).status_code == 401
        assert _poll(sb, login(sb)[0]).status_code == 200


def test_access_and_refresh_tokens_expire_after_their_ttl() -> None:
    with _server(access_token_ttl=1.0, refresh_token_ttl=1.0) as sb:
        token, refresh_token = login(sb)
        assert _poll(sb, token).status_code == 200
        time.sleep(1.2)
        assert _poll(sb, token).status_code == 401
        refresh = requests.get(
            f"{sb.api_url}/authentication/refresh",
            headers={"Refresh-Token": refresh_token},
            timeout=TIMEOUT,
        )
        assert refresh.status_code == 401


def test_set_faults_changes_token_lifetimes_and_refuses_unknown_names() -> None:
    with _server() as sb:
        sb.set_faults(access_token_ttl=0.2)
        token = login(sb)[0]
        time.sleep(0.3)
        assert _poll(sb, token).status_code == 401
        with pytest.raises(ValueError, match="unknown fault setting 'speed'"):
            sb.set_faults(speed=3)
        with pytest.raises(ValueError, match="bad value 2 for fault setting 'error_rate'"):
            sb.set_faults(latency=0.1, error_rate=2)
        assert sb.faults.latency == 0.0  # nothing applied when one value is bad


def test_indexing_lag_keeps_the_previous_version_searchable_until_it_passes() -> None:
    with _server(indexing_lag=1.5) as sb:
        token = login(sb)[0]
        newest = sb.orders()[-1]["lastUpdatedAt"]
        (changed,) = sb.change_orders(1)
        before = sb.get_order(changed)
        assert before["lastUpdatedAt"] > newest
        after_filter = {"filters": {"lastUpdatedAfter": newest}, "limit": 100}
        assert ids(_poll(sb, token, after_filter)) == []
        everything = _poll(sb, token, {"limit": 100}).json()["data"]
        old = next(order for order in everything if order["id"] == changed)
        assert old["version"] == before["version"] - 1
        order_url = f"{sb.api_url}/order/{changed}"
        direct = requests.get(order_url, headers=bearer(token), timeout=TIMEOUT)
        assert direct.json() == before
        time.sleep(1.6)
        assert ids(_poll(sb, token, after_filter)) == [changed]


def test_on_order_request_runs_before_each_search_or_poll() -> None:
    with _server() as sb:
        token = login(sb)[0]
        seen: list[int] = []
        changed: list[str] = []

        def hook(number: int) -> None:
            seen.append(number)
            if number == 2:
                changed.extend(sb.change_orders(1))

        sb.on_order_request = hook
        first = ids(post(sb, "search", {"limit": 20}, token=token))
        second = ids(post(sb, "search", {"offset": 20, "limit": 20}, token=token))
        third = ids(post(sb, "search", {"offset": 40, "limit": 20}, token=token))
        assert seen == [1, 2, 3]
        assert third[-1] == changed[0]
        assert len(set(first + second + third)) == 60 - (changed[0] in first + second)


def test_change_orders_bumps_version_and_timestamps() -> None:
    with _server() as sb:
        before = {order["id"]: order for order in sb.orders()}
        changed = sb.change_orders(5)
        assert len(set(changed)) == 5
        for order_id in changed:
            old, new = before[order_id], sb.get_order(order_id)
            assert new["version"] == old["version"] + 1
            assert new["lastUpdatedAt"] > old["lastUpdatedAt"]
            moved = [
                line
                for line in new["lines"]
                if line["lastUpdatedAt"] == new["lastUpdatedAt"] and line not in old["lines"]
            ]
            documents = len(new["buyerOrder"]["documents"]) - len(old["buyerOrder"]["documents"])
            assert moved or documents == 1
        added = sb.add_orders(2)
        latest_change = max(sb.get_order(order_id)["lastUpdatedAt"] for order_id in changed)
        for order_id in added:
            order = sb.get_order(order_id)
            assert order_id not in before
            assert order["version"] == 1
            assert order["lastUpdatedAt"] >= latest_change


def test_same_seed_same_changes_and_same_faults() -> None:
    def run() -> tuple[list[str], list[str], list[int]]:
        with _server(error_rate=0.5) as sb:
            token = login(sb)[0]
            changed = sb.change_orders(4)
            names = [sb.get_order(order_id)["meta"]["messageId"] for order_id in changed]
            statuses = [_poll(sb, token).status_code for _ in range(10)]
            return changed, names, statuses

    first = run()
    assert first == run()
    assert {200} < set(first[2])
