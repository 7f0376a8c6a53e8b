"""Seed tables never hide a run: a missing or non-finite metric is a counted gap, a seed run twice
counts once (and is flagged), and an unreadable run is skipped with a line (report/results_table.py)."""
from __future__ import annotations

import json

import pytest
from test_results_table import write_run

from report.results_table import print_and_write_table, read_run_result, read_run_results, seed_table
from utils.errors import UserError


@pytest.mark.parametrize("bad", [None, "NaN", "high"])
def test_missing_metric_is_a_counted_gap(tmp_path, bad):
    a = write_run(tmp_path, "exp", "a", 0, 10.0)
    b = write_run(tmp_path, "exp", "b", 1, 20.0)
    metrics = json.loads((b / "metrics.json").read_text())
    metrics["t2v_metrics"]["R1"] = bad
    (b / "metrics.json").write_text(json.dumps(metrics).replace('"NaN"', "NaN"))
    table = seed_table([read_run_result(a), read_run_result(b)])
    assert table.loc[0, "t2v R@1"] == "10.0 [1 missing]"
    assert table.loc[0, "t2v R@5"] == "30.0(14.1)"


def test_a_seed_run_twice_counts_once_and_is_flagged(tmp_path):
    runs = [write_run(tmp_path, "exp", "2026-01-01_00-00-00", 0, 10.0),
            write_run(tmp_path, "exp", "2026-01-01_00-00-01", 1, 30.0),
            write_run(tmp_path, "exp", "2026-01-02_00-00-00", 1, 20.0)]
    table = seed_table([read_run_result(run) for run in runs])
    assert table.loc[0, "Seeds"] == "0,1 (seed 1 run again: newest kept)"
    assert table.loc[0, "t2v R@1"] == "15.0(7.1)"  # seeds 0 and the newest seed 1: 10 and 20


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "metrics.json").write_text('{"t2v_metrics": {"R1'), "metrics.json is unreadable"),
    (lambda run: (run / "metrics.json").write_text("[]"), "metrics.json: not a JSON object"),
    (lambda run: (run / "config.json").write_text('{"seed": "zero"}'), 'seed is "zero", expected an integer'),
    (lambda run: (run / "config.json").write_text("[1]"), "config.json: not a JSON object"),
])
def test_unreadable_run_is_skipped_with_a_line(tmp_path, capsys, damage, message):
    good = write_run(tmp_path, "exp", "a", 0, 10.0)
    bad = write_run(tmp_path, "exp", "b", 1, 20.0)
    damage(bad)
    runs, skipped = read_run_results([good, bad])
    assert [run.seed for run in runs] == [0] and len(skipped) == 1 and message in skipped[0]
    print_and_write_table([good, bad], tmp_path / "table")
    err = capsys.readouterr().err
    assert f"skipped: {bad}" in err and message in err


def test_table_of_only_unreadable_runs_is_one_line(tmp_path):
    bad = write_run(tmp_path, "exp", "b", 1, 20.0)
    (bad / "metrics.json").write_text("")
    with pytest.raises(UserError, match="no readable run among 1 run folder"):
        print_and_write_table([bad], tmp_path / "table")


def test_compare_runs_takes_its_runs_from_its_own_log(tmp_path):
    import compare_runs
    log = ("\rgenerating Synthetic:  50%|\r\x1b[KTraining on cpu: 1000 training videos, epochs 1..1, run folder "
           f"{tmp_path}/models/exp/2026-01-01_00-00-00\nepoch 1/1 ...\r      \rTraining on cpu: 1000 training videos, "
           f"epochs 1..1, run folder {tmp_path}/models/exp/run with spaces\n")
    found = {m["folder"].strip() for m in compare_runs.RUN_FOLDER_LINE.finditer(log)}
    assert found == {f"{tmp_path}/models/exp/2026-01-01_00-00-00", f"{tmp_path}/models/exp/run with spaces"}
