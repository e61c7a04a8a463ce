"""The spool's data: what an event is, how records are encoded, and how objects are named.

Layout, one partition per receiver instance, the same on every backend (a local folder or an
object-store prefix)::

    <spool>/<instance>/identity                 created with the partition; a new one means a
                                                recreated partition (read it from the start)
    <spool>/<instance>/events/<seq>.event       a segment: one or more acknowledged events,
                                                named after the sequence of its first event
    <spool>/<instance>/quarantine/<name>.quarantined   authenticated bodies that were refused
    <spool>/<instance>/set-aside/<seq>.event    copies of events the tap could not emit
    <spool>/<instance>/tmp/, writer.lock        local folders only (write-then-link, flock)

A record is one line of JSON metadata, a newline, then the raw body exactly as received. In a
segment each metadata line also holds ``bytes``, the body's length, so records follow each other;
a record without ``bytes`` (a quarantined or set-aside copy, or an event file written before
segments existed) holds the rest of the data as its body. A segment's events have consecutive
sequence numbers, so the segment's name and its record count give every event's number.
"""

from __future__ import annotations

import errno
import json
import re
from typing import TYPE_CHECKING

import msgspec
from msgspec.structs import asdict, astuple

# utc_now_ms is imported from here by the receiver: one formatter, in timestamps.
from tap_tradecloud.timestamps import format_utc, parse_utc, utc_now_ms  # noqa: F401 - re-exported

if TYPE_CHECKING:
    import datetime
    from collections.abc import Iterator

EVENTS_DIR = "events"
QUARANTINE_DIR = "quarantine"
SET_ASIDE_DIR = "set-aside"
IDENTITY_FILE = "identity"
JOURNAL_FILE = "journal"  # local folders only: see journal.py
EVENT_SUFFIX = ".event"
QUARANTINE_SUFFIX = ".quarantined"
SEQUENCE_DIGITS = 20
EVENT_NAME = re.compile(rf"^(\d{{{SEQUENCE_DIGITS}}})\{EVENT_SUFFIX}$")
INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
METADATA_MAX_BYTES = 64 * 1024
# Several times faster than json.loads on a metadata line, which every event has.
_METADATA_DECODER = msgspec.json.Decoder()


class SpoolError(Exception):
    """A spool problem the caller should report (the receiver answers 503)."""


class SpoolFullError(SpoolError):
    """Free space or free inodes are below the guard: refuse before the disk is full."""


class SpoolLockedError(SpoolError):
    """Another writer holds the partition."""


class CorruptEventError(SpoolError):
    """An event file does not have the spool format."""


class SpoolConflictError(SpoolError):
    """An event file with the next sequence number already exists: another writer made it."""


class SpoolUnavailableError(SpoolError):
    """The object store did not answer or refused the request."""


class EventMeta(msgspec.Struct, frozen=True):
    """What the receiver knows about a request besides its body."""

    received_at: str
    method: str
    path: str
    content_type: str | None = None
    order_id: str | None = None


class SpooledEvent(msgspec.Struct, frozen=True):
    """One acknowledged event as read back from the spool.

    ``damage`` says why a record could not be decoded (then ``meta`` holds only the time it was
    stored and ``body`` the undecodable rest of its segment); the reader yields it so the
    caller can set it aside.
    """

    instance: str
    sequence: int
    meta: EventMeta
    body: bytes
    damage: str | None = None


class QuarantinedBody(msgspec.Struct, frozen=True):
    """One refused body as read back from the quarantine folder."""

    name: str
    meta: EventMeta
    reason: str
    body: bytes


def format_utc_ms(moment: datetime.datetime) -> str:
    """Return ``moment`` (aware) as ``YYYY-MM-DDThh:mm:ss.SSSZ`` in UTC."""
    return format_utc(moment)


def parse_utc_ms(value: str) -> datetime.datetime:
    """Parse a timestamp written by :func:`utc_now_ms`."""
    return parse_utc(value)


def validate_instance(instance: str) -> str:
    """Return ``instance`` if it is usable as a partition folder name, else raise ValueError."""
    if not INSTANCE_NAME.match(instance):
        msg = (
            f"Invalid receiver instance id {instance!r}: use 1-128 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit."
        )
        raise ValueError(msg)
    return instance


def event_file_name(sequence: int) -> str:
    """Return the name of the segment whose first event has this sequence number."""
    return f"{sequence:0{SEQUENCE_DIGITS}d}{EVENT_SUFFIX}"


def segment_sequence(name: str) -> int | None:
    """Return the first sequence of a segment name, or None for any other name."""
    match = EVENT_NAME.match(name)
    return int(match[1]) if match else None


def key(instance: str, folder: str, name: str = "") -> str:
    """Return the backend-neutral key ``<instance>/<folder>/<name>``."""
    return f"{validate_instance(instance)}/{folder}/{name}" if name else f"{instance}/{folder}"


def encode_record(fields: dict[str, object], body: bytes, *, framed: bool = True) -> bytes:
    """Encode one record; ``framed`` adds the body length so another record may follow."""
    if framed:
        fields = {**fields, "bytes": len(body)}
    return _json_line(fields) + body


def _json_line(fields: dict[str, object]) -> bytes:
    readable = {name: _encodable(v) if isinstance(v, str) else v for name, v in fields.items()}
    return json.dumps(readable, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def _encodable(text: str) -> str:
    """``text`` with its lone surrogates written out (a byte 0xff as the four characters \\xff).

    aiohttp hands a header byte that is not UTF-8 over as a lone surrogate; JSON would write it
    as an escape that strict decoders (the spool reader's) refuse, and the tap would set the
    whole segment aside.
    """
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte produced
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _FramedMeta(EventMeta, frozen=True, kw_only=True):
    """A segment record's metadata line: the event's metadata and its body's length."""

    bytes: int


_SEGMENT_ENCODER = msgspec.json.Encoder()


def encode_segment(events: list[tuple[EventMeta, bytes]]) -> bytes:
    """Encode consecutive events as one segment.

    The same lines as :func:`encode_record` writes (UTF-8 where that escapes non-ASCII), at
    about a seventh of its cost: this runs on the receiver's event loop for every delivery.
    """
    return b"".join(_framed_line(meta, len(body)) + body for meta, body in events)


def _framed_line(meta: EventMeta, size: int) -> bytes:
    try:
        return _SEGMENT_ENCODER.encode(_FramedMeta(*astuple(meta), bytes=size)) + b"\n"
    except UnicodeEncodeError:  # a lone surrogate: see _encodable
        return _json_line({**asdict(meta), "bytes": size})


def decode_record(data: bytes, where: str) -> tuple[dict[str, object], bytes]:
    """Decode a record that fills ``data`` (a quarantined or set-aside copy)."""
    [(fields, body, _)] = decode_records(data, where)
    return fields, body


def decode_records(data: bytes, where: str) -> Iterator[tuple[dict[str, object], bytes, int]]:
    """Yield each record of a segment with the offset where the next one starts.

    Raises CorruptEventError at the first undecodable record.
    """
    offset = 0
    while offset < len(data):
        end = data.find(b"\n", offset, offset + METADATA_MAX_BYTES)
        fields = _metadata(data[offset:end] if end >= 0 else b"")
        if fields is None:
            msg = f"Spool file {where} is not in the spool format; move it out of the spool."
            raise CorruptEventError(msg)
        size = fields.get("bytes")
        start = end + 1
        if size is None:  # a single record: the body is the rest
            yield fields, data[start:], len(data)
            return
        if not isinstance(size, int) or size < 0 or start + size > len(data):
            msg = f"Spool file {where} is cut short (a record claims {size!r} bytes)."
            raise CorruptEventError(msg)
        offset = start + size
        yield fields, data[start:offset], offset


def _metadata(line: bytes) -> dict[str, object] | None:
    try:
        fields = _METADATA_DECODER.decode(line)
    except ValueError:  # msgspec's DecodeError is one
        return None
    if not isinstance(fields, dict) or "received_at" not in fields:
        return None
    return fields


def meta_from(fields: dict[str, object]) -> EventMeta:
    """Build the EventMeta of a decoded metadata line."""
    return EventMeta(
        received_at=str(fields["received_at"]),
        method=str(fields.get("method", "")),
        path=str(fields.get("path", "")),
        content_type=fields.get("content_type"),  # type: ignore[arg-type]
        order_id=fields.get("order_id"),  # type: ignore[arg-type]
    )


def decode_segment(
    data: bytes, instance: str, first: int, where: str, stored_at: str
) -> Iterator[SpooledEvent]:
    """Yield the events of a segment; an undecodable rest comes back as one damaged event."""
    sequence = first
    offset = 0
    try:
        for fields, body, offset in decode_records(data, where):  # noqa: B007 - kept for except
            yield SpooledEvent(instance, sequence, meta_from(fields), body)
            sequence += 1
    except CorruptEventError as exc:
        meta = EventMeta(received_at=stored_at, method="", path="")
        damage = f"not in the spool format ({exc})"
        yield SpooledEvent(instance, sequence, meta, data[offset:], damage=damage)


def segment_length(data: bytes, where: str) -> int:
    """How many sequence numbers a segment takes (a damaged rest counts as one)."""
    return sum(1 for _ in decode_segment(data, "", 0, where, ""))


def is_disk_full(exc: BaseException) -> bool:
    """Tell whether an error means the spool's file system is full."""
    return isinstance(exc, SpoolFullError) or (
        isinstance(exc, OSError) and exc.errno in {errno.ENOSPC, errno.EDQUOT}
    )
