"""Deliveries made on an event loop, gathered into groups without leaving the loop.

The requests that arrive together are read over a few turns of the loop. A group is handed on
once a turn adds nothing to it, or after :data:`MAX_TURNS` turns; a lone delivery waits one
turn (microseconds). Handing each delivery to a thread instead, as it came, made small groups
and cost a GIL hand-over per group each way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

MAX_TURNS = 8

_Item = TypeVar("_Item")


class LoopGroups(Generic[_Item]):
    """Gathers items added on one event loop and passes each group to ``commit`` on the loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, commit: Callable[[list[_Item]], None]
    ) -> None:
        self.loop = loop
        self._commit = commit
        self._group: list[_Item] = []

    def add(self, item: _Item) -> None:
        """Add ``item`` to the group being gathered (call this on the loop)."""
        self._group.append(item)
        if len(self._group) == 1:
            self.loop.call_soon(self._after_turn, 1, 1)

    def _after_turn(self, seen: int, turns: int) -> None:
        if len(self._group) > seen and turns < MAX_TURNS:
            self.loop.call_soon(self._after_turn, len(self._group), turns + 1)
            return
        group, self._group = self._group, []
        self._commit(group)
