"""End to end: `meltano run tap-tradecloud target-postgres` against the sandbox, into PostgreSQL.

Every test here drives the real pieces as a user would: the sandbox serves the API and fires
webhooks, the receiver is started from its CLI, Meltano runs the tap and target-postgres, and the
assertions read the tables in PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import psutil
import pytest

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer, free_port
from tests.e2e.pipeline import (
    WEBHOOK_TOKEN,
    MeltanoProject,
    Receiver,
    Warehouse,
    query_duckdb,
    running,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SENTINEL = "2000-01-01 00:00:00"


@pytest.fixture
def warehouse() -> Iterator[Warehouse]:
    wh = Warehouse(schema=f"e2e_{uuid.uuid4().hex[:10]}")
    yield wh
    wh.drop()


def loaded_orders(wh: Warehouse) -> dict[str, int]:
    return dict(wh.query('select id, version from "{schema}".orders'))


def sandbox_orders(sb: SandboxServer) -> dict[str, int]:
    return {order["id"]: order["version"] for order in sb.orders()}


def mark_all_rows_old(wh: Warehouse, *tables: str) -> None:
    for table in tables:
        wh.query(f'update "{{schema}}".{table} set _sdc_batched_at = %s returning 1', SENTINEL)


def rows_loaded_since_mark(wh: Warehouse, table: str, key: str) -> list[str]:
    rows = wh.query(
        f'select {key} from "{{schema}}".{table} '
        "where _sdc_batched_at is distinct from %s::timestamp",
        SENTINEL,
    )
    return sorted(row[0] for row in rows)


def delivered_event_ids(sb: SandboxServer) -> list[str]:
    return sorted(entry.message_id for entry in sb.webhook_log)


def test_pipeline_loads_everything_once_then_only_what_changed(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    spool_dir = tmp_path / "spool"
    receiver = Receiver(spool_dir=spool_dir, port=free_port())
    config = SandboxConfig(
        seed=7,
        order_count=300,
        lines_per_order=(1, 5),
        webhook_url=receiver.url,
        webhook_auth=("bearer", WEBHOOK_TOKEN),
    )
    with running(receiver), SandboxServer(config) as sb:
        project = MeltanoProject(tmp_path, sb.api_url, spool_dir, warehouse.schema)
        sb.change_orders(10)
        assert sb.wait_for_webhooks(timeout=30)

        # Run 1: every order, at its latest version, and every delivered webhook, once.
        project.run_pipeline()
        assert loaded_orders(warehouse) == sandbox_orders(sb)
        events = warehouse.query('select event_id from "{schema}".webhook_events')
        assert sorted(row[0] for row in events) == delivered_event_ids(sb)
        assert len(events) == 10

        # Run 2: nothing changed, nothing is loaded again.
        mark_all_rows_old(warehouse, "orders", "webhook_events")
        project.run_pipeline()
        assert rows_loaded_since_mark(warehouse, "orders", "id") == []
        assert rows_loaded_since_mark(warehouse, "webhook_events", "event_id") == []

        # Run 3: exactly the K changed orders and their K webhooks.
        changed = sb.change_orders(7)
        assert sb.wait_for_webhooks(timeout=30)
        mark_all_rows_old(warehouse, "orders", "webhook_events")
        project.run_pipeline()
        assert rows_loaded_since_mark(warehouse, "orders", "id") == sorted(changed)
        assert loaded_orders(warehouse) == sandbox_orders(sb)
        new_events = rows_loaded_since_mark(warehouse, "webhook_events", "event_id")
        assert len(new_events) == 7
        assert sorted(warehouse.query('select event_id from "{schema}".webhook_events')) == sorted(
            (event_id,) for event_id in delivered_event_ids(sb)
        )


def test_pipeline_loads_shipments_once_then_only_what_changed(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    config = SandboxConfig(seed=5, order_count=30, lines_per_order=(1, 3), shipment_count=150)
    with SandboxServer(config) as sb:
        project = MeltanoProject(tmp_path, sb.api_url, spool_dir, warehouse.schema)
        project.run_pipeline()
        expected = sorted(s["id"] for s in sb.shipments.store.snapshot())
        loaded = warehouse.query('select id, "meta" from "{schema}".shipments order by id')
        assert [row[0] for row in loaded] == expected
        assert all(row[1]["lastUpdatedAt"] for row in loaded)

        mark_all_rows_old(warehouse, "shipments")
        project.run_pipeline()
        assert rows_loaded_since_mark(warehouse, "shipments", "id") == []

        changed = sb.change_shipments(6)
        mark_all_rows_old(warehouse, "shipments")
        project.run_pipeline()
        assert rows_loaded_since_mark(warehouse, "shipments", "id") == sorted(changed)


def kill_target(pipeline: psutil.Process) -> bool:
    for child in pipeline.children(recursive=True):
        try:
            if "target-postgres" in " ".join(child.cmdline()):
                child.kill()
                return True
        except psutil.NoSuchProcess:
            continue
    return False


def test_run_after_target_killed_midway_loses_nothing(tmp_path: Path, warehouse: Warehouse) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    config = SandboxConfig(seed=11, order_count=3000, lines_per_order=(1, 3))
    with SandboxServer(config) as sb:
        slow = MeltanoProject(
            tmp_path,
            sb.api_url,
            spool_dir,
            warehouse.schema,
            extra_env={
                "TAP_TRADECLOUD_MAX_REQUESTS_PER_SECOND": "3",
                "TARGET_POSTGRES_BATCH_SIZE_ROWS": "100",
            },
        )
        pipeline = slow.start_pipeline()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if (
                    warehouse.table_exists("orders")
                    and warehouse.query('select count(*) from "{schema}".orders')[0][0] >= 200
                ):
                    break
                assert pipeline.poll() is None, "the pipeline finished before the target was killed"
                time.sleep(0.2)
            assert kill_target(psutil.Process(pipeline.pid)), "target-postgres process not found"
            output, _ = pipeline.communicate(timeout=120)
        finally:
            if pipeline.poll() is None:
                pipeline.kill()
        assert pipeline.returncode != 0, output[-2000:]
        partially_loaded = len(loaded_orders(warehouse))
        assert 0 < partially_loaded < len(sb.orders())

        MeltanoProject(tmp_path, sb.api_url, spool_dir, warehouse.schema).run_pipeline()
        assert loaded_orders(warehouse) == sandbox_orders(sb)


def test_embedded_duckdb_fallback_loads_every_order(tmp_path: Path) -> None:
    # `make demo` loads here when no PostgreSQL answers. duckdb 2.x once dropped a row per batch.
    database = tmp_path / "warehouse.duckdb"
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    with SandboxServer(SandboxConfig(seed=3, order_count=400, lines_per_order=(1, 3))) as sb:
        project = MeltanoProject(
            tmp_path,
            sb.api_url,
            spool_dir,
            "unused",
            extra_env={"TARGET_DUCKDB_PATH": str(database)},
        )
        project.run_pipeline("target-duckdb")
        rows = query_duckdb(database, "select id, version from tradecloud.orders")
        assert dict(rows) == sandbox_orders(sb)
