"""An in-memory Tradecloud for requests-mock, and helpers to run the tap and read its output."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import time
import typing as t
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    import requests_mock

from tap_tradecloud.tap import TapTradecloud

API = "https://api.tradecloud.test/v2"
USERNAME = "integration@example.com"
PASSWORD = "s3cret-Pa55word"
BASIC = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()


def jwt(exp: float, nonce: str) -> str:
    """An unsigned JWT-shaped token with an ``exp`` claim (the tap never verifies it)."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'exp': exp, 'n': nonce})}.c2ln"


def make_order(index: int, updated_at: str, version: int = 1, **extra: t.Any) -> dict:
    """A minimal order."""
    return {
        "id": f"buyer-PO{index:05d}",
        "buyerOrder": {"companyId": "buyer", "purchaseOrderNumber": f"PO{index:05d}"},
        "supplierOrder": {"companyId": "supplier"},
        "status": {"processStatus": "Issued", "logisticsStatus": "Open"},
        "indicators": {"deliveryOverdue": False},
        "lines": [{"id": "1", "lastUpdatedAt": updated_at}],
        "version": version,
        "eventDates": {},
        "meta": {"messageId": f"m{index}", "source": {"companyId": "buyer"}},
        "reason": None,
        "portalUrl": f"https://portal.tradecloud1.com/order/buyer-PO{index:05d}",
        "lastUpdatedAt": updated_at,
        **extra,
    }


def make_shipment(index: int, updated_at: str, **extra: t.Any) -> dict:
    """A minimal shipment: its ``lastUpdatedAt`` lives in ``meta``, as Tradecloud sends it."""
    return {
        "id": f"shipment-{index:05d}",
        "identifiers": {"trackingNumber": f"T{index}"},
        "transportMode": "Road transport",
        "locations": {"departure": {"etdDate": updated_at[:10]}, "destinations": []},
        "buyerShipment": {"companyId": "buyer"},
        "supplierShipment": {"companyId": "supplier"},
        "lines": [{"purchaseOrderNumber": f"PO{index:05d}", "meta": {"lastUpdatedAt": updated_at}}],
        "loadCarriers": [],
        "status": {"processStatus": "Issued"},
        "meta": {"lastUpdatedAt": updated_at},
        **extra,
    }


def ts(second: int, millis: int = 0) -> str:
    """A canonical timestamp ``second`` seconds after 2024-01-01T00:00:00Z."""
    minutes, seconds = divmod(second, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2024-01-01T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


@dataclass
class FakeTradecloud:
    """Tradecloud's auth and order-search endpoints over a list of orders."""

    orders: list[dict] = field(default_factory=list)
    shipments: list[dict] = field(default_factory=list)
    token_ttl: float = 3600.0
    refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)
    issued: int = 0
    all_tokens: list[str] = field(default_factory=list)
    logins: int = 0
    refreshes: int = 0
    logouts: int = 0
    on_search: t.Callable[[int], None] | None = None
    searches: int = 0
    inclusive_after: bool = False  # a look-alike whose `lastUpdatedAfter` means >=

    def install(self, mock: requests_mock.Mocker) -> None:
        """Register the endpoints on ``mock``."""
        mock.get(f"{API}/authentication/login", text=self._login)
        mock.get(f"{API}/authentication/refresh", text=self._refresh)
        mock.post(f"{API}/authentication/logout", text=self._logout)
        mock.post(f"{API}/order-search/search", text=self._search)
        mock.post(f"{API}/order-search/poll", text=self._search)
        mock.post(f"{API}/shipment/poll", text=self._poll_shipments)

    def _issue(self, context: t.Any) -> str:
        self.issued += 1
        access = jwt(time.time() + self.token_ttl, str(self.issued))
        refresh = f"refresh-{self.issued}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        self.all_tokens += [access, refresh]
        context.headers["Set-Authorization"] = access
        context.headers["Set-Refresh-Token"] = refresh
        return json.dumps({"username": USERNAME, "status": "authenticated"})

    def _login(self, request: t.Any, context: t.Any) -> str:
        if request.headers.get("Authorization") != BASIC:
            context.status_code = 401
            return "The supplied authentication is invalid"
        self.logins += 1
        return self._issue(context)

    def _refresh(self, request: t.Any, context: t.Any) -> str:
        token = request.headers.get("Refresh-Token")
        if "Authorization" in request.headers or token not in self.refresh_tokens:
            context.status_code = 401
            return "The supplied authentication is invalid"
        self.refresh_tokens.discard(token)
        self.refreshes += 1
        return self._issue(context)

    def _logout(self, request: t.Any, context: t.Any) -> str:
        self.refresh_tokens.discard(request.headers.get("Refresh-Token"))
        self.logouts += 1
        return ""

    def _authorised(self, request: t.Any) -> bool:
        header = request.headers.get("Authorization", "")
        return header == BASIC or header.removeprefix("Bearer ") in self.access_tokens

    def _search(self, request: t.Any, context: t.Any) -> str:
        if not self._authorised(request):
            context.status_code = 401
            return "The supplied authentication is invalid"
        body = request.json()
        limit, offset = body.get("limit", 10), body.get("offset", 0)
        if limit > 100 or offset + limit > 10_000:
            context.status_code = 400
            return json.dumps({"message": "limit or result window exceeded"})
        self.searches += 1
        if self.on_search is not None:
            self.on_search(self.searches)
        filters = body.get("filters", {})
        if "lastUpdatedAfter" in filters:
            after = filters["lastUpdatedAfter"]
            matches = [
                o
                for o in self.orders
                if o["lastUpdatedAt"] > after
                or (self.inclusive_after and o["lastUpdatedAt"] == after)
            ]
        else:
            since = filters.get("lastUpdatedSince", "")
            matches = [o for o in self.orders if o["lastUpdatedAt"] >= since]
        matches.sort(key=lambda o: (o["lastUpdatedAt"], o["id"]))
        page = matches[offset : offset + limit]
        return json.dumps({"data": page, "total": len(matches)})

    def _poll_shipments(self, request: t.Any, context: t.Any) -> str:
        if not self._authorised(request):
            context.status_code = 401
            return "The supplied authentication is invalid"
        body = request.json()
        limit, offset = body.get("limit", 10), body.get("offset", 0)
        after = body.get("filters", {}).get("lastUpdatedAfter", "")
        matches = sorted(
            (s for s in self.shipments if s["meta"]["lastUpdatedAt"] > after),
            key=lambda s: (s["meta"]["lastUpdatedAt"], s["id"]),
        )
        page = matches[offset : offset + limit]
        last = page[-1]["meta"]["lastUpdatedAt"] if page else after
        return json.dumps({"data": page, "total": len(matches), "lastUpdatedAt": last})

    def update(self, order_id: str, updated_at: str) -> None:
        """Change an order: new version, new ``lastUpdatedAt``."""
        for order in self.orders:
            if order["id"] == order_id:
                order["version"] += 1
                order["lastUpdatedAt"] = updated_at


def config(**overrides: t.Any) -> dict[str, t.Any]:
    """Tap settings for the fake, fast (no throttle wait, tiny retry waits)."""
    return {
        "api_url": API,
        "username": USERNAME,
        "password": PASSWORD,
        "start_date": "2024-01-01T00:00:00Z",
        "max_requests_per_second": 10_000,
        "retry_max_wait_seconds": 0.001,
        **overrides,
    }


@dataclass
class RunOutput:
    """The Singer messages of one tap run, read for one stream (``orders`` unless told)."""

    messages: list[dict]
    stream: str = "orders"

    @property
    def records(self) -> list[dict]:
        """RECORD payloads of the stream, in order."""
        return [
            m["record"]
            for m in self.messages
            if m["type"] == "RECORD" and m["stream"] == self.stream
        ]

    @property
    def keys(self) -> list[tuple[str, t.Any]]:
        """(id, version) of every record, in order (a shipment's version: its lastUpdatedAt)."""
        version = "version" if self.stream == "orders" else "lastUpdatedAt"
        return [(r["id"], r[version]) for r in self.records]

    @property
    def states(self) -> list[dict]:
        """STATE values, in order."""
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict:
        """The last STATE value."""
        return self.states[-1]

    @property
    def bookmark(self) -> dict:
        """The stream's final bookmark."""
        return t.cast("dict", self.final_state["bookmarks"][self.stream])


def run_tap(cfg: dict[str, t.Any], state: dict | None = None, stream: str = "orders") -> RunOutput:
    """Run the tap as the CLI does (sync, then log out), only ``stream`` selected."""
    output, error = run_tap_failing(cfg, state, stream)
    if error is not None:
        raise error
    return output


def catalog_selecting(cfg: dict[str, t.Any], stream: str) -> dict:
    """The tap's catalog with only ``stream`` selected."""
    catalog = TapTradecloud(config=cfg, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] == stream
    return catalog


def run_tap_failing(
    cfg: dict[str, t.Any], state: dict | None = None, stream: str = "orders"
) -> tuple[RunOutput, Exception | None]:
    """Like :func:`run_tap`, but return the error (if any) with the output written before it."""
    out = io.StringIO()
    error: Exception | None = None
    catalog = catalog_selecting(cfg, stream)
    with contextlib.redirect_stdout(out):
        try:
            TapTradecloud(config=cfg, state=state, catalog=catalog, parse_env_config=False).run()
        except Exception as exc:  # handed to the test
            error = exc
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    return RunOutput(messages, stream), error
