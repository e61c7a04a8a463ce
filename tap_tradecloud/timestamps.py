"""One UTC form for every timestamp the tap compares: ``YYYY-MM-DDThh:mm:ss.SSSZ``.

The SDK compares bookmarks as strings, so records, bookmarks and filters must all use
exactly this form for string order to equal time order.
"""

from __future__ import annotations

import datetime as dt
import re
import time

EPOCH = "1970-01-01T00:00:00.000Z"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

_CANONICAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_ISO_8601 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:[.,](?P<fraction>\d+))?\s*(?P<zone>Z|z|[+-]\d{2}(?::?\d{2})?)?"
)


def parse_utc(value: str) -> dt.datetime:
    """Parse an ISO 8601 date-time that names its zone; raise ValueError otherwise."""
    match = _ISO_8601.fullmatch(value.strip())
    if match is None:
        msg = f"{value!r} is not an ISO 8601 date-time"
        raise ValueError(msg)
    if match["zone"] is None:
        msg = f"{value!r} has no time zone; add 'Z' or an offset such as '+01:00'"
        raise ValueError(msg)
    zone = "+00:00" if match["zone"] in {"Z", "z"} else match["zone"]
    if len(zone) == 3:
        zone += ":00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    micros = (match["fraction"] or "0")[:6].ljust(6, "0")
    seconds = match["time"] if match["time"].count(":") == 2 else f"{match['time']}:00"
    parsed = dt.datetime.fromisoformat(f"{match['date']}T{seconds}.{micros}{zone}")
    return parsed.astimezone(dt.timezone.utc)


def format_epoch_ms(epoch_ms: int) -> str:
    """Format milliseconds since the epoch as ``YYYY-MM-DDThh:mm:ss.SSSZ``.

    The one formatter of the package; ``time.gmtime`` keeps it fast enough for the sandbox,
    which formats a timestamp for every generated order line.
    """
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def format_utc(moment: dt.datetime) -> str:
    """Format an aware datetime as ``YYYY-MM-DDThh:mm:ss.SSSZ`` (truncated to milliseconds)."""
    return format_epoch_ms((moment - _EPOCH) // dt.timedelta(milliseconds=1))


def utc_now_ms() -> str:
    """The current time as ``YYYY-MM-DDThh:mm:ss.SSSZ``."""
    return format_epoch_ms(time.time_ns() // 1_000_000)


def normalise(value: str) -> str:
    """Return ``value`` in the canonical UTC millisecond form."""
    if _CANONICAL.fullmatch(value):
        return value
    return format_utc(parse_utc(value))


def one_ms_before(value: str) -> str:
    """The canonical timestamp one millisecond before ``value``."""
    return format_utc(parse_utc(value) - dt.timedelta(milliseconds=1))
