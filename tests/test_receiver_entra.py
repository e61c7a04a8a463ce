"""Webhook OAuth via Microsoft Entra: the receiver accepts only a valid RS256 JWT from the tenant.

A JWKS is served on loopback by a small aiohttp app, as Entra's ``discovery/v2.0/keys`` serves it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
import pytest
import requests
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tap_tradecloud import spool
from tap_tradecloud.webhook import cli
from tap_tradecloud.webhook.auth import Credentials
from tap_tradecloud.webhook.entra import EntraSettings, EntraTokenValidator
from tests.webhook_helpers import (
    InThreadReceiver,
    ReceiverProcess,
    event_body,
    free_port,
    receiver_in_thread,
    spool_files,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
AUDIENCE = "api://tradecloud-webhook-receiver"
TIMEOUT = 20


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


KEY_A = SigningKey("key-a")
KEY_B = SigningKey("key-b")


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a client-credentials access token from Entra (v2.0)."""
    now = int(time.time())
    return {
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 3600,
        "azp": "0f6c6c0e-0000-4000-8000-000000000001",
        "tid": TENANT,
        "roles": ["Webhook.Send"],
        **overrides,
    }


def rs256(key: SigningKey, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key.private, algorithm="RS256", headers={"kid": key.kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(
    header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """A token built by hand, as an attacker would, signed by ``sign``."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def alg_none_token() -> str:
    return unsigned({"alg": "none", "typ": "JWT", "kid": KEY_A.kid}, claims(), lambda _: b"")


def hs256_with_public_key() -> str:
    secret = KEY_A.public_pem()
    return unsigned(
        {"alg": "HS256", "typ": "JWT", "kid": KEY_A.kid},
        claims(),
        lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )


class JwksServer:
    """Serves a JWKS on 127.0.0.1 from a thread; counts fetches; keys can rotate, or it can fail."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = keys
        self.fetches = 0
        self.status = 200
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/discovery/v2.0/keys"

    async def _serve(self, _request: web.Request) -> web.Response:
        self.fetches += 1
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        return web.json_response({"keys": [key.jwk() for key in self.keys]})

    @contextmanager
    def running(self) -> Iterator[JwksServer]:
        app = web.Application()
        app.router.add_get("/discovery/v2.0/keys", self._serve)
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.run_until_complete(runner.cleanup())
            loop.close()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with JwksServer([KEY_A]).running() as server:
        yield server


@contextmanager
def entra_receiver(spool_dir: Path, jwks_url: str, **settings: Any) -> Iterator[InThreadReceiver]:
    validator = EntraTokenValidator(
        EntraSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_url, **settings)
    )
    with receiver_in_thread(spool_dir, credentials=Credentials(entra=validator)) as running:
        yield running


def post(receiver: InThreadReceiver, token: str) -> requests.Response:
    return post_to(receiver.webhook_url, token)


def stored(spool_dir: Path) -> list[spool.SpooledEvent]:
    return list(spool.iter_events(spool_dir, "r1"))


def nothing_written(spool_dir: Path) -> bool:
    return all(spool_files(spool_dir, "r1", f) == [] for f in ("events", "tmp", "quarantine"))


def test_a_valid_entra_token_is_accepted_and_the_event_stored(
    tmp_path: Path, jwks: JwksServer
) -> None:
    with entra_receiver(tmp_path, jwks.url) as receiver:
        answer = post(receiver, rs256(KEY_A))

    assert answer.status_code == 200
    assert len(stored(tmp_path)) == 1


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda: rs256(KEY_A, exp=int(time.time()) - 600), id="expired"),
        pytest.param(lambda: rs256(KEY_A, aud="api://someone-else"), id="wrong-audience"),
        pytest.param(
            lambda: rs256(KEY_A, iss="https://login.microsoftonline.com/other-tenant/v2.0"),
            id="wrong-issuer",
        ),
        pytest.param(lambda: rs256(SigningKey("never-published")), id="unknown-key-id"),
        pytest.param(lambda: rs256(SigningKey(KEY_A.kid)), id="known-kid-other-key"),
        pytest.param(alg_none_token, id="alg-none"),
        pytest.param(hs256_with_public_key, id="hs256-signed-with-public-key"),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
        pytest.param(lambda: rs256(KEY_A, nbf=int(time.time()) + 600), id="not-yet-valid"),
    ],
)
def test_every_other_token_gets_401_and_nothing_is_stored(
    tmp_path: Path, jwks: JwksServer, make_token: Callable[[], str]
) -> None:
    with entra_receiver(tmp_path, jwks.url) as receiver:
        answer = post(receiver, make_token())
        without = requests.post(
            receiver.webhook_url,
            data=event_body(),
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUT,
        )

    assert (answer.status_code, without.status_code) == (401, 401)
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="tradecloud-webhook"'
    assert nothing_written(tmp_path)


def test_small_clock_skew_is_tolerated(tmp_path: Path, jwks: JwksServer) -> None:
    now = int(time.time())
    with entra_receiver(tmp_path, jwks.url, leeway_seconds=60) as receiver:
        just_expired = post(receiver, rs256(KEY_A, exp=now - 20))
        from_a_fast_clock = post(receiver, rs256(KEY_A, nbf=now + 20, iat=now + 20))

    assert (just_expired.status_code, from_a_fast_clock.status_code) == (200, 200)
    assert len(stored(tmp_path)) == 2


def test_a_rotated_key_is_fetched_once_and_then_cached(tmp_path: Path, jwks: JwksServer) -> None:
    with entra_receiver(tmp_path, jwks.url) as receiver:
        before = post(receiver, rs256(KEY_A))
        jwks.keys = [KEY_B, KEY_A]  # Entra publishes a new key and starts signing with it
        after = [post(receiver, rs256(KEY_B)) for _ in range(3)]

    assert [before.status_code, *(a.status_code for a in after)] == [200, 200, 200, 200]
    assert jwks.fetches == 2
    assert len(stored(tmp_path)) == 4


def test_unknown_key_ids_refetch_the_key_set_at_most_once_per_interval(
    tmp_path: Path, jwks: JwksServer
) -> None:
    """Forged key ids cannot flood Entra; while refetching is held back the receiver answers
    503 (Tradecloud retries), so a genuinely new key is not lost to a 401."""
    forged = [SigningKey(f"forged-{n}") for n in range(4)]
    with entra_receiver(tmp_path, jwks.url, refetch_interval_seconds=3600) as receiver:
        answers = [post(receiver, rs256(key)) for key in forged]
        still_valid = post(receiver, rs256(KEY_A))

    assert [a.status_code for a in answers] == [401, 503, 503, 503]
    assert still_valid.status_code == 200
    assert jwks.fetches == 2  # the first fetch, then one refetch for the first unknown kid
    assert len(stored(tmp_path)) == 1


def test_an_unreachable_key_set_answers_503_so_tradecloud_retries(
    tmp_path: Path, jwks: JwksServer
) -> None:
    jwks.status = 503
    with entra_receiver(tmp_path, jwks.url) as receiver:
        down = post(receiver, rs256(KEY_A))
        jwks.status = 200
        up = post(receiver, rs256(KEY_A))

    assert down.status_code == 503
    assert "Retry-After" in down.headers
    assert up.status_code == 200
    assert len(stored(tmp_path)) == 1


def test_key_set_fetch_does_not_block_other_requests(tmp_path: Path) -> None:
    """While a token waits for a slow JWKS, the health check is still answered."""
    arrived, release = threading.Event(), threading.Event()
    server = JwksServer([KEY_A])
    original = server._serve

    async def slow(request: web.Request) -> web.Response:
        arrived.set()
        await asyncio.to_thread(release.wait, TIMEOUT)
        return await original(request)

    server._serve = slow  # type: ignore[method-assign]
    result: list[int] = []

    def deliver(receiver: InThreadReceiver) -> None:
        result.append(post(receiver, rs256(KEY_A)).status_code)

    with server.running(), entra_receiver(tmp_path, server.url) as receiver:
        waiting = threading.Thread(target=deliver, args=(receiver,))
        waiting.start()
        assert arrived.wait(TIMEOUT)
        health = requests.get(receiver.url + "/healthz", timeout=TIMEOUT)
        answered_before_release = not release.is_set()
        release.set()
        waiting.join(TIMEOUT)

    assert (health.status_code, answered_before_release) == (200, True)
    assert server.fetches == 1
    assert result == [200]


@pytest.fixture
def no_webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TRADECLOUD_WEBHOOK_USERNAME",
        "TRADECLOUD_WEBHOOK_PASSWORD",
        "TRADECLOUD_WEBHOOK_TOKEN",
        "TRADECLOUD_WEBHOOK_ENTRA_ISSUER",
        "TRADECLOUD_WEBHOOK_ENTRA_AUDIENCE",
        "TRADECLOUD_WEBHOOK_ENTRA_JWKS_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_webhook_env")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--entra-issuer", ISSUER, "--entra-jwks-url", "https://x/keys"], "--entra-audience"),
        (
            [
                *("--entra-issuer", ISSUER, "--entra-audience", AUDIENCE),
                *("--entra-jwks-url", "http://login.example.com/keys"),
            ],
            "must be an https:// URL",
        ),
    ],
)
def test_cli_refuses_incomplete_or_unsafe_entra_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--spool-dir", str(tmp_path), *args])

    assert exited.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.usefixtures("no_webhook_env")
def test_cli_reads_entra_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADECLOUD_WEBHOOK_ENTRA_ISSUER", ISSUER)
    monkeypatch.setenv("TRADECLOUD_WEBHOOK_ENTRA_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("TRADECLOUD_WEBHOOK_ENTRA_JWKS_URL", "https://login.example.com/keys")

    args = cli.build_parser().parse_args(["--spool-dir", str(tmp_path)])
    validator = cli._entra_validator(args)
    credentials = Credentials.from_env({}, entra=validator)

    assert validator is not None
    assert validator.settings == EntraSettings(ISSUER, AUDIENCE, "https://login.example.com/keys")
    assert repr(credentials) == "Credentials(entra)"


def test_static_credentials_keep_working_alongside_entra(tmp_path: Path, jwks: JwksServer) -> None:
    validator = EntraTokenValidator(EntraSettings(ISSUER, AUDIENCE, jwks.url))
    credentials = Credentials(token=b"static-token", entra=validator)
    with receiver_in_thread(tmp_path, credentials=credentials) as receiver:
        answers = [post(receiver, token) for token in ("static-token", rs256(KEY_A), "wrong")]

    assert [a.status_code for a in answers] == [200, 200, 401]
    assert len(stored(tmp_path)) == 2


def test_the_receiver_command_validates_entra_tokens(tmp_path: Path, jwks: JwksServer) -> None:
    spool_dir = tmp_path / "spool"
    receiver = ReceiverProcess(
        spool_dir,
        "r1",
        *("--entra-issuer", ISSUER, "--entra-audience", AUDIENCE, "--entra-jwks-url", jwks.url),
    )
    try:
        receiver.wait_healthy()
        good = post_to(receiver.webhook_url, rs256(KEY_A))
        bad = post_to(receiver.webhook_url, rs256(KEY_A, aud="api://other"))
    finally:
        assert receiver.stop() == 0

    assert (good.status_code, bad.status_code) == (200, 401)
    assert len(list(spool.iter_events(spool_dir, "r1"))) == 1


def post_to(url: str, token: str) -> requests.Response:
    return requests.post(
        url,
        data=event_body(message_id=str(uuid.uuid4())),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
