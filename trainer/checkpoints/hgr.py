"""Reading released HGR/RANP checkpoints (``model/epoch.N.th``, GloVe initialisations) safely."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

from model.hgr.checkpoint import from_original, matching_entries
from trainer.checkpoints.safe_load import safe_load


def load_original_hgr(path: Path) -> OrderedDict[str, torch.Tensor]:
    """The state_dict (this model's names) of a checkpoint saved by the original HGR/RANP
    trainer, read through :func:`safe_load` (no full unpickling); CheckpointError naming the file."""
    return from_original(safe_load(Path(path)), str(path))


def init_from_original(model: torch.nn.Module, path: Path) -> list[str]:
    """Copy into ``model`` the entries of an original checkpoint it has (a GloVe word-embedding
    checkpoint holds ``text_encoder.embedding.we.weight`` only); returns the names copied."""
    entries = matching_entries(load_original_hgr(path), model.state_dict())
    model.load_state_dict(entries, strict=False)
    return sorted(entries)
