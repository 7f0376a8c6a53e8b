"""Gating building blocks of the CE / MoEE models.

All units work on flat feature rows ``[B, D]``. Attribute names follow the original CE
code so that its checkpoints load unchanged (``fc``, ``cg``, ``batch_norm``,
``batch_norm2``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mish(nn.Module):
    """Mish activation, ``x * tanh(softplus(x))``; any shape in, same shape out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class ContextGating(nn.Module):
    """Self-gating: ``x * sigmoid(BN(fc(x)))``.

    The batch norm is always allocated (checkpoint layout) but only applied when
    ``add_batch_norm`` is true. ``x: [B, D] -> [B, D]``.
    """

    def __init__(self, dim: int, add_batch_norm: bool = True):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.add_batch_norm = add_batch_norm
        self.batch_norm = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x)
        if self.add_batch_norm:
            gate = self.batch_norm(gate)
        return x * torch.sigmoid(gate)


class GatedEmbeddingUnit(nn.Module):
    """Linear projection, context gating, L2 normalisation: ``[B, in_dim] -> [B, out_dim]``."""

    def __init__(self, in_dim: int, out_dim: int, use_bn: bool = True):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.cg = ContextGating(out_dim, add_batch_norm=use_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.cg(self.fc(x)), dim=-1)


class MimicCEGatedEmbeddingUnit(nn.Module):
    """Gate-only unit of the "CE - CG" ablation: ``[B, dim] -> [B, dim]``, L2-normalised."""

    def __init__(self, dim: int, use_bn: bool = True):
        super().__init__()
        self.cg = ContextGating(dim, add_batch_norm=use_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.cg(x), dim=-1)


class ReduceDim(nn.Module):
    """Linear projection then L2 normalisation: ``[B, in_dim] -> [B, out_dim]``.

    A zero row maps to the normalised bias vector, not to zero.
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(x), dim=-1)


class ContextGatingReasoning(nn.Module):
    """Context gating steered by an external mask (collaborative gating).

    ``x * sigmoid(BN(mask) + BN2(fc(x)))``; without batch norm the two terms are summed
    directly. ``x, mask: [B, D] -> [B, D]``.
    """

    def __init__(self, dim: int, add_batch_norm: bool = True):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.add_batch_norm = add_batch_norm
        self.batch_norm = nn.BatchNorm1d(dim)
        self.batch_norm2 = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        own = self.fc(x)
        if self.add_batch_norm:
            mask = self.batch_norm(mask)
            own = self.batch_norm2(own)
        return x * torch.sigmoid(mask + own)


class GatedEmbeddingUnitReasoning(nn.Module):
    """ContextGatingReasoning then L2 normalisation: ``x, mask: [B, D] -> [B, D]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.cg = ContextGatingReasoning(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.cg(x, mask), dim=-1)
