"""Every column of every order and order line in PostgreSQL equals the sandbox's, as shipped.

The shipped configuration (meltano.yml) turns record validation off, loads with COPY, stores nested
arrays as one jsonb value and loads each line once, in ``order_lines`` (``orders.lines`` is
deselected). None of that may change a single value, also for text that COPY and array literals
treat specially.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg.types.json import set_json_loads

from tap_tradecloud.sandbox import SandboxConfig, SandboxServer, generate_orders
from tests.e2e.pipeline import PG_DSN, MeltanoProject, Warehouse

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Characters that COPY's text format, array literals or JSON escape specially.
AWKWARD_TEXT = [
    'quote " and backslash \\ and \\N and \\. alone',
    "tab\tnewline\ncarriage return\r end",
    "braces {a,b} comma, semicolon; 'single' NULL null",
    "unicode: Größe, 注文, emoji \U0001f69a, right-to-left \u05d0\u05d1",
]
SDC_COLUMNS = "_sdc_"
DESELECTED_ORDER_COLUMNS = {"lines"}  # meltano.yml: each line is a row of order_lines instead
LINE_HEADER_KEYS = {
    "order_id": ("id",),
    "buyer_company_id": ("buyerOrder", "companyId"),
    "supplier_company_id": ("supplierOrder", "companyId"),
    "purchase_order_number": ("buyerOrder", "purchaseOrderNumber"),
}


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


def loaded_rows(schema: str, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``, without the ``_sdc_*`` columns; jsonb numbers as Decimals."""
    with psycopg.connect(PG_DSN) as conn:
        set_json_loads(partial(json.loads, parse_float=decimal.Decimal), conn)
        cursor = conn.execute(f'select * from "{schema}".{table}')
        columns = [column.name for column in cursor.description or ()]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return [{k: v for k, v in row.items() if not k.startswith(SDC_COLUMNS)} for row in rows]


def assert_equal_columns(row: dict[str, Any], truth: dict[str, Any], what: object) -> None:
    """Every field of ``truth`` has its column and value; columns it lacks are null."""
    assert set(truth) <= set(row), (what, set(truth) - set(row))
    for column, value in row.items():
        expected = expected_value(column, truth[column]) if column in truth else None
        assert value == expected, (what, column)


def expected_line(order: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
    header = {}
    for key, path in LINE_HEADER_KEYS.items():
        value: Any = order
        for step in path:
            value = value[step]
        header[key] = value
    return {**line, **header}


#: Top-level columns the schema declares with ``format: date``: target-postgres makes them `date`.
DATE_COLUMNS = {"firstDeliveryDate"}


def expected_value(column: str, value: Any) -> Any:
    if column == "lastUpdatedAt":
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    if column in DATE_COLUMNS and value is not None:
        return dt.date.fromisoformat(value)
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

    orders_loaded = {row["id"]: row for row in loaded_rows(warehouse.schema, "orders")}
    assert set(orders_loaded) == set(truth)
    for order_id, order in truth.items():
        expected = {k: v for k, v in order.items() if k not in DESELECTED_ORDER_COLUMNS}
        assert_equal_columns(orders_loaded[order_id], expected, order_id)
    lines_loaded = {
        (row["order_id"], row["id"]): row for row in loaded_rows(warehouse.schema, "order_lines")
    }
    lines_truth = {
        (order["id"], line["id"]): expected_line(order, line)
        for order in truth.values()
        for line in order["lines"]
    }
    assert set(lines_loaded) == set(lines_truth)
    for key, line in lines_truth.items():
        assert_equal_columns(lines_loaded[key], line, key)
    awkward = [orders_loaded[order["id"]] for order in orders[: len(AWKWARD_TEXT)]]
    assert [row["buyerOrder"]["description"] for row in awkward] == AWKWARD_TEXT
    first_lines = [lines_loaded[order["id"], order["lines"][0]["id"]] for order in orders[:4]]
    assert [row["buyerLine"]["description"] for row in first_lines] == AWKWARD_TEXT
