"""Helpers to run the pipeline `meltano run tap-tradecloud target-postgres`, into PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import requests

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
MELTANO = REPO_ROOT / ".venv-meltano" / "bin" / "meltano"
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
WEBHOOK_TOKEN = "e2e-webhook-token"
DUCKDB_PYTHON = REPO_ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"


def postgres_answers() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@dataclass
class Warehouse:
    """One PostgreSQL schema per test, dropped afterwards."""

    schema: str

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(PG_DSN) as conn:
            return conn.execute(sql.replace("{schema}", self.schema), params).fetchall()

    def table_exists(self, table: str) -> bool:
        rows = self.query(
            "select 1 from information_schema.tables where table_schema = %s and table_name = %s",
            self.schema,
            table,
        )
        return bool(rows)

    def drop(self) -> None:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'drop schema if exists "{self.schema}" cascade')


@dataclass
class Receiver:
    """The webhook receiver, started from its CLI as a user would."""

    spool_dir: Path
    port: int
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/tradecloud"

    def start(self) -> None:
        self.log_path = self.spool_dir.parent / "receiver.log"
        env = {**os.environ, "TRADECLOUD_WEBHOOK_TOKEN": WEBHOOK_TOKEN}
        cmd = [
            str(Path(sys.executable).parent / "tap-tradecloud-webhook"),
            "--spool-dir", str(self.spool_dir),
            "--port", str(self.port),
            "--instance-id", "e2e-receiver",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"receiver exited: {self.log_path.read_text()}"
                raise RuntimeError(msg)
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).ok:
                    return
            time.sleep(0.1)
        msg = "receiver did not become healthy within 20 s"
        raise RuntimeError(msg)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class MeltanoProject:
    """The repo's own meltano.yml, with a private system database and per-test settings."""

    workdir: Path
    api_url: str
    spool_dir: Path
    schema: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TAP_TRADECLOUD_", "TARGET_POSTGRES_", "MELTANO_"))
        }
        env.update(
            {
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_DATABASE_URI": f"sqlite:///{self.workdir / 'meltano.db'}",
                "MELTANO_ENVIRONMENT": "sandbox",
                "TAP_TRADECLOUD_API_URL": self.api_url,
                "TAP_TRADECLOUD_SPOOL_DIR": str(self.spool_dir),
                "TAP_TRADECLOUD_MAX_REQUESTS_PER_SECOND": "200",
                "TARGET_POSTGRES_DATABASE": "test",
                "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": self.schema,
            }
        )
        env.update(self.extra_env)
        return env

    def meltano(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(MELTANO), *args],
            cwd=REPO_ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run_pipeline(self, loader: str = "target-postgres") -> subprocess.CompletedProcess:
        result = self.meltano("run", "tap-tradecloud", loader)
        if result.returncode != 0:
            msg = f"meltano run failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
            raise AssertionError(msg)
        return result

    def start_pipeline(self) -> subprocess.Popen:
        return subprocess.Popen(
            [str(MELTANO), "run", "tap-tradecloud", "target-postgres"],
            cwd=REPO_ROOT,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def state(self) -> str:
        result = self.meltano("state", "get", "sandbox:tap-tradecloud-to-target-postgres")
        return result.stdout


def query_duckdb(database: Path, sql: str) -> list[list]:
    """Query a DuckDB file with the duckdb that target-duckdb was installed with."""
    script = (
        "import duckdb, json, sys; con = duckdb.connect(sys.argv[1], read_only=True);"
        "print(json.dumps(con.sql(sys.argv[2]).fetchall()))"
    )
    result = subprocess.run(
        [str(DUCKDB_PYTHON), "-c", script, str(database), sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@contextlib.contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
