"""The interface the trainer and the evaluator need from a retrieval model.

Any model registered in ``utils.registry.MODELS`` that provides these methods can be trained
and evaluated (chunked) by this project; ``model.ce.CENet`` is one.
"""
from __future__ import annotations

from typing import Protocol

import torch


class RetrievalModel(Protocol):
    """Shapes: B videos, K captions per video, T tokens, D_text word size, M experts.

    Models are ``torch.nn.Module``s, so ``train()`` / ``eval()`` switch their mode.
    """

    modalities: list[str]
    """The M expert names, in the column order of the MoE weights."""
    uses_moe_weights: bool
    """Whether ``similarity`` weighs the experts by the MoE weights (the evaluation then keeps
    them for the ranking pages and the run's plots)."""

    def eval(self) -> "RetrievalModel":
        """Evaluation mode (BatchNorm running statistics)."""

    def __call__(self, experts: dict[str, torch.Tensor], ind: dict[str, torch.Tensor],
                 text: torch.Tensor) -> dict:
        """Training forward: returns at least ``cross_view_conf_matrix`` [B, B] (text rows)."""

    def embed_videos(self, experts: dict[str, torch.Tensor], ind: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-expert video embeddings {m: [B, d_m]}; experts fixed [B, D] or tokens [B, T, d]."""

    def embed_text(self, text: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Text [B, K, T, D_text] -> per-expert text embeddings {m: [B, K, d_m]}, weights [B, K, M]."""

    def similarity(self, text_embds: dict[str, torch.Tensor], moe_weights: torch.Tensor,
                   vid_embds: dict[str, torch.Tensor], ind: dict[str, torch.Tensor], merge: str) -> torch.Tensor:
        """Caption-video scores: [Bt*K, Bv] for merge "indep" (rows video-major)."""
