"""The per-epoch record of a run, ``<run>/models/history.json``, rewritten atomically each epoch.

A JSON list, one object per finished epoch::

    {"epoch": 3, "loss": 0.071, "loss_parts": {"t2v": 0.036, "v2t": 0.035}, "lr": 0.00095,
     "val": {"t2v_metrics": {"R1": ...}, "v2t_metrics": {...}}}

``loss`` is the mean training loss over the epoch's batches and ``loss_parts`` its parts
(one entry, ``loss``, for a loss without parts); ``lr`` is the learning rate the epoch was
trained with; ``val`` is present on the epochs that were evaluated.
"""
from __future__ import annotations

import json
from pathlib import Path

from utils.atomic import write_text_atomic

HISTORY_FILE = "history.json"


def read_history(path: Path, before_epoch: int | None = None) -> list[dict]:
    """The entries in ``path`` (none when it does not exist), those of epochs ``< before_epoch``
    only when it is given (a resumed run drops what it is about to redo)."""
    path = Path(path)
    if not path.is_file():
        return []
    entries = json.loads(path.read_text(encoding="utf-8"))
    return [e for e in entries if before_epoch is None or e["epoch"] < before_epoch]


def write_history(path: Path, entries: list[dict]) -> Path:
    """Write ``entries`` to ``path`` atomically; returns ``path``."""
    return write_text_atomic(path, json.dumps(entries, indent=1) + "\n")
