"""Sampling and ranking helpers shared by the text-to-video and video-to-text pages.

Layout as in ``model.metric``: ``sims`` is ``[N*Q, N]``, row ``v*Q + k`` being caption slot
``k`` of video ``v``; captions are ``N`` lists of at most ``Q`` strings.
"""
from __future__ import annotations

import numpy as np


def check_inputs(sims: np.ndarray, captions: list[list[str]], video_ids: list[str], num_queries: int,
                 top_k: int) -> tuple[np.ndarray, int, int]:
    """Validate a page's inputs; returns ``(sims as an array, N, Q)``.

    Raises:
        ValueError: on inconsistent shapes or lengths, ``top_k < 1`` or ``num_queries < 0``.
    """
    sims = np.asarray(sims)
    if sims.ndim != 2 or sims.shape[1] == 0:
        raise ValueError(f"sims must be a non-empty [N*Q, N] matrix, got shape {sims.shape}")
    num_videos = sims.shape[1]
    if sims.shape[0] % num_videos:
        raise ValueError(f"sims has {sims.shape[0]} rows, not a multiple of N={num_videos}")
    num_slots = sims.shape[0] // num_videos
    if len(captions) != num_videos or len(video_ids) != num_videos:
        raise ValueError(f"expected {num_videos} caption lists and video ids, got "
                         f"{len(captions)} and {len(video_ids)}")
    if any(len(c) > num_slots for c in captions):
        raise ValueError(f"a video has more than Q={num_slots} captions")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if num_queries < 0:
        raise ValueError(f"num_queries must be >= 0, got {num_queries}")
    return sims, num_videos, num_slots


def valid_query_mask(num_videos: int, num_slots: int, query_masks: np.ndarray | None,
                     captions: list[list[str]]) -> np.ndarray:
    """Boolean ``[N, Q]`` mask of caption slots that may be shown.

    Without ``query_masks`` a slot is valid when the video has a caption at that position.
    With ``query_masks`` the non-zero entries are valid and each must have a caption.
    """
    has_caption = np.arange(num_slots)[None, :] < np.array([len(c) for c in captions])[:, None]
    if query_masks is None:
        return has_caption
    mask = np.asarray(query_masks)
    if mask.shape != (num_videos, num_slots):
        raise ValueError(f"query_masks has shape {mask.shape}, expected {(num_videos, num_slots)}")
    mask = mask != 0
    if np.any(mask & ~has_caption):
        v, k = np.argwhere(mask & ~has_caption)[0]
        raise ValueError(f"query_masks marks caption {k} of video {v} as present, "
                         f"but captions[{v}] has only {len(captions[v])} entries")
    return mask


def sample(candidates: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` of ``candidates`` ``[C]`` without replacement, sorted, drawn from a local
    ``np.random.default_rng(seed)`` (the global numpy RNG is left untouched)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=min(count, candidates.size), replace=False))


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``scores: [R, C]`` -> the ``k`` best columns of each row ``[R, k]`` by decreasing score
    (ties by column index) and their scores ``[R, k]``; ``1 <= k <= C``."""
    candidates = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
    cand_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.argsort(-cand_scores, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(cand_scores, order, axis=1)
