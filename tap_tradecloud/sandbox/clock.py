"""Tradecloud's timestamp format (``YYYY-MM-DDThh:mm:ss.SSSZ``) and conversions to integers."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from tap_tradecloud.timestamps import format_epoch_ms

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


#: Render milliseconds since the epoch as Tradecloud renders ``lastUpdatedAt``.
format_ms = format_epoch_ms


def parse_us(value: str) -> int:
    """Parse an ISO 8601 timestamp with a zone into microseconds since the epoch.

    Raises ``ValueError`` with a readable message when the value is not such a timestamp.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        msg = f"{value!r} is not a timestamp; use the form YYYY-MM-DDThh:mm:ss.SSSZ"
        raise ValueError(msg) from None
    if parsed.tzinfo is None:
        msg = f"{value!r} has no time zone; use the form YYYY-MM-DDThh:mm:ss.SSSZ"
        raise ValueError(msg)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_ms(value: str) -> int:
    """Parse a timestamp into whole milliseconds since the epoch (sub-millisecond part dropped)."""
    return parse_us(value) // 1000


def now_ms() -> int:
    """The wall clock in whole milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
