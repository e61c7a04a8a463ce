"""Prove a stored JSON body needs no repair, so its bytes can go into the RECORD line as they are.

Nearly every body Tradecloud sends is clean. For those, decoding it into Python objects and
encoding them again is most of the tap's work per event: instead the body is decoded once with
msgspec (for the few fields a record needs) and embedded verbatim as ``msgspec.Raw``. A body
qualifies only when every repair of ``event_records`` would leave it as it is:

- msgspec decodes it (strict JSON in UTF-8: no NaN or Infinity, no BOM, no raw control
  characters in strings, integers Python's ``json`` can read too) into an object nested at most
  MAX_DEPTH deep;
- it has no ``\\u0000`` or surrogate escape (NUL and lone surrogates are repaired);
- none of its numbers is beyond PostgreSQL's range.

Any other body takes the repairing path, which decodes it with ``json`` as before.
"""

from __future__ import annotations

import decimal
import re
from typing import Any

import msgspec

from tap_tradecloud.webhook.events import too_deep

# PostgreSQL's numeric keeps up to 131072 digits before the point and 16383 after.
NUMERIC_EXPONENT_LIMIT = 16000
# In a valid JSON body NUL and surrogates can only come as escapes.
UNEMITTABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
# A valid body holds raw CR and LF only between tokens (in strings they must be escaped), so
# as spaces they keep the JSON equal and the RECORD message on one line.
_LINE_BREAKS_TO_SPACES = bytes.maketrans(b"\r\n", b"  ")


class _NeedsRepair(ValueError):
    """Raised from the number hook: the body holds a number PostgreSQL cannot store."""


def storable_decimal(text: str) -> decimal.Decimal:
    """A JSON number with a fraction or exponent as an exact decimal, if PostgreSQL can keep it."""
    value = decimal.Decimal(text)
    if abs(value.adjusted()) > NUMERIC_EXPONENT_LIMIT:
        raise _NeedsRepair(text)
    return value


_DECODER = msgspec.json.Decoder(float_hook=storable_decimal)


def has_unemittable_escape(body: bytes) -> bool:
    """Whether ``body`` may hold NUL characters or surrogates (as JSON escapes)."""
    # A one-byte search runs at memchr speed; a two-byte one costs ten times more.
    return b"\\" in body and UNEMITTABLE_ESCAPE.search(body) is not None


def clean_document(body: bytes) -> tuple[dict[str, Any], msgspec.Raw] | None:
    """The decoded body and its bytes to embed verbatim, or None when it may need a repair."""
    if has_unemittable_escape(body):
        return None
    try:
        document = _DECODER.decode(body)
    except (ValueError, RecursionError):  # msgspec's DecodeError is a ValueError
        return None
    if not isinstance(document, dict) or too_deep(body, document):
        return None
    if b"\n" in body or b"\r" in body:
        body = body.translate(_LINE_BREAKS_TO_SPACES)
    return document, msgspec.Raw(body)
