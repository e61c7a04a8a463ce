"""A queued delivery, and how whoever waits for it hears its outcome: a thread or an event loop."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tap_tradecloud.spool.records import EventMeta

Outcome = int | BaseException  # a delivery's sequence number, or why it was not stored
Waiter = Future[int] | asyncio.Future[int]


@dataclass
class Delivery:
    """One queued event and whoever waits for its sequence number."""

    meta: EventMeta
    body: bytes
    future: Waiter


def settle(batch: list[Delivery], outcomes: Sequence[int] | BaseException) -> None:
    """Hand every delivery of a segment its sequence number, or the error, from any thread.

    Threads are woken one by one; the waiters of an event loop all in one call into the loop
    (a call per delivery costs the loop a wake-up each).
    """
    on_loops: dict[asyncio.AbstractEventLoop, list[tuple[Waiter, Outcome]]] = {}
    for future, outcome in paired(batch, outcomes):
        if isinstance(future, asyncio.Future):
            on_loops.setdefault(future.get_loop(), []).append((future, outcome))
        else:
            _set(future, outcome)
    for loop, settled in on_loops.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle_here, settled)


def paired(
    batch: list[Delivery], outcomes: Sequence[int] | BaseException
) -> list[tuple[Waiter, Outcome]]:
    """Each delivery's waiter with its own outcome (one error is everybody's)."""
    if isinstance(outcomes, BaseException):
        return [(delivery.future, outcomes) for delivery in batch]
    return [(delivery.future, outcome) for delivery, outcome in zip(batch, outcomes, strict=True)]


def settle_here(settled: Sequence[tuple[Waiter, Outcome]]) -> None:
    """Resolve waiters from the thread (or loop) they belong to."""
    for waiter, outcome in settled:
        if not waiter.done():  # done means cancelled: its request is gone
            _set(waiter, outcome)


def _set(future: Waiter, outcome: Outcome) -> None:
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
