"""The spool writer: group commit into create-only segments, one partition per instance.

Deliveries are queued; one committer thread takes everything queued, writes it as one segment
(one fsync or one PUT) and then resolves every delivery's future with its sequence number.
Deliveries that arrive while a segment is being written form the next one, so a lone delivery
waits for exactly one write and a busy receiver writes few, large segments.

A local partition also has a journal (see ``journal``). Deliveries made on an event loop are
gathered there (see ``loop_groups``) and a group is appended to the journal on the loop itself,
in about 0.15 ms, without a thread hop; the committer moves the journal's groups into segments
in the background. A lone delivery on a quiet receiver still goes to the committer and into a
segment of its own.

Sequence numbers are gapless within a partition and segments become visible in sequence order
(only the committer writes segments, and it moves the journal's groups before it writes a
later one). After a failed write the committer reads the partition's end again before the next
one, so a write that may have landed (an object-store timeout) or a second writer's segments
are never overwritten.
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
from typing import TYPE_CHECKING

from msgspec.structs import asdict

from tap_tradecloud.spool.deliveries import Delivery, paired, settle, settle_here
from tap_tradecloud.spool.journal import DEFAULT_JOURNAL_BYTES, Half, Journal, Record
from tap_tradecloud.spool.loop_groups import LoopGroups
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

_NOBODY_WAITS = 1 << 62  # the committer's wanted count while it is writing


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
        self._retry_publish_at = 0.0
        # Held while numbering and writing: by the committer, and by the loop for a journal append.
        self._lock = threading.Lock()
        self._loop_groups: LoopGroups[Delivery] | None = None
        self._queue: deque[Delivery] = deque()
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
        with self._lock:  # an event loop may be appending a group
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        self.store.close_partition(self.instance)

    def _open_journal(self) -> None:
        path = self.store.journal_path(self.instance)
        if path is None:  # an object store: a PUT is the only durable write there is
            return
        if not self.journal_bytes:
            Journal.partial_path(path).unlink(missing_ok=True)  # left by a crash while made
            if not path.exists():
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
        """Move the journal's records that continue the partition into one segment."""
        latest: dict[int, Record] = {}
        for record in journal.records():
            if record.first not in latest or record.written > latest[record.first].written:
                latest[record.first] = record
        # Records at or below the end are in segments already, or from an earlier pass.
        expected = self._last_sequence + 1
        payloads = []
        while expected in latest:
            payloads.append(latest[expected].payload)
            expected += latest[expected].events
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
        journal.restart()

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
        self._enqueue([Delivery(meta, body, future)])
        return future

    def submit_from_loop(self, body: bytes, meta: EventMeta) -> asyncio.Future[int]:
        """Queue an event from a running event loop; await the result for its sequence number.

        The same as :meth:`submit`, but the deliveries of one segment are settled with one
        call into the loop. With a journal (a local partition), the deliveries made together
        on the loop are gathered into a group and appended to the journal on the loop itself.
        """
        loop = asyncio.get_running_loop()
        delivery = Delivery(meta, body, loop.create_future())
        if self._journal is None:
            self._enqueue([delivery])
            return delivery.future  # type: ignore[return-value]
        self._check_open()
        if self._loop_groups is None or self._loop_groups.loop is not loop:
            self._loop_groups = LoopGroups(loop, self._commit_on_loop)
        self._loop_groups.add(delivery)
        return delivery.future  # type: ignore[return-value]

    def _enqueue(self, deliveries: list[Delivery]) -> None:
        with self._wake:
            self._check_open()
            self._queue.extend(deliveries)
            if len(self._queue) >= self._wanted:
                self._wake.notify()

    def _check_open(self) -> None:
        if self._closing or self._committer is None or not self._committer.is_alive():
            msg = "The spool writer is closed."
            raise SpoolError(msg)

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

    # -- on the event loop ----------------------------------------------------------------

    def _commit_on_loop(self, group: list[Delivery]) -> None:
        """Append a gathered group to the journal here, or hand it to the committer thread.

        Handing every group to the committer thread and back costs a GIL hand-over each way;
        the append blocks the loop for about 0.15 ms instead. At 16 connections that took the
        receiver from 0.83x to 0.88x of the app that writes nothing (a paired run).
        """
        try:
            outcomes = self._journal_on_loop(group)
        except Exception as exc:  # not raised into the loop: the group's requests would hang
            LOGGER.exception("Spool %s: could not journal a group", self.partition)
            outcomes = exc
        if outcomes is None:
            try:
                self._enqueue(group)
            except SpoolError as exc:
                outcomes = exc
            else:
                return
        settle_here(paired(group, outcomes))

    def _journal_on_loop(self, group: list[Delivery]) -> range | Exception | None:
        """The group's sequence numbers once journalled, the error, or None: the committer's.

        The committer takes the group when it holds the lock (it is writing a segment), when
        the group is a lone delivery on a quiet receiver, after a failure (it reads the
        partition's end again), or when the journal has no room for it now.
        """
        if not self._lock.acquire(blocking=False):
            return None
        wake = False  # the committer, to move a sealed half or to time the journal's groups
        try:
            journal = self._journal
            if journal is None or self._must_resync or self._closing:
                return None
            if len(group) == 1 and not journal.pending:
                return None
            data = encode_segment([(delivery.meta, delivery.body) for delivery in group])
            wake = not journal.fits(len(data)) and journal.seal()
            if not journal.fits(len(data)):
                return None  # the committer moves the sealed half, then it fits
            wake = wake or not journal.pending
            try:
                self._check_before_writing()
                numbers, sealed = self._append(journal, len(group), data)
            except Exception as exc:  # every delivery of the group hears of it (the receiver: 503)
                self._must_resync = True
                return exc
            wake = wake or sealed
            return numbers
        finally:
            self._lock.release()
            if wake:
                self._wake_committer()

    def _check_before_writing(self) -> None:
        self.check_free_space()
        self.store.check_partition_kept(self.instance)

    def _append(self, journal: Journal, count: int, data: bytes) -> tuple[range, bool]:
        """Number ``count`` events and append them to the journal (lock held, room checked);
        their numbers, and whether the active half was sealed after them."""
        first = self._last_sequence + 1
        journal.append(first, count, data)
        self._last_sequence = first + count - 1
        return range(first, first + count), journal.seal_if_due(PUBLISH_AFTER_SECONDS)

    def _wake_committer(self) -> None:
        with self._wake:
            self._wake.notify()

    # -- the committer thread -------------------------------------------------------------

    def _commit_loop(self) -> None:
        """Write what is queued as one segment, again and again; move the journal's groups.

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
            if batch is not None:
                started = time.monotonic()
                self._commit(batch)
                expected = len(batch)
                linger = min(self.max_linger_seconds, LINGER_SHARE * (time.monotonic() - started))
            due_at = self._journal_due_at()
            if closing or (due_at is not None and due_at <= time.monotonic()):
                self._move_journal_quietly(everything=closing)
            if closing and batch is None:
                return

    def _wait_for_work(self) -> None:
        """Wait for a delivery, for close(), or until the journal's groups are due."""
        while not self._queue and not self._closing:
            due_at = self._journal_due_at()
            if due_at is None:
                self._wake.wait()
                continue
            remaining = due_at - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(remaining)

    def _journal_due_at(self) -> float | None:
        """When the journal's groups should be moved into a segment; None: none are waiting.

        Read without the lock: the loop only adds groups and seals, and wakes the committer
        when it starts a half or seals one, so a stale answer is put right by the next wake-up.
        """
        journal = self._journal
        if journal is None or not journal.pending:
            return None
        due = 0.0 if journal.sealed is not None else journal.pending_since + PUBLISH_AFTER_SECONDS
        return max(due, self._retry_publish_at)

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

    def _take_batch(self) -> list[Delivery]:
        batch = [self._queue.popleft()]
        size = len(batch[0].body)
        while self._queue and len(batch) < self.max_segment_events:
            size += len(self._queue[0].body)
            if size > self.max_segment_bytes:
                break
            batch.append(self._queue.popleft())
        return batch

    def _commit(self, batch: list[Delivery]) -> None:
        outcomes: range | BaseException
        with self._lock:
            try:
                outcomes = self._write(batch)
            except BaseException as exc:  # every waiting delivery hears of it (the receiver: 503)
                self._must_resync = True
                outcomes = exc
        settle(batch, outcomes)
        if not isinstance(outcomes, (range, Exception)):
            raise outcomes

    def _write(self, batch: list[Delivery]) -> range:
        """Number the batch and make it durable, in the journal or as a segment (lock held)."""
        if self._must_resync:
            self._publish()  # acknowledged events keep the numbers they were given
            self._last_sequence = partition_end(self.store, self.instance)
            self._must_resync = False
        self._check_before_writing()
        data = encode_segment([(delivery.meta, delivery.body) for delivery in batch])
        if self._use_journal(batch, len(data)):
            assert self._journal is not None  # _use_journal said so
            return self._append(self._journal, len(batch), data)[0]
        self._publish()
        first = self._last_sequence + 1
        self._create_segment(first, data)
        self._last_sequence = first + len(batch) - 1
        return range(first, first + len(batch))

    def _use_journal(self, batch: list[Delivery], size: int) -> bool:
        """Journal a group under load; a lone delivery on a quiet writer goes into a segment.

        So an event sent alone is in a segment (visible to the tap) when it is acknowledged,
        and a journal too full for the group is emptied into segments first.
        """
        journal = self._journal
        if journal is None:
            return False
        if len(batch) == 1 and not self._queue and not journal.pending:
            return False
        if not journal.fits(size):
            self._publish()
        return journal.fits(size)

    def _move_journal_quietly(self, *, everything: bool = False) -> None:
        """Move the journal's due groups (or all of them) into segments; log a failure once.

        Until it works the events stay acknowledged and safe in the journal; the next attempt
        comes :data:`PUBLISH_AFTER_SECONDS` later.
        """
        try:
            if everything:
                with self._lock:
                    self._publish()
            else:
                self._move_sealed()
                with self._lock:
                    sealed = self._journal is not None and self._journal.seal_if_due(
                        PUBLISH_AFTER_SECONDS
                    )
                if sealed:
                    self._move_sealed()
        except Exception as exc:
            self._retry_publish_at = time.monotonic() + PUBLISH_AFTER_SECONDS
            if not self._publish_failing:
                self._publish_failing = True
                LOGGER.warning(
                    "Spool %s: could not move journalled events into a segment yet (%s). They "
                    "are acknowledged and safe in the journal: retrying, and at the next start.",
                    self.partition,
                    exc,
                )
        else:
            self._retry_publish_at = 0.0

    def _move_sealed(self) -> None:
        """Write the sealed half's groups as one segment, without the lock.

        The event loop goes on appending to the active half meanwhile. Only this thread writes
        segments, so they still appear in sequence order.
        """
        journal = self._journal
        half = journal.sealed if journal is not None else None
        if journal is None or half is None:
            return
        self._create_segment(half.first, b"".join(half.groups))
        with self._lock:
            self._moved(journal, half)

    def _publish(self) -> None:
        """Move every journalled group into segments, the sealed half first (lock held)."""
        journal = self._journal
        if journal is None:
            return
        for half in journal.unmoved():
            self._create_segment(half.first, b"".join(half.groups))
            self._moved(journal, half)

    def _moved(self, journal: Journal, half: Half) -> None:
        journal.moved(half)
        if self._publish_failing:
            self._publish_failing = False
            LOGGER.info(
                "Spool %s: journalled events are moved into segments again.", self.partition
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
