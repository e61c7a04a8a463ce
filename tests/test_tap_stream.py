"""The orders stream: request bodies, records, state, settings and the CLI (requests-mock)."""

from __future__ import annotations

import json
import typing as t

import pytest
from click.testing import CliRunner
from singer_sdk.exceptions import ConfigValidationError

from tap_tradecloud.tap import TapTradecloud
from tests.tap_helpers import (
    API,
    FakeTradecloud,
    config,
    make_order,
    make_shipment,
    run_tap,
    run_tap_failing,
    ts,
)

if t.TYPE_CHECKING:
    from pathlib import Path

    import requests_mock as rm


def search_bodies(mock: rm.Mocker) -> list[dict]:
    return [r.json() for r in mock.request_history if "/order-search/" in r.path]


def test_search_body_carries_status_and_company_filters_and_asks_for_the_sort(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    run_tap(
        config(
            polling_api="search",
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
            "sort": [{"field": "lastUpdatedAt", "order": "asc"}],
            "offset": 0,
            "limit": 20,
        }
    ]


def test_poll_is_the_default_with_the_exclusive_filter_one_ms_early_and_no_sort(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    output = run_tap(config(company_id="c-1", start_date="2024-01-01T01:00:00+01:00"))
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
    requests_mock.post(f"{API}/order-search/poll", json={"data": [order], "total": 1})
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
        ({"auth_method": "basic", "polling_api": "search"}, "polling_api=poll"),
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
    assert sorted(streams) == ["order_lines", "orders", "shipments"]
    assert streams["orders"]["replication_key"] == "lastUpdatedAt"
    assert streams["shipments"]["replication_key"] == "lastUpdatedAt"
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
    assert search_bodies(requests_mock)[0]["filters"] == {"lastUpdatedAfter": ts(89, 999)}
    memory = output.bookmark["emitted_recently"]
    assert memory["high_water"] == ts(100)
    assert set(memory["orders"]) == {o["id"] for o in fake.orders if o["lastUpdatedAt"] >= ts(90)}


def test_lookback_never_reads_before_start_date(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    cfg = config(lookback_seconds=3600, polling_api="search")
    first = run_tap(cfg)
    assert len(first.records) == 5
    assert search_bodies(requests_mock)[0]["filters"] == {"lastUpdatedSince": ts(0)}
    assert run_tap(cfg, state=first.final_state).records == []
    assert search_bodies(requests_mock)[1]["filters"] == {"lastUpdatedSince": ts(0)}


def test_all_streams_share_one_session_and_one_authenticator(tmp_path: Path) -> None:
    tap = TapTradecloud(config=config(spool_dir=str(tmp_path)), parse_env_config=False)
    orders, events = tap.streams["orders"], tap.streams["webhook_events"]
    assert orders.authenticator is events.authenticator  # type: ignore[attr-defined]
    assert orders.requests_session is events.requests_session  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("polling_api", "advice"),
    [("poll", "set polling_api to search"), ("search", "report it to Tradecloud support")],
)
def test_a_page_out_of_order_stops_the_run_with_the_bookmark_before_it(
    fake: FakeTradecloud, requests_mock: rm.Mocker, polling_api: str, advice: str
) -> None:
    first_page = [make_order(i, ts(i)) for i in range(10)]
    unsorted_page = [make_order(10, ts(20)), make_order(11, ts(15)), make_order(12, ts(30))]
    path = "search" if polling_api == "search" else "poll"
    requests_mock.post(
        f"{API}/order-search/{path}",
        [{"json": {"data": first_page, "total": 13}}, {"json": {"data": unsorted_page}}],
    )
    output, error = run_tap_failing(config(polling_api=polling_api, page_size=10))
    assert error is not None
    message = str(error)
    assert "out of lastUpdatedAt order" in message
    assert f"order buyer-PO00011 (lastUpdatedAt {ts(15)}) came after orders updated at" in message
    assert "the bookmark stays before this page" in message
    assert advice in message
    assert [r["id"] for r in output.records] == [o["id"] for o in first_page]
    assert output.bookmark["replication_key_value"] == ts(9)  # not past the unsorted page


def test_shipments_poll_with_the_buyer_company_filter_and_lift_last_updated_at(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    fake.shipments = [make_shipment(i, f"2024-01-01T01:00:0{i}.5+01:00") for i in range(3)]
    output = run_tap(config(company_id="c-1"), stream="shipments")
    assert [r["lastUpdatedAt"] for r in output.records] == [ts(i, 500) for i in range(3)]
    assert output.records[0]["meta"]["lastUpdatedAt"] == "2024-01-01T01:00:00.5+01:00"
    assert output.bookmark["replication_key_value"] == ts(2, 500)
    bodies = [r.json() for r in requests_mock.request_history if r.path == "/v2/shipment/poll"]
    assert bodies == [
        {
            "filters": {
                "lastUpdatedAfter": "2023-12-31T23:59:59.999Z",
                "buyerShipment": {"companyId": "c-1"},
            },
            "offset": 0,
            "limit": 100,
        }
    ]
    again = run_tap(config(company_id="c-1"), state=output.final_state, stream="shipments")
    assert again.records == []


def test_shipments_of_a_supplier_are_read_unfiltered(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    fake.shipments = [make_shipment(1, ts(1))]
    run_tap(config(company_id="c-1", company_role="supplier"), stream="shipments")
    (body,) = [r.json() for r in requests_mock.request_history if r.path == "/v2/shipment/poll"]
    assert body["filters"] == {"lastUpdatedAfter": "2023-12-31T23:59:59.999Z"}


def test_a_shipment_without_last_updated_at_stops_with_a_clear_error(
    fake: FakeTradecloud, requests_mock: rm.Mocker
) -> None:
    broken = make_shipment(2, ts(2))
    del broken["meta"]["lastUpdatedAt"]
    page = {"data": [make_shipment(1, ts(1)), broken], "total": 2}
    requests_mock.post(f"{API}/shipment/poll", json=page)
    output, error = run_tap_failing(config(), stream="shipments")
    assert error is not None
    assert "shipment 'shipment-00002' without meta.lastUpdatedAt" in str(error)
    assert output.records == []


def test_a_bookmark_written_by_search_is_read_by_poll(fake: FakeTradecloud) -> None:
    fake.orders = [make_order(i, ts(i // 3)) for i in range(30)]
    first = run_tap(config(polling_api="search", page_size=10))
    assert len(first.records) == 30
    assert run_tap(config(), state=first.final_state).records == []
    fake.update(fake.orders[4]["id"], ts(50))
    (changed,) = run_tap(config(), state=first.final_state).records
    assert (changed["id"], changed["version"]) == (fake.orders[4]["id"], 2)
