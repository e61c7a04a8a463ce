"""Benchmarks 6 and 8: ``meltano run tap-tradecloud target-postgres`` as shipped, into PostgreSQL.

6 times the shipped project (meltano.yml) at two sizes, with the tap's throttle off and at
Tradecloud's 10 requests/s, against the same tap alone to /dev/null in the same run, and reads the
peak memory of the tap and the target inside each pipeline. 8 compares target-postgres settings
and the shape of ``orders.lines`` with ``tap | target-postgres`` on one sandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import psycopg

from bench.common import (
    BIN,
    REPO,
    SANDBOX_PASSWORD,
    Measured,
    Section,
    Target,
    median,
    run_measured,
    sandbox,
)
from bench.tap_bench import REALISTIC_LINES, select, tap_config

if TYPE_CHECKING:
    from collections.abc import Iterator

MELTANO = REPO / ".venv-meltano" / "bin" / "meltano"
PLUGIN_BIN = {
    "tap": REPO / ".meltano" / "extractors" / "tap-tradecloud" / "venv" / "bin" / "tap-tradecloud",
    "target": REPO
    / ".meltano"
    / "loaders"
    / "target-postgres"
    / "venv"
    / "bin"
    / "target-postgres",
}
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
CEILING = 1000.0  # Tradecloud: 10 requests/s x 100 orders
THROTTLE_OFF_TARGET = 0.9  # of the ceiling
THROTTLED_TARGET = 1.15  # pipeline wall / tap alone wall
MEMORY_GROWTH_TARGET = 0.10
THROTTLES = {"off": 1000, "10 req/s": 10}


@dataclass(frozen=True)
class PipelineRun:
    measured: Measured
    peak_mb: dict[str, float]  # "tap" / "target" -> peak RSS of that process inside the run
    tap_started_after: float  # seconds from `meltano run` starting to the tap running
    loaded: int


def available() -> str | None:
    """Why the pipeline benchmarks cannot run here, or None."""
    if not MELTANO.exists() or not all(path.exists() for path in PLUGIN_BIN.values()):
        return f"{MELTANO} or the Meltano plugins are missing (run `make install`)."
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return None
    except psycopg.OperationalError:
        return "PostgreSQL is not answering on 127.0.0.1:5432."


def child_env(**extra: str) -> dict[str, str]:
    """The caller's environment without settings that would leak in, plus ``extra``.

    PYTHONDONTWRITEBYTECODE is dropped: with it every process compiles all its imports on each
    start (seconds for Meltano), which no installed pipeline does.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TAP_TRADECLOUD_", "TARGET_POSTGRES_", "MELTANO_"))
        and key != "PYTHONDONTWRITEBYTECODE"
    }
    return {**env, **extra}


def warm_bytecode() -> None:
    """Compile every virtual environment once, as their first real run would."""
    for venv in (REPO / ".venv-meltano", *(path.parents[1] for path in PLUGIN_BIN.values())):
        for site in venv.glob("lib/python3*/site-packages"):
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "compileall", "-q", "-j", "2", str(site)],
                env=child_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )


@contextlib.contextmanager
def scratch_schema(label: str) -> Iterator[str]:
    schema = f"bench_{label}_{os.getpid()}_{time.monotonic_ns()}"
    try:
        yield schema
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'drop schema if exists "{schema}" cascade')


def count_orders(schema: str) -> int:
    with psycopg.connect(PG_DSN) as conn:
        row = conn.execute(f'select count(*) from "{schema}".orders').fetchone()
    return int(row[0]) if row else 0


def run_with_children(
    cmd: list[str], *, env: dict[str, str], log: Path, timeout: float = 1800, **kwargs: object
) -> tuple[Measured, dict[str, float], float]:
    """``run_measured``, the peak RSS of the tap and the target it starts, and when the tap began.

    Peak RSS is each process's VmHWM, sampled every 50 ms.
    """
    peaks = {"tap": 0.0, "target": 0.0}
    seen_at: dict[str, float] = {}
    started = time.perf_counter()
    stop = False

    def sample(pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(pid).children(recursive=True):
                with contextlib.suppress(psutil.Error, OSError):
                    command = " ".join(child.cmdline())
                    for role, path in PLUGIN_BIN.items():
                        if path.name in command:
                            seen_at.setdefault(role, time.perf_counter() - started)
                            peaks[role] = max(peaks[role], _vm_hwm_mb(child.pid))

    def sampler(process_pid: list[int]) -> None:
        while not stop:
            if process_pid:
                sample(process_pid[0])
            time.sleep(0.05)

    pid_box: list[int] = []
    thread = threading.Thread(target=sampler, args=(pid_box,), daemon=True)
    thread.start()
    try:
        measured = run_measured(
            cmd, env=env, log=log, timeout=timeout, on_start=pid_box.append, **kwargs
        )
    finally:
        stop = True
        thread.join()
    return measured, peaks, seen_at.get("tap", 0.0)


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def meltano_run(workdir: Path, api_url: str, orders: int, rate: int, tag: str) -> PipelineRun:
    """One ``meltano run`` of the shipped project into a new schema, with a new Meltano state."""
    spool = workdir / "e2e-spool"
    spool.mkdir(exist_ok=True)
    with scratch_schema("e2e") as schema:
        env = child_env(
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
            MELTANO_DATABASE_URI=f"sqlite:///{workdir / f'meltano-{tag}.db'}",
            MELTANO_ENVIRONMENT="sandbox",
            TAP_TRADECLOUD_API_URL=api_url,
            TAP_TRADECLOUD_PASSWORD=SANDBOX_PASSWORD,
            TAP_TRADECLOUD_SPOOL_DIR=str(spool),
            TAP_TRADECLOUD_MAX_REQUESTS_PER_SECOND=str(rate),
            TARGET_POSTGRES_DATABASE="test",
            TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=schema,
        )
        measured, peaks, tap_started = run_with_children(
            [str(MELTANO), "run", "tap-tradecloud", "target-postgres"],
            env=env,
            log=workdir / "meltano.log",
        )
        return PipelineRun(measured, peaks, tap_started, count_orders(schema))


def tap_alone(workdir: Path, api_url: str, rate: int) -> Measured:
    config = tap_config(workdir, api_url, name=f"e2e-tap-{rate}.json", max_requests_per_second=rate)
    return run_measured(
        [str(PLUGIN_BIN["tap"]), "--config", str(config)],
        env=child_env(),
        log=workdir / "tap.log",
    )


def end_to_end(workdir: Path, sizes: tuple[int, ...], rounds: tuple[int, ...]) -> Section:
    """Benchmark 6."""
    title = "6. The shipped pipeline: meltano run tap-tradecloud target-postgres"
    if reason := available():
        return Section(title=title, notes=[f"SKIPPED: {reason}"])
    warm_bytecode()
    results: dict[tuple[int, str], tuple[list[PipelineRun], list[Measured]]] = {}
    commands: list[str] = []
    for size, size_rounds in zip(sizes, rounds, strict=True):
        with sandbox(workdir, size, REALISTIC_LINES, max_runtime=3600) as sb:
            commands.append(" ".join(sb.command))
            for throttle, rate in THROTTLES.items():
                pipelines: list[PipelineRun] = []
                alone: list[Measured] = []
                for round_ in range(size_rounds):
                    tag = f"{size}-{rate}-{round_}"
                    if round_ % 2 == 0:
                        pipelines.append(meltano_run(workdir, sb.api_url, size, rate, tag))
                        alone.append(tap_alone(workdir, sb.api_url, rate))
                    else:
                        alone.append(tap_alone(workdir, sb.api_url, rate))
                        pipelines.append(meltano_run(workdir, sb.api_url, size, rate, tag))
                results[size, throttle] = (pipelines, alone)
    return _pipeline_section(title, sizes, rounds, results, commands)


def _pipeline_section(
    title: str,
    sizes: tuple[int, ...],
    rounds: tuple[int, ...],
    results: dict[tuple[int, str], tuple[list[PipelineRun], list[Measured]]],
    commands: list[str],
) -> Section:
    rows: list[tuple[str, ...]] = []
    targets: list[Target] = []
    for (size, throttle), (pipelines, alone) in results.items():
        wall = median([p.measured.wall for p in pipelines])
        alone_wall = median([a.wall for a in alone])
        ratio = wall / alone_wall
        each = ", ".join(f"{p.measured.wall:.1f}" for p in pipelines)
        rows.append(
            (
                f"{size:,}",
                throttle,
                f"{wall:.1f} ({each})",
                f"{size / wall:,.0f}",
                f"{size / wall / CEILING:.2f}x",
                f"{alone_wall:.1f}",
                f"{ratio:.2f}x",
                f"{max(p.peak_mb['tap'] for p in pipelines):.0f}",
                f"{max(p.peak_mb['target'] for p in pipelines):.0f}",
                f"{median([p.tap_started_after for p in pipelines]):.1f}",
            )
        )
        loaded_all = all(p.loaded == size for p in pipelines)
        targets.append(
            Target(
                f"{size:,} orders, throttle {throttle}: every order loaded, every run",
                ", ".join(f"{p.loaded:,}" for p in pipelines),
                f"{size:,}",
                loaded_all,
            )
        )
        if throttle == "off":
            share = size / wall / CEILING
            targets.append(
                Target(
                    f"{size:,} orders, throttle off: pipeline orders/s / Tradecloud's 1,000/s",
                    f"{share:.2f}x ({size / wall:,.0f}/s; tap alone {size / alone_wall:,.0f}/s)",
                    f">= {THROTTLE_OFF_TARGET}x",
                    share >= THROTTLE_OFF_TARGET,
                )
            )
        else:
            targets.append(
                Target(
                    f"{size:,} orders, 10 req/s: pipeline wall / tap alone wall",
                    f"{ratio:.2f}x ({wall:.1f} s / {alone_wall:.1f} s)",
                    f"<= {THROTTLED_TARGET}x",
                    ratio <= THROTTLED_TARGET,
                )
            )
    small, large = sizes[0], sizes[-1]
    for role in ("tap", "target"):
        peak = {
            size: max(p.peak_mb[role] for key, (runs, _) in results.items() if key[0] == size
                      for p in runs)
            for size in (small, large)
        }  # fmt: skip
        growth = peak[large] / peak[small] - 1 if peak[small] else float("inf")
        targets.append(
            Target(
                f"peak RSS of the {role} inside meltano run, {small:,} -> {large:,} orders",
                f"{peak[small]:.0f} -> {peak[large]:.0f} MiB ({growth:+.1%})",
                f"within {MEMORY_GROWTH_TARGET:.0%}",
                abs(growth) <= MEMORY_GROWTH_TARGET,
            )
        )
    return Section(
        title=title,
        commands=[
            *commands,
            "MELTANO_DATABASE_URI=sqlite:///NEW.db MELTANO_ENVIRONMENT=sandbox "
            "TAP_TRADECLOUD_API_URL=SANDBOX TAP_TRADECLOUD_MAX_REQUESTS_PER_SECOND=1000|10 "
            "TARGET_POSTGRES_DATABASE=test TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=NEW "
            ".venv-meltano/bin/meltano run tap-tradecloud target-postgres",
            ".meltano/extractors/tap-tradecloud/venv/bin/tap-tradecloud --config CONFIG "
            "> /dev/null   # the same tap and throttle, alone",
            f"rounds per size {', '.join(map(str, rounds))}; pipeline and tap alone alternate "
            "(pipeline first in even rounds); medians; every pipeline run starts with no state "
            "and a new schema",
        ],
        header=(
            "orders",
            "throttle",
            "pipeline wall s, median (each)",
            "orders/s",
            "of 1,000/s",
            "tap alone wall s",
            "pipeline / tap alone",
            "tap peak MiB",
            "target peak MiB",
            "Meltano start-up s",
        ),
        rows=rows,
        targets=targets,
        notes=[
            "The pipeline is the repository's meltano.yml as shipped (target-postgres with "
            "validate_records false, use_copy true, batch_size_rows 2000, orders.lines as one "
            "jsonb). Orders have 8-12 lines (about 19 KB of JSON each). "
            "Peak RSS is each process's VmHWM, "
            "sampled every 50 ms while meltano run runs. Child processes run without "
            "PYTHONDONTWRITEBYTECODE (set on this machine), with every virtual environment "
            "compiled once beforehand, as an installed pipeline runs. Meltano start-up is the "
            "time from `meltano run` starting to the tap process running: a fixed cost of every "
            "run that the tap alone does not pay, included in the pipeline's wall time.",
        ],
    )


# Benchmark 8: target-postgres settings and the shape of `lines`, tap | target-postgres.

#: The shape of what the tap sends: `orders` with `lines` as discovered (jsonb[]), `orders` with
#: `lines` as one jsonb, or the shipped selection (`orders` without `lines`, plus `order_lines`
#: with its schedules as one jsonb, as meltano.yml's `select` and `schema` rules make it).
SHAPES = ("orders, lines jsonb[]", "orders, lines jsonb", "shipped selection")
SHIPPED_SETTINGS: dict[str, object] = {
    "validate_records": False,
    "use_copy": True,
    "batch_size_rows": 2000,
    "add_record_metadata": True,
}
VARIANTS: dict[str, tuple[dict[str, object], str]] = {
    "before (validate, INSERT, lines jsonb[], 10,000 rows)": (
        {"validate_records": True, "use_copy": False, "batch_size_rows": 10000},
        SHAPES[0],
    ),
    "validate off": ({"validate_records": False, "batch_size_rows": 10000}, SHAPES[0]),
    "validate off, COPY": (
        {"validate_records": False, "use_copy": True, "batch_size_rows": 10000},
        SHAPES[0],
    ),
    "validate off, COPY, lines jsonb": (
        {"validate_records": False, "use_copy": True, "batch_size_rows": 10000},
        SHAPES[1],
    ),
    "the same, 2,000 rows per load": (SHIPPED_SETTINGS, SHAPES[1]),
    "shipped: + order_lines, orders without lines": (SHIPPED_SETTINGS, SHAPES[2]),
    "shipped, no _sdc columns": (
        {**SHIPPED_SETTINGS, "add_record_metadata": False, "activate_version": False},
        SHAPES[2],
    ),
    "shipped, 10,000 rows per load": ({**SHIPPED_SETTINGS, "batch_size_rows": 10000}, SHAPES[2]),
}
SHIPPED = "shipped: + order_lines, orders without lines"


def _catalog(workdir: Path, config: Path, shape: str) -> Path:
    discovered = subprocess.run(
        [str(PLUGIN_BIN["tap"]), "--config", str(config), "--discover"],
        capture_output=True,
        check=True,
        env=child_env(),
    ).stdout
    shipped = shape == SHAPES[2]
    streams = {"orders", "order_lines"} if shipped else {"orders"}
    catalog = select(json.loads(discovered), streams, lines=not shipped)
    one_jsonb = {"type": ["array", "null"]}
    for stream in catalog["streams"]:
        properties = stream["schema"]["properties"]
        if stream["tap_stream_id"] == "orders" and shape == SHAPES[1]:
            properties["lines"] = one_jsonb
        if stream["tap_stream_id"] == "order_lines":
            for schedule in ("deliverySchedule", "deliveryScheduleIncludingRequests"):
                properties[schedule] = one_jsonb
    path = workdir / f"catalog-{SHAPES.index(shape)}.json"
    path.write_text(json.dumps(catalog))
    return path


def _tap_to_target(
    workdir: Path,
    config: Path,
    catalog: Path,
    settings: dict[str, object],
    schema: str,
    wrapper: tuple[str, ...] = (),
) -> tuple[float, float]:
    """Wall seconds of ``tap | target-postgres`` and the target's CPU seconds."""
    target_config = workdir / "target.json"
    target_config.write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "port": 5432,
                "user": "postgres",
                "password": "unused",
                "database": "test",
                "default_target_schema": schema,
                **settings,
            }
        )
    )
    env = child_env()
    started = time.perf_counter()
    with (workdir / "tap.log").open("ab") as tap_log:
        tap = subprocess.Popen(
            [str(PLUGIN_BIN["tap"]), "--config", str(config), "--catalog", str(catalog)],
            stdout=subprocess.PIPE,
            stderr=tap_log,
            env=env,
        )
    try:
        target = run_measured(
            [*wrapper, str(PLUGIN_BIN["target"]), "--config", str(target_config)],
            stdin=tap.stdout,
            env=env,
            log=workdir / "target.log",
            timeout=1800,
        )
    finally:
        if tap.stdout:
            tap.stdout.close()
        tap.wait(timeout=60)
    return time.perf_counter() - started, target.cpu


def configurations(workdir: Path, orders: int, rounds: int) -> Section:
    """Benchmark 8: the same orders through target-postgres under each configuration."""
    title = f"8. target-postgres configurations: tap | target-postgres, {orders:,} orders"
    if reason := available():
        return Section(title=title, notes=[f"SKIPPED: {reason}"])
    warm_bytecode()
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpus: dict[str, list[float]] = {name: [] for name in VARIANTS}
    loaded: dict[str, int] = {}
    with sandbox(workdir, orders, REALISTIC_LINES, max_runtime=3600) as sb:
        config = tap_config(workdir, sb.api_url, name="configurations-tap.json")
        catalogs = {shape: _catalog(workdir, config, shape) for shape in SHAPES}
        for round_ in range(rounds):
            names = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
            for name in names:
                settings, shape = VARIANTS[name]
                with scratch_schema("cfg") as schema:
                    wall, cpu = _tap_to_target(workdir, config, catalogs[shape], settings, schema)
                    loaded[name] = count_orders(schema)
                walls[name].append(wall)
                cpus[name].append(cpu)
        profile = ""
        if orders / median(walls[SHIPPED]) < THROTTLE_OFF_TARGET * CEILING:
            profile = _profile_target(workdir, config, catalogs[SHAPES[2]], SHIPPED_SETTINGS)
    before = median(walls[next(iter(VARIANTS))])
    rows = [
        (
            name,
            f"{median(walls[name]):.1f}",
            f"{orders / median(walls[name]):,.0f}",
            f"{before / median(walls[name]):.2f}x",
            f"{median(cpus[name]):.1f}",
            f"{loaded[name]:,}",
        )
        for name in VARIANTS
    ]
    return Section(
        title=title,
        commands=[
            ".meltano/extractors/tap-tradecloud/venv/bin/tap-tradecloud --config CONFIG "
            "--catalog CATALOG | .meltano/loaders/target-postgres/venv/bin/target-postgres "
            "--config TARGET_CONFIG",
            "CATALOG: orders only, `lines` as discovered (jsonb[]) or as {type: [array, null]} "
            "(one jsonb); or the shipped selection: orders without `lines` plus order_lines "
            "(about 11 rows per order), schedules as one jsonb",
            f"{rounds} rounds, the order of the variants reversed every other round; medians",
        ],
        header=("configuration", "wall s", "orders/s", "speed-up", "target CPU s", "rows"),
        rows=rows,
        profile=profile,
        targets=[
            Target(
                f"{name}: every order loaded",
                f"{loaded[name]:,}",
                f"{orders:,}",
                loaded[name] == orders,
            )
            for name in VARIANTS
        ],
    )


def _profile_target(workdir: Path, config: Path, catalog: Path, settings: dict[str, object]) -> str:
    """Where target-postgres spends its time under the shipped settings (py-spy, all threads)."""
    spy = BIN / "py-spy"
    if not spy.exists():
        return "py-spy is not installed (pip install -e '.[dev]'): no profile."
    raw = workdir / "target-profile.txt"
    wrapper = (str(spy), "record", "--rate", "100", "--format", "raw", "--output", str(raw), "--")
    with scratch_schema("profile") as schema:
        _tap_to_target(workdir, config, catalog, settings, schema, wrapper)
    return summarise_stacks(raw.read_text())


#: Stages of target-postgres, by a function on the stack (the first that matches counts).
STAGES = (
    (
        "loading: jsonb values serialised (SDK serialize_json: simplejson, Decimal)",
        ".serialize_json",
    ),
    ("loading: COPY rows into PostgreSQL (psycopg)", "_do_copy"),
    ("loading: other SQL (temp table, upsert, schema checks)", "process_batch"),
    ("reading: JSON decoding of the Singer messages", ".deserialize_json"),
    ("reading: record processing (metadata, timestamps, conformance)", "_process_record_message"),
    ("reading: the rest of the message loop", "process_lines"),
    ("start-up: imports", "_find_and_load"),
)


def summarise_stacks(collapsed: str) -> str:
    """Shares of py-spy samples by stage, then the top functions by own samples."""
    stages: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        stage = next((name for name, marker in STAGES if marker in stack), "other (idle threads)")
        stages[stage] = stages.get(stage, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    if not total:
        return "no samples"
    lines = [f"{total} samples at 100 Hz over all threads of target-postgres", "", "by stage:"]
    lines += [
        f"  {count / total:6.1%}  {name}"
        for name, count in sorted(stages.items(), key=lambda item: -item[1])
    ]
    lines += ["", "top functions by own samples:"]
    lines += [
        f"  {count / total:6.1%}  {name[:110]}"
        for name, count in sorted(own.items(), key=lambda item: -item[1])[:15]
    ]
    return "\n".join(lines)
