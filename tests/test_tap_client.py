"""Talking to Tradecloud: login, refresh, logout, Basic, retries, throttle, error messages."""

from __future__ import annotations

import email.utils
import logging
import time
import typing as t

import backoff._sync
import pytest
import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

import tap_tradecloud.auth
import tap_tradecloud.throttle
from tap_tradecloud.auth import LoginError, TradecloudLoginAuth, token_expiry
from tap_tradecloud.retry import RetryPolicy
from tap_tradecloud.tap import TapTradecloud
from tap_tradecloud.throttle import ThrottledAdapter
from tests.tap_helpers import (
    API,
    BASIC,
    PASSWORD,
    FakeTradecloud,
    config,
    jwt,
    make_order,
    run_tap,
    run_tap_failing,
    ts,
)

if t.TYPE_CHECKING:
    import requests_mock as rm

POLL = f"{API}/order-search/poll"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff waits, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(backoff._sync.time, "sleep", waits.append)
    return waits


def paths(mock: rm.Mocker) -> list[str]:
    return [f"{r.method} {r.path}" for r in mock.request_history]


def test_login_bearer_and_logout(fake: FakeTradecloud, requests_mock: rm.Mocker) -> None:
    output = run_tap(config())
    assert len(output.records) == 5
    login, poll, logout = requests_mock.request_history
    assert (login.method, login.path) == ("GET", "/v2/authentication/login")
    assert login.headers["Authorization"] == BASIC
    assert poll.headers["Authorization"] == f"Bearer {fake.all_tokens[0]}"
    assert (logout.method, logout.path) == ("POST", "/v2/authentication/logout")
    assert logout.headers["Refresh-Token"] == "refresh-1"
    assert "Authorization" not in logout.headers
    assert fake.logouts == 1


def test_expired_token_is_refreshed_and_request_resent_once(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    fake.orders = [make_order(i, ts(i)) for i in range(25)]
    fake.on_search = lambda n: fake.access_tokens.clear() if n == 2 else None
    output = run_tap(config(page_size=10))
    assert sorted(output.keys) == sorted((o["id"], 1) for o in fake.orders)
    refresh = next(r for r in requests_mock.request_history if r.path.endswith("/refresh"))
    assert refresh.headers["Refresh-Token"] == "refresh-1"
    assert "Authorization" not in refresh.headers
    assert (fake.logins, fake.refreshes) == (1, 1)
    assert paths(requests_mock).count("POST /v2/order-search/poll") == 4  # 3 pages + 1 resend


def test_refused_refresh_falls_back_to_login(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    fake.orders = [make_order(i, ts(i)) for i in range(25)]

    def revoke_everything(n: int) -> None:
        if n == 2:
            fake.access_tokens.clear()
            fake.refresh_tokens.clear()

    fake.on_search = revoke_everything
    output = run_tap(config(page_size=10))
    assert len(output.records) == 25
    assert (fake.logins, fake.refreshes) == (2, 0)
    assert paths(requests_mock)[-1] == "POST /v2/authentication/logout"
    assert requests_mock.request_history[-1].headers["Refresh-Token"] == "refresh-2"


def test_token_is_refreshed_shortly_before_it_expires(
    requests_mock: rm.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_000_000.0]
    monkeypatch.setattr(tap_tradecloud.auth.time, "time", lambda: clock[0])
    first, second = jwt(clock[0] + 3600, "a"), jwt(clock[0] + 7200, "b")
    requests_mock.get(
        f"{API}/authentication/login",
        headers={"Set-Authorization": first, "Set-Refresh-Token": "r1"},
    )
    requests_mock.get(
        f"{API}/authentication/refresh",
        headers={"Set-Authorization": second, "Set-Refresh-Token": "r2"},
    )
    auth = TradecloudLoginAuth(
        api_url=API,
        username="u",
        password=PASSWORD,
        session=requests.Session(),
        retry_policy=RetryPolicy(),
        timeout=5,
    )
    request = requests.Request("POST", POLL).prepare()
    assert auth(request).headers["Authorization"] == f"Bearer {first}"
    clock[0] += 3600 - 61  # still more than a minute left: no refresh
    auth(request)
    assert paths(requests_mock) == ["GET /v2/authentication/login"]
    clock[0] += 2  # inside the last minute
    assert auth(request).headers["Authorization"] == f"Bearer {second}"
    assert requests_mock.request_history[-1].headers["Refresh-Token"] == "r1"


def test_token_expiry_reads_jwt_exp_and_tolerates_opaque_tokens() -> None:
    assert token_expiry(jwt(1234.0, "x")) == 1234.0
    assert token_expiry("opaque-token") is None
    assert token_expiry("a.!!!.c") is None


def test_wrong_password_fails_at_once_with_advice(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    output, error = run_tap_failing(config(password="wrong"))
    assert isinstance(error, LoginError)
    assert "integration" in str(error)
    assert "username and password" in str(error)
    assert "wrong" not in str(error)
    assert paths(requests_mock) == ["GET /v2/authentication/login"]
    assert output.records == []


def test_basic_mode_sends_basic_on_every_request(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    fake.orders = [make_order(i, ts(i)) for i in range(15)]
    output = run_tap(config(auth_method="basic", polling_api="poll", page_size=10))
    assert len(output.records) == 15
    assert paths(requests_mock) == ["POST /v2/order-search/poll"] * 2
    assert all(r.headers["Authorization"] == BASIC for r in requests_mock.request_history)


def test_retry_after_seconds_and_http_date_are_honoured(
    fake: FakeTradecloud, requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    in_two_seconds = email.utils.formatdate(time.time() + 2, usegmt=True)
    requests_mock.post(
        POLL,
        [
            {"status_code": 429, "headers": {"Retry-After": "3"}, "text": "slow down"},
            {"status_code": 503, "headers": {"Retry-After": in_two_seconds}, "text": "busy"},
            {"status_code": 429, "headers": {"Retry-After": "3600"}, "text": "slow down"},
            {"status_code": 502, "text": "bad gateway"},
            {"json": {"data": fake.orders, "total": 5}},
        ],
    )
    output = run_tap(config(retry_max_wait_seconds=60))
    assert len(output.records) == 5
    assert sleeps[0] == 3.0
    assert 0.5 < sleeps[1] <= 2.0
    assert sleeps[2:] == [60.0, 8.0]  # capped; then plain exponential backoff (1 * 2**3)


def test_retries_are_bounded(
    fake: FakeTradecloud, requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    requests_mock.post(POLL, status_code=503, text="down for maintenance")
    _, error = run_tap_failing(config(max_retries=2))
    assert isinstance(error, RetriableAPIError)
    assert "503" in str(error)
    assert paths(requests_mock).count("POST /v2/order-search/poll") == 3
    assert len(sleeps) == 2
    assert fake.logouts == 1  # logged out although the run failed


def test_timeouts_and_dropped_connections_are_retried(
    fake: FakeTradecloud, requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    requests_mock.post(
        POLL,
        [
            {"exc": requests.exceptions.ConnectTimeout},
            {"exc": requests.exceptions.ConnectionError},
            {"json": {"data": fake.orders, "total": 5}},
        ],
    )
    assert len(run_tap(config()).records) == 5
    assert len(sleeps) == 2


def test_400_shows_the_refused_body_and_the_answer(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    requests_mock.post(POLL, status_code=400, json={"message": "unknown filter"})
    _, error = run_tap_failing(config(process_status=["Issued"]))
    assert isinstance(error, FatalAPIError)
    message = str(error)
    assert '"processStatus": ["Issued"]' in message
    assert "unknown filter" in message
    assert paths(requests_mock).count("POST /v2/order-search/poll") == 1


@pytest.mark.parametrize(
    ("status", "advice"),
    [(401, "integration"), (403, "company_id"), (404, "api_url")],
)
def test_other_client_errors_fail_at_once_with_advice(
    fake: FakeTradecloud, requests_mock: rm.Mocker, status: int, advice: str
) -> None:
    requests_mock.post(POLL, status_code=status, text="no")
    _, error = run_tap_failing(config())
    assert isinstance(error, FatalAPIError)
    assert advice in str(error)
    expected_calls = 2 if status == 401 else 1  # a 401 is retried once with a renewed token
    assert paths(requests_mock).count("POST /v2/order-search/poll") == expected_calls


def test_no_secret_in_logs_or_errors(
    fake: FakeTradecloud,
    requests_mock: rm.Mocker,
    caplog: pytest.LogCaptureFixture,
    sleeps: list[float],
) -> None:
    fake.orders = [make_order(i, ts(i)) for i in range(25)]
    fake.on_search = lambda n: fake.access_tokens.clear() if n == 2 else None
    caplog.set_level(logging.DEBUG)
    run_tap(config(page_size=10))
    requests_mock.post(POLL, status_code=401, text="The supplied authentication is invalid")
    _, error = run_tap_failing(config())
    texts = [caplog.text, str(error)]
    secrets = [PASSWORD, BASIC.split()[1], *fake.all_tokens]
    assert fake.all_tokens
    assert not [s for s in secrets for text in texts if s in text]


def test_logout_failure_does_not_fail_a_good_run(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    requests_mock.post(f"{API}/authentication/logout", exc=requests.exceptions.ConnectionError)
    assert len(run_tap(config()).records) == 5


def test_fetch_order(fake: FakeTradecloud, requests_mock: rm.Mocker, sleeps: list[float]) -> None:
    order = make_order(7, ts(7))
    requests_mock.get(
        f"{API}/order/{order['id']}",
        [{"status_code": 503, "text": "busy"}, {"json": order}],
    )
    requests_mock.get(f"{API}/order/missing", status_code=404, text="not found")
    tap = TapTradecloud(config=config(), parse_env_config=False)
    stream = tap.streams["orders"]
    assert stream.fetch_order(order["id"]) == order  # type: ignore[attr-defined]
    assert stream.fetch_order("missing") is None  # type: ignore[attr-defined]
    fetches = [r for r in requests_mock.request_history if r.path.startswith("/v2/order/")]
    assert {r.headers["Authorization"] for r in fetches} == {f"Bearer {fake.all_tokens[0]}"}
    assert len(sleeps) == 1


def test_throttle_spaces_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        clock[0] += seconds

    monkeypatch.setattr(tap_tradecloud.throttle.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(tap_tradecloud.throttle.time, "sleep", sleep)
    sent: list[str] = []
    monkeypatch.setattr(
        requests.adapters.HTTPAdapter,
        "send",
        lambda self, request, *args: t.cast("requests.Response", sent.append(request.url)),
    )
    adapter = ThrottledAdapter(4)
    request = requests.Request("GET", "http://127.0.0.1/x").prepare()
    for _ in range(3):
        adapter.send(request)
    clock[0] += 1.0  # idle for a while: no wait
    adapter.send(request)
    assert slept == [0.2625, 0.2625]  # 1/4 s, plus 5% headroom
    assert len(sent) == 4


def test_a_non_json_answer_names_the_likely_cause(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    requests_mock.post(POLL, text="<html>Welcome to nginx</html>")
    _, error = run_tap_failing(config())
    assert isinstance(error, FatalAPIError)
    assert "not JSON" in str(error)
    assert "api_url" in str(error)
