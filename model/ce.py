"""CENet: Collaborative Experts (and its MoEE / ablation variants) for text-video retrieval,
and CEConfig, everything that shapes one.

The program fills CEConfig's widths (``feat_dims``, ``pooled_experts``, ``text_dim``, from
``model.dims.model_inputs``), ``ce_shared_dim`` and ``disable_nan_checks``; the rest is
``arch.args`` of a config, under the original's key names, with the defaults of
``configs/ce_base.json``. A checkpoint stores the CEConfig as a dict (``model_config``).

Shapes: B videos, K captions per video, T tokens per caption, M experts. Fixed-size
experts are ``[B, D]``; token-sequence ("vlad") experts are ``[B, N, d]`` and are pooled
by NetVLAD here. Text is ``[B, K, T, D_text]``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from model.ce_module import CEModule
from model.collab_gating import CE_MODES
from model.net_vlad import NetVLAD
from model.similarity import MERGE_MODES
from utils.errors import ConfigError, StoreError
from utils.registry import MODELS

@MODELS.register("CENet")
@dataclass
class CEConfig:
    """Options of a Collaborative Experts model (and of its MoEE / ablation variants).

    ``feat_dims``: expert -> width of one token for ``pooled_experts`` (NetVLAD-pooled token
    experts), else of the whole feature; its order is the expert order. ``use_ce``: "" for no
    collaborative gating, else one of ``CE_MODES``. ``vlad_clusters`` / ``ghost_clusters``:
    expert -> K; only ``ghost_clusters["text"]`` is used (as in the original, expert NetVLADs
    get no ghost clusters). At most one of ``use_ce``, ``mimic_ce_dims``, ``concat_experts``,
    ``concat_mix_experts``; none gives MoEE. ``concat_zero_pad_bug`` reproduces the original
    Concat ablation's all-zero similarities. ``randomise_feats``: comma-separated experts (or
    "text") replaced by noise. ``l2renorm`` and tasks other than retrieval are refused.
    """

    feat_dims: dict[str, int]
    text_dim: int
    pooled_experts: list[str] = field(default_factory=list)
    ce_shared_dim: int = 768
    disable_nan_checks: bool = False
    use_ce: str = "pairwise"
    vlad_clusters: dict[str, int] = field(default_factory=lambda: {"ocr": 32, "text": 25, "audio": 16, "speech": 32})
    ghost_clusters: dict[str, int] = field(default_factory=lambda: {"text": 0})
    keep_missing_modalities: bool = False
    test_caption_mode: str = "indep"
    randomise_feats: str = ""
    include_self: bool = True
    use_mish: bool = True
    use_bn_reason: bool = True
    num_h_layers: int = 0
    num_g_layers: int = 3
    freeze_weights: bool = False
    mimic_ce_dims: bool = False
    concat_experts: bool = False
    concat_mix_experts: bool = False
    concat_zero_pad_bug: bool = False
    l2renorm: bool = False
    task: str = "retrieval"
    verbose: bool = False

    def __post_init__(self) -> None:
        if not self.feat_dims:
            raise ConfigError("CENet needs at least one expert (experts.modalities)")
        if self.task != "retrieval":
            raise ConfigError(f"task {self.task!r} is not supported; only 'retrieval' is")
        if self.l2renorm:
            raise ConfigError("l2renorm is not supported (the original CE code also raises "
                              "NotImplementedError when computing similarities with it)")
        if self.use_ce and self.use_ce not in CE_MODES:
            raise ConfigError(f"unknown use_ce mode {self.use_ce!r}; expected '' or one of {CE_MODES}")
        if self.use_ce and len(self.feat_dims) < 2:
            raise ConfigError("use_ce (collaborative gating) needs at least two experts")
        variants = {"use_ce": self.use_ce, "mimic_ce_dims": self.mimic_ce_dims,
                    "concat_experts": self.concat_experts, "concat_mix_experts": self.concat_mix_experts}
        chosen = [key for key, value in variants.items() if value]
        if len(chosen) > 1:
            raise ConfigError(f"arch.args: options {chosen} cannot be combined; set at most one")
        if self.test_caption_mode not in MERGE_MODES:
            raise ConfigError(f"unknown test_caption_mode {self.test_caption_mode!r}; expected one of {MERGE_MODES}")
        unknown = sorted(self.random_feats - set(self.feat_dims) - {"text"})
        if unknown:
            raise ConfigError(f"randomise_feats names unknown experts {unknown}")
        for name in self.pooled_experts:
            if name not in self.vlad_clusters:
                raise ConfigError(f"expert '{name}' uses temporal 'vlad' but arch.args.vlad_clusters has no "
                                  "entry for it")

    @property
    def modalities(self) -> list[str]:
        return list(self.feat_dims)

    @property
    def random_feats(self) -> set[str]:
        return {name.strip() for name in self.randomise_feats.split(",") if name.strip()}

    def expert_dims(self) -> OrderedDict[str, tuple[int, int]]:
        """expert -> (in_dim, out_dim), as the original computes them: in_dim is d*K for a
        pooled expert with K clusters, else d; out_dim is ``ce_shared_dim`` with ``use_ce`` or
        ``mimic_ce_dims``, else the expert's own width d."""
        shared = bool(self.use_ce or self.mimic_ce_dims)
        dims: OrderedDict[str, tuple[int, int]] = OrderedDict()
        for name, dim in self.feat_dims.items():
            in_dim = dim * self.vlad_clusters[name] if name in self.pooled_experts else dim
            dims[name] = (in_dim, self.ce_shared_dim if shared else dim)
        return dims

    def build(self) -> "CENet":
        return CENet(self)


# The original CE code creates the expert NetVLADs in this order (seeded initialisation
# and state_dict order depend on it); other token-sequence experts follow alphabetically.
POOLING_ORDER = ("ocr", "audio", "speech")


class CENet(nn.Module):
    """Text-video retrieval from precomputed expert features, shaped by a :class:`CEConfig`."""

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
