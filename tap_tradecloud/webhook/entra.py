"""Webhook OAuth via Microsoft Entra: validate the RS256 bearer JWT Tradecloud sends.

Tradecloud fetches a client-credentials token from Entra and sends it as ``Authorization: Bearer``.
The receiver checks its RS256 signature against the tenant's published keys (JWKS), its issuer,
audience and lifetime (with some leeway for clock skew). Only RS256 is accepted: never ``none``,
never an HMAC algorithm (which would let anyone sign with the public key).

Keys rotate: a token signed with a key id the cached key set lacks makes the validator fetch the
key set again, at most once per ``refetch_interval`` so that forged key ids cannot turn the
receiver into a flood of requests to Entra. Fetching happens in a worker thread, never on the
event loop. A 401 to a genuine Tradecloud delivery loses it for good, so whenever a token cannot
be judged (the key set cannot be fetched, or an unknown key id arrives while refetching is held
back) the validator raises ``KeySetUnavailableError`` and the app answers 503, which Tradecloud
retries. Only a key id still unknown right after a fresh fetch is refused with 401.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKClientConnectionError, PyJWKClientError

if TYPE_CHECKING:
    from collections.abc import Callable

LOGGER = logging.getLogger(__name__)

ALGORITHM = "RS256"
DEFAULT_LEEWAY_SECONDS = 60.0
DEFAULT_REFETCH_INTERVAL_SECONDS = 60.0
DEFAULT_KEY_SET_LIFESPAN_SECONDS = 3600.0
_FETCH_TIMEOUT_SECONDS = 10


class EntraSettingsError(ValueError):
    """The Entra settings are incomplete or unsafe."""


class KeySetUnavailableError(RuntimeError):
    """The JWKS could not be fetched, so no token can be judged right now."""


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class EntraSettings:
    """What a token must match; from ``--entra-*`` flags or ``TRADECLOUD_WEBHOOK_ENTRA_*``."""

    issuer: str
    audience: str
    jwks_url: str
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS
    refetch_interval_seconds: float = DEFAULT_REFETCH_INTERVAL_SECONDS

    def __post_init__(self) -> None:
        missing = [name for name in ("issuer", "audience", "jwks_url") if not getattr(self, name)]
        if missing:
            flags = ", ".join(f"--entra-{name.replace('_', '-')}" for name in missing)
            msg = (
                f"Entra webhook authentication needs issuer, audience and JWKS URL; missing "
                f"{flags} (or TRADECLOUD_WEBHOOK_ENTRA_{missing[0].upper()})."
            )
            raise EntraSettingsError(msg)
        url = urlsplit(self.jwks_url)
        if url.scheme != "https" and not (url.scheme == "http" and _is_loopback(url.hostname)):
            msg = (
                f"--entra-jwks-url must be an https:// URL (e.g. https://login.microsoftonline.com/"
                f"<tenant>/discovery/v2.0/keys), got {self.jwks_url!r}"
            )
            raise EntraSettingsError(msg)
        if self.leeway_seconds < 0 or self.refetch_interval_seconds < 0:
            msg = "--entra-leeway and the JWKS refetch interval must not be negative"
            raise EntraSettingsError(msg)


class EntraTokenValidator:
    """Validates Entra access tokens; safe to share between requests and threads."""

    def __init__(
        self,
        settings: EntraSettings,
        *,
        key_set_lifespan: float = DEFAULT_KEY_SET_LIFESPAN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._client = PyJWKClient(
            settings.jwks_url,
            cache_jwk_set=True,
            lifespan=key_set_lifespan,
            timeout=_FETCH_TIMEOUT_SECONDS,
            cooldown_duration=0,  # unused: get_signing_key() is not called; see _signing_key
        )
        self._clock = clock
        self._lock = threading.Lock()  # one fetch at a time; the others then use its result
        self._last_refetch: float | None = None

    async def accepts(self, token: str) -> bool:
        """Whether ``token`` is a valid RS256 token for the configured issuer and audience.

        Raises ``KeySetUnavailableError`` when the token cannot be judged now.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return False
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            return False
        key = await asyncio.to_thread(self._signing_key, kid)
        if key is None:
            LOGGER.warning("Entra token signed with unknown key id %r", kid)
            return False
        try:
            jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            LOGGER.warning("Entra token refused: %s", exc)
            return False
        return True

    def _signing_key(self, kid: str) -> PyJWK | None:
        """The key with id ``kid`` from the cached set, refetched (rate-limited) if absent."""
        with self._lock:
            key = self._find(kid, refresh=False)
            if key is not None:
                return key
            now = self._clock()
            waited = None if self._last_refetch is None else now - self._last_refetch
            if waited is not None and waited < self.settings.refetch_interval_seconds:
                msg = (
                    f"unknown key id {kid!r}; the key set was refetched {waited:.0f} s ago, "
                    "so the token is judged on a later retry"
                )
                raise KeySetUnavailableError(msg)
            self._last_refetch = now
            return self._find(kid, refresh=True)

    def _find(self, kid: str, *, refresh: bool) -> PyJWK | None:
        try:
            keys = self._client.get_signing_keys(refresh=refresh)
        except PyJWKClientConnectionError as exc:
            msg = f"cannot fetch the Entra JWKS: {exc}"
            raise KeySetUnavailableError(msg) from exc
        except PyJWKClientError as exc:  # reachable, but no usable signing key in it
            msg = f"unusable Entra JWKS: {exc}"
            raise KeySetUnavailableError(msg) from exc
        return next((key for key in keys if key.key_id == kid), None)
