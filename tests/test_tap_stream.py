"""The orders stream: request bodies, records, state, settings and the CLI (requests-mock)."""

from __future__ import annotations

import json
import typing as t

import pytest
import requests_mock as rm
from click.testing import CliRunner
from singer_sdk.exceptions import ConfigValidationError

from tap_tradecloud.tap import TapTradecloud
from tests.tap_helpers import API, FakeTradecloud, config, make_order, run_tap, ts

if t.TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def fake(requests_mock: rm.Mocker) -> FakeTradecloud:
    server = FakeTradecloud(orders=[make_order(i, ts(i)) for i in range(5)])
    server.install(requests_mock)
    return server


def search_bodies(mock: rm.Mocker) -> list[dict]:
    return [r.json() for r in mock.request_history if "/order-search/" in r.path]


def test_search_body_carries_status_and_company_filters(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    run_tap(
        config(
            process_status=["Issued", "Confirmed"],
            logistics_status=["Open"],
            company_id="c-1",
            company_role="supplier",
            page_size=20,
        )
    )
    assert search_bodies(requests_mock) == [
        {
            "filters": {
                "lastUpdatedSince": "2024-01-01T00:00:00.000Z",
                "status": {"processStatus": ["Issued", "Confirmed"], "logisticsStatus": ["Open"]},
                "supplierOrder": {"companyId": ["c-1"]},
            },
            "offset": 0,
            "limit": 20,
        }
    ]


def test_poll_body_uses_the_exclusive_filter_one_ms_early(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    output = run_tap(
        config(polling_api="poll", company_id="c-1", start_date="2024-01-01T01:00:00+01:00")
    )
    assert len(output.records) == 5
    assert [r.path for r in requests_mock.request_history][1] == "/v2/order-search/poll"
    assert search_bodies(requests_mock) == [
        {
            "filters": {"lastUpdatedAfter": "2023-12-31T23:59:59.999Z", "companyId": "c-1"},
            "offset": 0,
            "limit": 100,
        }
    ]


def test_records_are_normalised_and_keep_unknown_fields(requests_mock: rm.Mocker) -> None:
    order = make_order(1, "2024-01-01T02:00:00.5+02:00", newTopLevel="kept")
    order["buyerOrder"]["fieldAddedLater"] = {"x": 1}
    order["lines"][0]["lineFieldAddedLater"] = [1, 2]
    server = FakeTradecloud()
    server.install(requests_mock)
    requests_mock.post(f"{API}/order-search/search", json={"data": [order], "total": 1})
    (record,) = run_tap(config()).records
    assert record["lastUpdatedAt"] == "2024-01-01T00:00:00.500Z"
    assert record["newTopLevel"] == "kept"
    assert record["buyerOrder"]["fieldAddedLater"] == {"x": 1}
    assert record["lines"][0]["lineFieldAddedLater"] == [1, 2]
    assert record["lines"][0]["lastUpdatedAt"] == "2024-01-01T02:00:00.5+02:00"


def test_state_is_emitted_at_least_every_page(fake: FakeTradecloud) -> None:
    fake.orders = [make_order(i, ts(i)) for i in range(230)]
    output = run_tap(config(page_size=50))
    assert len(output.records) == 230
    since_state = 0
    for message in output.messages:
        if message["type"] == "RECORD" and message["stream"] == "orders":
            since_state += 1
            assert since_state <= 50
        elif message["type"] == "STATE":
            since_state = 0


def test_resume_inside_a_tie_group_skips_what_the_state_says_was_emitted(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    fake.orders = [make_order(i, ts(3)) for i in range(30)]
    emitted = [o["id"] for o in fake.orders[:10]]
    state = {
        "bookmarks": {
            "orders": {
                "replication_key": "lastUpdatedAt",
                "replication_key_value": ts(3),
                "emitted_at_bookmark": {"lastUpdatedAt": ts(3), "ids": emitted},
            }
        }
    }
    output = run_tap(config(), state=state)
    assert [r["id"] for r in output.records] == [o["id"] for o in fake.orders[10:]]
    assert search_bodies(requests_mock)[0]["offset"] == 9
    assert output.bookmark["emitted_at_bookmark"]["ids"] == [o["id"] for o in fake.orders]


def test_state_from_a_file_keeps_the_emitted_ids(
    fake: FakeTradecloud, requests_mock: rm.Mocker, tmp_path: Path
) -> None:
    first = run_tap(config())
    (tmp_path / "config.json").write_text(json.dumps(config()))
    (tmp_path / "state.json").write_text(json.dumps(first.final_state))
    result = CliRunner().invoke(
        TapTradecloud.cli,
        ["--config", str(tmp_path / "config.json"), "--state", str(tmp_path / "state.json")],
    )
    assert result.exit_code == 0, result.output
    messages = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [m for m in messages if m["type"] == "RECORD"] == []
    final = [m["value"] for m in messages if m["type"] == "STATE"][-1]
    assert final["bookmarks"]["orders"] == first.bookmark
    assert requests_mock.request_history[-1].path == "/v2/authentication/logout"


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"api_url": "api.tradecloud1.com/v2"}, "api_url"),
        ({"api_url": "ftp://example.com/v2"}, "api_url"),
        ({"start_date": "2024-01-01T00:00:00"}, "start_date"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"max_requests_per_second": 0}, "max_requests_per_second"),
        ({"max_requests_per_second": -1}, "max_requests_per_second"),
        ({"process_status": ["Bogus"]}, "process_status"),
        ({"logistics_status": ["Lost"]}, "logistics_status"),
        ({"auth_method": "oauth"}, "auth_method"),
        ({"polling_api": "stream"}, "polling_api"),
        ({"company_role": "both"}, "company_role"),
        ({"password": ""}, "password"),
    ],
)
def test_bad_setting_fails_before_any_request_naming_it(
    requests_mock: rm.Mocker, overrides: dict, setting: str
) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        TapTradecloud(config=config(**overrides), parse_env_config=False).run()
    assert any(setting in error for error in caught.value.errors), caught.value.errors
    assert requests_mock.request_history == []


def test_cli_about_discover_version_and_test(fake: FakeTradecloud, tmp_path: Path) -> None:
    runner = CliRunner()
    about = runner.invoke(TapTradecloud.cli, ["--about", "--format=markdown"])
    assert about.exit_code == 0
    assert "| page_size |" in about.stdout
    version = runner.invoke(TapTradecloud.cli, ["--version"])
    assert version.exit_code == 0
    assert "tap-tradecloud v" in version.stdout
    discover = runner.invoke(TapTradecloud.cli, ["--discover"])
    assert discover.exit_code == 0
    streams = {s["tap_stream_id"]: s for s in json.loads(discover.stdout)["streams"]}
    assert sorted(streams) == ["order_lines", "orders"]
    assert streams["orders"]["replication_key"] == "lastUpdatedAt"
    assert streams["order_lines"]["key_properties"] == ["order_id", "id"]
    (tmp_path / "config.json").write_text(json.dumps(config()))
    test = runner.invoke(TapTradecloud.cli, ["--config", str(tmp_path / "config.json"), "--test"])
    assert test.exit_code == 0, test.output
    records = [json.loads(line) for line in test.stdout.splitlines() if '"RECORD"' in line]
    assert [r["stream"] for r in records if r["stream"] == "orders"] == ["orders"]
    assert fake.logouts == 1


def test_a_poll_filter_that_also_includes_its_boundary_loses_and_repeats_nothing(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    fake.inclusive_after = True
    fake.orders = [make_order(100 * s + i, ts(s, 500)) for s in range(10) for i in range(12)]
    fake.orders += [make_order(100 * s + 99, ts(s, 499)) for s in range(10)]
    output = run_tap(config(polling_api="poll", page_size=10))
    assert sorted(output.keys) == sorted((o["id"], 1) for o in fake.orders)
    assert run_tap(config(polling_api="poll"), state=output.final_state).records == []


def test_lookback_rereads_the_window_and_sends_only_unseen_versions(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    fake.orders = [make_order(i, ts(i)) for i in range(80, 101)]
    late = make_order(999, ts(95, 5))  # appeared after the previous run read past it
    fake.orders.append(late)
    sent = {o["id"]: o["lastUpdatedAt"] for o in fake.orders if o is not late}
    sent["gone"] = ts(50)  # older than any window: forgotten
    state = {
        "bookmarks": {
            "orders": {
                "replication_key": "lastUpdatedAt",
                "replication_key_value": ts(100),
                "emitted_recently": {"high_water": ts(100), "orders": sent},
            }
        }
    }
    output = run_tap(config(lookback_seconds=10), state=state)
    assert output.keys == [(late["id"], 1)]
    assert search_bodies(requests_mock)[0]["filters"] == {"lastUpdatedSince": ts(90)}
    memory = output.bookmark["emitted_recently"]
    assert memory["high_water"] == ts(100)
    assert set(memory["orders"]) == {o["id"] for o in fake.orders if o["lastUpdatedAt"] >= ts(90)}


def test_lookback_never_reads_before_start_date(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    first = run_tap(config(lookback_seconds=3600))
    assert len(first.records) == 5
    assert search_bodies(requests_mock)[0]["filters"] == {"lastUpdatedSince": ts(0)}
    assert run_tap(config(lookback_seconds=3600), state=first.final_state).records == []
    assert search_bodies(requests_mock)[1]["filters"] == {"lastUpdatedSince": ts(0)}


def test_all_streams_share_one_session_and_one_authenticator(tmp_path: Path) -> None:
    tap = TapTradecloud(config=config(spool_dir=str(tmp_path)), parse_env_config=False)
    orders, events = tap.streams["orders"], tap.streams["webhook_events"]
    assert orders.authenticator is events.authenticator  # type: ignore[attr-defined]
    assert orders.requests_session is events.requests_session  # type: ignore[attr-defined]
