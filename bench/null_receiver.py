"""The receiver baseline: the same aiohttp app and CLI logging, with a writer that writes nothing.

python bench/null_receiver.py PORT      # Bearer token from $TRADECLOUD_WEBHOOK_TOKEN
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
from concurrent.futures import Future

from aiohttp import web

from tap_tradecloud.spool import EventMeta, SpoolWriter
from tap_tradecloud.webhook.app import ReceiverConfig, create_app
from tap_tradecloud.webhook.auth import Credentials
from tap_tradecloud.webhook.cli import SWITCH_INTERVAL_SECONDS
from tap_tradecloud.webhook.json_logs import logging_to_stderr


class NullWriter(SpoolWriter):
    """Hands out sequence numbers like the spool writer, and stores nothing."""

    _numbers = itertools.count(1)

    def submit(self, body: bytes, meta: EventMeta) -> Future[int]:
        done: Future[int] = Future()
        done.set_result(next(self._numbers))
        return done

    def submit_from_loop(self, body: bytes, meta: EventMeta) -> asyncio.Future[int]:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        done.set_result(next(self._numbers))
        return done

    def check_free_space(self) -> None:
        return None


def main(port: int) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)  # as the receiver's main() does
    with logging_to_stderr("INFO"), tempfile.TemporaryDirectory(prefix="null-receiver-") as folder:
        writer = NullWriter(folder, "baseline")
        writer.open()  # folders and lock only, so that /healthz answers as the receiver's does
        app = create_app(ReceiverConfig(credentials=Credentials.from_env()), writer)
        web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
