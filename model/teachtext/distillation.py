"""TeachText distillation: teachers' text-video similarities as a target for the student's.

Shapes: B videos in a batch, each with the one caption the student sees; D an expert's
embedding width (per teacher and expert).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

Embeddings = dict[str, torch.Tensor]


def teacher_similarity(text: Embeddings, video: Embeddings) -> torch.Tensor:
    """One teacher's similarities [B, B] (rows captions, columns videos): the plain sum over its
    experts of the inner products of text ``text[m]`` [B, D] and video ``video[m]`` [B, D]."""
    return sum(text[m] @ video[m].t() for m in video)


def distillation_target(teachers: Sequence[tuple[Embeddings, Embeddings]]) -> torch.Tensor:
    """The mean over teachers of :func:`teacher_similarity`, for (text, video) pairs: [B, B]."""
    return torch.stack([teacher_similarity(text, video) for text, video in teachers]).mean(dim=0)


def distillation_loss(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SmoothL1 (beta 1, mean over all B*B entries) between the student's similarities
    ``student`` [B, B] and the teachers' ``target`` [B, B]; the target gets no gradient."""
    return F.smooth_l1_loss(student, target.detach().to(student.dtype))
