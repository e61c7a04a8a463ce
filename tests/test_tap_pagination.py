"""The sliding-window paginator on its own: tokens, dedupe, overlap checks, the 10k window."""

from __future__ import annotations

import pytest

from tap_tradecloud.pagination import PagingError, SlidingWindowPaginator


def rec(order_id: str, updated_at: str) -> dict:
    return {"id": order_id, "lastUpdatedAt": updated_at}


T0, T1, T2 = "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:01.000Z", "2024-01-01T00:00:02.000Z"


def test_first_token_reads_from_start_without_overlap() -> None:
    paginator = SlidingWindowPaginator(since=T0, page_size=3)
    assert paginator.current_value == {"since": T0, "offset": 0, "limit": 3}


def test_re_anchors_on_last_timestamp_and_overlaps_by_one() -> None:
    paginator = SlidingWindowPaginator(since=T0, page_size=3)
    page = [rec("a", T0), rec("b", T1), rec("c", T1)]
    assert paginator.take_page(page) == page
    paginator.advance(None)  # type: ignore[arg-type]
    # two orders read at T1: ask from offset 1 so the first answer must be "c" again
    assert paginator.current_value == {"since": T1, "offset": 1, "limit": 4}
    fresh = paginator.take_page([rec("c", T1), rec("d", T2)])
    assert fresh == [rec("d", T2)]
    assert not paginator.has_more(None)  # type: ignore[arg-type]  # short page: no more calls


def test_full_page_of_already_seen_records_keeps_paging() -> None:
    paginator = SlidingWindowPaginator(since=T0, page_size=2, seen_at_since=["a", "b", "c"])
    assert paginator.current_value == {"since": T0, "offset": 2, "limit": 3}
    assert paginator.take_page([rec("c", T0), rec("d", T0), rec("e", T0)]) == [
        rec("d", T0),
        rec("e", T0),
    ]
    assert paginator.continue_if_empty(None)  # type: ignore[arg-type]


def test_group_that_shrank_is_read_again_from_offset_zero_and_deduplicated() -> None:
    paginator = SlidingWindowPaginator(since=T0, page_size=2)
    assert paginator.take_page([rec("a", T0), rec("b", T0)]) == [rec("a", T0), rec("b", T0)]
    paginator.advance(None)  # type: ignore[arg-type]
    assert paginator.current_value == {"since": T0, "offset": 1, "limit": 3}
    # "a" was updated meanwhile: the group shifted left, offset 1 now starts at "c"
    assert paginator.take_page([rec("c", T0), rec("d", T0), rec("a", T1)]) == []
    assert paginator.continue_if_empty(None)  # type: ignore[arg-type]
    paginator.advance(None)  # type: ignore[arg-type]
    assert paginator.current_value == {"since": T0, "offset": 0, "limit": 2}
    assert paginator.take_page([rec("b", T0), rec("c", T0)]) == [rec("c", T0)]


def test_offset_zero_overlap_mismatch_is_a_fresh_pass() -> None:
    paginator = SlidingWindowPaginator(since=T0, page_size=2, seen_at_since=["a"])
    assert paginator.current_value == {"since": T0, "offset": 0, "limit": 3}
    assert paginator.take_page([rec("b", T0), rec("c", T1)]) == [rec("b", T0), rec("c", T1)]


def test_page_size_one_still_progresses() -> None:
    paginator = SlidingWindowPaginator(since=T0, page_size=1)
    assert paginator.take_page([rec("a", T0)]) == [rec("a", T0)]
    paginator.advance(None)  # type: ignore[arg-type]
    assert paginator.current_value == {"since": T0, "offset": 0, "limit": 2}
    assert paginator.take_page([rec("a", T0), rec("b", T0)]) == [rec("b", T0)]
    paginator.advance(None)  # type: ignore[arg-type]
    assert paginator.current_value == {"since": T0, "offset": 1, "limit": 2}


def test_never_asks_past_the_result_window() -> None:
    ids = [f"o{i:05d}" for i in range(9_950)]
    paginator = SlidingWindowPaginator(since=T0, page_size=100, seen_at_since=ids)
    assert paginator.current_value == {"since": T0, "offset": 9_949, "limit": 51}
    page = [rec(ids[-1], T0)] + [rec(f"p{i:05d}", T0) for i in range(50)]
    assert len(paginator.take_page(page)) == 50
    with pytest.raises(PagingError, match=r"share lastUpdatedAt 2024-01-01T00:00:00\.000Z"):
        paginator.advance(None)  # type: ignore[arg-type]


def test_unsorted_answer_is_refused() -> None:
    paginator = SlidingWindowPaginator(since=T1, page_size=2)
    with pytest.raises(PagingError, match="out of lastUpdatedAt order"):
        paginator.take_page([rec("a", T1), rec("b", T0)])


def test_leading_records_older_than_the_anchor_are_skipped_and_counted() -> None:
    paginator = SlidingWindowPaginator(since=T1, page_size=3)
    page = [rec("x", T0), rec("a", T1), rec("b", T1)]
    assert paginator.take_page(page) == [rec("a", T1), rec("b", T1)]
    paginator.advance(None)  # type: ignore[arg-type]
    assert paginator.current_value == {"since": T1, "offset": 2, "limit": 4}
