"""HGR's graph convolution over a sentence's role graph (root, verb and argument nodes).

Parameter names follow the original (``layers.<k>.ctx_layer``, ``layernorm``,
``edge_attn_query``, ``edge_attn_key``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from model.hgr.video import MASKED


class GCNLayer(nn.Module):
    """node_fts [B, N, E], rel_edges [B, N, N] (row-normalised adjacency, [target, source])
    -> LayerNorm(nodes + dropout(ctx_layer(rel_edges @ nodes))) [B, N, E]."""

    def __init__(self, embed_size: int, dropout: float = 0.0):
        super().__init__()
        self.ctx_layer = nn.Linear(embed_size, embed_size, bias=False)
        self.layernorm = nn.LayerNorm(embed_size)
        self.dropout = nn.Dropout(dropout)

    def mix(self, node_fts: torch.Tensor, rel_edges: torch.Tensor) -> torch.Tensor:
        """The neighbour weights [B, N, N] of every node."""
        return rel_edges

    def forward(self, node_fts: torch.Tensor, rel_edges: torch.Tensor) -> torch.Tensor:
        ctx = self.ctx_layer(torch.bmm(self.mix(node_fts, rel_edges), node_fts))
        return self.layernorm(node_fts + self.dropout(ctx))


class AttnGCNLayer(GCNLayer):
    """A GCN layer whose neighbour weights are a scaled dot-product attention (query and key
    projections to ``d_ff``) softmaxed over each node's edges; a node without edges gets none."""

    def __init__(self, embed_size: int, d_ff: int, dropout: float = 0.0):
        super().__init__(embed_size, dropout=dropout)
        self.edge_attn_query = nn.Linear(embed_size, d_ff)
        self.edge_attn_key = nn.Linear(embed_size, d_ff)
        self.attn_denominator = math.sqrt(d_ff)

    def mix(self, node_fts: torch.Tensor, rel_edges: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("bod,bid->boi", self.edge_attn_query(node_fts),
                              self.edge_attn_key(node_fts)) / self.attn_denominator
        no_edge = rel_edges == 0
        scores = torch.softmax(scores.masked_fill(no_edge, MASKED), dim=2)
        return scores.masked_fill(no_edge, 0)


class GCNEncoder(nn.Module):
    """``num_layers`` GCN layers of width ``dim`` (attention layers use ``dim // 2`` for the
    query and key): node_fts [B, N, E], rel_edges [B, N, N] -> [B, N, E]."""

    def __init__(self, dim: int, num_layers: int, attention: bool = True, dropout: float = 0.5):
        super().__init__()
        self.layers = nn.ModuleList([AttnGCNLayer(dim, dim // 2, dropout) if attention else GCNLayer(dim, dropout)
                                     for _ in range(num_layers)])

    def forward(self, node_fts: torch.Tensor, rel_edges: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            node_fts = layer(node_fts, rel_edges)
        return node_fts
