"""nDCG and mAP against graded relevance, as the EPIC-KITCHENS-100 Multi-Instance Retrieval
protocol defines them (the official JPoSE evaluation, which RANP's code copies).

Matrices here are indexed ``[video, caption]``, like the relevance matrices they are scored
against (the one orientation of relevance throughout the project), and results are fractions
in [0, 1] rather than percent. :func:`ndcg_and_map` scores such a pair of matrices; the metric
configs name, ``relevance_metrics``, takes an evaluation split's ``[caption, video]`` ``sims``
and ``query_masks`` (the layout of ``model.metric``) plus the split's relevance.

Every query's value is computed with the official array operations, a block of queries at a
time, so results agree with the official code to the last bit, ties included:

* nDCG ranks a query's items by ``numpy.argsort(sims)`` reversed (of tied items, the one
  numpy's default sort puts last ranks first); mAP ranks them by ``numpy.argsort(-sims)``.
  The similarities are ranked in the dtype they are given in (float32 from a model).
* The relevance is scored in float64.
* One deviation, as in RANP's copy: a query without any relevant item scores 0 (the official
  code divides by zero and returns NaN). The EK-100 test set has no such query.
"""
from __future__ import annotations

import numpy as np
import torch

from model.metric import _CHUNK_ELEMENTS, ArrayLike, _as_tensor, _valid_queries
from utils.registry import METRICS


def _as_numpy(values: ArrayLike) -> np.ndarray:
    """A 2-D numpy view or copy of an array or tensor (bfloat16/float16 tensors as float32)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.dtype in (torch.bfloat16, torch.float16):
            values = values.float()
        values = values.numpy()
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {values.shape}")
    return values


def _ndcg_ap_block(sims: np.ndarray, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """nDCG and AP of every row of a block: ``sims`` ``[q, n]``, ``rel`` float64 ``[q, n]``.

    The array operations (and so the memory layouts numpy's sums follow) are the official
    ones, so every value is bit-equal to theirs. Returns two float64 arrays ``[q]``.
    """
    num_queries, num_items = sims.shape
    rows = np.repeat(np.arange(num_queries)[:, None], num_items, axis=1)
    discount = np.repeat(np.log2(np.arange(num_items) + 2)[None], num_queries, axis=0)
    k_counts = (np.sort(rel)[:, ::-1] > 0).astype(int)
    dcg = np.sum(rel[rows, np.argsort(sims)[:, ::-1]] * k_counts / discount, axis=1)
    idcg = np.sum(rel[rows, np.argsort(rel)[:, ::-1]] * k_counts / discount, axis=1)
    ndcg = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)

    ranked = rel[rows[:, :1], (-sims).argsort()]
    precision = np.cumsum(ranked, axis=1)
    precision[ranked != 1] = 0
    hits = np.sum(ranked == 1, axis=1)
    ap = np.sum(precision / (np.arange(num_items) + 1), axis=1) / np.maximum(hits, 1)
    return ndcg, ap


def ndcg_ap_per_query(sims: ArrayLike, relevance: ArrayLike,
                      chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """nDCG and AP of every row of ``sims`` as a query against its columns (official definitions).

    For query ``q`` let ``x`` be ``relevance[q]`` in ranked order (see the module docstring
    for the two rankings).

    * nDCG: ``k`` = number of ``relevance[q] > 0``; ``DCG = sum_{r < k} x[r] / log2(r + 2)``
      (raw graded gains, only the first ``k`` ranks); IDCG is the same sum over the
      relevances sorted in decreasing order; nDCG = DCG / IDCG, 0 when ``k == 0``.
    * AP: only entries exactly 1.0 are hits, but the precision at a hit uses the cumulative
      sum of the graded relevances: ``AP = sum_{r: x[r] == 1} cumsum(x)[r] / (r + 1)``
      divided by ``max(1, #hits)``; 0 without a hit.

    Args:
        sims: ``[Q, N]`` similarities (numpy array or torch tensor).
        relevance: ``[Q, N]`` graded relevance (any real dtype; computed in float64).
        chunk_size: queries per block; default keeps a block near ``_CHUNK_ELEMENTS``
            entries. Blocks change nothing in the results.

    Returns:
        float64 arrays ``(nDCG [Q], AP [Q])``.
    """
    sims_np = _as_numpy(sims)
    rel_np = _as_numpy(relevance)
    if rel_np.shape != sims_np.shape:
        raise ValueError(f"sims {sims_np.shape} and relevance {rel_np.shape} differ in shape")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of queries, got {chunk_size}")
    num_queries, num_items = sims_np.shape
    step = chunk_size or max(1, _CHUNK_ELEMENTS // max(num_items, 1))
    ndcg = np.zeros(num_queries, dtype=np.float64)
    ap = np.zeros_like(ndcg)
    for start in range(0, num_queries, step):
        stop = min(start + step, num_queries)
        block_rel = rel_np[start:stop].astype(np.float64, copy=False)
        ndcg[start:stop], ap[start:stop] = _ndcg_ap_block(sims_np[start:stop], block_rel)
    return ndcg, ap


def ndcg_and_map(sims: ArrayLike, relevance: ArrayLike,
                 chunk_size: int | None = None) -> dict[str, float]:
    """nDCG and mAP against graded relevance, video-to-text, text-to-video and their mean.

    Args:
        sims: ``[V, T]`` similarities indexed ``[video, caption]``.
        relevance: ``[V, T]`` graded relevance in [0, 1], indexed ``[video, caption]``.
        chunk_size: queries per block (``ndcg_ap_per_query``); bounds the temporary memory
            to a few times ``chunk_size * max(V, T)`` float64 entries.

    Returns:
        ``nDCG_vt``, ``nDCG_tv``, ``nDCG_avg``, ``mAP_vt``, ``mAP_tv``, ``mAP_avg``: means
        over all queries (a query without relevance counts as 0) as fractions in [0, 1];
        ``_vt`` ranks captions for every video, ``_tv`` videos for every caption and
        ``_avg`` is the mean of the two.
    """
    sims_np = _as_numpy(sims)
    rel_np = _as_numpy(relevance)
    ndcg_vt, ap_vt = ndcg_ap_per_query(sims_np, rel_np, chunk_size)
    ndcg_tv, ap_tv = ndcg_ap_per_query(sims_np.T, rel_np.T, chunk_size)
    metrics = {"nDCG_vt": float(np.mean(ndcg_vt)), "nDCG_tv": float(np.mean(ndcg_tv))}
    metrics["nDCG_avg"] = (metrics["nDCG_vt"] + metrics["nDCG_tv"]) / 2
    metrics.update({"mAP_vt": float(np.mean(ap_vt)), "mAP_tv": float(np.mean(ap_tv))})
    metrics["mAP_avg"] = (metrics["mAP_vt"] + metrics["mAP_tv"]) / 2
    return metrics


@METRICS.register()
def relevance_metrics(sims: ArrayLike, query_masks: ArrayLike | None, relevance: ArrayLike,
                      relevance_columns: ArrayLike | None = None) -> dict[str, float]:
    """:func:`ndcg_and_map` of an evaluation split, given in the layout of ``t2v_metrics``.

    Args:
        sims: ``[N * Q, N]`` caption rows grouped by video, as for ``t2v_metrics``.
        query_masks: ``[N, Q]`` (or None: every caption slot exists); masked rows are left out.
        relevance: ``[N, K]`` indexed ``[video, caption]``, one column per kept row of
            ``sims``, in row order; or, with ``relevance_columns``, one per entry of it.
        relevance_columns: None, or int ``[K]``: column ``j`` of ``relevance`` is the kept row
            ``relevance_columns[j]`` of ``sims`` (a sentence set other than the split's own
            captions, e.g. EPIC-KITCHENS-100's 3,842 test sentences, each scored as the
            caption with its text).

    Returns:
        The :func:`ndcg_and_map` dict.
    """
    sims_t = _as_tensor(sims)
    valid = _valid_queries(query_masks, sims_t.shape[0], sims_t.device)
    kept = sims_t if valid is None else sims_t[valid]
    if relevance_columns is not None:
        kept = kept[torch.as_tensor(relevance_columns, dtype=torch.int64, device=kept.device)]
    return ndcg_and_map(np.ascontiguousarray(_as_numpy(kept.t())), relevance)
