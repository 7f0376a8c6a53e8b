"""Evaluation of a model on a whole split: chunked similarities, metrics, ranking page, JSON."""
from __future__ import annotations

import inspect
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
def compute_similarities(model: RetrievalModel, data: ExpertDataLoader, eval_set: EvalSet,
                         device: torch.device, chunk_videos: int = 64, progress: bool = True) -> torch.Tensor:
    """Caption-to-video similarities [N*Q, N] for an evaluation split, on the CPU.

    Video embeddings are computed once (in chunks); captions are embedded and scored against
    all videos ``chunk_videos`` videos at a time, so memory stays bounded on large splits.
    """
    model.eval()
    rows = eval_set.video_rows
    chunks = list(torch.split(torch.arange(len(rows)), chunk_videos))
    vid_parts, ind_parts = [], []
    for idx in chunks:
        experts, ind = expert_batch(data.store, rows[idx], data.max_tokens)
        vid_parts.append(model.embed_videos(_to(experts, device), _to(ind, device)))
        ind_parts.append(ind)
    vid_embds = {m: torch.cat([p[m] for p in vid_parts]) for m in vid_parts[0]}
    ind = {m: torch.cat([p[m] for p in ind_parts]).to(device) for m in ind_parts[0]}
    sims = []
    for idx in tqdm(chunks, desc=f"eval {eval_set.split}", leave=False, disable=not progress):
        text = text_batch(data.store, eval_set.caption_rows[idx], data.max_tokens["text"]).to(device)
        text_embds, moe_weights = model.embed_text(text)
        sims.append(model.similarity(text_embds, moe_weights, vid_embds, ind, merge="indep").float().cpu())
    return torch.cat(sims)


def needs_relevance(metric_name: str) -> bool:
    """Whether the registered metric takes the split's relevance (a ``relevance`` argument)."""
    return "relevance" in inspect.signature(METRICS.get(metric_name)).parameters


def evaluate(model: RetrievalModel, data: ExpertDataLoader, device: torch.device,
             chunk_videos: int = 64, metric_names: list[str] | None = None, progress: bool = True) -> EvalResult:
    """Similarities and metrics of ``model`` on the loader's evaluation split.

    Every metric named is called as ``metric(sims, query_masks=masks)`` with ``sims``
    [N*Q, N] and ``masks`` [N, Q]; one that takes ``relevance`` (``relevance_metrics``) also
    gets the split's [N, K] relevance from the loader (``ExpertDataLoader.eval_relevance``).
    """
    eval_set = data.eval_set()
    sims = compute_similarities(model, data, eval_set, device, chunk_videos, progress).numpy()
    masks = eval_set.query_masks.numpy().astype(np.float64)
    metrics = {}
    for name in metric_names or DEFAULT_METRICS:
        extra = {"relevance": data.eval_relevance(eval_set)} if needs_relevance(name) else {}
        metrics[name] = METRICS.get(name)(sims, query_masks=masks, **extra)
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
    """A fixed-width t2v / v2t table for the console and info.log; any other metrics
    (``relevance_metrics``) follow on a line each, as fractions with four decimals."""
    keys = ["R1", "R5", "R10", "R50", "MedR", "MeanR", GMEAN_KEY]
    head = f"{'':5s}" + "".join(f"{k.replace(GMEAN_KEY, 'geom'):>9s}" for k in keys)
    lines = [f"{result.split}: {result.num_videos} videos, {result.num_queries} queries", head]
    others = []
    for name, res in result.metrics.items():
        if all(k in res for k in keys):
            lines.append(f"{name[:3]:5s}" + "".join(f"{res[k]:9.2f}" for k in keys))
        else:
            others.append(f"{name}: " + "  ".join(f"{k} {v:.4f}" for k, v in res.items()))
    return "\n".join(lines + others)
