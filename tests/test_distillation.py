"""The TeachText distillation term against a direct computation, and teacher gathering."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data_loader.teachtext.teachers import Teacher, gather_teachers
from model.teachtext.distillation import distillation_loss, distillation_target, teacher_similarity


def random_teachers(generator: torch.Generator, batch: int) -> list[tuple[dict, dict]]:
    """Two teachers with different experts and widths: (text, video) of expert -> [B, D]."""
    shapes = [{"rgb": 4, "audio": 3}, {"rgb": 5, "scene": 2, "speech": 6}]
    return [({m: torch.randn(batch, d, generator=generator) for m, d in dims.items()},
             {m: torch.randn(batch, d, generator=generator) for m, d in dims.items()}) for dims in shapes]


def loop_loss(student: np.ndarray, teachers: list[tuple[dict, dict]]) -> float:
    """Entry by entry: mean over teachers of the summed expert inner products, then SmoothL1."""
    batch = student.shape[0]
    total = 0.0
    for i in range(batch):
        for j in range(batch):
            target = 0.0
            for text, video in teachers:
                target += sum(float(np.dot(text[m][i].numpy(), video[m][j].numpy())) for m in video)
            target /= len(teachers)
            diff = abs(student[i, j] - target)
            total += 0.5 * diff ** 2 if diff < 1 else diff - 0.5
    return total / batch ** 2


def test_loss_equals_a_loop_over_pairs_teachers_and_experts():
    generator = torch.Generator().manual_seed(0)
    teachers = random_teachers(generator, batch=5)
    target = distillation_target(teachers)
    # the student is near the target for half the pairs (quadratic part) and far for the rest (linear part)
    offsets = torch.where(torch.rand(5, 5, generator=generator) < 0.5, 0.3, 2.5)
    student = target + offsets * torch.sign(torch.randn(5, 5, generator=generator))
    got = distillation_loss(student, target).item()
    assert got == pytest.approx(loop_loss(student.numpy(), teachers), rel=1e-5)


def test_loss_is_zero_when_the_student_matches_the_teachers():
    teachers = random_teachers(torch.Generator().manual_seed(1), batch=4)
    target = distillation_target(teachers)
    assert distillation_loss(target.clone(), target).item() == 0.0


def test_one_teacher_is_its_summed_inner_products_and_the_target_gets_no_gradient():
    text, video = random_teachers(torch.Generator().manual_seed(2), batch=3)[0]
    expected = text["rgb"] @ video["rgb"].t() + text["audio"] @ video["audio"].t()
    torch.testing.assert_close(teacher_similarity(text, video), expected)
    student = torch.zeros(3, 3, requires_grad=True)
    target = expected.clone().requires_grad_(True)
    distillation_loss(student, target).backward()
    assert target.grad is None and student.grad is not None


def test_gathering_picks_the_rows_of_the_batch():
    teacher = Teacher(video={"rgb": torch.arange(12.0).reshape(6, 2)},
                      text={"rgb": torch.arange(20.0).reshape(10, 2)})
    ((text, video),) = gather_teachers([teacher], torch.tensor([4, 1]), torch.tensor([9, 0]))
    assert video["rgb"].tolist() == [[8, 9], [2, 3]]
    assert text["rgb"].tolist() == [[18, 19], [0, 1]]
