"""Tests for trainer/checkpoints/original.py: safe reading of checkpoints written by the original CE trainer."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import pickle
import subprocess
import sys
import types
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy
import pytest
import torch
from conftest import REPO, reference_path

from model.ce import CENet
from model.ce_config import CEConfig
from model.dims import model_inputs
from trainer.checkpoints.files import CheckpointError, load_any_checkpoint, load_checkpoint, save_checkpoint
from trainer.checkpoints.original import DEPRECATED_KEYS, convert_state_dict, load_original_checkpoint
from trainer.checkpoints.safe_load import ALLOWED_GLOBALS, OriginalConfig

CHECKPOINT = ("checkpoint", "ce_small_checkpoint-epoch3.pth")


@pytest.fixture(scope="module")
def original() -> dict:
    return load_original_checkpoint(reference_path(*CHECKPOINT))


def build_net(config: dict) -> CENet:
    """CENet from an original config dict alone (every arch arg is accepted as is)."""
    return CENet(CEConfig(**config["arch"]["args"], **model_inputs(config)))


def assert_refused(path: Path, global_name: str) -> None:
    with pytest.raises(CheckpointError) as info:
        load_original_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and global_name in message


# --------------------------------------------------------------- (a) the reference file
def test_reference_checkpoint_is_shipped_with_the_tests():
    assert reference_path(*CHECKPOINT) == REPO / "tests" / "data" / "reference" / Path(*CHECKPOINT)


def test_reference_checkpoint_loads(original):
    assert original["epoch"] == 3 and original["arch"] == "CENet"
    assert isinstance(original["monitor_best"], float)
    assert original["monitor_best"] == pytest.approx(97.9586, abs=1e-4)
    assert isinstance(original["state_dict"], OrderedDict) and len(original["state_dict"]) == 253
    assert all(isinstance(value, torch.Tensor) for value in original["state_dict"].values())
    config = original["config"]
    assert config["arch"]["type"] == "CENet" and config["experts"]["text_feat"] == "electra"
    assert len(original["optimizer"]["state"]) == 154


def test_reference_config_is_the_saved_config_json(original):
    """The pickled config equals config.json plus the flag train.py adds at run time."""
    saved = json.loads(reference_path("checkpoint", "ce_small_config.json").read_text())
    config = json.loads(json.dumps(original["config"]))
    assert config["data_loader"]["args"].pop("refresh_lru_cache") is False
    assert config == saved


def test_loading_leaves_no_global_state(original):
    assert "parse_config" not in sys.modules
    if hasattr(torch.serialization, "get_safe_globals"):
        assert OriginalConfig not in torch.serialization.get_safe_globals()


# ------------------------------------------------- (b) rebuild CENet from the config alone
def test_cenet_from_config_loads_strictly_and_runs(original):
    net = build_net(original["config"])
    result = net.load_state_dict(original["state_dict"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    batch = torch.load(reference_path("model", "A_small_train-full-ce_inputs.pth"), weights_only=True)
    with torch.no_grad():
        out = net.eval()(experts=batch["experts"], ind=batch["ind"], text=batch["text"],
                         text_token_mask=batch["text_token_mask"])
    sims = out["cross_view_conf_matrix"]
    num_videos, num_caps = batch["text"].shape[:2]
    assert sims.shape == (num_videos * num_caps, num_videos)
    assert torch.isfinite(sims).all()


def test_loading_is_strict(original):
    net = build_net(original["config"])
    extra = OrderedDict(original["state_dict"], **{"ce.moe_cg.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="Unexpected key"):
        net.load_state_dict(extra, strict=True)


# ------------------------------------------------------------- (c) crafted checkpoints
class _Reduces:
    """Pickles as a call of ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.fixture(params=["safe_globals", "allow_list_unpickler"])
def torch_loader(request, monkeypatch) -> str:
    """Run a test with torch's safe_globals (torch >= 2.5) and with the fallback for older torch."""
    if request.param == "allow_list_unpickler":
        monkeypatch.delattr(torch.serialization, "safe_globals", raising=False)
    elif not hasattr(torch.serialization, "safe_globals"):
        pytest.skip("torch < 2.5 has no safe_globals")
    return request.param


def test_both_loaders_read_the_reference_checkpoint_alike(original, monkeypatch):
    monkeypatch.delattr(torch.serialization, "safe_globals", raising=False)
    fallback = load_original_checkpoint(reference_path(*CHECKPOINT))
    assert fallback.keys() == original.keys() and fallback["config"] == original["config"]
    assert fallback["monitor_best"] == original["monitor_best"] and fallback["epoch"] == original["epoch"]
    for key, value in original["state_dict"].items():
        assert torch.equal(fallback["state_dict"][key], value), key
    assert len(fallback["optimizer"]["state"]) == len(original["optimizer"]["state"])


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_os_system_is_refused_and_never_runs(tmp_path, legacy, torch_loader):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "epoch": _Reduces(os.system, f"touch {marker}")}, path,
               _use_new_zipfile_serialization=not legacy)
    assert_refused(path, "system")
    assert not marker.exists()


@pytest.mark.parametrize("func, args, name", [
    (eval, ("1 + 1",), "builtins.eval"),
    (subprocess.Popen, (["true"],), "Popen"),
    (numpy.frombuffer, (b"\0" * 8,), "frombuffer"),
], ids=["eval", "popen", "numpy-function"])
def test_other_globals_are_refused(tmp_path, func, args, name, torch_loader):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "config": _Reduces(func, *args)}, path)
    assert_refused(path, name)


def test_unreadable_files_raise_one_line_errors(tmp_path, torch_loader):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    for path in (garbage, tmp_path / "absent.pth"):
        with pytest.raises(CheckpointError, match=str(path)) as info:
            load_original_checkpoint(path)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("load", [load_checkpoint, load_original_checkpoint, load_any_checkpoint])
def test_a_plain_pickle_gets_the_projects_own_line(tmp_path, torch_loader, load, protocol):
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"state_dict": {"w": [1.0, 2.0]}, "epoch": 3}, protocol=protocol))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's own warnings about the file are not shown either
        with pytest.raises(CheckpointError) as info:
            load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a PyTorch checkpoint") and "torch.save" in message
    assert "\n" not in message and "issue" not in message


# -------------------------------------------- (d) DataParallel prefixes, deprecated keys
def test_convert_state_dict_strips_prefix_and_drops_deprecated_keys():
    weight = torch.ones(2)
    state = OrderedDict([("module.ce.moe_fc.weight", weight), ("module.ce.moe_cg.bias", weight),
                         ("ce.moe_fc_proj.weight", weight), ("text_pooling.module.x", weight)])
    converted = convert_state_dict(state)
    assert list(converted) == ["ce.moe_fc.weight", "text_pooling.module.x"]
    assert converted["ce.moe_fc.weight"] is weight
    assert len(DEPRECATED_KEYS) == 6


@pytest.fixture()
def fake_parse_config(monkeypatch) -> type:
    """A class that pickles as ``parse_config.ConfigParser``, like the original trainer's."""
    module = types.ModuleType("parse_config")

    class ConfigParser:
        pass

    ConfigParser.__module__, ConfigParser.__qualname__ = "parse_config", "ConfigParser"
    module.ConfigParser = ConfigParser
    monkeypatch.setitem(sys.modules, "parse_config", module)
    return ConfigParser


def test_data_parallel_checkpoint_with_deprecated_keys_loads(tmp_path, original, fake_parse_config):
    config = fake_parse_config()
    config.__dict__.update(_config={**original["config"], "save_dir": pathlib.PosixPath("/runs")},
                           _args=argparse.Namespace(config=pathlib.PosixPath("a.json")),
                           cfg_fname=pathlib.PosixPath("a.json"), log_levels={0: 30})
    state_dict = OrderedDict((f"module.{key}", value) for key, value in original["state_dict"].items())
    state_dict.update({f"module.{key}": torch.zeros(3) for key in sorted(DEPRECATED_KEYS)})
    path = tmp_path / "trained_model.pth"
    torch.save({"arch": "DataParallel", "epoch": 7, "state_dict": state_dict,
                "monitor_best": numpy.float64(12.5), "config": config}, path)

    loaded = load_original_checkpoint(path)
    assert loaded["arch"] == "DataParallel" and loaded["epoch"] == 7
    assert loaded["monitor_best"] == 12.5 and loaded["optimizer"] is None
    assert loaded["config"]["save_dir"] == "/runs"
    build_net(loaded["config"]).load_state_dict(loaded["state_dict"], strict=True)


# ------------------------------------------------------ (e) this project's own format
def test_own_checkpoints_load_through_load_any_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "trained_model.pth",
                           {"epoch": 2, "state_dict": OrderedDict(w=torch.arange(3.0)),
                            "monitor_best": 1.5, "config": {"arch": {"type": "CENet"}}})
    loaded = load_any_checkpoint(path)
    expected = load_checkpoint(path)
    assert loaded.keys() == expected.keys()
    assert loaded["epoch"] == 2 and loaded["config"] == expected["config"]
    torch.testing.assert_close(loaded["state_dict"]["w"], expected["state_dict"]["w"])


def test_load_any_checkpoint_converts_original_files(original):
    loaded = load_any_checkpoint(reference_path(*CHECKPOINT))
    assert loaded.keys() == original.keys() and loaded["epoch"] == original["epoch"]
    assert list(loaded["state_dict"]) == list(original["state_dict"])


def test_allow_list_is_exactly_the_documented_one():
    names = {entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"
             for entry in ALLOWED_GLOBALS}
    numpy_dtype_classes = {f"{type(numpy.dtype(n)).__module__}.{type(numpy.dtype(n)).__qualname__}"
                           for n in ("float16", "float32", "float64", "int32", "int64", "bool")}
    assert names == {"collections.OrderedDict", "parse_config.ConfigParser", "argparse.Namespace",
                     "pathlib.PosixPath", "pathlib.PurePosixPath", "pathlib.WindowsPath",
                     "pathlib.PureWindowsPath", "numpy.core.multiarray.scalar",
                     "numpy._core.multiarray.scalar", "numpy.dtype"} | numpy_dtype_classes
