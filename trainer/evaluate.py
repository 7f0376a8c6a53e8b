"""Evaluation of a model on a whole split: chunked similarities, metrics, ranking page, JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from base.retrieval_model import RetrievalModel
from data_loader.batches import expert_batch, text_batch
from data_loader.expert_loader import EvalSet, ExpertDataLoader
from model.metric import GMEAN_KEY
from trainer.precision import autocast
from utils.atomic import write_text_atomic
from utils.registry import METRICS

DEFAULT_METRICS = ("t2v_metrics", "v2t_metrics")


@dataclass
class EvalResult:
    """Similarities [N*Q, N] (video-major caption rows), query masks [N, Q] and metrics."""

    split: str
    sims: np.ndarray
    query_masks: np.ndarray
    metrics: dict[str, dict[str, float]]

    @property
    def num_videos(self) -> int:
        return self.sims.shape[1]

    @property
    def num_queries(self) -> int:
        return int(self.query_masks.sum())

    def flat(self, prefix: str) -> dict[str, float]:
        """``{"<prefix>_t2v_metrics_R1": ..., ...}`` as in the original's logs."""
        return {f"{prefix}_{name}_{key}": value for name, res in self.metrics.items() for key, value in res.items()}

    def summary(self) -> dict:
        return {"split": self.split, "num_videos": self.num_videos, "num_queries": self.num_queries, **self.metrics}


def _to(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in tensors.items()}


@torch.no_grad()
def embed_split_videos(model: RetrievalModel, data: ExpertDataLoader, eval_set: EvalSet, device: torch.device,
                       chunk_videos: int = 64, precision: str = "fp32"
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Embeddings {m: [N, d_m]} and availability {m: [N]} of the split's N videos, on ``device``,
    computed ``chunk_videos`` at a time."""
    model.eval()
    rows = eval_set.video_rows
    vid_parts, ind_parts = [], []
    with autocast(device, precision):  # one context: weights are cast to bfloat16 once, not per chunk
        for start in range(0, len(rows), chunk_videos):
            experts, ind = expert_batch(data.store, rows[start:start + chunk_videos], data.max_tokens)
            ind = _to(ind, device)
            vid_parts.append(model.embed_videos(_to(experts, device), ind))
            ind_parts.append(ind)
    vid_embds = {m: torch.cat([p[m] for p in vid_parts]) for m in vid_parts[0]}
    return vid_embds, {m: torch.cat([p[m] for p in ind_parts]) for m in ind_parts[0]}


@torch.no_grad()
def compute_similarities(model: RetrievalModel, data: ExpertDataLoader, eval_set: EvalSet,
                         device: torch.device, chunk_videos: int = 64, progress: bool = True,
                         precision: str = "fp32") -> torch.Tensor:
    """Caption-to-video similarities [N*Q, N] (float32, on the CPU) for an evaluation split.

    Video embeddings are computed once; captions are streamed ``chunk_videos`` videos' worth
    (``chunk_videos * Q`` captions) at a time, embedded and scored against every video, and
    each block is written into the one preallocated result, so memory beyond it stays bounded.
    """
    vid_embds, ind = embed_split_videos(model, data, eval_set, device, chunk_videos, precision)
    num_videos, num_captions = eval_set.caption_rows.shape
    sims = torch.empty(num_videos * num_captions, num_videos, dtype=torch.float32)
    starts = range(0, num_videos, chunk_videos)
    with autocast(device, precision):
        for start in tqdm(starts, desc=f"eval {eval_set.split}", leave=False, disable=not progress):
            captions = eval_set.caption_rows[start:start + chunk_videos]
            text = text_batch(data.store, captions, data.max_tokens["text"]).to(device)
            text_embds, moe_weights = model.embed_text(text)
            block = model.similarity(text_embds, moe_weights, vid_embds, ind, merge="indep")  # float32
            sims[start * num_captions:start * num_captions + block.shape[0]] = block
    return sims


def evaluate(model: RetrievalModel, data: ExpertDataLoader, device: torch.device,
             chunk_videos: int = 64, metric_names: list[str] | None = None, progress: bool = True,
             precision: str = "fp32") -> EvalResult:
    """Similarities and retrieval metrics of ``model`` on the loader's evaluation split.

    ``precision`` is the forward passes' (see trainer/precision.py); similarities and metrics
    are float32.
    """
    eval_set = data.eval_set()
    sims = compute_similarities(model, data, eval_set, device, chunk_videos, progress, precision).numpy()
    masks = eval_set.query_masks.cpu().numpy().astype(np.float64)
    names = metric_names or DEFAULT_METRICS
    metrics = {name: METRICS.get(name)(sims, query_masks=masks) for name in names}
    return EvalResult(eval_set.split, sims, masks, metrics)


def write_metrics_json(path: Path, result: EvalResult, **extra: object) -> Path:
    """Write the evaluation summary (every metric, split, counts) as JSON, atomically."""
    return write_text_atomic(path, json.dumps({**result.summary(), **extra}, indent=2) + "\n")


def write_page(page_writer: Callable[..., Path], path: Path, result: EvalResult, data: ExpertDataLoader,
               title: str) -> Path:
    """Write the HTML ranking page of an evaluation with ``page_writer`` (the visualizer)."""
    store = data.store
    video_rows = store.splits[result.split]
    captions = [store.captions_of(int(v))[: result.query_masks.shape[1]] for v in video_rows]
    ids = [store.video_ids[int(v)] for v in video_rows]
    return page_writer(path, result.sims, result.query_masks, captions, ids, result.metrics, title)


def format_table(result: EvalResult) -> str:
    """A fixed-width t2v / v2t table for the console and info.log."""
    keys = ["R1", "R5", "R10", "R50", "MedR", "MeanR", GMEAN_KEY]
    head = f"{'':5s}" + "".join(f"{k.replace(GMEAN_KEY, 'geom'):>9s}" for k in keys)
    lines = [f"{result.split}: {result.num_videos} videos, {result.num_queries} queries", head]
    for name, res in result.metrics.items():
        lines.append(f"{name[:3]:5s}" + "".join(f"{res[k]:9.2f}" for k in keys))
    return "\n".join(lines)
