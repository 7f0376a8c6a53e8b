"""relevance_metrics (nDCG, mAP against graded relevance): parity with the original RANP code
and with a per-query loop over the definitions."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import reference_path

from model.ranp.metrics import ndcg_and_map, ndcg_ap_per_query, relevance_metrics
from trainer.evaluate import needs_relevance
from utils.registry import METRICS

CASES = ["metrics_3x6_small", "metrics_50x250_graded"]
KEYS = ["nDCG_vt", "nDCG_tv", "nDCG_avg", "mAP_vt", "mAP_tv", "mAP_avg"]


def load(case: str) -> tuple[np.ndarray, np.ndarray, dict]:
    arrays = np.load(reference_path("ranp", f"{case}.npz"))
    expected = json.loads(reference_path("ranp", f"{case}.json").read_text())
    return arrays["sim"], arrays["rel"], expected


def explicit_query(sims: np.ndarray, rel: np.ndarray) -> tuple[float, float]:
    """nDCG and AP of one query, following the definitions one rank at a time."""
    order = sorted(range(len(sims)), key=lambda j: (-sims[j], j))
    x = [float(rel[j]) for j in order]
    k = sum(r > 0 for r in rel)
    ideal = sorted((float(r) for r in rel), reverse=True)
    dcg = sum(x[r] / math.log2(r + 2) for r in range(k))
    idcg = sum(ideal[r] / math.log2(r + 2) for r in range(k))
    ndcg = dcg / idcg if idcg > 0 else 0.0
    hits = [r for r in range(len(x)) if x[r] == 1]
    ap = sum(sum(x[:r + 1]) / (r + 1) for r in hits) / max(1, len(hits))
    return ndcg, ap


def explicit_metrics(sims: np.ndarray, rel: np.ndarray) -> dict[str, float]:
    vt = np.array([explicit_query(sims[q], rel[q]) for q in range(sims.shape[0])])
    tv = np.array([explicit_query(sims[:, q], rel[:, q]) for q in range(sims.shape[1])])
    (ndcg_vt, ap_vt), (ndcg_tv, ap_tv) = vt.mean(axis=0), tv.mean(axis=0)
    return {"nDCG_vt": ndcg_vt, "nDCG_tv": ndcg_tv, "nDCG_avg": (ndcg_vt + ndcg_tv) / 2,
            "mAP_vt": ap_vt, "mAP_tv": ap_tv, "mAP_avg": (ap_vt + ap_tv) / 2}


@pytest.mark.parametrize("as_torch", [False, True], ids=["numpy", "torch"])
@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case: str, as_torch: bool) -> None:
    sims, rel, expected = load(case)
    if as_torch:
        sims, rel = torch.from_numpy(sims), torch.from_numpy(rel)
    got = ndcg_and_map(sims, rel)
    assert list(got) == KEYS
    for key in KEYS:
        assert isinstance(got[key], float), key
        assert got[key] == pytest.approx(expected["evaluate_metrics"][key], rel=0, abs=1e-9), key


@pytest.mark.parametrize("chunk_size", [1, 7, None])
@pytest.mark.parametrize("case", CASES)
def test_per_query_matches_reference(case: str, chunk_size: int | None) -> None:
    sims, rel, expected = load(case)
    per_query = expected["per_query"]
    for direction, (s, r) in {"vt": (sims, rel), "tv": (sims.T, rel.T)}.items():
        ndcg, ap = ndcg_ap_per_query(s, r, chunk_size)
        np.testing.assert_allclose(ndcg, per_query[f"nDCG_{direction}_per_query"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ap, per_query[f"AP_{direction}_per_query"], rtol=0, atol=1e-9)


def test_quirks_of_the_small_case() -> None:
    """Graded cumsum in AP (0.75 where binary AP is 0.5); all-zero row and column score 0."""
    sims, rel, _ = load("metrics_3x6_small")
    ndcg, ap = ndcg_ap_per_query(sims, rel)
    assert ap[0] == 0.75
    assert ndcg[2] == 0.0 and ap[2] == 0.0
    ndcg_tv, ap_tv = ndcg_ap_per_query(sims.T, rel.T)
    assert ndcg_tv[4] == 0.0 and ap_tv[4] == 0.0


def official_ndcg(sim: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per-query nDCG over the whole matrix at once, in the official array operations (the
    EK-100 protocol's calculate_k_counts / calculate_DCG / calculate_IDCG)."""
    rows = np.repeat(np.arange(sim.shape[0])[:, None], sim.shape[1], axis=1)
    divisors = np.repeat(np.log2(np.arange(sim.shape[1]) + 2)[None], sim.shape[0], axis=0)
    k_counts = (np.sort(rel)[:, ::-1] > 0).astype(int)
    dcg = np.sum(rel[rows, np.argsort(sim)[:, ::-1]] * k_counts / divisors, axis=1)
    idcg = np.sum(rel[rows, np.argsort(rel)[:, ::-1]] * k_counts / divisors, axis=1)
    return dcg / idcg


def official_ap(sim: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per-query AP over the whole matrix at once, in the official array operations."""
    order = (-sim).argsort()
    ranked = rel[np.arange(rel.shape[0])[:, None], order]
    cumulative = np.cumsum(ranked, axis=1)
    cumulative[ranked != 1] = 0
    return np.sum(cumulative / (np.arange(ranked.shape[1]) + 1), axis=1) / np.sum(ranked == 1, axis=1)


def official_metrics(sim: np.ndarray, rel: np.ndarray) -> dict[str, float]:
    vt, tv = np.mean(official_ndcg(sim, rel)), np.mean(official_ndcg(sim.T, rel.T))
    ap_vt, ap_tv = np.mean(official_ap(sim, rel)), np.mean(official_ap(sim.T, rel.T))
    return {"nDCG_vt": vt, "nDCG_tv": tv, "nDCG_avg": (vt + tv) / 2,
            "mAP_vt": ap_vt, "mAP_tv": ap_tv, "mAP_avg": (ap_vt + ap_tv) / 2}


def graded_relevance(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """EK-100-like relevance: mostly 0, some graded values, every row and column with a 1."""
    levels = np.array([0.0] * 12 + [1 / 12, 0.125, 0.25, 1 / 3, 0.5, 0.5, 0.625, 5 / 6, 1.0])
    rel = levels[rng.integers(0, len(levels), shape)]
    rel[np.arange(shape[0]), rng.integers(0, shape[1], shape[0])] = 1.0
    rel[rng.integers(0, shape[0], shape[1]), np.arange(shape[1])] = 1.0
    return rel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk_size", [1, 7, None])
def test_bit_equal_to_the_official_operations_with_ties(chunk_size: int | None, dtype: type) -> None:
    """Quantised scores (many exact ties, ranked by numpy's default sort as the official code
    does) on fresh random matrices; blocks of queries change nothing, not even the last bit."""
    rng = np.random.default_rng(11)
    sims = (rng.integers(0, 9, (37, 211)) / 8).astype(dtype)
    rel = graded_relevance(rng, sims.shape)
    got = ndcg_and_map(sims, rel, chunk_size)
    assert got == official_metrics(sims, rel)
    ndcg, ap = ndcg_ap_per_query(sims.T, rel.T, chunk_size)
    np.testing.assert_array_equal(ndcg, official_ndcg(sims.T, rel.T))
    np.testing.assert_array_equal(ap, official_ap(sims.T, rel.T))


def test_tied_items_rank_as_numpy_sorts_them() -> None:
    """nDCG ranks by argsort reversed, mAP by argsort of the negated scores: with two tied
    items (numpy's sort keeps a short row's order) the two metrics break the tie oppositely."""
    sims = np.array([[0.5, 0.5, 0.1]], np.float32)
    ndcg, ap = ndcg_ap_per_query(sims, np.array([[0.0, 1.0, 0.0]]))
    assert ndcg[0] == official_ndcg(sims, np.array([[0.0, 1.0, 0.0]]))[0]
    assert ap[0] == official_ap(sims, np.array([[0.0, 1.0, 0.0]]))[0]


@pytest.mark.parametrize("chunk_size", [1, 5, None])
def test_matches_explicit_loop_on_untied_scores_and_empty_queries(chunk_size: int | None) -> None:
    rng = np.random.default_rng(5)
    sims = rng.random((9, 23)).astype(np.float32)
    levels = np.array([0.0, 0.0, 0.0, 0.25, 0.5, 0.9, 1.0])
    rel = levels[rng.integers(0, len(levels), sims.shape)]
    rel[2] = 0
    rel[:, 4] = 0
    got = ndcg_and_map(torch.from_numpy(sims), torch.from_numpy(rel), chunk_size)
    expected = explicit_metrics(sims, rel)
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], rel=0, abs=1e-12), key


def test_float32_relevance_is_scored_in_float64() -> None:
    sims, rel, expected = load("metrics_50x250_graded")
    got = ndcg_and_map(sims, rel.astype(np.float32))
    assert got == ndcg_and_map(sims, rel.astype(np.float32).astype(np.float64))
    assert got["nDCG_avg"] == pytest.approx(expected["evaluate_metrics"]["nDCG_avg"], abs=1e-6)


def test_shape_mismatch_and_bad_chunk_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        ndcg_and_map(np.zeros((2, 3), np.float32), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="chunk_size"):
        ndcg_and_map(np.zeros((2, 3), np.float32), np.zeros((2, 3)), chunk_size=0)


def test_registered_form_scores_the_kept_caption_rows_against_the_split_relevance() -> None:
    rng = np.random.default_rng(3)
    num_videos, slots = 6, 4
    sims = rng.standard_normal((num_videos * slots, num_videos)).astype(np.float32)   # [N*Q, N]
    masks = (rng.random((num_videos, slots)) < 0.7).astype(np.float64)
    masks[:, 0] = 1
    kept = masks.reshape(-1) != 0
    relevance = rng.choice([0.0, 0.25, 0.5, 1.0], size=(num_videos, int(kept.sum())))   # [video, kept caption]
    assert METRICS.get("relevance_metrics") is relevance_metrics
    assert needs_relevance("relevance_metrics") and not needs_relevance("t2v_metrics")
    got = METRICS.get("relevance_metrics")(sims, query_masks=masks, relevance=relevance)
    assert got == ndcg_and_map(sims[kept].T, relevance)
    assert got == pytest.approx(explicit_metrics(sims[kept].T, relevance), abs=1e-12)
    with pytest.raises(ValueError, match="differ in shape"):
        relevance_metrics(sims, None, relevance)
