"""Benchmark 7: tap CPU with ``order_lines`` selected, as a ratio to ``orders`` alone.

.venv/bin/python bench/order_lines_bench.py            # 20,000 orders of 8-12 lines, 3 rounds
.venv/bin/python bench/order_lines_bench.py --quick    # 1,000 orders, 1 round

It prints its section of RESULTS.md (append it there by hand; ``bench/run.py`` rewrites the file).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Measured, Section, Target, median, run_measured, sandbox
from bench.tap_bench import REALISTIC_LINES, catalog, profile_top, tap_command, tap_config

CPU_RATIO_TARGET = 1.3
# name -> (streams selected, whether the `lines` property of `orders` is selected)
SELECTIONS = {
    "orders alone (baseline)": ({"orders"}, True),
    "orders + order_lines": ({"orders", "order_lines"}, True),
    "orders without `lines` + order_lines": ({"orders", "order_lines"}, False),
}


def order_lines_cpu(workdir: Path, orders: int, rounds: int, *, profile: bool = False) -> Section:
    """Run every selection ``rounds`` times against one sandbox, rotating the order."""
    with sandbox(workdir, orders, REALISTIC_LINES, max_runtime=2400) as sb:
        config = tap_config(workdir, sb.api_url)
        catalogs = {
            name: catalog(workdir, config, streams, lines=lines)
            for name, (streams, lines) in SELECTIONS.items()
        }
        runs: dict[str, list[Measured]] = {name: [] for name in catalogs}
        names = list(catalogs)
        for round_ in range(rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                runs[name].append(
                    run_measured(tap_command(config, catalogs[name]), log=workdir / "tap.log")
                )
        baseline = median([r.cpu for r in runs[names[0]]])
        ratios = {
            name: median([r.cpu for r in measured]) / baseline for name, measured in runs.items()
        }
        section = _section(orders, rounds, runs, ratios, sb.command)
        if profile:
            section.profile = profile_top(workdir, tap_command(config, catalogs[names[2]]))
    return section


def _section(
    orders: int,
    rounds: int,
    runs: dict[str, list[Measured]],
    ratios: dict[str, float],
    sandbox_command: list[str],
) -> Section:
    low, high = REALISTIC_LINES
    names = list(runs)
    return Section(
        title=f"7. order_lines: tap CPU for {orders:,} orders of {low}-{high} lines",
        commands=[
            " ".join(sandbox_command),
            "tap-tradecloud --config tap-config.json --catalog CATALOG > /dev/null   "
            "# CATALOG: the discovered one with the selection of each row",
            f"{rounds} rounds, the order rotating; medians",
        ],
        header=("selection", "CPU s, median (each round)", "CPU / orders alone", "wall s, median"),
        rows=[
            (
                name,
                f"{median([r.cpu for r in measured]):.2f} "
                f"({', '.join(f'{r.cpu:.2f}' for r in measured)})",
                f"{ratios[name]:.2f}x",
                f"{median([r.wall for r in measured]):.2f}",
            )
            for name, measured in runs.items()
        ],
        targets=[
            Target(
                f"tap CPU with {names[index]} / orders alone",
                f"{ratios[names[index]]:.2f}x",
                f"<= {CPU_RATIO_TARGET}x",
                ratios[names[index]] <= CPU_RATIO_TARGET,
            )
            for index in (1, 2)
        ],
        notes=[
            "A first run: every line of every order is new, so `order_lines` emits all of "
            "them (the most it ever emits). With `orders.lines` still selected each line is "
            "serialised twice, once inside its order and once as its own record; deselecting "
            "`orders.lines` (the last row) is the intended setup.",
        ],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 orders, 1 round")
    parser.add_argument("--profile", action="store_true", help="add a cProfile of order_lines")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the sandbox is stopped and the work folder removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    orders, rounds = (1_000, 1) if args.quick else (20_000, 3)
    with tempfile.TemporaryDirectory(prefix="tap-tradecloud-bench-") as tmp:
        section = order_lines_cpu(Path(tmp), orders, rounds, profile=args.profile)
    lines = [f"## {section.title}", "", "```", *section.commands, "```", ""]
    lines.append("| " + " | ".join(section.header) + " |")
    lines.append("|" + " --- |" * len(section.header))
    lines += ["| " + " | ".join(row) + " |" for row in section.rows]
    lines.append("")
    lines += [
        f"- {t.what}: {t.measured} (target {t.goal}): **{t.verdict}**" for t in section.targets
    ]
    lines += [f"\n{note}" for note in section.notes]
    if section.profile:
        lines += [
            "",
            "Profile (cProfile, top entries by own time):",
            "",
            "```",
            section.profile,
            "```",
        ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
