"""What a Tradecloud webhook body looks like: the one place that knows the payload keys.

Any JSON object is an event: Tradecloud sends order events, shipment events and kinds still to
come through the same webhook. Its kind is the payload key it holds (``orderEvent``,
``shipment``, ...). A tXML body (a per-company format setting) is an event too, kept as text.
Only bodies that are no Tradecloud delivery at all are refused (they go to quarantine).
"""

from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

ORDER_EVENT_KEYS = ("orderEvent", "singleDeliveryOrderEvent", "orderDocumentsEvent")
SHIPMENT = "shipment"
KNOWN_KINDS = (*ORDER_EVENT_KEYS, SHIPMENT)
NOTIFICATION = "notification"
TXML = "tXML"
UNKNOWN_KIND = "unknown"
NOT_A_PAYLOAD = frozenset({"eventName", "meta"})
# Tradecloud's bodies nest about ten levels; this leaves room and keeps every parser and
# PostgreSQL's jsonb far from their own recursion limits.
MAX_DEPTH = 128
MAX_ID_LENGTH = 256


class UnacceptableBodyError(ValueError):
    """An authenticated body that is not a Tradecloud event (it goes to quarantine)."""


def _refuse_constant(name: str) -> Any:
    msg = f"body is not valid JSON: {name} is not a JSON number"
    raise UnacceptableBodyError(msg)


def json_depth(value: object) -> int:
    """How deeply objects and arrays nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def too_deep(body: bytes, document: object) -> bool:
    """Whether ``document`` (parsed from ``body``) nests deeper than MAX_DEPTH.

    A body with at most MAX_DEPTH brackets cannot, which spares most bodies the walk.
    """
    if body.count(b"{") + body.count(b"[") <= MAX_DEPTH:
        return False
    return json_depth(document) > MAX_DEPTH


def parse_event_body(
    body: bytes, parse_float: Callable[[str], Any] = float
) -> tuple[str, dict[str, Any]]:
    """Return ``(event kind, parsed body)`` of a JSON body, or raise UnacceptableBodyError."""
    try:
        document = json.loads(body, parse_float=parse_float, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        # The codec's message would quote a body byte: keep body bytes out of logs.
        msg = "body is not valid JSON: it is not UTF-8"
        raise UnacceptableBodyError(msg) from None
    except RecursionError:
        msg = f"body is not a Tradecloud event: JSON nested deeper than {MAX_DEPTH} levels"
        raise UnacceptableBodyError(msg) from None
    except ValueError as exc:
        if isinstance(exc, UnacceptableBodyError):
            raise
        msg = f"body is not valid JSON: {exc}"
        raise UnacceptableBodyError(msg) from None
    if not isinstance(document, dict):
        msg = f"body is a JSON {type(document).__name__}, not an object"
        raise UnacceptableBodyError(msg)
    if too_deep(body, document):
        msg = f"body is not a Tradecloud event: JSON nested deeper than {MAX_DEPTH} levels"
        raise UnacceptableBodyError(msg)
    return event_kind(document), document


def event_kind(document: dict[str, Any]) -> str:
    """The payload key of an event body: a known one, else the first other object in it."""
    for key in KNOWN_KINDS:
        if isinstance(document.get(key), dict):
            return key
    for key, value in document.items():
        if key not in NOT_A_PAYLOAD and isinstance(value, dict):
            return str(key)
    return UNKNOWN_KIND


def is_xml(content_type: str) -> bool:
    """Whether a content type is XML (how tXML webhooks arrive)."""
    return content_type in {"application/xml", "text/xml"} or content_type.endswith("+xml")


def is_json(content_type: str) -> bool:
    """Whether a content type is JSON."""
    return content_type == "application/json" or content_type.endswith("+json")


def check_xml_body(body: bytes) -> None:
    """Raise UnacceptableBodyError unless ``body`` looks like an XML document."""
    start = body.lstrip(b"\xef\xbb\xbf").lstrip()
    if not start.startswith(b"<"):
        msg = "body is declared as XML but does not start with '<'"
        raise UnacceptableBodyError(msg)


def validate_order_id(order_id: str | None) -> str:
    """Return the order id of a GET notification, or raise UnacceptableBodyError.

    Real ids hold any character but whitespace (``#`` among them, sent as ``%23``).
    """
    if not order_id:
        msg = "GET notification without an order id (expected <path>/{orderId} or ?orderId=)"
        raise UnacceptableBodyError(msg)
    if len(order_id) > MAX_ID_LENGTH:
        msg = f"GET notification with an order id longer than {MAX_ID_LENGTH} characters"
        raise UnacceptableBodyError(msg)
    if any(char.isspace() or unicodedata.category(char) in {"Cc", "Cs"} for char in order_id):
        msg = "GET notification with an order id holding whitespace or control characters"
        raise UnacceptableBodyError(msg)
    return order_id
