"""NetVLAD pooling of a variable number of feature tokens into one fixed-size vector."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class NetVLAD(nn.Module):
    """Soft-assignment VLAD pooling with optional ghost clusters.

    Args:
        cluster_size: number of real clusters K.
        feature_size: token dimension D.
        ghost_clusters: extra clusters G that absorb assignment mass but are dropped from
            the output.
        add_batch_norm: batch-normalise the assignment logits (over all B*N tokens).

    Parameters (names kept for checkpoint compatibility): ``clusters`` [D, K+G]
    assignment weights, ``clusters2`` [1, D, K] cluster centres, ``batch_norm``.
    """

    def __init__(self, cluster_size: int, feature_size: int, ghost_clusters: int = 0,
                 add_batch_norm: bool = True):
        super().__init__()
        self.cluster_size = cluster_size
        self.feature_size = feature_size
        self.ghost_clusters = ghost_clusters
        self.add_batch_norm = add_batch_norm
        self.out_dim = cluster_size * feature_size
        scale = 1 / math.sqrt(feature_size)
        total_clusters = cluster_size + ghost_clusters
        self.clusters = nn.Parameter(scale * torch.randn(feature_size, total_clusters))
        self.batch_norm = nn.BatchNorm1d(total_clusters) if add_batch_norm else None
        self.clusters2 = nn.Parameter(scale * torch.randn(1, feature_size, cluster_size))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pool tokens ``x: [B, N, D]`` into ``[B, K*D]`` (flattened D-major, unit L2 norm).

        ``mask`` is accepted for interface compatibility and ignored, as in the original
        CE code: padding tokens take part in the assignment and in the batch statistics.
        """
        if x.dim() != 3 or x.shape[-1] != self.feature_size:
            raise ValueError(f"NetVLAD expects [B, N, {self.feature_size}] input, got {list(x.shape)}")
        batch, num_tokens, dim = x.shape
        logits = x.reshape(batch * num_tokens, dim) @ self.clusters
        if self.batch_norm is not None:
            logits = self.batch_norm(logits)
        assign = F.softmax(logits, dim=1)[:, :self.cluster_size]
        assign = assign.reshape(batch, num_tokens, self.cluster_size)
        centre_term = assign.sum(dim=1, keepdim=True) * self.clusters2
        vlad = torch.matmul(assign.transpose(1, 2), x).transpose(1, 2) - centre_term
        vlad = F.normalize(vlad, dim=1)
        vlad = vlad.reshape(batch, self.out_dim)
        return F.normalize(vlad, dim=1)
