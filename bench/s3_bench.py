"""Benchmark 9: the spool on S3 (SeaweedFS on loopback): PUT latency, two receivers, tap reads.

Everything in one run, each figure next to its target or baseline:
- obstore's sequential create-only PUT of a 2 KB object (the cost one segment pays);
- two receivers with different instance ids on one ``s3://`` spool, 8 connections each;
- the tap reading 10,000 and 100,000 events from the bucket, events/s and peak RSS;
- the reader behind 20 ms of added latency, 8 against 32 GETs ahead (``latency_read``).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
from typing import TYPE_CHECKING

from bench import latency_read
from bench.common import BENCH, BIN, PYTHON, Measured, Section, Target, run_measured
from bench.receiver_bench import TOKEN, create_latency_ms, serving
from bench.spool_bench import _webhook_events_only
from bench.tap_bench import tap_command
from bench.webhook_load import event_body
from tap_tradecloud import spool
from tap_tradecloud.sandbox import free_port
from tests.seaweedfs import SeaweedFS

if TYPE_CHECKING:
    from pathlib import Path

RECEIVER_TARGET = 1000.0
READ_TARGET = 20_000.0
MEMORY_GROWTH_TARGET = 0.10
CONNECTIONS_EACH = 8
PUTS = 500


def _put_latency(url: str) -> tuple[float, float]:
    """p50 and p99 ms of sequential create-only PUTs of a 2 KB object, through the spool."""
    return create_latency_ms(url, "latency", event_body(0), PUTS)


def _load(url: str, events: int) -> dict[str, float]:
    command = [
        PYTHON, str(BENCH / "webhook_load.py"), url,
        "--concurrency", str(CONNECTIONS_EACH), "--events", str(events),
    ]  # fmt: skip
    env = {**os.environ, "TRADECLOUD_WEBHOOK_TOKEN": TOKEN}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=True)
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def _two_receivers(workdir: Path, url: str, events: int) -> tuple[dict[str, float], int, str]:
    ports = {"edge-a": free_port(), "edge-b": free_port()}
    commands = {
        instance: [
            str(BIN / "tap-tradecloud-webhook"), "--spool-dir", url, "--host", "127.0.0.1",
            "--port", str(port), "--instance-id", instance,
        ]
        for instance, port in ports.items()
    }  # fmt: skip
    a, b = ports["edge-a"], ports["edge-b"]
    with (
        serving(commands["edge-a"], a, workdir / "s3-edge-a.log") as url_a,
        serving(commands["edge-b"], b, workdir / "s3-edge-b.log") as url_b,
    ):
        for warm in (url_a, url_b):
            _load(warm, 100)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(_load, (url_a, url_b), (events, events)))
    acknowledged = sum(run["acknowledged"] for run in runs)
    seconds = max(run["seconds"] for run in runs)
    combined = {
        "acknowledged": acknowledged,
        "failed": sum(run["failed"] for run in runs),
        "events_per_second": acknowledged / seconds,
        "p50_ms": max(run["p50_ms"] for run in runs),
        "p99_ms": max(run["p99_ms"] for run in runs),
    }
    stored = sum(1 for instance in ports for _ in spool.iter_events(url, instance))
    return combined, stored, " ".join(commands["edge-a"])


def _read(workdir: Path, url: str, size: int) -> Measured:
    run_measured(
        [PYTHON, str(BENCH / "spool_fill.py"), url, "bench", str(size)],
        log=workdir / "s3-fill.log",
        timeout=900,
    )
    config = workdir / f"s3-tap-{size}.json"
    settings = {
        "api_url": "http://127.0.0.1:9/v2",  # never called: POST events only
        "username": "bench",
        "password": "bench",
        "spool_dir": url,
        "spool_retention_hours": 0,
    }
    config.write_text(json.dumps(settings))
    catalog = _webhook_events_only(workdir, config)
    return run_measured(tap_command(config, catalog), log=workdir / "s3-tap.log")


def s3_spool(workdir: Path, receiver_events: int, read_sizes: tuple[int, int]) -> Section:
    server = SeaweedFS(workdir / "seaweedfs").start()
    saved = dict(os.environ)
    os.environ.update(server.env())
    try:
        bucket = server.create_bucket()
        p50, p99 = _put_latency(f"s3://{bucket}/put")
        receivers, stored, command = _two_receivers(
            workdir, f"s3://{bucket}/receivers", receiver_events
        )
        reads = [_read(workdir, f"s3://{bucket}/read-{size}", size) for size in read_sizes]
        behind_latency = latency_read.reads_behind_latency(bucket, server.s3, workdir)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()
    small, big = read_sizes
    rate = big / reads[1].wall
    growth = reads[1].max_rss_mb / reads[0].max_rss_mb - 1
    acknowledged = int(receivers["acknowledged"]) + 2 * 100  # and the warm-up
    return Section(
        title="9. Spool on S3 (SeaweedFS 4.48 on loopback, obstore 0.12.1)",
        commands=[
            "weed server -ip=127.0.0.1 -s3 -s3.port=P ...   # started by tests/seaweedfs.py",
            "AWS_ENDPOINT_URL=http://127.0.0.1:P AWS_ACCESS_KEY_ID=... " + command,
            "(the same with --instance-id edge-b)",
            f"python bench/webhook_load.py URL_A --concurrency {CONNECTIONS_EACH} --events "
            f"{receiver_events}   # and URL_B at the same time: 16 connections",
            "python bench/spool_fill.py s3://BUCKET/read-N bench N   # set-up",
            "tap-tradecloud --config CONFIG --catalog CATALOG > /dev/null   # spool_dir s3://...",
            f"python bench/latency_proxy.py PORT S3_PORT {latency_read.LATENCY_MS}   # then "
            "spool.iter_events through it, read_ahead 8 and 32 (bench/latency_read.py)",
        ],
        header=("measure", "figure"),
        rows=[
            ("create-only PUT, 2 KB, sequential (obstore)", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"),
            (
                "two receivers, 16 connections",
                f"{receivers['events_per_second']:,.0f} events/s, p50 {receivers['p50_ms']:.1f} "
                f"ms, p99 {receivers['p99_ms']:.1f} ms, {int(receivers['failed'])} failed",
            ),
            *(
                (
                    f"tap reads {size:,} events from the bucket",
                    f"{size / run.wall:,.0f} events/s, peak RSS {run.max_rss_mb:.1f} MiB",
                )
                for size, run in zip(read_sizes, reads, strict=True)
            ),
            *behind_latency,
        ],
        targets=[
            Target(
                "durable events/s, two receivers on S3, 16 connections",
                f"{receivers['events_per_second']:,.0f}",
                f">= {RECEIVER_TARGET:,.0f}",
                receivers["events_per_second"] >= RECEIVER_TARGET and receivers["failed"] == 0,
            ),
            Target(
                "acknowledged events found in the bucket",
                f"{stored:,} for {acknowledged:,} acknowledgements",
                "equal",
                stored == acknowledged,
            ),
            Target(
                f"tap events/s from S3 over {big:,} events",
                f"{rate:,.0f}",
                f">= {READ_TARGET:,.0f}",
                rate >= READ_TARGET,
            ),
            Target(
                f"tap RSS growth from {small:,} to {big:,} events (S3)",
                f"{growth:+.1%}",
                f"< {MEMORY_GROWTH_TARGET:.0%}",
                growth < MEMORY_GROWTH_TARGET,
            ),
        ],
        notes=[
            "s3fs was not measured here; the integrator's spike on the same SeaweedFS measured "
            "s3fs `pipe_file` at p50 5.7 ms / p99 12.6 ms against obstore's 2.7 / 7.1 ms, and "
            "s3fs's pipe_file had no create-only mode.",
        ],
    )
