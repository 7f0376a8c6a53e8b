"""Optimisers and learning-rate schedulers available to configs, by name."""
from __future__ import annotations

import torch

from trainer import ranger  # noqa: F401  (registers Ranger and RAdam)
from utils.config.options import Above, AtLeast
from utils.registry import OPTIMIZERS, SCHEDULERS

for _cls in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
    OPTIMIZERS.add(_cls.__name__, _cls, bounds={"lr": Above(0), "weight_decay": AtLeast(0), "momentum": AtLeast(0)})
SCHEDULERS.add("StepLR", torch.optim.lr_scheduler.StepLR, bounds={"step_size": AtLeast(1), "gamma": Above(0)})
SCHEDULERS.add("CosineAnnealingLR", torch.optim.lr_scheduler.CosineAnnealingLR, bounds={"T_max": AtLeast(1)})
SCHEDULERS.add("ExponentialLR", torch.optim.lr_scheduler.ExponentialLR, bounds={"gamma": Above(0)})
