"""Optimisers and learning-rate schedulers available to configs, by name."""
from __future__ import annotations

import torch

from trainer import ranger  # noqa: F401  (registers Ranger and RAdam)
from utils.registry import OPTIMIZERS, SCHEDULERS

for _cls in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
    OPTIMIZERS.add(_cls.__name__, _cls)
for _cls in (torch.optim.lr_scheduler.StepLR, torch.optim.lr_scheduler.CosineAnnealingLR,
             torch.optim.lr_scheduler.ExponentialLR):
    SCHEDULERS.add(_cls.__name__, _cls)
