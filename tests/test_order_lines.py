"""`order_lines` against the sandbox: every line once, then only the lines that changed."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time

import pytest

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer, generate_orders
from tap_tradecloud.sandbox.clock import format_ms, now_ms
from tap_tradecloud.tap import TapTradecloud
from tests.scenario_subjects import Subject
from tests.tap_helpers import RunOutput, run_tap, run_tap_failing

SEED = 11
LineVersion = tuple[str, str, str]  # (order id, line id, line lastUpdatedAt)


tap_config = Subject("orders", "poll").config


def lines_of(output: RunOutput | list[dict]) -> list[LineVersion]:
    messages = output.messages if isinstance(output, RunOutput) else output
    return [
        (m["record"]["order_id"], m["record"]["id"], m["record"]["lastUpdatedAt"])
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == "order_lines"
    ]


def orders_of(output: RunOutput) -> list[str]:
    return [
        r["record"]["id"]
        for r in output.messages
        if r["type"] == "RECORD" and r["stream"] == "orders"
    ]


def source_lines(sb: SandboxServer, newer_than: str = "") -> set[LineVersion]:
    return {
        (order["id"], line["id"], line["lastUpdatedAt"])
        for order in sb.orders()
        for line in order["lines"]
        if line["lastUpdatedAt"] > newer_than
    }


def newest(sb: SandboxServer) -> str:
    return max(order["lastUpdatedAt"] for order in sb.orders())


def change(sb: SandboxServer, order_id: str, *, line: bool, lag_ms: int = 0) -> None:
    """A new version of one order: its first line changed (``line``) or its header only,
    searchable ``lag_ms`` after its ``lastUpdatedAt``."""
    order = sb.store.load(order_id)
    assert order is not None
    time.sleep(0.002)  # a millisecond of its own
    stamp_ms = now_ms()
    stamp = format_ms(stamp_ms)
    if line:
        order["lines"][0]["buyerLine"]["description"] += " (revised)"
        order["lines"][0]["lastUpdatedAt"] = stamp
    else:
        order["buyerOrder"]["description"] = "header change"
    order["version"] += 1
    order["lastUpdatedAt"] = stamp
    sb.store.put(order, stamp_ms + lag_ms if lag_ms else None)


def assert_once(emitted: list[LineVersion], expected: set[LineVersion]) -> None:
    assert len(emitted) == len(set(emitted)), "a line version was emitted twice"
    assert set(emitted) == expected


def test_every_line_once_then_none_then_only_the_changed_ones() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=250, lines_per_order=(1, 5))) as sb:
        cfg = tap_config(sb)
        first = run_tap(cfg)
        assert_once(lines_of(first), source_lines(sb))
        by_id = {order["id"]: order for order in sb.orders()}
        for message in first.messages:
            if message["type"] != "RECORD" or message["stream"] != "order_lines":
                continue
            line = message["record"]
            order = by_id[line["order_id"]]
            assert line["buyer_company_id"] == order["buyerOrder"]["companyId"]
            assert line["supplier_company_id"] == order["supplierOrder"]["companyId"]
            assert line["purchase_order_number"] == order["buyerOrder"]["purchaseOrderNumber"]
            source = next(li for li in order["lines"] if li["id"] == line["id"])
            assert line["deliverySchedule"] == source["deliverySchedule"]

        second = run_tap(cfg, state=first.final_state)
        assert lines_of(second) == []

        before = newest(sb)
        changed = sorted(by_id)[:7]
        for order_id in changed:
            change(sb, order_id, line=True)
        third = run_tap(cfg, state=second.final_state)
        assert sorted(orders_of(third)) == changed
        assert_once(lines_of(third), source_lines(sb, newer_than=before))
        assert len(lines_of(third)) == 7

        header_only = sorted(by_id)[10:15]
        for order_id in header_only:
            change(sb, order_id, line=False)
        fourth = run_tap(cfg, state=third.final_state)
        assert sorted(orders_of(fourth)) == header_only
        assert lines_of(fourth) == []


def test_state_does_not_grow_with_the_number_of_orders() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=2500, lines_per_order=(1, 3))) as sb:
        output = run_tap(tap_config(sb))
        assert len(lines_of(output)) == len(source_lines(sb))
        state = output.final_state
        assert state["bookmarks"].get("order_lines", {}) == {}
        at_bookmark = set(output.bookmark["emitted_at_bookmark"]["ids"])
        text = json.dumps(state)
        mentioned = {order["id"] for order in sb.orders() if order["id"] in text}
        assert mentioned == at_bookmark  # only the orders of the newest timestamp
        assert len(text) < 1000 + 100 * len(at_bookmark)


def committed_and_pending(messages: list[dict]) -> tuple[list[dict], dict]:
    """The messages up to the last STATE (what a target commits), and that STATE."""
    last = max(i for i, m in enumerate(messages) if m["type"] == "STATE")
    return messages[:last], messages[last]["value"]


@pytest.mark.parametrize("same_timestamp", [False, True], ids=["distinct", "one-timestamp"])
def test_run_killed_midway_resumes_with_every_line_once(same_timestamp: bool) -> None:
    orders = generate_orders(250, seed=SEED, lines_per_order=(1, 4), same_timestamp=same_timestamp)
    with SandboxServer(SandboxConfig(seed=SEED), orders=orders) as sb:

        def die_on_page_4(n: int) -> None:
            if n == 4:
                msg = "tap killed"
                raise RuntimeError(msg)

        sb.on_order_request = die_on_page_4
        cfg = tap_config(sb, page_size=40, max_retries=0)
        killed, error = run_tap_failing(cfg)
        assert error is not None
        committed, state = committed_and_pending(killed.messages)
        assert lines_of(committed)

        sb.on_order_request = None
        resumed = run_tap(cfg, state=state)
        assert_once(lines_of(committed) + lines_of(resumed), source_lines(sb))


def test_no_state_between_an_orders_lines_and_the_order() -> None:
    """A STATE written after an order's lines but before the order itself already counts the
    order as sent (the orders stream notes it when it reads it): killed there, it is lost."""
    with SandboxServer(SandboxConfig(seed=SEED, order_count=60, lines_per_order=(1, 3))) as sb:
        output = run_tap(tap_config(sb, page_size=10))
        previous = None
        for message in output.messages:
            if message["type"] == "STATE":
                assert previous in {None, "orders"}, "STATE between lines and their order"
            elif message["type"] == "RECORD":
                previous = message["stream"]


def test_an_order_read_twice_in_one_run_does_not_repeat_its_lines() -> None:
    orders = generate_orders(300, seed=SEED, lines_per_order=(1, 3), same_timestamp=True)
    with SandboxServer(SandboxConfig(seed=SEED), orders=orders) as sb:
        changed: list[str] = []
        sb.on_order_request = lambda n: changed.extend(sb.change_orders(20)) if n == 2 else None
        output = run_tap(tap_config(sb))
        assert len(changed) == 20
        assert len(set(orders_of(output))) < len(orders_of(output)), "some order came twice"
        emitted = lines_of(output)
        assert len(emitted) == len(set(emitted)), "a line version was emitted twice"
        assert source_lines(sb) <= set(emitted)


def test_lookback_emits_the_lines_of_changes_that_become_searchable_late() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=50, lines_per_order=(1, 3))) as sb:
        cfg = tap_config(sb, lookback_seconds=30)
        first = run_tap(cfg)
        assert_once(lines_of(first), source_lines(sb))
        before = newest(sb)

        ids = sorted(order["id"] for order in sb.orders())
        late, early = ids[:3], ids[3:6]
        for order_id in late:
            change(sb, order_id, line=True, lag_ms=500)  # searchable only after half a second
        time.sleep(0.01)
        for order_id in early:
            change(sb, order_id, line=True)
        second = run_tap(cfg, state=first.final_state)
        changed_lines = source_lines(sb, newer_than=before)
        assert_once(lines_of(second), {k for k in changed_lines if k[0] in early})

        time.sleep(0.6)  # the late changes reach the search index
        third = run_tap(cfg, state=second.final_state)
        assert_once(lines_of(third), {k for k in changed_lines if k[0] in late})
        assert lines_of(run_tap(cfg, state=third.final_state)) == []


def selected_catalog(cfg: dict, streams: set[str], deselect: list[list[str]] = ()) -> dict:
    """The discovered catalog with ``streams`` selected and the ``deselect`` breadcrumbs not."""
    catalog = TapTradecloud(config=cfg, parse_env_config=False).catalog_dict
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] in streams
            if [stream["tap_stream_id"], *entry["breadcrumb"]] in deselect:
                entry["metadata"]["selected"] = False
    return catalog


def run_with_catalog(cfg: dict, catalog: dict, state: dict | None = None) -> RunOutput:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        TapTradecloud(config=cfg, catalog=catalog, state=state, parse_env_config=False).run()
    return RunOutput([json.loads(line) for line in out.getvalue().splitlines()])


def test_order_lines_alone_is_selectable() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=30, lines_per_order=(1, 3))) as sb:
        cfg = tap_config(sb)
        catalog = selected_catalog(cfg, {"order_lines"})
        output = run_with_catalog(cfg, catalog)
        assert orders_of(output) == []
        assert_once(lines_of(output), source_lines(sb))
        assert lines_of(run_with_catalog(cfg, catalog, output.final_state)) == []


def test_a_field_deselected_in_order_lines_stays_in_the_orders_lines() -> None:
    with SandboxServer(SandboxConfig(seed=SEED, order_count=30, lines_per_order=(1, 3))) as sb:
        cfg = tap_config(sb)
        item = ["order_lines", "properties", "buyerLine", "properties", "item"]
        catalog = selected_catalog(cfg, {"orders", "order_lines"}, deselect=[item])
        output = run_with_catalog(cfg, catalog)
        assert_once(lines_of(output), source_lines(sb))
        assert all("item" not in line["buyerLine"] for line in output.stream_records("order_lines"))
        assert all(
            "item" in line["buyerLine"] for order in output.records for line in order["lines"]
        )


def test_the_log_does_not_get_lines_per_order(caplog: pytest.LogCaptureFixture) -> None:
    """The SDK logs a sync announcement and two METRIC lines for each child sync, that is
    for each order: 60,000 log lines for 20,000 orders. One count for the run instead."""
    caplog.set_level(logging.INFO)
    with SandboxServer(SandboxConfig(seed=SEED, order_count=120, lines_per_order=(1, 3))) as sb:
        output = run_tap(tap_config(sb))
    about_lines = [r.getMessage() for r in caplog.records if "order_lines" in r.getMessage()]
    assert len(about_lines) <= 3
    counts = [m for m in about_lines if '"metric":"record_count"' in m]
    assert len(counts) == 1
    assert f'"value":{len(lines_of(output))}' in counts[0]
