"""MaxMarginRankingLoss against an explicit sum over pairs."""
from __future__ import annotations

import pytest
import torch

from model.loss import MaxMarginRankingLoss


def explicit(sims: torch.Tensor, margin: float, fix_norm: bool) -> float:
    n = sims.shape[0]
    terms = []
    for i in range(n):
        for j in range(n):
            if fix_norm and i == j:
                continue
            terms.append(max(0.0, margin - (sims[i, i] - sims[i, j]).item()))
            terms.append(max(0.0, margin - (sims[i, i] - sims[j, i]).item()))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("fix_norm", [True, False])
def test_matches_explicit_pair_sum(fix_norm):
    sims = torch.randn(7, 7, generator=torch.Generator().manual_seed(0))
    loss = MaxMarginRankingLoss(margin=0.3, fix_norm=fix_norm)(sims)
    assert loss.item() == pytest.approx(explicit(sims, 0.3, fix_norm), rel=1e-6)


def test_zero_when_positives_beat_negatives_by_the_margin():
    sims = torch.eye(4) * 2.0
    assert MaxMarginRankingLoss(margin=1.0)(sims).item() == 0.0
    # without fix_norm the 2n diagonal terms still add margin each: 2n * 1 / 2n^2 = 1/n
    assert MaxMarginRankingLoss(margin=1.0, fix_norm=False)(sims).item() == pytest.approx(0.25)


def test_without_fix_norm_diagonal_terms_add_the_margin():
    sims = torch.zeros(3, 3)
    assert MaxMarginRankingLoss(margin=0.5, fix_norm=False)(sims).item() == pytest.approx(0.5)
    assert MaxMarginRankingLoss(margin=0.5, fix_norm=True)(sims).item() == pytest.approx(0.5)


def test_gradient_pushes_positive_up():
    sims = torch.zeros(3, 3, requires_grad=True)
    MaxMarginRankingLoss(margin=0.5)(sims).backward()
    assert (sims.grad.diagonal() < 0).all()


@pytest.mark.parametrize("fix_norm", [True, False])
def test_parts_are_the_two_directions_and_sum_to_the_loss(fix_norm):
    sims = torch.randn(5, 5, generator=torch.Generator().manual_seed(1))
    loss = MaxMarginRankingLoss(margin=0.4, fix_norm=fix_norm)
    parts = loss.parts(sims)
    assert set(parts) == {"t2v", "v2t"}
    # v2t on sims is t2v on the transpose
    assert parts["v2t"].item() == pytest.approx(loss.parts(sims.t())["t2v"].item(), rel=1e-6)
    assert (parts["t2v"] + parts["v2t"]).item() == pytest.approx(explicit(sims, 0.4, fix_norm), rel=1e-6)
    assert parts["t2v"].item() != pytest.approx(parts["v2t"].item())
