"""End to end on the Synthetic dataset: learning, run folder contents, resume, early stopping."""
from __future__ import annotations

import json
import sys

import pytest
import torch
from scipy.stats.mstats import gmean

from conftest import REPO, load_script
from data_loader.synthetic import generate_synthetic

train_cli, test_cli = load_script("train"), load_script("test")
CONFIG = str(REPO / "configs" / "synthetic" / "train-ce.json")
SPLITS = {"train": 1000, "val": 100, "test": 100}


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("Synthetic")
    generate_synthetic(folder, seed=0, split_sizes=SPLITS)
    return folder


def run(module, monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", [module.__name__, *args])
    return module.main()


def settings(synthetic_dir, save_dir, *extra: str) -> list[str]:
    return ["--set", f"data_loader.args.data_dir={synthetic_dir}", f"trainer.save_dir={save_dir}",
            "trainer.tensorboard=false", *extra]


def only_run(save_dir):
    (models,) = (save_dir / "models" / "synthetic-train-ce").iterdir()
    return models


def chance_geometric_mean(num_videos: int) -> float:
    return float(gmean([100 / num_videos, 500 / num_videos, 1000 / num_videos]))


def test_training_learns_and_writes_the_run_folder(synthetic_dir, tmp_path, monkeypatch):
    save = tmp_path / "saved"
    assert run(train_cli, monkeypatch, "--config", CONFIG,
               *settings(synthetic_dir, save, "trainer.epochs=4", "trainer.tensorboard=true")) == 0
    models = only_run(save)
    run_id = models.name
    metrics = json.loads((models / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_videos"] == 100 and metrics["num_queries"] == 2000
    assert set(metrics["t2v_metrics"]) == {"R1", "R5", "R10", "R50", "MedR", "MeanR", "geometric_mean_R1-R5-R10"}
    assert metrics["t2v_metrics"]["geometric_mean_R1-R5-R10"] > 3 * chance_geometric_mean(100)
    assert metrics["v2t_metrics"]["geometric_mean_R1-R5-R10"] > 3 * chance_geometric_mean(100)
    assert (models / "trained_model.pth").is_file() and (models / "config.json").is_file()
    assert sorted(p.name for p in models.glob("checkpoint-epoch*.pth")) == [
        "checkpoint-epoch2.pth", "checkpoint-epoch3.pth", "checkpoint-epoch4.pth"]
    log_dir = save / "log" / "synthetic-train-ce" / run_id
    log = (log_dir / "info.log").read_text()
    assert "val_t2v_metrics_geometric_mean_R1-R5-R10" in log and "Test metrics of the best model" in log
    assert list(log_dir.glob("events.out.tfevents.*"))
    web = save / "web" / "synthetic-train-ce" / run_id
    assert "R1" in (web / "test.html").read_text() and (web / "val.html").is_file()

    # test.py on the best checkpoint reproduces the end-of-training test metrics
    (models / "metrics.json").unlink()
    assert run(test_cli, monkeypatch, "--resume", str(models / "trained_model.pth")) == 0
    again = json.loads((models / "metrics.json").read_text())
    assert again["t2v_metrics"] == pytest.approx(metrics["t2v_metrics"])
    assert again["v2t_metrics"] == pytest.approx(metrics["v2t_metrics"])


def test_resume_matches_an_uninterrupted_run(synthetic_dir, tmp_path, monkeypatch):
    small = ["trainer.epochs=3", "data_loader.args.batch_size=128", "experts.ce_shared_dim=32"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    run(train_cli, monkeypatch, "--config", CONFIG, *settings(synthetic_dir, straight, *small))
    run(train_cli, monkeypatch, "--config", CONFIG,
        *settings(synthetic_dir, interrupted, *small[1:], "trainer.epochs=1"))
    first = only_run(interrupted) / "checkpoint-epoch1.pth"
    run(train_cli, monkeypatch, "--resume", str(first), "--set", "trainer.epochs=3")
    a = torch.load(only_run(straight) / "checkpoint-epoch3.pth", weights_only=True)
    b = torch.load(only_run(interrupted) / "checkpoint-epoch3.pth", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert a["monitor_best"] == b["monitor_best"]


def test_early_stopping_stops(synthetic_dir, tmp_path, monkeypatch):
    save = tmp_path / "saved"
    # the epoch loss falls, so "max loss" never improves after epoch 1
    run(train_cli, monkeypatch, "--config", CONFIG,
        *settings(synthetic_dir, save, "trainer.epochs=10", "trainer.early_stop=2", "trainer.monitor=max loss",
                  "experts.ce_shared_dim=32"))
    models = only_run(save)
    assert torch.load(models / "trained_model.pth", weights_only=True)["epoch"] == 1
    assert max(int(p.stem.removeprefix("checkpoint-epoch")) for p in models.glob("checkpoint-epoch*.pth")) == 3
    assert "Early stopping" in (save / "log" / "synthetic-train-ce" / models.name / "info.log").read_text()
