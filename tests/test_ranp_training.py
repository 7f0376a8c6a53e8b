"""RANP end to end on a small Synthetic store: a relevance-aware loss trains through the
loader's batch relevance, and relevance metrics reach metrics.json, info.log and the pages."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REPO, chance_geometric_mean, load_script, run, settings

from model.ranp.losses import RANPLoss
from model.ranp.metrics import ndcg_and_map
from trainer.build import build_data, prepare_data
from trainer.evaluate import EvalResult, format_table
from utils.config.load import load_config
from utils.errors import StoreError

train_cli = load_script("train")
CONFIGS = REPO / "configs" / "synthetic"


@pytest.mark.slow
def test_ranp_training_learns_and_reports_relevance_metrics(synthetic_dir, tmp_path, monkeypatch):
    save = tmp_path / "saved"
    assert run(train_cli, monkeypatch, "--config", str(CONFIGS / "train-ce-ranp.json"),
               *settings(synthetic_dir, save, "trainer.epochs=4")) == 0
    (models,) = (save / "models" / "synthetic-train-ce-ranp").iterdir()
    metrics = json.loads((models / "metrics.json").read_text())
    chance = chance_geometric_mean(100)  # percent, 100 test videos
    assert metrics["t2v_metrics"]["geometric_mean_R1-R5-R10"] > 3 * chance
    assert metrics["v2t_metrics"]["geometric_mean_R1-R5-R10"] > 3 * chance
    assert set(metrics["relevance_metrics"]) == {"nDCG_vt", "nDCG_tv", "nDCG_avg", "mAP_vt", "mAP_tv", "mAP_avg"}

    config = load_config(CONFIGS / "train-ce-ranp.json", [f"data_loader.args.data_dir={synthetic_dir}",
                                                          "data_loader.args.split_name=test"])
    prepare_data(config)
    data = build_data(config)
    relevance = data.eval_relevance(data.eval_set())
    shuffled = ndcg_and_map(torch.rand(relevance.shape, generator=torch.Generator().manual_seed(0)), relevance)
    assert metrics["relevance_metrics"]["nDCG_avg"] > shuffled["nDCG_avg"] + 0.1

    log = (save / "log" / "synthetic-train-ce-ranp" / models.name / "info.log").read_text()
    assert "val_relevance_metrics_nDCG_avg" in log and "relevance_metrics: nDCG_vt " in log
    assert "<th>nDCG_avg</th>" in (save / "web" / "synthetic-train-ce-ranp" / models.name / "test.html").read_text()


@pytest.mark.slow
def test_batches_carry_the_relevance_the_loss_masks(synthetic_dir):
    config = load_config(CONFIGS / "train-ce-ranp.json", [f"data_loader.args.data_dir={synthetic_dir}"])
    prepare_data(config)
    data = build_data(config)
    batch = next(iter(data.train_batches(torch.Generator().manual_seed(0), relevance=True)))
    b = len(batch)
    assert batch.relevance.shape == (b, b) and batch.relevance.dtype == torch.float32
    relevant, _ = RANPLoss(threshold_pos=config["loss"]["args"]["threshold_pos"]).masks(
        torch.zeros(b, b), batch.relevance)
    assert 0 < int(relevant.sum()) < b * (b - 1) // 2       # some off-diagonal pairs are masked, most are not
    assert batch.relevance.diagonal().mean() > 2 * batch.relevance.mean()


@pytest.mark.slow
def test_relevance_metrics_on_a_store_without_classes_stop_before_training(synthetic_dir, tmp_path):
    (synthetic_dir / "store" / "classes.h5").rename(tmp_path / "classes.h5")
    try:
        config = load_config(CONFIGS / "train-ce-ran.json", [f"data_loader.args.data_dir={synthetic_dir}"])
        with pytest.raises(StoreError, match="relevance/val.h5: not found, nor .*classes.h5"):
            build_data(config)
    finally:
        (tmp_path / "classes.h5").rename(synthetic_dir / "store" / "classes.h5")


def test_format_table_puts_relevance_metrics_on_their_own_line():
    retrieval = {"R1": 1.0, "R5": 2.0, "R10": 3.0, "R50": 4.0, "MedR": 5.0, "MeanR": 6.0,
                 "geometric_mean_R1-R5-R10": 7.0}
    result = EvalResult("test", np.zeros((4, 2)), np.ones((2, 2)),
                        {"t2v_metrics": retrieval, "relevance_metrics": {"nDCG_avg": 0.123456, "mAP_avg": 0.5}})
    lines = format_table(result).splitlines()
    assert lines[0] == "test: 2 videos, 4 queries"
    assert lines[2].startswith("t2v ") and lines[3] == "relevance_metrics: nDCG_avg 0.1235  mAP_avg 0.5000"
