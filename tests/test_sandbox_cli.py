"""The ``tradecloud-sandbox`` command: help, start, answers, control endpoint, clean stop."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from tap_tradecloud.sandbox.cli import build_parser, main
from tests.sandbox_helpers import PASSWORD, TIMEOUT, USERNAME, bearer

if TYPE_CHECKING:
    from collections.abc import Iterator

LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+/v2)")
# The console script of the environment running the tests, even when it is not on PATH.
_SCRIPT = Path(sys.executable).with_name("tradecloud-sandbox")
COMMAND = (
    [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tap_tradecloud.sandbox.cli"]
)


def _start(*args: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    """Start the command on a free port; returns the process, its API URL and its log so far."""
    process = subprocess.Popen(
        [*COMMAND, "--port", "0", "--orders", "120", "--lines-per-order", "1-3", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = LISTENING.search(line)
        if match:
            return process, match.group(1), lines
    process.kill()
    pytest.fail(f"the sandbox did not start: {''.join(lines)}")


@pytest.fixture
def running() -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    process, url, lines = _start("--password", PASSWORD)
    yield process, url, lines
    if process.poll() is None:
        process.kill()
        process.wait(10)


def test_help_documents_every_option() -> None:
    result = subprocess.run(
        [*COMMAND, "--help"], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    parser = build_parser()
    options = [option for action in parser._actions for option in action.option_strings]
    assert len(options) > 25
    for option in options:
        assert option in result.stdout
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help text"
    assert "/_sandbox/control" in result.stdout


def test_it_answers_like_tradecloud_and_stops_on_sigterm(
    running: tuple[subprocess.Popen[str], str, list[str]],
) -> None:
    process, api_url, _ = running
    login = requests.get(f"{api_url}/authentication/login", auth=(USERNAME, PASSWORD), timeout=10)
    assert login.status_code == 200
    token = login.headers["Set-Authorization"]
    body = {"filters": {"lastUpdatedAfter": "2023-12-31T23:59:59.999Z"}, "limit": 100}
    poll = requests.post(
        f"{api_url}/order-search/poll", json=body, headers=bearer(token), timeout=TIMEOUT
    )
    assert poll.status_code == 200
    assert poll.json()["total"] == 120
    assert len(poll.json()["data"]) == 100
    base_url = api_url.removesuffix("/v2")
    control = requests.post(f"{base_url}/_sandbox/control", json={"add_orders": 2}, timeout=10)
    assert control.status_code == 200
    orders = requests.get(f"{base_url}/_sandbox/orders", timeout=TIMEOUT).json()
    assert len(orders) == 122
    assert {order["id"] for order in orders} >= set(control.json()["added"])
    bad = requests.post(f"{base_url}/_sandbox/control", json={"speed": 1}, timeout=TIMEOUT)
    assert bad.status_code == 400
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "POST /v2/order-search/poll 200" in stderr
    assert "received SIGTERM, stopping" in stderr
    assert PASSWORD not in stderr
    assert token not in stderr


def test_faults_from_the_command_line() -> None:
    process, api_url, _ = _start(
        "--rate-limit", "1", "--no-retry-after", "--max-limit", "1000", "--max-runtime", "30"
    )
    try:
        url = f"{api_url}/order-search/poll"
        answers = [
            requests.post(url, json={"limit": 1000}, auth=(USERNAME, PASSWORD), timeout=TIMEOUT)
            for _ in range(2)
        ]
        assert [answer.status_code for answer in answers] == [200, 429]
        assert "Retry-After" not in answers[1].headers
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_max_runtime_stops_it() -> None:
    process, _, _ = _start("--max-runtime", "0.5")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "--max-runtime reached" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lines-per-order", "5-2"], "expected 1 <= MIN <= MAX"),
        (["--error-rate", "2"], "between 0 and 1"),
        (["--webhook-basic", "nocolon", "--webhook-url", "http://127.0.0.1:9/x"], "USER:PASS"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_module_is_runnable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tap_tradecloud.sandbox.cli", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "--indexing-lag" in result.stdout
