"""Numeric precision of the model's forward passes: float32, or bfloat16 under autocast.

With "bf16", matrix products (and the operations torch autocasts with them) run in bfloat16
while parameters, gradients and optimiser state stay float32; the model computes its
similarities in float32 (``model.ce_module.CEModule.similarity``), so losses and metrics are
float32 too.
"""
from __future__ import annotations

import contextlib

import torch

from utils.config.options import PRECISIONS
from utils.errors import ConfigError


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context to run forward passes in at ``precision`` on ``device``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ConfigError(f"trainer.precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
