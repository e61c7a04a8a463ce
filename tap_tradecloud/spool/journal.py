"""A local partition's write-ahead journal: a busy receiver's fast durable write.

Creating a segment file takes two file-system journal commits (the new file, then its name)
and, on the benchmark machine under load, 0.9-1.3 ms. Overwriting blocks that are already
allocated and written, then ``fdatasync``, changes no metadata: a single device flush, about a
fifth of that. So under load the writer appends each group to ``<instance>/journal``, a file
of fixed size filled with zeros when it is made, acknowledges the group once that is durable,
and moves the groups into one segment file a little later. A lone delivery goes straight into
a segment (see ``writer``).

The file has two halves. Groups are appended to the active half; when its groups are due to
be moved, it is sealed and the other half becomes the active one, so deliveries go on into it
while the sealed half's groups are written as a segment. A sealed half is written from its
start again once that segment is durable.

A record is a header (magic, write number, first sequence, event count, payload length, CRC-32
of all of it) and the payload, which is exactly a segment's bytes. After a crash the writer
reads each half's records from its start up to the first that is torn or zero, and moves those
past the partition's last segment into a segment before it takes deliveries. Where two records
start at the same sequence (a write that failed and was made again), the later write wins.
"""

from __future__ import annotations

import errno
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from tap_tradecloud.spool.local import _fsync_dir

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DEFAULT_JOURNAL_BYTES = 4 * 1024 * 1024
# A journal smaller than this is not worth its file: the writer then writes segments only.
MIN_JOURNAL_BYTES = 64 * 1024
# A new journal takes at most this share of the free space.
FREE_SPACE_SHARE = 1 / 8
# magic, write number, first sequence, events, payload bytes, CRC-32
_HEADER = struct.Struct("<4sQQIII")
_MAGIC = b"TCJ2"
_ZEROS = bytes(1024 * 1024)


class Record(NamedTuple):
    """One intact record found in the journal."""

    written: int  # the write number: a later write of the same first sequence wins
    first: int
    events: int
    payload: bytes


@dataclass
class Half:
    """One half of the journal and the groups appended to it since it was last emptied."""

    start: int
    end: int
    offset: int = 0  # where the next record goes
    groups: list[bytes] = field(default_factory=list)  # acknowledged, not yet in a segment
    first: int = 0  # the sequence of the first event of the first group
    since: float = 0.0  # time.monotonic() of the first group

    def empty(self) -> None:
        self.offset = self.start
        self.groups.clear()


class Journal:
    """The journal file of one partition, opened by its one writer.

    The writer serialises every call (its lock); only :meth:`records` reads the file.
    """

    def __init__(self, path: Path, fd: int, capacity: int) -> None:
        self.path = path
        self.capacity = capacity
        self._fd = fd
        middle = capacity // 2
        self._halves = (Half(0, middle, 0), Half(middle, capacity, middle))
        self.active = self._halves[0]
        self.sealed: Half | None = None  # waiting to be written as a segment
        self._written = 0

    @classmethod
    def open(cls, path: Path, capacity: int) -> Journal | None:
        """Open (or make) the journal at ``path``; None when there is no room for one.

        An existing journal is kept as it is, records included, so that they can be recovered;
        a new one, of ``capacity`` bytes or an eighth of the free space if that is less, is
        filled with zeros and made durable, name included.
        """
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return cls._make(path, capacity)
        return cls(path, fd, os.fstat(fd).st_size)

    @classmethod
    def _make(cls, path: Path, capacity: int) -> Journal | None:
        stat = os.statvfs(path.parent)
        capacity = min(capacity, int(stat.f_bavail * stat.f_frsize * FREE_SPACE_SHARE))
        if capacity < MIN_JOURNAL_BYTES:
            return None
        partial = cls.partial_path(path)
        fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o660)
        try:
            written = 0
            while written < capacity:
                written += os.write(fd, _ZEROS[: capacity - written])
            os.fsync(fd)
            partial.rename(path)
            _fsync_dir(path.parent)
        except OSError as exc:
            os.close(fd)
            partial.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return None
            raise
        return cls(path, fd, capacity)

    @staticmethod
    def partial_path(path: Path) -> Path:
        """Where a new journal is filled with zeros before it takes its name."""
        return path.with_name(f".{path.name}.new")

    def close(self) -> None:
        os.close(self._fd)

    def records(self) -> list[Record]:
        """Every intact record: each half's from its start until one is torn or zero.

        Beyond a half's last record may lie records of an earlier pass; the writer's recovery
        tells them by their sequence numbers, which are at or below the partition's end.
        """
        found = [record for half in self._halves for record in self._read_half(half)]
        self._written = max((record.written for record in found), default=0)
        return found

    def _read_half(self, half: Half) -> Iterator[Record]:
        offset = half.start
        while offset + _HEADER.size <= half.end:
            header = os.pread(self._fd, _HEADER.size, offset)
            magic, written, first, count, length, checksum = _HEADER.unpack(header)
            end = offset + _HEADER.size + length
            if magic != _MAGIC or end > half.end:
                return
            payload = os.pread(self._fd, length, offset + _HEADER.size)
            if len(payload) != length or _checksum(header, payload) != checksum:
                return
            yield Record(written, first, count, payload)
            offset = end

    def restart(self) -> None:
        """Forget every record: all of them are in durable segments (after recovery)."""
        for half in self._halves:
            half.empty()
        self.active, self.sealed = self._halves[0], None

    def fits(self, size: int) -> bool:
        """Whether a payload of ``size`` bytes fits after the active half's records."""
        return self.active.offset + _HEADER.size + size <= self.active.end

    def append(self, first: int, count: int, payload: bytes) -> None:
        """Write a record into the active half and make it durable (the caller checked ``fits``).

        The offset moves on only once the record is durable: after a failure the next record
        is written over the one that failed (or, after a seal, wins by its write number).
        """
        self._written += 1
        header = _HEADER.pack(_MAGIC, self._written, first, count, len(payload), 0)
        header = header[:-4] + struct.pack("<I", _checksum(header, payload))
        record = header + payload
        half = self.active
        written = 0
        while written < len(record):
            written += os.pwrite(self._fd, record[written:], half.offset + written)
        os.fdatasync(self._fd)
        half.offset += len(record)
        if not half.groups:
            half.first, half.since = first, time.monotonic()
        half.groups.append(payload)

    @property
    def pending(self) -> bool:
        """Whether any acknowledged group is not yet in a segment."""
        return bool(self.active.groups) or self.sealed is not None

    @property
    def pending_since(self) -> float:
        """When the oldest group not yet in a segment was appended."""
        return self.sealed.since if self.sealed is not None else self.active.since

    def seal_if_due(self, after_seconds: float) -> bool:
        """Seal the active half if its groups are due to be moved (``after_seconds`` old, or
        half its room used) and the other half is free; whether it did."""
        half = self.active
        due = time.monotonic() - half.since >= after_seconds or (
            (half.offset - half.start) * 2 >= half.end - half.start
        )
        return bool(half.groups) and due and self.seal()

    def seal(self) -> bool:
        """Make the other half the active one, if it is free and this one holds groups."""
        if self.sealed is not None or not self.active.groups:
            return False
        self.sealed = self.active
        self.active = self._halves[1] if self.active is self._halves[0] else self._halves[0]
        return True

    def unmoved(self) -> list[Half]:
        """The halves whose groups are not yet in a segment, oldest first."""
        halves = [self.sealed] if self.sealed is not None else []
        return [*halves, self.active] if self.active.groups else halves

    def moved(self, half: Half) -> None:
        """``half``'s groups are in a durable segment: write it from its start again."""
        half.empty()
        if half is self.sealed:
            self.sealed = None


def _checksum(header: bytes, payload: bytes) -> int:
    """CRC-32 of the header's fields (the checksum itself left out) and the payload."""
    return zlib.crc32(payload, zlib.crc32(header[:-4]))
