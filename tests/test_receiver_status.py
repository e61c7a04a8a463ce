"""The receiver answers each request with the status Tradecloud's retry rule needs."""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
from typing import TYPE_CHECKING

import pytest
import requests

from tap_tradecloud import spool
from tap_tradecloud.webhook import app as receiver_app
from tap_tradecloud.webhook.app import ACCESS_LOGGER
from tap_tradecloud.webhook.auth import Credentials
from tests.webhook_helpers import (
    PASSWORD,
    PATH,
    TOKEN,
    USERNAME,
    InThreadReceiver,
    auth_headers,
    event_body,
    receiver_in_thread,
    small_tmpfs,
    spool_files,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TIMEOUT = 10


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[InThreadReceiver]:
    with receiver_in_thread(tmp_path, max_body_bytes=64 * 1024) as running:
        yield running


def events(tmp_path: Path) -> list[spool.SpooledEvent]:
    return list(spool.iter_events(tmp_path, "r1"))


def nothing_written(tmp_path: Path) -> bool:
    return all(spool_files(tmp_path, "r1", f) == [] for f in ("events", "tmp", "quarantine"))


@pytest.mark.parametrize("kind", ["orderEvent", "singleDeliveryOrderEvent", "orderDocumentsEvent"])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_each_event_kind_is_spooled_before_200(
    tmp_path: Path, receiver: InThreadReceiver, kind: str, method: str
) -> None:
    body = event_body(kind, message_id="m-1")

    answer = requests.request(
        method, receiver.webhook_url, data=body, headers=auth_headers(), timeout=TIMEOUT
    )

    assert (answer.status_code, answer.json()) == (200, {"status": "stored"})
    [stored] = events(tmp_path)
    assert (stored.sequence, stored.body, stored.meta.method, stored.meta.path) == (
        1,
        body,
        method,
        PATH,
    )
    assert stored.meta.content_type == "application/json"


def test_an_unknown_event_name_is_accepted(tmp_path: Path, receiver: InThreadReceiver) -> None:
    body = event_body(event_name="SomethingTradecloudAddedLater")

    answer = requests.post(receiver.webhook_url, data=body, headers=auth_headers(), timeout=TIMEOUT)

    assert answer.status_code == 200
    assert [e.body for e in events(tmp_path)] == [body]


@pytest.mark.parametrize(
    "url_suffix", ["/3fa85f64-5717-4562-b3fc-2c963f66afa6-PO0123", "?orderId=3fa85f64-PO0123"]
)
def test_get_notifications_in_path_and_query_form(
    tmp_path: Path, receiver: InThreadReceiver, url_suffix: str
) -> None:
    answer = requests.get(
        receiver.webhook_url + url_suffix, headers=auth_headers(), timeout=TIMEOUT
    )

    assert answer.status_code == 200
    [stored] = events(tmp_path)
    expected_id = url_suffix.rpartition("/")[2].removeprefix("?orderId=")
    assert (stored.meta.method, stored.meta.order_id, stored.body) == ("GET", expected_id, b"")


def test_basic_auth_is_accepted(tmp_path: Path) -> None:
    credentials = Credentials(basic=f"{USERNAME}:{PASSWORD}".encode())
    with receiver_in_thread(tmp_path, credentials=credentials) as running:
        answer = requests.post(
            running.webhook_url,
            json=json.loads(event_body()),
            auth=(USERNAME, PASSWORD),
            timeout=10,
        )
    assert answer.status_code == 200
    assert len(events(tmp_path)) == 1


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Bearer {TOKEN}x",
        f"Basic {base64.b64encode(f'{USERNAME}:{PASSWORD}'.encode()).decode()}",  # not configured
        "Basic !!!not-base64",
        TOKEN,
    ],
)
def test_missing_or_wrong_credentials_get_401_and_write_nothing(
    tmp_path: Path, receiver: InThreadReceiver, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization

    post = requests.post(receiver.webhook_url, data=event_body(), headers=headers, timeout=TIMEOUT)
    get = requests.get(receiver.webhook_url + "/order-1", headers=headers, timeout=TIMEOUT)
    garbage = requests.post(receiver.webhook_url, data=b"{", headers=headers, timeout=TIMEOUT)

    assert [post.status_code, get.status_code, garbage.status_code] == [401, 401, 401]
    assert post.headers["WWW-Authenticate"] == 'Bearer realm="tradecloud-webhook"'
    assert nothing_written(tmp_path)


def test_wrong_basic_password_gets_401(tmp_path: Path) -> None:
    credentials = Credentials(basic=f"{USERNAME}:{PASSWORD}".encode())
    with receiver_in_thread(tmp_path, credentials=credentials) as running:
        answer = requests.post(
            running.webhook_url, data=event_body(), auth=(USERNAME, "nope"), timeout=TIMEOUT
        )
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="tradecloud-webhook"'
    assert nothing_written(tmp_path)


def test_too_large_bodies_get_413_with_content_length_and_chunked(
    tmp_path: Path, receiver: InThreadReceiver
) -> None:
    body = event_body(padding=100 * 1024)

    declared = requests.post(receiver.webhook_url, data=body, headers=auth_headers(), timeout=10)
    chunked = requests.post(
        receiver.webhook_url,
        data=(body[i : i + 4096] for i in range(0, len(body), 4096)),
        headers=auth_headers(),
        timeout=TIMEOUT,
    )

    assert (declared.status_code, chunked.status_code) == (413, 413)
    assert nothing_written(tmp_path)


def test_a_small_chunked_body_is_accepted(tmp_path: Path, receiver: InThreadReceiver) -> None:
    body = event_body(padding=10_000)
    answer = requests.post(
        receiver.webhook_url,
        data=(body[i : i + 1000] for i in range(0, len(body), 1000)),
        headers=auth_headers(),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200
    assert [e.body for e in events(tmp_path)] == [body]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_non_json_content_type_gets_415(
    tmp_path: Path, receiver: InThreadReceiver, content_type: str | None
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type

    answer = requests.post(receiver.webhook_url, data=event_body(), headers=headers, timeout=10)

    assert answer.status_code == 415
    assert nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"eventName": "X", "orderEvent": ', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'{"a": ' * 1000 + b"1" + b"}" * 1000, "nested deeper than 128 levels"),
        (b'{"a": ' * 129 + b"1" + b"}" * 129, "nested deeper than 128 levels"),
        (b'{"orderEvent": {"n": NaN}}', "NaN is not a JSON number"),
    ],
)
def test_unacceptable_bodies_are_quarantined_and_get_400(
    tmp_path: Path, receiver: InThreadReceiver, body: bytes, reason: str
) -> None:
    answer = requests.post(receiver.webhook_url, data=body, headers=auth_headers(), timeout=10)

    assert answer.status_code == 400
    assert reason in answer.json()["error"]
    assert events(tmp_path) == []
    [kept] = spool.iter_quarantine(tmp_path, "r1")
    assert (kept.body, kept.meta.method) == (body, "POST")
    assert reason in kept.reason


@pytest.mark.parametrize(
    "url_suffix", ["", "?orderId=", "?orderId=a%20b", "/a%01b", "?orderId=" + "x" * 257]
)
def test_get_without_a_usable_order_id_is_quarantined_and_gets_400(
    tmp_path: Path, receiver: InThreadReceiver, url_suffix: str
) -> None:
    answer = requests.get(receiver.webhook_url + url_suffix, headers=auth_headers(), timeout=10)

    assert answer.status_code == 400
    assert events(tmp_path) == []
    assert len(list(spool.iter_quarantine(tmp_path, "r1"))) == 1


def test_wrong_path_gets_404_and_wrong_method_405(
    tmp_path: Path, receiver: InThreadReceiver
) -> None:
    other_path = requests.post(
        receiver.url + "/webhooks/other", data=event_body(), headers=auth_headers(), timeout=10
    )
    too_deep = requests.get(receiver.webhook_url + "/a/b", headers=auth_headers(), timeout=10)
    delete = requests.delete(receiver.webhook_url, headers=auth_headers(), timeout=TIMEOUT)
    patch = requests.patch(receiver.webhook_url, data=b"{}", headers=auth_headers(), timeout=10)

    statuses = [r.status_code for r in (other_path, too_deep, delete, patch)]
    assert statuses == [404, 404, 405, 405]
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_spool_io_errors_get_503_with_retry_after_and_leave_nothing(
    tmp_path: Path, receiver: InThreadReceiver, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    def fail(fd: int, data: bytes) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(spool.local, "_write_all", fail)
    post = requests.post(
        receiver.webhook_url, data=event_body(), headers=auth_headers(), timeout=10
    )
    get = requests.get(receiver.webhook_url + "/order-1", headers=auth_headers(), timeout=TIMEOUT)
    bad = requests.post(receiver.webhook_url, data=b"{", headers=auth_headers(), timeout=TIMEOUT)

    assert [post.status_code, get.status_code, bad.status_code] == [503, 503, 503]
    assert post.headers["Retry-After"] == "10"
    assert nothing_written(tmp_path)


def test_a_full_disk_gets_503_and_keeps_every_acknowledged_event(tmp_path: Path) -> None:
    statuses = []
    with (
        small_tmpfs(tmp_path / "small") as mount_point,
        receiver_in_thread(mount_point) as running,
        requests.Session() as session,
    ):
        for i in range(120):
            body = event_body(message_id=f"m{i}", padding=3000)
            answer = session.post(
                running.webhook_url, data=body, headers=auth_headers(), timeout=10
            )
            statuses.append((answer.status_code, answer.headers.get("Retry-After")))
        stored = [e.body for e in spool.iter_events(mount_point, "r1")]
        leftovers = spool_files(mount_point, "r1", "tmp")

    assert set(statuses) == {(200, None), (503, "10")}
    assert len(stored) == statuses.count((200, None))
    assert leftovers == []


def test_the_free_space_guard_gets_503_and_fails_the_health_check(
    tmp_path: Path, receiver: InThreadReceiver
) -> None:
    assert requests.get(receiver.url + "/healthz", timeout=TIMEOUT).status_code == 200

    receiver.writer.min_free_bytes = 2**62
    post = requests.post(
        receiver.webhook_url, data=event_body(), headers=auth_headers(), timeout=10
    )
    health = requests.get(receiver.url + "/healthz", timeout=TIMEOUT)

    assert (post.status_code, health.status_code) == (503, 503)
    assert post.headers["Retry-After"] == "10"
    assert post.json() == {"error": "spool disk full"}
    assert health.json() == {"status": "unavailable"}
    assert nothing_written(tmp_path)


def test_a_full_write_queue_gets_503(tmp_path: Path) -> None:
    with receiver_in_thread(tmp_path, max_pending_writes=0) as running:
        answer = requests.post(
            running.webhook_url, data=event_body(), headers=auth_headers(), timeout=TIMEOUT
        )

    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "10")
    assert nothing_written(tmp_path)


def test_credentials_never_show_their_secrets() -> None:
    credentials = Credentials.from_env(
        {"TRADECLOUD_WEBHOOK_USERNAME": USERNAME, "TRADECLOUD_WEBHOOK_PASSWORD": PASSWORD}
    )

    assert repr(credentials) == "Credentials(basic)"
    assert PASSWORD not in f"{credentials!r} {credentials!s}"


def test_a_bug_gets_503_never_500(
    tmp_path: Path, receiver: InThreadReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(body: bytes) -> None:
        msg = "a bug"
        raise KeyError(msg)

    monkeypatch.setattr(receiver_app, "parse_event_body", broken)
    answer = requests.post(
        receiver.webhook_url, data=event_body(), headers=auth_headers(), timeout=10
    )

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "10"
    assert nothing_written(tmp_path)


def test_one_log_line_per_request_without_secrets_or_body(
    tmp_path: Path, receiver: InThreadReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tap_tradecloud.webhook.access"):
        requests.post(receiver.webhook_url, data=event_body(), headers=auth_headers(), timeout=10)
        requests.get(
            receiver.webhook_url + "?orderId=secret-order", headers=auth_headers(), timeout=10
        )
        requests.post(receiver.webhook_url, data=b"{", headers=auth_headers(), timeout=TIMEOUT)
        requests.post(receiver.webhook_url, data=event_body(), timeout=TIMEOUT)

    lines = [r.__dict__["fields"] for r in caplog.records if r.name == ACCESS_LOGGER.name]
    assert [(line["method"], line["status"]) for line in lines] == [
        ("POST", 200),
        ("GET", 200),
        ("POST", 400),
        ("POST", 401),
    ]
    assert (lines[0]["sequence"], lines[1]["sequence"]) == (1, 2)
    assert lines[2]["quarantine"].endswith(".quarantined")
    assert lines[0]["bytes"] == len(event_body())
    assert {line["path"] for line in lines} == {PATH}
    assert all(line["remote"] == "127.0.0.1" and line["ms"] >= 0 for line in lines)
    for needle in (TOKEN, "secret-order", "orderEvent"):
        assert needle not in caplog.text
        assert needle not in json.dumps(lines)
