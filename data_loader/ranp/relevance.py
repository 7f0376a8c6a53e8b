"""Semantic relevance between captions, and between videos and captions (RANP).

Every caption carries a verb class (a scalar, EPIC-Kitchens style, or a set) and a set of
noun classes. The relevance of two items is

    rel = 0.5 * (verb_term + noun_IoU)

* ``noun_IoU = |N_a & N_b| / max(1, |N_a | N_b|)``: two empty sets give 0, not 1.
* ``verb_term`` is the same IoU for verb sets, or ``1.0 if v_a == v_b else 0.0`` for scalar
  verb classes.
* With nouns only, ``verb_term = 1``; with verbs only, ``noun_IoU = 1``. Either form is
  therefore at least 0.5.

A video's classes are pooled from its captions (``pool_video_classes``): a class is kept
when it occurs in at least 25 % of the captions, counting every occurrence (a class listed
twice in one caption counts twice).

Representations (``n`` items, ``C`` classes):

* CSR lists: ``values`` int64 ``[total]`` and ``offsets`` int64 ``[n + 1]``; the classes of
  item ``i`` are ``values[offsets[i]:offsets[i + 1]]``. ``csr_from_lists`` builds them.
* Multi-hot sets: ``[n, C]`` tensors, nonzero = the class is in the set (duplicates collapse).
* Scalar classes (verbs only): int64 ``[n]``.

Everything is a matrix product or a broadcast comparison: no Python loop over pairs.
Results are float64 (the exact values of the IoU formula); ``.float()`` gives the float32
matrices used in training.

``ClassLists`` holds the CSR lists of many items, and ``VideoCaptionRelevance`` the pooled
classes of every video of a dataset, giving the relevance of any videos to any captions in
bounded memory (the loader's batch and evaluation relevance).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

# Multi-hot or count entries held at once when pooling or scoring a whole dataset.
_CHUNK_ELEMENTS = 1 << 22


def csr_from_lists(lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Class lists -> CSR ``(values [total], offsets [n + 1])``, both int64."""
    lengths = torch.tensor([len(items) for items in lists], dtype=torch.int64)
    offsets = torch.zeros(len(lists) + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)
    values = torch.tensor([c for items in lists for c in items], dtype=torch.int64)
    return values, offsets


def class_counts(values: torch.Tensor, offsets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Occurrences of every class in every CSR list, duplicates counted.

    Args:
        values: int64 ``[total]`` class ids in ``[0, num_classes)``.
        offsets: int64 ``[n + 1]``, non-decreasing, ``offsets[-1] == total``.
        num_classes: ``C``.

    Returns:
        int64 ``[n, C]``.
    """
    values, offsets = torch.as_tensor(values), torch.as_tensor(offsets)
    if offsets.ndim != 1 or offsets.numel() == 0 or int(offsets[-1]) != values.numel():
        raise ValueError(f"offsets must be 1-D [n + 1] ending at len(values) = {values.numel()}")
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= num_classes):
        raise ValueError(f"class ids must lie in [0, {num_classes})")
    num_items = offsets.numel() - 1
    lengths = offsets.diff().to(values.device)
    rows = torch.repeat_interleave(torch.arange(num_items, device=values.device), lengths)
    counts = torch.zeros(num_items, num_classes, dtype=torch.int64, device=values.device)
    counts.index_put_((rows, values.long()), torch.ones_like(rows), accumulate=True)
    return counts


def multi_hot(values: torch.Tensor, offsets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """CSR class lists -> bool multi-hot sets ``[n, C]`` (duplicates collapse)."""
    return class_counts(values, offsets, num_classes) > 0


def pool_video_classes(counts: torch.Tensor, caption_video: torch.Tensor, num_videos: int,
                       percent: float = 0.25) -> torch.Tensor:
    """Pool caption classes into video classes (the original's ``extract_video_classes``).

    A class is kept for a video when its occurrences over the video's ``K`` captions reach
    ``percent * K`` (and are at least one). With 5 captions a class needs 2 occurrences, with
    20 captions 5.

    Args:
        counts: ``[n_captions, C]`` occurrences per caption, duplicates included
            (``class_counts``).
        caption_video: int64 ``[n_captions]``, the video of every caption.
        num_videos: ``V``.
        percent: the fraction of a video's captions a class must reach.

    Returns:
        bool ``[V, C]`` multi-hot video sets.
    """
    caption_video = torch.as_tensor(caption_video, dtype=torch.int64)
    if counts.ndim != 2 or caption_video.shape != counts.shape[:1]:
        raise ValueError(f"expected counts [n, C] and caption_video [n], got "
                         f"{tuple(counts.shape)} and {tuple(caption_video.shape)}")
    totals = counts.new_zeros(num_videos, counts.shape[1]).index_add_(0, caption_video, counts)
    captions = torch.bincount(caption_video, minlength=num_videos).to(torch.float64)
    return (totals > 0) & (totals.to(torch.float64) >= percent * captions[:, None])


def set_iou(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """IoU of every row set with every column set, empty unions guarded by ``max(1, .)``.

    Args:
        rows: multi-hot ``[R, C]``; cols: multi-hot ``[M, C]`` (same classes).

    Returns:
        float64 ``[R, M]``.
    """
    if rows.ndim != 2 or cols.ndim != 2 or rows.shape[1] != cols.shape[1]:
        raise ValueError(f"expected multi-hot sets [R, C] and [M, C], got "
                         f"{tuple(rows.shape)} and {tuple(cols.shape)}")
    a = (rows != 0).to(torch.float64)
    b = (cols != 0).to(torch.float64)
    inter = a @ b.t()
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return inter / union.clamp(min=1)


def verb_term(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Verb agreement ``[R, M]`` float64: equality of scalar classes (``[R]`` and ``[M]``)
    or IoU of multi-hot sets (``[R, C]`` and ``[M, C]``)."""
    if rows.ndim == 1 and cols.ndim == 1:
        return (rows[:, None] == cols[None, :]).to(torch.float64)
    if rows.ndim == 2 and cols.ndim == 2:
        return set_iou(rows, cols)
    raise ValueError(f"verbs must be scalar classes on both sides or sets on both sides, got "
                     f"shapes {tuple(rows.shape)} and {tuple(cols.shape)}")


def relevance(row_verbs: torch.Tensor | None, row_nouns: torch.Tensor | None,
              col_verbs: torch.Tensor | None, col_nouns: torch.Tensor | None) -> torch.Tensor:
    """``0.5 * (verb_term + noun_IoU)`` of every row item against every column item.

    Args:
        row_verbs: ``[R]`` scalar classes or ``[R, Cv]`` multi-hot, or None (nouns only).
        row_nouns: ``[R, Cn]`` multi-hot, or None (verbs only).
        col_verbs, col_nouns: the same for the ``M`` column items; None exactly where the
            row side is None.

    Returns:
        float64 ``[R, M]`` in ``[0, 1]``.
    """
    if (row_verbs is None) != (col_verbs is None) or (row_nouns is None) != (col_nouns is None):
        raise ValueError("give verbs (and nouns) for both sides or for neither")
    if row_verbs is None and row_nouns is None:
        raise ValueError("relevance needs verbs, nouns or both")
    verbs = None if row_verbs is None else verb_term(row_verbs, col_verbs)
    nouns = None if row_nouns is None else set_iou(row_nouns, col_nouns)
    if verbs is None:
        return 0.5 * (1.0 + nouns)
    if nouns is None:
        return 0.5 * (verbs + 1.0)
    if verbs.shape != nouns.shape:
        raise ValueError(f"verbs give {tuple(verbs.shape)} pairs but nouns give {tuple(nouns.shape)}")
    return 0.5 * (verbs + nouns)


def caption_relevance(verbs: torch.Tensor | None, nouns: torch.Tensor | None) -> torch.Tensor:
    """Caption x caption relevance ``[n, n]`` float64 (``get_relevances_single_caption``).

    Args:
        verbs: ``[n]`` scalar classes or ``[n, Cv]`` multi-hot, or None (nouns only).
        nouns: ``[n, Cn]`` multi-hot, or None (verbs only).
    """
    return relevance(verbs, nouns, verbs, nouns)


def video_caption_relevance(video_verbs: torch.Tensor | None, video_nouns: torch.Tensor | None,
                            caption_verbs: torch.Tensor | None,
                            caption_nouns: torch.Tensor | None) -> torch.Tensor:
    """Video x caption relevance ``[V, n]`` float64 (``get_relevances_multi_caption``).

    Args:
        video_verbs, video_nouns: pooled video sets ``[V, Cv]``, ``[V, Cn]``
            (``pool_video_classes``), or None.
        caption_verbs, caption_nouns: caption sets ``[n, Cv]``, ``[n, Cn]``, or None.
    """
    return relevance(video_verbs, video_nouns, caption_verbs, caption_nouns)


@dataclass
class ClassLists:
    """The class lists of ``n`` items in CSR form: item ``i`` holds
    ``values[offsets[i]:offsets[i + 1]]`` (int64, ids in ``[0, num_classes)``)."""

    values: torch.Tensor
    offsets: torch.Tensor
    num_classes: int

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[int]], num_classes: int | None = None) -> "ClassLists":
        """CSR class lists of Python lists; ``num_classes`` defaults to the largest id + 1."""
        values, offsets = csr_from_lists(lists)
        if num_classes is None:
            num_classes = int(values.max()) + 1 if values.numel() else 1
        return cls(values, offsets, num_classes)

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    def select(self, rows: torch.Tensor) -> "ClassLists":
        """The lists of the items ``rows`` [m], in that order (index gathering, no loop)."""
        rows = torch.as_tensor(rows, dtype=torch.int64)
        start = self.offsets[rows]
        lengths = self.offsets[rows + 1] - start
        offsets = torch.zeros(len(rows) + 1, dtype=torch.int64)
        offsets[1:] = lengths.cumsum(0)
        shift = torch.repeat_interleave(start - offsets[:-1], lengths)
        index = torch.arange(int(offsets[-1]), dtype=torch.int64) + shift
        return ClassLists(self.values[index], offsets, self.num_classes)

    def slice(self, lo: int, hi: int) -> "ClassLists":
        """The lists of the items ``lo:hi`` (a view, no gathering)."""
        offsets = self.offsets[lo:hi + 1]
        return ClassLists(self.values[int(offsets[0]):int(offsets[-1])], offsets - offsets[0], self.num_classes)

    def multi_hot(self) -> torch.Tensor:
        """bool ``[n, num_classes]``."""
        return multi_hot(self.values, self.offsets, self.num_classes)

    def counts(self) -> torch.Tensor:
        """int64 ``[n, num_classes]``, duplicates counted (``class_counts``)."""
        return class_counts(self.values, self.offsets, self.num_classes)


def pool_dataset(lists: ClassLists, caption_offsets: torch.Tensor, percent: float = 0.25) -> torch.Tensor:
    """Pooled classes of every video of a dataset by the 25 % rule (``pool_video_classes``),
    a block of videos at a time so no caption x class matrix of the whole dataset is built.

    Args:
        lists: the class lists of all ``n`` captions, grouped by video.
        caption_offsets: int64 ``[V + 1]``; video ``v`` owns captions
            ``caption_offsets[v]:caption_offsets[v + 1]``.

    Returns:
        bool ``[V, num_classes]``.
    """
    num_videos = caption_offsets.numel() - 1
    per_video = caption_offsets.diff()
    widest = max(int(per_video.max()) if num_videos else 1, 1)
    step = max(1, _CHUNK_ELEMENTS // (widest * max(lists.num_classes, 1)))
    pooled = torch.zeros(num_videos, lists.num_classes, dtype=torch.bool)
    for lo in range(0, num_videos, step):
        hi = min(lo + step, num_videos)
        counts = lists.slice(int(caption_offsets[lo]), int(caption_offsets[hi])).counts()
        owner = torch.repeat_interleave(torch.arange(hi - lo), per_video[lo:hi])
        pooled[lo:hi] = pool_video_classes(counts, owner, hi - lo, percent)
    return pooled


class VideoCaptionRelevance:
    """Relevance of a dataset's videos to its captions from per-caption classes.

    Every video's classes are pooled once from its captions by the 25 % rule; a call scores
    any videos against any captions, a block of captions at a time.

    Args:
        verbs, nouns: class lists of all captions (grouped by video), or None for a dataset
            without verb (or noun) classes; not both None.
        caption_offsets: int64 ``[V + 1]``, the captions of every video.
        percent: the pooling fraction.
    """

    def __init__(self, verbs: ClassLists | None, nouns: ClassLists | None, caption_offsets: torch.Tensor,
                 percent: float = 0.25):
        if verbs is None and nouns is None:
            raise ValueError("relevance needs verbs, nouns or both")
        self.verbs, self.nouns = verbs, nouns
        self.video_verbs = None if verbs is None else pool_dataset(verbs, caption_offsets, percent)
        self.video_nouns = None if nouns is None else pool_dataset(nouns, caption_offsets, percent)

    def __call__(self, video_rows: torch.Tensor, caption_rows: torch.Tensor) -> torch.Tensor:
        """float32 ``[V, M]`` relevance of the videos ``video_rows`` [V] (rows) to the
        captions ``caption_rows`` [M] (columns)."""
        video_rows = torch.as_tensor(video_rows, dtype=torch.int64)
        caption_rows = torch.as_tensor(caption_rows, dtype=torch.int64)
        video_verbs = None if self.video_verbs is None else self.video_verbs[video_rows]
        video_nouns = None if self.video_nouns is None else self.video_nouns[video_rows]
        widths = sum(x.num_classes for x in (self.verbs, self.nouns) if x is not None)
        step = max(1, _CHUNK_ELEMENTS // max(len(video_rows), widths, 1))
        out = torch.empty(len(video_rows), len(caption_rows), dtype=torch.float32)
        for lo in range(0, len(caption_rows), step):
            rows = caption_rows[lo:lo + step]
            caption_verbs = None if self.verbs is None else self.verbs.select(rows).multi_hot()
            caption_nouns = None if self.nouns is None else self.nouns.select(rows).multi_hot()
            out[:, lo:lo + step] = video_caption_relevance(video_verbs, video_nouns, caption_verbs, caption_nouns)
        return out
