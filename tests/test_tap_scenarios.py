"""The real tap against the sandbox: every record once, run after run, whatever the API does.

Each scenario runs for orders through `poll` and through `search`, and for shipments.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tap_tradecloud.pagination import RESULT_WINDOW
from tap_tradecloud.timestamps import one_ms_before
from tests.scenario_subjects import SUBJECTS, Subject
from tests.tap_helpers import RunOutput, catalog_selecting

if TYPE_CHECKING:
    from pathlib import Path

    from tap_tradecloud.sandbox import SandboxServer

every_subject = pytest.mark.parametrize("subject", SUBJECTS, ids=str)


def assert_exactly_once(output: RunOutput, expected: set) -> None:
    assert len(output.keys) == len(set(output.keys)), "a record version was emitted twice"
    assert set(output.keys) == expected


def assert_bookmark_at_newest(output: RunOutput, subject: Subject, sb: SandboxServer) -> None:
    records = subject.records(sb)
    newest = max(r["lastUpdatedAt"] for r in records)
    assert output.bookmark["replication_key_value"] == newest
    emitted = output.bookmark["emitted_at_bookmark"]
    assert emitted["lastUpdatedAt"] == newest
    assert set(emitted["ids"]) == {r["id"] for r in records if r["lastUpdatedAt"] == newest}


@every_subject
def test_250_records_then_nothing_then_exactly_the_changed_ones(subject: Subject) -> None:
    with subject.sandbox(250, lines=(1, 3)) as sb:
        cfg = subject.config(sb)
        first = subject.run(cfg)
        assert_exactly_once(first, subject.source_keys(sb))
        assert_bookmark_at_newest(first, subject, sb)
        assert len(subject.bodies(sb)) == 3  # 250 records, 100 a page; the short page ends paging

        second = subject.run(cfg, state=first.final_state)
        assert second.records == []
        assert second.bookmark == first.bookmark

        before = subject.source_keys(sb)
        changed = subject.change(sb, 4)
        third = subject.run(cfg, state=second.final_state)
        assert_exactly_once(third, subject.source_keys(sb) - before)
        assert {i for i, _ in third.keys} == set(changed)
        assert_bookmark_at_newest(third, subject, sb)


@every_subject
def test_12000_records_past_the_result_window(subject: Subject) -> None:
    with subject.sandbox(12_000, lines=(1, 1)) as sb:
        output = subject.run(subject.config(sb))
        assert_exactly_once(output, subject.source_keys(sb))
        assert_bookmark_at_newest(output, subject, sb)
        bodies = subject.bodies(sb)
        assert all(b["offset"] + b["limit"] <= RESULT_WINDOW for b in bodies)
        # the window slides: offsets only step over records sharing one timestamp
        largest_tie = max(Counter(r["lastUpdatedAt"] for r in subject.records(sb)).values())
        assert max(b["offset"] for b in bodies) < largest_tie
        assert all(r.status == 200 for r in sb.requests_log)


@every_subject
def test_300_records_sharing_one_timestamp(subject: Subject) -> None:
    with subject.sandbox(300, same_timestamp=True) as sb:
        cfg = subject.config(sb)
        first = subject.run(cfg)
        assert_exactly_once(first, subject.source_keys(sb))
        assert_bookmark_at_newest(first, subject, sb)
        assert [(b["offset"], b["limit"]) for b in subject.bodies(sb)] == [
            (0, 100),
            (99, 100),
            (198, 100),
            (297, 100),
        ]
        since = subject.records(sb)[0]["lastUpdatedAt"]
        expected_filter = (
            {"lastUpdatedSince": since}
            if subject.polling_api == "search"
            else {"lastUpdatedAfter": one_ms_before(since)}
        )
        assert subject.bodies(sb)[1]["filters"] == expected_filter
        assert subject.run(cfg, state=first.final_state).records == []


@every_subject
def test_records_updated_while_paging_a_tie_group(subject: Subject) -> None:
    with subject.sandbox(300, same_timestamp=True) as sb:
        before = subject.source_keys(sb)
        changed: list[str] = []
        subject.on_request(sb, lambda n: changed.extend(subject.change(sb, 20)) if n == 2 else None)
        output = subject.run(subject.config(sb))
        latest = subject.source_keys(sb)
        assert len(changed) == 20
        assert latest <= set(output.keys), "the latest version of every record must arrive"
        assert len(output.keys) == len(set(output.keys))
        # the only extra records are the old versions of changed records read before the change
        assert {k for k in output.keys if k not in latest} <= {k for k in before if k[0] in changed}
        assert_bookmark_at_newest(output, subject, sb)
        bodies = subject.bodies(sb)
        assert any(b["offset"] == 0 for b in bodies[2:]), "the shrunken group is read again"


@every_subject
def test_records_updated_while_paging_distinct_timestamps(subject: Subject) -> None:
    with subject.sandbox(500) as sb:
        changed: list[str] = []
        subject.on_request(
            sb, lambda n: changed.extend(subject.change(sb, 10)) if n in {2, 3} else None
        )
        output = subject.run(subject.config(sb))
        assert len(changed) == 20
        assert subject.source_keys(sb) <= set(output.keys)
        assert len(output.keys) == len(set(output.keys))
        assert_bookmark_at_newest(output, subject, sb)


@every_subject
def test_429_and_503_bursts_are_ridden_out(subject: Subject) -> None:
    with subject.sandbox(250) as sb:
        sb.inject_responses([429, 429, 503, 503, 429], retry_after=1)
        subject.on_request(
            sb, lambda n: sb.inject_responses([503, 429, 503], retry_after=1) if n == 2 else None
        )
        output = subject.run(subject.config(sb))
        assert_exactly_once(output, subject.source_keys(sb))
        statuses = [r.status for r in subject.requests(sb)]
        assert statuses.count(429) == 4
        assert statuses.count(503) == 4
        assert statuses.count(200) == 3


@every_subject
def test_rate_limited_sandbox_is_respected(subject: Subject) -> None:
    with subject.sandbox(250, rate_limit_per_second=5) as sb:
        output = subject.run(subject.config(sb, page_size=25, max_requests_per_second=4))
        assert_exactly_once(output, subject.source_keys(sb))
        assert all(r.status != 429 for r in sb.requests_log)


@every_subject
def test_access_token_expiring_mid_run_and_single_use_refresh_tokens(subject: Subject) -> None:
    with subject.sandbox(500) as sb:
        subject.on_request(sb, lambda n: sb.expire_access_tokens() if n in {2, 4} else None)
        output = subject.run(subject.config(sb))
        assert_exactly_once(output, subject.source_keys(sb))
        auth = [
            (r.path.rsplit("/", 1)[-1], r.status)
            for r in sb.requests_log
            if "/authentication/" in r.path
        ]
        assert auth == [("login", 200), ("refresh", 200), ("refresh", 200), ("logout", 200)]
        assert sum(r.status == 401 for r in sb.requests_log) == 2


@every_subject
def test_short_lived_tokens_are_refreshed_before_they_expire(subject: Subject) -> None:
    with subject.sandbox(300, access_token_ttl=1.0) as sb:
        output = subject.run(subject.config(sb, page_size=20, max_requests_per_second=12))
        assert_exactly_once(output, subject.source_keys(sb))
        paths = [r.path.rsplit("/", 1)[-1] for r in sb.requests_log if "/authentication/" in r.path]
        assert paths.count("refresh") >= 1
        assert paths.count("login") == 1


@every_subject
def test_run_killed_after_page_3_resumes_from_its_last_state(subject: Subject) -> None:
    with subject.sandbox(250) as sb:

        def die_on_page_4(n: int) -> None:
            if n == 4:
                msg = "tap killed"
                raise RuntimeError(msg)

        subject.on_request(sb, die_on_page_4)
        cfg = subject.config(sb, page_size=40, max_retries=0)
        killed, error = subject.run_failing(cfg)
        assert error is not None
        assert len(killed.records) == 120
        last_state_at = max(i for i, m in enumerate(killed.messages) if m["type"] == "STATE")
        committed = set(RunOutput(killed.messages[:last_state_at], subject.stream).keys)
        assert len(committed) == 120  # STATE after every page_size records

        subject.on_request(sb, None)
        resumed = subject.run(cfg, state=killed.states[-1])
        assert set(resumed.keys).isdisjoint(committed)
        assert_exactly_once(resumed, subject.source_keys(sb) - committed)
        assert_bookmark_at_newest(resumed, subject, sb)


@every_subject
def test_lookback_catches_changes_that_become_searchable_late(subject: Subject) -> None:
    with subject.sandbox(50) as sb:
        cfg = subject.config(sb, lookback_seconds=30)
        first = subject.run(cfg)
        assert_exactly_once(first, subject.source_keys(sb))

        sb.set_faults(indexing_lag=0.5)
        late = subject.change(sb, 2)  # searchable only after half a second
        sb.set_faults(indexing_lag=0.0)
        time.sleep(0.01)  # a later millisecond than the late changes
        early = subject.change(sb, 2)  # newer, but searchable at once
        assert not set(early) & set(late), "the seed picks distinct records"
        second = subject.run(cfg, state=first.final_state)
        assert {i for i, _ in second.keys} == set(early)

        time.sleep(0.6)  # let the late changes reach the search index
        without_lookback = subject.run(subject.config(sb), state=second.final_state)
        assert without_lookback.records == []  # the bookmark already passed them
        third = subject.run(cfg, state=second.final_state)
        assert_exactly_once(third, {k for k in subject.source_keys(sb) if k[0] in late})
        assert subject.run(cfg, state=third.final_state).records == []
        # the SDK bookmark stays at the window while the newest timestamp sent is kept beside it
        newest = max(r["lastUpdatedAt"] for r in subject.records(sb))
        assert third.bookmark["emitted_recently"]["high_water"] == newest
        assert third.bookmark["replication_key_value"] <= newest


@every_subject
def test_cli_killed_mid_run_resumes_from_its_last_state(subject: Subject, tmp_path: Path) -> None:
    with subject.sandbox(200, latency=0.05) as sb:
        cfg = subject.config(sb, page_size=20)
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(cfg))
        catalog_file = tmp_path / "catalog.json"
        catalog_file.write_text(json.dumps(catalog_selecting(cfg, subject.stream)))
        tap = [
            sys.executable,
            "-m",
            "tap_tradecloud",
            "--config",
            str(config_file),
            "--catalog",
            str(catalog_file),
        ]
        committed: set = set()
        pending: list = []
        last_state: dict | None = None
        with subprocess.Popen(tap, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as run:
            assert run.stdout is not None
            for line in run.stdout:
                message = json.loads(line)
                if message["type"] == "RECORD":
                    pending.extend(RunOutput([message], subject.stream).keys)
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
        messages = [json.loads(line) for line in resumed.stdout.splitlines()]
        keys = RunOutput(messages, subject.stream).keys
        assert len(keys) == len(set(keys))
        assert set(keys) == subject.source_keys(sb) - committed
