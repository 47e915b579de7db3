"""Fixtures of the engine tests; helpers live in engine_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import make_npz


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    return make_npz(tmp_path / "bands.npz")
