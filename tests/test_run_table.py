"""misc/run_table.py: two experiments x two seeds of the embedded default, trained through the plain
local launcher and through submitit's local executor, give the same mean (std) table."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO
from run_table import Job

from data_loader.generated.synthetic import generate_synthetic

EXPERIMENTS = ("configs/synthetic/train-single-scene.json", "configs/synthetic/train-single-audio.json")


@pytest.mark.slow
def test_local_and_submitit_launchers_write_the_same_table(tmp_path):
    data = tmp_path / "Synthetic"
    generate_synthetic(data, seed=0, split_sizes={"train": 64, "val": 20, "test": 20})
    tables = {}
    for launcher in ("local", "submitit-local"):
        save = tmp_path / launcher
        done = subprocess.run([sys.executable, "misc/run_table.py", "--experiments", *EXPERIMENTS, "--seeds", "0,1",
                               "--launcher", launcher, "--jobs", "2", "--group_seeds", "--save_dir", str(save), "--set",
                               "trainer.epochs=1", f"data_loader.args.data_dir={data}", "trainer.tensorboard=false"],
                              cwd=REPO, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (save / "table.md").is_file()
        tables[launcher] = pd.read_csv(save / "table.csv")
    local = tables["local"]
    assert list(local["Config"]) == ["synthetic-train-single-audio", "synthetic-train-single-scene"]
    assert list(local["Seeds"]) == ["0,1", "0,1"]
    assert all("(" in cell for cell in local["t2v Geom"])  # mean(std) over the two seeds
    pd.testing.assert_frame_equal(local, tables["submitit-local"])
    assert (tmp_path / "submitit-local" / "submitit").is_dir()


def test_a_job_is_one_train_py_command_for_its_seeds():
    job = Job("configs/synthetic/train-ce.json", (0, 1), ("trainer.save_dir=/tmp/x", "trainer.epochs=1"))
    assert job.command()[1:] == ["train.py", "--config", "configs/synthetic/train-ce.json", "--seeds", "0,1",
                                 "--set", "trainer.save_dir=/tmp/x", "trainer.epochs=1"]
    assert str(Job("c.json", (2,), ())) == "c.json seed 2"
