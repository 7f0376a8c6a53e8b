"""Pieces of collaborative gating (CG): reasoning MLPs and the per-expert gating masks.

Every embedding here is ``[B, D]`` (D = the shared CE dim) and every availability vector
is ``[B]`` with 1 for a present expert and 0 for a missing one.
"""
from __future__ import annotations

import itertools
from typing import Callable

import torch
import torch.nn.functional as F
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


def combinations(mode: str, current: str, pairs: list[tuple[str, str]], include_self: bool) -> list[tuple[str, ...]]:
    """The experts whose embeddings join ``current``'s in each gate input of ``mode``.

    "pairwise": one other expert per pair ``(current, other)``; "triplet": two per pair
    ``(a, b)``, skipping pairs that contain ``current`` unless ``include_self``.
    """
    if mode == "pairwise":
        return [(other,) for first, other in pairs if first == current]
    if mode == "triplet":
        return [(first, second) for first, second in pairs if include_self or current not in (first, second)]
    raise ValueError(f"no gate combinations for use_ce mode {mode!r}")


def _combination_weights(current: str, combos: list[tuple[str, ...]],
                         avail: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Availability of every combination ``[B]`` and the per-sample count of available ones ``[B]``."""
    avails = []
    for combo in combos:
        present = avail[current]
        for other in combo:
            present = present * avail[other]
        avails.append(present)
    return avails, sum(avails)


def combination_mask(current: str, combos: list[tuple[str, ...]], embds: dict[str, torch.Tensor],
                     avail: dict[str, torch.Tensor], gate: Gate) -> torch.Tensor:
    """Mask for ``current``: the mean of ``gate(cat(E[current], E[c_1], ...))`` over the available
    combinations ``c`` (a sample with none gets 0): ``[B, D]``.

    This is the definition, one gate input per combination, as the original CE code computes it.
    """
    avails, count = _combination_weights(current, combos, avail)
    total = sum(gate(torch.cat([embds[current], *(embds[m] for m in combo)], dim=1)) * present.unsqueeze(1)
                for combo, present in zip(combos, avails))
    return total / (count + MASK_EPS).unsqueeze(1)


class FactorisedGate:
    """:func:`combination_mask` with the gate ``rest(first(cat(x_0, ..., x_{S-1})))``, computed
    without building one input per combination.

    ``first`` is linear in each of its S input slots, ``W cat(x_0, ...) + b = sum_s W_s x_s + b``,
    so the product of slot ``s``'s weight block with an expert's embedding is computed once and
    reused by every combination (again only after that expert's embedding changes: call
    :meth:`forget`). When ``rest`` ends with a Linear ``(V, c)``, the weighted mean over the
    combinations is taken before it: ``sum_c w_c (V h_c + c) = V sum_c w_c h_c + c sum_c w_c``.
    The layers in between (BatchNorm, activation, Linear) still run once per combination, in the
    same order, so BatchNorm sees the same batches and updates its running statistics the same way.
    Both rewrites are exact in real arithmetic; in float32 the masks agree with the definition to
    rounding (about 1e-6).
    """

    def __init__(self, first: nn.Linear, rest: nn.Sequential, num_slots: int):
        self.slot_weights = first.weight.chunk(num_slots, dim=1)
        self.bias = first.bias
        layers = list(rest)
        self.last = layers.pop() if layers and isinstance(layers[-1], nn.Linear) else None
        self.middle = layers
        self._products: dict[tuple[int, str], torch.Tensor] = {}

    def _product(self, slot: int, name: str, embd: torch.Tensor) -> torch.Tensor:
        """``W_slot @ E[name]`` for every sample: ``[B, D]``, cached."""
        key = (slot, name)
        if key not in self._products:
            self._products[key] = F.linear(embd, self.slot_weights[slot])
        return self._products[key]

    def forget(self, name: str) -> None:
        """Drop the cached products of ``name``'s embedding (it has just been gated)."""
        self._products = {key: value for key, value in self._products.items() if key[1] != name}

    def mask(self, current: str, combos: list[tuple[str, ...]], embds: dict[str, torch.Tensor],
             avail: dict[str, torch.Tensor]) -> torch.Tensor:
        """The same ``[B, D]`` mask as :func:`combination_mask` with this gate."""
        avails, count = _combination_weights(current, combos, avail)
        scale = 1 / (count + MASK_EPS)
        own = self._product(0, current, embds[current]) + self.bias
        total = None
        for combo, present in zip(combos, avails):
            hidden = own
            for slot, other in enumerate(combo, start=1):
                hidden = hidden + self._product(slot, other, embds[other])
            for layer in self.middle:
                hidden = layer(hidden)
            term = hidden * (present * scale).unsqueeze(1)
            total = term if total is None else total + term
        if self.last is None:
            return total
        return F.linear(total, self.last.weight) + self.last.bias * (count * scale).unsqueeze(1)


def star_centre(embds: dict[str, torch.Tensor], avail: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the available experts' embeddings per sample: ``[B, D]``.

    As in the original CE code there is no epsilon: a sample with no available expert
    gives NaN.
    """
    total = sum(embd * avail[name].unsqueeze(1) for name, embd in embds.items())
    count = sum(avail[name].unsqueeze(1) for name in embds)
    return total / count
