"""The webhook spool: the one owner of its layout and format, on a local folder or a bucket.

``records`` defines the data and the names, ``local`` and ``objectstore`` store it, ``writer``
group-commits the receiver's ``deliveries`` into segments (under load, groups gathered on the
event loop by ``loop_groups`` go through a local partition's ``journal``) and ``reader`` gives
them back in order.
A spool location is a folder path or an ``s3://``, ``gs://`` or ``az://`` URL.
"""

from tap_tradecloud.spool import local, objectstore
from tap_tradecloud.spool.reader import (
    highest_sequence,
    iter_events,
    iter_quarantine,
    list_partitions,
    partition_identity,
    prune_events,
    read_event,
    set_aside,
)
from tap_tradecloud.spool.records import (
    CorruptEventError,
    EventMeta,
    QuarantinedBody,
    SpoolConflictError,
    SpooledEvent,
    SpoolError,
    SpoolFullError,
    SpoolLockedError,
    SpoolUnavailableError,
    event_file_name,
    is_disk_full,
    parse_utc_ms,
    utc_now_ms,
    validate_instance,
)
from tap_tradecloud.spool.stores import SpoolLocation, open_store
from tap_tradecloud.spool.writer import (
    DEFAULT_MIN_FREE_BYTES,
    DEFAULT_MIN_FREE_INODES,
    SpoolWriter,
)

__all__ = [
    "DEFAULT_MIN_FREE_BYTES",
    "DEFAULT_MIN_FREE_INODES",
    "CorruptEventError",
    "EventMeta",
    "QuarantinedBody",
    "SpoolConflictError",
    "SpoolError",
    "SpoolFullError",
    "SpoolLocation",
    "SpoolLockedError",
    "SpoolUnavailableError",
    "SpoolWriter",
    "SpooledEvent",
    "event_file_name",
    "highest_sequence",
    "is_disk_full",
    "iter_events",
    "iter_quarantine",
    "list_partitions",
    "local",
    "objectstore",
    "open_store",
    "parse_utc_ms",
    "partition_identity",
    "prune_events",
    "read_event",
    "set_aside",
    "utc_now_ms",
    "validate_instance",
]
