"""The README's quick start for an existing Meltano project, run verbatim in a fresh project.

The block between ``<!-- quickstart:start -->`` and ``<!-- quickstart:end -->`` is extracted and
run with bash, exactly as a user pastes it, in a project made by ``meltano init``. The variables
the README asks the user to set come from the test: this clone, a free port for the sandbox and a
private PostgreSQL database, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tap_tradecloud.sandbox import free_port
from tests.e2e.pipeline import MELTANO, PG_DSN, REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUICKSTART = re.compile(
    r"<!-- quickstart:start -->\n```bash\n(?P<block>.*?)```\n<!-- quickstart:end -->", re.DOTALL
)
SANDBOX_ORDERS = 250  # what `tradecloud-sandbox` generates by default


def quickstart_block() -> str:
    match = QUICKSTART.search((REPO_ROOT / "README.md").read_text())
    assert match, "README.md has no quick-start block between the quickstart markers"
    return match["block"]


def user_environment(**variables: str) -> dict[str, str]:
    """The caller's environment without settings that would leak into the fresh project."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TAP_TRADECLOUD_", "TARGET_POSTGRES_", "MELTANO_", "PG"))
    }
    env["PATH"] = f"{MELTANO.parent}{os.pathsep}{env.get('PATH', '')}"
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return {**env, **variables}


def run_in_session(command: list[str], cwd: Path, env: dict[str, str], *, timeout: float) -> str:
    """Run ``command`` in its own session; whatever it left running in background is stopped."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, f"{command[:3]} failed:\n{output[-6000:]}"
    return output


@pytest.fixture
def database() -> Iterator[str]:
    name = f"quickstart_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield name
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def test_readme_quickstart_runs_verbatim_in_a_fresh_project(tmp_path: Path, database: str) -> None:
    env = user_environment(
        TAP_TRADECLOUD_REPO=str(REPO_ROOT),
        TRADECLOUD_SANDBOX_PORT=str(free_port()),
        PGDATABASE=database,
    )
    run_in_session(["meltano", "init", "project", "--no_usage_stats"], tmp_path, env, timeout=120)
    project = tmp_path / "project"

    bash = ["bash", "-euo", "pipefail", "-c", quickstart_block()]
    output = run_in_session(bash, project, env, timeout=900)

    with psycopg.connect(PG_DSN, dbname=database) as conn:
        loaded = conn.execute("select count(distinct id) from tradecloud.orders").fetchone()
    assert loaded == (SANDBOX_ORDERS,)
    assert re.search(rf"^\s*{SANDBOX_ORDERS} \|", output, re.MULTILINE), output[-3000:]
    assert "${TAP_TRADECLOUD_REPO}" in (project / "meltano.yml").read_text()
