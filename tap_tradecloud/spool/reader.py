"""Reading the spool: partitions, events in order from a bookmark, pruning, set-aside copies."""

from __future__ import annotations

import bisect
import itertools
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from msgspec.structs import asdict, replace

from tap_tradecloud.spool.records import (
    EVENTS_DIR,
    IDENTITY_FILE,
    QUARANTINE_DIR,
    QUARANTINE_SUFFIX,
    SET_ASIDE_DIR,
    QuarantinedBody,
    SpooledEvent,
    decode_record,
    decode_segment,
    encode_record,
    event_file_name,
    format_utc_ms,
    key,
    meta_from,
    utc_now_ms,
)
from tap_tradecloud.spool.stores import SpoolLocation, Store, open_store, partition_end

if TYPE_CHECKING:
    import array
    import datetime
    from collections.abc import Iterator

LOGGER = logging.getLogger(__name__)
# Bytes of segments an object-store reader fetches ahead at most (besides one larger segment).
READ_AHEAD_BYTES = 64 * 1024 * 1024


def list_partitions(spool_dir: SpoolLocation) -> list[str]:
    """Return the instance names of the partitions in the spool, sorted."""
    return sorted(open_store(spool_dir).partitions())


def highest_sequence(spool_dir: SpoolLocation, instance: str) -> int:
    """Return the sequence of the partition's last event (0 when empty)."""
    return partition_end(open_store(spool_dir), instance)


def partition_identity(spool_dir: SpoolLocation, instance: str) -> str | None:
    """Return the identity the partition was created with (None if it has none yet).

    A writer gives every new partition a fresh identity: when the identity a reader kept
    differs, the partition was recreated (a new disk, a wiped folder, an emptied prefix) and
    its sequence numbers started again at 1.
    """
    try:
        data = open_store(spool_dir).read(key(instance, IDENTITY_FILE))
    except FileNotFoundError:
        return None
    return data.decode(errors="replace").strip() or None


def _segments_from(
    store: Store, instance: str, after: int
) -> tuple[list[int], array.array[int] | None]:
    """The segments that may hold events above ``after`` (the one holding it and later ones),
    and their sizes when the store knows them."""
    firsts, sizes = store.sized_segments(instance)
    start = max(bisect.bisect_right(firsts, after) - 1, 0)
    if start + 1 < len(firsts) and firsts[start + 1] == after + 1:
        start += 1  # the segment holding ``after`` ends there
    return firsts[start:], None if sizes is None else sizes[start:]


def _read_segments(
    store: Store, instance: str, firsts: list[int], sizes: array.array[int] | None = None
) -> Iterator[tuple[int, bytes | None]]:
    """Yield each segment's bytes in order (None when it is gone), fetching some ahead.

    A background read takes ``store.read_batch`` segments in turn; ``store.read_ahead`` such
    reads run at once, and, where the sizes are known, only as many as hold READ_AHEAD_BYTES
    (one larger segment still goes alone). Batches spare the reader a hand-over per segment
    where a read is cheap (a local file); concurrent reads hide the latency of each GET of an
    object store.
    """
    folder = key(instance, EVENTS_DIR)

    def read(batch: list[int]) -> list[tuple[int, bytes | None]]:
        # Names are made here, per batch: a list of them all would grow with the partition.
        return [
            (first, _read_or_none(store, f"{folder}/{event_file_name(first)}")) for first in batch
        ]

    size = max(store.read_batch, 1)
    starts = range(0, len(firsts), size)
    if store.read_ahead <= 0 or len(firsts) <= size:
        for start in starts:
            yield from read(firsts[start : start + size])
        return
    executor = ThreadPoolExecutor(store.read_ahead, thread_name_prefix="spool-read")
    pending: deque[tuple[Future[list[tuple[int, bytes | None]]], int]] = deque()
    held = 0  # bytes of the reads pending
    try:
        for start in starts:
            bytes_needed = 0 if sizes is None else sum(sizes[start : start + size])
            ready: list[tuple[int, bytes | None]] = []
            while pending and (
                len(pending) >= store.read_ahead or held + bytes_needed > READ_AHEAD_BYTES
            ):
                future, taken = pending.popleft()
                held -= taken
                ready.extend(future.result())
            # Submitted before the ready ones are handed on, so reads go on meanwhile.
            pending.append((executor.submit(read, firsts[start : start + size]), bytes_needed))
            held += bytes_needed
            yield from ready
        while pending:
            yield from pending.popleft()[0].result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _read_or_none(store: Store, segment: str) -> bytes | None:
    try:
        return store.read(segment)
    except FileNotFoundError:  # pruned since the listing by another run
        return None


def iter_events(spool_dir: SpoolLocation, instance: str, after: int = 0) -> Iterator[SpooledEvent]:
    """Yield the partition's events above ``after`` in sequence order, a segment at a time.

    Reads the segments present when called (the cost follows the segments, not the numbers),
    each of them durable: so every event yielded survives a power loss, and a restarted writer
    can never hand the number of a yielded event to a different one. Sequences are given and
    made visible in order, so a missing number was deleted outside the tap: a warning says so.
    A record that cannot be decoded is yielded with ``damage`` set.
    """
    store = open_store(spool_dir)
    expected = after + 1
    firsts, sizes = _segments_from(store, instance, after)
    for first, data in _read_segments(store, instance, firsts, sizes):
        if data is None:
            continue
        where = f"{instance}/{EVENTS_DIR}/{event_file_name(first)}"
        for event in decode_segment(data, instance, first, f"{store}/{where}", ""):
            if event.sequence <= after:
                continue
            if event.sequence > expected:
                LOGGER.warning(
                    "Spool partition %s has no events %d to %d; they were deleted outside the tap.",
                    instance,
                    expected,
                    event.sequence - 1,
                )
            expected = event.sequence + 1
            yield _dated(store, where, event) if event.damage else event


def _dated(store: Store, where: str, event: SpooledEvent) -> SpooledEvent:
    """A damaged event gets the time its segment was stored as its received time."""
    received_at = format_utc_ms(store.stored_at(where))
    return replace(event, meta=replace(event.meta, received_at=received_at))


def read_event(spool_dir: SpoolLocation, instance: str, sequence: int) -> SpooledEvent:
    """Read one event; raises FileNotFoundError if it is not (or no longer) there."""
    for event in iter_events(spool_dir, instance, after=sequence - 1):
        if event.sequence == sequence:
            return event
        break
    msg = f"event {sequence} of spool partition {instance}"
    raise FileNotFoundError(msg)


def prune_events(
    spool_dir: SpoolLocation,
    instance: str,
    *,
    up_to: int,
    received_before: datetime.datetime,
) -> list[int]:
    """Delete segments whose events all have sequence <= ``up_to``, stored before the cutoff.

    A segment is stored after all its events were received, so its storage time is a safe
    stand-in for its events' received times. The partition's last segment is always kept: it
    tells a restarted writer where the sequence continues, so new events never get numbers at
    or below a reader's bookmark. Returns the first sequence of each deleted segment.
    """
    store = open_store(spool_dir)
    firsts = store.segments(instance)
    doomed: list[int] = []
    for first, following in itertools.pairwise(firsts):
        if following - 1 > up_to:
            break
        try:
            stored_at = store.stored_at(key(instance, EVENTS_DIR, event_file_name(first)))
        except FileNotFoundError:
            continue
        if stored_at < received_before:
            doomed.append(first)
    store.delete([key(instance, EVENTS_DIR, event_file_name(first)) for first in doomed])
    return doomed


def set_aside(spool_dir: SpoolLocation, event: SpooledEvent, reason: str) -> object:
    """Keep a copy of an event the tap cannot emit in ``set-aside/``; return where it is.

    The event itself stays where it is (the last segment tells a restarted writer where the
    sequence continues) and is pruned like any other once the bookmark has passed it.
    """
    store = open_store(spool_dir)
    fields = {**asdict(event.meta), "set_aside_reason": reason, "set_aside_at": utc_now_ms()}
    target = key(event.instance, SET_ASIDE_DIR, event_file_name(event.sequence))
    # A second copy of the same event, from a re-run, is the same: replacing it is fine.
    store.put(target, encode_record(fields, event.body, framed=False))
    return store.location(target)


def iter_quarantine(spool_dir: SpoolLocation, instance: str) -> Iterator[QuarantinedBody]:
    """Yield the partition's quarantined bodies, oldest name first."""
    store = open_store(spool_dir)
    folder = key(instance, QUARANTINE_DIR)
    for name in store.names(folder):
        if not name.endswith(QUARANTINE_SUFFIX):
            continue
        where = f"{folder}/{name}"
        fields, body = decode_record(store.read(where), str(store.location(where)))
        yield QuarantinedBody(
            name=name, meta=meta_from(fields), reason=str(fields["reason"]), body=body
        )
