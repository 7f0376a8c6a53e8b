"""CENet: Collaborative Experts (and its MoEE / ablation variants) for text-video retrieval.

Built from a :class:`model.ce_config.CEConfig`; the registry entry "CENet" validates
``arch.args`` against that dataclass.

Shapes: B videos, K captions per video, T tokens per caption, M experts. Fixed-size
experts are ``[B, D]``; token-sequence ("vlad") experts are ``[B, N, d]`` and are pooled
by NetVLAD here. Text is ``[B, K, T, D_text]``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from model.ce_config import CEConfig
from model.ce_module import CEModule
from model.net_vlad import NetVLAD
from utils.errors import StoreError
from utils.registry import MODELS

# The original CE code creates the expert NetVLADs in this order (seeded initialisation
# and state_dict order depend on it); other token-sequence experts follow alphabetically.
POOLING_ORDER = ("ocr", "audio", "speech")


@MODELS.register()
class CENet(nn.Module):
    """Text-video retrieval from precomputed expert features, shaped by a :class:`CEConfig`."""

    config_class = CEConfig

    def __init__(self, config: CEConfig):
        super().__init__()
        self.config = config
        self.modalities = config.modalities
        self.random_feats = config.random_feats
        self.disable_nan_checks = config.disable_nan_checks
        self.test_caption_mode = config.test_caption_mode
        self.pooling = nn.ModuleDict()
        for name in _pooling_order(config.pooled_experts):
            self.pooling[name] = NetVLAD(config.vlad_clusters[name], config.feat_dims[name])

        text_clusters = config.vlad_clusters.get("text", 0)
        if text_clusters:
            self.text_pooling: nn.Module = NetVLAD(text_clusters, config.text_dim,
                                                   config.ghost_clusters.get("text", 0))
            pooled_text_dim = text_clusters * config.text_dim
        else:
            self.text_pooling = nn.Sequential()
            pooled_text_dim = config.text_dim
        self.ce = CEModule(config, config.expert_dims(), pooled_text_dim)

    def forward(self, experts: dict[str, torch.Tensor], ind: dict[str, torch.Tensor],
                text: torch.Tensor, text_token_mask: torch.Tensor | None = None) -> dict:
        """Embed a batch and score every caption against every video.

        Args:
            experts: expert -> ``[B, D]`` (fixed) or ``[B, N, d]`` (vlad). Rows of missing
                experts may hold anything (zeros, NaN, ...); they are never modified.
            ind: expert -> ``[B]`` availability (1 present, 0 missing; float or bool).
            text: ``[B, K, T, D_text]``.
            text_token_mask: ``[B, K]`` token counts; accepted and ignored (as in the
                original, NetVLAD pooling sees the zero padding).

        Returns:
            ``modalities`` (list of M names), ``cross_view_conf_matrix`` (``[B, B]`` when
            training or with test_caption_mode "avg", ``[B*K, B]`` with "indep"),
            ``text_embds`` (expert -> ``[B, K, d]``), ``vid_embds`` (expert -> ``[B, d]``),
            ``moe_weights`` (``[B, K, M]``).
        """
        vid_embds = self.embed_videos(experts, ind)
        text_embds, moe_weights = self.embed_text(text)
        merge = "avg" if self.training else self.test_caption_mode
        sims = self.similarity(text_embds, moe_weights, vid_embds, ind, merge)
        return {"modalities": list(self.modalities), "cross_view_conf_matrix": sims,
                "text_embds": text_embds, "vid_embds": vid_embds, "moe_weights": moe_weights}

    @property
    def uses_moe_weights(self) -> bool:
        """Whether scores weigh the experts by the MoE weights (not for Concat variants, nor
        with ``keep_missing_modalities``, which weighs every expert by 1)."""
        return not (self.ce.is_concat or self.ce.keep_missing_modalities)

    def embed_videos(self, experts: dict[str, torch.Tensor],
                     ind: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Video embeddings (collaborative gating included): expert -> ``[B, d]``.

        Inputs as in ``forward``. Missing rows (ind 0) are replaced by zeros out of place;
        a NaN in a present row raises ValueError unless ``disable_nan_checks``.
        """
        aggregated: OrderedDict[str, torch.Tensor] = OrderedDict()
        nan_rows = []
        for name in self.modalities:
            if name not in experts or name not in ind:
                raise ValueError(f"expert '{name}' is missing from the batch (features or ind)")
            feats = self._clean_features(name, experts[name], ind[name])
            if not self.disable_nan_checks:
                nan_rows.append(torch.isnan(feats).reshape(feats.shape[0], -1).any(dim=1))
            if name in self.pooling:
                aggregated[name] = self.pooling[name](feats)
            else:
                aggregated[name] = feats.reshape(feats.shape[0], -1)
        if nan_rows:
            _raise_on_nan(self.modalities, torch.stack(nan_rows))
        return self.ce.embed_videos(aggregated, ind)

    def _clean_features(self, name: str, feats: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
        """Randomise (if requested) and zero the rows of missing videos, out of place (no copy
        when every video has the expert)."""
        present = ind.reshape(-1).to(feats.device) != 0
        if present.shape[0] != feats.shape[0]:
            raise ValueError(f"expert '{name}': ind has {present.shape[0]} entries for "
                             f"{feats.shape[0]} videos")
        if name in self.random_feats:
            noise = torch.randn_like(feats)
            feats = noise if self.disable_nan_checks else torch.where(torch.isnan(feats), feats, noise)
        if bool(present.all()):
            return feats
        present = present.reshape(-1, *([1] * (feats.dim() - 1)))
        return torch.where(present, feats, feats.new_zeros(()))

    def embed_text(self, text: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Text ``[B, K, T, D_text]`` -> (expert -> ``[B, K, d]``, MoE weights ``[B, K, M]``)."""
        batch, num_caps, num_tokens, dim = text.shape
        flat = text.reshape(batch * num_caps, num_tokens, dim)
        if isinstance(self.text_pooling, NetVLAD):
            pooled = self.text_pooling(flat)
        elif num_tokens != 1:
            raise ValueError(f"without text VLAD (vlad_clusters['text'] == 0) captions must have "
                             f"one token, got {num_tokens}")
        else:
            pooled = flat
        return self.ce.embed_text(pooled.reshape(batch, num_caps, -1))

    def similarity(self, text_embds: dict[str, torch.Tensor], moe_weights: torch.Tensor,
                   vid_embds: dict[str, torch.Tensor], ind: dict[str, torch.Tensor],
                   merge: str) -> torch.Tensor:
        """Scores of text ``[T, K, d]`` against videos ``[N, d]`` with MoE weights ``[T, K, M]``.

        Each score is the MoE-weighted sum of per-expert cosines over the experts
        available for the video (weights renormalised over them). Returns ``[T*K, N]``
        (rows video-major) for ``merge="indep"``, the caption mean ``[T, N]`` for "avg".
        """
        return self.ce.similarity(text_embds, moe_weights, vid_embds, ind, merge)


def _pooling_order(pooled: list[str]) -> list[str]:
    """Pooled experts in NetVLAD creation order."""
    first = [name for name in POOLING_ORDER if name in pooled]
    return first + [name for name in pooled if name not in first]


def _raise_on_nan(modalities: list[str], nan_rows: torch.Tensor) -> None:
    """``nan_rows: [M, B]`` flags of present rows holding NaN -> ValueError for the first."""
    if not bool(nan_rows.any()):
        return
    expert_idx, row = (int(i) for i in nan_rows.nonzero()[0])
    raise StoreError(f"expert '{modalities[expert_idx]}' has NaN features for a video marked "
                     f"present (batch row {row})")
