"""Records (orders, shipments) emitted within the lookback window, kept in the stream state.

Tradecloud's search index can make a change searchable some time after its ``lastUpdatedAt``.
If such a change is older than the bookmark once it appears, a plain bookmark never sees it.
With ``lookback_seconds`` the stream re-reads from ``newest - lookback`` and skips the
(id, ``lastUpdatedAt``) pairs it already emitted, which this module keeps in the state under
``emitted_recently``.
"""

from __future__ import annotations

import datetime as dt

from tap_tradecloud.timestamps import format_utc, parse_utc

STATE_KEY = "emitted_recently"


class RecentRecords:
    """The (id -> lastUpdatedAt) of records emitted at or after ``high_water - lookback``."""

    def __init__(self, stream_state: dict, lookback_seconds: float) -> None:
        """Keep the memory inside ``stream_state`` (a live SDK state dict).

        Its key ``orders`` predates shipments; it holds the ids of this stream's records.
        """
        self._memory = stream_state.setdefault(STATE_KEY, {"high_water": None, "orders": {}})
        self._lookback = dt.timedelta(seconds=lookback_seconds)

    def window_start(self, bookmark: str) -> str:
        """Where to re-read from: ``lookback`` before the newest timestamp emitted so far."""
        newest = max(bookmark, self._memory["high_water"] or bookmark)
        return format_utc(parse_utc(newest) - self._lookback)

    def is_emitted(self, record: dict) -> bool:
        """Whether this version of the record was emitted before."""
        return bool(self._memory["orders"].get(record["id"]) == record["lastUpdatedAt"])

    def remember(self, record: dict) -> None:
        """Note an emitted record version."""
        self._memory["orders"][record["id"]] = record["lastUpdatedAt"]
        high_water = self._memory["high_water"]
        if high_water is None or record["lastUpdatedAt"] > high_water:
            self._memory["high_water"] = record["lastUpdatedAt"]

    def forget_old(self) -> None:
        """Drop records older than the window (they are never read again)."""
        if self._memory["high_water"] is None:
            return
        oldest = self.window_start(self._memory["high_water"])
        orders = self._memory["orders"]
        for order_id in [i for i, updated_at in orders.items() if updated_at < oldest]:
            del orders[order_id]
