"""A transport adapter that spaces requests to at most N per second.

Mounted on the tap's one ``requests.Session``, it paces every request the tap sends:
searches, order fetches and the login, refresh and logout calls alike.
"""

from __future__ import annotations

import threading
import time
import typing as t

from requests.adapters import HTTPAdapter

from tap_tradecloud.compat import override

if t.TYPE_CHECKING:
    import requests


#: Space requests 5% wider than the limit: the server counts arrivals in a sliding second, and
#: network and scheduling jitter can bring two requests sent exactly 1/rate apart closer.
HEADROOM = 1.05


class ThrottledAdapter(HTTPAdapter):
    """An :class:`HTTPAdapter` that starts requests at least ``HEADROOM / rate`` seconds apart."""

    def __init__(self, max_requests_per_second: float, **kwargs: t.Any) -> None:
        """Pace requests to ``max_requests_per_second`` (must be > 0)."""
        if max_requests_per_second <= 0:
            msg = "max_requests_per_second must be greater than 0"
            raise ValueError(msg)
        super().__init__(**kwargs)
        self._interval = HEADROOM / max_requests_per_second
        self._lock = threading.Lock()
        self._next_start = 0.0

    @override
    def send(  # noqa: PLR0917  # HTTPAdapter.send's signature
        self,
        request: requests.PreparedRequest,
        stream: bool = False,  # HTTPAdapter's signature
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Wait for this request's slot, then send it."""
        self._wait_for_slot()
        return super().send(request, stream, timeout, verify, cert, proxies)

    def _wait_for_slot(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
        if start > now:
            time.sleep(start - now)
