"""End to end on the Synthetic dataset: learning, run folder contents, resume, early stopping."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, chance_geometric_mean, load_script, run, settings

from utils.errors import ConfigError

train_cli, test_cli = load_script("train"), load_script("test")
CONFIG = str(REPO / "configs" / "synthetic" / "train-ce.json")


def only_run(save_dir):
    (models,) = (save_dir / "models" / "synthetic-train-ce").iterdir()
    return models


@pytest.mark.slow
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
    assert (web / "test-v2t.html").is_file() and (web / "val-v2t.html").is_file()
    assert metrics["params"] > 0 and f"{metrics['params']:,d}" in (web / "index.html").read_text()
    assert f'href="synthetic-train-ce/{run_id}/index.html"' in (save / "web" / "index.html").read_text()

    history = json.loads((models / "history.json").read_text())
    assert [e["epoch"] for e in history] == [1, 2, 3, 4]
    for entry in history:
        assert set(entry["loss_parts"]) == {"t2v", "v2t"}
        assert sum(entry["loss_parts"].values()) == pytest.approx(entry["loss"], rel=1e-6)
        assert entry["val"]["t2v_metrics"]["R1"] >= 0 and entry["lr"] > 0
    assert history[1]["lr"] == pytest.approx(history[0]["lr"] * 0.95)
    summary = json.loads((web / "test-summary.json").read_text())
    assert sum(summary["rank_histogram"]["counts"]) == 2000
    assert set(summary["moe"]) == {"appearance", "audio", "face", "motion", "ocr", "scene", "speech"}
    assert summary["moe"]["appearance"]["missing"] is None and summary["moe"]["face"]["missing"]["count"] > 0

    # test.py on the best checkpoint reproduces the end-of-training test metrics
    (models / "metrics.json").unlink()
    assert run(test_cli, monkeypatch, "--resume", str(models / "trained_model.pth")) == 0
    again = json.loads((models / "metrics.json").read_text())
    assert again["t2v_metrics"] == pytest.approx(metrics["t2v_metrics"])
    assert again["v2t_metrics"] == pytest.approx(metrics["v2t_metrics"])

    # evaluating another split writes beside the test results, never over them
    val_page = (web / "val.html").read_text()
    assert run(test_cli, monkeypatch, "--resume", str(models / "trained_model.pth"), "--split", "val") == 0
    assert json.loads((models / "metrics.json").read_text()) == again
    assert json.loads((models / "metrics-val.json").read_text())["split"] != again["split"]
    assert (web / "val.html").read_text() == val_page and (web / "val-trained_model.html").is_file()


@pytest.mark.slow
def test_resume_matches_an_uninterrupted_run(synthetic_dir, tmp_path, monkeypatch):
    small = ["trainer.epochs=3", "data_loader.args.batch_size=128", "experts.ce_shared_dim=32"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    run(train_cli, monkeypatch, "--config", CONFIG, *settings(synthetic_dir, straight, *small))
    run(train_cli, monkeypatch, "--config", CONFIG,
        *settings(synthetic_dir, interrupted, *small[1:], "trainer.epochs=1"))
    first = only_run(interrupted) / "checkpoint-epoch1.pth"
    run(train_cli, monkeypatch, "--resume", str(first), "--set", "trainer.epochs=3")
    assert [e["epoch"] for e in json.loads((only_run(interrupted) / "history.json").read_text())] == [1, 2, 3]
    a = torch.load(only_run(straight) / "checkpoint-epoch3.pth", weights_only=True)
    b = torch.load(only_run(interrupted) / "checkpoint-epoch3.pth", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert a["monitor_best"] == b["monitor_best"]


@pytest.mark.slow
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


@pytest.mark.slow
def test_seeds_train_one_run_per_seed(synthetic_dir, tmp_path, monkeypatch):
    save = tmp_path / "saved"
    assert run(train_cli, monkeypatch, "--config", CONFIG, "--seeds", "3,1",
               *settings(synthetic_dir, save, "trainer.epochs=1", "data_loader.args.batch_size=500",
                         "experts.ce_shared_dim=16")) == 0
    runs = sorted((save / "models" / "synthetic-train-ce").iterdir())
    assert [json.loads((r / "config.json").read_text())["seed"] for r in runs] == [3, 1]
    assert all((r / "metrics.json").is_file() for r in runs)
    assert (save / "web" / "index.html").read_text().count("synthetic-train-ce/") == 2


def test_seeds_cannot_resume(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="--seeds starts new runs and cannot be combined with --resume"):
        run(train_cli, monkeypatch, "--resume", str(tmp_path / "absent.pth"), "--seeds", "0,1")


@pytest.mark.slow
def test_resume_repairs_a_best_model_older_than_its_checkpoint(synthetic_dir, tmp_path, monkeypatch):
    save = tmp_path / "saved"
    assert run(train_cli, monkeypatch, "--config", CONFIG,
               *settings(synthetic_dir, save, "trainer.epochs=3", "trainer.monitor=off")) == 0
    models = only_run(save)
    assert torch.load(models / "checkpoint-epoch3.pth", weights_only=True)["best_epoch"] == 3
    # killed after the epoch checkpoint but before the best model was written (the old order)
    (models / "trained_model.pth").write_bytes((models / "checkpoint-epoch2.pth").read_bytes())
    assert run(train_cli, monkeypatch, "--resume", str(models / "checkpoint-epoch3.pth")) == 0
    assert json.loads((models / "metrics.json").read_text())["epoch"] == 3
    assert torch.load(models / "trained_model.pth", weights_only=True)["epoch"] == 3
