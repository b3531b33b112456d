"""Fixtures for the scenario-language tests; the configuration they break is in
``sample_config.py``."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _unset_test_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``${CARTFLOW_TEST_UNSET}`` in a case is meant to be unset."""
    monkeypatch.delenv("CARTFLOW_TEST_UNSET", raising=False)
