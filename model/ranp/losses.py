"""RANP's relevance-aware losses (ICIAP 2022): RAN, RANP and NormSoftmax+RANP.

They are called as ``loss(sims, relevance)``, both ``[B, B]`` indexed ``[video, caption]``,
pair ``(i, i)`` the ground truth and ``relevance[i, j]`` the relevance of caption ``j`` to
video ``i`` (``data_loader.ranp.relevance``); their ``batch_parts`` passes them the model's
``[caption, video]`` ``cross_view_conf_matrix`` transposed and the batch's relevance.
Directions follow the original RANP code: ``i2t`` ranks captions for each video (rows),
``t2i`` videos for each caption (columns), ``bi`` is their sum.
"""
from __future__ import annotations

import torch

from model.loss import RankingLoss, _log_softmax_both
from utils.config.options import Fraction
from utils.registry import LOSSES

DIRECTIONS = ("bi", "i2t", "t2i")


class RelevanceAwareLoss(RankingLoss):
    """Base of the losses called as ``loss(sims, relevance)``, both ``[B, B]`` ``[video, caption]``.

    ``threshold_pos``: a pair ``(i, j)``, ``i != j``, with ``relevance[i, j] >= threshold_pos``
    is a relevant positive, never pushed away as a negative.
    """

    needs_relevance = True

    def __init__(self, threshold_pos: Fraction):
        super().__init__()
        self.threshold_pos = threshold_pos

    def batch_parts(self, sims: torch.Tensor, relevance: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The loss of the ``[caption, video]`` ``sims`` turned ``[video, caption]``, as ``relevance`` is."""
        return {"loss": self(sims.t(), relevance)}

    def masks(self, sims: torch.Tensor, relevance: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(relevant, skip)``, bool ``[B, B]``: the off-diagonal pairs at or above
        ``threshold_pos`` (none without relevance), and those plus the diagonal (the pairs
        that are never negatives)."""
        n = sims.shape[0]
        if sims.ndim != 2 or sims.shape[1] != n:
            raise ValueError(f"expected a square [B, B] similarity matrix, got {tuple(sims.shape)}")
        diagonal = torch.eye(n, dtype=torch.bool, device=sims.device)
        if relevance is None:
            return torch.zeros_like(diagonal), diagonal
        if relevance.shape != sims.shape:
            raise ValueError(f"relevance {tuple(relevance.shape)} must match sims {tuple(sims.shape)}")
        relevant = (relevance >= self.threshold_pos) & ~diagonal
        return relevant, relevant | diagonal


def _reduce(i2t: torch.Tensor, t2i: torch.Tensor, direction: str, max_violation: bool) -> torch.Tensor:
    """Reduce hinge costs ``[B, B]``: the hardest per query (``i2t`` over each row, ``t2i`` over
    each column) summed and divided by ``B``, or the sum over ``B(B - 1)`` pairs."""
    n = i2t.shape[0]
    if max_violation:
        row_cost, col_cost = i2t.amax(dim=1).sum() / n, t2i.amax(dim=0).sum() / n
    else:
        pairs = max(n * (n - 1), 1)
        row_cost, col_cost = i2t.sum() / pairs, t2i.sum() / pairs
    return {"bi": row_cost + col_cost, "i2t": row_cost, "t2i": col_cost}[direction]


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return direction


@LOSSES.register()
class RANLoss(RelevanceAwareLoss):
    """Relevance-aware negatives: the VSE triplet loss with relevant pairs never used as negatives.

    With ``S = sims`` and ``m = margin``, the costs ``i2t[i, j] = relu(m + S[i, j] - S[i, i])``
    and ``t2i[i, j] = relu(m + S[i, j] - S[j, j])`` are zeroed on the diagonal and where
    ``relevance[i, j] >= threshold_pos``, then reduced: ``max_violation`` keeps the hardest
    negative of every query (VSE++), otherwise all ``B(B - 1)`` pairs are averaged. Without a
    relevance matrix this is plain VSE++. Note that a threshold of 1.0 still masks pairs whose
    relevance is exactly 1.0.
    """

    def __init__(self, margin: float = 0.2, threshold_pos: Fraction = 0.15,
                 max_violation: bool = True, direction: str = "bi"):
        super().__init__(threshold_pos)
        self.margin = margin
        self.max_violation = max_violation
        self.direction = _check_direction(direction)

    def forward(self, sims: torch.Tensor, relevance: torch.Tensor | None = None) -> torch.Tensor:
        """sims, relevance: ``[B, B]`` ``[video, caption]`` -> scalar loss."""
        _, skip = self.masks(sims, relevance)
        return self._negative_term(sims, skip)

    def _negative_term(self, sims: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The hinge over the negatives (pairs outside ``skip``) -> scalar."""
        diag = sims.diagonal()
        i2t = torch.relu(self.margin + sims - diag[:, None]).masked_fill(skip, 0)
        t2i = torch.relu(self.margin + sims - diag[None, :]).masked_fill(skip, 0)
        return _reduce(i2t, t2i, self.direction, self.max_violation)


@LOSSES.register()
class ContrastiveLoss(RANLoss):
    """HGR's (VSE++) hinge loss, ``RANLoss`` without relevance: no pair but the diagonal is
    exempt from being a negative. It is the loss of HGR's baseline runs (RANP's
    ``threshold_pos = 1``, whose code then ignores relevance altogether)."""

    needs_relevance = False

    def __init__(self, margin: float = 0.2, max_violation: bool = True, direction: str = "bi"):
        super().__init__(margin, threshold_pos=1.0, max_violation=max_violation, direction=direction)

    def batch_parts(self, sims: torch.Tensor, relevance: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The loss of the ``[caption, video]`` ``sims`` (``relevance`` is not used)."""
        return {"loss": self(sims.t())}


@LOSSES.register()
class RANPLoss(RANLoss):
    """RAN plus relevance-aware positives: every negative is also ranked below the hardest
    relevant positive of its query.

    For video query ``i`` the hardest positive is ``hp[i] = min_{j relevant} S[i, j]`` (``j != i``,
    ``relevance[i, j] >= threshold_pos``); the term ``relu(margin_pos + S[i, j] - hp[i])`` runs
    over the same negatives as RAN and is reduced the same way; caption queries likewise over
    columns. The loss is the RAN term plus this term (``terms`` gives both).

    ``original_missing_positive``: by default a query without a relevant positive adds no
    positive term. The original code fills non-positives with 1.0 before the minimum, so such
    a query gets ``hp = 1.0`` (and every hardest positive is capped at 1.0): its negatives
    above ``1 - margin_pos`` are then penalised. True reproduces that.
    """

    def __init__(self, margin: float = 0.2, margin_pos: float = 0.2, threshold_pos: Fraction = 0.15,
                 max_violation: bool = True, direction: str = "bi",
                 original_missing_positive: bool = False):
        super().__init__(margin, threshold_pos, max_violation, direction)
        self.margin_pos = margin_pos
        self.original_missing_positive = original_missing_positive

    def positive_term(self, sims: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
        """sims, relevance: ``[B, B]`` ``[video, caption]`` -> scalar hardest-positive term."""
        return self._positive_term(sims, *self.masks(sims, relevance))

    def _positive_term(self, sims: torch.Tensor, relevant: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        fill = 1.0 if self.original_missing_positive else torch.inf
        candidates = sims.masked_fill(~relevant, fill)
        i2t = torch.relu(self.margin_pos + sims - candidates.amin(dim=1)[:, None])
        t2i = torch.relu(self.margin_pos + sims - candidates.amin(dim=0)[None, :])
        if not self.original_missing_positive:
            i2t = i2t.masked_fill(~relevant.any(dim=1, keepdim=True), 0)
            t2i = t2i.masked_fill(~relevant.any(dim=0, keepdim=True), 0)
        return _reduce(i2t.masked_fill(skip, 0), t2i.masked_fill(skip, 0), self.direction, self.max_violation)

    def terms(self, sims: torch.Tensor, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(RAN term, hardest-positive term)``, two scalars."""
        relevant, skip = self.masks(sims, relevance)
        return self._negative_term(sims, skip), self._positive_term(sims, relevant, skip)

    def forward(self, sims: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
        """sims, relevance: ``[B, B]`` ``[video, caption]`` -> scalar loss (sum of ``terms``)."""
        negative, positive = self.terms(sims, relevance)
        return negative + positive


@LOSSES.register()
class NormSoftmaxRANPLoss(RelevanceAwareLoss):
    """NormSoftmax with relevance-aware positives: the hardest relevant positive pair of every
    query is averaged in alongside the ground-truth pair.

    With ``A = log_softmax(S / T)`` over captions (rows: videos) and ``A' = log_softmax(S.t() / T)``
    over videos (rows: captions), ``hv[c]`` the least similar relevant video of caption ``c``
    and ``hc[v]`` the least similar relevant caption of video ``v`` (relevant: off-diagonal,
    ``relevance >= threshold_pos``), the loss is
    ``-mean(diag A, A[hv[c], c] for all c) - mean(diag A', A'[hc[v], v] for all v)``.

    ``original_transpose_bug``: the original reads ``A[c, hv[c]]`` (video ``c``, caption
    ``hv[c]``), the transpose of the pair it selected, usually not a relevant pair at all.
    True reproduces that.

    ``original_missing_positive``: by default a query without a relevant positive adds no
    extra entry. The original adds one anyway, for the candidate ``torch.topk`` returns among
    all-equal values (implementation-defined). True reproduces that; it also fills
    non-positives with 1.1 rather than excluding them, as the original does.
    """

    def __init__(self, temperature: float = 0.05, threshold_pos: Fraction = 0.15,
                 original_transpose_bug: bool = False, original_missing_positive: bool = False):
        super().__init__(threshold_pos)
        self.temperature = temperature
        self.original_transpose_bug = original_transpose_bug
        self.original_missing_positive = original_missing_positive

    def forward(self, sims: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
        """sims, relevance: ``[B, B]`` ``[video, caption]`` -> scalar loss."""
        relevant, _ = self.masks(sims, relevance)
        fill = 1.1 if self.original_missing_positive else torch.inf
        candidates = sims.masked_fill(~relevant, fill)
        hardest_video = candidates.topk(1, dim=0, largest=False).indices[0]
        hardest_caption = candidates.topk(1, dim=1, largest=False).indices[:, 0]
        rows, cols = _log_softmax_both(sims, self.temperature)
        query = torch.arange(sims.shape[0], device=sims.device)
        if self.original_transpose_bug:
            rows_extra = rows[query, hardest_video]
        else:
            rows_extra = rows[hardest_video, query]
        cols_extra = cols[hardest_caption, query]
        if not self.original_missing_positive:
            rows_extra = rows_extra[relevant.any(dim=0)]
            cols_extra = cols_extra[relevant.any(dim=1)]
        return (-torch.cat([rows.diagonal(), rows_extra]).mean()
                - torch.cat([cols.diagonal(), cols_extra]).mean())
