"""The CE head: gated text/video embeddings, collaborative gating and MoE weights.

Parameter names (``moe_fc``, ``video_dim_reduce``, ``g_reason_1``, ``g_reason_shared``,
``h_reason``, ``video_GU``, ``text_GU`` ...) and their allocation order follow the original
CE code, so its checkpoints load and seeded construction gives the same initial weights.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from model.ce_config import CEConfig
from model.collab_gating import (
    STAR_MODES,
    STAR_TENSOR_DIM,
    FactorisedGate,
    combination_mask,
    combinations,
    expert_pairs,
    reasoning_mlp,
    star_centre,
)
from model.gating import GatedEmbeddingUnit, GatedEmbeddingUnitReasoning, MimicCEGatedEmbeddingUnit, Mish, ReduceDim
from model.similarity import concat_similarity, cross_view_similarity, merge_captions

logger = logging.getLogger(__name__)


class CEModule(nn.Module):
    """Embeds pooled text and aggregated experts into per-expert spaces and scores them.

    Variants are chosen by the config's flags (at most one of ``use_ce``, ``mimic_ce_dims``,
    ``concat_mix_experts``, ``concat_experts``; none of them gives MoEE). ``expert_dims`` is
    ``config.expert_dims()`` and ``text_dim`` the width of the pooled text vector.
    """

    def __init__(self, config: CEConfig, expert_dims: dict[str, tuple[int, int]], text_dim: int):
        super().__init__()
        self.modalities = list(expert_dims)
        self.use_ce = config.use_ce
        self.include_self = config.include_self
        self.freeze_weights = config.freeze_weights
        self.concat_experts = config.concat_experts
        self.concat_mix_experts = config.concat_mix_experts
        self.concat_zero_pad_bug = config.concat_zero_pad_bug
        self.keep_missing_modalities = config.keep_missing_modalities
        self.randomise_text = "text" in config.random_feats
        self.verbose = config.verbose
        # pairwise / triplet masks through FactorisedGate; False computes them by their definition
        self.factorised_gating = True
        same_dim, use_ce, mimic_ce_dims = config.ce_shared_dim, config.use_ce, config.mimic_ce_dims
        concat_experts, concat_mix_experts = config.concat_experts, config.concat_mix_experts
        in_dims = [int(expert_dims[name][0]) for name in self.modalities]
        agg_dims = [int(expert_dims[name][1]) for name in self.modalities]

        self.moe_fc = nn.Linear(text_dim, len(self.modalities))
        if use_ce or mimic_ce_dims:
            self.video_dim_reduce = nn.ModuleList([ReduceDim(dim, same_dim) for dim in in_dims])
        text_out_dims = [same_dim] * len(self.modalities)
        if use_ce:
            self._build_reasoning(same_dim, config.num_g_layers, config.num_h_layers, config.use_bn_reason,
                                  config.use_mish)
            video_units = [GatedEmbeddingUnitReasoning(same_dim) for _ in self.modalities]
        elif mimic_ce_dims:
            video_units = [MimicCEGatedEmbeddingUnit(same_dim) for _ in self.modalities]
        elif concat_mix_experts:
            video_units = [GatedEmbeddingUnit(sum(in_dims), sum(agg_dims))]
        elif concat_experts:
            video_units = []
        else:
            video_units = [GatedEmbeddingUnit(i, o) for i, o in zip(in_dims, agg_dims)]
            text_out_dims = agg_dims
        self.video_GU = nn.ModuleList(video_units)

        if concat_experts:
            text_units: list[nn.Module] = [nn.Sequential()]
        elif concat_mix_experts:
            text_units = [GatedEmbeddingUnit(text_dim, sum(agg_dims))]
        else:
            text_units = [GatedEmbeddingUnit(text_dim, dim) for dim in text_out_dims]
        self.text_GU = nn.ModuleList(text_units)

    def _build_reasoning(self, dim: int, num_g_layers: int, num_h_layers: int, use_bn: bool,
                         use_mish: bool) -> None:
        if self.use_ce == "pairwise-star-specific":
            self.g_reason_unshared_weights = nn.ModuleList([
                nn.Sequential(nn.Linear(2 * dim, dim), Mish() if use_mish else nn.ReLU(),
                              nn.Linear(dim, dim))
                for _ in self.modalities])
        elif self.use_ce == "pairwise-star-tensor":
            self.dim_reduce = nn.Linear(dim, STAR_TENSOR_DIM)
            self.g_reason_1 = nn.Linear(STAR_TENSOR_DIM * STAR_TENSOR_DIM, dim)
        else:
            inputs = 3 if self.use_ce == "triplet" else 2
            self.g_reason_1 = nn.Linear(dim * inputs, dim)
        self.g_reason_shared = reasoning_mlp(dim, num_g_layers - 1, use_bn, use_mish)
        self.h_reason = reasoning_mlp(dim, num_h_layers, use_bn, use_mish)

    @property
    def is_concat(self) -> bool:
        return bool(self.concat_experts or self.concat_mix_experts)

    def embed_text(self, text: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Pooled text ``[B, K, Dt]`` -> (expert -> ``[B, K, d_m]``, MoE weights ``[B, K, M]``).

        Concat variants fill only the first expert's key (one shared text embedding).
        """
        batch, num_caps, width = text.shape
        flat = text.reshape(batch * num_caps, width)
        kind = flat.device.type
        if torch.is_autocast_enabled(kind) and not self.is_concat and not torch.is_grad_enabled():
            # every reader of the pooled text is a Linear, which autocast would cast it for: cast
            # once (inference only: in training the ten gradients would then sum in bfloat16)
            flat = flat.to(torch.get_autocast_dtype(kind))
        text_embds = {}
        for name, unit in zip(self.modalities, self.text_GU):
            embd = unit(flat).reshape(batch, num_caps, -1)
            text_embds[name] = torch.rand_like(embd) if self.randomise_text else embd
        return text_embds, self.moe_weights(flat).reshape(batch, num_caps, -1)

    def moe_weights(self, text: torch.Tensor) -> torch.Tensor:
        """Per-caption expert weights from pooled text ``[R, Dt]`` -> ``[R, M]`` (rows sum to 1)."""
        num_experts = len(self.modalities)
        if self.freeze_weights:
            return text.new_full((text.shape[0], num_experts), 1.0 / num_experts, dtype=torch.float32)
        weights = torch.softmax(self.moe_fc(text), dim=1)
        if self.verbose:
            for idx, name in enumerate(self.modalities):
                column = weights[:, idx]
                logger.info("MoE weight %s: mean %.3f, std %.3f, min %.3f, max %.3f", name,
                            column.mean().item(), column.std().item(), column.min().item(),
                            column.max().item())
        return weights

    def embed_videos(self, experts: dict[str, torch.Tensor],
                     ind: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Aggregated experts (expert -> ``[B, in_dim]``) -> expert -> ``[B, d_m]``.

        Concat variants return one entry, under the first expert's key.
        """
        embds = {name: experts[name] for name in self.modalities}
        if hasattr(self, "video_dim_reduce"):
            embds = {name: layer(embds[name]) for name, layer in zip(self.modalities, self.video_dim_reduce)}
        if self.use_ce:
            return self._collaborative_gating(embds, ind)
        if self.is_concat:
            joined = torch.cat([embds[name] for name in self.modalities], dim=1)
            if self.concat_mix_experts:
                joined = self.video_GU[0](joined)
            return {self.modalities[0]: joined}
        return {name: unit(embds[name]) for name, unit in zip(self.modalities, self.video_GU)}

    def _collaborative_gating(self, embds: dict[str, torch.Tensor],
                              ind: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Gate each expert with a mask computed from the other experts.

        Experts are updated one after the other in modality order and later masks read the
        already-gated embeddings of earlier experts, exactly as the original CE code does.
        Pairwise and triplet masks go through :class:`FactorisedGate` unless
        ``factorised_gating`` is off (then one gate input per combination, the definition).
        """
        device = embds[self.modalities[0]].device
        # float32 even under autocast: the 1e-11 in the pair average vanishes in half precision
        avail = {name: ind[name].reshape(-1).to(device, torch.float32) for name in self.modalities}
        pairs = expert_pairs(self.modalities, self.include_self)
        star = self.use_ce in STAR_MODES
        centre = star_centre(embds, avail) if star else None
        gate = None
        if not star and self.factorised_gating:
            gate = FactorisedGate(self.g_reason_1, self.g_reason_shared, 3 if self.use_ce == "triplet" else 2)
        for idx, name in enumerate(self.modalities):
            if star:
                mask = self._star_gate(idx, embds[name], centre) * avail[name].unsqueeze(1)
            else:
                combos = combinations(self.use_ce, name, pairs, self.include_self)
                if gate is None:
                    mask = combination_mask(name, combos, embds, avail, self._shared_gate)
                else:
                    mask = gate.mask(name, combos, embds, avail)
            embds[name] = self.video_GU[idx](embds[name], self.h_reason(mask))
            if gate is not None:
                gate.forget(name)
        return embds

    def _shared_gate(self, fused: torch.Tensor) -> torch.Tensor:
        return self.g_reason_shared(self.g_reason_1(fused))

    def _star_gate(self, idx: int, embd: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        if self.use_ce == "pairwise-star-specific":
            fused = self.g_reason_unshared_weights[idx](torch.cat((embd, centre), dim=1))
            return self.g_reason_shared(fused)
        if self.use_ce == "pairwise-star-tensor":
            outer = self.dim_reduce(embd).unsqueeze(2) @ self.dim_reduce(centre).unsqueeze(1)
            return self._shared_gate(outer.reshape(embd.shape[0], -1))
        return self._shared_gate(torch.cat((embd, centre), dim=1))

    def similarity(self, text_embds: dict[str, torch.Tensor], moe_weights: torch.Tensor,
                   vid_embds: dict[str, torch.Tensor], ind: dict[str, torch.Tensor],
                   merge: str) -> torch.Tensor:
        """Text ``[T, K, d]`` vs video ``[N, d]`` embeddings -> ``[T*K, N]`` (indep) or ``[T, N]`` (avg).

        Always float32: under autocast the embeddings and weights are cast up and the products
        run in float32, so scores, losses and metrics keep full precision.
        """
        with torch.autocast(moe_weights.device.type, enabled=False):
            text_embds = {name: embd.float() for name, embd in text_embds.items()}
            vid_embds = {name: embd.float() for name, embd in vid_embds.items()}
            moe_weights = moe_weights.float()
            num_caps = moe_weights.shape[1]
            if self.is_concat:
                first = self.modalities[0]
                sims = concat_similarity(text_embds[first], vid_embds[first], self.concat_zero_pad_bug)
            else:
                sims = cross_view_similarity(text_embds, moe_weights, vid_embds, ind, self.modalities,
                                             self.keep_missing_modalities)
            return merge_captions(sims, num_caps, merge)
