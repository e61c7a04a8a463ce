"""Make any stored webhook event an emittable ``webhook_events`` record.

The receiver stores what Tradecloud sends, byte for byte; the record must still be valid against
the stream's schema and loadable by target-postgres, so here:

- strings lose NUL characters (PostgreSQL refuses them) and lone surrogates become U+FFFD (no
  UTF-8 writer can encode them), in values and keys alike;
- JSON numbers that are not finite become null, numbers beyond PostgreSQL's range text;
- an unreadable ``lastUpdatedAt`` becomes null (the raw value stays in ``event``);
- ids that are not strings become text (numbers) or null (objects, lists);
- a tXML body, or a body that is no JSON object, is carried as text in ``body_text``.

Each repair is reported through ``warn`` so that nothing changes silently. A JSON body that
needs none of them (nearly all) is decoded by ``verbatim`` instead and may be emitted as stored.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_tradecloud import verbatim
from tap_tradecloud.timestamps import format_utc, parse_utc
from tap_tradecloud.webhook.events import (
    MAX_DEPTH,
    NOTIFICATION,
    SHIPMENT,
    TXML,
    event_kind,
    is_xml,
    too_deep,
)

if TYPE_CHECKING:
    import msgspec

    from tap_tradecloud.spool import SpooledEvent

SET_ASIDE = "set_aside"
UNPARSED = "unparsed"
NUMERIC_EXPONENT_LIMIT = verbatim.NUMERIC_EXPONENT_LIMIT
_UNEMITTABLE = re.compile("[\x00\ud800-\udfff]")
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_CANONICAL_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._-]+)", re.IGNORECASE)

Warn = Callable[[str], None]


def clean_text(text: str) -> str:
    """``text`` without NUL characters and with lone surrogates replaced by U+FFFD."""
    if not _UNEMITTABLE.search(text):
        return text
    return _UNEMITTABLE.sub(lambda match: "" if match[0] == "\x00" else "\ufffd", text)


def clean_json(value: Any) -> tuple[Any, bool]:
    """Return ``value`` with every string (and key) cleaned, and whether anything changed.

    Only called on values nested at most MAX_DEPTH deep, so recursion is safe.
    """
    if isinstance(value, str):
        cleaned = clean_text(value)
        return cleaned, cleaned != value
    if isinstance(value, dict):
        changed = False
        result: dict[str, Any] = {}
        for key, item in value.items():
            clean_key = clean_text(key)
            result[clean_key], item_changed = clean_json(item)
            changed = changed or item_changed or clean_key != key
        return result, changed
    if isinstance(value, list):
        items = [clean_json(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    return value, False


def id_text(value: Any) -> str | None:
    """An id as the schema's string: strings cleaned, numbers as text, anything else null."""
    if isinstance(value, str):
        return clean_text(value) or None
    if isinstance(value, (int, decimal.Decimal)) and not isinstance(value, bool):
        return str(value)
    return None


def readable_timestamp(value: Any) -> str | None:
    """``value`` in the canonical UTC form, or None when it is not a readable date-time."""
    if not isinstance(value, str):
        return None
    try:
        if _CANONICAL_UTC.fullmatch(value):  # the usual form: only check the date is real
            dt.datetime.fromisoformat(value[:-1])
            return value
        return format_utc(parse_utc(value))
    except (ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class _Content:
    kind: str
    document: dict[str, Any] | None
    text: str | None
    stored: msgspec.Raw | None = None  # the body as stored, proven to need no repair


def _decode_text(body: bytes, content_type: str | None) -> str:
    encoding = "utf-8"
    declared = _CHARSET.search(content_type or "") or _XML_ENCODING.match(body)
    if declared:
        name = declared[1]
        encoding = name.decode("ascii") if isinstance(name, bytes) else name
    try:
        text = body.decode(encoding, errors="replace")
    except LookupError:  # an encoding Python does not know
        text = body.decode("utf-8", errors="replace")
    return clean_text(text.removeprefix("\ufeff"))


def _content(event: SpooledEvent, warn: Warn) -> _Content:
    meta = event.meta
    if meta.method == "GET":
        return _Content(NOTIFICATION, {"orderId": clean_text(meta.order_id or "")}, None)
    if is_xml((meta.content_type or "").split(";")[0].strip().lower()):
        return _Content(TXML, None, _decode_text(event.body, meta.content_type))
    clean = verbatim.clean_document(event.body)
    if clean is not None:
        return _Content(event_kind(clean[0]), clean[0], None, clean[1])
    numbers = _NumberRepairs()
    try:
        document = json.loads(
            event.body, parse_float=numbers.parse, parse_constant=numbers.not_finite
        )
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict) or too_deep(event.body, document):
        warn(f"is no JSON object of at most {MAX_DEPTH} levels; emitting it as text")
        return _Content(UNPARSED, None, _decode_text(event.body, meta.content_type))
    if numbers.repaired:
        warn("held numbers PostgreSQL cannot store (NaN, Infinity, huge exponents); repaired")
    if verbatim.has_unemittable_escape(event.body):
        document, changed = clean_json(document)
        if changed:
            warn("held NUL characters or lone surrogates; emitting them repaired")
    return _Content(event_kind(document), document, None)


class _NumberRepairs:
    """JSON number hooks: exact decimals, and values PostgreSQL cannot store made loadable."""

    def __init__(self) -> None:
        self.repaired = False

    def parse(self, text: str) -> decimal.Decimal | str:
        value = decimal.Decimal(text)
        if abs(value.adjusted()) > NUMERIC_EXPONENT_LIMIT:
            self.repaired = True
            return str(value)
        return value

    def not_finite(self, _: str) -> None:
        self.repaired = True


def _event_id(body: bytes, document: dict[str, Any] | None, payload: dict[str, Any]) -> str:
    """``meta.messageId`` (top level or in the event), else the SHA-256 of the raw body."""
    for holder in (document or {}, payload):
        meta = holder.get("meta")
        message_id = meta.get("messageId") if isinstance(meta, dict) else None
        if isinstance(message_id, str) and message_id:
            return message_id
    return hashlib.sha256(body).hexdigest()


def notification_body(order_id: str) -> bytes:
    """The canonical body of a GET notification; its SHA-256 is the notification's event id."""
    return json.dumps({"orderId": order_id}, separators=(",", ":")).encode()


def _checked_id(payload: dict[str, Any], key: str, warn: Warn) -> str | None:
    value = payload.get(key)
    text = id_text(value)
    if value is not None and text is None:
        warn(f"has a {key} that is no id ({type(value).__name__}); emitting null")
    return text


def build_record(event: SpooledEvent, warn: Warn, *, embed: bool = False) -> dict[str, Any]:
    """The record of a stored event, without the fetched ``order`` (the stream adds it).

    With ``embed``, a body that needs no repair is ``event`` as ``msgspec.Raw``: its stored bytes,
    written into the RECORD line as they are by the msgspec writer.
    """
    content = _content(event, warn)
    document = content.document
    if content.kind == NOTIFICATION and document is not None:
        payload: dict[str, Any] = document
        id_source = notification_body(str(document["orderId"]))
    else:
        found = document.get(content.kind) if document is not None else None
        payload = found if isinstance(found, dict) else {}
        id_source = event.body
    order_id = None if content.kind == SHIPMENT else _checked_id(payload, "orderId", warn)
    shipment_id = _checked_id(payload, "id", warn) if content.kind == SHIPMENT else None
    raw_time = payload.get("lastUpdatedAt")
    last_updated_at = readable_timestamp(raw_time)
    if raw_time is not None and last_updated_at is None:
        warn(f"has an unreadable lastUpdatedAt {raw_time!r}; emitting null (raw kept in event)")
    event_name = document.get("eventName") if document is not None else None
    return {
        "event_id": _event_id(id_source, document, payload),
        "spool_sequence": event.sequence,
        "receiver_instance": event.instance,
        "received_at": event.meta.received_at,
        "http_method": event.meta.method,
        "event_type": content.kind,
        "event_name": event_name if isinstance(event_name, str) else None,
        "order_id": order_id,
        "shipment_id": shipment_id,
        "last_updated_at": last_updated_at,
        "event": content.stored if embed and content.stored is not None else document,
        "body_text": content.text,
    }


def set_aside_record(event: SpooledEvent) -> dict[str, Any]:
    """The record that stands for a set-aside event: it lets the bookmark pass the event."""
    return {
        "event_id": hashlib.sha256(event.body).hexdigest(),
        "spool_sequence": event.sequence,
        "receiver_instance": event.instance,
        "received_at": event.meta.received_at,
        "http_method": event.meta.method,
        "event_type": SET_ASIDE,
        "event_name": None,
        "order_id": None,
        "shipment_id": None,
        "last_updated_at": None,
        "event": None,
        "body_text": None,
    }
