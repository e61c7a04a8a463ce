"""The webhook spool: the one module that knows its folders, file names and file format.

Layout, one partition per receiver instance::

    <spool_dir>/<instance>/writer.lock          flock held by the one writer of this partition
    <spool_dir>/<instance>/tmp/                 files being written; never read
    <spool_dir>/<instance>/events/<seq>.event   acknowledged events, seq = 20-digit sequence number
    <spool_dir>/<instance>/quarantine/<name>.quarantined   authenticated bodies that were refused
    <spool_dir>/<instance>/set-aside/<seq>.event          copies of stored events the tap could
                                                          not emit (a dead-letter place)
    <spool_dir>/<instance>/identity             created with the partition; a new one means a
                                                recreated partition (read it from the start)

A file holds one line of JSON metadata, a newline, then the raw body bytes exactly as received.
The sequence number and the instance are the file's name and folder, not part of its content,
so that the (slow) write and fsync can happen outside the lock that hands out sequence numbers.

Sequence numbers are gapless within a partition: a number is used only when its link
succeeded, and links happen in sequence order under a lock. A reader that keeps "last
sequence read" therefore never skips a file. Event files are created, never replaced: a name
that already exists (a second receiver on a recreated folder) is refused, not overwritten.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import itertools
import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# utc_now_ms is imported from here by the receiver: one formatter, in timestamps.
from tap_tradecloud.timestamps import format_utc, parse_utc, utc_now_ms

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

LOGGER = logging.getLogger(__name__)

TMP_DIR = "tmp"
EVENTS_DIR = "events"
QUARANTINE_DIR = "quarantine"
SET_ASIDE_DIR = "set-aside"
IDENTITY_FILE = "identity"
LOCK_FILE = "writer.lock"
EVENT_SUFFIX = ".event"
QUARANTINE_SUFFIX = ".quarantined"
SEQUENCE_DIGITS = 20
EVENT_NAME = re.compile(rf"^(\d{{{SEQUENCE_DIGITS}}})\{EVENT_SUFFIX}$")
INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024
DEFAULT_MIN_FREE_INODES = 1000
DEFAULT_TMP_MAX_AGE_SECONDS = 3600.0
METADATA_MAX_BYTES = 64 * 1024

FILE_MODE = 0o660
DIR_MODE = 0o770


class SpoolError(Exception):
    """A spool problem the caller should report (the receiver answers 503)."""


class SpoolFullError(SpoolError):
    """Free space or free inodes are below the guard: refuse before the disk is full."""


class SpoolLockedError(SpoolError):
    """Another writer holds the partition."""


class CorruptEventError(SpoolError):
    """An event file does not have the spool format."""


class SpoolConflictError(SpoolError):
    """An event file with the next sequence number already exists: another writer made it."""


@dataclass(frozen=True)
class EventMeta:
    """What the receiver knows about a request besides its body."""

    received_at: str
    method: str
    path: str
    content_type: str | None = None
    order_id: str | None = None


@dataclass(frozen=True)
class SpooledEvent:
    """One acknowledged event as read back from the spool.

    ``damage`` says why a file could not be decoded (then ``meta`` holds only its time and
    ``body`` the whole file); the reader yields it so the caller can set it aside.
    """

    instance: str
    sequence: int
    meta: EventMeta
    body: bytes
    damage: str | None = None


@dataclass(frozen=True)
class QuarantinedBody:
    """One refused body as read back from the quarantine folder."""

    name: str
    meta: EventMeta
    reason: str
    body: bytes


def validate_instance(instance: str) -> str:
    """Return ``instance`` if it is usable as a partition folder name, else raise ValueError."""
    if not INSTANCE_NAME.match(instance):
        msg = (
            f"Invalid receiver instance id {instance!r}: use 1-128 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit."
        )
        raise ValueError(msg)
    return instance


def event_file_name(sequence: int) -> str:
    """Return the file name of the event with this sequence number."""
    return f"{sequence:0{SEQUENCE_DIGITS}d}{EVENT_SUFFIX}"


def _partition(spool_dir: Path | str, instance: str) -> Path:
    return Path(spool_dir) / validate_instance(instance)


def _encode(meta: dict[str, object], body: bytes) -> bytes:
    line = json.dumps(meta, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return line + b"\n" + body


def _decode(data: bytes, where: Path) -> tuple[dict[str, object], bytes]:
    line, newline, body = data.partition(b"\n")
    try:
        meta = json.loads(line) if newline else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        msg = f"Spool file {where} is not in the spool format; move it out of the spool."
        raise CorruptEventError(msg)
    return meta, body


def _meta_from(fields: dict[str, object]) -> EventMeta:
    return EventMeta(
        received_at=str(fields["received_at"]),
        method=str(fields["method"]),
        path=str(fields["path"]),
        content_type=fields.get("content_type"),  # type: ignore[arg-type]
        order_id=fields.get("order_id"),  # type: ignore[arg-type]
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sequences(events_dir: Path) -> Iterator[int]:
    """Yield the sequence numbers of the event files present, unsorted.

    Streamed from ``os.scandir``: a list of 100,000 paths would cost the reader 30 MB.
    """
    try:
        entries = os.scandir(events_dir)
    except FileNotFoundError:
        return
    with entries:
        for entry in entries:
            if match := EVENT_NAME.match(entry.name):
                yield int(match[1])


class SpoolWriter:
    """Writes events into one partition; one writer per partition (enforced with flock).

    Thread-safe: the receiver calls :meth:`write_event` from worker threads.
    """

    def __init__(
        self,
        spool_dir: Path | str,
        instance: str,
        *,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        min_free_inodes: int = DEFAULT_MIN_FREE_INODES,
        tmp_max_age_seconds: float = DEFAULT_TMP_MAX_AGE_SECONDS,
    ) -> None:
        self.instance = validate_instance(instance)
        self.partition = _partition(spool_dir, instance)
        self.tmp_dir = self.partition / TMP_DIR
        self.events_dir = self.partition / EVENTS_DIR
        self.quarantine_dir = self.partition / QUARANTINE_DIR
        self.min_free_bytes = min_free_bytes
        self.min_free_inodes = min_free_inodes
        self.tmp_max_age_seconds = tmp_max_age_seconds
        self._rename_lock = threading.Lock()
        self._tmp_counter = itertools.count()
        self._last_sequence = 0
        self._lock_fd: int | None = None

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
    def last_sequence(self) -> int:
        """The sequence number of the last event made visible (0 when none)."""
        return self._last_sequence

    def open(self) -> None:
        """Create the folders, take the partition lock, clean ``tmp/`` and find the sequence."""
        for folder in (self.tmp_dir, self.events_dir, self.quarantine_dir):
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._lock_fd = self._take_lock()
        _ensure_identity(self.partition)
        self._remove_stale_tmp_files()
        self._last_sequence = max(_sequences(self.events_dir), default=0)

    def close(self) -> None:
        """Release the partition lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _take_lock(self) -> int:
        fd = os.open(self.partition / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            msg = (
                f"Spool partition {self.partition} is already written by another receiver "
                f"(pid {holder}). Give each receiver its own --instance-id."
            )
            raise SpoolLockedError(msg) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _remove_stale_tmp_files(self) -> None:
        cutoff = time.time() - self.tmp_max_age_seconds
        for entry in os.scandir(self.tmp_dir):
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)
                LOGGER.info("Removed stale unacknowledged spool file %s", entry.path)

    def check_free_space(self) -> None:
        """Raise SpoolFullError when free bytes or inodes are below the guard."""
        stat = os.statvfs(self.partition)
        free_bytes = stat.f_bavail * stat.f_frsize
        if free_bytes < self.min_free_bytes:
            msg = (
                f"Spool file system has {free_bytes} bytes free, below the guard of "
                f"{self.min_free_bytes}: free space or move the spool."
            )
            raise SpoolFullError(msg)
        # File systems without an inode limit (btrfs, some tmpfs) report f_files == 0.
        if stat.f_files and stat.f_favail < self.min_free_inodes:
            msg = (
                f"Spool file system has {stat.f_favail} inodes free, below the guard of "
                f"{self.min_free_inodes}: delete files or move the spool."
            )
            raise SpoolFullError(msg)

    def write_event(self, body: bytes, meta: EventMeta) -> int:
        """Store an event durably and return its sequence number.

        When this returns, the file and its folder entry are fsynced: the caller may acknowledge.
        Raises SpoolFullError or OSError; nothing partial is then visible.
        """
        self.check_free_space()
        tmp_path = self._write_tmp(_encode(asdict(meta), body))
        try:
            with self._rename_lock:
                sequence = self._last_sequence + 1
                self._link_new(tmp_path, self.events_dir / event_file_name(sequence))
                self._last_sequence = sequence
        finally:
            tmp_path.unlink(missing_ok=True)
        # Outside the lock, so concurrent writers' folder fsyncs overlap.
        _fsync_dir(self.events_dir)
        return sequence

    def _link_new(self, source: Path, target: Path) -> None:
        """Give ``source`` the name ``target``, which must not exist yet (create-only)."""
        try:
            os.link(source, target)
        except FileExistsError:
            msg = (
                f"Spool event {target} already exists, so another receiver writes this "
                f"partition (was {self.partition} deleted and recreated under a running "
                "receiver?). Nothing was overwritten; answering 503 until only one receiver "
                "writes it: stop the extra receiver, then restart this one."
            )
            raise SpoolConflictError(msg) from None

    def quarantine(self, body: bytes, meta: EventMeta, reason: str) -> str:
        """Store a refused body durably in ``quarantine/`` and return the file name."""
        self.check_free_space()
        fields: dict[str, object] = {**asdict(meta), "reason": reason}
        tmp_path = self._write_tmp(_encode(fields, body))
        compact_time = re.sub(r"[^0-9]", "", meta.received_at)
        name = f"{compact_time}-{uuid.uuid4().hex}{QUARANTINE_SUFFIX}"
        try:
            tmp_path.rename(self.quarantine_dir / name)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        _fsync_dir(self.quarantine_dir)
        return name

    def _write_tmp(self, data: bytes) -> Path:
        name = f"{os.getpid()}.{threading.get_ident()}.{next(self._tmp_counter)}.tmp"
        tmp_path = self.tmp_dir / name
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        return tmp_path


def list_partitions(spool_dir: Path | str) -> list[str]:
    """Return the instance names of the partitions in the spool, sorted."""
    root = Path(spool_dir)
    if not root.is_dir():
        return []
    return sorted(
        entry.name
        for entry in os.scandir(root)
        if INSTANCE_NAME.match(entry.name) and (Path(entry.path) / EVENTS_DIR).is_dir()
    )


def read_event(spool_dir: Path | str, instance: str, sequence: int) -> SpooledEvent:
    """Read one event; raises FileNotFoundError if it is not (or no longer) there.

    A file that is not in the spool format comes back with ``damage`` set instead of raising.
    """
    path = _partition(spool_dir, instance) / EVENTS_DIR / event_file_name(sequence)
    data = path.read_bytes()
    try:
        fields, body = _decode(data, path)
        meta = _meta_from(fields)
    except (CorruptEventError, KeyError) as exc:
        received_at = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
        meta = EventMeta(received_at=format_utc(received_at), method="", path="")
        damage = f"not in the spool format ({type(exc).__name__})"
        return SpooledEvent(instance, sequence, meta, data, damage=damage)
    return SpooledEvent(instance=instance, sequence=sequence, meta=meta, body=body)


def iter_events(spool_dir: Path | str, instance: str, after: int = 0) -> Iterator[SpooledEvent]:
    """Yield the partition's events above ``after`` in sequence order, one file at a time.

    Reads the event files present when called, up to the highest one (the cost follows the
    files, not the numbers), after an fsync of the folder: so every event yielded survives a
    power loss, and a restarted writer can never hand the number of a yielded event to a
    different one. Names are given and made visible in order, so a missing number was deleted
    outside the tap: a warning says so.
    """
    events_dir = _partition(spool_dir, instance) / EVENTS_DIR
    # A listing taken while files appear may miss some of them; a second listing taken after
    # the first has ended sees every file up to the first one's highest, since names become
    # visible in order.
    last = max(_sequences(events_dir), default=0)
    if last <= after:
        return
    present = sorted(seq for seq in _sequences(events_dir) if after < seq <= last)
    _fsync_dir(events_dir)
    expected = after + 1
    for sequence in present:
        try:
            event = read_event(spool_dir, instance, sequence)
        except FileNotFoundError:  # deleted since the listing; the next one reports the gap
            continue
        if sequence > expected:
            LOGGER.warning(
                "Spool partition %s has no events %d to %d; they were deleted outside the tap.",
                instance,
                expected,
                sequence - 1,
            )
        expected = sequence + 1
        yield event


def partition_identity(spool_dir: Path | str, instance: str) -> str | None:
    """Return the identity the partition was created with (None if it has none yet).

    A writer gives every new partition a fresh identity: when the identity a reader kept
    differs, the partition was recreated (a new disk, a wiped folder) and its sequence
    numbers started again at 1.
    """
    try:
        return (_partition(spool_dir, instance) / IDENTITY_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def _ensure_identity(partition: Path) -> None:
    path = partition / IDENTITY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.write(fd, f"{uuid.uuid4()}\n".encode())  # 37 bytes: one write suffices
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(partition)


def set_aside(spool_dir: Path | str, event: SpooledEvent, reason: str) -> Path:
    """Keep a copy of an event the tap cannot emit in ``set-aside/``; return the copy's path.

    The event file itself stays where it is (the highest one tells a restarted writer where
    the sequence continues) and is pruned like any other once the bookmark has passed it.
    """
    folder = _partition(spool_dir, event.instance) / SET_ASIDE_DIR
    folder.mkdir(mode=DIR_MODE, exist_ok=True)
    source = _partition(spool_dir, event.instance) / EVENTS_DIR / event_file_name(event.sequence)
    target = folder / event_file_name(event.sequence)
    data = source.read_bytes()
    fields, body = _decode(data, source) if event.damage is None else ({}, data)
    fields = {**fields, "set_aside_reason": reason, "set_aside_at": utc_now_ms()}
    tmp_path = folder / f".{event_file_name(event.sequence)}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        _write_all(fd, _encode(fields, body))
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp_path.replace(target)  # a second copy of the same event, from a re-run, is the same
    _fsync_dir(folder)
    return target


def highest_sequence(spool_dir: Path | str, instance: str) -> int:
    """Return the highest sequence number present in the partition (0 when empty)."""
    return max(_sequences(_partition(spool_dir, instance) / EVENTS_DIR), default=0)


def _received_at(path: Path) -> datetime.datetime:
    """When the event in ``path`` was received; for a damaged file, when it was written."""
    with path.open("rb") as file:
        line = file.readline(METADATA_MAX_BYTES)
    try:
        fields, _ = _decode(line, path)
        return parse_utc(str(fields["received_at"]))
    except (CorruptEventError, KeyError, ValueError):
        return datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)


def prune_events(
    spool_dir: Path | str,
    instance: str,
    *,
    up_to: int,
    received_before: datetime.datetime,
) -> list[int]:
    """Delete events with sequence <= ``up_to`` received before ``received_before``.

    The partition's highest event is always kept: it tells a restarted writer where the
    sequence continues, so new events never get numbers at or below a reader's bookmark.
    Returns the deleted sequence numbers.
    """
    events_dir = _partition(spool_dir, instance) / EVENTS_DIR
    present = list(_sequences(events_dir))
    keep = max(present, default=0)
    deleted: list[int] = []
    for sequence in sorted(seq for seq in present if seq <= up_to and seq != keep):
        path = events_dir / event_file_name(sequence)
        try:
            received_at = _received_at(path)
        except FileNotFoundError:
            continue
        if received_at < received_before:
            path.unlink(missing_ok=True)
            deleted.append(sequence)
    if deleted:
        _fsync_dir(events_dir)
    return deleted


def iter_quarantine(spool_dir: Path | str, instance: str) -> Iterator[QuarantinedBody]:
    """Yield the partition's quarantined bodies, oldest name first."""
    folder = _partition(spool_dir, instance) / QUARANTINE_DIR
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"*{QUARANTINE_SUFFIX}")):
        fields, body = _decode(path.read_bytes(), path)
        yield QuarantinedBody(
            name=path.name, meta=_meta_from(fields), reason=str(fields["reason"]), body=body
        )


def is_disk_full(exc: BaseException) -> bool:
    """Tell whether an error means the spool's file system is full."""
    return isinstance(exc, SpoolFullError) or (
        isinstance(exc, OSError) and exc.errno in {errno.ENOSPC, errno.EDQUOT}
    )
