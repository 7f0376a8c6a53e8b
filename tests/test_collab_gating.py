"""The factorised collaborative gating (FactorisedGate) against its definition, one gate input per pair."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from model.ce import CEConfig, CENet

EXPERTS = {"appearance": 48, "motion": 40, "scene": 32, "face": 24, "audio": 16}


def ce_module(dim: int, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    config = CEConfig(feat_dims=dict(EXPERTS), text_dim=12, ce_shared_dim=dim,
                      vlad_clusters={"text": 0}, **options)
    return CENet(config).ce


def inputs(batch: int, dim: int, seed: int = 1) -> tuple[dict, dict]:
    gen = torch.Generator().manual_seed(seed)
    embds = {name: F.normalize(torch.randn(batch, dim, generator=gen), dim=1) for name in EXPERTS}
    ind = {name: (torch.rand(batch, generator=gen) > 0.3).float() for name in EXPERTS}
    ind["appearance"][:] = 1
    ind["face"][:3] = 0
    ind["audio"][:3] = 0  # samples 0-2 have neither face nor audio
    return embds, ind


def gate_both_ways(module: torch.nn.Module, embds: dict, ind: dict, train: bool) -> tuple[list, list]:
    """Outputs, parameter gradients and buffers of the factorised and the definition's gating."""
    results = []
    for factorised in (True, False):
        net = copy.deepcopy(module).train(train)
        net.factorised_gating = factorised
        out = net._collaborative_gating({k: v.clone() for k, v in embds.items()}, ind)
        weights = torch.linspace(-1, 1, out["appearance"].numel()).reshape(out["appearance"].shape)
        sum((out[name] * weights.roll(i)).sum() for i, name in enumerate(out)).backward()
        grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
        results.append((out, grads, dict(net.named_buffers())))
    return results


@pytest.mark.parametrize("options", [
    {},
    {"include_self": False},
    {"num_g_layers": 1},
    {"num_g_layers": 2, "num_h_layers": 1},
    {"use_bn_reason": False, "use_mish": False},
    {"use_ce": "triplet", "include_self": False},
    {"use_ce": "triplet", "num_g_layers": 2},
])
@pytest.mark.parametrize("train", [True, False])
def test_factorised_gating_is_the_per_pair_gating(options, train):
    module = ce_module(32, **options)
    embds, ind = inputs(16, 32)
    (fast, fast_grads, fast_buffers), (ref, ref_grads, ref_buffers) = gate_both_ways(module, embds, ind, train)
    for name in EXPERTS:
        torch.testing.assert_close(fast[name], ref[name], atol=1e-5, rtol=0)
    assert fast_grads.keys() == ref_grads.keys() and "g_reason_1.weight" in fast_grads
    for name, grad in ref_grads.items():  # sums over the batch: 1e-5 of the largest entry
        torch.testing.assert_close(fast_grads[name], grad, atol=1e-5 * max(1.0, grad.abs().max().item()), rtol=0)
    for name in ref_buffers:
        torch.testing.assert_close(fast_buffers[name], ref_buffers[name], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_factorised_gating_at_full_width():
    """The MSR-VTT CE shape (9 experts would be slower; 5 at D = 768, batch 64) within 1e-5."""
    module = ce_module(768)
    embds, ind = inputs(64, 768)
    (fast, _, _), (ref, _, _) = gate_both_ways(module, embds, ind, train=True)
    for name in EXPERTS:
        torch.testing.assert_close(fast[name], ref[name], atol=1e-5, rtol=0)


def test_factorised_gating_keeps_parameter_names():
    module = ce_module(32)
    names = [name for name, _ in module.named_parameters()]
    assert "g_reason_1.weight" in names and "g_reason_shared.5.weight" in names
    assert module.g_reason_1.weight.shape == (32, 64)
