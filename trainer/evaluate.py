"""Evaluation of a model on a whole split: chunked similarities, metrics, ranking pages, JSON."""
from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from base.retrieval_model import RetrievalModel
from data_loader.expert_loader import EvalSet, ExpertDataLoader
from model.metric import GMEAN_KEY, t2v_ranks
from report.eval_summary import summary_path, write_eval_summary
from trainer.precision import autocast
from utils.atomic import write_text_atomic
from utils.registry import METRICS

DEFAULT_METRICS = ("t2v_metrics", "v2t_metrics")
# Videos are embedded at least this many at a time: the per-expert products of larger blocks
# run faster (full-scale MSR-VTT test split: 2.4 -> 1.8 s in bf16, 4.7 -> 3.9 s in fp32, same
# values) while their memory stays small next to a caption chunk's.
VIDEO_CHUNK = 256


@dataclass
class ExpertWeights:
    """How a model weighs its experts on a split: ``names`` (M experts, the column order),
    ``moe`` [N*Q, M] each caption row's MoE weights (softmax over all M experts, before
    renormalising over a video's available experts) and ``available`` [N, M] (bool)."""

    names: list[str]
    moe: np.ndarray
    available: np.ndarray


@dataclass
class EvalResult:
    """Similarities [N*Q, N] (video-major caption rows), query masks [N, Q], metrics, and the
    expert weights when the model scores with MoE weights (else None)."""

    split: str
    sims: np.ndarray
    query_masks: np.ndarray
    metrics: dict[str, dict[str, float]]
    experts: ExpertWeights | None = None

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
def embed_split_videos(model: RetrievalModel, data: ExpertDataLoader, rows: torch.Tensor, device: torch.device,
                       chunk_videos: int = 64, precision: str = "fp32"
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Embeddings {m: [N, d_m]} and availability {m: [N]} of the videos of store rows ``rows``
    [N] (e.g. a split's), on ``device``, computed ``chunk_videos`` at a time."""
    model.eval()
    vid_parts, ind_parts = [], []
    with autocast(device, precision):  # one context: weights are cast to bfloat16 once, not per chunk
        for start in range(0, len(rows), chunk_videos):
            experts, ind = data.video_inputs(rows[start:start + chunk_videos])
            ind = _to(ind, device)
            vid_parts.append(model.embed_videos(_to(experts, device), ind))
            ind_parts.append(ind)
    vid_embds = {m: torch.cat([p[m] for p in vid_parts]) for m in vid_parts[0]}
    return vid_embds, {m: torch.cat([p[m] for p in ind_parts]) for m in ind_parts[0]}


@torch.no_grad()
def compute_similarities(model: RetrievalModel, data: ExpertDataLoader, eval_set: EvalSet,
                         device: torch.device, chunk_videos: int = 64, progress: bool = True,
                         precision: str = "fp32") -> tuple[torch.Tensor, ExpertWeights | None]:
    """Caption-to-video similarities [N*Q, N] (float32, on the CPU) for an evaluation split, and
    the expert weights behind them (None when ``model.uses_moe_weights`` is false).

    Video embeddings are computed once (``max(chunk_videos, VIDEO_CHUNK)`` videos at a time);
    captions are streamed ``chunk_videos`` videos' worth (``chunk_videos * Q`` captions) at a
    time, embedded and scored against every video, and each block is written into the one
    preallocated result, so memory beyond it stays bounded.
    ``precision`` is the forward passes' (trainer/precision.py); similarities are float32.
    """
    vid_embds, ind = embed_split_videos(model, data, eval_set.video_rows, device, max(chunk_videos, VIDEO_CHUNK),
                                        precision)
    num_videos, num_captions = eval_set.caption_rows.shape
    sims = torch.empty(num_videos * num_captions, num_videos, dtype=torch.float32)
    moe = []
    starts = range(0, num_videos, chunk_videos)
    with autocast(device, precision):
        for start in tqdm(starts, desc=f"eval {eval_set.split}", leave=False, disable=not progress):
            captions = eval_set.caption_rows[start:start + chunk_videos]
            text = data.text_inputs(captions).to(device)
            text_embds, moe_weights = model.embed_text(text)
            block = model.similarity(text_embds, moe_weights, vid_embds, ind, merge="indep")  # float32
            sims[start * num_captions:start * num_captions + block.shape[0]] = block
            if model.uses_moe_weights:
                moe.append(moe_weights.reshape(-1, moe_weights.shape[-1]).float().cpu())
    if not moe:
        return sims, None
    available = torch.stack([ind[name].reshape(-1) != 0 for name in model.modalities], dim=1)
    return sims, ExpertWeights(list(model.modalities), torch.cat(moe).numpy(), available.cpu().numpy())


def needs_relevance(metric_name: str) -> bool:
    """Whether the registered metric takes the split's relevance (a ``relevance`` argument)."""
    return "relevance" in inspect.signature(METRICS.get(metric_name)).parameters


def evaluate(model: RetrievalModel, data: ExpertDataLoader, device: torch.device,
             chunk_videos: int = 64, metric_names: list[str] | None = None, progress: bool = True,
             precision: str = "fp32", with_metrics: bool = True) -> EvalResult:
    """Similarities and metrics of ``model`` on the loader's evaluation split.

    Every metric named (the default ones when none is; none at all without ``with_metrics``) is
    called as ``metric(sims, query_masks=masks)`` with ``sims`` [N*Q, N] and ``masks`` [N, Q];
    one that takes ``relevance`` (``relevance_metrics``) also gets the split's [N, K] relevance
    from the loader (``ExpertDataLoader.eval_relevance``), and ``relevance_columns`` when that
    relevance scores a sentence set of its own (EK-100 test).
    ``precision`` is the forward passes' (see trainer/precision.py); similarities and metrics
    are float32.
    """
    eval_set = data.eval_set()
    sims, experts = compute_similarities(model, data, eval_set, device, chunk_videos, progress, precision)
    sims = sims.numpy()
    masks = eval_set.query_masks.cpu().numpy().astype(np.float64)
    metrics = {}
    for name in (metric_names or DEFAULT_METRICS) if with_metrics else ():
        extra = {}
        if needs_relevance(name):
            extra["relevance"] = data.eval_relevance(eval_set)
            columns = data.eval_relevance_columns(eval_set)
            if columns is not None:
                extra["relevance_columns"] = columns
        metrics[name] = METRICS.get(name)(sims, query_masks=masks, **extra)
    return EvalResult(eval_set.split, sims, masks, metrics, experts)


def _finite_json(value: object, key: str, notes: dict[str, str]) -> object:
    """``value`` with every non-finite number replaced by None and recorded in ``notes`` as its
    dotted key -> "inf", "-inf" or "nan"."""
    if isinstance(value, dict):
        return {k: _finite_json(v, f"{key}.{k}" if key else str(k), notes) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v, f"{key}[{i}]", notes) for i, v in enumerate(value)]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        notes[key] = str(float(value))
        return None
    return value


def write_metrics_json(path: Path, result: EvalResult, **extra: object) -> Path:
    """Write the evaluation summary (every metric, split, counts) as JSON, atomically.

    JSON has no NaN or infinity: such a value is written as null and listed under
    ``non_finite`` (dotted key -> "inf", "-inf" or "nan"), so the file is always valid JSON.
    """
    notes: dict[str, str] = {}
    summary = _finite_json({**result.summary(), **extra}, "", notes)
    if notes:
        summary["non_finite"] = notes
    return write_text_atomic(path, json.dumps(summary, indent=2, allow_nan=False) + "\n")


def non_finite_weights(model: torch.nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers holding a NaN or infinity."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return [name for name, tensor in tensors
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def unscored_reason(model: torch.nn.Module, checkpoint: Path | str) -> str | None:
    """Why ``model`` (loaded from ``checkpoint``) must not be scored: None when every weight is
    finite, else a line naming how many tensors are not and the first of them."""
    bad = non_finite_weights(model)
    if not bad:
        return None
    total = sum(1 for t in [*model.parameters(), *model.buffers()] if t.is_floating_point())
    return f"{checkpoint}: {len(bad)} of {total} weight tensors hold NaN or infinity (first: {bad[0]}); not scored"


def write_unscored_json(path: Path, reason: str, **extra: object) -> Path:
    """Write a metrics file that holds no metric, only ``not_scored``: why the model was not
    evaluated (readers show its metrics as absent, never as numbers)."""
    return write_text_atomic(path, json.dumps({"not_scored": reason, **extra}, indent=2) + "\n")


def write_page(page_writer: Callable[..., Path], path: Path, result: EvalResult, data: ExpertDataLoader,
               title: str) -> Path:
    """Write the HTML ranking pages of an evaluation with ``page_writer`` (the visualizer), and
    beside them the summary the run's index page plots (``report.eval_summary``)."""
    store = data.store
    video_rows = store.splits[result.split]
    captions = [store.captions_of(int(v))[: result.query_masks.shape[1]] for v in video_rows]
    ids = [store.video_ids[int(v)] for v in video_rows]
    experts = result.experts
    weights = {} if experts is None else {"experts": experts.names, "moe_weights": experts.moe,
                                          "availability": experts.available}
    page = page_writer(path, result.sims, result.query_masks, captions, ids, result.metrics, title, **weights)
    ranks = t2v_ranks(result.sims, result.query_masks) + 1
    write_eval_summary(summary_path(path), ranks, result.query_masks, **weights)
    return page


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
