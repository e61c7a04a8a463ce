"""Which order lines the tap has emitted already, known without a state entry per order."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


class LineWatermarks:
    """For each order, the newest ``lastUpdatedAt`` whose lines the tap has emitted already.

    Nothing per order is stored for this. When a run starts, the ``orders`` state says that
    the orders it names (the ids at the bookmark, the lookback memory) were emitted at a given
    version, and that every line changed before ``floor`` went out with some version of its
    order: ``floor`` is where the last *completed* run started reading (the start of time
    before the first run completes). A line is new when its ``lastUpdatedAt`` is newer than
    its order's watermark, or, for an order not named, when it is at or after ``floor``.

    Why the last completed run and not the bookmark: a run killed midway leaves a bookmark
    past orders it has not read yet, whose lines may have changed long before (an order read
    for the first time, or one that moved to the end of the result set while the run paged).
    Orders emitted during the run join the map, so an order read twice in one run does not
    repeat its unchanged lines.
    """

    def __init__(self, floor: str, emitted: dict[str, str]) -> None:
        """``emitted``: order id -> ``lastUpdatedAt`` of its newest version emitted."""
        self.floor = floor
        self._emitted = emitted

    @classmethod
    def at_run_start(
        cls, floor: str, since: str, ids_at_since: Iterable[str], recent: Mapping[str, str]
    ) -> LineWatermarks:
        """A run reading from ``since``, after ``ids_at_since`` were emitted at exactly
        ``since`` and ``recent`` (lookback memory: id -> ``lastUpdatedAt``) at or after it."""
        emitted = dict.fromkeys(ids_at_since, since)
        for order_id, updated_at in recent.items():
            emitted[order_id] = max(updated_at, emitted.get(order_id, updated_at))
        return cls(min(floor, since), emitted)

    def is_new(self, order_id: str, line_updated_at: str | None) -> bool:
        """Whether this version of the line was not emitted before.

        A line without ``lastUpdatedAt`` cannot be told apart: it goes out with its order.
        """
        if line_updated_at is None:
            return True
        watermark = self._emitted.get(order_id)
        if watermark is None:
            return line_updated_at >= self.floor
        return line_updated_at > watermark

    def emitted(self, order: Mapping[str, t.Any]) -> None:
        """Note that the lines of this order version went out."""
        self._emitted[order["id"]] = order["lastUpdatedAt"]
