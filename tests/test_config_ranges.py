"""Configuration ranges: every numeric key within its meaningful range, no NaN or infinity in any
float key, no YAML aliases, and ``--set`` mistakes blamed on ``--set`` (utils/config/)."""
from __future__ import annotations

import json

import pytest
from conftest import REPO

from utils.config.load import load_config
from utils.config.options import AtLeast, Bounds
from utils.errors import ConfigError

CE = REPO / "configs" / "synthetic" / "train-ce.json"
RANP = REPO / "configs" / "synthetic" / "train-ce-ranp.json"

OUT_OF_RANGE = [
    (RANP, "loss.args.threshold_pos=0", r"loss.args.threshold_pos: expected float in \(0, 1\], got 0"),
    (RANP, "loss.args.threshold_pos=-1", r"loss.args.threshold_pos: expected float in \(0, 1\], got -1"),
    (RANP, "loss.args.threshold_pos=1.5", r"loss.args.threshold_pos: expected float in \(0, 1\], got 1.5"),
    (RANP, "loss.args.threshold_pos=NaN", r"loss.args.threshold_pos: expected float, got NaN"),
    (CE, "distil_params.distil_weight=-5", r"distil_params.distil_weight: expected float >= 0, got -5"),
    (CE, "distil_params.distil_weight=NaN", r"distil_params.distil_weight: expected float, got NaN"),
    (CE, 'data_loader.args.max_tokens={"text": 0}', r"data_loader.args.max_tokens: expected dict"),
    (CE, "optimizer.args.lr=-1", r"optimizer.args.lr: expected .* > 0, got -1"),
    (CE, "optimizer.args.lr=0", r"optimizer.args.lr: expected .* > 0, got 0"),
    (CE, "optimizer.args.lr=NaN", r"optimizer.args.lr: expected .*, got NaN"),
    (CE, "lr_scheduler.args.step_size=0", r"lr_scheduler.args.step_size: expected int >= 1, got 0"),
    (CE, "seed=100000000000000000000000", r"seed: expected int in \[-9.22337e\+18, 1.84467e\+19\]"),
    (CE, "trainer.save_dir=", r"trainer.save_dir: expected str non-empty"),
    (CE, "loss.args.margin=Infinity", r"loss.args.margin: expected float, got Infinity"),
    (CE, "loss.args.margin=-Infinity", r"loss.args.margin: expected float, got -Infinity"),
]


@pytest.mark.parametrize("config, override, message", OUT_OF_RANGE)
def test_out_of_range_values_are_one_line_naming_set(config, override, message):
    with pytest.raises(ConfigError, match=rf"^--set: {message}"):
        load_config(config, [override])


def test_in_range_values_pass():
    config = load_config(RANP, ["loss.args.threshold_pos=1", "distil_params.distil_weight=0", "seed=-1",
                                'data_loader.args.max_tokens={"text": 1}', "optimizer.args.lr=1e-9"])
    assert config["loss"]["args"]["threshold_pos"] == 1


def test_bounds_describe_and_contain():
    half_open = Bounds(0, 1, low_open=True)
    assert half_open.describe() == "in (0, 1]" and not half_open.contains(0) and half_open.contains(1)
    assert AtLeast(1).describe() == ">= 1" and AtLeast(1).contains(1) and not AtLeast(1).contains(0.5)
    assert Bounds(high=3, high_open=True).describe() == "< 3"


def test_non_finite_float_in_a_file_names_the_file(tmp_path):
    child = tmp_path / "child.json"
    child.write_text(json.dumps({"inherit_from": str(CE), "loss": {"args": {"margin": float("nan")}}}))
    with pytest.raises(ConfigError, match=rf"^{child}: loss.args.margin: expected float, got NaN"):
        load_config(child)


def test_yaml_aliases_are_refused_at_load(tmp_path):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    bomb += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]" for i in range(8)]
    path = tmp_path / "bomb.yaml"
    path.write_text(f"inherit_from: {CE}\ndata_loader:\n  args:\n    feat_aggregation:\n"
                    + "".join(f"      {line}\n" for line in bomb))
    with pytest.raises(ConfigError, match=r"bomb.yaml: malformed YAML at line 6 column \d+: aliases"):
        load_config(path)


def test_anchor_without_alias_is_fine(tmp_path):
    path = tmp_path / "anchor.yaml"
    path.write_text(f"inherit_from: {CE}\nseed: &s 4\n")
    assert load_config(path)["seed"] == 4


@pytest.mark.parametrize("override", ["..=1", "trainer..epochs=1", "trainer.=3", ".seed=1"])
def test_set_with_an_empty_key_blames_set(override):
    with pytest.raises(ConfigError, match=rf"^--set {override.replace('.', '[.]')}: empty key name"):
        load_config(CE, [override])


def test_required_section_set_to_null_is_one_line():
    with pytest.raises(ConfigError, match=r"^--set: arch: missing required section"):
        load_config(CE, ["arch=null"])


def test_deeply_nested_json_is_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)
