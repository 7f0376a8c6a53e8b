"""This project's checkpoints: atomic writes and safe reads (tensors and plain containers only)."""
from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import torch

from model.hgr.checkpoint import from_original as hgr_state_dict
from model.hgr.checkpoint import is_hgr_checkpoint
from trainer.checkpoints.original import from_original
from trainer.checkpoints.safe_load import safe_load
from utils.atomic import atomic_path
from utils.config.load import apply_overrides, config_of_checkpoint, load_config
from utils.config.resolved import Config
from utils.config.validate import validate
from utils.errors import CheckpointError

FORMAT = "ce-retrieval-checkpoint"
LOW_SPACE_BYTES = 64 << 20
"""Free space under which a failed checkpoint write is taken for a full disk."""


def is_own_checkpoint(state: object) -> bool:
    """True for a checkpoint dict written by :func:`save_checkpoint` (it carries the format marker)."""
    return isinstance(state, dict) and state.get("format") == FORMAT


def save_checkpoint(path: Path, state: dict) -> Path:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename.

    An interrupted save leaves the previous file intact and no partial file behind.
    """
    with atomic_path(path) as tmp:
        try:
            torch.save({"format": FORMAT, **state}, tmp)
        except RuntimeError as exc:  # torch's writer reports a failed write without its errno
            if shutil.disk_usage(tmp.parent).free < LOW_SPACE_BYTES:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
            raise
    return Path(path)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU (nothing in it can run)."""
    state = safe_load(path)
    if not is_own_checkpoint(state):
        raise CheckpointError(f"{path}: not a checkpoint of this project (no '{FORMAT}' format marker)")
    return state


def load_any_checkpoint(path: Path, mmap: bool = False) -> dict:
    """Read a checkpoint of this project or of the original trainer with one safe load.

    This project's files are returned as :func:`load_checkpoint` returns them; an original
    one is converted by ``trainer.checkpoints.original.from_original``, a released HGR/RANP one
    (``{"video_encoder": {...}, "text_encoder": {...}}``) by ``model.hgr.checkpoint.from_original``. Both results hold
    ``state_dict``, ``epoch`` and ``config`` (a dict, or None for an original file without one).
    ``mmap``: map the tensors instead of reading them (``safe_load``).
    """
    state = safe_load(path, mmap)
    if is_own_checkpoint(state):
        return checked_state(state, path)
    if is_hgr_checkpoint(state):  # released HGR/RANP weights, e.g. model/epoch.12.th: no config inside
        epoch = re.search(r"epoch\.(\d+)", Path(path).name)
        return {"state_dict": hgr_state_dict(state, str(path)), "epoch": int(epoch.group(1)) if epoch else 0,
                "config": None, "monitor_best": None, "arch": "HGR", "optimizer": None}
    return from_original(Path(path), state)


def checked_state(state: dict, path: Path) -> dict:
    """``state`` when it holds what every reader of a checkpoint of this project relies on: a
    ``state_dict`` of tensors, an integer ``epoch`` and a ``config`` that is an object (or
    absent); a one-line CheckpointError naming ``path`` and the entry otherwise."""
    weights = state.get("state_dict")
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{path}: holds no 'state_dict' of tensors (the model's weights)")
    if not isinstance(state.get("epoch"), int) or isinstance(state.get("epoch"), bool):
        raise CheckpointError(f"{path}: 'epoch' is {state.get('epoch')!r}, expected the integer epoch it was saved at")
    if state.get("config") is not None and not isinstance(state["config"], dict):
        raise CheckpointError(f"{path}: 'config' is a {type(state['config']).__name__}, expected an object "
                              "(or give --config)")
    return state


def resumable_checkpoint(path: Path, state: dict) -> tuple[Path, dict]:
    """The checkpoint to continue a run from, given ``--resume path`` (read as ``state``).

    A best-model file of this project (``trained_model.pth``) holds weights only; a run continues
    from the epoch checkpoint of the same epoch beside it, which holds the same weights and the
    optimiser, scheduler and RNG states. Any other checkpoint is returned as it is.
    """
    if not is_own_checkpoint(state) or "optimizer" in state:
        return Path(path), state
    twin = Path(path).parent / f"checkpoint-epoch{state['epoch']}.pth"
    if not twin.is_file():
        raise CheckpointError(f"{path}: holds the best model's weights only (no optimiser state) and "
                              f"{twin.name} is not beside it; resume from a checkpoint-epoch<N>.pth of the run")
    return twin, load_checkpoint(twin)


def config_for_checkpoint(state: dict, path: Path, config_path: Path | None = None,
                          overrides: list[str] | None = None) -> Config:
    """The config to use with the checkpoint ``state`` loaded from ``path``: the file
    ``config_path`` when given, else the one the checkpoint holds, with ``overrides``
    (``--set``) applied and validated."""
    if config_path is not None:
        return load_config(config_path, overrides or [])
    config = config_of_checkpoint(state, path)
    apply_overrides(config, overrides or [])
    validate(config)
    return config


def checkpoint_with_config(path: Path, config_path: Path | None = None,
                           overrides: list[str] | None = None) -> tuple[dict, Config]:
    """A checkpoint to evaluate or export (either kind, see :func:`load_any_checkpoint`, its
    tensors memory-mapped: they are only read) and its config (:func:`config_for_checkpoint`)."""
    state = load_any_checkpoint(path, mmap=True)
    return state, config_for_checkpoint(state, path, config_path, overrides)


def check_weights_fit(expected: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], source: str | Path) -> None:
    """One-line CheckpointError naming ``source`` when ``weights`` lack a key of ``expected``,
    have one it lacks, or a tensor of another shape (the config is not the checkpoint's model)."""
    missing = [key for key in expected if key not in weights]
    unexpected = [key for key in weights if key not in expected]
    reshaped = [key for key in expected if key in weights and tuple(weights[key].shape) != tuple(expected[key].shape)]
    if not (missing or unexpected or reshaped):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) missing (first: {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weight(s) (first: {unexpected[0]})")
    if reshaped:
        key = reshaped[0]
        problems.append(f"{len(reshaped)} of another shape (first: {key} is {list(weights[key].shape)}, "
                        f"the config's model has {list(expected[key].shape)})")
    raise CheckpointError(f"{source}: the weights do not fit the config's model: {'; '.join(problems)} "
                          "(is --config or --set describing another model?)")
