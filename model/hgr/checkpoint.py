"""The original HGR/RANP checkpoint layout and this model's state_dict.

The original trainer (``framework/modelbase.py``) saves ``{submodule: {param: tensor}}`` with
submodules ``video_encoder`` and ``text_encoder``; :class:`model.hgr.hgr.HGR` keeps those
names as prefixes, so ``video_encoder.level_embeds.0.weight`` is
``nested["video_encoder"]["level_embeds.0.weight"]``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch

from utils.errors import CheckpointError

SUBMODULES = ("video_encoder", "text_encoder")
WORD_EMBEDDING = "text_encoder.embedding.we.weight"


def is_hgr_checkpoint(state: object) -> bool:
    """Whether ``state`` has the original's layout: a dict of the submodules' parameter dicts."""
    return (isinstance(state, dict) and bool(state) and set(state) <= set(SUBMODULES)
            and all(isinstance(v, dict) for v in state.values()))


def from_original(nested: object, source: str = "checkpoint") -> OrderedDict[str, torch.Tensor]:
    """``{submodule: {param: tensor}}`` -> flat state_dict ``{"<submodule>.<param>": tensor}``
    (tensors shared). CheckpointError naming ``source`` when the layout is not the original's."""
    if not isinstance(nested, dict) or not any(k in nested for k in SUBMODULES):
        raise CheckpointError(f"{source}: not an HGR checkpoint (expected a dict with "
                              f"{' / '.join(SUBMODULES)} entries)")
    flat: OrderedDict[str, torch.Tensor] = OrderedDict()
    for sub, params in nested.items():
        if sub not in SUBMODULES or not isinstance(params, dict):
            raise CheckpointError(f"{source}: unexpected entry '{sub}' (expected {' / '.join(SUBMODULES)} "
                                  "holding {parameter name: tensor})")
        for name, value in params.items():
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{source}: {sub}.{name} is a {type(value).__name__}, expected a tensor")
            flat[f"{sub}.{name}"] = value
    return flat


def to_original(state_dict: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """This model's state_dict -> the original's nested layout (what its trainer saves)."""
    nested: dict[str, dict[str, torch.Tensor]] = {sub: OrderedDict() for sub in SUBMODULES}
    for key, value in state_dict.items():
        sub, _, name = key.partition(".")
        nested[sub][name] = value
    return nested


def matching_entries(state_dict: dict[str, torch.Tensor], own: dict[str, torch.Tensor]
                     ) -> dict[str, torch.Tensor]:
    """The entries of ``state_dict`` that ``own`` has too, as the original's ``load_checkpoint``
    copies them (e.g. only the word embedding of a GloVe initialisation checkpoint); a shape
    that differs from the model's is a CheckpointError."""
    kept = {k: v for k, v in state_dict.items() if k in own}
    for key, value in kept.items():
        if value.shape != own[key].shape:
            raise CheckpointError(f"{key}: shape {tuple(value.shape)} in the checkpoint, "
                                  f"{tuple(own[key].shape)} in the model (check arch.args.num_words)")
    return kept
