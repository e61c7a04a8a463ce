"""Every column of every order in PostgreSQL equals the sandbox's order, under the shipped config.

The shipped target-postgres configuration turns record validation off, loads with COPY and stores
``orders.lines`` as one jsonb value (meltano.yml). None of that may change a single value, also for
text that COPY and array literals treat specially.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import set_json_loads

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer, generate_orders
from tests.e2e.pipeline import PG_DSN, MeltanoProject, Warehouse
from tests.e2e.test_pipeline import _pipeline_prerequisites  # noqa: F401  (autouse fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Characters that COPY's text format, array literals or JSON escape specially.
AWKWARD_TEXT = [
    'quote " and backslash \\ and \\N and \\. alone',
    "tab\tnewline\ncarriage return\r end",
    "braces {a,b} comma, semicolon; 'single' NULL null",
    "unicode: Größe, 注文, emoji \U0001f69a, right-to-left \u05d0\u05d1",
]
SDC_COLUMNS = "_sdc_"


@pytest.fixture
def warehouse() -> Iterator[Warehouse]:
    wh = Warehouse(schema=f"e2e_{uuid.uuid4().hex[:10]}")
    yield wh
    wh.drop()


def awkward_orders(count: int) -> list[dict[str, Any]]:
    orders = generate_orders(count, seed=23, lines_per_order=(1, 12))
    for number, order in enumerate(orders[: len(AWKWARD_TEXT) * 3]):
        text = AWKWARD_TEXT[number % len(AWKWARD_TEXT)]
        order["buyerOrder"]["description"] = text
        order["lines"][0]["buyerLine"]["description"] = text
        order["lines"][-1]["buyerLine"]["item"]["name"] = text
        order["lines"][0]["buyerLine"]["deliveryNote"] = {"nested": [text, None, 1.25]}
    return orders


def as_json_values(value: Any) -> Any:
    """What the API sends for ``value``: JSON with every number read as an exact Decimal."""
    return json.loads(json.dumps(value), parse_float=decimal.Decimal)


def loaded_rows(schema: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(PG_DSN) as conn:
        set_json_loads(partial(json.loads, parse_float=decimal.Decimal), conn)
        cursor = conn.execute(f'select * from "{schema}".orders')
        columns = [column.name for column in cursor.description or ()]
        return {row[0]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}


def expected_value(column: str, value: Any) -> Any:
    if column == "lastUpdatedAt":
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    return as_json_values(value)


def test_every_column_of_every_order_equals_the_sandbox(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    config = SandboxConfig(seed=23)
    orders = awkward_orders(2500)
    with SandboxServer(config, orders=orders) as sb:
        MeltanoProject(tmp_path, sb.api_url, spool_dir, warehouse.schema).run_pipeline()
        truth = {order["id"]: order for order in sb.orders()}

    rows = loaded_rows(warehouse.schema)
    assert set(rows) == set(truth)
    for order_id, order in truth.items():
        row = rows[order_id]
        loaded = {key: value for key, value in row.items() if not key.startswith(SDC_COLUMNS)}
        assert set(loaded) == set(order), order_id
        for column, value in loaded.items():
            assert value == expected_value(column, order[column]), (order_id, column)
    awkward = [rows[order["id"]] for order in orders[: len(AWKWARD_TEXT)]]
    assert [row["buyerOrder"]["description"] for row in awkward] == AWKWARD_TEXT
