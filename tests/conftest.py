"""Shared fixtures: paths to the reference data produced by the original code."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import trainer.build  # noqa: E402,F401  (fills the registries that configs are validated against)

BUNDLED_REFERENCE = REPO / "tests" / "data" / "reference"


def reference_path(*parts: str) -> Path:
    """Path to a reference file shipped in tests/data/reference; fails the calling test when the
    checkout lacks it."""
    path = BUNDLED_REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path}: reference file missing from the checkout")
    return path
