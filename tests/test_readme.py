"""The README stays a true manual: its settings table is the tap's, its commands are CI's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_updater():
    spec = importlib.util.spec_from_file_location(
        "update_readme_settings", ROOT / "scripts" / "update_readme_settings.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_table_matches_about_output() -> None:
    updater = load_updater()
    readme = (ROOT / "README.md").read_text()
    assert updater.readme_with(updater.settings_table(), readme) == readme, (
        "README settings table is stale: run `.venv/bin/python scripts/update_readme_settings.py`"
    )


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make test   # every test" in readme
    assert "make demo   # the main job" in readme
    ci_commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip()
        and not line.startswith((" ", "#", "set ", "cd ", "if ", "fi", "for ", "done"))
    ]
    assert ci_commands == ["make test"]
