"""Ranger: the RAdam core with Lookahead, as the original Collaborative Experts trains with.

Per parameter p with gradient g, at step t (counted per parameter from 1):

    m <- beta1 * m + (1 - beta1) * g
    v <- beta2 * v + (1 - beta2) * g^2
    N_max = 2 / (1 - beta2) - 1,  N_t = N_max - 2 t beta2^t / (1 - beta2^t)
    p <- p - weight_decay * lr * p                      (decoupled weight decay)
    if N_t > N_sma_threshhold:
        r_t = sqrt((1 - beta2^t) (N_t - 4) (N_t - 2) N_max / ((N_max - 4) N_t (N_max - 2))) / (1 - beta1^t)
        p <- p - lr * r_t * m / (sqrt(v) + eps)
    else:
        p <- p - lr * m / (1 - beta1^t)
    every k steps: slow <- slow + alpha * (p - slow); p <- slow

``slow`` starts as the parameter's value before its first update. The arithmetic follows the
original's order of operations, so the steps are the same to the last bit. Hyperparameters
are read from each parameter group (the original read ``alpha`` and the threshold from the
optimiser object; the two agree for the single group every config uses). The state keeps
the original's names (``step``, ``exp_avg``, ``exp_avg_sq``, ``slow_buffer``; the group key
``N_sma_threshhold`` keeps its spelling), so an optimiser state saved by the original
trainer loads into this class. Its ``state_dict`` holds only tensors and numbers and loads
with ``torch.load(weights_only=True)``.

RAdam: the original's RAdam (betas (0.9, 0.999), eps 1e-8, decoupled weight decay, rectified
when N_t >= 5) is ``torch.optim.RAdam`` with ``decoupled_weight_decay=True``. torch rectifies
when N_t > 5; N_t never equals 5 exactly (it is 4.996 at t = 5 and 5.994 at t = 6 for
beta2 = 0.999), so the two take the same steps and no second RAdam is registered.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch.optim import Optimizer

from utils.errors import ConfigError
from utils.registry import OPTIMIZERS


def radam_step_size(step: int, beta1: float, beta2: float, threshold: float) -> tuple[bool, float]:
    """(rectified, step size) of the RAdam update at ``step`` (1-based).

    The step size multiplies ``lr * m / (sqrt(v) + eps)`` when rectified, else ``lr * m``.
    """
    beta2_t = beta2 ** step
    n_sma_max = 2 / (1 - beta2) - 1
    n_sma = n_sma_max - 2 * step * beta2_t / (1 - beta2_t)
    if n_sma > threshold:
        ratio = (1 - beta2_t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma * n_sma_max / (n_sma_max - 2)
        return True, math.sqrt(ratio) / (1 - beta1 ** step)
    return False, 1.0 / (1 - beta1 ** step)


@OPTIMIZERS.register()
class Ranger(Optimizer):
    """RAdam with Lookahead (``alpha``: slow-weight interpolation, ``k``: steps between syncs)."""

    def __init__(self, params: Iterable, lr: float = 1e-3, alpha: float = 0.5, k: int = 6,
                 N_sma_threshhold: float = 5.0, betas: tuple[float, float] = (0.95, 0.999),
                 eps: float = 1e-5, weight_decay: float = 0.0):
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"Ranger: alpha must be in [0, 1], got {alpha}")
        if k < 1:
            raise ConfigError(f"Ranger: k must be >= 1, got {k}")
        if lr <= 0:
            raise ConfigError(f"Ranger: lr must be > 0, got {lr}")
        if eps <= 0:
            raise ConfigError(f"Ranger: eps must be > 0, got {eps}")
        defaults = dict(lr=lr, alpha=alpha, k=k, N_sma_threshhold=N_sma_threshhold,
                        betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        scratch = None  # one buffer for sqrt(v) and p - slow, reused across parameters
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, weight_decay = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Ranger does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    state["slow_buffer"] = p.detach().clone()
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                exp_avg.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["step"] += 1
                rectified, step_size = radam_step_size(state["step"], beta1, beta2, group["N_sma_threshhold"])
                if weight_decay != 0:
                    p.add_(p, alpha=-weight_decay * lr)
                if scratch is None or scratch.numel() < p.numel() or scratch.dtype != p.dtype:
                    scratch = p.new_empty(max(q.numel() for q in group["params"]))
                work = scratch[:p.numel()].view_as(p)
                if rectified:
                    p.addcdiv_(exp_avg, torch.sqrt(exp_avg_sq, out=work).add_(group["eps"]), value=-step_size * lr)
                else:
                    p.add_(exp_avg, alpha=-step_size * lr)
                if state["step"] % group["k"] == 0:
                    slow = state["slow_buffer"]
                    slow.add_(torch.sub(p, slow, out=work), alpha=group["alpha"])
                    p.copy_(slow)
        return loss
