"""Multi-seed runs resume: a ``--seeds`` command run again after an interruption skips finished
seeds, resumes the interrupted one in its own folder and never duplicates a seed (train.py)."""
from __future__ import annotations

import json
import os

import pytest
from conftest import REPO, load_script, run, settings

from report.results_table import read_run_result, seed_table
from trainer.trainer import Trainer
from utils.errors import UserError

train_cli = load_script("train")
CONFIG = str(REPO / "configs" / "synthetic" / "train-ce.json")
SMALL = ("trainer.epochs=1", "data_loader.args.batch_size=500", "experts.ce_shared_dim=16")


def interrupt_at(monkeypatch, seed: int, epoch: int) -> None:
    """Make the run of ``seed`` stop (as at Ctrl-C or a kill) right after its ``epoch`` checkpoint."""
    real = Trainer._save

    def save_then_stop(self, done_epoch, improved):
        real(self, done_epoch, improved)
        if self.config["seed"] == seed and done_epoch == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save", save_then_stop)


@pytest.mark.slow
def test_seeds_interrupted_twice_and_rerun_give_one_run_per_seed(synthetic_dir, tmp_path, monkeypatch, capsys):
    save = tmp_path / "saved"
    command = ["--config", CONFIG, "--seeds", "0,1,2", *settings(synthetic_dir, save, *SMALL)]
    with monkeypatch.context() as patch:
        interrupt_at(patch, seed=1, epoch=1)
        with pytest.raises(KeyboardInterrupt):
            run(train_cli, monkeypatch, *command)
    with monkeypatch.context() as patch:
        interrupt_at(patch, seed=2, epoch=1)
        with pytest.raises(KeyboardInterrupt):
            run(train_cli, monkeypatch, *command)
    assert "seed 0: finished in" in capsys.readouterr().err
    experiment = save / "models" / "synthetic-train-ce"
    partial = experiment / sorted(p.name for p in experiment.iterdir())[-1] / f"checkpoint-epoch1.pth.partial-{2 ** 22 + 7}"
    partial.write_bytes(b"left by a killed process")
    assert run(train_cli, monkeypatch, *command) == 0
    runs = sorted(experiment.iterdir())
    assert len(runs) == 3 and all((r / "metrics.json").is_file() for r in runs)
    assert sorted(json.loads((r / "config.json").read_text())["seed"] for r in runs) == [0, 1, 2]
    for folder in runs:
        epochs = [e["epoch"] for e in json.loads((folder / "history.json").read_text())]
        assert epochs == [1]
    assert not partial.exists()
    table = seed_table([read_run_result(r) for r in runs])
    assert list(table["Seeds"]) == ["0,1,2"]


def test_unreadable_history_on_resume_is_one_line(tmp_path):
    from report.history import read_history
    path = tmp_path / "history.json"
    for text in ('[{"epoch": 1', "{}", '["x"]'):
        path.write_text(text)
        with pytest.raises(UserError, match="history.json: .*move it aside"):
            read_history(path)


def test_stale_partials_of_dead_processes_go_at_the_next_start(tmp_path):
    from utils.atomic import remove_stale_partials
    dead = tmp_path / f"checkpoint-epoch3.pth.partial-{2 ** 22 + 7}"
    mine = tmp_path / f"checkpoint-epoch4.pth.partial-{os.getpid()}"
    dead.write_bytes(b"x")
    mine.write_bytes(b"x")
    assert remove_stale_partials(tmp_path) == []  # a write spares fresh ones (another machine's writer)
    assert remove_stale_partials(tmp_path, min_age_s=0) == [dead] and mine.exists()
