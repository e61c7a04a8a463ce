"""Benchmark 4: the webhook receiver's durable events/s and latency, against a non-writing app."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from typing import TYPE_CHECKING

import requests

from bench.common import (
    BENCH,
    BIN,
    PYTHON,
    Section,
    Target,
    stop_process,
    top_entries,
)
from bench.webhook_load import percentile
from tap_tradecloud import spool
from tap_tradecloud.sandbox import free_port
from tap_tradecloud.spool.journal import DEFAULT_JOURNAL_BYTES, Journal

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TOKEN = "bench-webhook-token"
CONCURRENCY = 16
PACED_RATE = 100.0
THROUGHPUT_TARGET = 500.0
RATIO_TARGET = 0.8  # durable events/s against the same app with a writer that writes nothing
P99_TARGET_MS = 20.0
INSTANCE = "bench"
CLOSED_LOOP = f"closed loop, {CONCURRENCY} connections, median run"


def _env() -> dict[str, str]:
    return {**os.environ, "TRADECLOUD_WEBHOOK_TOKEN": TOKEN}


@contextlib.contextmanager
def serving(command: list[str], port: int, log: Path) -> Iterator[str]:
    """Start a receiver process; yield its webhook URL once /healthz answers 200."""
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=_env())
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                msg = f"{command[0]} exited: {log.read_text()[-2000:]}"
                raise RuntimeError(msg)
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                    break
            if time.monotonic() > deadline:
                msg = f"{command[0]} did not answer /healthz within 30 s"
                raise TimeoutError(msg)
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/webhooks/tradecloud"
    finally:
        stop_process(process)


def load(url: str, *args: str) -> dict[str, float]:
    command = [
        PYTHON,
        str(BENCH / "webhook_load.py"),
        url,
        "--concurrency",
        str(CONCURRENCY),
        *args,
    ]
    result = subprocess.run(
        command, env=_env(), capture_output=True, text=True, timeout=200, check=True
    )
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def closed_loop_rounds(urls: list[str], events: int, rounds: int) -> list[list[dict[str, float]]]:
    """Closed-loop runs at 16 connections against each server in turn, ``rounds`` times.

    The servers take turns (the order flips every round), so a spell of noise on the shared
    machine falls on all of them alike.
    """
    for url in urls:
        load(url, "--events", str(min(200, events)))  # warm-up: connections, threads, page cache
    runs: list[list[dict[str, float]]] = [[] for _ in urls]
    for number in range(rounds):
        order = range(len(urls)) if number % 2 == 0 else reversed(range(len(urls)))
        for index in order:
            runs[index].append(load(urls[index], "--events", str(events)))
    return runs


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median events/s."""
    return sorted(runs, key=lambda run: run["events_per_second"])[len(runs) // 2]


def paired_ratio(runs: list[dict[str, float]], base_runs: list[dict[str, float]]) -> float:
    """The median of each round's events/s against the baseline's run in the same round.

    Runs next to each other share the machine's state of the moment, so a round's ratio is
    steadier than the ratio of two medians taken over minutes.
    """
    ratios = sorted(
        run["events_per_second"] / base["events_per_second"]
        for run, base in zip(runs, base_runs, strict=True)
    )
    return ratios[len(ratios) // 2]


def _profile_receiver(workdir: Path, receiver_cmd: list[str], events: int) -> str:
    """The receiver under cProfile (its event loop thread) during a closed-loop run."""
    out = workdir / "receiver.pstats"
    port = free_port()
    args = [*receiver_cmd[1:]]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--spool-dir") + 1] = str(workdir / "profile-spool")
    command = [PYTHON, "-m", "cProfile", "-o", str(out), receiver_cmd[0], *args]
    with serving(command, port, workdir / "receiver-profile.log") as url:
        load(url, "--events", str(events))
    return top_entries(out)


def create_latency_ms(
    location: str | Path, folder: str, body: bytes, count: int
) -> tuple[float, float]:
    """p50 and p99 ms of sequential create-only writes of ``body``, through the spool's store."""
    store = spool.open_store(location)
    times = []
    for number in range(count):
        started = time.perf_counter()
        store.create(f"{folder}/{number:020d}.event", body)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return percentile(times, 0.5), percentile(times, 0.99)


def segment_write_ms(folder: Path, count: int = 300) -> tuple[float, float]:
    """p50 and p99 ms of one 20 KB segment write (about ten 2 KB events) on this disk.

    A lone delivery's acknowledgement waits for one (the paced rows); under load groups go
    to the journal instead (journal_append_ms). Seen between 0.35 and 1.3 ms on the shared
    machines the benchmarks run on.
    """
    (folder / "events").mkdir(parents=True)
    return create_latency_ms(folder, "events", b"x" * 20_000, count)


def journal_append_ms(folder: Path, count: int = 300) -> tuple[float, float]:
    """p50 and p99 ms of one 20 KB journal append (pwrite and fdatasync), as under load."""
    folder.mkdir(parents=True)
    journal = Journal.open(folder / "journal", DEFAULT_JOURNAL_BYTES)
    assert journal is not None  # the benchmark's disk has room for 4 MiB
    times = []
    try:
        for number in range(count):
            if not journal.fits(20_000):
                journal.restart()
            started = time.perf_counter()
            journal.append(number + 1, 10, b"x" * 20_000)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        journal.close()
    times.sort()
    return percentile(times, 0.5), percentile(times, 0.99)


def receiver(workdir: Path, events: int, paced_seconds: float, rounds: int) -> Section:
    spool_dir = workdir / "receiver-spool"
    write_p50, write_p99 = segment_write_ms(workdir / "disk-probe")
    append_p50, append_p99 = journal_append_ms(workdir / "journal-probe")
    port = free_port()
    receiver_cmd = [
        str(BIN / "tap-tradecloud-webhook"),
        "--spool-dir", str(spool_dir), "--host", "127.0.0.1", "--port", str(port),
        "--instance-id", INSTANCE,
    ]  # fmt: skip
    base_port, copy_port = free_port(), free_port()
    baseline_cmd = [PYTHON, str(BENCH / "null_receiver.py"), str(base_port)]
    copy_cmd = [PYTHON, str(BENCH / "null_receiver.py"), str(copy_port)]
    with (
        serving(receiver_cmd, port, workdir / "receiver.log") as url,
        serving(baseline_cmd, base_port, workdir / "null-receiver.log") as base_url,
        serving(copy_cmd, copy_port, workdir / "null-receiver-copy.log") as copy_url,
    ):
        # The baseline runs between the receiver and its own copy in every round.
        runs, base_runs, copy_runs = closed_loop_rounds([url, base_url, copy_url], events, rounds)
        paced = load(url, "--rate", str(PACED_RATE), "--seconds", str(paced_seconds))
        base_paced = load(base_url, "--rate", str(PACED_RATE), "--seconds", str(paced_seconds))
    closed, base_closed = median_run(runs), median_run(base_runs)
    stored = sum(1 for _ in spool.iter_events(spool_dir, INSTANCE))
    segments = len(list((spool_dir / INSTANCE / "events").iterdir()))
    acknowledged = sum(int(run["acknowledged"]) for run in [*runs, paced]) + min(200, events)
    ratio = paired_ratio(runs, base_runs)
    control = paired_ratio(copy_runs, base_runs)
    missed = ratio < RATIO_TARGET or paced["p99_ms"] >= P99_TARGET_MS
    profile = _profile_receiver(workdir, receiver_cmd, events) if missed else ""

    def row(name: str, mode: str, r: dict[str, float]) -> tuple[str, ...]:
        return (
            name, mode, f"{int(r['acknowledged']):,}", f"{int(r['failed'])}",
            f"{r['events_per_second']:,.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
            f"{r['max_ms']:.1f}",
        )  # fmt: skip

    return Section(
        title="4. Webhook receiver: 2 KB events, fsync on, 16 connections on loopback",
        commands=[
            "TRADECLOUD_WEBHOOK_TOKEN=... " + " ".join(receiver_cmd),
            "TRADECLOUD_WEBHOOK_TOKEN=... python bench/null_receiver.py PORT   # baseline",
            f"python bench/webhook_load.py URL --concurrency {CONCURRENCY} --events 200  # warm-up",
            "python bench/null_receiver.py PORT2   # a second copy of the baseline: the control",
            f"python bench/webhook_load.py URL --concurrency {CONCURRENCY} --events {events}"
            f"   # {rounds} rounds, receiver, baseline and copy in turn",
            f"python bench/webhook_load.py URL --concurrency {CONCURRENCY} "
            f"--rate {PACED_RATE:.0f} --seconds {paced_seconds:.0f}",
        ],
        header=(
            "server",
            "load",
            "acknowledged",
            "failed",
            "events/s",
            "p50 ms",
            "p99 ms",
            "max ms",
        ),
        rows=[
            row("receiver (spool, fsync)", CLOSED_LOOP, closed),
            row("receiver (spool, fsync)", f"paced {PACED_RATE:.0f}/s", paced),
            row(
                "baseline (writes nothing)", "closed loop, 16 connections, median run", base_closed
            ),
            row("baseline (writes nothing)", f"paced {PACED_RATE:.0f}/s", base_paced),
        ],
        targets=[
            Target(
                "durable events/s at 16 connections, against the baseline "
                "(median of the rounds' ratios)",
                f"{ratio:.2f}x (median runs {closed['events_per_second']:,.0f} against "
                f"{base_closed['events_per_second']:,.0f}; the baseline's own copy read "
                f"{control:.2f}x)",
                f">= {RATIO_TARGET:.1f}x and >= {THROUGHPUT_TARGET:.0f}/s",
                ratio >= RATIO_TARGET
                and closed["events_per_second"] >= THROUGHPUT_TARGET
                and closed["failed"] == 0,
            ),
            Target(
                f"p99 latency at {PACED_RATE:.0f} events/s",
                f"{paced['p99_ms']:.1f} ms (baseline {base_paced['p99_ms']:.1f} ms)",
                f"< {P99_TARGET_MS:.0f} ms",
                paced["p99_ms"] < P99_TARGET_MS and paced["failed"] == 0,
            ),
            Target(
                "acknowledged events found in the spool",
                f"{stored:,} events in {segments:,} segments for {acknowledged:,} acknowledgements",
                "equal",
                stored == acknowledged,
            ),
        ],
        profile=profile,
        notes=[
            f"The disk during this run: one 20 KB segment write (unnamed file, fsync, link, "
            f"folder fsync) took p50 {write_p50:.2f} ms, p99 {write_p99:.2f} ms; one 20 KB "
            f"journal append (pwrite, fdatasync) p50 {append_p50:.2f} ms, p99 "
            f"{append_p99:.2f} ms. Under load the receiver gathers the requests that arrive "
            "together on its event loop, appends them to the partition's journal right there "
            "and acknowledges them once that is durable; a thread moves the journal's groups "
            "into one segment every 50 ms. A lone delivery (the paced rows) waits for its own "
            "segment write.",
            "Before the journal (2026-11-30, the same code otherwise) this benchmark read "
            "0.63-0.80x: every acknowledgement waited for a segment write, which under load "
            "took 0.9-1.3 ms (two file-system journal commits) against 0.5 ms on an idle disk. "
            "With the journal written by the committer thread it read 0.73-0.89x; appending on "
            "the event loop (no thread hand-over each way) gave 0.80-0.86x in five runs and "
            "0.88x against 0.83x in a paired run of both versions.",
            "Closed-loop events/s of every round: receiver "
            + ", ".join(f"{run['events_per_second']:,.0f}" for run in runs)
            + "; baseline "
            + ", ".join(f"{run['events_per_second']:,.0f}" for run in base_runs)
            + "; the baseline's copy "
            + ", ".join(f"{run['events_per_second']:,.0f}" for run in copy_runs)
            + ". The copy is the same program as the baseline: how far its ratio strays "
            "from 1.00x is how finely this run can measure.",
            "The load generator is one Python process with a lean asyncio HTTP/1.1 client "
            "(about 0.14 ms of CPU per event, bodies included). Until 2026-11-30 it used "
            "aiohttp's client and built each body line by line (about 0.45 ms per event): on "
            "2 shared cores that capped the baseline near the receiver's rate, and the ratio "
            "read 0.90x where it is about 0.7x. Latency is from send (closed loop) or from "
            "the moment the event was due (paced).",
        ],
    )
