"""The tap's one connection to Tradecloud: session, throttle, authentication, retry policy.

Built once per tap run and shared by every stream, so the tap logs in once, paces all its
requests together and logs out once at the end.
"""

from __future__ import annotations

import logging
import typing as t
from functools import cached_property

import requests

from tap_tradecloud.auth import TradecloudLoginAuth, basic_authenticator
from tap_tradecloud.retry import RetryPolicy
from tap_tradecloud.throttle import ThrottledAdapter

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from singer_sdk.authenticators import BasicAuthenticator

logger = logging.getLogger(__name__)


class TradecloudConnection:
    """Everything the streams need to talk to Tradecloud, built from the tap's settings."""

    def __init__(self, config: Mapping[str, t.Any]) -> None:
        """Prepare (but do not open) a connection for ``config``."""
        self._config = config
        self.api_url: str = config["api_url"].rstrip("/")
        self.timeout: int = int(config.get("request_timeout_seconds", 60))
        self.retry_policy = RetryPolicy(
            max_tries=int(config.get("max_retries", 5)) + 1,
            base_seconds=min(1.0, float(config.get("retry_max_wait_seconds", 60))),
            max_wait_seconds=float(config.get("retry_max_wait_seconds", 60)),
        )

    @cached_property
    def session(self) -> requests.Session:
        """The one HTTP session, paced to ``max_requests_per_second``."""
        session = requests.Session()
        adapter = ThrottledAdapter(float(self._config.get("max_requests_per_second", 10)))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    @cached_property
    def authenticator(self) -> TradecloudLoginAuth | BasicAuthenticator:
        """Login/refresh tokens (``auth_method=login``) or Basic on every request."""
        if self._config.get("auth_method", "login") == "basic":
            return basic_authenticator(self._config["username"], self._config["password"])
        return TradecloudLoginAuth(
            api_url=self.api_url,
            username=self._config["username"],
            password=self._config["password"],
            session=self.session,
            retry_policy=self.retry_policy,
            timeout=self.timeout,
        )

    def close(self) -> None:
        """Log out (if logged in) and close the session. Never raises."""
        if "authenticator" in self.__dict__ and isinstance(self.authenticator, TradecloudLoginAuth):
            self.authenticator.logout()
        if "session" in self.__dict__:
            self.session.close()
