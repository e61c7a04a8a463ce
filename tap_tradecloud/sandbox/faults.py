"""Faults on demand: a rate limit, random 5xx answers, injected answers and added latency."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

_RETRYABLE_WITH_HINT = (429, 503)


@dataclass(frozen=True)
class Failure:
    """An answer the sandbox gives instead of the real one."""

    status: int
    retry_after: int | None  # seconds, for the Retry-After header


def _retry_after_header(seconds: float) -> int:
    # HTTP allows only whole seconds in Retry-After.
    return max(0, math.ceil(seconds))


class Faults:
    """The fault settings and the state they need (recent requests, injected answers)."""

    def __init__(
        self,
        *,
        seed: int,
        rate_limit_per_second: float | None = None,
        retry_after: bool = True,
        error_rate: float = 0.0,
        latency: float = 0.0,
    ) -> None:
        self.rate_limit_per_second = rate_limit_per_second
        self.retry_after = retry_after
        self.error_rate = error_rate
        self.latency = latency
        self._rng = random.Random(seed)  # noqa: S311 - reproducible faults, not secrets
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()  # monotonic times of requests let through
        self._injected: deque[tuple[int, float | None]] = deque()

    def inject(self, statuses: Iterable[int], retry_after: float | None) -> None:
        """Answer the next API requests with these statuses, in order."""
        with self._lock:
            self._injected.extend((status, retry_after) for status in statuses)

    def for_request(self, *, is_auth: bool) -> Failure | None:
        """The failure to answer this request with, if any (injected, rate limit, error rate)."""
        with self._lock:
            if not is_auth and self._injected:
                status, retry_after = self._injected.popleft()
                return self._failure(status, retry_after)
            limited = self._rate_limited(time.monotonic())
            if limited is not None:
                return limited
            if not is_auth and self.error_rate and self._rng.random() < self.error_rate:
                return self._failure(self._rng.choice((502, 503, 504)), None)
        return None

    def _failure(self, status: int, retry_after: float | None) -> Failure:
        if retry_after is not None:
            return Failure(status, _retry_after_header(retry_after))
        if self.retry_after and status in _RETRYABLE_WITH_HINT:
            return Failure(status, 1)
        return Failure(status, None)

    def _rate_limited(self, now: float) -> Failure | None:
        limit = self.rate_limit_per_second
        if limit is None:
            return None
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if len(self._recent) >= limit:
            wait = self._recent[0] + 1.0 - now
            return Failure(429, _retry_after_header(wait) if self.retry_after else None)
        self._recent.append(now)
        return None
