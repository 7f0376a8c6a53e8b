"""A trained model's embeddings of every video and caption of its dataset: a TeachText teacher."""
from __future__ import annotations

import numpy as np
import torch

from base.retrieval_model import RetrievalModel
from data_loader.batches import text_batch
from data_loader.expert_loader import ExpertDataLoader
from data_loader.teachtext.teachers import TeacherArrays
from trainer.evaluate import embed_split_videos


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
    store = data.store
    vid_embds, ind = embed_split_videos(model, data, torch.arange(store.num_videos), device, chunk)
    video = {name: (embd.float() * ind[name][:, None]).cpu().numpy() for name, embd in vid_embds.items()}
    text: dict[str, list[torch.Tensor]] = {}
    for rows in torch.split(torch.arange(len(store.raw_captions)), chunk):
        embds, weights = model.embed_text(text_batch(store, rows[:, None], data.max_tokens["text"]).to(device))
        weighted = len(embds) == weights.shape[-1]
        for idx, (name, embd) in enumerate(embds.items()):
            embd = embd[:, 0] * weights[:, 0, idx:idx + 1] if weighted else embd[:, 0]
            text.setdefault(name, []).append(embd.float().cpu())
    return TeacherArrays(np.ones(store.num_videos, dtype=bool),
                         video,
                         {name: torch.cat(parts).numpy() for name, parts in text.items()})
