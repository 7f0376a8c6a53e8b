"""Retrieval metrics for text-video retrieval.

Layout shared by every function here:

* ``sims`` has shape ``[N * Q, N]``: one row per text query (caption), one column per
  video, ``sims[i, j]`` being the similarity of caption ``i`` to video ``j``. Rows are
  grouped by video: row ``v * Q + k`` is caption ``k`` of video ``v``. ``Q`` (captions
  per video) is inferred as ``rows // cols``.
* ``query_masks`` (optional) has ``N * Q`` entries, normally shape ``[N, Q]``, with 1 for
  a real caption and 0 for a padded or missing slot. Flattened row-major it follows the
  row order of ``sims``.

Ranks are 0-based. Ties are broken by averaging: an item beaten by ``b`` candidates and
tied with ``e - 1`` others gets rank ``b + (e - 1) / 2``, the mean of the tied positions.
Values are compared in the input's own floating point dtype, so exact float ties are
found exactly as they occur in that dtype.

The work is vectorised and processed in blocks of rows, so memory stays bounded even for
large test sets (e.g. MSR-VTT full test: 59,800 x 2,990).

nDCG and mAP against graded relevance (RANP) are in ``model/ranp/metrics.py``.
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch

from utils.metric_names import GMEAN_KEY
from utils.registry import METRICS

ArrayLike = Union[np.ndarray, torch.Tensor]

# Distance assigned to padded caption slots in video-to-text retrieval (rounded to the
# input dtype), which ranks them after every real caption.
MISSING_DIST = 1e8
# Number of similarity entries handled per block (bounds the temporary memory).
_CHUNK_ELEMENTS = 1 << 22


def _as_tensor(sims: ArrayLike) -> torch.Tensor:
    """Return ``sims`` as a 2-D floating point tensor, without copying when possible."""
    if isinstance(sims, torch.Tensor):
        tensor = sims.detach()
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(sims))
    if tensor.ndim != 2:
        raise ValueError(f"expected a 2-D similarity matrix, got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    return tensor


def _layout(sims: torch.Tensor) -> tuple[int, int]:
    """Return ``(num_videos, captions_per_video)`` for ``sims`` of shape ``[N * Q, N]``."""
    rows, cols = sims.shape
    if cols == 0 or rows == 0 or rows % cols:
        raise ValueError(
            f"expected sims of shape [N * Q, N] (rows a positive multiple of columns), "
            f"got {rows} x {cols}"
        )
    return cols, rows // cols


def _valid_queries(
    query_masks: ArrayLike | None, num_queries: int, device: torch.device
) -> torch.Tensor | None:
    """Flatten ``query_masks`` ([N, Q]) to a boolean tensor [N * Q], True = caption exists."""
    if query_masks is None:
        return None
    mask = torch.as_tensor(query_masks, device=device)
    if mask.numel() != num_queries:
        raise ValueError(
            f"query_masks has {mask.numel()} entries, expected {num_queries} (one per row of sims)"
        )
    return mask.reshape(-1) != 0


def t2v_ranks(sims: ArrayLike, query_masks: ArrayLike | None = None) -> np.ndarray:
    """0-based text-to-video rank of each kept query.

    Args:
        sims: similarities, shape ``[N * Q, N]`` (numpy array or torch tensor).
        query_masks: optional, ``N * Q`` entries (shape ``[N, Q]``); rows whose mask is 0
            are dropped from the result.

    Returns:
        float64 array of shape ``[K]`` (``K`` = number of kept queries, ``N * Q`` without
        a mask): for each row, the position of its ground-truth video ``row // Q`` among
        all ``N`` videos sorted by decreasing similarity, ties averaged.
    """
    sims_t = _as_tensor(sims)
    num_vids, caps_per_vid = _layout(sims_t)
    num_queries = sims_t.shape[0]
    valid = _valid_queries(query_masks, num_queries, sims_t.device)

    gt_cols = torch.arange(num_queries, device=sims_t.device) // caps_per_vid
    ranks = torch.empty(num_queries, dtype=torch.float64, device=sims_t.device)
    step = max(1, _CHUNK_ELEMENTS // num_vids)
    for start in range(0, num_queries, step):
        block = sims_t[start:start + step]
        gt = block.gather(1, gt_cols[start:start + step, None])
        if torch.isnan(gt).any():
            raise ValueError("the ground-truth similarity of some query is NaN")
        beaten = (block > gt).sum(dim=1)
        beaten_or_tied = (block >= gt).sum(dim=1)
        ranks[start:start + step] = (beaten + beaten_or_tied - 1).to(torch.float64) / 2
    if valid is not None:
        ranks = ranks[valid]
    return ranks.cpu().numpy()


def v2t_ranks(sims: ArrayLike, query_masks: ArrayLike | None = None) -> np.ndarray:
    """0-based video-to-text rank of each video.

    For video ``v``, all ``N * Q`` captions are ordered by decreasing similarity, with
    masked caption slots given distance ``MISSING_DIST`` (so they come after every real
    caption). Each of the video's own unmasked captions is ranked with ties averaged, and
    the video's rank is the best (minimum) of these; ``inf`` if it has no caption left.
    Since the averaged rank strictly increases with the distance, that minimum is the
    rank of the video's most similar own caption, so each video needs one count over the
    captions rather than a sort.

    Args:
        sims: similarities, shape ``[N * Q, N]`` (numpy array or torch tensor).
        query_masks: optional, ``N * Q`` entries (shape ``[N, Q]``), 0 = missing caption.

    Returns:
        float64 array of shape ``[N]``.
    """
    sims_t = _as_tensor(sims)
    num_vids, caps_per_vid = _layout(sims_t)
    num_caps = sims_t.shape[0]
    device = sims_t.device
    valid = _valid_queries(query_masks, num_caps, device)

    caption_ids = torch.arange(num_caps, device=device)
    own = sims_t[caption_ids, caption_ids // caps_per_vid].reshape(num_vids, caps_per_vid)
    skip = torch.isnan(own)
    if valid is not None:
        skip |= ~valid.reshape(num_vids, caps_per_vid)
    best = own.masked_fill(skip, -math.inf).amax(dim=1)

    beaten = torch.zeros(num_vids, dtype=torch.int64, device=device)
    beaten_or_tied = torch.zeros_like(beaten)
    step = max(1, _CHUNK_ELEMENTS // num_vids)
    for start in range(0, num_caps, step):
        block = sims_t[start:start + step]
        if valid is not None:
            block = block[valid[start:start + step]]
        beaten += (block > best).sum(dim=0)
        beaten_or_tied += (block >= best).sum(dim=0)
    if valid is not None:
        # Every missing caption slot sits at distance MISSING_DIST from every video.
        num_missing = num_caps - int(valid.sum())
        best_dist = -best
        missing_dist = torch.tensor(MISSING_DIST, dtype=sims_t.dtype, device=device)
        beaten += num_missing * (best_dist > missing_dist)
        beaten_or_tied += num_missing * (best_dist >= missing_dist)
    ranks = (beaten + beaten_or_tied - 1).to(torch.float64) / 2
    return ranks.masked_fill_(skip.all(dim=1), math.inf).cpu().numpy()


def cols2metrics(ranks: ArrayLike, num_queries: int | float) -> dict[str, float]:
    """Retrieval metrics from 0-based ranks.

    Args:
        ranks: 0-based (possibly fractional) rank per query, shape ``[K]``.
        num_queries: number of queries the recalls are divided by (normally ``K``).

    Returns:
        ``R1, R5, R10, R50`` (percent of queries with rank ``== 0``, ``< 5``, ``< 10``,
        ``< 50``), ``MedR`` and ``MeanR`` (1-based median / mean rank) and
        ``geometric_mean_R1-R5-R10`` (0 when any of R1, R5, R10 is 0).
    """
    cols = np.asarray(ranks, dtype=np.float64).reshape(-1)
    if cols.size == 0 or num_queries <= 0:
        raise ValueError("cannot compute retrieval metrics without any query")
    metrics = {
        "R1": 100 * float(np.count_nonzero(cols == 0)) / num_queries,
        "R5": 100 * float(np.count_nonzero(cols < 5)) / num_queries,
        "R10": 100 * float(np.count_nonzero(cols < 10)) / num_queries,
        "R50": 100 * float(np.count_nonzero(cols < 50)) / num_queries,
        "MedR": float(np.median(cols)) + 1,
        "MeanR": float(np.mean(cols)) + 1,
    }
    recalls = np.array([metrics["R1"], metrics["R5"], metrics["R10"]], dtype=np.float64)
    # the geometric mean, exp(mean(log)), computed as scipy.stats.mstats.gmean does
    metrics[GMEAN_KEY] = float(np.exp(np.log(recalls).mean())) if recalls.min() > 0 else 0.0
    return metrics


@METRICS.register()
def t2v_metrics(sims: ArrayLike, query_masks: ArrayLike | None = None) -> dict[str, float]:
    """Text-to-video retrieval metrics.

    Args:
        sims: similarities, shape ``[N * Q, N]`` (numpy array or torch tensor).
        query_masks: optional, shape ``[N, Q]``; masked queries are not counted.

    Returns:
        The ``cols2metrics`` dict over the kept queries.
    """
    ranks = t2v_ranks(sims, query_masks)
    return cols2metrics(ranks, ranks.size)


@METRICS.register()
def v2t_metrics(sims: ArrayLike, query_masks: ArrayLike | None = None) -> dict[str, float]:
    """Video-to-text retrieval metrics (one query per video, best of its captions).

    Args:
        sims: similarities, shape ``[N * Q, N]`` (numpy array or torch tensor).
        query_masks: optional, shape ``[N, Q]``; masked captions rank last and are not
            ground truth.

    Returns:
        The ``cols2metrics`` dict over the ``N`` videos.
    """
    ranks = v2t_ranks(sims, query_masks)
    return cols2metrics(ranks, ranks.size)
