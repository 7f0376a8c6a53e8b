"""Pieces of collaborative gating (CG): reasoning MLPs and the per-expert gating masks.

Every embedding here is ``[B, D]`` (D = the shared CE dim) and every availability vector
is ``[B]`` with 1 for a present expert and 0 for a missing one.
"""
from __future__ import annotations

import itertools
from typing import Callable

import torch
from torch import nn

from model.gating import Mish

CE_MODES = ("pairwise", "triplet", "pairwise-star", "pairwise-star-specific", "pairwise-star-tensor")
STAR_MODES = ("pairwise-star", "pairwise-star-specific", "pairwise-star-tensor")
STAR_TENSOR_DIM = 64
MASK_EPS = 1e-11

Gate = Callable[[torch.Tensor], torch.Tensor]


def reasoning_mlp(dim: int, num_layers: int, use_bn: bool, use_mish: bool) -> nn.Sequential:
    """``num_layers`` blocks of [BatchNorm1d (if use_bn), Mish or ReLU, Linear(dim, dim)].

    Zero layers give an empty Sequential, i.e. the identity.
    """
    layers: list[nn.Module] = []
    for _ in range(num_layers):
        if use_bn:
            layers.append(nn.BatchNorm1d(dim))
        layers.append(Mish() if use_mish else nn.ReLU())
        layers.append(nn.Linear(dim, dim))
    return nn.Sequential(*layers)


def expert_pairs(modalities: list[str], include_self: bool) -> list[tuple[str, str]]:
    """Ordered expert pairs, with (m, m) pairs only when ``include_self``."""
    if include_self:
        return list(itertools.product(modalities, repeat=2))
    return list(itertools.permutations(modalities, 2))


def _available_mean(gates: list[torch.Tensor], avails: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample mean of the gates over the available combinations: ``[B, D]``."""
    total = sum(gate * avail.unsqueeze(1) for gate, avail in zip(gates, avails))
    count = sum(avails)
    return total / (count + MASK_EPS).unsqueeze(1)


def pairwise_mask(current: str, embds: dict[str, torch.Tensor], avail: dict[str, torch.Tensor],
                  pairs: list[tuple[str, str]], gate: Gate) -> torch.Tensor:
    """Mask for ``current`` from ``gate(cat(E[current], E[other]))`` over its pairs: ``[B, D]``."""
    gates, avails = [], []
    for first, other in pairs:
        if first != current:
            continue
        gates.append(gate(torch.cat((embds[first], embds[other]), dim=1)))
        avails.append(avail[first] * avail[other])
    return _available_mean(gates, avails)


def triplet_mask(current: str, embds: dict[str, torch.Tensor], avail: dict[str, torch.Tensor],
                 pairs: list[tuple[str, str]], include_self: bool, gate: Gate) -> torch.Tensor:
    """Mask for ``current`` from ``gate(cat(E[current], E[a], E[b]))`` over pairs (a, b): ``[B, D]``.

    Pairs containing ``current`` are skipped unless ``include_self``.
    """
    gates, avails = [], []
    for first, second in pairs:
        if current in (first, second) and not include_self:
            continue
        fused = torch.cat((embds[current], embds[first], embds[second]), dim=1)
        gates.append(gate(fused))
        avails.append(avail[current] * avail[first] * avail[second])
    return _available_mean(gates, avails)


def star_centre(embds: dict[str, torch.Tensor], avail: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the available experts' embeddings per sample: ``[B, D]``.

    As in the original CE code there is no epsilon: a sample with no available expert
    gives NaN.
    """
    total = sum(embd * avail[name].unsqueeze(1) for name, embd in embds.items())
    count = sum(avail[name].unsqueeze(1) for name in embds)
    return total / count
