"""Configs written by the original trainer load through load_config and validate."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
from conftest import REPO, reference_path

from trainer.build import build_data, build_model, build_optimizer
from utils.config.load import from_original_dict, load_config, with_eval_settings
from utils.errors import ConfigError
from utils.original.config import DROPPED, is_original_config
from utils.summary import count_trainable

SMALL_CE_PARAMS = 411_731  # the reduced-dims CE twin of the reference data


def original() -> dict:
    return json.loads(reference_path("checkpoint", "ce_small_config.json").read_text())


def write(tmp_path: Path, data: dict, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def has_keypath(tree: dict, keypath: str) -> bool:
    node = tree
    for part in keypath.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_reference_config_loads_validates_and_builds_the_small_twin():
    config = load_config(reference_path("checkpoint", "ce_small_config.json"))
    assert config["trainer"]["eval_every"] == 1
    assert config["visualizer"] == {"type": "RankingPage",
                                    "args": {"num_queries": 100, "src_video_dir": "data/MSRVTT/videos/all"}}
    assert config["optimizer"] == {"type": "Ranger", "args": {"lr": 0.1, "weight_decay": 0.001}}
    assert config["data_loader"]["args"]["root_feat_folder"] == "high-quality/structured-symlinks"
    assert config["eval_settings"] == {"data_loader": {"args": {"split_name": "full-test", "num_test_captions": 20}}}
    assert with_eval_settings(config)["data_loader"]["args"]["split_name"] == "full-test"
    with torch.device("meta"):
        assert count_trainable(build_model(config)) == SMALL_CE_PARAMS


def test_dropped_keys_do_not_reach_the_validated_config():
    config = load_config(reference_path("checkpoint", "ce_small_config.json"))
    for tree in (config.data, config["eval_settings"]):
        for keypath in DROPPED:
            assert not has_keypath(tree, keypath), keypath
    assert "val_freq" not in config["trainer"]
    assert "eval_config" not in config.data and "inherit_from" not in config.data


@pytest.mark.parametrize("keypath, value", [
    ("data_loader.args.text_dropout", 0.3),
    ("data_loader.args.trn_cat", 1),
    ("task", "classification"),
    ("eval_mode", "leaderboard"),
    ("trainer.early_stop", 0),
    ("eval_settings.data_loader.args.text_dropout", 0.5),
])
def test_an_unsupported_value_is_a_one_line_error_naming_the_key(tmp_path, keypath, value):
    data = original()
    *parents, last = keypath.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    message = str(info.value)
    assert f": {keypath}: {json.dumps(value)} is not supported here (" in message
    assert "\n" not in message


def test_teachtext_keys_are_kept_with_their_meaning(tmp_path):
    data = original()
    teachers = {"base_path": "teachers/", "teachers": ["train-full-ce-refined-text-w2v.pkl"]}
    data.update(distil_loss=True, distil_params=teachers, caption_masks="denoising_masks/denoise-less80.pkl",
                training_file="denoising_masks/denoise-less80.txt")
    data["optimizer"] = {"type": "RAdam", "args": {"lr": 0.001, "weight_decay": 1e-05}}
    config = load_config(write(tmp_path, data))
    assert config["distil_loss"] is True and config["distil_params"] == teachers
    assert config["caption_masks"] == "denoising_masks/denoise-less80.pkl"
    assert config["training_file"] == "denoising_masks/denoise-less80.txt"
    assert config["optimizer"]["args"]["decoupled_weight_decay"] is True


def test_restricted_training_captions_reach_the_loader(tmp_path):
    data = original()
    data["data_loader"]["args"]["restrict_train_captions"] = 1
    assert load_config(write(tmp_path, data))["data_loader"]["args"]["restrict_train_captions"] == 1


def test_temporal_relation_segments_are_refused(tmp_path):
    data = original()
    data["data_loader"]["args"]["feat_aggregation"]["i3d.i3d.0"]["trn_seg"] = 8
    with pytest.raises(ConfigError, match=r"feat_aggregation\.i3d\.i3d\.0\.trn_seg: temporal relation"):
        load_config(write(tmp_path, data))


def test_value_free_and_harmless_keys_are_dropped(tmp_path):
    data = original()
    data["data_loader"]["args"].update(num_workers=8, refresh_lru_cache=True, fuse_captions=False)
    data["trainer"].update(skip_first_n_saves=20, include_optim_in_ckpts=0, save_only_best=False, early_stop=10)
    data.update(task="retrieval", distil_params=None, force_cpu_val=True)
    data["experts"]["text_dim"] = 300  # never read by the original: the text dim follows text_feat
    config = load_config(write(tmp_path, data))
    assert set(config["data_loader"]["args"]) == {"batch_size", "root_feat_folder", "feat_aggregation", "dataset_name",
                                                  "data_dir", "split_name", "num_test_captions", "max_tokens",
                                                  "fuse_captions"}
    assert set(config["trainer"]) == {"save_dir", "save_period", "eval_every", "verbosity", "tensorboard", "monitor",
                                      "epochs"}
    assert not {"task", "distil_params", "force_cpu_val"} & set(config.data)


def test_challenge_mode_is_kept(tmp_path):
    data = original()
    data["challenge_mode"] = True
    data["data_loader"]["args"]["challenge_test_root_feat_folder"] = "challenge-release-2"
    config = load_config(write(tmp_path, data))
    assert config["challenge_mode"] is True
    assert config["data_loader"]["args"]["challenge_test_root_feat_folder"] == "challenge-release-2"


@pytest.mark.slow
def test_fused_captions_must_agree_with_the_dataset(tmp_path):
    data = original()
    data["data_loader"]["args"]["fuse_captions"] = True
    config = load_config(write(tmp_path, data))
    with pytest.raises(ConfigError, match="data_loader.args.fuse_captions: true is not supported for MSRVTT"):
        build_data(config)


def test_fixed_epoch_runs_test_their_last_epoch_on_their_own_split(tmp_path):
    data = original()
    data.update(eval_mode="fixed_num_epochs", eval_settings=False)
    data["data_loader"]["args"]["split_name"] = "jsfusion"
    config = load_config(write(tmp_path, data))
    assert config["trainer"]["monitor"] == "off"
    assert "eval_settings" not in config.data
    assert with_eval_settings(config)["data_loader"]["args"]["split_name"] == "jsfusion"


RADAM_DECOUPLES = "decoupled_weight_decay" in inspect.signature(torch.optim.RAdam).parameters


@pytest.mark.skipif(not RADAM_DECOUPLES, reason="torch.optim.RAdam decouples weight decay from torch 2.2")
def test_mapped_sections(tmp_path):
    data = original()
    data["optimizer"] = {"type": "RAdam", "args": {"lr": 0.001, "weight_decay": 1e-5}}
    data["visualizer"]["args"]["num_samples"] = 5000
    data["arch"]["args"].update(use_ce="", concat_experts=True)
    config = load_config(write(tmp_path, data))
    assert config["optimizer"]["args"] == {"lr": 0.001, "weight_decay": 1e-5, "decoupled_weight_decay": True}
    assert config["visualizer"]["args"] == {"num_queries": 100, "src_video_dir": "data/MSRVTT/videos/all"}
    assert config["arch"]["args"]["concat_zero_pad_bug"] is True


def test_radam_without_decoupled_decay_is_a_one_line_error(tmp_path, monkeypatch):
    class OldRAdam(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
            super().__init__(params, {"lr": lr})

    monkeypatch.setattr(torch.optim, "RAdam", OldRAdam)
    data = original()
    data["optimizer"] = {"type": "RAdam", "args": {"lr": 0.001, "weight_decay": 1e-5}}
    with pytest.raises(ConfigError, match=r"config.json: optimizer: the original's RAdam decays weights "
                                          r"decoupled, which torch.optim.RAdam does from torch 2.2 on"):
        load_config(write(tmp_path, data))


def test_inherit_from_of_an_original_config_is_not_followed(tmp_path):
    data = original()
    data["inherit_from"] = "configs/does/not/exist.json"
    assert load_config(write(tmp_path, data))["experts"]["face_dim"] == 24


def test_a_project_config_may_inherit_from_an_original_one(tmp_path):
    parent = write(tmp_path, original(), "original.json")
    child = write(tmp_path, {"inherit_from": str(parent), "trainer": {"epochs": 7}}, "child.json")
    config = load_config(child, ["optimizer.args.lr=0.01"])
    assert config["trainer"]["epochs"] == 7 and config["trainer"]["eval_every"] == 1
    assert config["optimizer"]["args"]["lr"] == 0.01
    assert config.where("experts.face_dim") == str(parent)


def test_detection_tells_original_configs_from_project_configs():
    assert is_original_config(original())
    for path in sorted((REPO / "configs").rglob("*.json")):
        assert not is_original_config(json.loads(path.read_text())), path


def test_an_original_checkpoint_resumes_with_its_own_config_and_ranger_state():
    from trainer.checkpoints.original import load_original_checkpoint

    path = reference_path("checkpoint", "ce_small_checkpoint-epoch3.pth")
    checkpoint = load_original_checkpoint(path)
    config = from_original_dict(checkpoint["config"], path)
    model = build_model(config)
    model.load_state_dict(checkpoint["state_dict"])
    optimizer, _ = build_optimizer(config, model)
    optimizer.load_state_dict(checkpoint["optimizer"])
    step = optimizer.state_dict()["state"][0]["step"]
    params = [p for p in model.parameters() if p.requires_grad]
    for _ in range(-step % optimizer.param_groups[0]["k"]):  # up to the next Lookahead sync
        for p in params:
            p.grad = torch.full_like(p, 1e-3)
        optimizer.step()
    for p in params:
        assert torch.equal(p, optimizer.state[p]["slow_buffer"])
