"""Benchmarks 1-3: the orders stream's throughput, request count and memory against the sandbox."""

from __future__ import annotations

import decimal
import itertools
import json
import os
from typing import TYPE_CHECKING

from bench.common import (
    BENCH,
    BIN,
    PYTHON,
    SANDBOX_PASSWORD,
    SANDBOX_USER,
    START_DATE,
    Measured,
    Section,
    Target,
    median,
    run_measured,
    sandbox,
    top_entries,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

REALISTIC_LINES = (8, 12)
MEMORY_LINES = (2, 4)  # the sandbox holds 50,000 orders in memory; the same shape for both sizes
THROUGHPUT_TARGET = 1.5
MEMORY_GROWTH_TARGET = 0.10
#: Where the tap polls orders by default (`polling_api: poll`).
ORDERS_PATH = "/v2/order-search/poll"
REQUESTS_PER_100_TARGET = 1.0  # issue 6; the tap needs ~1.01 by design (see the notes)


def tap_config(workdir: Path, api_url: str, name: str = "tap-config.json", **extra: object) -> Path:
    config = {
        "api_url": api_url,
        "username": SANDBOX_USER,
        "password": SANDBOX_PASSWORD,
        "start_date": START_DATE,
        "max_requests_per_second": 1000,
        **extra,
    }
    path = workdir / name
    path.write_text(json.dumps(config))
    return path


def tap_command(config: Path, catalog: Path | None = None) -> list[str]:
    command = [str(BIN / "tap-tradecloud"), "--config", str(config)]
    return [*command, "--catalog", str(catalog)] if catalog else command


def catalog(workdir: Path, config: Path, streams: set[str], *, lines: bool) -> Path:
    """The discovered catalog with ``streams`` selected (and ``orders.lines`` or not)."""
    discovered = workdir / "discovered.json"
    if not discovered.exists():
        run_measured([*tap_command(config), "--discover"], stdout=discovered)
    entries = select(json.loads(discovered.read_text()), streams, lines=lines)
    path = workdir / f"catalog-{len(list(workdir.glob('catalog-*')))}.json"
    path.write_text(json.dumps(entries))
    return path


def select(catalog: dict, streams: set[str], *, lines: bool) -> dict:
    """Mark ``streams`` selected in a discovered catalog, the others not; ``orders.lines`` as
    ``lines`` says."""
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] in streams
            if entry["breadcrumb"] == ["properties", "lines"] and stream["stream"] == "orders":
                entry["metadata"]["selected"] = lines
    return catalog


def run_tap(workdir: Path, config: Path, catalog: Path | None = None) -> Measured:
    return run_measured(tap_command(config, catalog), log=workdir / "tap.log")


def baseline_command(api_url: str) -> list[str]:
    return [PYTHON, str(BENCH / "baseline_client.py"), api_url, SANDBOX_USER, START_DATE]


def run_baseline(workdir: Path, api_url: str) -> Measured:
    env = {**os.environ, "PASSWORD": SANDBOX_PASSWORD}
    return run_measured(baseline_command(api_url), log=workdir / "baseline.log", env=env)


def profile_top(workdir: Path, command: list[str], entries: int = 20) -> str:
    """cProfile of ``command`` (a console script run in this interpreter), top by own time."""
    out = workdir / "profile.pstats"
    run_measured(
        [PYTHON, "-m", "cProfile", "-o", str(out), *command],
        log=workdir / "profile.log",
    )
    return top_entries(out, entries)


def throughput_and_requests(workdir: Path, orders: int, rounds: int) -> list[Section]:
    """Benchmarks 1 and 2: the tap and the baseline, alternating, against one sandbox."""
    with sandbox(workdir, orders, REALISTIC_LINES) as sb:
        config = tap_config(workdir, sb.api_url)
        # The baseline writes orders with their lines and nothing else: so does the tap here.
        orders_only = catalog(workdir, config, {"orders"}, lines=True)
        taps: list[Measured] = []
        bases: list[Measured] = []
        counts: dict[str, int] = {}
        for round_ in range(rounds):
            order = ("tap", "baseline") if round_ % 2 == 0 else ("baseline", "tap")
            for who in order:
                if who == "tap":
                    position = sb.log_position()
                    taps.append(run_tap(workdir, config, orders_only))
                    counts = counts or sb.request_counts(position)
                else:
                    bases.append(run_baseline(workdir, sb.api_url))
        throughput = _throughput_section(orders, rounds, taps, bases, sb.command, config)
        if throughput.targets and not all(t.met for t in throughput.targets):
            throughput.profile = profile_top(workdir, tap_command(config, orders_only))
    requests = _requests_section(orders, counts)
    return [throughput, requests]


def _throughput_section(
    orders: int,
    rounds: int,
    taps: list[Measured],
    bases: list[Measured],
    sandbox_command: list[str],
    config: Path,
) -> Section:
    def row(name: str, runs: list[Measured]) -> tuple[str, ...]:
        wall, cpu = median([r.wall for r in runs]), median([r.cpu for r in runs])
        walls = ", ".join(f"{r.wall:.2f}" for r in runs)
        return (
            name,
            f"{orders / wall:,.0f}",
            f"{cpu / orders * 1000:.3f}",
            f"{wall:.2f} ({walls})",
        )

    low, high = REALISTIC_LINES
    wall_ratio = median([r.wall for r in taps]) / median([r.wall for r in bases])
    cpu_ratio = median([r.cpu for r in taps]) / median([r.cpu for r in bases])
    return Section(
        title=f"1. Tap throughput: {orders:,} orders of {low}-{high} lines",
        commands=[
            " ".join(sandbox_command),
            f"tap-tradecloud --config {config.name} --catalog CATALOG > /dev/null   # "
            f"{config.name}: api_url, sandbox credentials, start_date, "
            "max_requests_per_second=1000; CATALOG: `orders` (with `lines`) only, as the baseline",
            "PASSWORD=... python bench/baseline_client.py API_URL USER START > /dev/null",
            f"{rounds} rounds, the order alternating (tap first in odd rounds); medians",
        ],
        header=("client", "orders/s", "CPU s per 1,000 orders", "wall s, median (each round)"),
        rows=[row("tap-tradecloud", taps), row("baseline (requests + json.dumps)", bases)],
        targets=[
            Target(
                "tap wall time / baseline wall time",
                f"{wall_ratio:.2f}x",
                f"<= {THROUGHPUT_TARGET}x",
                wall_ratio <= THROUGHPUT_TARGET,
            ),
            Target(
                "tap CPU time / baseline CPU time",
                f"{cpu_ratio:.2f}x",
                f"<= {THROUGHPUT_TARGET}x",
                cpu_ratio <= THROUGHPUT_TARGET,
            ),
        ],
        notes=[
            "Wall time and CPU time are of the client process alone (its `wait4` rusage), "
            "Python start-up and imports included. The sandbox runs in its own process; "
            "it builds each page from its in-memory store, and on 2 shared cores its serving "
            "speed bounds both clients' wall time, so the CPU ratio is the sharper figure.",
        ],
    )


def _requests_section(orders: int, counts: dict[str, int]) -> Section:
    searches = counts.get(ORDERS_PATH, 0)
    logins = counts.get("/v2/authentication/login", 0)
    per_100 = searches / orders * 100
    return Section(
        title="2. API requests",
        commands=["counted from the sandbox's request log (one stderr line per request)"],
        header=("run", "orders", "poll requests", "per 100 orders", "logins", "other requests"),
        rows=[_count_row(f"throughput run ({orders:,} orders)", orders, counts)],
        targets=[
            Target(
                f"poll requests per 100 orders ({orders:,} orders)",
                f"{per_100:.3f}",
                f"{REQUESTS_PER_100_TARGET} (plus one login)",
                per_100 <= REQUESTS_PER_100_TARGET,
            ),
            Target("logins per run", str(logins), "1", logins == 1),
        ],
        notes=[
            "Each follow-up page asks for 100 orders starting one order early: the first must "
            "be the last one already read, which is how the paginator notices an order that "
            "left the anchor timestamp while paging (README, `orders`). So 99 new orders "
            "per page after the first: 1.01 requests per 100 orders. This misses the 1.0 target by "
            "about 1.5% on purpose: without the overlap record, an order updated while its "
            "timestamp group is being paged shifts the group's later offsets and one order is "
            "skipped for good (tests/test_tap_scenarios.py covers that case). Tradecloud caps "
            "`limit` at 100, so the check cannot ride on a bigger page.",
        ],
    )


def _count_row(name: str, orders: int, counts: dict[str, int]) -> tuple[str, ...]:
    searches = counts.get(ORDERS_PATH, 0)
    logins = counts.get("/v2/authentication/login", 0)
    others = {k: v for k, v in counts.items() if k not in {ORDERS_PATH, "/v2/authentication/login"}}
    other_text = ", ".join(f"{k} {v}" for k, v in sorted(others.items())) or "none"
    return (
        name,
        f"{orders:,}",
        str(searches),
        f"{searches / orders * 100:.3f}",
        str(logins),
        other_text,
    )


def backlog_requests(workdir: Path, orders: int, section: Section) -> None:
    """Benchmark 2, continued: a backlog deeper than Tradecloud's 10,000-result window."""
    with sandbox(workdir, orders, (1, 2)) as sb:
        config = tap_config(workdir, sb.api_url, name="tap-backlog.json")
        orders_only = catalog(workdir, config, {"orders"}, lines=True)
        records = workdir / "backlog.jsonl"
        run_measured(tap_command(config, orders_only), stdout=records, log=workdir / "tap.log")
        counts = sb.request_counts()
        baseline_records = workdir / "backlog-baseline.jsonl"
        env = {**os.environ, "PASSWORD": SANDBOX_PASSWORD}
        run_measured(
            baseline_command(sb.api_url),
            stdout=baseline_records,
            log=workdir / "baseline.log",
            env=env,
        )
    emitted_ids = [str(record["id"]) for record in _records(records)]
    same_as_baseline = all(
        ours == theirs
        for ours, theirs in itertools.zip_longest(_records(records), _records(baseline_records))
    )
    section.rows.append(_count_row(f"backlog ({orders:,} orders, lines 1-2)", orders, counts))
    searches = counts.get(ORDERS_PATH, 0)
    section.targets.append(
        Target(
            f"poll requests per 100 orders ({orders:,}-order backlog)",
            f"{searches / orders * 100:.3f}",
            f"<= {REQUESTS_PER_100_TARGET}",
            searches / orders * 100 <= REQUESTS_PER_100_TARGET,
        )
    )
    section.targets.append(
        Target(
            "backlog orders emitted once each (past the 10,000-result window)",
            f"{len(set(emitted_ids)):,} distinct of {len(emitted_ids):,} records",
            f"{orders:,} of {orders:,}",
            len(emitted_ids) == len(set(emitted_ids)) == orders,
        )
    )
    section.targets.append(
        Target(
            "backlog records equal to the baseline client's, in order",
            "equal" if same_as_baseline else "DIFFERENT",
            "equal",
            same_as_baseline,
        )
    )
    records.unlink()
    baseline_records.unlink()


def _records(path: Path) -> Iterator[dict[str, object]]:
    """The ``record`` of every RECORD line, decimals kept exact, one at a time."""
    with path.open("rb") as file:
        for line in file:
            message = json.loads(line, parse_float=decimal.Decimal)
            if message["type"] == "RECORD":
                yield message["record"]


def memory(workdir: Path, sizes: tuple[int, int]) -> Section:
    """Benchmark 3: the tap's peak RSS at two sizes of the same shape."""
    peaks: list[float] = []
    commands: list[str] = []
    for size in sizes:
        with sandbox(workdir, size, MEMORY_LINES) as sb:
            config = tap_config(workdir, sb.api_url, name=f"tap-memory-{size}.json")
            peaks.append(run_tap(workdir, config).max_rss_mb)
            commands.append(" ".join(sb.command))
    growth = peaks[1] / peaks[0] - 1
    return Section(
        title="3. Tap memory",
        commands=[*commands, "tap-tradecloud --config CONFIG > /dev/null   # peak RSS: its VmHWM"],
        header=("orders", "lines per order", "peak RSS MiB"),
        rows=[
            (f"{size:,}", f"{MEMORY_LINES[0]}-{MEMORY_LINES[1]}", f"{peak:.1f}")
            for size, peak in zip(sizes, peaks, strict=True)
        ],
        targets=[
            Target(
                f"RSS growth from {sizes[0]:,} to {sizes[1]:,} orders",
                f"{growth:+.1%}",
                f"< {MEMORY_GROWTH_TARGET:.0%}",
                growth < MEMORY_GROWTH_TARGET,
            )
        ],
    )
