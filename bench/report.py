"""RESULTS.md: the machine, the run, and every benchmark's commands, figures and verdicts."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import REPO, Section

if TYPE_CHECKING:
    import datetime as dt


def machine() -> list[tuple[str, str]]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return [
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("RAM", f"{mem_kb / 1024 / 1024:.1f} GiB"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = (
        " (with uncommitted changes)"
        if git("status", "--porcelain", "--", "tap_tradecloud", "bench", ":!bench/RESULTS.md")
        else ""
    )
    return git("rev-parse", "HEAD") + dirty


def render(
    sections: list[Section],
    *,
    started: dt.datetime,
    seconds: float,
    command: str,
    host: list[tuple[str, str]],
    commit: str,
    quick: bool = False,
) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {started:%Y-%m-%d %H:%M} UTC in {seconds:.0f} s, "
        f"at commit `{commit}`. Every figure is compared with a baseline measured in the same "
        "run; absolute numbers drift with the machine and its load (2 shared cores).",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in host),
        "",
        *(
            [
                "**Quick mode**: small sizes to check that every benchmark runs. Start-up "
                "time dominates them, so their verdicts say nothing; run without `--quick`.",
                "",
            ]
            if quick
            else []
        ),
        "## Targets",
        "",
        "| benchmark | figure | measured | target | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for section in sections:
        for target in section.targets:
            number = section.title.split(".", 1)[0]
            cells = (number, target.what, target.measured, target.goal, f"**{target.verdict}**")
            lines.append("| " + " | ".join(cells) + " |")
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        if section.commands:
            lines += ["```", *section.commands, "```", ""]
        if section.header:
            lines.append("| " + " | ".join(section.header) + " |")
            lines.append("|" + " --- |" * len(section.header))
            lines += ["| " + " | ".join(row) + " |" for row in section.rows]
            lines.append("")
        for target in section.targets:
            lines.append(
                f"- {target.what}: {target.measured} (target {target.goal}): **{target.verdict}**"
            )
        lines += [f"\n{note}" for note in section.notes]
        if section.profile:
            lines += [
                "",
                "Profile (benchmarks 1-5: cProfile, top entries by own time; 8: py-spy):",
                "",
                "```",
                section.profile,
                "```",
            ]
    return "\n".join(lines) + "\n"
