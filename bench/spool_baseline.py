"""The spool-read baseline: read a partition with ``spool.iter_events`` and print Singer RECORDs.

python bench/spool_baseline.py SPOOL_DIR INSTANCE > /dev/null
"""

from __future__ import annotations

import json
import sys

from tap_tradecloud.spool import iter_events


def main(spool_dir: str, instance: str) -> None:
    write = sys.stdout.write
    for event in iter_events(spool_dir, instance):
        record = {
            "spool_sequence": event.sequence,
            "receiver_instance": event.instance,
            "received_at": event.meta.received_at,
            "event": json.loads(event.body),
        }
        write(json.dumps({"type": "RECORD", "stream": "webhook_events", "record": record}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
