"""Pick the backend for a spool location, and what both backends answer alike."""

from __future__ import annotations

import typing as t
from pathlib import Path

from tap_tradecloud.spool.local import LocalStore
from tap_tradecloud.spool.objectstore import ObjectStore, is_object_store_url
from tap_tradecloud.spool.records import EVENTS_DIR, event_file_name, key, segment_length

if t.TYPE_CHECKING:
    import array
    import datetime


class Store(t.Protocol):
    """What the writer and the reader need from a backend. Keys are ``instance/folder/name``."""

    durable_listing: bool
    read_ahead: int
    read_batch: int

    def location(self, key: str) -> t.Any: ...
    def open_partition(self, instance: str, *, tmp_max_age_seconds: float) -> None: ...
    def close_partition(self, instance: str) -> None: ...
    def create(self, key: str, data: bytes) -> None: ...
    def put(self, key: str, data: bytes) -> None: ...
    def check_free_space(
        self, instance: str, min_free_bytes: int, min_free_inodes: int
    ) -> None: ...
    def check_writable(self, instance: str) -> None: ...
    def check_partition_kept(self, instance: str) -> None: ...
    def journal_path(self, instance: str) -> Path | None: ...
    def partitions(self) -> list[str]: ...
    def segments(self, instance: str) -> list[int]: ...
    def sized_segments(self, instance: str) -> tuple[list[int], array.array[int] | None]: ...
    def highest_segment(self, instance: str) -> int: ...
    def stored_at(self, key: str) -> datetime.datetime: ...
    def names(self, folder_key: str) -> list[str]: ...
    def read(self, key: str) -> bytes: ...
    def delete(self, keys: list[str]) -> None: ...


SpoolLocation = Path | str | Store


def open_store(location: SpoolLocation) -> Store:
    """The backend of a spool location: a folder path, or an ``s3://``/``gs://``/``az://`` URL."""
    if isinstance(location, (LocalStore, ObjectStore)):
        return location
    if isinstance(location, str) and is_object_store_url(location):
        return ObjectStore(location)
    text = str(location)
    if text.startswith("file://"):
        text = text[len("file://") :]
    return LocalStore(text)


def partition_end(store: Store, instance: str) -> int:
    """The sequence of the partition's last event (0 when it has none)."""
    first = store.highest_segment(instance)
    if not first:
        return 0
    segment = key(instance, EVENTS_DIR, event_file_name(first))
    data = store.read(segment)
    return first + max(segment_length(data, str(store.location(segment))), 1) - 1
