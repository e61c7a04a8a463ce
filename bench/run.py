"""``make bench``: run every benchmark and write bench/RESULTS.md.

.venv/bin/python bench/run.py            # full sizes, about 10 minutes
.venv/bin/python bench/run.py --quick    # small sizes, a smoke test: prints, writes no file
.venv/bin/python bench/run.py --only 1,4 --output /tmp/results.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from typing import TYPE_CHECKING

from bench import e2e_bench, receiver_bench, report, s3_bench, spool_bench, tap_bench
from bench.common import BENCH, Section

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class Sizes:
    throughput_orders: int
    rounds: int
    backlog_orders: int
    memory_orders: tuple[int, int]
    receiver_events: int
    receiver_rounds: int
    paced_seconds: float
    spool_events: tuple[int, int]
    e2e_orders: tuple[int, int]
    e2e_rounds: tuple[int, int]
    configuration_orders: int
    configuration_rounds: int


FULL = Sizes(
    20_000, 3, 12_000, (5_000, 50_000), 10_000, 5, 10.0, (10_000, 100_000),
    (10_000, 50_000), (2, 1), 2_000, 2,
)  # fmt: skip
QUICK = Sizes(1_000, 1, 1_200, (500, 2_000), 300, 1, 2.0, (500, 2_000), (300, 600), (1, 1), 300, 1)


def benchmarks(sizes: Sizes, workdir: Path) -> dict[str, Callable[[], list[Section]]]:
    def requests_and_throughput() -> list[Section]:
        sections = tap_bench.throughput_and_requests(workdir, sizes.throughput_orders, sizes.rounds)
        tap_bench.backlog_requests(workdir, sizes.backlog_orders, sections[1])
        return sections

    return {
        "1,2": requests_and_throughput,
        "3": lambda: [tap_bench.memory(workdir, sizes.memory_orders)],
        "4": lambda: [
            receiver_bench.receiver(
                workdir, sizes.receiver_events, sizes.paced_seconds, sizes.receiver_rounds
            )
        ],
        "5": lambda: [spool_bench.spool_read(workdir, sizes.spool_events)],
        "6": lambda: [e2e_bench.end_to_end(workdir, sizes.e2e_orders, sizes.e2e_rounds)],
        "8": lambda: [
            e2e_bench.configurations(
                workdir, sizes.configuration_orders, sizes.configuration_rounds
            )
        ],
        "9": lambda: [s3_bench.s3_spool(workdir, sizes.receiver_events, sizes.spool_events)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--only", default="", help="comma-separated benchmark numbers, e.g. 1,4")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="default: bench/RESULTS.md; none with --quick",
    )
    parser.add_argument(
        "--pipeline-orders",
        default="",
        help="benchmark 6's two sizes, e.g. 2000,10000 (default 10000,50000)",
    )
    parser.add_argument(
        "--pipeline-rounds", default="", help="benchmark 6's rounds per size, e.g. 1,1"
    )
    parser.add_argument("--configuration-orders", type=int, default=0, help="benchmark 8's orders")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so every started server is stopped and the work folder removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sizes = QUICK if args.quick else FULL
    if args.pipeline_orders:
        small, large = (int(n) for n in args.pipeline_orders.split(","))
        sizes = dataclasses.replace(sizes, e2e_orders=(small, large))
    if args.pipeline_rounds:
        small, large = (int(n) for n in args.pipeline_rounds.split(","))
        sizes = dataclasses.replace(sizes, e2e_rounds=(small, large))
    if args.configuration_orders:
        sizes = dataclasses.replace(sizes, configuration_orders=args.configuration_orders)
    output = args.output or (None if args.quick else BENCH / "RESULTS.md")
    wanted = {n for n in args.only.split(",") if n}
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    host, commit = report.machine(), report.git_commit()
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="tap-tradecloud-bench-") as tmp:
        for numbers, run in benchmarks(sizes, Path(tmp)).items():
            if wanted and not wanted & set(numbers.split(",")):
                continue
            print(f"benchmark {numbers} ...", file=sys.stderr, flush=True)
            try:
                sections += run()
            except Exception:  # one broken benchmark must not hide the others' figures
                sections.append(
                    Section(
                        title=f"{numbers}. FAILED", notes=["```", traceback.format_exc(), "```"]
                    )
                )
                traceback.print_exc()
    command = (
        "python bench/run.py"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only else "")
        + (f" --pipeline-orders {args.pipeline_orders}" if args.pipeline_orders else "")
        + (f" --pipeline-rounds {args.pipeline_rounds}" if args.pipeline_rounds else "")
        + (
            f" --configuration-orders {args.configuration_orders}"
            if args.configuration_orders
            else ""
        )
    )
    text = report.render(
        sections,
        started=started,
        seconds=time.monotonic() - clock,
        command=command,
        host=host,
        commit=commit,
        quick=args.quick,
    )
    if output is not None:
        output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
