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
from utils.errors import UserError

HISTORY_FILE = "history.json"


def read_history(path: Path, before_epoch: int | None = None) -> list[dict]:
    """The entries in ``path`` (none when it does not exist), those of epochs ``< before_epoch``
    only when it is given (a resumed run drops what it is about to redo); a UserError naming the
    file when it is not such a list."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({type(exc).__name__}); move it aside to continue the run "
                        "without its record of the earlier epochs") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("epoch"), int)
                                                for e in entries):
        raise UserError(f"{path}: expected a JSON list of objects with an integer 'epoch'; move it aside to "
                        "continue the run without its record of the earlier epochs")
    return [e for e in entries if before_epoch is None or e["epoch"] < before_epoch]


def write_history(path: Path, entries: list[dict]) -> Path:
    """Write ``entries`` to ``path`` atomically; returns ``path``."""
    return write_text_atomic(path, json.dumps(entries, indent=1) + "\n")
