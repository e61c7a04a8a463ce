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
    from collections.abc import Callable, Iterator

LOGGER = logging.getLogger(__name__)
# Bytes of segments an object-store reader fetches ahead at most (besides one larger segment).
READ_AHEAD_BYTES = 64 * 1024 * 1024
# Bytes after which a local reader's batch ends (besides one larger segment).
READ_BATCH_BYTES = 1024 * 1024


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

    A local folder is read a batch at a time by one thread while the tap works on the batch
    before (a hand-over per segment would cost more than the read); an object store's GETs
    run ``store.read_ahead`` at once, to hide the latency of each.
    """
    folder = key(instance, EVENTS_DIR)

    def read(first: int) -> tuple[int, bytes | None]:
        return first, _read_or_none(store, f"{folder}/{event_file_name(first)}")

    if store.read_ahead <= 1:
        return _read_in_batches(read, firsts, store.read_batch, in_background=store.read_ahead == 1)
    return _read_concurrently(read, firsts, store.read_ahead, sizes)


def _read_in_batches(
    read: Callable[[int], tuple[int, bytes | None]],
    firsts: list[int],
    most: int,
    *,
    in_background: bool,
) -> Iterator[tuple[int, bytes | None]]:
    """Read batches of up to ``most`` segments, each ending once it holds READ_BATCH_BYTES.

    Segments hold from one delivery (2 KB) to a journal's worth (a megabyte), so a count alone
    would hold from 32 KB to 16 MB. With ``in_background``, one thread reads the next batch
    while the caller works on this one: two batches in memory at most.
    """

    def batch_from(start: int) -> tuple[list[tuple[int, bytes | None]], int]:
        batch: list[tuple[int, bytes | None]] = []
        held, index = 0, start
        while index < len(firsts) and len(batch) < max(most, 1) and held < READ_BATCH_BYTES:
            batch.append(read(firsts[index]))
            held += len(batch[-1][1] or b"")
            index += 1
        return batch, index

    if not in_background or len(firsts) <= most:
        start = 0
        while start < len(firsts):
            batch, start = batch_from(start)
            yield from batch
        return
    executor = ThreadPoolExecutor(1, thread_name_prefix="spool-read")
    try:
        future = executor.submit(batch_from, 0)
        while True:
            batch, following = future.result()
            if following < len(firsts):  # submitted first, so the read goes on meanwhile
                future = executor.submit(batch_from, following)
            yield from batch
            if following >= len(firsts):
                return
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _read_concurrently(
    read: Callable[[int], tuple[int, bytes | None]],
    firsts: list[int],
    at_once: int,
    sizes: array.array[int] | None,
) -> Iterator[tuple[int, bytes | None]]:
    """Keep ``at_once`` reads going and, where the sizes are known, only as many as hold
    READ_AHEAD_BYTES (one larger segment still goes alone)."""
    executor = ThreadPoolExecutor(at_once, thread_name_prefix="spool-read")
    pending: deque[tuple[Future[tuple[int, bytes | None]], int]] = deque()
    held = 0  # bytes of the reads pending
    try:
        for index, first in enumerate(firsts):
            bytes_needed = 0 if sizes is None else sizes[index]
            ready: list[tuple[int, bytes | None]] = []
            while pending and (len(pending) >= at_once or held + bytes_needed > READ_AHEAD_BYTES):
                future, taken = pending.popleft()
                held -= taken
                ready.append(future.result())
            # Submitted before the ready ones are handed on, so reads go on meanwhile.
            pending.append((executor.submit(read, first), bytes_needed))
            held += bytes_needed
            yield from ready
        while pending:
            yield pending.popleft()[0].result()
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
