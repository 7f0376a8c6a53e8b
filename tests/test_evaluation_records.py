"""Results are never overwritten without a trace: test.py with a changed config or another checkpoint
writes beside the run's metrics.json, records its command and changes, and the run page links it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, load_script, run, settings

from utils.config.resolved import Config

train_cli, test_cli = load_script("train"), load_script("test")
CONFIG = str(REPO / "configs" / "synthetic" / "train-ce.json")
SAVED = {"seed": 0, "trainer": {"precision": "fp32", "device": "auto", "epochs": 3}, "experts": {"text_feat": "a"}}


def changed(**sections) -> Config:
    data = json.loads(json.dumps(SAVED))
    for key, value in sections.items():
        data[key].update(value)
    return Config(data, {}, Path("c.json"))


def test_changes_ignore_settings_that_do_not_change_numbers():
    state = {"config": SAVED}
    assert test_cli.config_changes(state, changed(trainer={"device": "cpu"})) == {}
    assert test_cli.config_changes(state, changed(trainer={"precision": "bf16"})) == {"trainer.precision": "bf16"}
    assert test_cli.config_changes(state, changed(experts={"text_feat": "w2v"})) == {"experts.text_feat": "w2v"}
    assert test_cli.config_changes({"config": None}, changed(experts={"text_feat": "w2v"})) == {}


def test_output_names_say_what_changed(tmp_path):
    best = tmp_path / "trained_model.pth"
    assert test_cli.output_names("test", best, {}, False) == ("metrics.json", "test.html")
    assert test_cli.output_names("test", best, {"trainer.precision": "bf16"}, False) == (
        "metrics-bf16.json", "test-bf16.html")
    name, page = test_cli.output_names("test", best, {"experts.text_feat": "w2v"}, False)
    assert name.startswith("metrics-") and len(name) == len("metrics-12345678.json") and page != "test.html"
    assert test_cli.output_names("test", best, {"experts.text_feat": "w2v"}, True) == ("metrics.json", "test.html")
    assert test_cli.output_names("val", best, {}, False) == ("metrics-val.json", "val-trained_model.html")
    (tmp_path / "metrics.json").write_text(json.dumps({"checkpoint": str(best)}))
    assert test_cli.output_names("test", tmp_path / "checkpoint-epoch2.pth", {}, False) == (
        "metrics-checkpoint-epoch2.json", "test-checkpoint-epoch2.html")


@pytest.mark.slow
def test_test_py_writes_beside_and_records_its_command(synthetic_dir, tmp_path, monkeypatch):
    save = tmp_path / "saved"
    assert run(train_cli, monkeypatch, "--config", CONFIG, *settings(
        synthetic_dir, save, "trainer.epochs=1", "data_loader.args.batch_size=500", "experts.ce_shared_dim=16")) == 0
    (models,) = (save / "models" / "synthetic-train-ce").iterdir()
    best, own = models / "trained_model.pth", (models / "metrics.json").read_text()
    assert run(test_cli, monkeypatch, "--resume", str(best), "--set", "data_loader.args.num_test_captions=5") == 0
    assert (models / "metrics.json").read_text() == own
    (beside,) = models.glob("metrics-*.json")
    record = json.loads(beside.read_text())
    assert record["overrides"] == {"data_loader.args.num_test_captions": 5} and "--set" in record["command"]
    assert record["num_queries"] == 500
    page = (save / "web" / "synthetic-train-ce" / models.name / "index.html").read_text()
    assert f"[{beside.name}]" in page and f'href="test-{beside.stem.removeprefix("metrics-")}.html"' in page
    assert run(test_cli, monkeypatch, "--resume", str(best), "--set", "data_loader.args.num_test_captions=5",
               "--replace") == 0
    assert json.loads((models / "metrics.json").read_text())["num_queries"] == 500
