"""Fixtures shared by several test modules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.seaweedfs import SeaweedFS


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
