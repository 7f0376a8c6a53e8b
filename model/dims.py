"""The widths of every expert's features and of the text features, from a config (no data read)."""
from __future__ import annotations

from collections import OrderedDict

from utils.config.options import ExpertsOptions, options_from, used_experts
from utils.errors import ConfigError

TEXT_DIMS: dict[str, int] = {
    "w2v": 300, "grovle": 300, "mt_grovle": 300, "hglmm_300d": 300, "hglmm_6kd": 6000,
    "howto100m_mil_nce": 512, "openai": 768, "electra": 256, "openai-gpt": 768,
    "gpt2": 768, "gpt2-medium": 1024, "gpt2-large": 1280, "gpt2-xl": 1600,
    "gpt2-xl-finetune": 1600, "bert-base-uncased": 768, "t5-small": 512, "t5-base": 768,
    "t5-large": 1024, "t5-3b": 1024, "t5-11b": 1024, "albert-base-v2": 768,
    "albert-large-v2": 1024, "albert-xlarge-v2": 2048, "ctrl": 1280, "roberta-base": 768,
    "roberta-large": 1024, "xlnet-base-cased": 768, "xlnet-large-cased": 1024,
    "transfo-xl-wt103": 1024, "synthetic": 300, "glove": 300,
    "hgr_words": 300,  # HGR's word ids (data_loader/released/hgr_msrvtt.py); the model embeds them itself
}

# Per-token dims the original CE code hard-codes for experts whose feat_aggregation
# entry carries no ``feat_dims`` (keyed by the part of the expert name before the first dot).
NATIVE_TOKEN_DIMS: dict[str, int] = {
    "audio": 128, "speech": 300, "ocr": 300, "detection": 1541, "detection-sem": 305,
    "openpose": 54,
}

FIXED_TEMPORAL_MODES = ("avg", "max", "ent", "std")


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


def feature_width(config: dict, expert: str) -> int:
    """The width the data loader gives expert ``expert`` of a resolved config: one token's for a
    token-sequence ("vlad") expert, else the aggregated feature's (d times its temporal modes).
    ConfigError when ``data_loader.args.feat_aggregation`` has no entry for it."""
    feat_aggregation = config["data_loader"]["args"]["feat_aggregation"]
    if expert not in feat_aggregation:
        raise ConfigError(f"expert '{expert}' is used but has no entry in data_loader.args.feat_aggregation")
    aggregation = feat_aggregation[expert]
    dim = _token_dim(expert, aggregation, options_from(ExpertsOptions, config["experts"]).face_dim)
    return dim if is_variable(expert, aggregation) else dim * len(aggregation["temporal"].split("-"))


def model_inputs(config: dict) -> dict:
    """What the program hands a model besides ``arch.args``, for a resolved config.

    Returns ``feat_dims`` (expert -> width of one token for token-sequence ("vlad") experts,
    of the aggregated feature (d times the number of temporal modes) otherwise, in
    alphabetical expert order: the width the data loader provides), ``pooled_experts`` (the
    token-sequence experts), ``text_dim`` (width of one text token of ``experts.text_feat``),
    ``ce_shared_dim`` and ``disable_nan_checks``.
    """
    experts = options_from(ExpertsOptions, config["experts"])
    feat_dims: OrderedDict[str, int] = OrderedDict()
    for expert in used_experts(config["experts"]):
        feat_dims[expert] = feature_width(config, expert)
    aggregation = config["data_loader"]["args"]["feat_aggregation"]
    pooled = [expert for expert in feat_dims if is_variable(expert, aggregation[expert])]
    text_feat = experts.text_feat
    if text_feat not in TEXT_DIMS:
        raise ConfigError(f"experts.text_feat: unknown text feature {text_feat!r}; "
                          f"expected one of: {', '.join(sorted(TEXT_DIMS))}")
    return {"feat_dims": feat_dims, "pooled_experts": pooled, "text_dim": TEXT_DIMS[text_feat],
            "ce_shared_dim": experts.ce_shared_dim,
            "disable_nan_checks": config.get("disable_nan_checks", False)}
