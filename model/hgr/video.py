"""HGR's video encoder: three projections of every frame; the first attention-pooled.

Parameter names follow the original (``level_embeds.<k>``, ``ft_attn``), so a released
checkpoint's ``video_encoder`` entries load unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

MASKED = -1e18  # the original's fill for masked attention logits


def sequence_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Bool [B, max_len]: True at the first ``lengths[b]`` positions of each row."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class MultilevelVideoEncoder(nn.Module):
    """Frames [B, T, D] (with ``lengths`` [B]) -> a global vector [B, E] (level 0, attention
    pooled over the valid frames) and per-frame embeddings [B, T, E] of levels 1 and 2."""

    def __init__(self, dim_input: int, dim_embed: int = 1024, dropout: float = 0.2, num_levels: int = 3,
                 share_enc: bool = False):
        super().__init__()
        self.num_levels = num_levels
        self.share_enc = share_enc
        self.dropout = nn.Dropout(dropout)
        self.level_embeds = nn.ModuleList([nn.Linear(dim_input, dim_embed, bias=True)
                                           for _ in range(1 if share_enc else num_levels)])
        self.ft_attn = nn.Linear(dim_embed, 1, bias=True)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """frames [B, T, D], lengths [B] -> (global [B, E], verb level [B, T, E], noun level [B, T, E])."""
        embeds = [self.dropout(self.level_embeds[0 if self.share_enc else k](frames))
                  for k in range(self.num_levels)]
        scores = self.ft_attn(embeds[0]).squeeze(2)
        scores = scores.masked_fill(~sequence_mask(lengths, scores.size(1)), MASKED)
        weights = torch.softmax(scores, dim=1)
        pooled = torch.sum(embeds[0] * weights.unsqueeze(2), 1)
        return pooled, embeds[1], embeds[2]
