"""A trained model's embeddings of every video and caption of its dataset: a TeachText teacher."""
from __future__ import annotations

import numpy as np
import torch

from base.retrieval_model import RetrievalModel
from data_loader.batches import expert_batch, text_batch
from data_loader.expert_loader import ExpertDataLoader
from data_loader.teachers import TeacherArrays


@torch.no_grad()
def teacher_embeddings(model: RetrievalModel, data: ExpertDataLoader, device: torch.device,
                       chunk: int = 256) -> TeacherArrays:
    """Embeddings of all N videos ([N, d] per expert) and all C captions ([C, d] per expert) of the
    store of ``data``, in store order, computed ``chunk`` rows at a time.

    A video's embedding of an expert it lacks is zero, and when the model weighs its experts
    per caption (one MoE weight per expert), each caption's embedding of an expert is scaled by
    that weight: the sum over experts of the inner products is then the model's own score of the
    pair before its weights are renormalised over the video's experts.
    """
    model.eval()
    store = data.store
    video: dict[str, list[torch.Tensor]] = {}
    for rows in torch.split(torch.arange(store.num_videos), chunk):
        experts, ind = expert_batch(store, rows, data.max_tokens)
        embds = model.embed_videos({k: v.to(device) for k, v in experts.items()}, {k: v.to(device) for k, v in ind.items()})
        for name, embd in embds.items():
            present = ind[name] if name in ind else torch.ones(len(rows))
            video.setdefault(name, []).append(embd.float().cpu() * present[:, None])
    text: dict[str, list[torch.Tensor]] = {}
    for rows in torch.split(torch.arange(len(store.raw_captions)), chunk):
        embds, weights = model.embed_text(text_batch(store, rows[:, None], data.max_tokens["text"]).to(device))
        weighted = len(embds) == weights.shape[-1]
        for idx, (name, embd) in enumerate(embds.items()):
            embd = embd[:, 0] * weights[:, 0, idx:idx + 1] if weighted else embd[:, 0]
            text.setdefault(name, []).append(embd.float().cpu())
    return TeacherArrays(np.ones(store.num_videos, dtype=bool),
                         {name: torch.cat(parts).numpy() for name, parts in video.items()},
                         {name: torch.cat(parts).numpy() for name, parts in text.items()})
