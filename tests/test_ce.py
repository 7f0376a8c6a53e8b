"""Tests for CENet (model/ce.py) against the reference outputs of the original CE code."""
from __future__ import annotations

import ast
import copy
import json

import pytest
import torch
from conftest import reference_path

from model.ce import CENet
from model.ce_config import CEConfig
from model.dims import model_inputs
from utils.errors import ConfigError
from utils.registry import MODELS

VLAD_EXPERTS = ("audio", "ocr", "speech")
SMALL_TAG = "A_small_train-full-ce"


def load_ref(suffix: str):
    path = reference_path("model", f"{SMALL_TAG}_{suffix}")
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return torch.load(path, weights_only=True)


def small_kwargs() -> dict:
    """CEConfig kwargs of the reduced-dims twin of configs/msrvtt/train-full-ce.json."""
    meta = load_ref("meta.json")
    return dict(
        feat_dims={name: meta["raw_input_dims"][name] for name in meta["expert_dims"]},
        pooled_experts=[name for name in meta["expert_dims"] if name in VLAD_EXPERTS],
        text_dim=meta["text_dim"], ce_shared_dim=32, disable_nan_checks=False, **meta["arch_args"])


@pytest.fixture(scope="module")
def small_net() -> CENet:
    net = CENet(CEConfig(**small_kwargs()))
    net.load_state_dict(load_ref("state_dict.pth"), strict=True)
    return net.eval()


@pytest.fixture()
def inputs() -> dict:
    return load_ref("inputs.pth")


def run(net: CENet, batch: dict) -> dict:
    with torch.no_grad():
        return net(experts=batch["experts"], ind=batch["ind"], text=batch["text"],
                   text_token_mask=batch["text_token_mask"])


def small_config(**arch_overrides) -> dict:
    """The reduced-dims config as model_inputs reads it, with arch.args overrides."""
    meta = load_ref("meta.json")
    raw = meta["raw_input_dims"]
    feat_aggregation = {name: {"temporal": "vlad" if name in VLAD_EXPERTS else "avg",
                               "feat_dims": {"embed": dim}} for name, dim in raw.items()}
    feat_aggregation["face"] = {"temporal": "avg"}
    return {"experts": {"modalities": list(raw), "text_feat": "electra", "ce_shared_dim": 32, "face_dim": 24},
            "data_loader": {"args": {"feat_aggregation": feat_aggregation}},
            "arch": {"type": "CENet", "args": {**meta["arch_args"], **arch_overrides}}}


def build(config: dict, **injected) -> CENet:
    torch.manual_seed(0)
    return MODELS.build(config["arch"], **{**model_inputs(config), **injected})


def assert_outputs_close(out: dict, expected: dict, atol: float = 1e-5) -> None:
    assert out["modalities"] == expected["modalities"]
    torch.testing.assert_close(out["cross_view_conf_matrix"], expected["cross_view_conf_matrix"],
                               atol=atol, rtol=0)
    for key in ("text_embds", "vid_embds"):
        assert out[key].keys() == expected[key].keys()
        for name in expected[key]:
            torch.testing.assert_close(out[key][name], expected[key][name], atol=atol, rtol=0)


def test_parity_with_original_outputs(small_net, inputs):
    out = run(small_net, copy.deepcopy(inputs))
    assert out["cross_view_conf_matrix"].shape == (12, 6)
    assert_outputs_close(out, load_ref("outputs.pth"))


def read_fingerprints(path) -> list[tuple[str, tuple, float, list[float]]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape, _dtype, total, _abs_total, first = line.split("\t")
        rows.append((key, tuple(ast.literal_eval(shape)), float(total), json.loads(first)))
    return rows


def assert_fingerprints(net: CENet, path) -> None:
    state = net.state_dict()
    rows = read_fingerprints(path)
    assert list(state) == [row[0] for row in rows]
    for key, shape, total, first in rows:
        value = state[key].double()
        assert tuple(value.shape) == shape, key
        assert value.sum().item() == pytest.approx(total, rel=1e-5, abs=1e-6), key
        assert value.flatten()[:3].tolist() == pytest.approx(first, abs=1e-7), key


def test_seeded_init_reproduces_original_fingerprints():
    torch.manual_seed(0)
    assert_fingerprints(CENet(CEConfig(**small_kwargs())), reference_path("model", f"{SMALL_TAG}_state_dict_keys.txt"))


@pytest.mark.parametrize("filler", [0.0, float("nan"), 1e6])
def test_missing_rows_are_ignored_and_inputs_untouched(small_net, inputs, filler):
    batch = copy.deepcopy(inputs)
    for name, feats in batch["experts"].items():
        feats[batch["ind"][name] == 0] = filler
    before = copy.deepcopy(batch)
    out = run(small_net, batch)
    assert_outputs_close(out, load_ref("outputs.pth"))
    for name in before["experts"]:
        torch.testing.assert_close(batch["experts"][name], before["experts"][name], equal_nan=True)


def test_nan_in_present_expert_raises(small_net, inputs):
    inputs["experts"]["scene.densenet161.0"][2, 5] = float("nan")
    with pytest.raises(ValueError, match=r"expert 'scene.densenet161.0'.*batch row 2"):
        run(small_net, inputs)


def full_msrvtt_config(**arch_overrides) -> dict:
    """configs/msrvtt/train-full-ce.json with the real MSR-VTT dims, as model_inputs reads it."""
    embed = {"imagenet.senet154.0": 2048, "imagenet.resnext101_32x48d.0": 2048,
             "scene.densenet161.0": 2208, "i3d.i3d.0": 1024, "r2p1d.r2p1d-ig65m.0": 512}
    feat_aggregation = {name: {"temporal": "avg", "type": "embed", "feat_dims": {"embed": dim}}
                        for name, dim in embed.items()}
    feat_aggregation.update(face={"temporal": "avg"}, audio={"temporal": "vlad", "type": "embed"},
                            ocr={"temporal": "vlad", "feat_dims": {"embed": 300}},
                            speech={"temporal": "vlad", "feat_dims": {"embed": 300}})
    args = {"use_ce": "pairwise", "include_self": 1, "num_g_layers": 3, "num_h_layers": 0,
            "use_mish": 1, "use_bn_reason": 1, "mimic_ce_dims": 0,
            "vlad_clusters": {"ocr": 43, "text": 28, "audio": 8, "speech": 19, "detection-sem": 50},
            "ghost_clusters": {"text": 1, "ocr": 1, "audio": 1, "speech": 1}}
    args.update(arch_overrides)
    return {"experts": {"modalities": [*embed, "face", "ocr", "audio", "speech"], "drop_feats": "",
                        "text_feat": "openai", "ce_shared_dim": 768, "face_dim": 512},
            "data_loader": {"args": {"feat_aggregation": feat_aggregation}},
            "arch": {"type": "CENet", "args": args}}


VARIANTS = {
    "configs/msrvtt/train-full-ce.json": {},
    "configs/msrvtt/train-full-ce-ablation-dims.json": {"use_ce": "", "mimic_ce_dims": True},
    "configs/msrvtt/train-full-moee.json": {
        "use_ce": "", "num_g_layers": 1, "num_h_layers": 1, "include_self": 0,
        "vlad_clusters": {"ocr": 20, "text": 50, "audio": 27, "speech": 45},
        "ghost_clusters": {"text": 2, "ocr": 1, "audio": 1, "speech": 1}},
    "configs/msrvtt/train-full-moee-minus-moee-weights.json": {"use_ce": "", "freeze_weights": True},
    "configs/msrvtt/train-full-concat-ablation.json": {
        "use_ce": "", "concat_experts": True,
        "vlad_clusters": {"ocr": 43, "text": 39, "audio": 8, "speech": 19}},
}


@pytest.mark.parametrize("config_name", list(VARIANTS))
def test_parameter_counts_match_original(config_name):
    expected = json.loads(reference_path("model", "param_counts.json").read_text())[config_name]
    config = full_msrvtt_config(**VARIANTS[config_name])
    with torch.device("meta"):
        net = MODELS.build(config["arch"], **{**model_inputs(config), "ce_shared_dim": 768})
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert trainable == expected["trainable_params"]


def dims_of(config: dict) -> tuple[dict, dict, int]:
    """(expert -> (in_dim, out_dim), expert -> width the loader provides, text width) of a config."""
    inputs = model_inputs(config)
    expert_dims = CEConfig(**config["arch"].get("args", {}), **inputs).expert_dims()
    return expert_dims, dict(inputs["feat_dims"]), inputs["text_dim"]


def test_model_dims_reproduce_reference_dims():
    config = json.loads(reference_path("checkpoint", "ce_small_config.json").read_text())
    meta = load_ref("meta.json")
    expert_dims, raw_dims, text_dim = dims_of(config)
    assert list(expert_dims) == list(meta["expert_dims"])
    assert {k: list(v) for k, v in expert_dims.items()} == meta["expert_dims"]
    assert raw_dims == meta["raw_input_dims"]
    assert text_dim == meta["text_dim"]


def test_model_dims_errors():
    config = full_msrvtt_config()
    del config["data_loader"]["args"]["feat_aggregation"]["face"]
    with pytest.raises(ValueError, match="'face'"):
        dims_of(config)
    with pytest.raises(ValueError, match="mimic_ce_dims"):
        dims_of(full_msrvtt_config(mimic_ce_dims=True))


def test_pieces_compose_to_forward(small_net, inputs):
    expected = run(small_net, copy.deepcopy(inputs))
    with torch.no_grad():
        vid = small_net.embed_videos(inputs["experts"], inputs["ind"])
        text, weights = small_net.embed_text(inputs["text"])
        sims = small_net.similarity(text, weights, vid, inputs["ind"], merge="indep")
    assert weights.shape == (6, 2, 9)
    torch.testing.assert_close(sims, expected["cross_view_conf_matrix"], atol=0, rtol=0)
    for name in expected["modalities"]:
        torch.testing.assert_close(vid[name], expected["vid_embds"][name], atol=0, rtol=0)
        torch.testing.assert_close(text[name], expected["text_embds"][name], atol=0, rtol=0)


def test_avg_caption_mode_is_mean_of_indep(inputs):
    net = CENet(CEConfig(**{**small_kwargs(), "test_caption_mode": "avg"}))
    net.load_state_dict(load_ref("state_dict.pth"))
    avg = run(net.eval(), copy.deepcopy(inputs))["cross_view_conf_matrix"]
    indep = load_ref("outputs.pth")["cross_view_conf_matrix"]
    assert avg.shape == (6, 6)
    torch.testing.assert_close(avg, indep.reshape(6, 2, 6).mean(dim=1), atol=1e-6, rtol=0)


def test_training_mode_merges_captions(inputs):
    out = run(build(small_config()).train(), inputs)
    assert out["cross_view_conf_matrix"].shape == (6, 6)


def test_small_config_dims_match_reference():
    expert_dims, raw_dims, text_dim = dims_of(small_config())
    meta = load_ref("meta.json")
    assert {k: list(v) for k, v in expert_dims.items()} == meta["expert_dims"]
    assert raw_dims == meta["raw_input_dims"] and text_dim == meta["text_dim"]


@pytest.mark.parametrize("overrides", [
    {"use_ce": ""},
    {"use_ce": "", "mimic_ce_dims": True},
    {"use_ce": "", "freeze_weights": True},
    {"use_ce": "", "concat_mix_experts": True},
    {"use_ce": "triplet", "include_self": 0},
    {"use_ce": "pairwise", "include_self": 0, "num_h_layers": 2, "use_mish": 0, "use_bn_reason": 0},
    {"use_ce": "pairwise-star"},
    {"use_ce": "pairwise-star-specific"},
    {"use_ce": "pairwise-star-tensor"},
    {"keep_missing_modalities": True},
    {"randomise_feats": "face,ocr,text"},
])
def test_variants_run(inputs, overrides):
    net = build(small_config(**overrides)).eval()
    sims = run(net, inputs)["cross_view_conf_matrix"]
    assert sims.shape == (12, 6) and torch.isfinite(sims).all()


def test_disable_nan_checks_lets_nan_through(inputs):
    inputs["experts"]["face"][0, 0] = float("nan")
    sims = run(build(small_config(), disable_nan_checks=True).eval(), inputs)["cross_view_conf_matrix"]
    assert torch.isnan(sims).any()


def test_concat_pads_with_video_values_unless_bug_requested(inputs):
    config = small_config(use_ce="", concat_experts=True)
    config["arch"]["args"]["vlad_clusters"]["text"] = 10  # text 2560 wide > video 2360
    sims = run(build(config).eval(), inputs)["cross_view_conf_matrix"]
    assert sims.shape == (12, 6) and sims.abs().sum() > 0
    buggy = run(build(config, concat_zero_pad_bug=True).eval(), inputs)["cross_view_conf_matrix"]
    assert torch.equal(buggy, torch.zeros(12, 6))


@pytest.mark.parametrize("overrides, error", [
    ({"l2renorm": True}, ConfigError),
    ({"task": "classification"}, ValueError),
    ({"use_ce": "quadruplet"}, ValueError),
    ({"mimic_ce_dims": True}, ValueError),
    ({"test_caption_mode": "max"}, ValueError),
])
def test_invalid_options_raise(overrides, error):
    with pytest.raises(error):
        CENet(CEConfig(**{**small_kwargs(), **overrides}))
