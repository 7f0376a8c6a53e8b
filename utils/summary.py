"""A short module summary: each top-level block with its trainable parameter count."""
from __future__ import annotations

from torch import nn


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def module_summary(model: nn.Module, depth: int = 2) -> str:
    """Lines ``name  ClassName  params`` for modules up to ``depth`` levels, then the total."""
    lines = [f"{type(model).__name__}"]
    for name, module in model.named_modules():
        level = name.count(".") + 1
        if not name or level > depth:
            continue
        lines.append(f"{'  ' * level}{name:<40s} {type(module).__name__:<32s} {count_trainable(module):>14,d}")
    lines.append(f"Trainable parameters: {count_trainable(model):,d}")
    return "\n".join(lines)
