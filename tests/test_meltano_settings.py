"""The Meltano plugin definitions cover the tap's settings, with matching kinds, in Hub form."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tap_tradecloud.tap import TapTradecloud

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT / "meltano"
JSON_TYPE_TO_KINDS = {
    "string": {"string", "email", "options", "date_iso8601"},
    "integer": {"integer"},
    # Meltano 4.4 cannot serialise `decimal` values that come from the environment.
    "number": {"integer"},
    "boolean": {"boolean"},
    "array": {"array"},
    "object": {"object"},
}
# What a Meltano project needs of the definition; Hub metadata (keywords, ...) may differ.
SHARED_KEYS = (
    "name",
    "namespace",
    "executable",
    "capabilities",
    "settings_group_validation",
    "settings",
    "commands",
)


def tap_definition_from_project() -> dict:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-tradecloud"]
    return tap


def tap_definition_for_other_projects() -> dict:
    return yaml.safe_load((DEFINITIONS / "tap-tradecloud.yml").read_text())


def about_settings() -> dict[str, dict]:
    """Every setting `tap-tradecloud --about` lists: the tap's own and the SDK's built-in ones."""
    schema: dict = {
        "type": "object",
        "properties": dict(TapTradecloud.config_jsonschema["properties"]),
    }
    TapTradecloud.append_builtin_config(schema)
    return schema["properties"]


def json_type(spec: dict) -> str:
    types = spec.get("type", "string")
    types = [types] if isinstance(types, str) else types
    return next(t for t in types if t != "null")


def expected_kinds(spec: dict) -> set[str]:
    if spec.get("enum"):
        return {"options"}
    if spec.get("format") == "date-time":
        return {"date_iso8601"}
    return JSON_TYPE_TO_KINDS[json_type(spec)]


@pytest.mark.parametrize(
    "definition", [tap_definition_from_project, tap_definition_for_other_projects]
)
def test_plugin_definition_declares_every_setting_of_about(definition) -> None:
    declared = {setting["name"]: setting for setting in definition()["settings"]}
    missing = set(about_settings()) - set(declared)
    assert not missing, f"settings of --about not declared: {sorted(missing)}"
    for name, spec in about_settings().items():
        setting = declared[name]
        assert setting["kind"] in expected_kinds(spec), name
        is_secret = bool(spec.get("secret") or spec.get("writeOnly"))
        assert bool(setting.get("sensitive")) == is_secret, name
        if spec.get("enum"):
            assert [option["value"] for option in setting["options"]] == spec["enum"], name
        if "default" in spec:
            assert setting.get("value") == spec["default"], name


def test_builtin_object_settings_are_objects() -> None:
    # Declared as objects, `meltano config set tap-tradecloud stream_maps '{...}'` stores JSON.
    declared = {s["name"]: s["kind"] for s in tap_definition_for_other_projects()["settings"]}
    for name in ("stream_maps", "stream_map_config", "batch_config", "faker_config"):
        assert declared[name] == "object", name


@pytest.mark.parametrize("path", sorted(DEFINITIONS.glob("*.yml")), ids=lambda p: p.name)
def test_every_definition_follows_hub_conventions(path: Path) -> None:
    plugin = yaml.safe_load(path.read_text())
    for key in ("name", "namespace", "variant", "label", "description", "pip_url", "executable"):
        assert plugin.get(key), f"{path.name}: {key} missing"
    for setting in plugin["settings"]:
        assert setting.get("label"), f"{path.name}: {setting['name']} has no label"
        assert setting.get("description"), f"{path.name}: {setting['name']} has no description"
        assert setting.get("kind") != "password", f"{path.name}: use kind string + sensitive"


def test_project_uses_the_shipped_definition() -> None:
    project, shipped = tap_definition_from_project(), tap_definition_for_other_projects()
    for key in SHARED_KEYS:
        assert project.get(key) == shipped.get(key), key
    assert project["pip_url"] == "-e ."


def test_plugin_commands_run_the_sandbox_and_the_receiver() -> None:
    commands = tap_definition_for_other_projects()["commands"]
    assert commands["sandbox"]["executable"] == "tradecloud-sandbox"
    assert commands["webhook-receiver"]["executable"] == "tap-tradecloud-webhook"


def test_plugin_definition_declares_state_capability() -> None:
    # Without `state`, Meltano never passes --state and every run starts over.
    capabilities = set(tap_definition_for_other_projects()["capabilities"])
    assert {"state", "catalog", "discover", "about"} <= capabilities
