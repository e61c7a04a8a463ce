"""The shipped plugin definition, added to a fresh project: object settings stay objects."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import yaml

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer
from tests.e2e.fresh_project import init_project, run_in_session, user_environment
from tests.e2e.pipeline import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
DEFINITION = REPO_ROOT / "meltano" / "tap-tradecloud.yml"


def test_stream_maps_set_with_meltano_config_set_are_applied(tmp_path: Path) -> None:
    env = user_environment()
    project = init_project(tmp_path, env)

    def meltano(*args: str) -> str:
        return run_in_session(["meltano", *args], project, env, timeout=300)

    meltano("add", "--plugin-type", "extractor", "tap-tradecloud", "--from-ref", str(DEFINITION))
    meltano("config", "set", "tap-tradecloud", "stream_maps", '{"orders": {"lines": "__NULL__"}}')
    config = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]["extractors"][0]
    assert config["config"]["stream_maps"] == {"orders": {"lines": "__NULL__"}}

    with SandboxServer(SandboxConfig(seed=3, order_count=5, lines_per_order=(1, 2))) as sandbox:
        for setting, value in (
            ("api_url", sandbox.api_url),
            ("username", "integration@example.com"),
            ("password", "sandbox-password"),
        ):
            meltano("config", "set", "tap-tradecloud", setting, value)
        output = meltano("invoke", "tap-tradecloud")

    messages = [json.loads(line) for line in output.splitlines() if '"RECORD"' in line]
    records = [message for message in messages if message["stream"] == "orders"]
    assert len(records) == 5
    assert all("lines" not in message["record"] for message in records)
    assert all("buyerOrder" in message["record"] for message in records)
    # The receiver's plugin command runs from the tap's own virtual environment too.
    assert "--spool-dir" in meltano("invoke", "tap-tradecloud:webhook-receiver", "--help")
