"""`meltano config test tap-tradecloud` with a bad setting answers one short line naming it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.pipeline import MeltanoProject

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.e2e]


def test_config_test_names_the_bad_setting_in_one_line(tmp_path: Path) -> None:
    project = MeltanoProject(
        workdir=tmp_path,
        api_url="http://127.0.0.1:9/v2",
        spool_dir=tmp_path / "spool",
        schema="unused",
        extra_env={"TAP_TRADECLOUD_PAGE_SIZE": "500"},
    )

    result = project.meltano("config", "test", "tap-tradecloud", timeout=180)

    assert result.returncode == 1
    output = (result.stdout + result.stderr).splitlines()
    (verdict,) = [i for i, line in enumerate(output) if "Plugin configuration is invalid" in line]
    reported = output[verdict + 1]  # Meltano prints the tap's last log line under its verdict
    assert "page_size" in reported, reported
    assert "maximum of 100" in reported, reported
    assert len(reported) < 500, "no settings schema in the message"
