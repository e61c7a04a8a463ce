"""Singer output: msgspec-encoded lines, written by a background thread when stdout is a pipe.

A target such as target-postgres stops reading while it loads a batch. Written directly, the
pipe fills within a few orders and the tap stops downloading until the load is done, so under
Tradecloud's 10 requests/s every load adds its whole duration to the run. A writer thread with a
bounded buffer lets the download go on meanwhile. Messages keep their order (a STATE never
overtakes the records before it), the buffer is bounded in bytes, and whatever was buffered is
written before the tap exits, also when the sync fails.
"""

from __future__ import annotations

import atexit
import collections
import sys
import threading
import time
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter

from tap_tradecloud.compat import override

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

#: Bytes of messages held while the target is busy: about 6 seconds of Tradecloud's maximum rate
#: (1,000 orders/s of about 6 KB each), and a bound on the memory it may take.
BUFFER_BYTES = 32 * 1024 * 1024
#: The writer thread collects lines up to this many bytes, or for LINGER_SECONDS, per write:
#: woken for every line, it would take the tap's thread about as much CPU as the record itself.
WRITE_BYTES = 256 * 1024
LINGER_SECONDS = 0.02


class SingerOutput(MsgSpecWriter):
    """The SDK's msgspec writer (several times faster than simplejson), buffered off-thread.

    A redirected ``sys.stdout`` (``contextlib.redirect_stdout(...)`` in tests) is written
    synchronously, so that it holds every message as soon as the sync returns.
    """

    def __init__(self, buffer_bytes: int = BUFFER_BYTES) -> None:
        """Buffer up to ``buffer_bytes`` of messages while stdout is blocked."""
        super().__init__()
        self._buffer = _LineBuffer(buffer_bytes)
        self._thread: threading.Thread | None = None

    @override
    def write_message(self, message: Message) -> None:
        """Queue one message line for stdout (or write it at once to a text-only stdout)."""
        # bytes(): the SDK encodes every message into one shared bytearray.
        self.write_line(bytes(self.format_message(message)))

    def write_line(self, line: bytes) -> None:
        """Queue one encoded message line, newline included, behind those queued before."""
        if sys.stdout is not sys.__stdout__:  # redirected in-process (tests): write at once
            _write_now(line)
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._buffer.drain_into,
                args=(t.cast("t.TextIO", sys.stdout).buffer,),
                name="singer-output",
                daemon=True,
            )
            self._thread.start()
            atexit.register(self.close)
        self._buffer.put(line)

    def close(self) -> None:
        """Write everything buffered, stop the writer thread; raise its write error, if any."""
        if self._thread is None:
            return
        thread, self._thread = self._thread, None
        self._buffer.finish()
        thread.join()
        self._buffer.raise_error()


def _write_now(line: bytes) -> None:
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stream such as io.StringIO
        sys.stdout.write(line.decode())
    else:
        binary.write(line)
    sys.stdout.flush()


class _LineBuffer:
    """A FIFO of byte lines, bounded in bytes, between the tap and one writer thread."""

    def __init__(self, max_bytes: int) -> None:
        self._lines: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._finished = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()

    def put(self, line: bytes) -> None:
        """Append ``line``; wait while the buffer is full; raise the writer's error, if any."""
        with self._changed:
            while self._bytes >= self._max_bytes and self._error is None:
                self._changed.wait()
            self.raise_error()
            was_empty = not self._lines
            self._lines.append(line)
            self._bytes += len(line)
            if was_empty or self._bytes >= WRITE_BYTES:
                self._changed.notify_all()

    def finish(self) -> None:
        """No more lines will come: the writer stops once the buffer is empty."""
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _linger(self) -> None:
        """Wait (holding the condition) for the first line, then briefly for a write's worth."""
        while not self._lines and not self._finished:
            self._changed.wait()
        deadline = time.monotonic() + LINGER_SECONDS
        while not self._finished and self._bytes < WRITE_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.wait(remaining)

    def _take(self, limit: int) -> tuple[bytes, int]:
        """Join the oldest lines, up to ``limit`` bytes (at least one line), into one chunk.

        Taking everything at once would copy the whole buffer while a slow target blocks the
        write: twice the buffer's bytes in memory. A bounded chunk keeps the copy small.
        """
        lines = [self._lines.popleft()]
        size = len(lines[0])
        while self._lines and size + len(self._lines[0]) <= limit:
            line = self._lines.popleft()
            lines.append(line)
            size += len(line)
        return b"".join(lines), size

    def drain_into(self, stream: t.BinaryIO) -> None:
        """Write lines to ``stream`` in order until finished; flush after every write."""
        try:
            while True:
                with self._changed:
                    self._linger()
                    if not self._lines:
                        break
                    chunk, size = self._take(WRITE_BYTES)
                stream.write(chunk)  # one write call, not one per line
                stream.flush()
                with self._changed:
                    self._bytes -= size
                    self._changed.notify_all()
        except BaseException as error:  # handed to the tap's thread
            with self._changed:
                self._error = error
                self._lines.clear()
                self._changed.notify_all()
