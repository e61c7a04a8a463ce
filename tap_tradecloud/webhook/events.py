"""What a Tradecloud webhook body looks like: the one place that knows the payload keys."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

PAYLOAD_KEYS = ("orderEvent", "singleDeliveryOrderEvent", "orderDocumentsEvent")
NOTIFICATION = "notification"
ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}$")


class UnacceptableBodyError(ValueError):
    """An authenticated body that is not a Tradecloud event (it goes to quarantine)."""


def parse_event_body(
    body: bytes, parse_float: Callable[[str], Any] = float
) -> tuple[str, dict[str, Any]]:
    """Return ``(payload key, parsed body)`` of a POST/PUT body, or raise UnacceptableBodyError.

    Unknown ``eventName`` values are fine (Tradecloud adds names at any time); the body must be
    a JSON object holding one of the known payload objects.
    """
    try:
        document = json.loads(body, parse_float=parse_float)
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"body is not valid JSON: {exc}"
        raise UnacceptableBodyError(msg) from None
    if not isinstance(document, dict):
        msg = f"body is a JSON {type(document).__name__}, not an object"
        raise UnacceptableBodyError(msg)
    for key in PAYLOAD_KEYS:
        if isinstance(document.get(key), dict):
            return key, document
    msg = f"body has none of the event objects {', '.join(PAYLOAD_KEYS)}"
    raise UnacceptableBodyError(msg)


def validate_order_id(order_id: str | None) -> str:
    """Return the order id of a GET notification, or raise UnacceptableBodyError."""
    if not order_id:
        msg = "GET notification without an order id (expected <path>/{orderId} or ?orderId=)"
        raise UnacceptableBodyError(msg)
    if not ORDER_ID.match(order_id):
        msg = "GET notification with a malformed order id"
        raise UnacceptableBodyError(msg)
    return order_id
