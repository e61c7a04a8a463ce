"""Benchmark 5: the ``webhook_events`` stream reading a spool, against a plain reading loop."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import (
    BENCH,
    PYTHON,
    Measured,
    Section,
    Target,
    run_measured,
)
from bench.tap_bench import profile_top, select, tap_command

INSTANCE = "bench"
EVENTS_PER_SECOND_TARGET = 20_000.0  # issue 11: from either backend
MEMORY_GROWTH_TARGET = 0.10


def _webhook_events_only(workdir: Path, config: Path) -> Path:
    """The tap's catalog with only ``webhook_events`` selected."""
    discovered = workdir / "spool-discovered.json"
    run_measured([*tap_command(config), "--discover"], stdout=discovered, log=workdir / "tap.log")
    catalog = select(json.loads(discovered.read_text()), {"webhook_events"}, lines=False)
    path = workdir / "spool-catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def _fill(spool_dir: Path, count: int, workdir: Path) -> None:
    run_measured(
        [PYTHON, str(BENCH / "spool_fill.py"), str(spool_dir), INSTANCE, str(count)],
        log=workdir / "spool-fill.log",
        timeout=600,
    )


def spool_read(workdir: Path, sizes: tuple[int, int]) -> Section:
    taps: list[Measured] = []
    bases: list[Measured] = []
    configs: list[Path] = []
    catalog = Path()
    for size in sizes:
        spool_dir = workdir / f"spool-{size}"
        _fill(spool_dir, size, workdir)
        config = workdir / f"spool-tap-{size}.json"
        configs.append(config)
        config.write_text(
            json.dumps(
                {
                    "api_url": "http://127.0.0.1:9/v2",  # never called: POST events only
                    "username": "bench",
                    "password": "bench",
                    "spool_dir": str(spool_dir),
                    "spool_retention_hours": 0,
                }
            )
        )
        catalog = _webhook_events_only(workdir, config)
        taps.append(run_measured(tap_command(config, catalog), log=workdir / "tap.log"))
        bases.append(
            run_measured(
                [PYTHON, str(BENCH / "spool_baseline.py"), str(spool_dir), INSTANCE],
                log=workdir / "spool-baseline.log",
            )
        )
    big, small = sizes[1], sizes[0]
    rate = big / taps[1].wall
    base_rate = big / bases[1].wall
    growth = taps[1].max_rss_mb / taps[0].max_rss_mb - 1
    section = Section(
        title="5. Spool read: the webhook_events stream to /dev/null",
        commands=[
            "python bench/spool_fill.py SPOOL_DIR bench N   # set-up: SpoolWriter, 2 KB events",
            "tap-tradecloud --config CONFIG --catalog CATALOG > /dev/null   "
            "# spool_dir set, only webhook_events selected",
            "python bench/spool_baseline.py SPOOL_DIR bench > /dev/null   "
            "# iter_events + json.loads + json.dumps",
        ],
        header=("reader", "events", "events/s", "CPU s per 1,000 events", "peak RSS MiB"),
        rows=[
            (
                name,
                f"{size:,}",
                f"{size / run.wall:,.0f}",
                f"{run.cpu / size * 1000:.3f}",
                f"{run.max_rss_mb:.1f}",
            )
            for size, tap, base in zip(sizes, taps, bases, strict=True)
            for name, run in (("tap-tradecloud", tap), ("baseline loop", base))
        ],
        targets=[
            Target(
                f"tap events/s over {big:,} events",
                f"{rate:,.0f} ({rate / base_rate:.2f}x the baseline's {base_rate:,.0f})",
                f">= {EVENTS_PER_SECOND_TARGET:,.0f}",
                rate >= EVENTS_PER_SECOND_TARGET,
            ),
            Target(
                f"tap RSS growth from {small:,} to {big:,} events",
                f"{growth:+.1%}",
                f"< {MEMORY_GROWTH_TARGET:.0%}",
                growth < MEMORY_GROWTH_TARGET,
            ),
        ],
        notes=[
            "Set-up writes the events with fsync turned off in the filling process only "
            "(the read path is what is measured); the files are those the receiver writes.",
        ],
    )
    if not all(target.met for target in section.targets):
        # The smaller spool: a profile of the big one outlasts the time limit on a busy machine.
        section.profile = profile_top(workdir, tap_command(configs[0], catalog))
    return section
