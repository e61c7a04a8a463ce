"""One canonical UTC form for every timestamp."""

from __future__ import annotations

import pytest

from tap_tradecloud.timestamps import normalise, one_ms_before


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-04-23T10:01:53.812Z", "2025-04-23T10:01:53.812Z"),
        ("2025-04-23T12:01:53.812+02:00", "2025-04-23T10:01:53.812Z"),
        ("2025-04-23T10:01:53Z", "2025-04-23T10:01:53.000Z"),
        ("2025-04-23T10:01:53.8129999Z", "2025-04-23T10:01:53.812Z"),
        ("2025-04-23T10:01:53.8-0130", "2025-04-23T11:31:53.800Z"),
        ("2025-04-23 10:01Z", "2025-04-23T10:01:00.000Z"),
    ],
)
def test_normalise(value: str, expected: str) -> None:
    assert normalise(value) == expected


def test_a_timestamp_without_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        normalise("2025-04-23T10:01:53.812")


def test_one_ms_before_crosses_day_boundaries() -> None:
    assert one_ms_before("2024-01-01T00:00:00.000Z") == "2023-12-31T23:59:59.999Z"
