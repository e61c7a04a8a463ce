"""Shipments (despatch advices) in the sandbox: generated, stored, polled, changed, announced.

Shape from Tradecloud's "Receive a shipment event" page: a shipment keeps its ``lastUpdatedAt``
in ``meta`` (not at the top level); its lines refer to purchase order lines and sit loose in
``lines`` or inside ``loadCarriers``. ``POST /shipment/poll`` pages them like order poll: the
exclusive ``lastUpdatedAfter``, ascending by ``meta.lastUpdatedAt`` then ``id``, the same limit
and result-window rules. Webhook events are ``{eventName, shipment, meta}``.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from tap_tradecloud.compat import override
from tap_tradecloud.sandbox.clock import format_ms, parse_ms
from tap_tradecloud.sandbox.data import Order, gc_paused, timestamps
from tap_tradecloud.sandbox.filters import Facets, OrderFilter
from tap_tradecloud.sandbox.query import BadRequest, paging, parse_timestamp, strings
from tap_tradecloud.sandbox.store import Entry, OrderStore, Query, encode

if TYPE_CHECKING:
    from collections.abc import Callable

Shipment = dict[str, Any]

SHIPMENT_EVENTS = (
    "ShipmentIssuedBySupplier",
    "ShipmentReissuedBySupplier",
    "ShipmentApprovedByBuyer",
    "ShipmentRejectedByBuyer",
    "ShipmentHeaderUpdatedBySupplier",
    "ShipmentDocumentAttachedByBuyer",
    "ShipmentDocumentAttachedBySupplier",
    "ShipmentResentByBuyer",
)
_TRANSPORT_MODES = ("Road transport", "Maritime transport", "Air transport", "Rail transport")
_PORTS = (
    ("NLRTM", "Port of Rotterdam", "Rotterdam", "NL"),
    ("BEANR", "Port of Antwerp", "Antwerp", "BE"),
)
_WAREHOUSES = (
    ("001", "Main warehouse", "Eindhoven", "NL"),
    ("002", "Hub Duisburg", "Duisburg", "DE"),
)


def shipment_updated_at(shipment: Shipment) -> str:
    """A shipment's ``meta.lastUpdatedAt``: its place in the poll order."""
    return str(shipment["meta"]["lastUpdatedAt"])


def _location(kind: str, place: tuple[str, str, str, str]) -> dict[str, Any]:
    code, name, city, country = place
    return {
        "locationType": kind,
        "id": code,
        "idScheme": "Buyer" if kind == "FinalDestination" else "UNLOCODE",
        "names": [name],
        "addressLines": [],
        "city": city,
        "countryCodeIso": country,
    }


class ShipmentFactory:
    """Makes shipments of an order's lines; one seeded instance keeps them reproducible."""

    def __init__(self, seed: int, stream: int = 0) -> None:
        self.rng = random.Random(f"shipments/{seed}/{stream}")  # noqa: S311 - test data

    def uuid(self) -> str:
        """A random (seeded) UUID."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _line(
        self, order: Order, line: dict[str, Any], despatch: str, position: int, stamp: str
    ) -> dict[str, Any]:
        item = line["buyerLine"]["item"]
        ordered = line["deliverySchedule"][0]["quantity"] if line["deliverySchedule"] else 1
        shipped = max(1, round(ordered * self.rng.choice((1, 1, 1, 0.5))))
        return {
            "purchaseOrderNumber": order["buyerOrder"]["purchaseOrderNumber"],
            "purchaseOrderLinePosition": line["buyerLine"]["position"],
            "deliverySchedulePosition": "0001",
            "item": {
                "buyerItemNumber": item["number"],
                "buyerItemRevision": item["revision"],
                "buyerItemName": item["name"],
                "supplierItemNumber": item["supplierItemNumber"],
                "purchaseUnitOfMeasureIso": item["purchaseUnitOfMeasureIso"],
            },
            "supplierLine": {
                "despatchAdviceNumber": despatch,
                "despatchAdviceLinePosition": f"{position:04d}",
                "despatchQuantity": shipped,
                "backorderQuantity": ordered - shipped,
            },
            "meta": {"lastUpdatedAt": stamp},
        }

    def shipment(self, number: int, order: Order, updated_ms: int) -> Shipment:
        """Shipment ``number`` of some lines of ``order``, issued at ``updated_ms``."""
        rng = self.rng
        stamp = format_ms(updated_ms)
        despatch = f"DA{number:08d}"
        chosen = rng.sample(order["lines"], min(len(order["lines"]), rng.randint(1, 3)))
        lines = [self._line(order, line, despatch, n, stamp) for n, line in enumerate(chosen, 1)]
        departure = date(1970, 1, 1) + timedelta(days=updated_ms // 86_400_000 + 1)
        arrival = (departure + timedelta(days=rng.randint(2, 30))).isoformat()
        if rng.random() < 0.3:
            carrier = {"containerNumber": f"MSCU{rng.randint(1_000_000, 9_999_999)}"}
            carrier["containerSizeAndType"] = rng.choice(("22G1", "42G1", "45G1"))
        else:
            carrier = {"packageSSCC": f"{rng.randint(10**17, 10**18 - 1)}", "packageType": "PX"}
        loaded = rng.random() < 0.6
        buyer_order = order["buyerOrder"]
        return {
            "id": self.uuid(),
            "identifiers": {"trackingNumber": f"TRK{rng.randint(10**8, 10**9 - 1)}"},
            "transportMode": rng.choice(_TRANSPORT_MODES),
            "supplierShipment": {
                "companyId": order["supplierOrder"]["companyId"],
                "buyerAccountNumber": order["supplierOrder"]["buyerAccountNumber"],
                "shipmentNumber": f"SH{number:07d}",
                "invoiceNumbers": [f"INV{number:07d}"],
                "documents": [],
                "contacts": [],
            },
            "buyerShipment": {
                "companyId": buyer_order["companyId"],
                "supplierAccountNumber": buyer_order["supplierAccountNumber"],
                "documents": [],
                "contacts": [],
                "purchaseOrderTerms": {"incotermsCode": buyer_order["terms"]["incotermsCode"]},
            },
            "loadCarriers": [{**carrier, "lines": lines}] if loaded else [],
            "lines": [] if loaded else lines,
            "locations": {
                "departure": {
                    "location": _location("AgreedPlace", rng.choice(_PORTS)),
                    "etdDate": departure.isoformat(),
                },
                "destinations": [
                    {
                        "location": _location("FinalDestination", rng.choice(_WAREHOUSES)),
                        "etaStartDate": arrival,
                        "etaEndDate": arrival,
                    }
                ],
            },
            "status": {"processStatus": "Issued"},
            "meta": {
                "lastUpdatedAt": stamp,
                "supplierErpMeta": {"despatchAdviceErpIssueDateTime": stamp[:19]},
            },
        }

    def change(self, shipment: Shipment, now_ms: int) -> str:
        """Change ``shipment`` (a private copy) at ``now_ms``; return the event name."""
        rng = self.rng
        stamp = format_ms(now_ms)
        draw = rng.random()
        if shipment["status"]["processStatus"] == "Issued" and draw < 0.5:
            shipment["status"] = {"processStatus": "Approved"}
            event = "ShipmentApprovedByBuyer"
        elif draw < 0.8:
            shipment["identifiers"]["carrierShipmentNumber"] = f"CS{rng.randint(10**6, 10**7)}"
            event = "ShipmentHeaderUpdatedBySupplier"
        else:
            document = {
                "code": f"PL{rng.randint(100000, 999999)}",
                "name": "Packing list",
                "type": "Packing List",
                "objectId": self.uuid(),
                "meta": {"lastUpdatedAt": stamp},
            }
            shipment["supplierShipment"]["documents"].append(document)
            event = "ShipmentDocumentAttachedBySupplier"
        shipment["meta"]["lastUpdatedAt"] = stamp
        return event

    def event_body(self, shipment: Shipment, event_name: str, now_ms: int) -> dict[str, Any]:
        """The webhook body Tradecloud sends: the whole shipment state and message meta."""
        return {
            "eventName": event_name,
            "shipment": shipment,
            "meta": {
                "messageId": self.uuid(),
                "createdDateTime": format_ms(now_ms + self.rng.randint(1, 90)),
                "source": {
                    "traceId": self.uuid(),
                    "userId": self.uuid(),
                    "companyId": shipment["supplierShipment"]["companyId"],
                },
            },
        }


def generate_shipments(
    count: int,
    orders: list[Order],
    *,
    seed: int,
    start: str | None = None,
    same_timestamp: bool = False,
) -> list[Shipment]:
    """``count`` shipments of ``orders``' lines, in bursts of shared timestamps, sorted."""
    if count and not orders:
        msg = "shipments need orders to ship; give the sandbox some orders"
        raise ValueError(msg)
    factory = ShipmentFactory(seed)
    start_ms = parse_ms(start) if start else min(parse_ms(o["lastUpdatedAt"]) for o in orders)
    stamps = timestamps(count, factory.rng, start_ms, same=same_timestamp)
    with gc_paused():
        shipments = [
            factory.shipment(number, factory.rng.choice(orders), stamp)
            for number, stamp in enumerate(stamps, start=1)
        ]
    shipments.sort(key=lambda s: (shipment_updated_at(s), s["id"]))
    return shipments


class ShipmentStore(OrderStore):
    """The order store's index, keyed on a shipment's ``meta.lastUpdatedAt``."""

    @override
    def _entry(self, order: Shipment) -> Entry:
        updated_at = shipment_updated_at(order)
        return Entry(
            key=(parse_ms(updated_at) * 1000, order["id"]),
            body=encode(order),
            updated_at=updated_at,
            facets=shipment_facets(order),
            sequence=next(self._sequence),
        )


def shipment_facets(shipment: Shipment) -> Facets:
    """What shipment poll filters on: the buyer and supplier company (and the status)."""
    return Facets(
        buyer=shipment["buyerShipment"]["companyId"],
        supplier=shipment["supplierShipment"]["companyId"],
        process_status=shipment["status"]["processStatus"],
        logistics_status="",
        in_progress_statuses=frozenset(),
        delivery_line_statuses=frozenset(),
        delivery_overdue=False,
        buyer_contact=None,
        supplier_contact=None,
        destination_code=None,
        erp_issue_date_time="",
        purchase_order_number="",
    )


def parse_shipment_query(body: Any) -> Query:
    """Validate a ``/shipment/poll`` body: ``lastUpdatedAfter``, ``buyerShipment.companyId``."""
    if not isinstance(body, dict):
        msg = 'the request body must be a JSON object such as {"filters": {...}}'
        raise BadRequest(msg)
    unknown = sorted(set(body) - {"filters", "offset", "limit"})
    if unknown:
        msg = f"`body` has keys shipment poll does not support: {unknown}"
        raise BadRequest(msg)
    offset, limit = paging(body)
    filters = body.get("filters", {})
    if not isinstance(filters, dict):
        msg = f"`filters` must be an object, got {filters!r}"
        raise BadRequest(msg)
    unknown = sorted(set(filters) - {"lastUpdatedAfter", "buyerShipment"})
    if unknown:
        msg = (
            f"`filters` has keys shipment poll does not support: {unknown}; "
            "supported: ['buyerShipment', 'lastUpdatedAfter']"
        )
        raise BadRequest(msg)
    since_us = None
    if "lastUpdatedAfter" in filters:
        since_us = parse_timestamp(filters["lastUpdatedAfter"], "filters.lastUpdatedAfter")
    buyer_ids = None
    if "buyerShipment" in filters:
        section = filters["buyerShipment"]
        if not isinstance(section, dict) or set(section) - {"companyId"}:
            msg = '`filters.buyerShipment` must be {"companyId": ...}'
            raise BadRequest(msg)
        value = section.get("companyId", [])
        value = [value] if isinstance(value, str) else value
        buyer_ids = strings(value, "filters.buyerShipment.companyId") or None
    return Query(
        since_us=since_us,
        inclusive=False,
        filter=OrderFilter(buyer_ids=buyer_ids),
        offset=offset,
        limit=limit,
    )


@dataclass(eq=False)
class ShipmentBook:
    """The sandbox's shipments: the store, the factory that changes them, a request hook."""

    store: ShipmentStore
    factory: ShipmentFactory
    on_request: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._next_number = len(self.store) + 1

    @classmethod
    def create(
        cls, count: int, orders: list[Order], seed: int, given: list[Shipment] | None
    ) -> ShipmentBook:
        """``given`` shipments, or ``count`` generated from ``orders``."""
        shipments = given if given is not None else generate_shipments(count, orders, seed=seed)
        return cls(ShipmentStore(shipments), ShipmentFactory(seed, stream=1))

    def page_body(self, body: Any, now_ms: int) -> bytes:
        """The ``/shipment/poll`` answer: ``data``, ``total`` and ``lastUpdatedAt``."""
        query = parse_shipment_query(body)
        with self._lock:
            self._requests += 1
            number = self._requests
        if self.on_request is not None:
            self.on_request(number)
        page = self.store.page(query, now_ms)
        last = page.last_updated_at or (body.get("filters") or {}).get("lastUpdatedAfter")
        return b"".join(
            [
                b'{"data":[',
                b",".join(page.bodies),
                b'],"total":',
                str(page.total).encode(),
                b',"lastUpdatedAt":',
                json.dumps(last).encode(),
                b"}",
            ]
        )

    def add(self, order: Order, now_ms: int) -> tuple[Shipment, dict[str, Any]]:
        """Issue a new shipment of ``order``; returns it and its webhook body."""
        shipment = self.factory.shipment(self._next_number, order, now_ms)
        self._next_number += 1
        return shipment, self.factory.event_body(shipment, "ShipmentIssuedBySupplier", now_ms)

    def change(self, shipment_id: str, now_ms: int) -> tuple[Shipment, dict[str, Any]] | None:
        """Change a stored shipment; returns its new version and webhook body."""
        body = self.store.get(shipment_id)
        if body is None:
            return None
        shipment = json.loads(body)
        event = self.factory.change(shipment, now_ms)
        return shipment, self.factory.event_body(shipment, event, now_ms)
