"""CVPR 2020 Video Pentathlon submissions: the top-10 predictions file of an evaluation.

In challenge mode (top-level ``"challenge_mode": true``) the test run of ``train.py`` and
``test.py`` writes ``<Dataset>-<split>-predictions.csv`` into the run's log folder: one row per
valid query, in the video-major order of the similarity rows (video ``i`` of the phase's list,
then its captions in order; padded queries, whose mask is 0, are left out), holding the
0-based indices into the phase's video list of the 10 best-scoring videos, best first, as
integers separated by commas, without a header. ``public_server_test`` has no ground truth to
show, so no metrics are computed for it.

Tie order: each row is sorted by descending similarity with a stable sort, so videos with
exactly equal similarity are listed lower index first. (The original used numpy's default
quicksort, whose order among exact ties is unspecified; rows without exact ties are identical.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from utils.atomic import write_text_atomic

TOP_K = 10
NO_METRICS_SPLITS = ("public_server_test",)
CHUNK_QUERIES = 4096  # rows sorted at a time: [CHUNK_QUERIES, N] int64 indices at most
SAVED_LINE = "Saved similarity matrix predictions to"


def predictions_name(dataset_name: str, split: str) -> str:
    """``MSRVTT-public_server_val-predictions.csv``."""
    return f"{dataset_name}-{split}-predictions.csv"


def has_metrics(split: str) -> bool:
    """Whether a challenge test run on ``split`` computes metrics (not for the test phase)."""
    return split not in NO_METRICS_SPLITS


def top_k_predictions(sims: np.ndarray, query_masks: np.ndarray, k: int = TOP_K,
                      chunk: int = CHUNK_QUERIES, progress: bool = False) -> np.ndarray:
    """Top-``k`` video indices [K_valid, k] (int64, best first, ties lower index first) of the
    valid queries of ``sims`` [N*Q, N] (video-major rows) with masks [N, Q].

    Rows are sorted ``chunk`` at a time, so beyond the similarities only [chunk, N] indices are held."""
    num_videos, per_video = query_masks.shape
    if sims.shape != (num_videos * per_video, num_videos):
        raise ValueError(f"similarities of shape {sims.shape} do not match query masks {query_masks.shape}: "
                         f"expected ({num_videos * per_video}, {num_videos})")
    rows = np.flatnonzero(query_masks.reshape(-1) != 0)
    out = np.empty((len(rows), min(k, num_videos)), dtype=np.int64)
    for start in tqdm(range(0, len(rows), chunk), desc="top-10", unit="chunk", disable=not progress):
        block = sims[rows[start:start + chunk]]
        out[start:start + len(block)] = np.argsort(-block, axis=1, kind="stable")[:, :k]
    return out


def write_predictions(path: Path, ranks: np.ndarray) -> Path:
    """Write ``ranks`` [rows, k] as the CSV the challenge server reads (``%d``, ``,``, no header), atomically."""
    return write_text_atomic(path, "".join(",".join(map(str, row)) + "\n" for row in ranks.tolist()))


def write_submission(log_dir: Path, dataset_name: str, split: str, sims: np.ndarray,
                     query_masks: np.ndarray) -> Path:
    """Write the predictions CSV of an evaluation into ``log_dir`` and print where (the line the
    baseline scripts parse); returns its path."""
    path = write_predictions(Path(log_dir) / predictions_name(dataset_name, split),
                             top_k_predictions(sims, query_masks, progress=True))
    print(f"{SAVED_LINE} {path}", flush=True)
    return path
