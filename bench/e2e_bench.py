"""Benchmark 6: ``meltano run tap-tradecloud target-postgres`` and the tap's share of its time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg

from bench.common import (
    REPO,
    SANDBOX_PASSWORD,
    Section,
    Target,
    run_measured,
    sandbox,
)
from bench.tap_bench import REALISTIC_LINES, tap_config

MELTANO = REPO / ".venv-meltano" / "bin" / "meltano"
MELTANO_TAP = (
    REPO / ".meltano" / "extractors" / "tap-tradecloud" / "venv" / "bin" / "tap-tradecloud"
)
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def _postgres_answers() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _meltano_env(workdir: Path, api_url: str, schema: str) -> dict[str, str]:
    """The repo's meltano.yml with a private system database, as tests/e2e/pipeline.py runs it."""
    spool_dir = workdir / "e2e-spool"
    spool_dir.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TAP_TRADECLOUD_", "TARGET_POSTGRES_", "MELTANO_"))
    }
    return {
        **env,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
        "MELTANO_ENVIRONMENT": "sandbox",
        "TAP_TRADECLOUD_API_URL": api_url,
        "TAP_TRADECLOUD_PASSWORD": SANDBOX_PASSWORD,
        "TAP_TRADECLOUD_SPOOL_DIR": str(spool_dir),
        "TAP_TRADECLOUD_MAX_REQUESTS_PER_SECOND": "1000",
        "TARGET_POSTGRES_DATABASE": "test",
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
    }


def end_to_end(workdir: Path, orders: int) -> Section:
    title = f"6. End to end: {orders:,} orders through meltano run tap-tradecloud target-postgres"
    if not MELTANO.exists() or not _postgres_answers():
        return Section(
            title=title,
            notes=[f"SKIPPED: {MELTANO} missing or PostgreSQL not answering on 127.0.0.1:5432."],
        )
    schema = f"bench_{os.getpid()}_{int(time.time())}"
    with sandbox(workdir, orders, REALISTIC_LINES) as sb:
        try:
            pipeline = run_measured(
                [str(MELTANO), "run", "tap-tradecloud", "target-postgres"],
                env=_meltano_env(workdir, sb.api_url, schema),
                log=workdir / "meltano.log",
                timeout=900,
            )
            with psycopg.connect(PG_DSN) as conn:
                row = conn.execute(f'select count(*) from "{schema}".orders').fetchone()
            loaded = int(row[0]) if row else 0
        finally:
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f'drop schema if exists "{schema}" cascade')
        tap_exe = MELTANO_TAP if MELTANO_TAP.exists() else Path("tap-tradecloud")
        config = tap_config(workdir, sb.api_url, name="e2e-tap.json")
        tap = run_measured([str(tap_exe), "--config", str(config)], log=workdir / "tap.log")
    share = tap.wall / pipeline.wall
    return Section(
        title=title,
        commands=[
            "MELTANO_DATABASE_URI=sqlite:///PRIVATE.db MELTANO_ENVIRONMENT=sandbox "
            "TAP_TRADECLOUD_API_URL=SANDBOX TAP_TRADECLOUD_MAX_REQUESTS_PER_SECOND=1000 "
            "TARGET_POSTGRES_DATABASE=test TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=bench_... "
            ".venv-meltano/bin/meltano run tap-tradecloud target-postgres",
            f"{tap_exe.relative_to(REPO) if tap_exe.is_absolute() else tap_exe} "
            "--config CONFIG > /dev/null   # the same tap and settings, alone",
        ],
        header=("run", "wall s", "CPU s (process and its children)", "orders/s"),
        rows=[
            (
                "meltano run (tap + target-postgres)",
                f"{pipeline.wall:.1f}",
                f"{pipeline.cpu:.1f}",
                f"{orders / pipeline.wall:,.0f}",
            ),
            (
                "tap alone to /dev/null",
                f"{tap.wall:.1f}",
                f"{tap.cpu:.1f}",
                f"{orders / tap.wall:,.0f}",
            ),
        ],
        targets=[
            Target("orders loaded into PostgreSQL", f"{loaded:,}", f"{orders:,}", loaded == orders),
        ],
        notes=[
            f"The tap's share of the pipeline's wall time: {share:.0%} (tap alone "
            f"{tap.wall:.1f} s of {pipeline.wall:.1f} s). The rest is Meltano's start-up and "
            "target-postgres (parsing, validating and loading the nested orders).",
            f"The schema {schema} in database test was dropped afterwards.",
        ],
    )
