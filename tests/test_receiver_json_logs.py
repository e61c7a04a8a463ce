"""The receiver's log thread: every record written, in order, a batch per write."""

from __future__ import annotations

import io
import json
import logging
import time

from tap_tradecloud.webhook.json_logs import JsonLogFormatter, LogWriter


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def record(message: str, created: float | None = None) -> logging.LogRecord:
    made = logging.LogRecord(
        "tap_tradecloud.webhook.access", logging.INFO, __file__, 1, message, None, None
    )
    if created is not None:
        made.created = created
    return made


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_records_logged_together_are_written_together_and_all_of_them_by_stop() -> None:
    stream = CountingStream()
    writer = LogWriter(stream, JsonLogFormatter(), pause_seconds=30.0)
    writer.start()
    writer.records.put(record("first"))
    deadline = time.monotonic() + 10
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [line["message"] for line in lines(stream)] == ["first"]  # not held for the pause

    for number in range(500):  # while the thread pauses: they wait for one write
        writer.records.put(record(f"request {number}"))
    writer.stop()

    assert [line["message"] for line in lines(stream)] == [
        "first",
        *(f"request {number}" for number in range(500)),
    ]
    assert stream.writes == 2


def test_a_line_carries_the_time_it_was_logged_not_the_time_it_was_written() -> None:
    stream = io.StringIO()
    writer = LogWriter(stream, JsonLogFormatter())
    writer.start()
    writer.records.put(record("late", created=1_700_000_000.123))
    writer.stop()

    assert lines(stream) == [
        {
            "time": "2023-11-14T22:13:20.123Z",
            "level": "INFO",
            "logger": "tap_tradecloud.webhook.access",
            "message": "late",
        }
    ]


def test_a_record_that_cannot_be_formatted_is_reported_and_the_rest_still_written() -> None:
    stream = io.StringIO()
    writer = LogWriter(stream, JsonLogFormatter())
    broken = record("value %d")
    broken.args = ("not a number",)
    writer.records.put(broken)
    writer.records.put(record("after"))
    writer.start()
    writer.stop()

    written = lines(stream)
    assert written[0]["level"] == "ERROR"
    assert "value %d" in str(written[0]["message"])
    assert written[1]["message"] == "after"


def test_a_record_logged_while_stopping_is_written_and_the_thread_still_ends() -> None:
    """A thread may log after stop() queued its end marker; the writer must not wait for more."""
    stream = io.StringIO()
    writer = LogWriter(stream, JsonLogFormatter())
    writer.records.put(record("before"))
    writer.records.put(None)  # stop()'s end marker...
    writer.records.put(record("late"))  # ...and a record logged just after it
    writer.start()
    writer._thread.join(timeout=10)

    assert not writer._thread.is_alive()
    assert [line["message"] for line in lines(stream)] == ["before", "late"]
