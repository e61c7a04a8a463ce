"""The receiver's log: JSON lines on stderr, written by a thread of its own in batches.

Records are rendered into plain values on the thread that logs them and queued; the log
thread writes whatever is queued as one batch, then pauses briefly so the next batch can
gather. Under load that is a few writes a second instead of one per request: every wake-up
of the log thread takes Python's GIL from the event loop (and from the spool's committer).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import logging.handlers
import queue
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from tap_tradecloud.compat import override
from tap_tradecloud.timestamps import format_epoch_ms

if TYPE_CHECKING:
    from collections.abc import Iterator

# How long the log thread lets records gather after writing a batch. A line reaches stderr
# at most this much later than it was logged; a record after a quiet spell goes at once.
BATCH_PAUSE_SECONDS = 0.05


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line; request fields come from ``extra={"fields": ...}``."""

    @override
    def format(self, record: logging.LogRecord) -> str:
        """Render the record as JSON."""
        entry: dict[str, object] = {
            "time": format_epoch_ms(int(record.created * 1000)),  # when logged, not written
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # rendered by _LogQueueHandler before the record left its thread
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


class _LogQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the log thread as they are, with message and traceback rendered."""

    @override
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


class LogWriter:
    """A thread that writes queued records to ``stream`` a batch at a time, until stopped."""

    def __init__(
        self,
        stream: TextIO,
        formatter: logging.Formatter,
        pause_seconds: float = BATCH_PAUSE_SECONDS,
    ) -> None:
        self.records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
        self.stream = stream
        self.formatter = formatter
        self.pause_seconds = pause_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write everything queued, then end the thread."""
        self._stopping.set()
        self.records.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = [self.records.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self.records.get_nowait())
            # A record may follow the end marker (logged while stop() ran): write it too.
            done = any(record is None for record in batch)
            self._write([record for record in batch if record is not None])
            if done:
                return
            self._stopping.wait(self.pause_seconds)

    def _write(self, records: list[logging.LogRecord]) -> None:
        lines = []
        for record in records:
            try:
                lines.append(self.formatter.format(record) + "\n")
            except Exception:
                message = f"Could not format a log record: {record.msg!r}"
                lines.append(json.dumps({"level": "ERROR", "message": message}) + "\n")
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or broken: nothing left to tell
            pass


@contextlib.contextmanager
def logging_to_stderr(level: str) -> Iterator[None]:
    """Log JSON lines to stderr from a thread of their own, until the block ends.

    A write to a log file can wait for the file system's journal while the spool fsyncs on
    the same disk; on the event loop that wait stalled every request, so only the log thread
    writes.
    """
    formatter = JsonLogFormatter()
    writer = LogWriter(sys.stderr, formatter)
    logging.basicConfig(level=level, handlers=[_LogQueueHandler(writer.records)], force=True)
    writer.start()
    try:
        yield
    finally:
        writer.stop()  # writes what is queued
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        logging.basicConfig(level=level, handlers=[handler], force=True)
