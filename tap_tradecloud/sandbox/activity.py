"""Orders changing over time, as Tradecloud users change them.

Line status moves, buyer updates and documents, each producing the webhook event Tradecloud
would send for it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tap_tradecloud.sandbox.clock import format_ms
from tap_tradecloud.sandbox.data import Line, Order, OrderFactory, refresh_order_status

Step = Callable[[Line], None]
_MOVING = ("Issued", "InProgress", "Confirmed")  # line statuses that have a next step
_NEXT_LOGISTICS = {"Open": "Produced", "Produced": "ReadyToShip", "ReadyToShip": "Shipped"}


@dataclass(frozen=True)
class OrderChange:
    """A new version of an order and what happened to it."""

    order: Order
    event_name: str
    line_ids: tuple[str, ...]  # the affected lines, the only ones a webhook event carries
    documents: tuple[dict[str, Any], ...] = ()  # set for a documents event


def _confirm(line: Line) -> None:
    line["status"] = {"processStatus": "Confirmed", "logisticsStatus": "Open"}
    line["supplierLine"].setdefault("salesOrderPosition", line["buyerLine"]["position"])
    line["confirmedLine"] = {
        "deliverySchedule": copy.deepcopy(line["deliverySchedule"]),
        "prices": copy.deepcopy(line["prices"]),
    }


def _propose(line: Line) -> None:
    line["status"] = {
        "processStatus": "InProgress",
        "inProgressStatus": "OpenSupplierProposal",
        "logisticsStatus": "Open",
    }


def _advance_logistics(line: Line) -> None:
    status = line["status"]
    status["logisticsStatus"] = _NEXT_LOGISTICS.get(status["logisticsStatus"], "Delivered")
    for delivery in line["deliverySchedule"]:
        delivery["status"] = status["logisticsStatus"]
    line["buyerLine"]["indicators"]["delivered"] = status["logisticsStatus"] == "Delivered"


def _complete(line: Line) -> None:
    line["status"] = {"processStatus": "Completed", "logisticsStatus": "Delivered"}


def _update_quantity(line: Line) -> None:
    for delivery in line["deliverySchedule"]:
        delivery["quantity"] = delivery["quantity"] * 2


class OrderChanger:
    """Picks and applies changes; its own seeded factory keeps them reproducible."""

    def __init__(self, factory: OrderFactory) -> None:
        self.factory = factory
        self.rng = factory.rng

    def _issued_step(self) -> tuple[str, Step]:
        draw = self.rng.random()
        if draw < 0.2:
            return "OrderLinesUpdatedByBuyer", _update_quantity
        if draw < 0.45:
            return "OrderChangesProposedBySupplier", _propose
        return "OrderLinesConfirmedBySupplier", _confirm

    def _transition(self, line: Line) -> tuple[str, Step]:
        """The next step for a line that is still moving, as (event name, change)."""
        process = line["status"]["processStatus"]
        if process == "Issued":
            return self._issued_step()
        if process == "InProgress":
            return "OrderChangesProposalApprovedByBuyer", _confirm
        if line["status"]["logisticsStatus"] in _NEXT_LOGISTICS:
            return "OrderLinesDeliveryScheduleLogisticsUpdatedBySupplier", _advance_logistics
        return "OrderLinesCompletedByBuyer", _complete

    def change(self, order: Order, now_ms: int) -> OrderChange:
        """Change ``order`` (a private copy) at ``now_ms``: some lines move one step on."""
        rng = self.rng
        candidates = [line for line in order["lines"] if line["status"]["processStatus"] in _MOVING]
        if not candidates or rng.random() < 0.1:
            return self._attach_document(order, now_ms)
        first = rng.choice(candidates)
        event_name, apply = self._transition(first)
        state = (first["status"]["processStatus"], first["status"]["logisticsStatus"])
        alike = [
            line
            for line in candidates
            if (line["status"]["processStatus"], line["status"]["logisticsStatus"]) == state
        ]
        chosen = [
            first,
            *rng.sample(
                [line for line in alike if line is not first],
                min(len(alike) - 1, rng.randint(0, 2)),
            ),
        ]
        stamp = format_ms(now_ms)
        for line in chosen:
            apply(line)
            line["lastUpdatedAt"] = stamp
        self._bump(order, now_ms)
        return OrderChange(order, event_name, tuple(line["id"] for line in chosen))

    def _attach_document(self, order: Order, now_ms: int) -> OrderChange:
        document = self.factory.document()
        order["buyerOrder"]["documents"].append(document)
        self._bump(order, now_ms)
        return OrderChange(order, "OrderDocumentsAttachedByBuyer", (), (document,))

    def _bump(self, order: Order, now_ms: int) -> None:
        refresh_order_status(order)
        order["version"] += 1
        order["lastUpdatedAt"] = format_ms(now_ms)
        order["meta"] = self.factory.meta(now_ms, order["buyerOrder"]["companyId"])

    def new_order(self, number: int, now_ms: int) -> OrderChange:
        """A brand-new order, issued by the buyer at ``now_ms``."""
        order = self.factory.order(number, now_ms, fresh=True)
        event_lines = tuple(line["id"] for line in order["lines"])
        return OrderChange(order, "OrderIssuedByBuyer", event_lines)


def _single_delivery(line: Line) -> Line:
    """A line as the single-delivery format shows it.

    ``statusLine`` takes the place of the delivery schedule and prices (one delivery per line).
    """
    moved = ("deliverySchedule", "deliveryScheduleIncludingRequests")
    single = {key: value for key, value in line.items() if key not in moved}
    first = line["deliverySchedule"][0] if line["deliverySchedule"] else {}
    scheduled = {key: first[key] for key in ("date", "quantity", "status") if key in first}
    single["statusLine"] = {
        "scheduledDelivery": scheduled,
        "scheduledDeliveryInclRequests": dict(scheduled),
        "prices": line["prices"],
        "pricesInclRequests": line.get("pricesIncludingRequests", line["prices"]),
    }
    return single


def event_body(change: OrderChange, *, single_delivery: bool = False) -> dict[str, Any]:
    """The webhook body Tradecloud sends for a change: only the affected lines."""
    order = change.order
    meta = order["meta"]
    header = {
        "orderId": order["id"],
        "buyerOrder": order["buyerOrder"],
        "supplierOrder": order["supplierOrder"],
    }
    if change.documents:
        key = "orderDocumentsEvent"
        header["buyerOrder"] = {
            "companyId": order["buyerOrder"]["companyId"],
            "purchaseOrderNumber": order["buyerOrder"]["purchaseOrderNumber"],
            "documents": list(change.documents),
        }
        lines: list[Line] = []
    else:
        key = "singleDeliveryOrderEvent" if single_delivery else "orderEvent"
        wanted = set(change.line_ids)
        lines = [line for line in order["lines"] if line["id"] in wanted]
        if single_delivery:
            lines = [_single_delivery(line) for line in lines]
    event = {
        **header,
        "lines": lines,
        "indicators": order["indicators"],
        "status": order["status"],
        "version": order["version"],
        "eventDates": order["eventDates"],
        "reason": order.get("reason"),
        "meta": meta,
        "portalUrl": order.get("portalUrl"),
        "lastUpdatedAt": order["lastUpdatedAt"],
    }
    return {"eventName": change.event_name, key: event, "meta": meta}
