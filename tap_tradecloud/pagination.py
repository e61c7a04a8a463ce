"""The sliding-window paginator: the only place that knows how pages are asked for.

Each request filters on ``lastUpdatedAt >= since`` (the *anchor*) and uses ``offset`` only to
step over the records (orders, shipments) already read at exactly the anchor timestamp. After
every page the anchor moves to the last record's ``lastUpdatedAt``. This keeps offsets small
(Tradecloud's search refuses ``offset + limit > 10000``) and survives records that change while
the tap is paging: a changed record leaves its old place and shows up again later with a newer
timestamp.

To notice a record that left the anchor group (which would shift the group's later offsets
left and hide a record), every follow-up request starts one record early: the first record
returned must be the last one read. If it is not, the group is read again from offset 0 and
the ids already seen there are skipped.
"""

from __future__ import annotations

import typing as t

from singer_sdk.pagination import BaseAPIPaginator

from tap_tradecloud.compat import override

if t.TYPE_CHECKING:
    from collections.abc import Sequence

    import requests

#: Tradecloud's search index serves at most this many results per query (offset + limit).
RESULT_WINDOW = 10_000
#: Tradecloud refuses ``limit`` above this.
MAX_PAGE_SIZE = 100
#: Re-reads of one anchor group (after it changed under us) before giving up.
MAX_GROUP_REREADS = 20


class WindowToken(t.TypedDict):
    """One page: records with ``lastUpdatedAt >= since``, from ``offset``, ``limit`` many."""

    since: str
    offset: int
    limit: int


class PagingError(RuntimeError):
    """The result set cannot be paged without losing or repeating records."""


class SlidingWindowPaginator(BaseAPIPaginator[WindowToken]):
    """Pages through records sorted by (``lastUpdatedAt``, stable tiebreak).

    The stream hands every page to :meth:`take_page`, which returns the records not yet seen
    and decides the next token; the SDK then calls :meth:`advance`, which only reads that
    decision. Records must carry ``id`` and a normalised ``lastUpdatedAt``.
    """

    def __init__(
        self,
        *,
        since: str,
        page_size: int,
        seen_at_since: Sequence[str] = (),
        noun: str = "order",
        unsorted_advice: str = "report it to Tradecloud support",
    ) -> None:
        """Start at ``since``; ``seen_at_since`` lists ids already emitted at that timestamp.

        The ids are assumed to be the first ones of their group, in order (as a previous run
        emitted them); if that no longer holds, the group is re-read and deduplicated.
        ``noun`` names a record in messages; ``unsorted_advice`` says what to do when a page
        comes back out of order.
        """
        self._noun = noun
        self._unsorted_advice = unsorted_advice
        self._page_size = page_size
        self._anchor = since
        self._seen: set[str] = set(seen_at_since)
        self._position = len(seen_at_since)  # records of the current query read in this pass
        self._last: tuple[str, str] | None = (seen_at_since[-1], since) if seen_at_since else None
        self._in_window = bool(seen_at_since)  # read a record at or after the anchor this pass
        self._rereads = 0
        self._more = True
        super().__init__(self._next_token())

    def take_page(self, records: list[dict]) -> list[dict]:
        """Consume one page (in server order); return the records not emitted before."""
        token = self.current_value
        page_was_full = len(records) >= token["limit"]
        if self._position > 0:
            if self._starts_with_last_read(records):
                records = records[1:]
            elif token["offset"] > 0:
                self._restart_group()
                return []
            else:  # an offset-0 page is a fresh pass over the group anyway
                self._start_pass()
        fresh = [record for record in records if self._is_new(record)]
        self._more = page_was_full
        return fresh

    @override
    def get_next(self, response: requests.Response) -> WindowToken | None:
        """The token :meth:`take_page` decided on, or None after a short page."""
        return self._next_token() if self._more else None

    @override
    def has_more(self, response: requests.Response) -> bool:
        """False once a short page came back (no extra empty request)."""
        return self._more

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        """A full page of re-reads yields no record but paging must go on."""
        return self._more

    def _next_token(self) -> WindowToken:
        overlap = 1 if self._position > 0 else 0
        offset = self._position - overlap
        limit = min(self._page_size + overlap, MAX_PAGE_SIZE, RESULT_WINDOW - offset)
        if limit <= overlap:
            msg = (
                f"More than {RESULT_WINDOW - 2} {self._noun}s share lastUpdatedAt {self._anchor}. "
                f"Tradecloud serves at most {RESULT_WINDOW} results per query, so these "
                f"{self._noun}s cannot all be read; the tap stops rather than skip any. Narrow the "
                "extraction (company_id, process_status, logistics_status) or ask Tradecloud "
                "support to spread the timestamps."
            )
            raise PagingError(msg)
        return {"since": self._anchor, "offset": offset, "limit": limit}

    def _starts_with_last_read(self, records: list[dict]) -> bool:
        return bool(records) and (records[0]["id"], records[0]["lastUpdatedAt"]) == self._last

    def _start_pass(self) -> None:
        self._position, self._last, self._in_window = 0, None, False

    def _restart_group(self) -> None:
        """An order left the anchor group while paging: read the group again from offset 0."""
        self._rereads += 1
        if self._rereads > MAX_GROUP_REREADS:
            msg = (
                f"The {self._noun}s sharing lastUpdatedAt {self._anchor} changed "
                f"{MAX_GROUP_REREADS} "
                "times while the tap was paging through them; run the tap again later."
            )
            raise PagingError(msg)
        self._start_pass()
        self._more = True

    def _is_new(self, record: dict) -> bool:
        order_id, updated_at = record["id"], record["lastUpdatedAt"]
        if updated_at > self._anchor:
            self._anchor, self._seen, self._position, self._rereads = updated_at, set(), 0, 0
        elif updated_at < self._anchor and self._in_window:
            msg = (
                f"Tradecloud answered out of lastUpdatedAt order: {self._noun} {order_id} "
                f"(lastUpdatedAt {updated_at}) came after {self._noun}s updated at "
                f"{self._anchor}. The tap pages on that order, so it stopped here: the bookmark "
                "stays before this page and nothing is skipped (the next run reads the page "
                f"again). If it happens again, {self._unsorted_advice}."
            )
            raise PagingError(msg)
        self._position += 1
        self._last = (order_id, updated_at)
        if updated_at < self._anchor:
            return False  # older than the window: the filter let in a little more than asked
        self._in_window = True
        if order_id in self._seen:
            return False
        self._seen.add(order_id)
        return True
