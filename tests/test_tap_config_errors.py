"""A bad setting stops the tap with one log line that names the setting and the rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TAP = Path(sys.executable).parent / "tap-tradecloud"
GOOD = {
    "username": "integration@example.com",
    "password": "secret",
    "api_url": "http://127.0.0.1:9/v2",
}


def run_tap(tmp_path: Path, config: dict, *args: str, structured: bool = False) -> tuple[int, str]:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_TRADECLOUD_", "SINGER_"))}
    if structured:  # as under Meltano, which enables the SDK's JSON log lines
        log_config = tmp_path / "logging.json"
        log_config.write_text(json.dumps(STRUCTURED_LOGGING))
        env["SINGER_SDK_LOG_CONFIG"] = str(log_config)
    result = subprocess.run(
        [str(TAP), "--config", str(config_file), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stderr


STRUCTURED_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"structured": {"()": "singer_sdk.logging.StructuredFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "structured",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "INFO", "handlers": ["console"]},
}


@pytest.mark.parametrize("mode", [(), ("--test",)], ids=["sync", "test"])
@pytest.mark.parametrize("structured", [False, True], ids=["plain", "json"])
def test_bad_setting_is_one_line_naming_it(
    tmp_path: Path, mode: tuple[str, ...], structured: bool
) -> None:
    returncode, stderr = run_tap(tmp_path, {**GOOD, "page_size": 500}, *mode, structured=structured)

    assert returncode == 1
    errors = [line for line in stderr.splitlines() if "ERROR" in line.upper()]
    assert len(errors) == 1, stderr
    (error,) = errors
    assert "page_size" in error
    assert "maximum of 100" in error
    assert error == stderr.splitlines()[-1]  # what `meltano config test` shows
    assert len(error) < 500, "no settings schema in the message"
    assert "properties" not in stderr


def test_setting_rule_of_the_tap_itself_is_reported_the_same_way(tmp_path: Path) -> None:
    returncode, stderr = run_tap(tmp_path, {**GOOD, "start_date": "2024-01-01T00:00:00"})

    assert returncode == 1
    assert "start_date" in stderr.splitlines()[-1]
    assert "time zone" in stderr.splitlines()[-1]
