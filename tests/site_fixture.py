"""A small results site written from synthetic run files (no training), for the site tests.

Each run gets ``config.json``, ``history.json``, ``metrics.json`` (metrics computed from its
similarities), both ranking pages of its test split and the test summary, then
``report.site.publish_run`` writes its page and the site index. Every video's first caption
holds :data:`PAYLOAD`; videos have one to three captions.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.metric import t2v_metrics, t2v_ranks, v2t_metrics
from report.eval_summary import summary_path, write_eval_summary
from report.history import write_history
from report.ranking_page import RankingPage
from report.site import publish_run

PAYLOAD = "<script>alert(1)</script>"
EXPERTS = ["appearance", "audio", "face"]
NUM_VIDEOS, NUM_SLOTS, NUM_QUERIES, TOP_K, EPOCHS = 10, 3, 6, 3, 4
PLOTS_PER_RUN = 6
"""Loss, learning rate, validation recall, validation geometric mean, MoE weights, ranks."""


def run_inputs(seed: int) -> dict:
    """Similarities ``[N*Q, N]`` (ground truth favoured), masks, captions, ids and expert weights."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, NUM_SLOTS + 1, size=NUM_VIDEOS)
    lengths[0], lengths[1] = 1, NUM_SLOTS
    masks = (np.arange(NUM_SLOTS)[None, :] < lengths[:, None]).astype(np.float64)
    sims = rng.standard_normal((NUM_VIDEOS * NUM_SLOTS, NUM_VIDEOS))
    rows = np.arange(NUM_VIDEOS * NUM_SLOTS)
    sims[rows, rows // NUM_SLOTS] += 1.5
    captions = [[f"{PAYLOAD} video {v}"] + [f"video {v} caption {k}" for k in range(1, lengths[v])]
                for v in range(NUM_VIDEOS)]
    moe = rng.dirichlet(np.ones(len(EXPERTS)), size=NUM_VIDEOS * NUM_SLOTS)
    available = rng.random((NUM_VIDEOS, len(EXPERTS))) < 0.7
    available[:, 0] = True
    return {"sims": sims, "masks": masks, "captions": captions, "ids": [f"vid{v:02d}" for v in range(NUM_VIDEOS)],
            "moe": moe, "available": available}


def config(seed: int) -> dict:
    return {"seed": seed, "experts": {"modalities": EXPERTS, "text_feat": "synthetic"},
            "arch": {"type": "CENet", "args": {"use_ce": "pairwise"}},
            "loss": {"type": "MaxMarginRankingLoss", "args": {"margin": 0.1}},
            "optimizer": {"type": "AdamW", "args": {"lr": 0.001}},
            "lr_scheduler": {"type": "StepLR", "args": {"step_size": 1, "gamma": 0.9}},
            "trainer": {"epochs": EPOCHS}}


def write_run(save_dir: Path, experiment: str, run_id: str, seed: int) -> tuple[Path, Path]:
    """Write one run's files and publish it; returns its (models, web) folders."""
    models, web = save_dir / "models" / experiment / run_id, save_dir / "web" / experiment / run_id
    models.mkdir(parents=True)
    (models / "config.json").write_text(json.dumps(config(seed)))
    data = run_inputs(seed)
    metrics = {"t2v_metrics": t2v_metrics(data["sims"], data["masks"]),
               "v2t_metrics": v2t_metrics(data["sims"], data["masks"])}
    history = [{"epoch": e, "loss": 0.1 / e, "loss_parts": {"t2v": 0.06 / e, "v2t": 0.04 / e}, "lr": 0.001 * 0.9 ** (e - 1),
                "val": {name: {k: v * e / EPOCHS for k, v in values.items()} for name, values in metrics.items()}}
               for e in range(1, EPOCHS + 1)]
    write_history(models / "history.json", history)
    (models / "metrics.json").write_text(json.dumps({"split": "test", "num_videos": NUM_VIDEOS, **metrics,
                                                     "epoch": EPOCHS, "params": 123456 + seed,
                                                     "checkpoint": str(models / "trained_model.pth")}))
    weights = {"experts": EXPERTS, "moe_weights": data["moe"], "availability": data["available"]}
    writer = RankingPage(num_queries=NUM_QUERIES, top_k=TOP_K)
    page = writer(web / "test.html", data["sims"], data["masks"], data["captions"], data["ids"], metrics,
                  f"{experiment} <b>test</b>", **weights)
    write_eval_summary(summary_path(page), t2v_ranks(data["sims"], data["masks"]) + 1, data["masks"], **weights)
    publish_run(models, web)
    return models, web


def make_site(save_dir: Path) -> list[tuple[Path, Path]]:
    """Three runs of two experiments; returns their folders, oldest first."""
    return [write_run(save_dir, "synthetic-a", "2024-01-02_03-04-05", 0),
            write_run(save_dir, "synthetic-a", "2024-01-03_03-04-05", 1),
            write_run(save_dir, "synthetic-b", "2024-02-01_00-00-00", 0)]
