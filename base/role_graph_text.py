"""Captions as HGR reads them: word ids and role graphs, as tensors (shared by the data
loader, which builds them from the store, and the model, which encodes them).

Shapes, for captions laid out as S (e.g. [B, K]), W words, NV verb and NN noun nodes:
``sent_ids`` [*S, W] int64 (padded with the end-of-sentence id), ``sent_lens`` [*S] int64
(>= 1), ``verb_masks`` [*S, NV, W] and ``noun_masks`` [*S, NN, W] bool (the words of each
node), ``node_roles`` [*S, NV + NN] int64 (role ids), ``rel_edges`` [*S, N, N] float32
(N = 1 + NV + NN: root, verbs, nouns; row-normalised, [target, source]).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class RoleGraphText:
    sent_ids: torch.Tensor
    sent_lens: torch.Tensor
    verb_masks: torch.Tensor
    noun_masks: torch.Tensor
    node_roles: torch.Tensor
    rel_edges: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        """S, the layout of the captions."""
        return self.sent_lens.shape

    def _map(self, fn) -> "RoleGraphText":
        return RoleGraphText(**{f.name: fn(getattr(self, f.name), f.name) for f in fields(self)})

    def to(self, device: torch.device) -> "RoleGraphText":
        return self._map(lambda t, _: t.to(device))

    def flat(self) -> "RoleGraphText":
        """The captions as one row each: S -> [prod(S)]."""
        keep = {"sent_ids": 1, "sent_lens": 0, "verb_masks": 2, "noun_masks": 2, "node_roles": 1, "rel_edges": 2}
        return self._map(lambda t, name: t.reshape(-1, *t.shape[t.dim() - keep[name]:]))

