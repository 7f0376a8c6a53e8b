"""CEConfig: everything that shapes a CENet, and the dimension arithmetic that follows from it.

The program fills the widths (``feat_dims``, ``pooled_experts``, ``text_dim``, from
``model.dims.model_inputs``), ``ce_shared_dim`` and ``disable_nan_checks``; the rest is
``arch.args`` of a config, under the original's key names, with the defaults of
``configs/ce_base.json``. A checkpoint stores it as a dict (``model_config``).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from model.collab_gating import CE_MODES
from model.similarity import MERGE_MODES
from utils.errors import ConfigError


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
