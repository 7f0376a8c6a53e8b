"""A number is either right or visibly absent: a non-finite loss stops training with one line,
and a model whose weights are not finite is never scored (trainer/trainer.py, test.py)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import REPO, load_script, run, settings

from trainer.trainer import Trainer
from utils.errors import CheckpointError, NonFiniteError

train_cli, test_cli = load_script("train"), load_script("test")
CONFIG = str(REPO / "configs" / "synthetic" / "train-ce.json")
SMALL = ("data_loader.args.batch_size=500", "experts.ce_shared_dim=16")


@pytest.fixture(scope="module")
def trained(synthetic_dir, tmp_path_factory):
    """A finished 1-epoch run: its models folder."""
    save = tmp_path_factory.mktemp("saved")
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert run(train_cli, monkeypatch, "--config", CONFIG,
                   *settings(synthetic_dir, save, "trainer.epochs=1", *SMALL)) == 0
    (models,) = (save / "models" / "synthetic-train-ce").iterdir()
    return models


@pytest.mark.slow
def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(synthetic_dir, tmp_path, monkeypatch):
    real = Trainer._batch_loss
    steps = []

    def poisoned(self, batch, sims):
        loss, parts = real(self, batch, sims)
        steps.append(1)
        if len(steps) == 3:  # the first step of epoch 2 (two batches per epoch)
            parts["t2v"] = parts["t2v"] * math.nan
            return sum(parts.values()), parts
        return loss, parts

    monkeypatch.setattr(Trainer, "_batch_loss", poisoned)
    save = tmp_path / "saved"
    with pytest.raises(NonFiniteError, match=r"epoch 2, step 1: the loss is not finite \(t2v nan\)"):
        run(train_cli, monkeypatch, "--config", CONFIG, *settings(synthetic_dir, save, "trainer.epochs=3", *SMALL))
    (models,) = (save / "models" / "synthetic-train-ce").iterdir()
    assert sorted(p.name for p in models.glob("checkpoint-epoch*.pth")) == ["checkpoint-epoch1.pth"]
    state = torch.load(models / "checkpoint-epoch1.pth", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values() if t.is_floating_point())
    assert not (models / "metrics.json").exists()
    assert [e["epoch"] for e in json.loads((models / "history.json").read_text())] == [1]


def _nan_checkpoint(trained, tmp_path):
    state = torch.load(trained / "trained_model.pth", weights_only=True)
    key = next(k for k, v in state["state_dict"].items() if v.is_floating_point())
    state["state_dict"][key] = torch.full_like(state["state_dict"][key], math.nan)
    path = trained / "nan_model.pth"
    torch.save(state, path)
    return path


@pytest.mark.slow
def test_non_finite_weights_are_never_scored(trained, tmp_path, monkeypatch):
    path = _nan_checkpoint(trained, tmp_path)
    before = (trained / "metrics.json").read_text()
    with pytest.raises(NonFiniteError, match="1 of .* weight tensors hold NaN or infinity"):
        run(test_cli, monkeypatch, "--resume", str(path))
    assert (trained / "metrics.json").read_text() == before  # another checkpoint's results go beside
    written = json.loads((trained / "metrics-nan_model.json").read_text())
    assert "hold NaN or infinity" in written["not_scored"] and "t2v_metrics" not in written
    assert written["checkpoint"] == str(path) and "--resume" in written["command"]


CHECKPOINT_EDGES = {
    "no state_dict": (lambda s: s.pop("state_dict"), "holds no 'state_dict'"),
    "no epoch": (lambda s: s.pop("epoch"), "'epoch' is None"),
    "config a string": (lambda s: s.update(config="not a dict"), "'config' is a str"),
    "extra weight": (lambda s: s["state_dict"].update({"extra.weight": torch.zeros(2)}), "1 unexpected weight"),
    "missing weight": (lambda s: s["state_dict"].pop(next(iter(s["state_dict"]))), "1 weight\\(s\\) missing"),
    "reshaped weight": (lambda s: s["state_dict"].update(
        {k: torch.zeros(3, 3) for k in [next(k for k, v in s["state_dict"].items() if v.ndim == 2)]}),
        "1 of another shape"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CHECKPOINT_EDGES))
def test_checkpoint_edge_cases_are_one_line(trained, tmp_path, monkeypatch, case):
    edit, message = CHECKPOINT_EDGES[case]
    state = torch.load(trained / "trained_model.pth", weights_only=True)
    edit(state)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=message):
        run(test_cli, monkeypatch, "--resume", str(path))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_checkpoint_weights_of_another_precision_are_cast(trained, tmp_path, monkeypatch, dtype):
    state = torch.load(trained / "trained_model.pth", weights_only=True)
    state["state_dict"] = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state["state_dict"].items()}
    out = tmp_path / "run"
    out.mkdir()
    torch.save(state, out / "trained_model.pth")
    assert run(test_cli, monkeypatch, "--resume", str(out / "trained_model.pth")) == 0
    written = json.loads((out / "metrics.json").read_text())
    reference = json.loads((trained / "metrics.json").read_text())
    assert written["t2v_metrics"]["R10"] == pytest.approx(reference["t2v_metrics"]["R10"], abs=2.0)
