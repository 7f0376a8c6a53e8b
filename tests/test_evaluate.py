"""trainer/evaluate.py: metrics.json is valid JSON whatever the metrics hold."""
from __future__ import annotations

import json
import math

import numpy as np

from trainer.evaluate import EvalResult, write_metrics_json


def strict_json(text: str) -> dict:
    """Parse ``text`` as standard JSON: NaN and Infinity, which JSON lacks, are errors."""
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_metrics_are_null_with_a_note(tmp_path):
    metrics = {"t2v_metrics": {"R1": 50.0, "MeanR": math.inf},
               "v2t_metrics": {"R1": -math.inf, "MedR": np.float64("nan"), "MeanR": 1.5}}
    result = EvalResult("test", np.zeros((4, 2)), np.ones((2, 2)), metrics)
    data = strict_json(write_metrics_json(tmp_path / "metrics.json", result, epoch=3).read_text())
    assert data["t2v_metrics"] == {"R1": 50.0, "MeanR": None}
    assert data["v2t_metrics"] == {"R1": None, "MedR": None, "MeanR": 1.5}
    assert data["non_finite"] == {"t2v_metrics.MeanR": "inf", "v2t_metrics.R1": "-inf", "v2t_metrics.MedR": "nan"}
    assert (data["split"], data["num_videos"], data["num_queries"], data["epoch"]) == ("test", 2, 4, 3)


def test_finite_metrics_are_written_as_they_are(tmp_path):
    metrics = {"t2v_metrics": {"R1": 12.5, "MeanR": 3.25}}
    result = EvalResult("val", np.zeros((2, 2)), np.ones((2, 1)), metrics)
    data = strict_json(write_metrics_json(tmp_path / "metrics.json", result).read_text())
    assert data["t2v_metrics"] == metrics["t2v_metrics"] and "non_finite" not in data
