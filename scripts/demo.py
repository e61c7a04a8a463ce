"""The whole pipeline on this machine, with no credentials: `make demo`.

Starts the offline sandbox (an honest Tradecloud look-alike) and the webhook receiver, lets the
sandbox change orders and fire webhooks, runs `meltano run tap-tradecloud target-postgres` twice
(the second run incremental), prints what landed, and stops everything it started. Without a
PostgreSQL server on 127.0.0.1:5432 it loads into an embedded DuckDB file instead, and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import requests

from tap_tradecloud.sandbox import free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "demo-data"
BIN = Path(sys.executable).parent
MELTANO = ROOT / ".venv-meltano" / "bin" / "meltano"
DUCKDB_PYTHON = ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_DEMO_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=tradecloud"
WEBHOOK_TOKEN = "demo-webhook-token"  # noqa: S105 - the demo's own loopback receiver
FIRST_WEBHOOKS = 20
SECOND_CHANGES = 5


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if check():
                return
        time.sleep(0.2)
    msg = f"demo: gave up waiting for {what} after {timeout:.0f} s (logs in {DATA})"
    raise SystemExit(msg)


@contextlib.contextmanager
def background(name: str, cmd: list[str], env: dict[str, str] | None = None) -> Iterator[None]:
    log = (DATA / f"{name}.log").open("wb")
    process = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)  # noqa: S603
    try:
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        print(f"   stopped {name}")


def postgres_ready() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3, autocommit=True) as conn:
            if not conn.execute(
                "select 1 from pg_database where datname = 'tradecloud'"
            ).fetchone():
                conn.execute("create database tradecloud")
        with psycopg.connect(PG_DEMO_DSN, autocommit=True) as conn:
            conn.execute("drop schema if exists tradecloud cascade")
    except psycopg.OperationalError:
        return False
    return True


def meltano(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MELTANO), *args], cwd=ROOT, env=env, check=False,  # noqa: S603
                          capture_output=True, text=True)  # fmt: skip


POSTGRES_LOADED = re.compile(r'METRIC: (\{.*"metric":\s*"record_count".*\})')
DUCKDB_LOADED = re.compile(r"Loading (\d+) rows into '.*\.\"(\w+)\"'")


def records_loaded(meltano_log: str) -> dict[str, int]:
    """Sum, per stream, the records the target says it loaded."""
    loaded: dict[str, int] = {}
    for match in POSTGRES_LOADED.finditer(meltano_log):
        metric = json.loads(match[1])
        stream = metric["tags"]["stream"]
        loaded[stream] = loaded.get(stream, 0) + metric["value"]
    for match in DUCKDB_LOADED.finditer(meltano_log):
        loaded[match[2]] = loaded.get(match[2], 0) + int(match[1])
    return loaded


def run_pipeline(env: dict[str, str], loader: str, label: str) -> None:
    say(f"{label}: meltano run tap-tradecloud {loader}")
    started = time.monotonic()
    result = meltano(env, "run", "tap-tradecloud", loader)
    (DATA / f"meltano-{label.split()[1]}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        print(result.stderr[-6000:])
        msg = f"demo: meltano run failed (exit {result.returncode})"
        raise SystemExit(msg)
    loaded = records_loaded(result.stdout + result.stderr)
    moved = ", ".join(f"{count} {stream}" for stream, count in sorted(loaded.items())) or "nothing"
    print(f"   done in {time.monotonic() - started:.1f} s; records loaded: {moved}")


# target-postgres keeps camelCase column names (quoted); target-duckdb lowercases them.
SUMMARY_SQL = {
    "counts": "select 'orders', count(*) from tradecloud.orders "
    "union all select 'shipments', count(*) from tradecloud.shipments "
    "union all select 'webhook_events', count(*) from tradecloud.webhook_events",
    "orders": "select id, version, {updated}, status from tradecloud.orders "
    "order by {updated} desc, id limit 5",
    "events": "select event_name, order_id, http_method, received_at "
    "from tradecloud.webhook_events order by received_at desc limit 5",
}


def query_warehouse(loader: str) -> dict[str, list]:
    if loader == "target-postgres":
        queries = {name: sql.format(updated='"lastUpdatedAt"') for name, sql in SUMMARY_SQL.items()}
        with psycopg.connect(PG_DEMO_DSN) as conn:
            return {name: conn.execute(sql).fetchall() for name, sql in queries.items()}
    queries = {name: sql.format(updated="lastupdatedat") for name, sql in SUMMARY_SQL.items()}
    script = (
        "import duckdb, json, sys; con = duckdb.connect(sys.argv[1], read_only=True);"
        "print(json.dumps({k: con.sql(q).fetchall() for k, q in json.loads(sys.argv[2]).items()},"
        " default=str))"
    )
    database = str(DATA / "warehouse.duckdb")
    out = subprocess.run(  # noqa: S603
        [str(DUCKDB_PYTHON), "-c", script, database, json.dumps(queries)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def show_warehouse(loader: str) -> None:
    found = query_warehouse(loader)
    for table, count in found["counts"]:
        print(f"   {table:<15} {count:>6} rows")
    print("   latest orders:")
    for order_id, version, updated, raw_status in found["orders"]:
        status = raw_status if isinstance(raw_status, dict) else json.loads(raw_status or "{}")
        print(f"     {order_id}  v{version}  {updated}  {status.get('processStatus')}")
    print("   latest webhook events:")
    for name, order_id, method, received in found["events"]:
        print(f"     {received}  {method:<4} {name}  {order_id}")


def delivered(sandbox_url: str) -> int:
    return len(requests.get(f"{sandbox_url}/_sandbox/webhooks/delivered", timeout=5).json())


def main() -> None:
    shutil.rmtree(DATA, ignore_errors=True)
    (DATA / "spool").mkdir(parents=True)
    sandbox_port, receiver_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    receiver_url = f"http://127.0.0.1:{receiver_port}/webhooks/tradecloud"

    loader = "target-postgres" if postgres_ready() else "target-duckdb"
    if loader == "target-duckdb":
        say("No PostgreSQL answers on 127.0.0.1:5432: loading into the embedded DuckDB file "
            f"{DATA / 'warehouse.duckdb'} instead (query it with DuckDB).")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_TRADECLOUD_", "MELTANO_"))}
    env |= {
        "MELTANO_ENVIRONMENT": "sandbox",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{DATA / 'meltano.db'}",
        "TAP_TRADECLOUD_API_URL": f"{sandbox_url}/v2",
        "TAP_TRADECLOUD_SPOOL_DIR": str(DATA / "spool"),
    }

    say("Starting the webhook receiver and the sandbox")
    receiver_cmd = [str(BIN / "tap-tradecloud-webhook"), "--spool-dir", str(DATA / "spool"),
                    "--port", str(receiver_port), "--instance-id", "demo"]  # fmt: skip
    sandbox_cmd = [
        str(BIN / "tradecloud-sandbox"), "--port", str(sandbox_port), "--seed", "42",
        "--orders", "1000", "--lines-per-order", "1-20",
        "--webhook-url", receiver_url, "--webhook-bearer", WEBHOOK_TOKEN,
        "--activity-interval", "0.1", "--activity-changes", str(FIRST_WEBHOOKS),
        "--max-runtime", "900",
    ]  # fmt: skip
    with (
        background(
            "receiver", receiver_cmd, {**os.environ, "TRADECLOUD_WEBHOOK_TOKEN": WEBHOOK_TOKEN}
        ),
        background("sandbox", sandbox_cmd),
    ):
        wait_until(lambda: requests.get(f"http://127.0.0.1:{receiver_port}/healthz", timeout=2).ok,
                   "the receiver")  # fmt: skip
        wait_until(lambda: delivered(sandbox_url) >= FIRST_WEBHOOKS, "the sandbox's webhooks")
        print(
            f"   sandbox on {sandbox_url}: 1000 orders; {FIRST_WEBHOOKS} changes fired as webhooks"
        )

        run_pipeline(env, loader, "run 1")
        show_warehouse(loader)

        say(f"Changing {SECOND_CHANGES} orders in the sandbox (each fires a webhook)")
        requests.post(f"{sandbox_url}/_sandbox/control", json={"change_orders": SECOND_CHANGES},
                      timeout=10).raise_for_status()  # fmt: skip
        wait_until(lambda: delivered(sandbox_url) >= FIRST_WEBHOOKS + SECOND_CHANGES, "webhooks")

        run_pipeline(env, loader, "run 2 (incremental)")
        show_warehouse(loader)
        state = meltano(env, "state", "get", f"sandbox:tap-tradecloud-to-{loader}").stdout
        say("State after run 2 (meltano state get)")
        print(state.strip()[-3000:])
    say(f"Done. Logs and data in {DATA}")


if __name__ == "__main__":
    main()
