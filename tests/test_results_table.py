"""Seed tables (report/results_table.py) and misc/aggregate_runs.py."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, load_script

from report.results_table import PUBLISHED_COLUMNS, read_run_result, seed_table, to_markdown

KEYS = [key for key, _ in PUBLISHED_COLUMNS]


def write_run(root, experiment: str, run_id: str, seed: int, r1: float, epochs: int = 30, params: int = 2_500_000):
    """A finished run whose metrics all derive from ``r1``."""
    folder = root / "models" / experiment / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"seed": seed, "trainer": {"epochs": epochs, "save_dir": str(root)}}))
    metrics = {direction: {key: r1 * (k + 1) + (5 if direction == "v2t_metrics" else 0) for k, key in enumerate(KEYS)}
               for direction in ("t2v_metrics", "v2t_metrics")}
    (folder / "metrics.json").write_text(json.dumps({**metrics, "params": params, "epoch": 3}))
    return folder


def test_mean_and_sample_std_over_seeds(tmp_path):
    r1 = {0: 20.04, 1: 21.96, 2: 22.5}
    runs = [read_run_result(write_run(tmp_path, "synthetic-train-ce", f"run{s}", s, value)) for s, value in r1.items()]
    table = seed_table(runs)
    assert list(table.columns) == ["Config", "Seeds", *[f"{d} {label}" for d in ("t2v", "v2t")
                                                         for _, label in PUBLISHED_COLUMNS], "Params"]
    (row,) = table.to_dict("records")
    assert row["Config"] == "synthetic-train-ce" and row["Seeds"] == "0,1,2" and row["Params"] == "2.50M"
    for k, (_, label) in enumerate(PUBLISHED_COLUMNS):
        for direction, offset in (("t2v", 0), ("v2t", 5)):
            values = np.array([v * (k + 1) + offset for v in r1.values()])
            assert row[f"{direction} {label}"] == f"{values.mean():.1f}({values.std(ddof=1):.1f})"
    assert row["t2v R@1"] == "21.5(1.3)"


def test_configs_differing_beyond_the_seed_are_separate_rows(tmp_path):
    runs = [read_run_result(write_run(tmp_path, "exp", "a", 0, 10.0)), read_run_result(write_run(tmp_path, "exp", "b", 1, 12.0)),
            read_run_result(write_run(tmp_path, "exp", "c", 0, 3.0, epochs=3)),
            read_run_result(write_run(tmp_path, "other", "a", 0, 1.0, params=None))]
    table = seed_table(runs).set_index("Config")
    assert sorted(table.index) == ["exp [trainer.epochs=30]", "exp [trainer.epochs=3]", "other"]
    assert table.loc["exp [trainer.epochs=30]", "t2v R@1"] == "11.0(1.4)"
    assert table.loc["exp [trainer.epochs=3]", "t2v R@1"] == "3.0"  # one run: no spread to report
    assert table.loc["other", "Params"] == "–"


def test_markdown_layout():
    table = pd.DataFrame([{"Config": "a|b", "Seeds": "0", "t2v R@1": "1.0(0.1)"}])
    assert to_markdown(table).splitlines() == ["| Config | Seeds | t2v R@1 |", "|---|---|---:|",
                                               "| a\\|b | 0 | 1.0(0.1) |"]


@pytest.mark.slow
def test_aggregate_runs_command(tmp_path):
    for seed, value in enumerate((10.0, 11.0, 12.0)):
        write_run(tmp_path / "saved", "synthetic-train-ce", f"2024-01-0{seed + 1}_00-00-00", seed, value)
    (tmp_path / "saved" / "models" / "synthetic-train-ce" / "running").mkdir()  # no metrics.json yet
    script = str(REPO / "misc" / "aggregate_runs.py")
    done = subprocess.run([sys.executable, script, str(tmp_path / "saved" / "models" / "synth*"),
                           "--out", str(tmp_path / "table")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("| Config | Seeds | t2v R@1 | t2v R@5 |") and lines[0].endswith("| v2t Geom | Params |")
    assert lines[2].startswith("| synthetic-train-ce | 0,1,2 | 11.0(1.0) | 22.0(2.0) |")
    assert (tmp_path / "table.md").read_text().splitlines() == lines
    csv = pd.read_csv(tmp_path / "table.csv", dtype=str)
    assert csv.loc[0, "t2v R@1"] == "11.0(1.0)" and csv.loc[0, "Seeds"] == "0,1,2"



@pytest.mark.slow
def test_aggregate_runs_without_runs_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    module = load_script("misc/aggregate_runs")
    monkeypatch.setattr(sys, "argv", ["aggregate_runs.py", str(tmp_path / "nothing*")])
    with pytest.raises(SystemExit) as exited:
        module.run_cli(module.main)
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: no finished run (a folder with metrics.json) in {tmp_path / 'nothing*'}"]
