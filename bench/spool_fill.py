"""Set-up for the spool benchmark: write N webhook events into a spool partition.

    python bench/spool_fill.py SPOOL_DIR INSTANCE N

Uses ``spool.SpoolWriter`` with fsync turned off in this process only: the benchmark measures
reading, and 100,000 fsynced writes would take minutes on this disk. The files are the same.
Events are submitted 16 at a time, as 16 busy connections deliver them. In a folder the writer
journals such groups and moves them into segments of up to about a megabyte, as the receiver
does under load; in a bucket a segment holds one group (up to 16 events). SPOOL_DIR may be
s3://...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.webhook_load import event_body
from tap_tradecloud.spool import EventMeta, SpoolWriter, utc_now_ms

CONNECTIONS = 16


def main(spool_dir: str, instance: str, count: int) -> None:
    os.fsync = lambda fd: None  # set-up only; see the module docstring
    with SpoolWriter(spool_dir, instance, min_free_bytes=0) as writer:
        for first in range(0, count, CONNECTIONS):
            meta = EventMeta(
                received_at=utc_now_ms(),
                method="POST",
                path="/webhooks/tradecloud",
                content_type="application/json",
            )
            numbers = range(first, min(first + CONNECTIONS, count))
            for future in [writer.submit(event_body(number), meta) for number in numbers]:
                future.result()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
