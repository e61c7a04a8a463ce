"""Write the settings table from `tap-tradecloud --about --format=markdown` into README.md.

Run after changing a setting: `.venv/bin/python scripts/update_readme_settings.py`.
tests/test_readme.py fails while the README's table is out of date.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def settings_table() -> str:
    about = subprocess.run(  # noqa: S603
        [str(Path(sys.executable).parent / "tap-tradecloud"), "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = re.search(r"^\| Setting .*?(?=\n\n)", about, flags=re.MULTILINE | re.DOTALL)
    if table is None:
        msg = "no settings table in `tap-tradecloud --about --format=markdown`"
        raise SystemExit(msg)
    return table[0]


def readme_with(table: str, readme: str) -> str:
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table}\n{END}{after}"


def main() -> None:
    README.write_text(readme_with(settings_table(), README.read_text()))


if __name__ == "__main__":
    main()
