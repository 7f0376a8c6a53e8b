"""What a run's index page plots about one evaluated split, kept as a small JSON file.

Written beside the split's ranking page (``test.html`` -> ``test-summary.json``) by
``trainer.evaluate.write_page``:

* ``rank_histogram``: the text-to-video rank of every query's ground-truth video (1-based,
  ties averaged as in ``model.metric``) counted in doubling bins ``[1, 2), [2, 4), [4, 8), ...``
  (``edges``, the last one above the number of videos), i.e. a histogram on a log scale;
* ``moe``: per expert, the distribution (count, mean, min, quartiles, max) of the MoE weight
  every query gives it, split by whether the query's ground-truth video has that expert
  (``available`` / ``missing``; ``null`` where no query falls in the group). Absent when the
  model does not score with MoE weights.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from utils.atomic import write_text_atomic


def summary_path(page: Path) -> Path:
    """Where the summary of the split whose ranking page is ``page`` goes."""
    page = Path(page)
    return page.with_name(f"{page.stem}-summary.json")


def rank_bin_edges(num_videos: int) -> list[int]:
    """Doubling bin edges ``[1, 2, 4, ..., 2**k]`` with ``2**k > num_videos``."""
    return [2 ** k for k in range(math.floor(math.log2(num_videos)) + 2)]


def box_stats(values: np.ndarray) -> dict[str, float] | None:
    """``values: [K]`` -> count, mean, min, q1, median, q3, max; None when ``K == 0``."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return None
    q0, q1, q2, q3, q4 = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"count": int(values.size), "mean": float(values.mean()), "min": float(q0), "q1": float(q1),
            "median": float(q2), "q3": float(q3), "max": float(q4)}


def summarise(ranks: np.ndarray, query_masks: np.ndarray, experts: list[str] | None = None,
              moe_weights: np.ndarray | None = None, availability: np.ndarray | None = None) -> dict:
    """The summary of one split.

    Args:
        ranks: ``[K]`` 1-based rank of the ground-truth video of each real caption, in row order.
        query_masks: ``[N, Q]``, non-zero for real captions.
        experts: the M expert names (the columns of the two arrays below), or None.
        moe_weights: ``[N*Q, M]`` each caption row's MoE weights.
        availability: ``[N, M]``, non-zero where the video has the expert.
    """
    query_masks = np.asarray(query_masks)
    num_videos, caps_per_video = query_masks.shape
    ranks = np.asarray(ranks)
    edges = rank_bin_edges(num_videos)
    counts = np.histogram(ranks, bins=edges)[0]
    summary: dict = {"num_videos": num_videos, "num_queries": int(ranks.size),
                     "rank_histogram": {"edges": edges, "counts": counts.tolist()}}
    if experts is not None:
        valid = np.flatnonzero(query_masks.reshape(-1) != 0)
        weights = np.asarray(moe_weights)[valid]                                  # [K, M]
        has = np.asarray(availability)[valid // caps_per_video] != 0              # [K, M]
        summary["moe"] = {name: {"available": box_stats(weights[has[:, m], m]),
                                 "missing": box_stats(weights[~has[:, m], m])}
                          for m, name in enumerate(experts)}
    return summary


def write_eval_summary(path: Path, ranks: np.ndarray, query_masks: np.ndarray, experts: list[str] | None = None,
                       moe_weights: np.ndarray | None = None, availability: np.ndarray | None = None) -> Path:
    """Write :func:`summarise` of the arguments to ``path`` as JSON, atomically."""
    summary = summarise(ranks, query_masks, experts, moe_weights, availability)
    return write_text_atomic(path, json.dumps(summary, indent=1) + "\n")
