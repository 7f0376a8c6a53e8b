"""Configs of the original's published tables: they load, validate and match the originals.

Parameter counts are the "Params" column of the original README and misc/ablations.md, which
every model built here (on the meta device, as ``train.py --dry_run``) reproduces.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import REPO

from model.dims import used_experts
from trainer.build import build_model
from utils.config.load import load_config, resolve, with_eval_settings
from utils.errors import ConfigError
from utils.summary import count_trainable

CONFIGS = REPO / "configs"
SHARED_DEFAULTS = CONFIGS / "ce_base.json"  # completed by each dataset's base.json

DRY_RUN_COUNTS = {
    "msrvtt/train-full-ce.json": 183_448_607,
    "msrvtt/train-full-ce-ablation-dims.json": 181_070_111,
    "msrvtt/train-full-moee.json": 400_410_129,
    "msrvtt/train-full-moee-minus-moee-weights.json": 246_219_775,
    "msrvtt/train-full-concat-ablation.json": 369_717,
    "msrvtt/train-gpt2-xl-finetuned-adam.json": 262_731_071,  # CE+ of the TeachText tables
}

ALL_EXPERTS = "scene-speech-audio-flow-rgb-inst-r2p1d-ocr-face"
PUBLISHED_PARAMS = {
    "msrvtt": {"train-full-concat-ablation": "369.72k", "train-full-moee-minus-moee-weights": "246.22M",
               "train-full-moee": "400.41M", "train-full-ce-ablation-dims": "181.07M", "train-full-ce": "183.45M",
               "train-full-ce-only-scene": "19.46M", "train-full-ce-only-scene-inst": "41.12M",
               "train-full-ce-only-scene-r2p1d": "39.95M", "train-full-ce-only-scene-rgb": "41.12M",
               "train-full-ce-only-scene-flow": "40.34M", "train-full-ce-only-scene-audio": "40.34M",
               "train-full-ce-only-scene-ocr": "49.49M", "train-full-ce-only-scene-speech": "43.94M",
               "train-full-ce-only-scene-face": "39.95M", "train-full-ce-only-scene-speech-audio": "62.45M",
               "train-full-ce-only-scene-speech-audio-flow": "80.96M",
               "train-full-ce-only-scene-speech-audio-flow-rgb": "100.26M",
               "train-full-ce-only-scene-speech-audio-flow-rgb-inst": "119.56M",
               "train-full-ce-only-scene-speech-audio-flow-rgb-inst-r2p1d": "137.67M",
               "train-full-ce-only-scene-speech-audio-flow-rgb-inst-r2p1d-ocr": "165.33M",
               f"train-full-ce-only-{ALL_EXPERTS}": "183.45M", "train-full-ce-384": "88.62M",
               "train-full-ce-512": "119.51M", "train-full-ce-640": "151.12M", "train-full-ce-1024": "250.27M"},
    "lsmdc": {"train-full-concat-ablation": "150.63k", "train-full-moee-minus-moee-weights": "159.78M",
              "train-full-moee": "159.78M", "train-full-ce-ablation-dims": "114.48M", "train-full-ce": "116.86M",
              "train-full-ce-only-scene": "12.83M", "train-full-ce-only-scene-inst": "27.87M",
              "train-full-ce-only-scene-r2p1d": "26.69M", "train-full-ce-only-scene-rgb": "27.87M",
              "train-full-ce-only-scene-flow": "27.09M", "train-full-ce-only-scene-audio": "26.6M",
              "train-full-ce-only-scene-ocr": "33.23M", "train-full-ce-only-scene-speech": "27.46M",
              "train-full-ce-only-scene-face": "26.4M", "train-full-ce-only-scene-speech-audio": "38.86M",
              "train-full-ce-only-scene-speech-audio-flow": "50.75M",
              "train-full-ce-only-scene-speech-audio-flow-rgb": "63.43M",
              "train-full-ce-only-scene-speech-audio-flow-rgb-inst": "76.11M",
              "train-full-ce-only-scene-speech-audio-flow-rgb-inst-r2p1d": "87.61M",
              "train-full-ce-only-scene-speech-audio-flow-rgb-inst-r2p1d-ocr": "105.65M",
              f"train-full-ce-only-{ALL_EXPERTS}": "116.86M", "train-full-ce-384": "55.27M",
              "train-full-ce-512": "75.08M", "train-full-ce-640": "95.61M", "train-full-ce-1024": "161.52M"},
    "didemo": {"train-full-concat-ablation": "374.62k", "train-full-moee-minus-moee-weights": "107.26M",
               "train-full-moee": "107.26M", "train-full-ce-ablation-dims": "76.91M", "train-full-ce": "79.29M"},
    "msvd": {"train-full-concat-ablation": "314.8k", "train-full-moee-minus-moee-weights": "131.37M",
             "train-full-moee": "131.37M", "train-full-ce-ablation-dims": "81.67M", "train-full-ce": "84.04M",
             "train-full-ce-only-scene": "9.99M", "train-full-ce-only-scene-inst": "22.2M",
             "train-full-ce-only-scene-r2p1d": "21.02M", "train-full-ce-only-scene-rgb": "22.2M",
             "train-full-ce-only-scene-flow": "21.41M", "train-full-ce-only-scene-ocr": "37.95M",
             "train-full-ce-only-scene-face": "21.02M"},
    "activity-net": {"train-full-moee-minus-moee-weights": "330.42M", "train-full-moee": "330.42M",
                     "train-full-ce-ablation-dims": "258.3M", "train-full-ce": "260.68M",
                     "train-full-ce-only-scene": "25.97M", "train-full-ce-only-scene-inst": "54.13M",
                     "train-full-ce-only-scene-r2p1d": "52.95M", "train-full-ce-only-scene-rgb": "54.13M",
                     "train-full-ce-only-scene-flow": "53.35M", "train-full-ce-only-scene-audio": "53.15M",
                     "train-full-ce-only-scene-ocr": "62.73M", "train-full-ce-only-scene-speech": "75.66M",
                     "train-full-ce-only-scene-face": "52.95M"},
    "queryd": {"train-full-ce": "30.82M", "train-full-moee": "57.75M", "train-full-ce-only-scene": "7.51M",
               "train-full-ce-only-scene-inst": "17.25M", "train-full-ce-only-scene-r2p1d": "16.07M",
               "train-full-ce-only-scene-audio": "17.25M", "train-full-ce-only-scene-audio-inst": "24.63M",
               "train-full-ce-only-scene-audio-inst-r2p1d": "30.82M"},
    "querydsegments": {"train-full-ce": "30.82M", "train-full-moee": "57.75M"},
}

HYPERPARAMETERS = [
    ("msrvtt/train-full-ce.json", "loss.args.margin", 0.09381161988446174),
    ("msrvtt/train-full-ce.json", "optimizer", {"type": "Ranger", "args": {"lr": 0.1, "weight_decay": 0.001}}),
    ("msrvtt/train-full-ce.json", "lr_scheduler", {"type": "StepLR", "args": {"step_size": 1, "gamma": 0.95}}),
    ("msrvtt/train-full-ce.json", "data_loader.args.batch_size", 64),
    ("msrvtt/train-full-ce.json", "trainer.epochs", 100),
    ("msrvtt/train-full-ce.json", "arch.args.vlad_clusters", {"ocr": 43, "text": 28, "audio": 8, "speech": 19}),
    ("msrvtt/train-full-ce.json", "eval_settings.data_loader.args",
     {"split_name": "full-test", "num_test_captions": 20}),
    ("msrvtt/train-full-moee.json", "loss.args.margin", 0.12638433919050676),
    ("msrvtt/train-full-moee.json", "data_loader.args.max_tokens", {"ocr": 3, "text": 19, "audio": 17, "speech": 32}),
    ("msrvtt/train-full-concat-ablation.json", "arch.args.concat_zero_pad_bug", True),
    ("msrvtt/train-jsfusion-ce.json", "trainer.monitor", "off"),
    ("msrvtt/train-jsfusion-ce.json", "eval_settings.data_loader.args.split_name", "jsfusion"),
    ("msrvtt/train-miech-ce.json", "experts.face_dim", 128),
    ("msrvtt/train-miech-ce.json", "experts.text_feat", "w2v"),
    ("msvd/train-full-ce.json", "optimizer.args", {"lr": 0.01, "weight_decay": 5e-05}),
    ("msvd/train-full-ce.json", "data_loader.args.batch_size", 16),
    ("msvd/train-full-ce.json", "trainer.epochs", 300),
    ("msvd/train-full-ce.json", "eval_settings.data_loader.args", {"split_name": "official", "num_test_captions": 81}),
    ("lsmdc/train-full-ce.json", "optimizer.args.lr", 0.01),
    ("lsmdc/train-full-ce.json", "data_loader.args.batch_size", 256),
    ("lsmdc/train-full-ce.json", "trainer.epochs", 15),
    ("lsmdc/train-full-ce.json", "loss.args.margin", 0.12132983763957966),
    ("didemo/train-full-ce.json", "trainer.epochs", 30),
    ("didemo/train-full-ce.json", "loss.args.margin", 0.16642835966287484),
    ("didemo/train-full-ce.json", "eval_settings.data_loader.args.split_name", "test"),
    ("activity-net/train-full-ce.json", "trainer.epochs", 150),
    ("activity-net/train-full-ce.json", "data_loader.args.batch_size", 32),
    ("activity-net/train-full-ce.json", "loss.args.margin", 0.060496613740311816),
    ("activity-net/train-full-ce.json", "eval_settings.data_loader.args.split_name", "val1"),
    ("queryd/train-full-ce.json", "trainer.epochs", 20),
    ("queryd/train-full-ce.json", "optimizer.args.lr", 0.01),
    ("querydsegments/train-full-ce.json", "loss.args.margin", 0.2),
    ("youcook2/train-full-ce.json", "experts.ce_shared_dim", 512),
    ("msrvtt/train-full-ce-refined.json", "experts.modalities",
     ["scene.densenet161.0", "speech", "audio", "r2p1d.r2p1d-ig65m-kinetics.0", "imagenet.senet154.0",
      "r2p1d.r2p1d-ig65m.0", "imagenet.resnext101_32x48d.0"]),
    ("msvd/train-gpt2-xl-finetuned-adam.json", "optimizer",
     {"type": "RAdam", "args": {"lr": 0.001, "weight_decay": 1e-05, "decoupled_weight_decay": True}}),
    ("lsmdc/train-gpt2-xl-finetuned-mte-adam.json", "distil_params",
     {"base_path": "teachers/", "teachers": ["train-full-ce-refined-text-w2v.pkl", "train-full-ce-refined-text-gpt2-xl.pkl",
                                             "train-full-ce-refined-text-gpt2-xl-finetuned.pkl"]}),
    ("msrvtt/train-gpt2-xl-finetuned-mte-denoising-adam-less80.json", "training_file",
     "denoising_masks/denoise-less80.txt"),
]


GENERIC_PARENT = CONFIGS / "base_config.json"  # trainer, loss and optimiser defaults only
CHALLENGE_PARENT = CONFIGS / "cvpr2020-challenge" / "base_config.json"  # everything but the dataset


def config_files() -> list[str]:
    paths = (path for path in sorted(CONFIGS.rglob("*.json")) if path not in (SHARED_DEFAULTS, GENERIC_PARENT, CHALLENGE_PARENT))
    return [str(path.relative_to(CONFIGS)) for path in paths]


def lookup(tree: dict, keypath: str):
    for part in keypath.split("."):
        tree = tree[part]
    return tree


def trainable(config_path: str) -> int:
    with torch.device("meta"):
        return count_trainable(build_model(load_config(CONFIGS / config_path)))


def as_published(count: int) -> str:
    value, unit = (count / 1e6, "M") if count >= 1e6 else (count / 1e3, "k")
    return f"{value:.2f}".rstrip("0").rstrip(".") + unit


@pytest.mark.parametrize("name", config_files())
def test_config_and_its_test_settings_validate(name):
    with_eval_settings(load_config(CONFIGS / name))


def test_the_generic_parent_alone_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"base_config\.json: arch: missing required section"):
        load_config(GENERIC_PARENT)


def test_the_challenge_parent_alone_names_the_missing_dataset():
    with pytest.raises(ConfigError, match=r"data_loader\.args\.dataset_name: missing required key"):
        load_config(CHALLENGE_PARENT)


def test_shared_defaults_resolve():
    data, _ = resolve(SHARED_DEFAULTS)
    assert data["optimizer"]["type"] == "Ranger"


@pytest.mark.parametrize("name, count", DRY_RUN_COUNTS.items())
def test_msrvtt_ablation_counts_are_the_published_ones(name, count):
    assert trainable(name) == count


@pytest.mark.slow
@pytest.mark.parametrize("name, count", [("train-full-ce", "183,448,607"),
                                         ("train-gpt2-xl-finetuned-adam", "262,731,071")])
def test_dry_run_prints_the_count(name, count):
    result = subprocess.run([sys.executable, "train.py", "--config", f"configs/msrvtt/{name}.json", "--dry_run"],
                            cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == f"Trainable parameters: {count}"


TEACHTEXT_CONFIGS = [name for name in config_files()
                     if "gpt2" in name or "refined" in name or "mte" in name or "teachtext" in name or "ce-plus" in name]


@pytest.mark.parametrize("name", TEACHTEXT_CONFIGS)
def test_teachtext_configs_build_their_model(name):
    assert trainable(name) > 0


@pytest.mark.parametrize("dataset", PUBLISHED_PARAMS)
def test_params_column_of_the_published_tables(dataset):
    got = {name: as_published(trainable(f"{dataset}/{name}.json")) for name in PUBLISHED_PARAMS[dataset]}
    assert got == PUBLISHED_PARAMS[dataset]


@pytest.mark.parametrize("name, keypath, expected", HYPERPARAMETERS)
def test_hyperparameters_are_the_originals(name, keypath, expected):
    assert lookup(load_config(CONFIGS / name).data, keypath) == expected


@pytest.mark.parametrize("name", [name for name in config_files() if "/" in name])
def test_every_used_expert_has_its_feature_dims(name):
    config = load_config(CONFIGS / name)
    aggregation = config["data_loader"]["args"]["feat_aggregation"]
    for expert in used_experts(config["experts"]):
        dims = aggregation[expert]["feat_dims"][aggregation[expert]["type"]]
        if expert == "face":
            assert dims == config["experts"]["face_dim"]
