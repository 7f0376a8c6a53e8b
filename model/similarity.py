"""Text-video similarity matrices of the CE family.

Notation: T text items (videos whose captions are queries), K captions per item, N videos,
M experts. Rows of every ``[T*K, N]`` matrix are video-major: row ``t*K + k`` is caption
``k`` of item ``t``.
"""
from __future__ import annotations

import torch

MERGE_MODES = ("indep", "avg")


def merge_captions(sims: torch.Tensor, captions_per_item: int, merge: str) -> torch.Tensor:
    """``sims: [T*K, N]`` -> ``[T*K, N]`` ("indep") or the caption mean ``[T, N]`` ("avg")."""
    if merge not in MERGE_MODES:
        raise ValueError(f"unknown caption merge mode {merge!r}; expected one of {MERGE_MODES}")
    if merge == "indep" or captions_per_item == 1:
        return sims
    return sims.reshape(-1, captions_per_item, sims.shape[1]).mean(dim=1)


def availability(ind: dict[str, torch.Tensor], modalities: list[str], dtype: torch.dtype) -> torch.Tensor:
    """Stack per-expert availability into ``[N, M]`` (0/1), validating it."""
    avail = torch.stack([ind[name].reshape(-1).to(dtype) for name in modalities], dim=1)
    if not bool(((avail == 0) | (avail == 1)).all()):
        raise ValueError("expert availability (ind) must contain only 0s and 1s")
    return avail


def cross_view_similarity(text_embds: dict[str, torch.Tensor], moe_weights: torch.Tensor,
                          vid_embds: dict[str, torch.Tensor], ind: dict[str, torch.Tensor],
                          modalities: list[str], keep_missing_modalities: bool = False) -> torch.Tensor:
    """MoE-weighted sum of per-expert inner products (cosines for unit-norm embeddings).

    Args:
        text_embds: expert -> ``[T, K, d_m]``.
        moe_weights: ``[T, K, M]``, columns in ``modalities`` order.
        vid_embds: expert -> ``[N, d_m]``.
        ind: expert -> ``[N]`` availability (0/1).
        keep_missing_modalities: weight every expert by 1 (MoE weights and availability
            ignored, no renormalisation), as the original CE code does.

    Returns:
        ``[T*K, N]``: ``sum_m w[t, n, m] <text_m[t], vid_m[n]>`` where ``w`` is the MoE
        weight restricted to the experts available for video ``n`` and renormalised to
        sum to 1 over them. A video with no available expert scores 0 against every
        caption (it carries no evidence; the original CE code produced NaN there).
    """
    num_items, num_caps, num_experts = moe_weights.shape
    rows = num_items * num_caps
    weights = moe_weights.reshape(rows, num_experts)
    texts = [text_embds[name].reshape(rows, -1) for name in modalities]
    vids = [vid_embds[name] for name in modalities]
    if keep_missing_modalities:
        return torch.cat(texts, dim=1) @ torch.cat(vids, dim=1).t()
    avail = availability(ind, modalities, weights.dtype).to(weights.device)
    # sum_m w[t, m] a[n, m] <text_m[t], vid_m[n]> as one product of the weighted concatenations
    text = torch.cat([text * weights[:, idx:idx + 1] for idx, text in enumerate(texts)], dim=1)
    vid = torch.cat([vid * avail[:, idx:idx + 1] for idx, vid in enumerate(vids)], dim=1)
    sims = text @ vid.t()
    total = weights @ avail.t()
    return torch.where(total > 0, sims / total.clamp(min=torch.finfo(total.dtype).tiny), sims.new_zeros(()))


def concat_similarity(text: torch.Tensor, vid: torch.Tensor, zero_pad_bug: bool = False) -> torch.Tensor:
    """Plain inner product of concatenated embeddings, zero-padding the narrower side.

    Args:
        text: ``[T, K, Dt]``.
        vid: ``[N, Dv]``.
        zero_pad_bug: reproduce the original CE code, which (when text is wider) pads the
            video side with zeros but never copies the video values in, so every
            similarity is 0 (the README's Concat row was produced that way).

    Returns:
        ``[T*K, N]``.
    """
    text = text.reshape(-1, text.shape[-1])
    width = max(text.shape[1], vid.shape[1])
    if text.shape[1] < width:
        text = torch.nn.functional.pad(text, (0, width - text.shape[1]))
    elif vid.shape[1] < width:
        vid = vid.new_zeros(vid.shape[0], width) if zero_pad_bug else torch.nn.functional.pad(
            vid, (0, width - vid.shape[1]))
    return text @ vid.t()
