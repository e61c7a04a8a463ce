"""BATCH is not offered: the tap and both plugin definitions say so, and batch_config is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from singer_sdk.exceptions import ConfigValidationError

from tap_tradecloud.tap import TapTradecloud

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "api_url": "http://127.0.0.1:9/v2",
    "username": "integration@example.com",
    "password": "secret",
}


def advertised_capabilities() -> set[str]:
    return {str(capability) for capability in TapTradecloud.capabilities}


def meltano_capabilities() -> list[set[str]]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-tradecloud"]
    other = yaml.safe_load((ROOT / "meltano" / "tap-tradecloud.yml").read_text())
    return [set(tap["capabilities"]), set(other["capabilities"])]


def test_batch_is_neither_advertised_nor_declared_for_meltano() -> None:
    assert "batch" not in advertised_capabilities()
    assert {"state", "catalog", "discover"} <= advertised_capabilities()
    for declared in meltano_capabilities():
        assert declared == advertised_capabilities()
    assert "batch_config" not in TapTradecloud.config_jsonschema["properties"]


def test_batch_config_is_refused_with_the_fix() -> None:
    batch_config = {"encoding": {"format": "jsonl"}, "storage": {"root": "file:///tmp"}}
    config = {**CONFIG, "batch_config": batch_config}
    with pytest.raises(ConfigValidationError) as caught:
        TapTradecloud(config=config, parse_env_config=False)
    assert any("batch_config" in error and "Remove" in error for error in caught.value.errors)
