"""Ranking losses on a square text-video similarity matrix."""
from __future__ import annotations

import torch
from torch import nn

from utils.registry import LOSSES


@LOSSES.register()
class MaxMarginRankingLoss(nn.Module):
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
