"""Tradecloud authentication: log in once, use the access token, refresh it, log out.

``GET /authentication/login`` (Basic) answers with the tokens in the ``Set-Authorization`` and
``Set-Refresh-Token`` response headers. ``GET /authentication/refresh`` (``Refresh-Token``
header, no ``Authorization``) rotates both; a refresh token works once. ``POST
/authentication/logout`` (``Refresh-Token``) ends the session.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
import typing as t

import requests
from requests.auth import AuthBase, HTTPBasicAuth
from singer_sdk.authenticators import BasicAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_tradecloud.compat import override
from tap_tradecloud.retry import is_retriable_status

if t.TYPE_CHECKING:
    from tap_tradecloud.retry import RetryPolicy

#: Refresh this long before the access token's ``exp`` (at most a tenth of its lifetime).
REFRESH_MARGIN_SECONDS = 60.0
#: Assumed lifetime of an access token whose ``exp`` cannot be read (Tradecloud's shortest ever
#: documented lifetime was 10 minutes).
FALLBACK_TOKEN_LIFETIME_SECONDS = 300.0

logger = logging.getLogger(__name__)


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Explicitly none: the SDK makes the stream authenticator the session's default auth."""
    return request


class LoginError(FatalAPIError):
    """Tradecloud refused the credentials."""


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, read without verifying; None if unreadable."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) else None


def _header_token(response: requests.Response, header: str) -> str:
    value = response.headers.get(header, "").strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    if not value:
        msg = (
            f"{response.request.method} {requests.utils.urlparse(response.url).path} answered "
            f"{response.status_code} without a {header} header; check that api_url points at "
            "the Tradecloud API (it must end in /v2)."
        )
        raise FatalAPIError(msg)
    return value


class TradecloudLoginAuth(AuthBase):
    """Bearer auth from a Tradecloud login, shared by every stream of one tap run.

    Refreshes the access token shortly before it expires and when a request comes back 401
    (that request is then sent once more with the new token). A refused refresh falls back to
    a new login. One lock serialises login and refresh: refresh tokens are single-use.
    """

    def __init__(
        self,
        *,
        api_url: str,
        username: str,
        password: str,
        session: requests.Session,
        retry_policy: RetryPolicy,
        timeout: int,
    ) -> None:
        """Authenticate against ``api_url`` (the ``/v2`` base) through ``session``."""
        self._api_url = api_url.rstrip("/")
        self._username = username
        self._basic = HTTPBasicAuth(username, password)
        self._session = session
        self._timeout = timeout
        self._get = retry_policy.wrap(self._get_once, logger)
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        self._renew_at = 0.0

    @override
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Put a valid access token on ``request`` and retry it once on a 401."""
        request.headers["Authorization"] = f"Bearer {self._current_token()}"
        if self._retry_on_401 not in request.hooks["response"]:
            request.register_hook("response", self._retry_on_401)
        return request

    def logout(self) -> None:
        """End the Tradecloud session, if one was started. Never raises."""
        with self._lock:
            refresh_token, self._refresh_token, self._access_token = self._refresh_token, None, None
        if refresh_token is None:
            return
        try:
            response = self._session.post(
                f"{self._api_url}/authentication/logout",
                headers={"Refresh-Token": refresh_token},
                auth=_no_auth,
                timeout=self._timeout,
            )
        except requests.RequestException as error:
            logger.warning("Logout from Tradecloud failed: %s", type(error).__name__)
            return
        if response.ok:
            logger.info("Logged out from Tradecloud.")
        else:
            logger.warning("Logout from Tradecloud answered HTTP %d.", response.status_code)

    def _current_token(self) -> str:
        with self._lock:
            if self._access_token is None:
                self._login()
            elif time.time() >= self._renew_at:
                self._refresh_or_login()
            assert self._access_token is not None  # set by login/refresh
            return self._access_token

    def _retry_on_401(self, response: requests.Response, **kwargs: t.Any) -> requests.Response:
        if response.status_code != 401:
            return response
        rejected = response.request.headers.get("Authorization", "")
        with self._lock:
            if rejected == f"Bearer {self._access_token}":
                logger.info("Tradecloud rejected the access token; refreshing it.")
                self._refresh_or_login()
            token = self._access_token
        _ = response.content  # release the connection before reusing it
        response.close()
        retry = response.request.copy()
        retry.hooks = requests.hooks.default_hooks()  # a second 401 is final
        retry.headers["Authorization"] = f"Bearer {token}"
        second = response.connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        return second

    def _login(self) -> None:
        response = self._get("/authentication/login", auth=self._basic)
        if response.status_code in {401, 403}:
            msg = (
                f"Tradecloud refused the login of {self._username!r} (HTTP "
                f"{response.status_code}): check the username and password settings, and that "
                "this user has Tradecloud's `integration` role (support@tradecloud1.com "
                "assigns it)."
            )
            raise LoginError(msg)
        self._check(response, "login")
        self._store_tokens(response)
        logger.info("Logged in to Tradecloud as %s.", self._username)

    def _refresh_or_login(self) -> None:
        if self._refresh_token is None:
            self._login()
            return
        response = self._get(
            "/authentication/refresh",
            headers={"Refresh-Token": self._refresh_token},
            auth=_no_auth,
        )
        if 400 <= response.status_code < 500:
            logger.info(
                "Tradecloud refused the token refresh (HTTP %d); logging in again.",
                response.status_code,
            )
            self._refresh_token = None
            self._login()
            return
        self._check(response, "token refresh")
        self._store_tokens(response)

    def _store_tokens(self, response: requests.Response) -> None:
        self._access_token = _header_token(response, "Set-Authorization")
        self._refresh_token = _header_token(response, "Set-Refresh-Token")
        now = time.time()
        expiry = token_expiry(self._access_token)
        if expiry is None or expiry <= now:  # not a JWT, or our clock runs ahead of Tradecloud's
            expiry = now + FALLBACK_TOKEN_LIFETIME_SECONDS
        lifetime = expiry - now
        self._renew_at = expiry - min(REFRESH_MARGIN_SECONDS, lifetime / 10)

    def _get_once(self, path: str, **kwargs: t.Any) -> requests.Response:
        response = self._session.get(f"{self._api_url}{path}", timeout=self._timeout, **kwargs)
        if is_retriable_status(response.status_code):
            msg = f"{path} answered HTTP {response.status_code} {response.reason}"
            raise RetriableAPIError(msg, response)
        return response

    @staticmethod
    def _check(response: requests.Response, what: str) -> None:
        if not response.ok:
            msg = (
                f"Tradecloud {what} failed with HTTP {response.status_code} "
                f"{response.reason}: {response.text[:500]}"
            )
            raise FatalAPIError(msg)


def basic_authenticator(username: str, password: str) -> BasicAuthenticator:
    """Basic credentials on every request (the ``basic`` auth_method)."""
    return BasicAuthenticator(username=username, password=password)
