"""Checkpoints written by the original Collaborative Experts trainer, as this project's values.

The original ``BaseTrainer._save_checkpoint`` pickles a plain dict holding ``arch``,
``epoch``, ``state_dict``, ``monitor_best`` (a numpy float64), ``optimizer`` and the whole
``parse_config.ConfigParser`` object; it is read by :func:`trainer.checkpoints.safe_load.safe_load`.

- :func:`from_original`: that content -> a dict of plain values with the state_dict keys
  mapped to this project's names.
- :func:`load_original_checkpoint`: reading and converting together.
- :func:`convert_state_dict`: the key mapping alone.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path, PurePath
from typing import Any

import torch

from trainer.checkpoints.safe_load import OriginalConfig, safe_load
from utils.errors import CheckpointError

# Output layers of an early MoE head; the original test.py deletes them before loading.
DEPRECATED_KEYS = frozenset(f"ce.{layer}.{param}" for layer in ("moe_fc_bottleneck1", "moe_cg", "moe_fc_proj")
                            for param in ("weight", "bias"))

def _plain(value: Any) -> Any:
    """Copy of nested dicts/lists/tuples with every path turned into a str."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


def _config_dict(config: Any) -> dict | None:
    """The original config as a plain dict (``ConfigParser._config``), or None."""
    if isinstance(config, OriginalConfig):
        config = config.__dict__.get("_config")
    return _plain(config) if isinstance(config, dict) else None


def convert_state_dict(state_dict: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Map an original CENet state_dict to this project's names.

    Strips one leading ``module.`` (DataParallel) and drops ``DEPRECATED_KEYS``; every other
    key already matches :class:`model.ce.CENet`. Tensors are shared, not copied.
    """
    converted: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key not in DEPRECATED_KEYS:
            converted[key] = value
    return converted


def from_original(path: Path, state: Any) -> dict:
    """An original checkpoint's content (from :func:`safe_load`) -> the plain dict described in
    :func:`load_original_checkpoint`; CheckpointError when it is not one."""
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise CheckpointError(f"{path}: not an original CE checkpoint (no 'state_dict' dict)")
    monitor_best = state.get("monitor_best")
    return {
        "state_dict": convert_state_dict(state["state_dict"]),
        "epoch": int(state.get("epoch", 0)),
        "monitor_best": None if monitor_best is None else float(monitor_best),
        "arch": str(state.get("arch", "")),
        "config": _config_dict(state.get("config")),
        "optimizer": state.get("optimizer"),
    }


def load_original_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by the original CE trainer onto the CPU, safely.

    Returns:
        ``state_dict`` (OrderedDict[str, Tensor], keys mapped by :func:`convert_state_dict`,
        loads strictly into CENet), ``epoch`` (int), ``monitor_best`` (float or None),
        ``arch`` (str), ``config`` (the original ``ConfigParser._config`` dict, paths as str,
        or None) and ``optimizer`` (the saved optimiser state_dict or None).

    Raises:
        CheckpointError: one line naming the file, e.g. when the pickle references a global
            outside ``ALLOWED_GLOBALS`` (named in the message; nothing is executed).
    """
    return from_original(Path(path), safe_load(path))
