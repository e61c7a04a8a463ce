"""Keep request bytes out of aiohttp's own log records.

aiohttp logs a request it cannot parse with the parser's exception, whose text quotes the raw
header line (an ``Authorization`` header with a control byte in it: the credential) or, after
a ``Content-Length`` lie, the body bytes read as the next request line. Those records keep
their level and logger but lose the exception text, the traceback and the message arguments;
the exception's class name says what went wrong.
"""

from __future__ import annotations

import logging
import re

from tap_tradecloud.compat import override

AIOHTTP_LOGGERS = (
    "aiohttp.access",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
)
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")
WITHHELD = "<withheld>"


class RequestBytesFilter(logging.Filter):
    """Strip everything a log record could carry from the request; keep the rest."""

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place and let it through."""
        message = str(record.msg)
        if record.args:
            message = PLACEHOLDER.sub(WITHHELD, message)
        if record.exc_info and record.exc_info[1] is not None:
            kind = type(record.exc_info[1]).__name__
            message = f"{message} ({kind}; details withheld: they may quote request bytes)"
        record.msg = message
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def redact_aiohttp_logs() -> None:
    """Install the filter on aiohttp's loggers once (it is process-wide, like the loggers)."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RequestBytesFilter) for existing in logger.filters):
            logger.addFilter(RequestBytesFilter())
