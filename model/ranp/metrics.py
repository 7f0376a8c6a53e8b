"""nDCG and mAP against graded relevance (RANP, ICIAP 2022), as its original code defines them.

Matrices here are indexed ``[video, caption]``, like the relevance matrices they are scored
against (the one orientation of relevance throughout the project), and results are fractions
in [0, 1] rather than percent. :func:`ndcg_and_map` scores such a pair of matrices; the metric
configs name, ``relevance_metrics``, takes an evaluation split's ``[caption, video]`` ``sims``
and ``query_masks`` (the layout of ``model.metric``) plus the split's relevance.
"""
from __future__ import annotations

import numpy as np
import torch

from model.metric import _CHUNK_ELEMENTS, ArrayLike, _as_tensor, _valid_queries
from utils.registry import METRICS


def _ndcg_ap_block(sims: torch.Tensor, rel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nDCG and AP of every row of a block: ``sims`` ``[q, n]``, ``rel`` float64 ``[q, n]``.

    Returns two float64 tensors ``[q]``.
    """
    num_items = sims.shape[1]
    gains = rel.gather(1, torch.sort(sims, dim=1, descending=True, stable=True).indices)
    ranks = torch.arange(num_items, dtype=torch.float64, device=sims.device)
    discount = torch.log2(ranks + 2)
    k = (rel > 0).sum(dim=1, keepdim=True)
    cut = int(k.max()) if k.numel() else 0
    head = ranks[:cut] < k
    dcg = (gains[:, :cut] / discount[:cut]).masked_fill(~head, 0).sum(dim=1)
    ideal = rel.topk(cut, dim=1).values
    idcg = (ideal / discount[:cut]).masked_fill(~head, 0).sum(dim=1)
    ndcg = torch.where(idcg > 0, dcg / idcg, 0.0)

    hits = gains == 1
    precision = gains.cumsum(dim=1).div_(ranks + 1)
    ap = precision.masked_fill_(~hits, 0).sum(dim=1) / hits.sum(dim=1).clamp(min=1)
    return ndcg, ap


def ndcg_ap_per_query(sims: ArrayLike, relevance: ArrayLike,
                      chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """nDCG and AP of every row of ``sims`` as a query against its columns (RANP definitions).

    For query ``q``, candidates are ranked by a stable descending sort of ``sims[q]`` (ties:
    lower column first), and ``x`` is ``relevance[q]`` in that order.

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
            entries.

    Returns:
        float64 arrays ``(nDCG [Q], AP [Q])``.
    """
    sims_t = _as_tensor(sims)
    rel_t = _as_tensor(relevance).to(sims_t.device)
    if rel_t.shape != sims_t.shape:
        raise ValueError(f"sims {tuple(sims_t.shape)} and relevance {tuple(rel_t.shape)} differ in shape")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of queries, got {chunk_size}")
    num_queries, num_items = sims_t.shape
    step = chunk_size or max(1, _CHUNK_ELEMENTS // max(num_items, 1))
    ndcg = torch.zeros(num_queries, dtype=torch.float64, device=sims_t.device)
    ap = torch.zeros_like(ndcg)
    for start in range(0, num_queries, step):
        stop = min(start + step, num_queries)
        block_rel = rel_t[start:stop].to(torch.float64)
        ndcg[start:stop], ap[start:stop] = _ndcg_ap_block(sims_t[start:stop], block_rel)
    return ndcg.cpu().numpy(), ap.cpu().numpy()


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
    sims_t = _as_tensor(sims)
    rel_t = _as_tensor(relevance).to(sims_t.device)
    ndcg_vt, ap_vt = ndcg_ap_per_query(sims_t, rel_t, chunk_size)
    ndcg_tv, ap_tv = ndcg_ap_per_query(sims_t.t(), rel_t.t(), chunk_size)
    metrics = {"nDCG_vt": float(ndcg_vt.mean()), "nDCG_tv": float(ndcg_tv.mean())}
    metrics["nDCG_avg"] = (metrics["nDCG_vt"] + metrics["nDCG_tv"]) / 2
    metrics.update({"mAP_vt": float(ap_vt.mean()), "mAP_tv": float(ap_tv.mean())})
    metrics["mAP_avg"] = (metrics["mAP_vt"] + metrics["mAP_tv"]) / 2
    return metrics


@METRICS.register()
def relevance_metrics(sims: ArrayLike, query_masks: ArrayLike | None,
                      relevance: ArrayLike) -> dict[str, float]:
    """:func:`ndcg_and_map` of an evaluation split, given in the layout of ``t2v_metrics``.

    Args:
        sims: ``[N * Q, N]`` caption rows grouped by video, as for ``t2v_metrics``.
        query_masks: ``[N, Q]`` (or None: every caption slot exists); masked rows are left out.
        relevance: ``[N, K]`` indexed ``[video, caption]``, one column per kept row of
            ``sims``, in row order.

    Returns:
        The :func:`ndcg_and_map` dict.
    """
    sims_t = _as_tensor(sims)
    valid = _valid_queries(query_masks, sims_t.shape[0], sims_t.device)
    kept = sims_t if valid is None else sims_t[valid]
    return ndcg_and_map(kept.t(), relevance)
