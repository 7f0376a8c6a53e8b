"""Packing released per-video tables (dicts video id -> arrays) into the store's flat arrays.

Every function takes the store's video order (``video_ids``, N videos) and a ``label`` (the
released file) for its one-line errors.
"""
from __future__ import annotations

import numpy as np

from data_loader.store.feature_store import ExpertArrays, TokenArrays
from utils.errors import StoreError


def is_missing(value: object) -> bool:
    """The release marks a missing feature with a float NaN instead of an array."""
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def require_videos(table: dict, video_ids: list[str], label: str, what: str) -> None:
    """StoreError unless every video of the split lists is a key of ``table``."""
    absent = [v for v in video_ids if v not in table]
    if absent:
        raise StoreError(f"{label}: {len(absent)} videos of the split lists have no {what} "
                         f"(e.g. {', '.join(absent[:3])})")


def _one_width(arrays: list[np.ndarray], label: str) -> int:
    """The common last-axis size of the non-empty arrays (empty ones fit any width)."""
    widths = {a.shape[-1] for a in arrays if a.size}
    if len(widths) != 1:
        raise StoreError(f"{label}: expected one feature width, found {sorted(widths) or 'none'}")
    return widths.pop()


def row_list(rows: list[np.ndarray], label: str) -> TokenArrays:
    """Variable-length rows ([T_r, d], [d] for one token, or empty) -> their [T_r, d] float32 views
    in order (``values`` a list, not packed: writing them needs no second copy) and offsets [R+1]."""
    width = _one_width(rows, label)
    try:
        mats = [np.asarray(r, dtype=np.float32).reshape(-1, width) for r in rows]
    except ValueError:
        raise StoreError(f"{label}: a row is not a [tokens, {width}] array") from None
    lengths = np.array([len(m) for m in mats], dtype=np.int64)
    return TokenArrays(mats, np.concatenate([[0], np.cumsum(lengths)]))


def pack_rows(rows: list[np.ndarray], label: str) -> TokenArrays:
    """Variable-length rows ([T_r, d], [d] for one token, or empty) -> values [sum T_r, d], offsets [R+1]."""
    listed = row_list(rows, label)
    width = _one_width(rows, label)
    values = np.concatenate(listed.values) if listed.values else np.zeros((0, width), np.float32)
    return TokenArrays(values, listed.offsets)


def _present(tables: list[dict], video_ids: list[str]) -> np.ndarray:
    """[N] bool: the video has a (non-NaN) feature in every table."""
    return np.array([all(v in t and not is_missing(t[v]) for t in tables) for v in video_ids], dtype=bool)


def pack_expert(tables: list[dict], video_ids: list[str], kind: str, label: str) -> ExpertArrays:
    """One expert from one table per temporal mode (concatenated along features).

    fixed: features [N, D] (zero rows where missing); tokens: features [T, d] with offsets [N+1]
    (no tokens where missing). ``available`` [N] is False where any table lacks the video.
    """
    available = _present(tables, video_ids)
    if not available.any():
        raise StoreError(f"{label}: no video of the split lists has this feature")
    try:
        parts = [[np.asarray(t[v], dtype=np.float32) for t in tables]
                 for v, ok in zip(video_ids, available) if ok]
        if kind == "fixed":
            vectors = [np.concatenate([p.reshape(-1) for p in video]) for video in parts]
            width = _one_width(vectors, label)
            features = np.zeros((len(video_ids), width), dtype=np.float32)
            features[available] = np.stack(vectors)
            return ExpertArrays(features, available)
        rows = [video[0] if len(video) == 1 else np.concatenate([np.atleast_2d(p) for p in video], axis=1)
                for video in parts]
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{label}: features are not numeric arrays of matching shapes ({exc})") from None
    packed = pack_rows(rows, label)
    lengths = np.zeros(len(video_ids), dtype=np.int64)
    lengths[available] = np.diff(packed.offsets)
    return ExpertArrays(packed.values, available, np.concatenate([[0], np.cumsum(lengths)]))


def infer_kind(table: dict) -> str:
    """The kind of an expert table: "fixed" when every present value is one vector ([D] or [1, D]),
    else "tokens"."""
    shapes = [np.shape(v) for v in table.values() if not is_missing(v)]
    return "fixed" if all(len(s) == 1 or (len(s) == 2 and s[0] == 1) for s in shapes) else "tokens"


def pack_text(table: dict, video_ids: list[str], caption_counts: np.ndarray, fused: bool,
              label: str) -> TokenArrays:
    """Word embeddings of every caption in store order: values, the C captions' [tokens, D]
    arrays as a list (``write_text`` writes them block by block, so the release's table is the
    only copy in memory), and offsets [C+1].

    ``table``: video id -> list of [tokens, D] arrays, one per caption; fused datasets stack
    them into one caption per video. ``caption_counts`` [N] (from the index) must match.
    """
    require_videos(table, video_ids, label, "text features")
    captions = [[np.asarray(c, dtype=np.float32) for c in table[v]] for v in video_ids]
    if fused:
        width = _one_width([c for caps in captions for c in caps], label)
        captions = [[np.concatenate([c.reshape(-1, width) for c in caps])] for caps in captions]
    counts = np.array([len(caps) for caps in captions], dtype=np.int64)
    differ = np.flatnonzero(counts != caption_counts)
    if len(differ):
        first = differ[0]
        raise StoreError(f"{label}: video '{video_ids[first]}' has {counts[first]} caption embeddings but "
                         f"{caption_counts[first]} raw captions ({len(differ)} videos differ)")
    return row_list([c for caps in captions for c in caps], label)


def select_captions(table: dict, video_ids: list[str], split_rows: np.ndarray, caption_offsets: np.ndarray,
                    label: str) -> np.ndarray:
    """Store caption rows [n] of the captions ``table`` (video id -> caption index) picks for the
    split's videos ``split_rows`` [n]; ``caption_offsets`` [N+1] from the index."""
    ids = [video_ids[r] for r in split_rows]
    require_videos(table, ids, label, "test caption index")
    picks = np.array([int(table[v]) for v in ids], dtype=np.int64)
    counts = caption_offsets[split_rows + 1] - caption_offsets[split_rows]
    bad = np.flatnonzero((picks < 0) | (picks >= counts))
    if len(bad):
        raise StoreError(f"{label}: video '{ids[bad[0]]}' picks caption {picks[bad[0]]} of {counts[bad[0]]}")
    return caption_offsets[split_rows] + picks
