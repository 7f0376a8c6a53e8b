"""Checkpoints: atomic writes and safe reads (tensors and plain containers only)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

FORMAT = "ce-retrieval-checkpoint"


class CheckpointError(ValueError):
    """A missing or unreadable checkpoint, described in one line naming the file."""


def save_checkpoint(path: Path, state: dict) -> Path:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename.

    An interrupted save leaves the previous file intact and no partial file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".partial-{os.getpid()}")
    try:
        torch.save({"format": FORMAT, **state}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Uses ``torch.load(weights_only=True)``: nothing in the file can execute code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint of this project ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of this project (no '{FORMAT}' format marker)")
    return state
