"""misc/compare_runs.py: the table of several configs, one run or mean and std over seeds."""
from __future__ import annotations

import importlib.util

from conftest import REPO


def compare_runs():
    spec = importlib.util.spec_from_file_location("compare_runs", REPO / "misc" / "compare_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(geom: float, ndcg: float | None = None) -> dict:
    retrieval = {"R1": geom, "R5": geom, "R10": geom, "MedR": 3.0, "geometric_mean_R1-R5-R10": geom}
    result = {"t2v_metrics": retrieval, "v2t_metrics": retrieval}
    if ndcg is not None:
        result["relevance_metrics"] = {"nDCG_avg": ndcg, "mAP_avg": 0.01}
    return result


def test_one_run_per_config_prints_plain_values():
    lines = compare_runs().table({"a.json": [run(10.0)], "b.json": [run(20.0)]}).splitlines()
    assert "nDCG_avg" not in lines[0]
    assert lines[1].split() == ["a.json", "10.00", "10.00", "10.00", "3.00", "10.00", "10.00"]


def test_seeds_give_mean_and_std_and_relevance_in_percent():
    lines = compare_runs().table({"ce.json": [run(10.0), run(14.0), run(12.0)],
                                  "ranp.json": [run(11.0, 0.6), run(13.0, 0.7), run(12.0, 0.65)]}).splitlines()
    assert lines[0].split()[-2:] == ["nDCG_avg", "mAP_avg"]
    assert "12.00 +- 2.00" in lines[1] and lines[1].rstrip().endswith("-")
    assert "12.00 +- 1.00" in lines[2] and "65.00 +- 5.00" in lines[2] and "1.00 +- 0.00" in lines[2]
