"""Data-parallel training over several processes, as ``torchrun`` starts them.

``torchrun --nproc_per_node=N train.py ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in
each process; :func:`start` joins them into a process group (gloo on the CPU, nccl on CUDA, one
GPU per process). Every rank trains on its contiguous share of the same global batch
(``ExpertDataLoader.train_batches``) and the run takes the steps a single process would take
with that global batch:

* BatchNorm uses the statistics of the whole global batch (:class:`GlobalBatchNorm1d`, also on
  the CPU, where torch's SyncBatchNorm does not run), so normalised values and running
  statistics are those of one process;
* the ranking loss scores every caption of the global batch against every video: the ranks'
  embeddings are gathered (:func:`global_similarities`) before the similarity matrix;
* DistributedDataParallel averages the gradients. Every rank computes the same global loss and
  the gathers and all-reduces pass gradients back to the rank that owns each sample, so the
  average is the single-process gradient.

Evaluation, checkpoints, logs and progress bars belong to rank 0 (:attr:`Distributed.is_main`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run; ``group`` carries the model's own collectives."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def from_environment() -> Distributed:
    """The ranks torchrun announced in the environment (a single process without them)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    return Distributed(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def start(place: Distributed, device: torch.device) -> Distributed:
    """Join the process group (nccl for CUDA, gloo otherwise) and open the model's group."""
    if not place.active:
        return place
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(place.rank, place.world_size, place.local_rank, dist.new_group())


def barrier(place: Distributed) -> None:
    """Wait until every rank gets here."""
    if place.active:
        dist.barrier()


def stop(place: Distributed) -> None:
    """Wait for every rank, then leave the process group."""
    if place.active:
        dist.barrier()
        dist.destroy_process_group()


def broadcast(value: Any, place: Distributed) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not place.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are those of the global batch over ``process_group``.

    Sums are all-reduced with autograd, so gradients reach every rank's inputs as if the batch
    were one. In evaluation mode, or outside a process group, it is BatchNorm1d. Parameter and
    buffer names are BatchNorm1d's, so state dicts are unchanged. Input ``[N, C]`` or ``[N, C, L]``.
    """

    process_group: Any = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        values = x.float()
        local_count = values.new_full((1,), values.numel() / values.shape[1])
        totals = dist_fn.all_reduce(torch.cat([values.sum(dims), local_count]), group=self.process_group)
        count = totals[-1].detach()
        mean = totals[:-1] / count
        centred = values - mean.reshape(shape)
        var = dist_fn.all_reduce((centred * centred).sum(dims), group=self.process_group) / count
        out = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * count / (count - 1).clamp(min=1))
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased_var, alpha=factor)


def use_global_batch_norm(model: nn.Module, place: Distributed) -> nn.Module:
    """Turn every BatchNorm1d of ``model`` into a :class:`GlobalBatchNorm1d` over ``place.group``,
    in place, keeping its parameter and buffer objects (an optimiser built before still holds them)."""
    if not place.active:
        return model
    for module in model.modules():
        if type(module) is nn.BatchNorm1d:
            module.__class__ = GlobalBatchNorm1d
            module.process_group = place.group
    return model


def data_parallel(model: nn.Module, place: Distributed, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel (itself in a single process).

    Buffers are not broadcast: global batch statistics keep them equal on every rank.
    Parameters a model variant leaves unused (e.g. the MoE layer with ``freeze_weights``) are
    allowed.
    """
    if not place.active:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   broadcast_buffers=False, find_unused_parameters=True,
                                   gradient_as_bucket_view=True)


def row_counts(rows: int, place: Distributed, device: torch.device) -> list[int]:
    """Every rank's number of rows ``rows``, in rank order."""
    count = torch.tensor([rows], device=device)
    counts = [torch.zeros_like(count) for _ in range(place.world_size)]
    dist.all_gather(counts, count, group=place.group)
    return [int(c) for c in counts]


def gather_rows(tensor: torch.Tensor, place: Distributed, sizes: list[int]) -> torch.Tensor:
    """Every rank's ``tensor`` ``[n_r, ...]`` concatenated in rank order: ``[sum n_r, ...]``,
    ``sizes`` the ranks' ``n_r`` (:func:`row_counts`).

    Ranks may hold different numbers of rows. Differentiable: the gradient of each rank's rows
    is summed over the ranks and returned to it.
    """
    padding = tensor.new_zeros(max(sizes) - tensor.shape[0], *tensor.shape[1:])
    parts = dist_fn.all_gather(torch.cat([tensor, padding]), group=place.group)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


def global_similarities(model: nn.Module, out: dict, ind: dict[str, torch.Tensor],
                        place: Distributed) -> torch.Tensor:
    """The training similarity matrix of the global batch, ``[B, B]``, on every rank.

    ``out`` is the forward output of ``model`` (``text_embds``, ``vid_embds``, ``moe_weights``)
    on this rank's share and ``ind`` its availability. In a single process this is
    ``out["cross_view_conf_matrix"]``.
    """
    if not place.active:
        return out["cross_view_conf_matrix"]
    sizes = row_counts(out["moe_weights"].shape[0], place, out["moe_weights"].device)  # once per batch
    text = {name: gather_rows(embd.float(), place, sizes) for name, embd in out["text_embds"].items()}
    vid = {name: gather_rows(embd.float(), place, sizes) for name, embd in out["vid_embds"].items()}
    weights = gather_rows(out["moe_weights"].float(), place, sizes)
    avail = {name: gather_rows(value.float(), place, sizes) for name, value in ind.items()}
    return model.similarity(text, weights, vid, avail, merge="avg")
