"""The Meltano plugin definitions declare exactly the tap's settings, with matching kinds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tap_tradecloud.tap import TapTradecloud

ROOT = Path(__file__).resolve().parents[1]
JSON_TYPE_TO_KINDS = {
    "string": {"string", "email", "password", "options", "date_iso8601"},
    "integer": {"integer"},
    # Meltano 4.4 cannot serialise `decimal` values that come from the environment.
    "number": {"integer"},
    "boolean": {"boolean"},
    "array": {"array"},
    "object": {"object"},
}


def tap_definition_from_project() -> dict:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-tradecloud"]
    return tap


def tap_definition_for_other_projects() -> dict:
    return yaml.safe_load((ROOT / "meltano" / "tap-tradecloud.yml").read_text())


def sdk_builtin_settings() -> set[str]:
    """Settings the SDK adds for its capabilities (stream maps, flattening, batch, ...)."""
    schema: dict = {"type": "object", "properties": {}}
    TapTradecloud.append_builtin_config(schema)
    return set(schema["properties"])


def tap_settings() -> dict[str, dict]:
    properties = TapTradecloud.config_jsonschema["properties"]
    builtin = sdk_builtin_settings()
    return {name: spec for name, spec in properties.items() if name not in builtin}


def json_type(spec: dict) -> str:
    types = spec.get("type", "string")
    types = [types] if isinstance(types, str) else types
    return next(t for t in types if t != "null")


@pytest.mark.parametrize(
    "definition", [tap_definition_from_project, tap_definition_for_other_projects]
)
def test_plugin_definition_declares_every_tap_setting(definition) -> None:
    plugin = definition()
    declared = {setting["name"]: setting for setting in plugin["settings"]}
    assert set(declared) == set(tap_settings())
    for name, spec in tap_settings().items():
        assert declared[name]["kind"] in JSON_TYPE_TO_KINDS[json_type(spec)], name
        is_secret = bool(spec.get("secret") or spec.get("writeOnly"))
        assert bool(declared[name].get("sensitive")) == is_secret, name


@pytest.mark.parametrize(
    "definition", [tap_definition_from_project, tap_definition_for_other_projects]
)
def test_plugin_definition_declares_state_capability(definition) -> None:
    # Without `state`, Meltano never passes --state and every run starts over.
    assert {"state", "catalog", "discover", "about"} <= set(definition()["capabilities"])
