"""A fresh Meltano project made by `meltano init`, driven as a user's shell would drive it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import TYPE_CHECKING

from tests.e2e.pipeline import MELTANO, REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path


def user_environment(**variables: str) -> dict[str, str]:
    """The caller's environment, Meltano first on PATH, without settings that would leak in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TAP_TRADECLOUD_", "TARGET_POSTGRES_", "MELTANO_", "PG"))
    }
    env["PATH"] = f"{MELTANO.parent}{os.pathsep}{env.get('PATH', '')}"
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env["TAP_TRADECLOUD_REPO"] = str(REPO_ROOT)
    return {**env, **variables}


def run_in_session(command: list[str], cwd: Path, env: dict[str, str], *, timeout: float) -> str:
    """Run ``command`` in its own session; whatever it left running in background is stopped."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        output, errors = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, f"{command[:3]} failed:\n{output[-3000:]}\n{errors[-6000:]}"
    return output


def init_project(parent: Path, env: dict[str, str]) -> Path:
    """``meltano init project`` inside ``parent``; the project folder."""
    run_in_session(["meltano", "init", "project", "--no_usage_stats"], parent, env, timeout=120)
    return parent / "project"
