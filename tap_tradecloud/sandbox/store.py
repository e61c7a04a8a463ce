"""The order store: the current orders, and the search index that may lag behind them.

The index keeps its entries in a list sorted by ``(lastUpdatedAt, id)`` so that a page costs a
binary search plus the page itself, and each entry carries the order's serialized JSON so a page
body is assembled from bytes without re-encoding anything.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from tap_tradecloud.sandbox.clock import parse_ms
from tap_tradecloud.sandbox.filters import Facets, OrderFilter, Sort, facets_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tap_tradecloud.sandbox.data import Order


@dataclass(frozen=True, slots=True)
class Entry:
    """One version of one order, as stored and as served."""

    key: tuple[int, str]  # (lastUpdatedAt in microseconds, id): the API's sort order
    body: bytes
    updated_at: str
    facets: Facets  # what filters and sorts look at
    sequence: int  # increases with every stored version, so an older one never wins


@dataclass(frozen=True, slots=True)
class Query:
    """A validated search/poll request."""

    since_us: int | None = None
    inclusive: bool = True
    filter: OrderFilter = field(default_factory=OrderFilter)
    sort: Sort = field(default_factory=Sort)
    offset: int = 0
    limit: int = 10


@dataclass(frozen=True, slots=True)
class Page:
    """One page of search/poll results, as stored JSON bodies."""

    bodies: list[bytes]
    total: int
    last_updated_at: str | None  # the newest of the page's orders


def encode(order: Order) -> bytes:
    """Compact JSON, as the API sends it (msgspec: several times faster than ``json``)."""
    return msgspec.json.encode(order)


def decode(body: bytes) -> Any:
    """Decode a stored JSON body."""
    return msgspec.json.decode(body)


class OrderStore:
    """Thread-safe: the API thread reads while tests and the activity loop write."""

    def __init__(self, orders: Iterable[Order] = ()) -> None:
        self._lock = threading.RLock()
        self._sequence = itertools.count(1)
        self._current: dict[str, Entry] = {}
        self._indexed: dict[str, Entry] = {}
        self._keys: list[tuple[int, str]] = []
        self._entries: list[Entry] = []
        self._pending: list[tuple[int, int, Entry]] = []  # heap of (visible at ms, sequence, entry)
        entries = [self._entry(order) for order in orders]
        with self._lock:
            for entry in entries:
                self._current[entry.key[1]] = entry
                self._indexed[entry.key[1]] = entry
            self._entries = sorted(self._indexed.values(), key=lambda entry: entry.key)
            self._keys = [entry.key for entry in self._entries]

    def _entry(self, order: Order) -> Entry:
        updated_at = order["lastUpdatedAt"]
        return Entry(
            key=(parse_ms(updated_at) * 1000, order["id"]),
            body=encode(order),
            updated_at=updated_at,
            facets=facets_of(order),
            sequence=next(self._sequence),
        )

    def __len__(self) -> int:
        return len(self._current)

    def ids(self) -> list[str]:
        """The ids of all current orders."""
        with self._lock:
            return list(self._current)

    def get(self, order_id: str) -> bytes | None:
        """The current version of an order as JSON bytes (the order service, not the index)."""
        entry = self._current.get(order_id)
        return None if entry is None else entry.body

    def load(self, order_id: str) -> Order | None:
        """A private copy of the current version of an order."""
        body = self.get(order_id)
        return None if body is None else decode(body)

    def current_bodies(self) -> list[bytes]:
        """Every current order as JSON bytes, in the API's sort order."""
        with self._lock:
            entries = sorted(self._current.values(), key=lambda entry: entry.key)
        return [entry.body for entry in entries]

    def put(self, order: Order, visible_at_ms: int | None = None) -> None:
        """Store a new version; the index shows it from ``visible_at_ms`` (None: at once)."""
        entry = self._entry(order)
        with self._lock:
            self._current[entry.key[1]] = entry
            if visible_at_ms is None:
                self._index(entry)
            else:
                heapq.heappush(self._pending, (visible_at_ms, entry.sequence, entry))

    def _index(self, entry: Entry) -> None:
        old = self._indexed.get(entry.key[1])
        if old is not None:
            if old.sequence > entry.sequence:
                return
            position = bisect_left(self._keys, old.key)
            del self._keys[position]
            del self._entries[position]
        self._indexed[entry.key[1]] = entry
        position = bisect_left(self._keys, entry.key)
        self._keys.insert(position, entry.key)
        self._entries.insert(position, entry)

    def _catch_up(self, now_ms: int) -> None:
        while self._pending and self._pending[0][0] <= now_ms:
            self._index(heapq.heappop(self._pending)[2])

    def page(self, query: Query, now_ms: int) -> Page:
        """One page of the index as the search/poll endpoints answer it."""
        with self._lock:
            self._catch_up(now_ms)
            start = 0
            if query.since_us is not None:
                first = query.since_us if query.inclusive else query.since_us + 1
                start = bisect_left(self._keys, (first,))
            if not (query.filter.is_empty() and query.sort.is_index_order()):
                return self._filtered_page(query, start)
            begin = start + query.offset
            chosen = self._entries[begin : begin + query.limit]
            total = len(self._entries) - start
        last = chosen[-1].updated_at if chosen else None
        return Page([entry.body for entry in chosen], total, last)

    def _filtered_page(self, query: Query, start: int) -> Page:
        wanted = query.filter
        matching = [e for e in self._entries[start:] if wanted.matches(e.facets)]
        if wanted.words:
            matching = [e for e in matching if wanted.matches_text(decode(e.body))]
        if not query.sort.is_index_order():
            matching = query.sort.apply(matching, lambda entry: (entry.key, entry.facets))
        chosen = matching[query.offset : query.offset + query.limit]
        last = max((entry.updated_at for entry in chosen), default=None)
        return Page([entry.body for entry in chosen], len(matching), last)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every current order, decoded."""
        return [decode(body) for body in self.current_bodies()]
