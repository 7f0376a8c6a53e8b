"""Input/output dimensions of every expert and of the text features, from a config."""
from __future__ import annotations

from collections import OrderedDict

from utils.errors import ConfigError
from utils.options import used_experts

TEXT_DIMS: dict[str, int] = {
    "w2v": 300, "grovle": 300, "mt_grovle": 300, "hglmm_300d": 300, "hglmm_6kd": 6000,
    "howto100m_mil_nce": 512, "openai": 768, "electra": 256, "openai-gpt": 768,
    "gpt2": 768, "gpt2-medium": 1024, "gpt2-large": 1280, "gpt2-xl": 1600,
    "gpt2-xl-finetune": 1600, "bert-base-uncased": 768, "t5-small": 512, "t5-base": 768,
    "t5-large": 1024, "t5-3b": 1024, "t5-11b": 1024, "albert-base-v2": 768,
    "albert-large-v2": 1024, "albert-xlarge-v2": 2048, "ctrl": 1280, "roberta-base": 768,
    "roberta-large": 1024, "xlnet-base-cased": 768, "xlnet-large-cased": 1024,
    "transfo-xl-wt103": 1024, "synthetic": 300,
}

# Per-token dims the original CE code hard-codes for experts whose feat_aggregation
# entry carries no ``feat_dims`` (keyed by the part of the expert name before the first dot).
NATIVE_TOKEN_DIMS: dict[str, int] = {
    "audio": 128, "speech": 300, "ocr": 300, "detection": 1541, "detection-sem": 305,
    "openpose": 54,
}

FIXED_TEMPORAL_MODES = ("avg", "max", "ent", "std")
DEFAULT_USE_CE = "pairwise"
DEFAULT_VLAD_CLUSTERS: dict[str, int] = {"ocr": 43, "text": 28, "audio": 8, "speech": 19,
                                         "detection-sem": 50}
DEFAULT_GHOST_CLUSTERS: dict[str, int] = {"text": 1}


def is_variable(expert: str, aggregation: dict) -> bool:
    """True for token-sequence ("vlad") experts, False for fixed-size ones.

    Raises ValueError for a temporal mode that is neither "vlad" nor made of
    avg/max/ent/std joined by '-'.
    """
    temporal = aggregation.get("temporal")
    if temporal == "vlad":
        return True
    modes = str(temporal).split("-")
    if temporal is None or any(mode not in FIXED_TEMPORAL_MODES for mode in modes):
        raise ConfigError(f"expert '{expert}': unknown temporal aggregation {temporal!r}; "
                         f"expected 'vlad' or a '-'-joined combination of {FIXED_TEMPORAL_MODES}")
    return False


def _token_dim(expert: str, aggregation: dict, face_dim: int) -> int:
    if expert == "face":
        return face_dim
    feat_type = aggregation.get("type", "embed")
    dim = aggregation.get("feat_dims", {}).get(feat_type)
    if dim is None:
        dim = NATIVE_TOKEN_DIMS.get(expert.split(".")[0])
    if dim is None:
        raise ConfigError(f"expert '{expert}': feat_aggregation has no feat_dims['{feat_type}']")
    return int(dim)


def compute_dims(config: dict) -> tuple[OrderedDict[str, tuple[int, int]], dict[str, int], int]:
    """Expert and text dimensions for a resolved config.

    Returns:
        expert_dims: expert -> (in_dim, out_dim), in alphabetical expert order. in_dim is
            the size of the aggregated feature (d*K for a VLAD expert with K clusters, d
            times the number of temporal modes otherwise); out_dim is the native dim, or
            ``experts.ce_shared_dim`` for CENet with ``use_ce`` or ``mimic_ce_dims``.
        raw_input_dims: expert -> dim of one token/frame as the data loader provides it.
        text_dim: dim of one text token for ``experts.text_feat``.
    """
    experts_cfg = config["experts"]
    feat_aggregation = config["data_loader"]["args"]["feat_aggregation"]
    arch = config["arch"]
    arch_args = arch.get("args", {})
    use_ce = arch_args.get("use_ce", DEFAULT_USE_CE)
    mimic_ce_dims = arch_args.get("mimic_ce_dims", False)
    vlad_clusters = arch_args.get("vlad_clusters", DEFAULT_VLAD_CLUSTERS)
    if use_ce and mimic_ce_dims:
        raise ConfigError(f"arch.args: use_ce ({use_ce!r}) and mimic_ce_dims cannot both be set")
    shared_out = arch.get("type") == "CENet" and bool(use_ce or mimic_ce_dims)

    expert_dims: OrderedDict[str, tuple[int, int]] = OrderedDict()
    raw_input_dims: dict[str, int] = {}
    for expert in used_experts(experts_cfg):
        if expert not in feat_aggregation:
            raise ConfigError(f"expert '{expert}' is used but has no entry in "
                             "data_loader.args.feat_aggregation")
        aggregation = feat_aggregation[expert]
        dim = _token_dim(expert, aggregation, experts_cfg.get("face_dim", 512))
        if is_variable(expert, aggregation):
            if expert not in vlad_clusters:
                raise ConfigError(f"expert '{expert}' uses temporal 'vlad' but arch.args.vlad_clusters "
                                 "has no entry for it")
            in_dim, out_dim, raw_dim = dim * vlad_clusters[expert], dim, dim
        else:
            in_dim = dim * len(aggregation["temporal"].split("-"))
            out_dim, raw_dim = in_dim, in_dim
        if shared_out:
            out_dim = experts_cfg["ce_shared_dim"]
        expert_dims[expert] = (in_dim, out_dim)
        raw_input_dims[expert] = raw_dim

    text_feat = experts_cfg["text_feat"]
    if text_feat not in TEXT_DIMS:
        raise ConfigError(f"experts.text_feat: unknown text feature {text_feat!r}; "
                         f"expected one of: {', '.join(sorted(TEXT_DIMS))}")
    return expert_dims, raw_input_dims, TEXT_DIMS[text_feat]
