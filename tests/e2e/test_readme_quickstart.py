"""The README's quick start for an existing Meltano project, run verbatim in a fresh project.

The block between ``<!-- quickstart:start -->`` and ``<!-- quickstart:end -->`` is extracted and
run with bash, exactly as a user pastes it, in a project made by ``meltano init``. The variables
the README asks the user to set come from the test: this clone, a free port for the sandbox and a
private PostgreSQL database, dropped afterwards.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest

from tap_tradecloud.sandbox import free_port
from tests.e2e.fresh_project import init_project, run_in_session, user_environment
from tests.e2e.pipeline import PG_DSN, REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUICKSTART = re.compile(
    r"<!-- quickstart:start -->\n```bash\n(?P<block>.*?)```\n<!-- quickstart:end -->", re.DOTALL
)
SANDBOX_ORDERS = 250  # what `tradecloud-sandbox` generates by default


def quickstart_block() -> str:
    match = QUICKSTART.search((REPO_ROOT / "README.md").read_text())
    assert match, "README.md has no quick-start block between the quickstart markers"
    return match["block"]


@pytest.fixture
def database() -> Iterator[str]:
    name = f"quickstart_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield name
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def test_readme_quickstart_runs_verbatim_in_a_fresh_project(tmp_path: Path, database: str) -> None:
    env = user_environment(TRADECLOUD_SANDBOX_PORT=str(free_port()), PGDATABASE=database)
    project = init_project(tmp_path, env)

    bash = ["bash", "-euo", "pipefail", "-c", quickstart_block()]
    output = run_in_session(bash, project, env, timeout=900)

    with psycopg.connect(PG_DSN, dbname=database) as conn:
        loaded = conn.execute("select count(distinct id) from tradecloud.orders").fetchone()
    assert loaded == (SANDBOX_ORDERS,)
    assert re.search(rf"^\s*{SANDBOX_ORDERS} \|", output, re.MULTILINE), output[-3000:]
    assert "${TAP_TRADECLOUD_REPO}" in (project / "meltano.yml").read_text()
