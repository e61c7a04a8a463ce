"""A seeded generator of realistic Tradecloud orders (shape: reference/tradecloud-api.md section 5).

Everything drawn here comes from one ``random.Random(seed)``, so the same seed and the same calls
give the same orders. Timestamps come in bursts of identical milliseconds, as ERP batch imports
produce them, because that is what makes paging on ``lastUpdatedAt`` hard.
"""

from __future__ import annotations

import gc
import random
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

from tap_tradecloud.sandbox.clock import format_ms, parse_ms

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

Order = dict[str, Any]
Line = dict[str, Any]

PROCESS_STATUSES = ("Issued", "InProgress", "Confirmed", "Rejected", "Completed", "Cancelled")
LOGISTICS_STATUSES = ("Open", "Produced", "ReadyToShip", "Shipped", "Delivered", "Cancelled")
# A delivery line (an entry of a line's delivery schedule) is never Cancelled; its line is.
DELIVERY_LINE_STATUSES = ("Open", "Produced", "ReadyToShip", "Shipped", "Delivered")
IN_PROGRESS_STATUSES = (
    "OpenSupplierProposal",
    "RejectedSupplierProposal",
    "ReissuedRejectedLine",
    "OpenBuyerReopenRequest",
    "OpenSupplierReopenRequest",
    "OpenBuyerReconfirmationRequest",
    "OpenSupplierShipmentRescheduleRequest",
    "ApprovedDeliverySchedule",
    "RejectedDeliverySchedule",
    "RevertedCompletedLine",
    "RevertedCancelledLine",
)
# Logistics progress of a line that is still alive, in order; the order shows its slowest line.
_LOGISTICS_PROGRESS = ("Open", "Produced", "ReadyToShip", "Shipped", "Delivered")
_DEAD = ("Cancelled", "Rejected")

DEFAULT_START = "2024-01-01T00:00:00.000Z"
_UNITS = ("PCE", "KGM", "MTR", "LTR", "BX")
_CURRENCIES = ("EUR", "EUR", "EUR", "USD", "GBP")
_NOUNS = ("Round tube", "Flange", "Bracket", "Hex bolt", "Gasket", "Bearing", "Valve", "Cable")
_CITIES = (("Rotterdam", "NL"), ("Eindhoven", "NL"), ("Antwerp", "BE"), ("Duisburg", "DE"))
_QUANTITIES = (1, 5, 10, 25, 50, 100, 250, 1000)
# Process statuses drawn for generated orders, weighted as in practice: mostly open or confirmed.
_STATUS_DRAW = (
    ("Issued",) * 30
    + ("InProgress",) * 15
    + ("Confirmed",) * 35
    + ("Rejected",) * 3
    + ("Completed",) * 12
    + ("Cancelled",) * 5
)


def order_process_status(line_statuses: Iterable[str]) -> str:
    """The order-level process status that Tradecloud derives from its lines' statuses.

    All lines alike give that status; cancelled or rejected lines do not hold back the others;
    confirmed lines next to completed ones make a ``Confirmed`` order (a confirmed order may hold
    completed or cancelled lines); any other mix is ``InProgress`` ("InProgress once the first
    line is confirmed").
    """
    statuses = set(line_statuses)
    if len(statuses) == 1:
        return statuses.pop()
    alive = statuses - set(_DEAD)
    if not alive:
        return "Cancelled" if "Cancelled" in statuses else "Rejected"
    if len(alive) == 1:
        return alive.pop()
    if alive == {"Confirmed", "Completed"}:
        return "Confirmed"
    return "InProgress"


def order_logistics_status(line_statuses: Iterable[str]) -> str:
    """The order-level logistics status: the least advanced line that is not cancelled."""
    alive = [status for status in line_statuses if status != "Cancelled"]
    if not alive:
        return "Cancelled"
    return min(alive, key=_LOGISTICS_PROGRESS.index)


def logistics_status_for(process_status: str, rng: random.Random) -> str:
    """A logistics status consistent with a line's process status."""
    if process_status == "Cancelled":
        return "Cancelled"
    if process_status == "Completed":
        return "Delivered"
    if process_status == "Confirmed":
        return rng.choice(("Open", "Open", "Produced", "ReadyToShip", "Shipped"))
    return "Open"


# The `reason` Tradecloud shows on a rejected or cancelled order or line; null otherwise.
_REASONS = {"Rejected": "Rejected by the supplier", "Cancelled": "Cancelled by the buyer"}
PORTAL_URL = "https://portal.tradecloud1.com/order/{order_id}"


def refresh_line_views(line: Line) -> None:
    """The fields Tradecloud derives from a line's delivery schedule, prices and status."""
    schedule = line["deliverySchedule"]
    line["deliveryScheduleIncludingRequests"] = schedule  # no open requests in the sandbox
    line["pricesIncludingRequests"] = line["prices"]
    line["firstDeliveryDate"] = min((delivery["date"] for delivery in schedule), default=None)
    line["reason"] = _REASONS.get(line["status"]["processStatus"])


def refresh_order_status(order: Order) -> None:
    """Recompute the order-level status (and what follows from it) after a line changed."""
    lines = order["lines"]
    for line in lines:
        refresh_line_views(line)
    order["status"] = {
        "processStatus": order_process_status(line["status"]["processStatus"] for line in lines),
        "logisticsStatus": order_logistics_status(
            line["status"]["logisticsStatus"] for line in lines
        ),
    }
    order["reason"] = _REASONS.get(order["status"]["processStatus"])


def _uuid(rng: random.Random) -> str:
    digits = f"{rng.getrandbits(128):032x}"
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-a{digits[17:20]}-{digits[20:]}"


def _day_number(epoch_ms: int) -> int:
    return date(1970, 1, 1).toordinal() + epoch_ms // 86_400_000


def _schedule(day_number: int, quantity: int, logistics: str | None) -> list[dict[str, Any]]:
    """One delivery line; ``logistics=None`` for the buyer's request, which has no status."""
    delivery: dict[str, Any] = {
        "position": "0001",
        "date": date.fromordinal(day_number).isoformat(),
        "quantity": quantity,
    }
    if logistics is not None:
        delivery["status"] = logistics if logistics in DELIVERY_LINE_STATUSES else "Open"
    return [delivery]


def _prices(value: float, unit: str, currency: str) -> dict[str, Any]:
    return {
        "grossPrice": {"priceInTransactionCurrency": {"value": value, "currencyIso": currency}},
        "netPrice": {"priceInTransactionCurrency": {"value": value, "currencyIso": currency}},
        "priceUnitOfMeasureIso": unit,
        "priceUnitQuantity": 1,
    }


class OrderFactory:
    """Makes orders and lines; one instance per seed keeps the draws reproducible."""

    def __init__(
        self, seed: int, lines_per_order: tuple[int, int] = (1, 50), stream: int = 0
    ) -> None:
        """Build a factory of orders for ``seed``.

        Companies and items depend on ``seed`` only; other draws also on ``stream``, so a
        second factory (the one that changes orders) shares the first one's world.
        """
        low, high = lines_per_order
        if not 1 <= low <= high:
            msg = f"lines_per_order must be (min, max) with 1 <= min <= max, got {lines_per_order}"
            raise ValueError(msg)
        self.lines_per_order = (low, high)
        rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
        self.buyer_ids = [_uuid(rng) for _ in range(3)]
        self.supplier_ids = [_uuid(rng) for _ in range(8)]
        self.user_ids = [_uuid(rng) for _ in range(6)]
        # (the item as a line shows it, its unit price)
        self.items: list[tuple[dict[str, str], float]] = [
            (
                {
                    "number": f"{10000 + n}",
                    "revision": rng.choice(("A", "B", "v2", "")),
                    "name": f"{rng.choice(_NOUNS)} {rng.randint(10, 90)}x{rng.randint(5, 60)}",
                    "purchaseUnitOfMeasureIso": rng.choice(_UNITS),
                    "supplierItemNumber": f"S-{rng.randint(100000, 999999)}",
                },
                round(rng.uniform(0.5, 2500.0), 2),
            )
            for n in range(200)
        ]
        self.rng = rng if stream == 0 else random.Random(f"{seed}/{stream}")  # noqa: S311

    def document(self) -> dict[str, Any]:
        """A random document reference attached to an order."""
        rng = self.rng
        return {
            "code": f"DOC{rng.randint(100000, 999999)}",
            "revision": rng.choice(("A", "B", "C")),
            "name": rng.choice(("Drawing", "Specification", "Quality certificate")),
            "objectId": _uuid(rng),
            "type": rng.choice(("General", "Drawing", "Quality")),
            "description": "Attached by the buyer",
        }

    def meta(self, epoch_ms: int, company_id: str) -> dict[str, Any]:
        """The ``meta`` block of an event: message id, creation time, source company."""
        rng = self.rng
        return {
            "messageId": _uuid(rng),
            "createdDateTime": format_ms(epoch_ms + rng.randint(1, 90)),
            "source": {
                "traceId": _uuid(rng),
                "userId": rng.choice(self.user_ids),
                "companyId": company_id,
            },
        }

    def line_status(self, order_status: str, deviation: float) -> dict[str, str]:
        """A line status: its order's stage, or with probability ``deviation`` one of its own."""
        rng = self.rng
        process = rng.choice(_STATUS_DRAW) if rng.random() < deviation else order_status
        status = {"processStatus": process, "logisticsStatus": logistics_status_for(process, rng)}
        if process == "InProgress":
            status["inProgressStatus"] = rng.choice(IN_PROGRESS_STATUSES)
        return status

    def line(
        self, number: int, stage: tuple[str, float], issue_day: int, updated_at: str, currency: str
    ) -> Line:
        """Line ``number`` of an order at ``stage``, last updated at ``updated_at``."""
        rng = self.rng
        item, price = rng.choice(self.items)
        status = self.line_status(*stage)
        process, logistics = status["processStatus"], status["logisticsStatus"]
        position = f"{number:04d}"
        quantity = rng.choice(_QUANTITIES)
        delivery_day = issue_day + rng.randint(14, 120)
        unit = item["purchaseUnitOfMeasureIso"]
        name = item["name"]
        prices = _prices(price, unit, currency)  # as issued; shared until serialized
        line: Line = {
            "id": _uuid(rng),
            "lineType": "Item",
            "buyerLine": {
                "position": position,
                "originalPosition": position,
                "description": f"{name} as per drawing",
                "item": dict(item),
                "deliverySchedule": _schedule(delivery_day, quantity, None),
                "prices": prices,
                "indicators": {"noDeliveryExpected": False, "delivered": logistics == "Delivered"},
            },
            "supplierLine": {},
            "deliverySchedule": _schedule(delivery_day, quantity, logistics),
            "prices": prices,
            "indicators": {"deliveryOverdue": rng.random() < 0.05},
            "status": status,
            "eventDates": {},
            "lastUpdatedAt": updated_at,
        }
        if process in ("Confirmed", "Completed"):
            line["supplierLine"] = {
                "salesOrderNumber": f"SO{rng.randint(100000, 999999)}",
                "salesOrderPosition": position,
            }
            line["confirmedLine"] = {
                "deliverySchedule": _schedule(delivery_day, quantity, logistics),
                "prices": _prices(price, unit, currency),
            }
        return line

    def order(self, number: int, updated_ms: int, *, fresh: bool = False) -> Order:
        """Order number ``number`` (unique per factory), last updated at ``updated_ms``.

        ``fresh``: just issued by the buyer (version 1, every line ``Issued``).
        """
        rng = self.rng
        buyer = rng.choice(self.buyer_ids)
        supplier = rng.choice(self.supplier_ids)
        aged = not fresh and rng.random() < 0.4
        issued_ms = updated_ms - (rng.randint(1, 30 * 86_400_000) if aged else 0)
        issued_at, updated_at = format_ms(issued_ms), format_ms(updated_ms)
        issue_day = _day_number(issued_ms)
        # Most orders move as a whole; some have lines at stages of their own.
        stage = (rng.choice(_STATUS_DRAW), 0.0 if rng.random() < 0.7 else 0.3)
        if fresh:
            stage = ("Issued", 0.0)
        low, high = self.lines_per_order
        # Lines untouched since the issue keep its time; the last line changed with the order.
        count = rng.randint(low, high)
        currency = rng.choice(_CURRENCIES)
        lines = [
            self.line(
                n, stage, issue_day, updated_at if rng.random() < 0.5 else issued_at, currency
            )
            for n in range(1, count)
        ]
        lines.append(self.line(count, stage, issue_day, updated_at, currency))
        purchase_order_number = f"PO{number:08d}"
        city, country = rng.choice(_CITIES)
        order: Order = {
            "id": f"{buyer}-{purchase_order_number}",
            "buyerOrder": {
                "companyId": buyer,
                "supplierAccountNumber": f"{rng.randint(100000, 999999)}",
                "purchaseOrderNumber": purchase_order_number,
                "description": "",
                "destination": {
                    "code": f"{_CITIES.index((city, country)) + 1:03d}",  # a warehouse per city
                    "city": city,
                    "countryCodeIso2": country,
                },
                "terms": {"incotermsCode": rng.choice(("CIF", "DAP", "EXW", "FCA"))},
                "contact": {"userId": self.user_ids[number % 3], "email": "buyer@example.com"},
                "properties": [],
                "notes": [],
                "labels": [],
                "documents": [self.document()] if rng.random() < 0.15 else [],
                "orderType": "Purchase",
                "erpIssueDateTime": issued_at[:19],
            },
            "supplierOrder": {
                "companyId": supplier,
                "buyerAccountNumber": f"C-{rng.randint(1000, 9999)}",
                "description": "",
                "contact": {
                    "userId": self.user_ids[3 + number % 3],
                    "email": "sales@supplier.example.com",
                },
                "properties": [],
                "notes": [],
                "documents": [],
            },
            "indicators": {
                "deliveryOverdue": any(line["indicators"]["deliveryOverdue"] for line in lines)
            },
            "status": {},
            "lines": lines,
            "version": 1 if updated_ms == issued_ms else rng.randint(2, 6),
            "eventDates": {},
            "meta": self.meta(updated_ms, buyer),
            "portalUrl": PORTAL_URL.format(order_id=f"{buyer}-{purchase_order_number}"),
            "lastUpdatedAt": updated_at,
        }
        refresh_order_status(order)
        return order


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, which otherwise rescans every new dict many times."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _burst_size(rng: random.Random) -> int:
    """How many orders share the next millisecond: mostly one, sometimes an ERP batch."""
    draw = rng.random()
    if draw < 0.85:
        return 1
    if draw < 0.95:
        return rng.randint(2, 5)
    return rng.randint(20, 300)


def timestamps(count: int, rng: random.Random, start_ms: int, *, same: bool) -> list[int]:
    """``count`` ascending millisecond timestamps in bursts, the first at ``start_ms``."""
    if same:
        return [start_ms] * count
    stamps: list[int] = []
    current = start_ms
    while len(stamps) < count:
        stamps.extend([current] * _burst_size(rng))
        current += rng.randint(1, 90_000)
    return stamps[:count]


def sort_key(order: Order) -> tuple[str, str]:
    """How the API sorts: ``lastUpdatedAt`` ascending, then ``id`` as a stable tiebreak."""
    return order["lastUpdatedAt"], order["id"]


def generate_orders(
    count: int,
    *,
    seed: int,
    start: str = DEFAULT_START,
    lines_per_order: tuple[int, int] = (1, 50),
    same_timestamp: bool = False,
) -> list[Order]:
    """``count`` orders sorted as the API sorts them, identical for identical arguments."""
    factory = OrderFactory(seed, lines_per_order)
    stamps = timestamps(count, factory.rng, parse_ms(start), same=same_timestamp)
    with gc_paused():
        orders = [factory.order(number, stamp) for number, stamp in enumerate(stamps, start=1)]
        orders.sort(key=sort_key)
    return orders
