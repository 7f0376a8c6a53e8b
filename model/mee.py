"""Mixture of Embedding Experts (MEE, Miech et al., "Learning a Text-Video Embedding from
Incomplete and Heterogeneous Data").

Each video modality and the caption pass through their own Gated Embedding Units; a
text-conditioned softmax weighs the per-modality cosines, restricted to (and renormalised
over) the modalities available for each video.

Not registered in ``utils.registry.MODELS``: its forward takes flat caption vectors and
returns a bare score tensor, unlike the CENet interface the trainer drives.

Example:

>>> import torch
>>> from model.mee import MEE
>>> _ = torch.manual_seed(0)
>>> mee = MEE({"face": (128, 64), "audio": (256, 64)}, text_dim=300).eval()
>>> videos = {"face": torch.randn(4, 128), "audio": torch.randn(4, 256)}
>>> ind = {"face": torch.tensor([1, 0, 1, 1]), "audio": torch.ones(4)}
>>> with torch.no_grad():
...     scores = mee(torch.randn(5, 300), videos, ind)
...     pairs = mee(torch.randn(4, 300), videos, ind, conf=False)
>>> scores.shape, pairs.shape
(torch.Size([5, 4]), torch.Size([4]))
"""
from __future__ import annotations

import torch
from torch import nn

from model.gating import GatedEmbeddingUnit
from model.similarity import availability, cross_view_similarity


class MEE(nn.Module):
    """Text-video scores from per-modality gated embeddings mixed by text-conditioned weights.

    Args:
        video_modality_dim: modality -> ``(input_dim, embed_dim)``; its order is the order
            of the mixture weights.
        text_dim: width of the (already pooled) caption vector.

    Submodules: ``video_GU[m]`` (input_dim -> embed_dim), ``text_GU[m]`` (text_dim ->
    embed_dim), one per modality in order, and ``moe_fc`` (Linear(text_dim, M)).
    """

    def __init__(self, video_modality_dim: dict[str, tuple[int, int]], text_dim: int):
        super().__init__()
        if not video_modality_dim:
            raise ValueError("MEE needs at least one video modality")
        self.modalities = list(video_modality_dim)
        dims = [(int(in_dim), int(out_dim)) for in_dim, out_dim in video_modality_dim.values()]
        self.video_GU = nn.ModuleList([GatedEmbeddingUnit(in_dim, out_dim) for in_dim, out_dim in dims])
        self.text_GU = nn.ModuleList([GatedEmbeddingUnit(text_dim, out_dim) for _, out_dim in dims])
        self.moe_fc = nn.Linear(text_dim, len(self.modalities))

    def forward(self, captions: torch.Tensor, videos: dict[str, torch.Tensor],
                ind: dict[str, torch.Tensor], conf: bool = True) -> torch.Tensor:
        """Score captions against videos.

        Args:
            captions: ``[Nt, text_dim]``.
            videos: modality -> ``[Nv, input_dim]``. Rows of missing modalities may hold
                anything (zeros, NaN, ...): they never change the result. Never modified.
            ind: modality -> ``[Nv]`` availability, 1 present / 0 missing (float, int or
                bool); every video needs at least one available modality.
            conf: True for the full ``[Nt, Nv]`` score matrix; False for the ``[N]`` scores
                of aligned pairs (caption i with video i, requires Nt == Nv).

        Returns:
            ``[Nt, Nv]`` or ``[N]``: ``sum_m w_m <text_m, video_m>`` with ``w`` the softmax
            mixture weights of the caption restricted to the video's available modalities
            and renormalised to sum to 1 over them.
        """
        self._check_inputs(videos, ind)
        video_embds = self.embed_videos(videos, ind)
        text_embds = self.embed_text(captions)
        weights = self.moe_weights(captions)
        if conf:
            return cross_view_similarity({name: embd.unsqueeze(1) for name, embd in text_embds.items()},
                                         weights.unsqueeze(1), video_embds, ind, self.modalities)
        return self._pair_scores(text_embds, weights, video_embds, ind)

    def embed_videos(self, videos: dict[str, torch.Tensor],
                     ind: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """modality -> ``[Nv, embed_dim]`` unit-norm embeddings; missing rows are zeroed first."""
        embds = {}
        for name, unit in zip(self.modalities, self.video_GU):
            feats = videos[name]
            present = ind[name].reshape(-1, 1).to(feats.device) != 0
            if present.shape[0] != feats.shape[0]:
                raise ValueError(f"MEE modality '{name}': ind has {present.shape[0]} entries for "
                                 f"{feats.shape[0]} videos")
            embds[name] = unit(torch.where(present, feats, feats.new_zeros(())))
        return embds

    def embed_text(self, captions: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[Nt, text_dim]`` -> modality -> ``[Nt, embed_dim]`` unit-norm embeddings."""
        return {name: unit(captions) for name, unit in zip(self.modalities, self.text_GU)}

    def moe_weights(self, captions: torch.Tensor) -> torch.Tensor:
        """``[Nt, text_dim]`` -> softmax mixture weights ``[Nt, M]`` (before masking)."""
        return torch.softmax(self.moe_fc(captions), dim=1)

    def _pair_scores(self, text_embds: dict[str, torch.Tensor], weights: torch.Tensor,
                     video_embds: dict[str, torch.Tensor], ind: dict[str, torch.Tensor]) -> torch.Tensor:
        """Aligned pairs: text ``[N, d_m]``, weights ``[N, M]``, videos ``[N, d_m]`` -> ``[N]``."""
        if weights.shape[0] != video_embds[self.modalities[0]].shape[0]:
            raise ValueError(f"conf=False scores aligned pairs but got {weights.shape[0]} captions "
                             f"for {video_embds[self.modalities[0]].shape[0]} videos")
        masked = weights * availability(ind, self.modalities, weights.dtype).to(weights.device)
        cosines = torch.stack([(text_embds[name] * video_embds[name]).sum(dim=1) for name in self.modalities],
                              dim=1)
        return (masked * cosines).sum(dim=1) / masked.sum(dim=1)

    def _check_inputs(self, videos: dict[str, torch.Tensor], ind: dict[str, torch.Tensor]) -> None:
        for label, given in (("videos", videos), ("ind", ind)):
            missing = [name for name in self.modalities if name not in given]
            unknown = sorted(set(given) - set(self.modalities))
            if missing or unknown:
                raise ValueError(f"MEE {label}: missing modalities {missing}, unknown modalities {unknown}")
