"""Tests for model/metric.py: parity with the original's outputs and hand-made cases."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from conftest import reference_path

from model import metric

REFERENCE_CASES = ["random_1000x100", "random_1000x100_masked", "square_8x8", "zeros_40x4"]
METRIC_KEYS = ["R1", "R5", "R10", "R50", "MedR", "MeanR", "geometric_mean_R1-R5-R10"]


def load_case(case: str) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Return ``(sims, query_masks or None, expected)`` for a metrics reference case."""
    arrays = np.load(reference_path("metrics", f"{case}.npz"))
    expected = json.loads(reference_path("metrics", f"{case}.json").read_text())
    masks = arrays["query_masks"] if "query_masks" in arrays.files else None
    return arrays["sims"], masks, expected


def naive_ranks(sims: np.ndarray, query_masks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-query loops following the metric definitions literally: (t2v ranks, v2t ranks)."""
    rows, num_vids = sims.shape
    caps = rows // num_vids
    valid = np.ones(rows, bool) if query_masks is None else query_masks.reshape(-1) != 0

    def averaged(values: np.ndarray, target) -> float:
        positions = np.flatnonzero(np.sort(values) == target)
        return positions.mean()

    t2v = [averaged(-sims[r], -sims[r, r // caps]) for r in range(rows) if valid[r]]
    v2t = []
    for v in range(num_vids):
        dists = -sims[:, v].copy()
        dists[~valid] = metric.MISSING_DIST
        own = [averaged(dists, dists[j]) for j in range(v * caps, (v + 1) * caps) if valid[j]]
        v2t.append(min(own, default=np.inf))
    return np.array(t2v), np.array(v2t)


def assert_metrics_close(got: dict, expected: dict) -> None:
    assert list(got) == METRIC_KEYS
    assert list(expected) == METRIC_KEYS
    for key in METRIC_KEYS:
        assert isinstance(got[key], float), key
        assert got[key] == pytest.approx(expected[key], rel=0, abs=1e-6), key


@pytest.mark.parametrize("as_torch", [False, True], ids=["numpy", "torch"])
@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_reference_cases(case: str, as_torch: bool) -> None:
    sims, masks, expected = load_case(case)
    if as_torch:
        sims = torch.from_numpy(sims)
        masks = None if masks is None else torch.from_numpy(masks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_metrics_close(metric.t2v_metrics(sims, query_masks=masks), expected["t2v_metrics"])
        assert_metrics_close(metric.v2t_metrics(sims, query_masks=masks), expected["v2t_metrics"])
    t2v = metric.t2v_ranks(sims, masks)
    v2t = metric.v2t_ranks(sims, masks)
    assert t2v.dtype == np.float64 and v2t.dtype == np.float64
    np.testing.assert_array_equal(t2v, expected["t2v_metrics_ranks0"])
    np.testing.assert_array_equal(v2t, expected["v2t_metrics_ranks0"])


def test_small_blocks_match_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    sims, masks, expected = load_case("random_1000x100_masked")
    monkeypatch.setattr(metric, "_CHUNK_ELEMENTS", 250)
    np.testing.assert_array_equal(metric.t2v_ranks(sims, masks), expected["t2v_metrics_ranks0"])
    np.testing.assert_array_equal(metric.v2t_ranks(sims, masks), expected["v2t_metrics_ranks0"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_definition_with_ties_and_masks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_vids, caps = 9, 3
    sims = rng.integers(0, 4, size=(num_vids * caps, num_vids)).astype(np.float32)
    masks = (rng.random((num_vids, caps)) > 0.3).astype(np.float64)
    masks[:, 0] = 1
    for query_masks in (None, masks):
        t2v, v2t = naive_ranks(sims, query_masks)
        np.testing.assert_array_equal(metric.t2v_ranks(sims, query_masks), t2v)
        np.testing.assert_array_equal(metric.v2t_ranks(sims, query_masks), v2t)


def test_perfect_retrieval() -> None:
    num_vids, caps = 6, 4
    sims = np.repeat(np.eye(num_vids, dtype=np.float32), caps, axis=0)
    sims *= np.tile(np.arange(1, caps + 1, dtype=np.float32), num_vids)[:, None]
    for fn in (metric.t2v_metrics, metric.v2t_metrics):
        result = fn(sims)
        assert result["R1"] == 100.0
        assert result["MedR"] == 1.0 and result["MeanR"] == 1.0
        assert result["geometric_mean_R1-R5-R10"] == pytest.approx(100.0)


def test_all_ties_average_the_ranks() -> None:
    num_vids, caps = 7, 3
    sims = np.full((num_vids * caps, num_vids), 0.25, dtype=np.float32)
    np.testing.assert_array_equal(metric.t2v_ranks(sims), np.full(num_vids * caps, 3.0))
    np.testing.assert_array_equal(metric.v2t_ranks(sims), np.full(num_vids, 10.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = metric.t2v_metrics(sims)
    assert result["R1"] == 0.0 and result["R5"] == 100.0
    assert result["MedR"] == 4.0
    assert result["geometric_mean_R1-R5-R10"] == 0.0


def test_torch_input_equals_numpy_input() -> None:
    rng = np.random.default_rng(3)
    sims = np.round(rng.standard_normal((60, 12)), 1).astype(np.float32)
    masks = np.ones((12, 5))
    masks[[1, 4, 9], 3:] = 0
    tensor = torch.from_numpy(sims).requires_grad_(True)
    for query_masks in (None, masks):
        torch_masks = None if query_masks is None else torch.from_numpy(query_masks).bool()
        for fn in (metric.t2v_metrics, metric.v2t_metrics):
            assert fn(tensor, torch_masks) == fn(sims, query_masks)
        for fn in (metric.t2v_ranks, metric.v2t_ranks):
            np.testing.assert_array_equal(fn(tensor, torch_masks), fn(sims, query_masks))
    np.testing.assert_array_equal(
        metric.t2v_ranks(sims.astype(np.float64)), metric.t2v_ranks(torch.from_numpy(sims).double())
    )


def test_ties_are_found_in_the_input_dtype() -> None:
    sims = np.array([[1.0, 1.0001], [0.0, 1.0]], dtype=np.float32)
    assert metric.t2v_ranks(sims).tolist() == [1.0, 0.0]
    assert metric.t2v_ranks(sims.astype(np.float16)).tolist() == [0.5, 0.0]
    assert metric.t2v_ranks(torch.from_numpy(sims).bfloat16()).tolist() == [0.5, 0.0]
    assert metric.v2t_ranks(sims.T.astype(np.float16)).tolist() == [0.5, 0.0]


def test_mask_drops_queries() -> None:
    num_vids, caps = 4, 2
    sims = np.repeat(np.eye(num_vids, dtype=np.float32), caps, axis=0)
    sims[1::caps] = np.roll(np.eye(num_vids, dtype=np.float32), 1, axis=1)  # caption 1 is wrong
    masks = np.array([[1, 0]] * num_vids, dtype=np.float64)

    full = metric.t2v_metrics(sims)
    masked = metric.t2v_metrics(sims, masks)
    assert metric.t2v_ranks(sims).size == 8 and metric.t2v_ranks(sims, masks).size == 4
    assert full["R1"] == 50.0 and masked["R1"] == 100.0

    # Video-to-text: the masked wrong captions would rank first for the next video, but a
    # missing caption is pushed last, and it is not ground truth for its own video.
    sims[1::caps] *= 2
    assert metric.v2t_ranks(sims).tolist() == [1.0] * num_vids
    assert metric.v2t_ranks(sims, masks).tolist() == [0.0] * num_vids


def test_video_without_captions_gets_infinite_rank() -> None:
    sims = np.eye(3, dtype=np.float32)
    masks = np.array([[1.0], [0.0], [1.0]])
    np.testing.assert_array_equal(metric.v2t_ranks(sims, masks), [0.0, np.inf, 0.0])


def test_cols2metrics_values() -> None:
    ranks = np.array([0, 0.5, 3, 9.5, 49, 100])
    result = metric.cols2metrics(ranks, 6)
    assert list(result) == METRIC_KEYS
    assert result["R1"] == pytest.approx(100 / 6)
    assert result["R5"] == pytest.approx(300 / 6)
    assert result["R10"] == pytest.approx(400 / 6)
    assert result["R50"] == pytest.approx(500 / 6)
    assert result["MedR"] == pytest.approx(6.25 + 1)
    assert result["MeanR"] == pytest.approx(ranks.mean() + 1)
    expected_gmean = (result["R1"] * result["R5"] * result["R10"]) ** (1 / 3)
    assert result["geometric_mean_R1-R5-R10"] == pytest.approx(expected_gmean)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError):
        metric.t2v_metrics(np.zeros((10, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        metric.v2t_metrics(np.zeros(8, dtype=np.float32))
    with pytest.raises(ValueError):
        metric.t2v_metrics(np.zeros((8, 4), dtype=np.float32), np.ones((4, 3)))
    nan_gt = np.eye(2, dtype=np.float32)
    nan_gt[1, 1] = np.nan
    with pytest.raises(ValueError):
        metric.t2v_ranks(nan_gt)
    with pytest.raises(ValueError):
        metric.t2v_metrics(np.eye(2, dtype=np.float32), np.zeros((2, 1)))
