"""The README's "Query it" SQL, run after `meltano run` on the sandbox, against the sandbox's truth.

The queries are read from README.md itself, so the manual cannot drift from what is tested.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import pytest

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer
from tests.e2e.pipeline import MELTANO, REPO_ROOT, MeltanoProject, Warehouse, postgres_answers
from tests.test_order_lines import change

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
OPEN_PROCESS = {"Issued", "InProgress", "Confirmed"}
CLOSED_LOGISTICS = {"Delivered", "Cancelled"}


@pytest.fixture(scope="module", autouse=True)
def _pipeline_prerequisites() -> None:
    if not MELTANO.exists() or not postgres_answers():
        pytest.fail("end-to-end prerequisites missing: `make install` and PostgreSQL on :5432")


@pytest.fixture
def warehouse() -> Iterator[Warehouse]:
    wh = Warehouse(schema=f"e2e_{uuid.uuid4().hex[:10]}")
    yield wh
    wh.drop()


def readme_queries() -> dict[str, str]:
    """The ```sql blocks of README.md that start with ``-- query: NAME``."""
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```sql\n-- query: (\S+)\n(.*?)```", readme, flags=re.DOTALL)
    return {name: sql.replace("tradecloud.", '"{schema}".') for name, sql in blocks}


def is_open(line: dict[str, Any]) -> bool:
    status = line["status"]
    return (
        status["processStatus"] in OPEN_PROCESS
        and status["logisticsStatus"] not in CLOSED_LOGISTICS
    )


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def utc(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def lines_with_orders(sb: SandboxServer) -> list[tuple[dict, dict]]:
    return [(order, line) for order in sb.orders() for line in order["lines"]]


def open_lines_per_supplier(sb: SandboxServer) -> list[tuple]:
    return [
        (
            order["supplierOrder"]["companyId"],
            order["buyerOrder"]["purchaseOrderNumber"],
            line["buyerLine"]["position"],
            sorted(
                day(d["date"])
                for d in (line.get("confirmedLine") or {}).get("deliverySchedule") or []
            ),
        )
        for order, line in lines_with_orders(sb)
        if is_open(line)
    ]


def lines_changed_since(sb: SandboxServer, today: dt.date) -> list[tuple]:
    return [
        (order["id"], line["id"], utc(line["lastUpdatedAt"]))
        for order, line in lines_with_orders(sb)
        if utc(line["lastUpdatedAt"]).date() >= today
    ]


def open_value_by_currency(sb: SandboxServer) -> list[tuple]:
    totals: dict[str, Decimal] = {}
    for _, line in lines_with_orders(sb):
        if not is_open(line):
            continue
        net = line["prices"]["netPrice"]["priceInTransactionCurrency"]
        quantity = sum(Decimal(str(d["quantity"])) for d in line["deliverySchedule"])
        unit = Decimal(str(line["prices"].get("priceUnitQuantity") or 1))
        value = quantity * Decimal(str(net["value"])) / unit
        totals[net["currencyIso"]] = totals.get(net["currencyIso"], Decimal(0)) + value
    cent = Decimal("0.01")
    return [(c, v.quantize(cent, rounding=ROUND_HALF_UP)) for c, v in sorted(totals.items())]


def overdue_lines(sb: SandboxServer, today: dt.date) -> list[tuple]:
    rows = []
    for order, line in lines_with_orders(sb):
        confirmed = (line.get("confirmedLine") or {}).get("deliverySchedule")
        schedule = confirmed if confirmed is not None else line["deliverySchedule"]
        dates = [day(d["date"]) for d in schedule]
        if is_open(line) and dates and min(dates) < today:
            rows.append((order["supplierOrder"]["companyId"], order["id"], line["id"], min(dates)))
    return rows


def test_readme_queries_answer_what_the_sandbox_holds(tmp_path: Path, warehouse: Warehouse) -> None:
    queries = readme_queries()
    assert sorted(queries) == [
        "lines-changed-today",
        "open-lines-per-supplier",
        "open-value-by-currency",
        "overdue-lines",
    ]
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    config = SandboxConfig(seed=5, order_count=200, lines_per_order=(1, 4))
    with SandboxServer(config) as sb:
        project = MeltanoProject(tmp_path, sb.api_url, spool_dir, warehouse.schema)
        project.run_pipeline()
        ids = sorted(order["id"] for order in sb.orders())
        for order_id in ids[:5]:
            change(sb, order_id, line=True)
        sb.change_orders(15)  # status moves, as suppliers and buyers make them
        project.run_pipeline()

        loaded = warehouse.query('select order_id, id, "lastUpdatedAt" from "{schema}".order_lines')
        assert sorted(loaded) == sorted(
            (o["id"], li["id"], utc(li["lastUpdatedAt"])) for o, li in lines_with_orders(sb)
        )
        (today,) = warehouse.query("select (now() at time zone 'utc')::date")[0]

        def run(name: str) -> list[tuple]:
            return [tuple(row) for row in warehouse.query(queries[name])]

        assert sorted(run("open-lines-per-supplier")) == sorted(open_lines_per_supplier(sb))
        changed_today = run("lines-changed-today")
        assert sorted(changed_today) == sorted(lines_changed_since(sb, today))
        assert len(changed_today) >= 5
        assert run("open-value-by-currency") == open_value_by_currency(sb)
        overdue = run("overdue-lines")
        assert sorted(overdue) == sorted(overdue_lines(sb, today))
        assert overdue
