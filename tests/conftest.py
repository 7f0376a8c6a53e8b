"""Shared fixtures and helpers: paths to the reference data produced by the original code, loading the scripts."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from scipy.stats.mstats import gmean

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "misc")]  # as for a command line and a misc/ tool

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


SYNTHETIC_SPLITS = {"train": 1000, "val": 100, "test": 100}


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A small Synthetic store (1000 / 100 / 100 videos) shared by the end-to-end tests."""
    from data_loader.generated.synthetic import generate_synthetic

    folder = tmp_path_factory.mktemp("Synthetic")
    generate_synthetic(folder, seed=0, split_sizes=SYNTHETIC_SPLITS)
    return folder


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """A tiny Synthetic store (160 / 20 / 20 videos) for training runs of a few epochs; tests that
    write into a store (teachers, masks) make their own."""
    from data_loader.generated.synthetic import generate_synthetic

    folder = tmp_path_factory.mktemp("TinySynthetic")
    generate_synthetic(folder, seed=0, split_sizes={"train": 160, "val": 20, "test": 20})
    return folder


def run(module, monkeypatch, *args: str) -> int:
    """Run a command-line script's ``main`` with ``args`` as its command line."""
    monkeypatch.setattr(sys, "argv", [module.__name__, *args])
    return module.main()


def settings(synthetic_dir, save_dir, *extra: str) -> list[str]:
    """``--set`` arguments training on ``synthetic_dir`` into ``save_dir``, without TensorBoard."""
    return ["--set", f"data_loader.args.data_dir={synthetic_dir}", f"trainer.save_dir={save_dir}",
            "trainer.tensorboard=false", *extra]


def chance_geometric_mean(num_videos: int) -> float:
    """The t2v geometric mean of R@1, R@5, R@10 (percent) of random ranking over ``num_videos``."""
    return float(gmean([100 / num_videos, 500 / num_videos, 1000 / num_videos]))
