"""Moving the journal's groups into segments, from a thread of its own.

The writer's committer appends groups to the journal's active half. When they are due, it
hands that half to the publisher thread, which writes its groups as one segment, and goes on
appending to the other half: the segment write (a few milliseconds for a megabyte) holds up no
acknowledgement. Segments must become visible in sequence order, so anything the committer
writes as a segment itself first waits for the publisher (see :meth:`Publisher.publish_all`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_tradecloud.spool.journal import Half, Journal

LOGGER = logging.getLogger(__name__)

# How long journalled events may wait to be moved into a segment (and so seen by the tap).
PUBLISH_AFTER_SECONDS = 0.05
# Moving them sooner, once this much waits and nothing is queued, starts the segment write in
# the gap between two groups.
PUBLISH_WHEN_QUIET_BYTES = 256 * 1024


class Publisher:
    """Owns a partition's journal once it is open; used by the committer thread only, apart
    from its own thread."""

    def __init__(
        self, journal: Journal, create_segment: Callable[[int, bytes], None], partition: object
    ) -> None:
        self.journal = journal
        self._create_segment = create_segment
        self._partition = partition
        self._lock = threading.Condition()
        self._job: Half | None = None  # the half being written as a segment
        self._failed: Half | None = None  # a half whose segment could not be written yet
        self._failed_at = 0.0
        self._failing = False
        self._stopping = False
        self._woken: Callable[[], None] = lambda: None
        self._thread = threading.Thread(target=self._run, name="spool-publish", daemon=True)

    def start(self, wake_committer: Callable[[], None]) -> None:
        """Start the thread; ``wake_committer`` is called after each segment it writes."""
        self._woken = wake_committer
        self._thread.start()

    def stop(self) -> None:
        """End the thread once its segment is written (call :meth:`publish_all` before)."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._thread.join()
        self.journal.close()

    # -- the committer's side -------------------------------------------------------------

    def due_in(self, queued: bool) -> float | None:
        """Seconds until groups should be handed over (0 or less: now), None for no reason."""
        if self._job is not None:
            return None
        if self._failed is not None:
            return self._failed_at + PUBLISH_AFTER_SECONDS - time.monotonic()
        active = self.journal.active
        if not active.pending:
            return None
        if self.journal.offset * 2 >= self.journal.half_bytes or (
            self.journal.offset >= PUBLISH_WHEN_QUIET_BYTES and not queued
        ):
            return 0.0
        return active.since + PUBLISH_AFTER_SECONDS - time.monotonic()

    def hand_off(self) -> None:
        """Give the publisher the failed half again, or the active half's groups."""
        with self._lock:
            if self._job is not None:
                return
            if self._failed is not None:
                self._job, self._failed = self._failed, None
            elif self.journal.active.pending and not self.journal.inactive.pending:
                self._job = self.journal.switch()
            self._lock.notify_all()

    def publish_all(self) -> None:
        """Write every journalled group into segments now, in sequence order.

        Raises what the segment write raised; the groups then stay in the journal.
        """
        with self._lock:
            while self._job is not None:
                self._lock.wait()
            failed, self._failed = self._failed, None
        try:
            for half in (failed, self.journal.active):  # the failed half holds the older groups
                if half is not None and half.pending:
                    self._create_segment(half.first, b"".join(half.pending))
                    half.pending.clear()
        except BaseException:
            if failed is not None and failed.pending:
                with self._lock:
                    self._failed = failed
            raise
        self.journal.reset()
        self._succeeded()

    def publish_all_quietly(self) -> None:
        """:meth:`publish_all`, logging a failure: the events stay safe in the journal."""
        try:
            self.publish_all()
        except Exception as exc:
            self._failed_now(exc)

    # -- the publisher thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._job is None and not self._stopping:
                    self._lock.wait()
                if self._job is None:
                    return
                half = self._job
            try:
                self._create_segment(half.first, b"".join(half.pending))
            except Exception as exc:
                with self._lock:
                    self._failed, self._failed_at, self._job = half, time.monotonic(), None
                    self._lock.notify_all()
                self._failed_now(exc)
            else:
                with self._lock:
                    half.pending.clear()
                    self._job = None
                    self._lock.notify_all()
                self._succeeded()
            self._woken()

    def _failed_now(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            LOGGER.warning(
                "Spool %s: could not move journalled events into a segment yet (%s). They "
                "are acknowledged and safe in the journal: retrying, and at the next start.",
                self._partition,
                exc,
            )

    def _succeeded(self) -> None:
        if self._failing:
            self._failing = False
            LOGGER.info(
                "Spool %s: journalled events are moved into segments again.", self._partition
            )
