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

``slow`` starts as the parameter's value before its first update. Hyperparameters are read from
each parameter group (the original read ``alpha`` and the threshold from the optimiser object;
the two agree for the single group every config uses). The state keeps the original's names
(``step``, ``exp_avg``, ``exp_avg_sq``, ``slow_buffer``; the group key ``N_sma_threshhold`` keeps
its spelling), so an optimiser state saved by the original trainer loads into this class. Its
``state_dict`` holds only tensors and numbers and loads with ``torch.load(weights_only=True)``.

Speed: the rectified update is an Adam update with its learning rate, epsilon and decoupled
decay rescaled (:func:`radam_update`), so it runs as torch's fused Adam kernel, one pass over
each parameter's memory instead of about eight, where torch has that kernel (CUDA; CPU from torch
2.4). The un-rectified first steps and other devices use plain tensor operations in the
original's order. The two agree to rounding (float64: 1e-12 relative, tests/test_ranger.py).

RAdam: the original's RAdam (betas (0.9, 0.999), eps 1e-8, decoupled weight decay, rectified
when N_t >= 5) is ``torch.optim.RAdam`` with ``decoupled_weight_decay=True``. torch rectifies
when N_t > 5; N_t never equals 5 exactly (it is 4.996 at t = 5 and 5.994 at t = 6 for
beta2 = 0.999), so the two take the same steps. The registered :class:`RAdam` is torch's class,
with the same arguments and state, whose steps go through :func:`radam_update`'s fused kernel.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch.optim import Optimizer

from utils.config.options import Above, AtLeast, Positive
from utils.errors import ConfigError
from utils.registry import OPTIMIZERS

# torch's fused Adam kernels (torch._fused_adam_, torch._fused_adamw_) run on the CPU from torch 2.4
FUSED_ON_CPU = torch.torch_version.TorchVersion(torch.__version__) >= (2, 4)
FUSED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def rectification(step: int, beta2: float, threshold: float) -> float | None:
    """RAdam's variance rectification ``r_t`` at ``step`` (1-based), None while N_t <= threshold.

    ``r_t = sqrt((N_t - 4) (N_t - 2) N_max / ((N_max - 4) N_t (N_max - 2)))``; the rectified step
    is ``lr r_t sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)``.
    """
    beta2_t = beta2 ** step
    n_sma_max = 2 / (1 - beta2) - 1
    n_sma = n_sma_max - 2 * step * beta2_t / (1 - beta2_t)
    if n_sma <= threshold:
        return None
    return math.sqrt((n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma * n_sma_max / (n_sma_max - 2))


def can_fuse(tensors: list[torch.Tensor]) -> bool:
    """Whether torch's fused Adam kernel takes ``tensors``: one device that has it, one float dtype."""
    first = tensors[0]
    if first.device.type != "cuda" and not (first.device.type == "cpu" and FUSED_ON_CPU):
        return False
    return first.dtype in FUSED_DTYPES and all(t.device == first.device and t.dtype == first.dtype for t in tensors)


@torch.no_grad()
def radam_update(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
                 exp_avg_sqs: list[torch.Tensor], step: int, *, lr: float, betas: tuple[float, float],
                 eps: float, weight_decay: float, decoupled: bool, threshold: float, fused: bool) -> None:
    """One RAdam update, in place, of tensors whose step count is ``step`` (1-based, this update's).

    Weight decay is decoupled (``p <- p - lr wd p``) or, with ``decoupled`` False, added to the
    gradient (``g <- g + wd p``) before the moments. With ``fused`` (see :func:`can_fuse`) a
    rectified update is torch's fused Adam step with learning rate ``lr r_t``, epsilon
    ``eps / sqrt(1 - beta2^t)`` and decoupled decay ``wd / r_t``: it computes
    ``p - lr r_t / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps / sqrt(1 - beta2^t))``,
    the RAdam step above.
    """
    beta1, beta2 = betas
    rect = rectification(step, beta2, threshold)
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    if fused and rect is not None and rect > 0:
        kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
        steps = [torch.tensor(float(step), device=params[0].device)] * len(params)
        kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=lr * rect, beta1=beta1, beta2=beta2,
               weight_decay=weight_decay / rect if decoupled else weight_decay, eps=eps / math.sqrt(bias2),
               amsgrad=False, maximize=False)
        return
    for p, grad, exp_avg, exp_avg_sq in zip(params, grads, exp_avgs, exp_avg_sqs):
        if weight_decay != 0 and not decoupled:
            grad = grad.add(p, alpha=weight_decay)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        if weight_decay != 0 and decoupled:
            p.add_(p, alpha=-weight_decay * lr)
        if rect is None:
            p.add_(exp_avg, alpha=-lr / bias1)
        else:
            p.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-lr * rect * math.sqrt(bias2) / bias1)


@OPTIMIZERS.register()
class Ranger(Optimizer):
    """RAdam with Lookahead (``alpha``: slow-weight interpolation, ``k``: steps between syncs).

    ``fused``: use torch's fused Adam kernel for rectified steps where it exists (see
    :func:`can_fuse`); False always steps with plain tensor operations.
    """

    def __init__(self, params: Iterable, lr: Positive = 1e-3, alpha: float = 0.5, k: int = 6,
                 N_sma_threshhold: float = 5.0, betas: tuple[float, float] = (0.95, 0.999),
                 eps: float = 1e-5, weight_decay: float = 0.0, fused: bool = True):
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
        self.fused = fused

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            by_step: dict[int, list[torch.Tensor]] = {}
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
                state["step"] += 1
                by_step.setdefault(state["step"], []).append(p)
            for step, params in by_step.items():
                states = [self.state[p] for p in params]
                radam_update(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                             [s["exp_avg_sq"] for s in states], step, lr=group["lr"], betas=group["betas"],
                             eps=group["eps"], weight_decay=group["weight_decay"], decoupled=True,
                             threshold=group["N_sma_threshhold"], fused=self.fused and can_fuse(params))
                if step % group["k"] == 0:
                    for p, state in zip(params, states):
                        state["slow_buffer"].lerp_(p, group["alpha"])
                        p.copy_(state["slow_buffer"])
        return loss


@OPTIMIZERS.register("RAdam", bounds={"lr": Above(0), "weight_decay": AtLeast(0)})
class RAdam(torch.optim.RAdam):
    """``torch.optim.RAdam`` (same arguments, state and steps) stepping through :func:`radam_update`'s
    fused kernel where it can; torch's own step otherwise (capturable, differentiable, maximize,
    complex parameters, or a device or dtype without the kernel)."""

    def _fusable(self) -> bool:
        for group in self.param_groups:
            if group["maximize"] or group["capturable"] or group["differentiable"]:
                return False
            params = [p for p in group["params"] if p.grad is not None]
            if params and (any(p.is_complex() or p.grad.is_sparse for p in params) or not can_fuse(params)):
                return False
        return True

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        if not self._fusable():
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, steps)
            by_step: dict[int, list[int]] = {}
            for index, step in enumerate(steps):
                step += 1
                by_step.setdefault(int(step), []).append(index)
            for step, indices in by_step.items():
                radam_update([params[i] for i in indices], [grads[i] for i in indices],
                             [exp_avgs[i] for i in indices], [exp_avg_sqs[i] for i in indices], step,
                             lr=group["lr"], betas=group["betas"], eps=group["eps"],
                             weight_decay=group["weight_decay"],
                             decoupled=group.get("decoupled_weight_decay", False), threshold=5.0, fused=True)
        return loss
