"""CENet: Collaborative Experts (and its MoEE / ablation variants) for text-video retrieval.

Shapes: B videos, K captions per video, T tokens per caption, M experts. Fixed-size
experts are ``[B, D]``; token-sequence ("vlad") experts are ``[B, N, d]`` and are pooled
by NetVLAD here. Text is ``[B, K, T, D_text]``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from model.ce_module import CEModule
from model.collab_gating import CE_MODES
from model.dims import DEFAULT_GHOST_CLUSTERS, DEFAULT_USE_CE, DEFAULT_VLAD_CLUSTERS, is_variable
from model.net_vlad import NetVLAD
from model.similarity import MERGE_MODES
from utils.registry import MODELS

# The original CE code creates the expert NetVLADs in this order (seeded initialisation
# and state_dict order depend on it); other token-sequence experts follow alphabetically.
POOLING_ORDER = ("ocr", "audio", "speech")


@MODELS.register()
class CENet(nn.Module):
    """Text-video retrieval from precomputed expert features.

    Injected by the program (not set in config): ``expert_dims`` (expert -> (in_dim,
    out_dim), see ``model.dims.compute_dims``; its order is the expert order),
    ``text_dim``, ``feat_aggregation`` (expert -> {"temporal": ...}; "vlad" experts are
    pooled with NetVLAD; None means every expert is fixed-size), ``ce_shared_dim`` and
    ``disable_nan_checks``.

    Config options keep the original names. ``use_ce``: "" for no collaborative gating,
    else one of "pairwise", "triplet", "pairwise-star", "pairwise-star-specific",
    "pairwise-star-tensor". ``vlad_clusters`` / ``ghost_clusters``: expert -> K; None
    means the original base config. Only ``ghost_clusters["text"]`` is used (as in the
    original, expert NetVLADs get no ghost clusters). ``concat_zero_pad_bug`` reproduces
    the original Concat ablation's all-zero similarities. ``randomise_feats``: comma-
    separated experts (or "text") replaced by random noise. ``l2renorm`` is not supported.
    """

    def __init__(self, expert_dims: dict | None = None, text_dim: int = 768,
                 feat_aggregation: dict | None = None, ce_shared_dim: int = 768,
                 disable_nan_checks: bool = False, use_ce: str = DEFAULT_USE_CE,
                 vlad_clusters: dict | None = None, ghost_clusters: dict | None = None,
                 keep_missing_modalities: bool = False, test_caption_mode: str = "indep",
                 randomise_feats: str = "", include_self: bool = True, use_mish: bool = True,
                 use_bn_reason: bool = True, num_h_layers: int = 0, num_g_layers: int = 3,
                 freeze_weights: bool = False, mimic_ce_dims: bool = False,
                 concat_experts: bool = False, concat_mix_experts: bool = False,
                 concat_zero_pad_bug: bool = False, l2renorm: bool = False,
                 task: str = "retrieval", verbose: bool = False):
        super().__init__()
        if not expert_dims:
            raise ValueError("CENet needs expert_dims (expert -> (in_dim, out_dim), from compute_dims)")
        vlad_clusters = dict(DEFAULT_VLAD_CLUSTERS if vlad_clusters is None else vlad_clusters)
        ghost_clusters = dict(DEFAULT_GHOST_CLUSTERS if ghost_clusters is None else ghost_clusters)
        self.modalities = list(expert_dims)
        self.random_feats = {name.strip() for name in randomise_feats.split(",") if name.strip()}
        _check_options(self.modalities, use_ce, mimic_ce_dims, concat_experts, concat_mix_experts,
                       test_caption_mode, task, l2renorm, self.random_feats)
        self.disable_nan_checks = disable_nan_checks
        self.test_caption_mode = test_caption_mode

        self.pooling = nn.ModuleDict()
        for name in _pooled_experts(self.modalities, feat_aggregation):
            if name not in vlad_clusters:
                raise ValueError(f"expert '{name}' uses temporal 'vlad' but vlad_clusters has no entry "
                                 "for it")
            clusters = vlad_clusters[name]
            in_dim = int(expert_dims[name][0])
            if in_dim % clusters:
                raise ValueError(f"expert '{name}': in_dim {in_dim} is not a multiple of its "
                                 f"{clusters} VLAD clusters")
            self.pooling[name] = NetVLAD(clusters, in_dim // clusters)

        text_clusters = vlad_clusters.get("text", 0)
        if text_clusters:
            self.text_pooling: nn.Module = NetVLAD(text_clusters, text_dim, ghost_clusters.get("text", 0))
            pooled_text_dim = text_clusters * text_dim
        else:
            self.text_pooling = nn.Sequential()
            pooled_text_dim = text_dim

        self.ce = CEModule(
            expert_dims=expert_dims, text_dim=pooled_text_dim, same_dim=ce_shared_dim,
            use_ce=use_ce, include_self=include_self, use_mish=use_mish,
            use_bn_reason=use_bn_reason, num_h_layers=num_h_layers, num_g_layers=num_g_layers,
            freeze_weights=freeze_weights, mimic_ce_dims=mimic_ce_dims,
            concat_experts=concat_experts, concat_mix_experts=concat_mix_experts,
            concat_zero_pad_bug=concat_zero_pad_bug,
            keep_missing_modalities=keep_missing_modalities,
            randomise_text="text" in self.random_feats, verbose=verbose)

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
            ``text_embds`` (expert -> ``[B, K, d]``), ``vid_embds`` (expert -> ``[B, d]``).
        """
        vid_embds = self.embed_videos(experts, ind)
        text_embds, moe_weights = self.embed_text(text)
        merge = "avg" if self.training else self.test_caption_mode
        sims = self.similarity(text_embds, moe_weights, vid_embds, ind, merge)
        return {"modalities": list(self.modalities), "cross_view_conf_matrix": sims,
                "text_embds": text_embds, "vid_embds": vid_embds}

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
        """Randomise (if requested) and zero the rows of missing videos, out of place."""
        present = ind.reshape(-1).to(feats.device) != 0
        if present.shape[0] != feats.shape[0]:
            raise ValueError(f"expert '{name}': ind has {present.shape[0]} entries for "
                             f"{feats.shape[0]} videos")
        if name in self.random_feats:
            noise = torch.randn_like(feats)
            feats = noise if self.disable_nan_checks else torch.where(torch.isnan(feats), feats, noise)
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


def _check_options(modalities: list[str], use_ce: str, mimic_ce_dims: bool, concat_experts: bool,
                   concat_mix_experts: bool, test_caption_mode: str, task: str, l2renorm: bool,
                   random_feats: set[str]) -> None:
    if task != "retrieval":
        raise ValueError(f"task {task!r} is not supported; only 'retrieval' is")
    if l2renorm:
        raise NotImplementedError("l2renorm is not supported (the original CE code also raises "
                                  "NotImplementedError when computing similarities with it)")
    if use_ce and use_ce not in CE_MODES:
        raise ValueError(f"unknown use_ce mode {use_ce!r}; expected '' or one of {CE_MODES}")
    if use_ce and len(modalities) < 2:
        raise ValueError("use_ce (collaborative gating) needs at least two experts")
    variants = {"use_ce": use_ce, "mimic_ce_dims": mimic_ce_dims, "concat_experts": concat_experts,
                "concat_mix_experts": concat_mix_experts}
    chosen = [key for key, value in variants.items() if value]
    if len(chosen) > 1:
        raise ValueError(f"options {chosen} cannot be combined; set at most one")
    if test_caption_mode not in MERGE_MODES:
        raise ValueError(f"unknown test_caption_mode {test_caption_mode!r}; expected one of {MERGE_MODES}")
    unknown = sorted(random_feats - set(modalities) - {"text"})
    if unknown:
        raise ValueError(f"randomise_feats names unknown experts {unknown}")


def _pooled_experts(modalities: list[str], feat_aggregation: dict | None) -> list[str]:
    """Token-sequence experts, in NetVLAD creation order."""
    if feat_aggregation is None:
        return []
    for name in modalities:
        if name not in feat_aggregation:
            raise ValueError(f"expert '{name}' has no entry in feat_aggregation")
    variable = [name for name in modalities if is_variable(name, feat_aggregation[name])]
    first = [name for name in POOLING_ORDER if name in variable]
    return first + [name for name in variable if name not in first]


def _raise_on_nan(modalities: list[str], nan_rows: torch.Tensor) -> None:
    """``nan_rows: [M, B]`` flags of present rows holding NaN -> ValueError for the first."""
    if not bool(nan_rows.any()):
        return
    expert_idx, row = (int(i) for i in nan_rows.nonzero()[0])
    raise ValueError(f"expert '{modalities[expert_idx]}' has NaN features for a video marked "
                     f"present (batch row {row})")
