"""Fixtures of the end-to-end tests (Meltano and PostgreSQL on 127.0.0.1:5432)."""

from __future__ import annotations

import os

import pytest

from tests.e2e.pipeline import MELTANO, postgres_answers


@pytest.fixture(scope="module", autouse=True)
def _pipeline_prerequisites() -> None:
    # In CI these tests must run: a missing prerequisite is a failure, never a skip.
    missing = []
    if not MELTANO.exists():
        missing.append(f"{MELTANO} (run `make install`)")
    if not postgres_answers():
        missing.append("PostgreSQL on 127.0.0.1:5432 (start it; see README troubleshooting)")
    if missing and os.environ.get("CI"):
        pytest.fail("end-to-end prerequisites missing: " + "; ".join(missing))
    if missing:
        pytest.skip("end-to-end prerequisites missing: " + "; ".join(missing))
