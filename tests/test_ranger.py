"""Ranger (RAdam + Lookahead) against its formulas; torch's RAdam against the same RAdam core."""
from __future__ import annotations

import inspect
import io
import math

import pytest
import torch

from trainer.ranger import FUSED_ON_CPU, RAdam, Ranger

needs_fused = pytest.mark.skipif(not FUSED_ON_CPU, reason="torch has a fused Adam kernel on the CPU from 2.4")

GRADS = [[0.5, -1.0, 2.0], [0.3, 0.2, -1.5], [-0.4, 0.9, 1.1], [1.2, -0.3, 0.0], [0.1, 0.1, -0.2],
         [-0.7, 0.6, 0.4], [0.2, -0.8, 0.3], [0.9, 0.05, -0.6], [-0.1, 0.3, 0.7], [0.4, -0.2, -0.9],
         [0.6, 0.7, 0.1], [-0.3, -0.4, 0.5], [0.8, 0.2, -0.1]]
START = [1.0, -2.0, 0.5]


def reference(grads: list[list[float]], lr: float, betas: tuple[float, float], eps: float, weight_decay: float,
              k: int | None = None, alpha: float = 0.5) -> list[list[float]]:
    """Parameter values after each step, from the RAdam (+ Lookahead) formulas in plain floats."""
    beta1, beta2 = betas
    p, slow = list(START), list(START)
    m, v = [0.0] * len(p), [0.0] * len(p)
    n_max = 2 / (1 - beta2) - 1
    history = []
    for t, g in enumerate(grads, start=1):
        m = [beta1 * a + (1 - beta1) * b for a, b in zip(m, g)]
        v = [beta2 * a + (1 - beta2) * b * b for a, b in zip(v, g)]
        n_t = n_max - 2 * t * beta2 ** t / (1 - beta2 ** t)
        p = [x - weight_decay * lr * x for x in p]
        if n_t > 5:
            r = math.sqrt((1 - beta2 ** t) * (n_t - 4) * (n_t - 2) * n_max / ((n_max - 4) * n_t * (n_max - 2)))
            p = [x - lr * r / (1 - beta1 ** t) * a / (math.sqrt(b) + eps) for x, a, b in zip(p, m, v)]
        else:
            p = [x - lr * a / (1 - beta1 ** t) for x, a in zip(p, m)]
        if k is not None and t % k == 0:
            slow = [s + alpha * (x - s) for s, x in zip(slow, p)]
            p = list(slow)
        history.append(p)
    return history


def run(optimizer_cls: type, grads: list[list[float]], **kwargs) -> list[list[float]]:
    """Parameter values after each step of ``optimizer_cls`` fed ``grads`` (float64)."""
    param = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_cls([param], **kwargs)
    history = []
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        history.append(param.detach().tolist())
    return history


def test_first_step_by_hand():
    # t = 1: m = 0.05 g, bias correction 1 / 0.05, not rectified: p - wd*lr*p - lr*g.
    lr, wd = 0.1, 0.001
    (after,) = run(Ranger, GRADS[:1], lr=lr, weight_decay=wd)
    assert after == pytest.approx([x - wd * lr * x - lr * g for x, g in zip(START, GRADS[0])], abs=1e-15)


@pytest.mark.parametrize("fused", [pytest.param(True, marks=needs_fused), False])
def test_ranger_follows_radam_and_lookahead_formulas(fused):
    # 13 steps: un-rectified up to t = 5, rectified from t = 6, Lookahead syncs at t = 6 and 12.
    got = run(Ranger, GRADS, lr=0.1, weight_decay=0.001, fused=fused)
    want = reference(GRADS, lr=0.1, betas=(0.95, 0.999), eps=1e-5, weight_decay=0.001, k=6)
    for step, (a, b) in enumerate(zip(got, want), start=1):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12), f"step {step}"


@pytest.mark.skipif("decoupled_weight_decay" not in inspect.signature(torch.optim.RAdam).parameters,
                    reason="torch.optim.RAdam decouples weight decay from torch 2.2")
@pytest.mark.parametrize("radam", [torch.optim.RAdam, RAdam])
def test_torch_radam_with_decoupled_decay_is_the_original_radam(radam):
    got = run(radam, GRADS, lr=0.01, weight_decay=0.01, decoupled_weight_decay=True)
    want = reference(GRADS, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    for step, (a, b) in enumerate(zip(got, want), start=1):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12), f"step {step}"


def random_problem(seed: int = 0) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Float32 parameters of several shapes and 14 steps of gradients for them."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(96, 40), (40,), (7, 3, 5), (1,)]
    params = [torch.randn(shape, generator=gen) for shape in shapes]
    grads = [[torch.randn(shape, generator=gen) * 10 ** (i % 3 - 1) for i, shape in enumerate(shapes)]
             for _ in range(14)]
    return params, grads


def steps_of(optimizer_cls: type, params: list[torch.Tensor], grads: list[list[torch.Tensor]],
             **kwargs) -> list[list[torch.Tensor]]:
    params = [p.clone().requires_grad_() for p in params]
    optimizer = optimizer_cls(params, **kwargs)
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        optimizer.step()
        history.append([p.detach().clone() for p in params])
    return history


def assert_same_steps(got: list[list[torch.Tensor]], want: list[list[torch.Tensor]]) -> None:
    for step, (a, b) in enumerate(zip(got, want), start=1):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6, msg=lambda m, step=step: f"step {step}: {m}")


@needs_fused
def test_fused_ranger_takes_the_steps_of_plain_tensor_operations(monkeypatch):
    calls = []
    kernel = torch._fused_adamw_
    monkeypatch.setattr(torch, "_fused_adamw_", lambda *args, **kwargs: calls.append(1) or kernel(*args, **kwargs))
    params, grads = random_problem()
    kwargs = {"lr": 0.05, "weight_decay": 1e-3, "k": 5}
    fused = steps_of(Ranger, params, grads, fused=True, **kwargs)
    assert len(calls) == 9  # the rectified steps 6..14
    assert_same_steps(fused, steps_of(Ranger, params, grads, fused=False, **kwargs))
    assert len(calls) == 9


@needs_fused
@pytest.mark.parametrize("decoupled", [True, False])
def test_fused_radam_takes_the_steps_of_torch_radam(decoupled):
    params, grads = random_problem(1)
    kwargs = {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": decoupled}
    assert_same_steps(steps_of(RAdam, params, grads, **kwargs), steps_of(torch.optim.RAdam, params, grads, **kwargs))


def test_converges_on_a_quadratic():
    torch.manual_seed(0)
    target = torch.randn(20)
    x = torch.zeros(20, requires_grad=True)
    optimizer = Ranger([x], lr=0.1)
    start = ((x - target) ** 2).sum().item()
    for _ in range(300):
        optimizer.zero_grad()
        ((x - target) ** 2).sum().backward()
        optimizer.step()
    assert ((x - target) ** 2).sum().item() < 1e-5 * start


def test_state_dict_round_trip_gives_identical_steps():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    inputs, targets = torch.randn(32, 6), torch.randn(32, 2)

    def train(net: torch.nn.Module, optimizer: Ranger, steps: int) -> None:
        for _ in range(steps):
            optimizer.zero_grad()
            ((net(inputs) - targets) ** 2).mean().backward()
            optimizer.step()

    optimizer = Ranger(model.parameters(), lr=0.1, weight_decay=1e-3)
    train(model, optimizer, 7)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    resumed.load_state_dict(saved["model"])
    resumed_optimizer = Ranger(resumed.parameters(), lr=0.5)
    resumed_optimizer.load_state_dict(saved["optimizer"])
    train(model, optimizer, 8)
    train(resumed, resumed_optimizer, 8)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs", [{"lr": 0.0}, {"alpha": 1.5}, {"k": 0}, {"eps": 0.0}])
def test_invalid_hyperparameters_are_refused(kwargs):
    with pytest.raises(ValueError, match="Ranger: "):
        Ranger([torch.zeros(1, requires_grad=True)], **kwargs)
