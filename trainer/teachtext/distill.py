"""TeachText in the training loop: teachers loaded once, a distillation term for every batch."""
from __future__ import annotations

import torch

from data_loader.batches import Batch
from data_loader.teachtext.teachers import Teacher, gather_teachers
from model.teachtext.distillation import distillation_loss, distillation_target


class Distillation:
    """The distillation term of a training batch.

    The teachers' mean similarity of the batch's captions (the one each video was given) and
    videos is the target of the student's similarities; the term is their SmoothL1 distance,
    added to the ranking loss with ``weight``.
    """

    def __init__(self, teachers: list[Teacher], weight: float = 1.0):
        self.teachers = teachers
        self.weight = weight

    def batch_parts(self, student_sims: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """``student_sims`` [B, B] of ``batch`` (one caption per video; of the whole global batch
        when a rank holds a share of it) -> ``{"distil": weight * term}``, a part of the training
        loss like those of the ranking loss's ``batch_parts``."""
        device = student_sims.device
        video_rows, caption_rows = batch.global_rows or (batch.video_rows, batch.caption_rows[:, 0])
        pairs = [({m: t.to(device) for m, t in text.items()}, {m: v.to(device) for m, v in video.items()})
                 for text, video in gather_teachers(self.teachers, video_rows, caption_rows)]
        return {"distil": self.weight * distillation_loss(student_sims, distillation_target(pairs))}
