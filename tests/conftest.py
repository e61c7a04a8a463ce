"""Fixtures shared by the test modules; plain helpers live in tests/*_helpers.py."""

from __future__ import annotations

import typing as t
import uuid

import pytest

from tests.seaweedfs import SeaweedFS
from tests.tap_helpers import FakeTradecloud, make_order, ts

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    import requests_mock as rm


@pytest.fixture
def fake(requests_mock: rm.Mocker) -> FakeTradecloud:
    """A requests-mock Tradecloud serving five orders, one millisecond apart."""
    server = FakeTradecloud(orders=[make_order(i, ts(i)) for i in range(5)])
    server.install(requests_mock)
    return server


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS server for the session (it takes a few seconds to start)."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def spool_bucket(seaweedfs: SeaweedFS) -> str:
    return seaweedfs.create_bucket()


@pytest.fixture
def s3_spool(seaweedfs: SeaweedFS, spool_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ``s3://`` spool URL, with the AWS variables set as a user would set them."""
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{spool_bucket}/test-{uuid.uuid4().hex[:12]}"
