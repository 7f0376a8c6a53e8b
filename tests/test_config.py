"""Config loading: inheritance merge, --set overrides, validation errors naming file and key."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO

from utils.config.load import load_config, resolve, with_eval_settings
from utils.errors import ConfigError

TRAIN_CE = REPO / "configs" / "synthetic" / "train-ce.json"


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_inherit_merges_dicts_child_wins_and_replaces_lists(tmp_path):
    base = write(tmp_path / "base.json", {"a": {"x": 1, "y": [1, 2, 3]}, "b": 1})
    child = write(tmp_path / "child.json", {"inherit_from": str(base), "a": {"y": [9]}, "c": 2})
    data, origin = resolve(child)
    assert data == {"a": {"x": 1, "y": [9]}, "b": 1, "c": 2}
    assert origin["a.y"] == str(child) and origin["a.x"] == str(base)


def test_a_section_of_another_type_replaces_the_parents_section(tmp_path):
    base = write(tmp_path / "base.json", {"loss": {"type": "A", "args": {"margin": 1, "fix_norm": True}},
                                         "opt": {"type": "B", "args": {"lr": 1, "wd": 2}}})
    child = write(tmp_path / "child.json", {"inherit_from": str(base), "loss": {"type": "C", "args": {"t": 3}},
                                            "opt": {"type": "B", "args": {"lr": 5}}})
    data, origin = resolve(child)
    assert data == {"loss": {"type": "C", "args": {"t": 3}}, "opt": {"type": "B", "args": {"lr": 5, "wd": 2}}}
    assert "loss.args.margin" not in origin and origin["loss.args.t"] == str(child)


def test_multiple_parents_merge_left_to_right_relative_to_config_folder(tmp_path):
    write(tmp_path / "p1.json", {"k": 1, "only1": True})
    write(tmp_path / "p2.json", {"k": 2})
    child = write(tmp_path / "child.json", {"inherit_from": "p1.json,p2.json"})
    data, _ = resolve(child)
    assert data == {"k": 2, "only1": True}


def test_inheritance_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.json", {"inherit_from": "b.json"})
    write(tmp_path / "b.json", {"inherit_from": "a.json"})
    with pytest.raises(ConfigError, match="cycle"):
        resolve(tmp_path / "a.json")


def test_shipped_config_loads_and_set_overrides_parse_json(tmp_path):
    config = load_config(TRAIN_CE, ["trainer.epochs=3", "optimizer.args.lr=1e-3", "trainer.save_dir=" + str(tmp_path)])
    assert config["trainer"]["epochs"] == 3
    assert config["optimizer"]["args"]["lr"] == pytest.approx(1e-3)
    assert config["trainer"]["save_dir"] == str(tmp_path)
    assert config.where("trainer.epochs") == "--set"
    assert "inherit_from" not in config.data


@pytest.mark.parametrize("override, fragment", [
    (["trainer.epochz=3"], "trainer.epochz: unknown key"),
    (["trainer.epochs=three"], "trainer.epochs: expected int, got \"three\""),
    (["arch.args.vlad_clusterz={}"], "arch.args.vlad_clusterz: unknown key"),
    (["arch.type=NoSuchNet"], "arch.type: unknown model \"NoSuchNet\""),
    (["optimizer.type=Adamm"], "optimizer.type: unknown optimizer"),
    (["metrics=[\"t2v_metrics\",\"r2d2\"]"], "unknown metric 'r2d2'"),
    (["bogus=1"], "bogus: unknown key"),
    (["experts.ce_shared_dim=1.5"], "experts.ce_shared_dim: expected int"),
])
def test_validation_errors_name_the_key_and_expectation(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(TRAIN_CE, override)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_error_names_the_file_that_set_the_key(tmp_path):
    child = write(tmp_path / "child.json", {"inherit_from": str(TRAIN_CE), "trainer": {"epochs": "many"}})
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'child.json'}: trainer.epochs: expected int"):
        load_config(child)


def test_malformed_json_and_missing_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,,}')
    with pytest.raises(ConfigError, match=r"bad.json: malformed JSON at line 1 column"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.json")
    child = write(tmp_path / "c.json", {"inherit_from": "missing-parent.json"})
    with pytest.raises(ConfigError, match="parent config 'missing-parent.json' not found"):
        load_config(child)


def test_program_injected_args_are_rejected_in_config():
    with pytest.raises(ConfigError, match="arch.args.text_dim: is set by the program"):
        load_config(TRAIN_CE, ["arch.args.text_dim=5"])


def test_eval_settings_merge_into_a_validated_copy():
    config = load_config(TRAIN_CE, ['eval_settings={"data_loader": {"args": {"num_test_captions": 3}}}'])
    merged = with_eval_settings(config)
    assert merged["data_loader"]["args"]["num_test_captions"] == 3
    assert config["data_loader"]["args"]["num_test_captions"] == 20


def test_a_yaml_config_equals_its_json_twin(tmp_path):
    yaml_path = tmp_path / "train-ce.yaml"
    yaml_path.write_text(f"inherit_from: {TRAIN_CE}\ntrainer:\n  epochs: 2\n")
    from_yaml = load_config(yaml_path)
    from_json = load_config(TRAIN_CE, ["trainer.epochs=2"])
    assert from_yaml.data == from_json.data
    bad = tmp_path / "bad.yml"
    bad.write_text("trainer: [1,\n")
    with pytest.raises(ConfigError, match=r"bad\.yml: malformed YAML at line"):
        load_config(bad)


@pytest.mark.parametrize("override, expected", [
    ("data_loader.args.batch_size=1", "data_loader.args.batch_size: expected int >= 2, got 1"),
    ("data_loader.args.batch_size=0", "data_loader.args.batch_size: expected int >= 2, got 0"),
    ("data_loader.args.batch_size=-4", "data_loader.args.batch_size: expected int >= 2, got -4"),
    ("trainer.epochs=0", "trainer.epochs: expected int >= 1, got 0"),
    ("trainer.epochs=-3", "trainer.epochs: expected int >= 1, got -3"),
    ("trainer.save_period=0", "trainer.save_period: expected int >= 1, got 0"),
    ("trainer.eval_every=0", "trainer.eval_every: expected int >= 1, got 0"),
    ("trainer.eval_chunk_videos=0", "trainer.eval_chunk_videos: expected int >= 1, got 0"),
    ("visualizer.args.top_k=0", "visualizer.args.top_k: expected int >= 1, got 0"),
])
def test_values_out_of_range_stop_before_any_work(override, expected):
    with pytest.raises(ConfigError) as info:
        load_config(TRAIN_CE, [override])
    assert str(info.value) == f"--set: {expected}"


def test_a_very_deep_inheritance_chain_is_one_line(tmp_path):
    write(tmp_path / "c0.json", {"seed": 1})
    for n in range(1, 1200):
        write(tmp_path / f"c{n}.json", {"inherit_from": f"c{n - 1}.json"})
    with pytest.raises(ConfigError, match="inherit_from: more than 32 levels of parents"):
        load_config(tmp_path / "c1199.json")
