"""The spool writer: group commit into create-only segments, one partition per instance.

Deliveries are queued; one committer thread takes everything queued, writes it as one segment
(one fsync or one PUT) and then resolves every delivery's future with its sequence number.
Deliveries that arrive while a segment is being written form the next one, so a lone delivery
waits for exactly one write and a busy receiver writes few, large segments.

Sequence numbers are gapless within a partition and segments become visible in sequence order
(one committer, create-only names). After a failed write the committer reads the partition's
end again before the next one, so a write that may have landed (an object-store timeout) or a
second writer's segments are never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from msgspec.structs import asdict

from tap_tradecloud.spool.journal import DEFAULT_JOURNAL_BYTES, Journal
from tap_tradecloud.spool.records import (
    EVENTS_DIR,
    IDENTITY_FILE,
    QUARANTINE_DIR,
    QUARANTINE_SUFFIX,
    EventMeta,
    SpoolConflictError,
    SpoolError,
    encode_record,
    encode_segment,
    event_file_name,
    key,
    validate_instance,
)
from tap_tradecloud.spool.stores import SpoolLocation, Store, open_store, partition_end

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

LOGGER = logging.getLogger(__name__)

DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024
DEFAULT_MIN_FREE_INODES = 1000
DEFAULT_TMP_MAX_AGE_SECONDS = 3600.0
DEFAULT_MAX_SEGMENT_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_SEGMENT_EVENTS = 1000
DEFAULT_MAX_LINGER_SECONDS = 0.005
# How long to wait for the rest of a group, as a share of the last segment's write time.
LINGER_SHARE = 0.5
# How long journalled events may wait to be moved into a segment (and so seen by the tap).
PUBLISH_AFTER_SECONDS = 0.05
# Moving them sooner, once this much waits and nothing is queued, fits the segment write into
# the gap between two groups (about a millisecond) instead of holding up a group later.
PUBLISH_WHEN_QUIET_BYTES = 256 * 1024

Outcome = int | BaseException  # a delivery's sequence number, or why it was not stored
_NOBODY_WAITS = 1 << 62  # the committer's wanted count while it is writing


@dataclass
class _Delivery:
    """One queued event and whoever waits for its sequence number: a thread or an event loop."""

    meta: EventMeta
    body: bytes
    future: Future[int] | asyncio.Future[int]


def _settle(batch: list[_Delivery], outcomes: Sequence[int] | BaseException) -> None:
    """Hand every delivery of a segment its sequence number, or the error.

    Threads are woken one by one; the waiters of an event loop all in one call into the loop
    (a call per delivery costs the loop a wake-up each).
    """
    on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], Outcome]]] = {}
    for index, delivery in enumerate(batch):
        outcome = outcomes if isinstance(outcomes, BaseException) else outcomes[index]
        if isinstance(delivery.future, asyncio.Future):
            waiting = on_loops.setdefault(delivery.future.get_loop(), [])
            waiting.append((delivery.future, outcome))
        else:
            _set(delivery.future, outcome)
    for loop, settled in on_loops.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle_on_loop, settled)


def _settle_on_loop(settled: list[tuple[asyncio.Future[int], Outcome]]) -> None:
    for waiter, outcome in settled:
        if not waiter.done():  # done means cancelled: its request is gone
            _set(waiter, outcome)


def _set(future: Future[int] | asyncio.Future[int], outcome: Outcome) -> None:
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class SpoolWriter:
    """Writes events into one partition; thread-safe and usable from an event loop.

    :meth:`submit` queues a delivery and returns a future of its sequence number, resolved
    once its segment is durable; :meth:`write_event` waits for it.
    """

    def __init__(
        self,
        spool_dir: SpoolLocation,
        instance: str,
        *,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        min_free_inodes: int = DEFAULT_MIN_FREE_INODES,
        tmp_max_age_seconds: float = DEFAULT_TMP_MAX_AGE_SECONDS,
        max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
        max_segment_events: int = DEFAULT_MAX_SEGMENT_EVENTS,
        max_linger_seconds: float = DEFAULT_MAX_LINGER_SECONDS,
        journal_bytes: int = DEFAULT_JOURNAL_BYTES,
    ) -> None:
        self.instance = validate_instance(instance)
        self.store: Store = open_store(spool_dir)
        self.min_free_bytes = min_free_bytes
        self.min_free_inodes = min_free_inodes
        self.tmp_max_age_seconds = tmp_max_age_seconds
        self.max_segment_bytes = max_segment_bytes
        self.max_segment_events = max_segment_events
        self.max_linger_seconds = max_linger_seconds
        self.journal_bytes = journal_bytes  # 0: every group goes straight into a segment
        self._journal: Journal | None = None
        self._publish_failing = False
        self._queue: deque[_Delivery] = deque()
        self._wake = threading.Condition()
        # How many queued deliveries the committer waits for; none while it writes a segment.
        self._wanted = 1
        self._closing = False
        self._committer: threading.Thread | None = None
        self._last_sequence = 0
        self._must_resync = False

    def __enter__(self) -> SpoolWriter:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def partition(self) -> object:
        """Where the partition lives (a path or a URL), for messages."""
        return self.store.location(self.instance)

    @property
    def last_sequence(self) -> int:
        """The sequence number of the last event stored durably (0 when none)."""
        return self._last_sequence

    def open(self) -> None:
        """Prepare the partition, give it an identity, find the sequence, start committing.

        Events that a crash left in the partition's journal are moved into a segment first.
        """
        self.store.open_partition(self.instance, tmp_max_age_seconds=self.tmp_max_age_seconds)
        try:
            self._ensure_identity()
            self._last_sequence = partition_end(self.store, self.instance)
            self._open_journal()
        except BaseException:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            self.store.close_partition(self.instance)
            raise
        self._closing = False
        self._committer = threading.Thread(
            target=self._commit_loop, name=f"spool-commit-{self.instance}", daemon=True
        )
        self._committer.start()

    def close(self) -> None:
        """Write what is queued, stop the committer and release the partition."""
        if self._committer is not None:
            with self._wake:
                self._closing = True
                self._wake.notify()
            self._committer.join()
            self._committer = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self.store.close_partition(self.instance)

    def _open_journal(self) -> None:
        path = self.store.journal_path(self.instance)
        if path is None:  # an object store: a PUT is the only durable write there is
            return
        if not path.exists() and not self.journal_bytes:
            return
        self._journal = Journal.open(path, self.journal_bytes)
        if self._journal is None:
            LOGGER.warning(
                "Spool %s: no room for a %d-byte journal; every group is written as a segment "
                "(slower under load).",
                self.partition,
                self.journal_bytes,
            )
            return
        self._recover(self._journal)
        if not self.journal_bytes:
            self._journal.close()
            self._journal = None
            path.unlink()

    def _recover(self, journal: Journal) -> None:
        """Move the journal's records past the partition's end into one segment."""
        expected = self._last_sequence + 1
        payloads = []
        for first, count, payload in journal.records():
            if first + count <= expected:
                continue  # already in a segment, or written in an earlier pass
            if first != expected:
                break
            payloads.append(payload)
            expected += count
        if payloads:
            self._create_segment(self._last_sequence + 1, b"".join(payloads))
            LOGGER.info(
                "Spool %s: moved %d acknowledged events (%d to %d) from the journal into a "
                "segment.",
                self.partition,
                expected - 1 - self._last_sequence,
                self._last_sequence + 1,
                expected - 1,
            )
            self._last_sequence = expected - 1
        journal.reset()

    def _ensure_identity(self) -> None:
        with contextlib.suppress(FileExistsError):  # it keeps the identity it was created with
            self.store.create(key(self.instance, IDENTITY_FILE), f"{uuid.uuid4()}\n".encode())

    def check_free_space(self) -> None:
        """Raise SpoolFullError when free bytes or inodes are below the guard."""
        self.store.check_free_space(self.instance, self.min_free_bytes, self.min_free_inodes)

    def check_health(self) -> None:
        """Raise SpoolError or OSError when an event could not be stored now."""
        self.check_free_space()
        self.store.check_writable(self.instance)

    def submit(self, body: bytes, meta: EventMeta) -> Future[int]:
        """Queue an event; the future gives its sequence number once it is durable.

        Never blocks, so an event loop may call it. The free-space guard is checked once per
        segment, before it is written; when it refuses, the future raises SpoolFullError.
        """
        future: Future[int] = Future()
        self._enqueue(_Delivery(meta, body, future))
        return future

    def submit_from_loop(self, body: bytes, meta: EventMeta) -> asyncio.Future[int]:
        """Queue an event from a running event loop; await the result for its sequence number.

        The same as :meth:`submit`, but the deliveries of one segment are settled with one
        call into the loop.
        """
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._enqueue(_Delivery(meta, body, waiter))
        return waiter

    def _enqueue(self, delivery: _Delivery) -> None:
        with self._wake:
            if self._closing or self._committer is None or not self._committer.is_alive():
                msg = "The spool writer is closed."
                raise SpoolError(msg)
            self._queue.append(delivery)
            if len(self._queue) >= self._wanted:
                self._wake.notify()

    def write_event(self, body: bytes, meta: EventMeta) -> int:
        """Store an event durably and return its sequence number.

        When this returns, the event's segment is durable: the caller may acknowledge.
        Raises SpoolFullError, SpoolConflictError, OSError or SpoolError; nothing partial is
        then visible.
        """
        return self.submit(body, meta).result()

    def quarantine(self, body: bytes, meta: EventMeta, reason: str) -> str:
        """Store a refused body durably in ``quarantine/`` and return its name."""
        self.check_free_space()
        compact_time = "".join(char for char in meta.received_at if char.isdigit())
        name = f"{compact_time}-{uuid.uuid4().hex}{QUARANTINE_SUFFIX}"
        fields: dict[str, object] = {**asdict(meta), "reason": reason}
        data = encode_record(fields, body, framed=False)
        self.store.create(key(self.instance, QUARANTINE_DIR, name), data)
        return name

    # -- the committer thread -------------------------------------------------------------

    def _commit_loop(self) -> None:
        """Write what is queued as one segment, again and again.

        The committer is woken only when it has something to do: for the first delivery, or
        when the group it waits for is complete. A wake-up per delivery made it take the GIL
        from the event loop once per delivery, which cost the receiver about 10% of its rate.
        """
        expected, linger = 1, 0.0
        while True:
            with self._wake:
                self._wanted = 1
                self._wait_for_work()
                closing, batch = self._closing, None
                if self._queue:
                    self._gather(expected, linger)
                    self._wanted = _NOBODY_WAITS
                    batch = self._take_batch()
            if batch is None:  # quiet, or closing: the journal's events go into a segment
                self._publish_quietly()
                if closing:
                    return
                continue
            started = time.monotonic()
            self._commit(batch)
            expected = len(batch)
            linger = min(self.max_linger_seconds, LINGER_SHARE * (time.monotonic() - started))
            if self._journal is not None and self._publish_due(self._journal):
                self._publish_quietly()

    def _wait_for_work(self) -> None:
        """Wait for a delivery, for close(), or until the journal's events are due."""
        while not self._queue and not self._closing:
            if self._journal is None or not self._journal.pending:
                self._wake.wait()
                continue
            remaining = self._journal.pending_since + PUBLISH_AFTER_SECONDS - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(remaining)

    def _gather(self, expected: int, linger: float) -> None:
        """Wait up to ``linger`` seconds until ``expected`` deliveries are queued.

        The senders of the last segment tend to send again together, but their deliveries
        arrive one by one: without waiting, the first of them goes alone and the rest wait a
        whole write for the next segment. After a segment of one nothing is waited for, so a
        lone delivery is never held back; the wait is a share of the last write's duration.
        """
        deadline = time.monotonic() + linger
        self._wanted = expected
        while len(self._queue) < expected and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(remaining)

    def _take_batch(self) -> list[_Delivery]:
        batch = [self._queue.popleft()]
        size = len(batch[0].body)
        while self._queue and len(batch) < self.max_segment_events:
            size += len(self._queue[0].body)
            if size > self.max_segment_bytes:
                break
            batch.append(self._queue.popleft())
        return batch

    def _commit(self, batch: list[_Delivery]) -> None:
        try:
            if self._must_resync:
                self._publish()  # acknowledged events keep the numbers they were given
                self._last_sequence = partition_end(self.store, self.instance)
                self._must_resync = False
            self.check_free_space()
            self.store.check_partition_kept(self.instance)
            first = self._last_sequence + 1
            data = encode_segment([(delivery.meta, delivery.body) for delivery in batch])
            if self._use_journal(batch, len(data)):
                self._append_to_journal(first, len(batch), data)
            else:
                self._publish()
                self._create_segment(first, data)
        except BaseException as exc:  # every waiting delivery hears of it (the receiver: 503)
            self._must_resync = True
            _settle(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._last_sequence = first + len(batch) - 1
        _settle(batch, range(first, first + len(batch)))

    def _use_journal(self, batch: list[_Delivery], size: int) -> bool:
        """Journal a group under load; a lone delivery goes straight into a segment.

        So an event sent alone is in a segment (visible to the tap) when it is acknowledged,
        and a journal too full for the group is emptied into a segment first.
        """
        journal = self._journal
        if journal is None or (len(batch) == 1 and not self._queue):
            return False
        if not journal.fits(size):
            self._publish()
        return journal.fits(size)

    def _append_to_journal(self, first: int, count: int, data: bytes) -> None:
        journal = self._journal
        assert journal is not None  # _use_journal said so
        journal.append(first, count, data)

    def _publish_due(self, journal: Journal) -> bool:
        return bool(journal.pending) and (
            time.monotonic() - journal.pending_since >= PUBLISH_AFTER_SECONDS
            or journal.offset * 2 >= journal.capacity
            or (journal.offset >= PUBLISH_WHEN_QUIET_BYTES and not self._queue)
        )

    def _publish(self) -> None:
        """Move the journal's events into one segment; the journal is then written anew."""
        journal = self._journal
        if journal is None or not journal.pending:
            return
        self._create_segment(journal.pending_first, b"".join(journal.pending))
        journal.reset()
        if self._publish_failing:
            self._publish_failing = False
            LOGGER.info(
                "Spool %s: journalled events are moved into segments again.", self.partition
            )

    def _publish_quietly(self) -> None:
        """:meth:`_publish`, logging a failure once: the events stay safe in the journal."""
        try:
            self._publish()
        except Exception as exc:
            if not self._publish_failing:
                self._publish_failing = True
                LOGGER.warning(
                    "Spool %s: could not move journalled events into a segment yet (%s). They "
                    "are acknowledged and safe in the journal: retrying, and at the next start.",
                    self.partition,
                    exc,
                )

    def _create_segment(self, first: int, data: bytes) -> None:
        segment = key(self.instance, EVENTS_DIR, event_file_name(first))
        try:
            self.store.create(segment, data)
        except FileExistsError:
            msg = (
                f"Spool segment {self.store.location(segment)} already exists, so another "
                f"receiver writes this partition (was it deleted and recreated under a running "
                "receiver, or do two receivers share an --instance-id?). Nothing was "
                "overwritten; answering 503 until only one receiver writes it."
            )
            raise SpoolConflictError(msg) from None
