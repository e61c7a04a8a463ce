"""The real tap against the sandbox: every order once, run after run, whatever the API does."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import typing as t
from collections import Counter
from pathlib import Path

import pytest

from tap_tradecloud.pagination import RESULT_WINDOW
from tap_tradecloud.sandbox import SandboxConfig, SandboxServer, generate_orders
from tap_tradecloud.timestamps import one_ms_before
from tests.tap_helpers import RunOutput, run_tap, run_tap_failing

SEED = 7


def tap_config(sb: SandboxServer, **overrides: t.Any) -> dict[str, t.Any]:
    return {
        "api_url": sb.api_url,
        "username": sb.config.username,
        "password": sb.config.password,
        "start_date": "2020-01-01T00:00:00Z",
        "max_requests_per_second": 1000,
        "retry_max_wait_seconds": 0.01,
        **overrides,
    }


def source_keys(sb: SandboxServer) -> set[tuple[str, int]]:
    return {(o["id"], o["version"]) for o in sb.orders()}


def assert_exactly_once(output: RunOutput, expected: set[tuple[str, int]]) -> None:
    assert len(output.keys) == len(set(output.keys)), "an order version was emitted twice"
    assert set(output.keys) == expected


def assert_bookmark_at_newest(output: RunOutput, sb: SandboxServer) -> None:
    orders = sb.orders()
    newest = max(o["lastUpdatedAt"] for o in orders)
    assert output.bookmark["replication_key_value"] == newest
    emitted = output.bookmark["emitted_at_bookmark"]
    assert emitted["lastUpdatedAt"] == newest
    assert set(emitted["ids"]) == {o["id"] for o in orders if o["lastUpdatedAt"] == newest}


def search_bodies(sb: SandboxServer) -> list[dict]:
    return [r.json for r in sb.requests_log if r.path.startswith("/v2/order-search/")]


def test_250_orders_then_nothing_then_exactly_the_changed_ones() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=250, lines_per_order=(1, 3))) as sb:
        cfg = tap_config(sb)
        first = run_tap(cfg)
        assert_exactly_once(first, source_keys(sb))
        assert_bookmark_at_newest(first, sb)
        assert len(search_bodies(sb)) == 3  # 250 orders, 100 a page; the short page ends paging

        second = run_tap(cfg, state=first.final_state)
        assert second.records == []
        assert second.bookmark == first.bookmark

        before = {o["id"]: o["version"] for o in sb.orders()}
        changed = sb.change_orders(4)
        third = run_tap(cfg, state=second.final_state)
        assert_exactly_once(third, {(i, before[i] + 1) for i in changed})
        assert_bookmark_at_newest(third, sb)


def test_12000_orders_past_the_result_window() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=12_000, lines_per_order=(1, 1))) as sb:
        output = run_tap(tap_config(sb))
        assert_exactly_once(output, source_keys(sb))
        assert_bookmark_at_newest(output, sb)
        bodies = search_bodies(sb)
        assert all(b["offset"] + b["limit"] <= RESULT_WINDOW for b in bodies)
        # the window slides: offsets only step over orders sharing one timestamp
        largest_tie = max(Counter(o["lastUpdatedAt"] for o in sb.orders()).values())
        assert max(b["offset"] for b in bodies) < largest_tie
        assert all(r.status == 200 for r in sb.requests_log)


@pytest.mark.parametrize("polling_api", ["search", "poll"])
def test_300_orders_sharing_one_timestamp(polling_api: str) -> None:
    orders = generate_orders(300, seed=SEED, lines_per_order=(1, 2), same_timestamp=True)
    with SandboxServer(SandboxConfig(seed=SEED), orders=orders) as sb:
        cfg = tap_config(sb, polling_api=polling_api)
        first = run_tap(cfg)
        assert_exactly_once(first, source_keys(sb))
        assert_bookmark_at_newest(first, sb)
        assert [(b["offset"], b["limit"]) for b in search_bodies(sb)] == [
            (0, 100),
            (99, 100),
            (198, 100),
            (297, 100),
        ]
        since = orders[0]["lastUpdatedAt"]
        expected_filter = (
            {"lastUpdatedAfter": one_ms_before(since)}
            if polling_api == "poll"
            else {"lastUpdatedSince": since}
        )
        assert search_bodies(sb)[1]["filters"] == expected_filter
        assert run_tap(cfg, state=first.final_state).records == []


@pytest.mark.parametrize("polling_api", ["search", "poll"])
def test_orders_updated_while_paging_a_tie_group(polling_api: str) -> None:
    orders = generate_orders(300, seed=SEED, lines_per_order=(1, 2), same_timestamp=True)
    with SandboxServer(SandboxConfig(seed=SEED), orders=orders) as sb:
        changed: list[str] = []
        sb.on_order_request = lambda n: changed.extend(sb.change_orders(20)) if n == 2 else None
        output = run_tap(tap_config(sb, polling_api=polling_api))
        latest = source_keys(sb)
        assert len(changed) == 20
        assert latest <= set(output.keys), "the latest version of every order must arrive"
        assert len(output.keys) == len(set(output.keys))
        # the only extra records are the old versions of changed orders read before the change
        before = {(o["id"], o["version"]) for o in orders}
        assert {k for k in output.keys if k not in latest} <= {k for k in before if k[0] in changed}
        assert_bookmark_at_newest(output, sb)
        bodies = search_bodies(sb)
        assert any(b["offset"] == 0 for b in bodies[2:]), "the shrunken group is read again"


def test_orders_updated_while_paging_distinct_timestamps() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=500, lines_per_order=(1, 2))) as sb:
        changed: list[str] = []
        sb.on_order_request = lambda n: (
            changed.extend(sb.change_orders(10)) if n in {2, 3} else None
        )
        output = run_tap(tap_config(sb))
        assert len(changed) == 20
        assert source_keys(sb) <= set(output.keys)
        assert len(output.keys) == len(set(output.keys))
        assert_bookmark_at_newest(output, sb)


def test_429_and_503_bursts_are_ridden_out() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=250, lines_per_order=(1, 2))) as sb:
        sb.inject_responses([429, 429, 503, 503, 429], retry_after=1)
        sb.on_order_request = lambda n: (
            sb.inject_responses([503, 429, 503], retry_after=1) if n == 2 else None
        )
        output = run_tap(tap_config(sb))
        assert_exactly_once(output, source_keys(sb))
        statuses = [r.status for r in sb.requests_log if r.path.startswith("/v2/order-search/")]
        assert statuses.count(429) == 4
        assert statuses.count(503) == 4
        assert statuses.count(200) == 3


def test_rate_limited_sandbox_is_respected() -> None:
    cfg = SandboxConfig(seed=SEED, order_count=250, lines_per_order=(1, 2), rate_limit_per_second=5)
    with SandboxServer(cfg) as sb:
        output = run_tap(tap_config(sb, page_size=25, max_requests_per_second=4))
        assert_exactly_once(output, source_keys(sb))
        assert all(r.status != 429 for r in sb.requests_log)


def test_access_token_expiring_mid_run_and_single_use_refresh_tokens() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=500, lines_per_order=(1, 2))) as sb:
        sb.on_order_request = lambda n: sb.expire_access_tokens() if n in {2, 4} else None
        output = run_tap(tap_config(sb))
        assert_exactly_once(output, source_keys(sb))
        auth = [
            (r.path.rsplit("/", 1)[-1], r.status)
            for r in sb.requests_log
            if "/authentication/" in r.path
        ]
        assert auth == [("login", 200), ("refresh", 200), ("refresh", 200), ("logout", 200)]
        assert sum(r.status == 401 for r in sb.requests_log) == 2


def test_short_lived_tokens_are_refreshed_before_they_expire() -> None:
    cfg = SandboxConfig(seed=SEED, order_count=300, lines_per_order=(1, 2), access_token_ttl=1.0)
    with SandboxServer(cfg) as sb:
        output = run_tap(tap_config(sb, page_size=20, max_requests_per_second=12))
        assert_exactly_once(output, source_keys(sb))
        paths = [r.path.rsplit("/", 1)[-1] for r in sb.requests_log if "/authentication/" in r.path]
        assert paths.count("refresh") >= 1
        assert paths.count("login") == 1


def test_run_killed_after_page_3_resumes_from_its_last_state() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=250, lines_per_order=(1, 2))) as sb:

        def die_on_page_4(n: int) -> None:
            if n == 4:
                raise RuntimeError("tap killed")

        sb.on_order_request = die_on_page_4
        cfg = tap_config(sb, page_size=40, max_retries=0)
        killed, error = run_tap_failing(cfg)
        assert error is not None
        assert len(killed.records) == 120
        last_state_at = max(i for i, m in enumerate(killed.messages) if m["type"] == "STATE")
        committed = {
            (m["record"]["id"], m["record"]["version"])
            for m in killed.messages[:last_state_at]
            if m["type"] == "RECORD" and m["stream"] == "orders"
        }
        assert len(committed) == 120  # STATE after every page_size records

        sb.on_order_request = None
        resumed = run_tap(cfg, state=killed.states[-1])
        assert set(resumed.keys).isdisjoint(committed)
        assert_exactly_once(resumed, source_keys(sb) - committed)
        assert_bookmark_at_newest(resumed, sb)


def test_lookback_catches_changes_that_become_searchable_late() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=50, lines_per_order=(1, 2))) as sb:
        cfg = tap_config(sb, lookback_seconds=30)
        first = run_tap(cfg)
        assert_exactly_once(first, source_keys(sb))

        sb.set_faults(indexing_lag=0.5)
        late = sb.change_orders(2)  # searchable only after half a second
        sb.set_faults(indexing_lag=0.0)
        time.sleep(0.01)  # a later millisecond than the late changes
        early = sb.change_orders(2)  # newer, but searchable at once
        second = run_tap(cfg, state=first.final_state)
        assert {i for i, _ in second.keys} == set(early)

        time.sleep(0.6)  # let the late changes reach the search index
        without_lookback = run_tap(tap_config(sb), state=second.final_state)
        assert without_lookback.records == []  # the bookmark already passed them
        third = run_tap(cfg, state=second.final_state)
        assert_exactly_once(third, {k for k in source_keys(sb) if k[0] in late})
        assert run_tap(cfg, state=third.final_state).records == []
        # the SDK bookmark stays at the window while the newest timestamp sent is kept beside it
        newest = max(o["lastUpdatedAt"] for o in sb.orders())
        assert third.bookmark["emitted_recently"]["high_water"] == newest
        assert third.bookmark["replication_key_value"] <= newest


def test_cli_killed_mid_run_resumes_from_its_last_state(tmp_path: Path) -> None:
    cfg = SandboxConfig(seed=SEED, order_count=200, lines_per_order=(1, 2), latency=0.05)
    with SandboxServer(cfg) as sb:
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(tap_config(sb, page_size=20)))
        tap = [sys.executable, "-m", "tap_tradecloud", "--config", str(config_file)]
        committed: set[tuple[str, int]] = set()
        pending: list[tuple[str, int]] = []
        last_state: dict | None = None
        with subprocess.Popen(tap, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as run:
            assert run.stdout is not None
            for line in run.stdout:
                message = json.loads(line)
                if message["type"] == "RECORD" and message["stream"] == "orders":
                    pending.append((message["record"]["id"], message["record"]["version"]))
                elif message["type"] == "STATE" and pending:
                    committed.update(pending)
                    pending.clear()
                    last_state = message["value"]
                    if len(committed) >= 60:
                        run.kill()  # SIGKILL: no chance to write anything more
                        break
        assert last_state is not None
        assert len(committed) == 60

        state_file = tmp_path / "state.json"
        state_file.write_text(json.dumps(last_state))
        resumed = subprocess.run(
            [*tap, "--state", str(state_file)], capture_output=True, check=True, timeout=120
        )
        records = [
            json.loads(line)["record"]
            for line in resumed.stdout.splitlines()
            if json.loads(line)["type"] == "RECORD" and json.loads(line)["stream"] == "orders"
        ]
        keys = [(r["id"], r["version"]) for r in records]
        assert len(keys) == len(set(keys))
        assert set(keys) == source_keys(sb) - committed
