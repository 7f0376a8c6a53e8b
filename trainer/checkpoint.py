"""Checkpoints: atomic writes and safe reads (tensors and plain containers only)."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from utils.atomic import atomic_path

FORMAT = "ce-retrieval-checkpoint"
# torch.save's format before torch 1.6 opens with its magic number, pickled with protocol 2.
LEGACY_HEADER = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)[:-1]


def is_own_checkpoint(state: object) -> bool:
    """True for a checkpoint dict written by :func:`save_checkpoint` (it carries the format marker)."""
    return isinstance(state, dict) and state.get("format") == FORMAT


class CheckpointError(ValueError):
    """A missing or unreadable checkpoint, described in one line naming the file."""


def save_checkpoint(path: Path, state: dict) -> Path:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename.

    An interrupted save leaves the previous file intact and no partial file behind.
    """
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return Path(path)


def require_torch_file(path: Path) -> None:
    """CheckpointError (one line naming ``path``) unless it exists and is in a format torch.save
    writes: a zip archive, or the legacy format that opens with torch's magic number."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if zipfile.is_zipfile(path):
        return
    with open(path, "rb") as handle:
        if handle.read(len(LEGACY_HEADER)) == LEGACY_HEADER:
            return
    raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither torch.save's zip format nor its legacy "
                          f"one, e.g. a plain pickle); expected a file written by torch.save, such as a run's checkpoint-epoch<N>.pth")


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Uses ``torch.load(weights_only=True)``: nothing in the file can execute code.
    """
    path = Path(path)
    require_torch_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint of this project ({reason[:200]})") from None
    if not is_own_checkpoint(state):
        raise CheckpointError(f"{path}: not a checkpoint of this project (no '{FORMAT}' format marker)")
    return state
