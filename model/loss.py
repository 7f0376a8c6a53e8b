"""Ranking losses on a square text-video similarity matrix.

Every loss is a :class:`RankingLoss`: the trainer calls ``loss.batch_parts(sims, relevance)``
with a batch's ``[B, B]`` ``[caption, video]`` similarities (the model's
``cross_view_conf_matrix``) and, when ``loss.needs_relevance``, its ``[video, caption]``
relevance, and gets named scalars summing to the loss.

``MaxMarginRankingLoss`` (CE's loss) is called as ``loss(sims)`` with ``sims`` ``[B, B]``
indexed ``[caption, video]``. ``NormSoftmaxLoss`` takes ``sims`` alone and is symmetric in its
two axes. RANP's relevance-aware losses are in ``model/ranp/losses.py``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from utils.registry import LOSSES


class RankingLoss(nn.Module):
    """Base of the registered losses: what a trainer needs from one."""

    needs_relevance = False  # whether batch_parts wants the batch's relevance

    def batch_parts(self, sims: torch.Tensor, relevance: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """A training batch's loss from its ``[B, B]`` ``[caption, video]`` similarities (and
        ``[video, caption]`` relevance where ``needs_relevance``), as named scalars summing to it."""
        return {"loss": self(sims)}


@LOSSES.register()
class MaxMarginRankingLoss(RankingLoss):
    """Bidirectional hinge loss with the matching pairs on the diagonal.

    For S [n, n] (rows text, columns video), every ordered pair (i, j) contributes
    ``relu(margin - S_ii + S_ij)`` (text -> video) and ``relu(margin - S_ii + S_ji)``
    (video -> text). ``fix_norm`` drops the 2n terms with i == j (each is exactly ``margin``)
    and averages the remaining 2n(n-1); without it the mean runs over all 2n^2 terms.
    """

    def __init__(self, margin: float = 1.0, fix_norm: bool = True):
        super().__init__()
        self.margin = margin
        self.fix_norm = fix_norm

    def forward(self, sims: torch.Tensor) -> torch.Tensor:
        """sims: [n, n] -> scalar loss, the sum of :meth:`parts`."""
        parts = self.parts(sims)
        return parts["t2v"] + parts["v2t"]

    def batch_parts(self, sims: torch.Tensor, relevance: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The text -> video and video -> text terms (``relevance`` is not used)."""
        return self.parts(sims)

    def parts(self, sims: torch.Tensor) -> dict[str, torch.Tensor]:
        """sims: [n, n] -> the text -> video and video -> text terms (scalars summing to the loss)."""
        diag = sims.diagonal()[:, None]
        t2v = torch.relu(self.margin - diag + sims)
        v2t = torch.relu(self.margin - diag + sims.t())
        if not self.fix_norm:
            count = 2 * sims.numel()
            return {"t2v": t2v.sum() / count, "v2t": v2t.sum() / count}
        n = sims.shape[0]
        off = ~torch.eye(n, dtype=torch.bool, device=sims.device)
        count = max(2 * n * (n - 1), 1)
        return {"t2v": t2v[off].sum() / count, "v2t": v2t[off].sum() / count}


def _log_softmax_both(sims: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, B]`` -> (``log_softmax(S / T)`` over each row, the same over each column, transposed)."""
    return F.log_softmax(sims / temperature, dim=1), F.log_softmax(sims.t() / temperature, dim=1)


@LOSSES.register()
class NormSoftmaxLoss(RankingLoss):
    """InfoNCE in both directions at a temperature: with ``A = log_softmax(S / T)`` over each
    row and ``A' = log_softmax(S.t() / T)`` over each column, ``-mean(diag A) - mean(diag A')``.

    Symmetric in the axes of ``sims``, so either layout may be passed.
    """

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        self.temperature = temperature

    def forward(self, sims: torch.Tensor) -> torch.Tensor:
        """sims: ``[B, B]``, ground truth on the diagonal -> scalar loss."""
        rows, cols = _log_softmax_both(sims, self.temperature)
        return -rows.diagonal().mean() - cols.diagonal().mean()
