"""The object-store backend (``s3://``, ``gs://``, ``az://``) through obstore.

Every write is one PUT with ``If-None-Match: *`` (obstore's ``mode="create"``): an existing
object is never replaced, and a successful PUT is durable, so the caller may acknowledge.
obstore (Rust's ``object_store``) was picked over fsspec/s3fs because it has create-only PUTs
for S3, GCS and Azure behind one call, reads the standard ``AWS_*`` variables, config files
and instance roles, and measured about twice as fast per PUT (see bench/RESULTS.md).

Configuration is the store's own: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` (or ``GOOGLE_*`` / ``AZURE_*``). An ``http://``
endpoint (a store on the same network, a test server) is allowed because it was asked for.
"""

from __future__ import annotations

import array
import datetime
import os
import typing as t
from urllib.parse import urlsplit

from tap_tradecloud.compat import override
from tap_tradecloud.spool.records import (
    EVENTS_DIR,
    INSTANCE_NAME,
    SpoolUnavailableError,
    segment_sequence,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator

OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss")
# A PUT that cannot finish in time answers 503 (the sender retries) rather than hanging.
CLIENT_OPTIONS = {"connect_timeout": "2s", "timeout": "10s"}
RETRY = {"max_retries": 2, "retry_timeout": datetime.timedelta(seconds=5)}
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")


def is_object_store_url(location: str) -> bool:
    """Tell whether a spool location names an object store."""
    return urlsplit(location).scheme.lower() in OBJECT_STORE_SCHEMES


def _import_obstore() -> t.Any:
    try:
        import obstore  # noqa: PLC0415 - an optional dependency, imported when used
    except ImportError:
        msg = (
            "An object-store spool needs the s3 extra: pip install 'tap-tradecloud[s3]' "
            "(in Meltano: pip_url: tap-tradecloud[s3])."
        )
        raise SpoolUnavailableError(msg) from None
    return obstore


class ObjectStore:
    """A spool under a bucket prefix."""

    durable_listing = True  # a LIST is consistent and in key order
    # GETs running at once ahead of the reader, within READ_AHEAD_BYTES. Behind 20 ms of
    # latency the reader got 336 single-event segments/s with 8 ahead, 1,245 with 32 (bench 9).
    read_ahead = 32
    read_batch = 1

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._obstore = _import_obstore()
        from obstore.exceptions import (  # noqa: PLC0415 - optional dependency
            AlreadyExistsError,
            BaseError,
            PreconditionError,
        )
        from obstore.store import from_url  # noqa: PLC0415 - optional dependency

        open_url: t.Any = from_url  # its overloads are per scheme; the URL decides at run time

        self._exists_errors: tuple[type[Exception], ...] = (AlreadyExistsError, PreconditionError)
        self._store_errors: tuple[type[Exception], ...] = (BaseError, OSError, RuntimeError)
        options: dict[str, t.Any] = dict(CLIENT_OPTIONS)
        if _plain_http_endpoint():
            options["allow_http"] = True
        try:
            self._store = open_url(self.url, client_options=options, retry_config=RETRY)
        except Exception as exc:
            msg = f"Cannot use the spool {self.url}: {exc}"
            raise SpoolUnavailableError(msg) from exc

    @override
    def __str__(self) -> str:
        return self.url

    def location(self, key: str) -> str:
        """The URL of a key, for messages."""
        return f"{self.url}/{key}"

    def _call(self, what: str, key: str, call: t.Callable[[], t.Any]) -> t.Any:
        try:
            return call()
        except FileNotFoundError:
            raise
        except self._exists_errors as exc:
            raise FileExistsError(self.location(key)) from exc
        except self._store_errors as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            msg = f"Object store {what} of {self.location(key)} failed: {first_line}"
            raise SpoolUnavailableError(msg) from exc

    # -- writing --------------------------------------------------------------------------

    def open_partition(self, instance: str, *, tmp_max_age_seconds: float) -> None:
        """Check the bucket answers; an object store has no lock and no tmp folder."""
        self.check_writable(instance)

    def close_partition(self, instance: str) -> None:
        """Nothing to release."""

    def create(self, key: str, data: bytes) -> None:
        """PUT ``data`` under ``key`` unless it exists (then FileExistsError)."""
        self._call("PUT", key, lambda: self._obstore.put(self._store, key, data, mode="create"))

    def put(self, key: str, data: bytes) -> None:
        """PUT ``data`` under ``key``, replacing what is there."""
        self._call("PUT", key, lambda: self._obstore.put(self._store, key, data))

    def check_free_space(self, instance: str, min_free_bytes: int, min_free_inodes: int) -> None:
        """An object store does not fill up the way a disk does."""

    def check_writable(self, instance: str) -> None:
        """One LIST call: the bucket exists and the credentials may list it."""
        prefix = f"{instance}/"
        self._call("LIST", prefix, lambda: self._obstore.list_with_delimiter(self._store, prefix))

    def check_partition_kept(self, instance: str) -> None:
        """Nothing to check: a second writer shows as a create that conflicts."""

    def journal_path(self, instance: str) -> None:
        """No journal: a PUT is the one durable write an object store has."""

    # -- reading --------------------------------------------------------------------------

    def partitions(self) -> list[str]:
        """The instance names under the prefix."""
        listing = self._call("LIST", "", lambda: self._obstore.list_with_delimiter(self._store))
        names = (prefix.rstrip("/").rsplit("/", 1)[-1] for prefix in listing["common_prefixes"])
        return [name for name in names if INSTANCE_NAME.match(name)]

    def _objects(self, prefix: str) -> Iterator[dict[str, t.Any]]:
        stream = self._call("LIST", prefix, lambda: self._obstore.list(self._store, prefix))
        try:
            for batch in stream:
                yield from batch
        except self._store_errors as exc:
            msg = f"Object store LIST of {self.location(prefix)} failed: {exc}"
            raise SpoolUnavailableError(msg) from exc

    def segments(self, instance: str) -> list[int]:
        """The first sequences of the partition's segments, sorted."""
        return self.sized_segments(instance)[0]

    def sized_segments(self, instance: str) -> tuple[list[int], array.array[int] | None]:
        """The first sequences of the partition's segments, sorted, and their sizes in bytes."""
        prefix = f"{instance}/{EVENTS_DIR}/"
        found = []
        for item in self._objects(prefix):
            sequence = segment_sequence(item["path"][len(prefix) :])
            if sequence is not None:
                found.append((sequence, int(item["size"])))
        found.sort()
        return [sequence for sequence, _ in found], array.array("q", (size for _, size in found))

    def highest_segment(self, instance: str) -> int:
        """The first sequence of the partition's last segment (0 when empty)."""
        return max(self.segments(instance), default=0)

    def stored_at(self, key: str) -> datetime.datetime:
        """When the object was stored (FileNotFoundError if it is gone)."""
        head = self._call("HEAD", key, lambda: self._obstore.head(self._store, key))
        return t.cast("datetime.datetime", head["last_modified"])

    def names(self, folder_key: str) -> list[str]:
        """The names under a folder key, sorted."""
        prefix = f"{folder_key}/"
        return sorted(item["path"][len(prefix) :] for item in self._objects(prefix))

    def read(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError if it is not there."""
        result = self._call("GET", key, lambda: self._obstore.get(self._store, key).bytes())
        return bytes(result)

    def delete(self, keys: list[str]) -> None:
        """Delete objects (missing ones are fine)."""
        if keys:
            self._call("DELETE", keys[0], lambda: self._obstore.delete(self._store, keys))


def _plain_http_endpoint() -> bool:
    return any(os.environ.get(name, "").startswith("http://") for name in _ENDPOINT_VARIABLES)
