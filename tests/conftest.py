"""Shared fixtures and helpers: paths to the reference data produced by the original code, loading the scripts."""
from __future__ import annotations

import importlib.util
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


def load_script(name: str):
    """Import a top-level script by path (``test`` would otherwise find Python's own package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_cli", REPO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
