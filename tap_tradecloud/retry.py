"""When and how long to retry a request: 429, 5xx, timeouts and dropped connections.

One policy serves the streams (through the SDK's ``request_decorator`` hook) and the
authentication calls, so every request to Tradecloud retries the same way.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import typing as t
from dataclasses import dataclass
from urllib.parse import urlparse

import backoff
import requests
from singer_sdk.exceptions import RetriableAPIError

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Generator

_T = t.TypeVar("_T")

RETRIABLE_ERRORS = (
    ConnectionResetError,
    RetriableAPIError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` as seconds or HTTP-date), if any."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def is_retriable_status(status_code: int) -> bool:
    """429 and every 5xx are worth another try."""
    return status_code == 429 or status_code >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff (``base_seconds * 2**n``) that honours ``Retry-After``.

    ``max_tries`` counts the first attempt; no single wait exceeds ``max_wait_seconds``.
    """

    max_tries: int = 6
    base_seconds: float = 1.0
    max_wait_seconds: float = 60.0

    def wait_seconds(self, attempt: int, response: requests.Response | None) -> float:
        """The wait before retry number ``attempt + 1``."""
        hinted = retry_after_seconds(response)
        wait = hinted if hinted is not None else self.base_seconds * 2**attempt
        return min(wait, self.max_wait_seconds)

    def wait_generator(self) -> Generator[float, BaseException | None, None]:
        """A ``backoff`` wait generator; ``backoff`` sends in each failure's exception."""
        attempt = 0
        error = yield  # type: ignore[misc]  # backoff primes the generator with None
        while True:
            error = yield self.wait_seconds(attempt, getattr(error, "response", None))
            attempt += 1

    def wrap(self, func: Callable[..., _T], logger: logging.Logger) -> Callable[..., _T]:
        """``func`` retried on :data:`RETRIABLE_ERRORS` under this policy."""
        return backoff.on_exception(
            self.wait_generator,
            RETRIABLE_ERRORS,
            max_tries=self.max_tries,
            jitter=None,
            on_backoff=lambda details: logger.warning(
                "Retrying in %.2f s after try %d failed: %s",
                details["wait"],
                details["tries"],
                _cause(details),
            ),
            on_giveup=lambda details: logger.error(
                "Giving up after %d tries: %s", details["tries"], _cause(details)
            ),
            logger=None,
        )(func)


def _cause(details: t.Mapping[str, t.Any]) -> str:
    """What failed, without URL query, headers or bodies (they may carry secrets)."""
    error = details.get("exception")
    response = getattr(error, "response", None)
    if response is not None and response.request is not None:
        return (
            f"HTTP {response.status_code} from {response.request.method} "
            f"{urlparse(response.url).path}"
        )
    return type(error).__name__
