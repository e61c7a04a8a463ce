"""What every benchmark needs: measured child processes, the sandbox CLI, result sections."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import pstats
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
BIN = Path(sys.executable).parent
PYTHON = sys.executable
SANDBOX_USER = "integration@example.com"
SANDBOX_PASSWORD = "sandbox-password"
START_DATE = "2024-01-01T00:00:00Z"
_SANDBOX_REQUEST = re.compile(r" INFO (GET|POST) (/v2/\S+) (\d{3}) ")
_SANDBOX_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+/v2)")


@dataclass(frozen=True)
class Measured:
    """One finished child process: wall seconds, CPU seconds (user + system), peak RSS.

    Peak RSS is sampled about every 10 ms (it only grows, so the last sample is near the end).
    """

    wall: float
    cpu: float
    max_rss_mb: float
    returncode: int


def run_measured(
    cmd: Sequence[str],
    *,
    stdout: int | Path = subprocess.DEVNULL,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
    cwd: Path = REPO,
    stdin: int | IO[bytes] | None = None,
    on_start: Callable[[int], object] | None = None,
) -> Measured:
    """Run ``cmd`` to completion; CPU time from its ``wait4`` rusage, peak RSS from VmHWM.

    ``on_start`` is called with the child's pid as soon as it runs.
    """
    with contextlib.ExitStack() as stack:
        out = stdout if isinstance(stdout, int) else stack.enter_context(stdout.open("wb"))
        err = stack.enter_context(log.open("ab")) if log else subprocess.DEVNULL
        started = time.perf_counter()
        process = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, env=env, cwd=cwd)
        if on_start is not None:
            on_start(process.pid)
        deadline = started + timeout
        peak_kb = 0
        for poll in itertools.count():
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if poll % 5 == 0:
                peak_kb = max(peak_kb, _rss_high_water_kb(process.pid))
            if time.perf_counter() > deadline:
                process.kill()
                os.wait4(process.pid, 0)
                msg = f"{cmd[0]} ran longer than {timeout} s; see {log}"
                raise TimeoutError(msg)
            time.sleep(0.002)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    result = Measured(wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024, process.returncode)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log else ""
        msg = f"{' '.join(map(str, cmd))} exited {result.returncode}\n{tail}"
        raise RuntimeError(msg)
    return result


def _rss_high_water_kb(pid: int) -> int:
    """The process's peak RSS so far (``VmHWM``); 0 once it has exited.

    Not ``ru_maxrss``: Linux carries the forking process's RSS over exec into it, so that
    figure can never be smaller than this benchmark process itself.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match[1]) if match else 0


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Sandbox:
    """A ``tradecloud-sandbox`` process; its request log is its stderr (one line per request)."""

    api_url: str
    log: Path
    command: list[str]

    def request_counts(self, since_byte: int = 0) -> dict[str, int]:
        """Requests per path (``/v2/...``, ids collapsed) logged after byte ``since_byte``."""
        counts: dict[str, int] = {}
        with self.log.open("rb") as file:
            file.seek(since_byte)
            for line in file.read().decode(errors="replace").splitlines():
                if match := _SANDBOX_REQUEST.search(line):
                    path = re.sub(r"^/v2/order/.+", "/v2/order/{id}", match[2])
                    counts[path] = counts.get(path, 0) + 1
        return counts

    def log_position(self) -> int:
        return self.log.stat().st_size


@contextlib.contextmanager
def sandbox(
    workdir: Path, orders: int, lines: tuple[int, int], *, seed: int = 7, max_runtime: float = 900
) -> Iterator[Sandbox]:
    """Start the sandbox CLI on a free loopback port (rate limit off); stop it afterwards."""
    log = workdir / f"sandbox-{orders}.log"
    command = [
        str(BIN / "tradecloud-sandbox"),
        "--host", "127.0.0.1", "--port", "0",
        "--orders", str(orders), "--lines-per-order", f"{lines[0]}-{lines[1]}",
        "--seed", str(seed), "--max-runtime", str(max_runtime),
        "--shipments", "0",  # the benchmarks measure the orders stream
    ]  # fmt: skip
    with log.open("wb") as err:
        process = subprocess.Popen(command, stdout=err, stderr=err)
    try:
        yield Sandbox(_wait_for_sandbox(process, log), log, command)
    finally:
        stop_process(process)


def _wait_for_sandbox(process: subprocess.Popen[bytes], log: Path, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if match := _SANDBOX_LISTENING.search(log.read_text(errors="replace")):
            return match[1]
        if process.poll() is not None:
            msg = f"the sandbox exited: {log.read_text()[-2000:]}"
            raise RuntimeError(msg)
        time.sleep(0.1)
    msg = f"the sandbox did not start within {timeout} s"
    raise TimeoutError(msg)


def top_entries(pstats_file: Path, entries: int = 20) -> str:
    """A cProfile dump's top entries by own time, as text."""
    text = io.StringIO()
    pstats.Stats(str(pstats_file), stream=text).sort_stats("tottime").print_stats(entries)
    return "\n".join(line for line in text.getvalue().splitlines() if line.strip())[-6000:]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Target:
    """A figure held against its goal."""

    what: str
    measured: str
    goal: str
    met: bool | None  # None: not measured

    @property
    def verdict(self) -> str:
        return {True: "MET", False: "MISSED", None: "NOT MEASURED"}[self.met]


@dataclass
class Section:
    """One benchmark's part of RESULTS.md."""

    title: str
    commands: list[str] = field(default_factory=list)
    header: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: str = ""
