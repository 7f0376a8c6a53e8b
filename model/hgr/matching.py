"""HGR's three-level matching of videos and captions, as the original computes it.

Global level: cosine of the pooled video vector and the sentence node. Verb and noun
levels: every phrase node attends over the frames (cosine, clipped at 0, L2-normalised
over frames, softmax of ``sigma`` times it), the attended frame embedding is compared with
the phrase by cosine, and the scores are averaged over the caption's phrases. Every score
is a [videos, captions] matrix; it is computed per (video, caption) pair, so
:func:`level_scores_blocked` splits large sets into blocks of bounded memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from model.hgr.video import MASKED, sequence_mask

FUSIONS = ("embed", "sim")


def cosine_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[n, E], [m, E] -> [n, m] cosines (norms offset by 1e-18 under the root)."""
    inner = a.mm(b.t())
    a_norm = torch.sqrt((a ** 2).sum(1).view(-1, 1) + 1e-18)
    b_norm = torch.sqrt((b ** 2).sum(1).view(1, -1) + 1e-18)
    return inner / (a_norm * b_norm)


def l2norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``x`` divided by its L2 norm along ``dim`` (clamped at 1e-10)."""
    return x / torch.norm(x, p=2, dim=dim, keepdim=True).clamp(min=1e-10)


@dataclass
class VideoEmbeds:
    """N videos: ``sent`` [N, E] global, ``verb`` and ``noun`` [N, T, E] per frame, ``lengths`` [N]."""

    sent: torch.Tensor
    verb: torch.Tensor
    noun: torch.Tensor
    lengths: torch.Tensor

    def rows(self, lo: int, hi: int) -> "VideoEmbeds":
        return VideoEmbeds(self.sent[lo:hi], self.verb[lo:hi], self.noun[lo:hi], self.lengths[lo:hi])


@dataclass
class TextEmbeds:
    """C captions: ``sent`` [C, E], ``verb`` [C, NV, E], ``noun`` [C, NN, E] nodes and how many
    nodes of each kind a caption has (its phrases with words, counted): ``verb_counts``,
    ``noun_counts`` [C]."""

    sent: torch.Tensor
    verb: torch.Tensor
    noun: torch.Tensor
    verb_counts: torch.Tensor
    noun_counts: torch.Tensor

    def rows(self, lo: int, hi: int) -> "TextEmbeds":
        return TextEmbeds(self.sent[lo:hi], self.verb[lo:hi], self.noun[lo:hi], self.verb_counts[lo:hi],
                          self.noun_counts[lo:hi])


def phrase_scores(vid_embeds: torch.Tensor, vid_masks: torch.Tensor, phrase_embeds: torch.Tensor,
                  phrase_masks: torch.Tensor, sigma: float, fusion: str = "embed") -> torch.Tensor:
    """vid_embeds [V, T, E], vid_masks [V, T] (bool), phrase_embeds [C, P, E], phrase_masks
    [C, P] (bool) -> [V, C]: each phrase's similarity to its attended frames, averaged over the
    caption's phrases (0 for a caption without phrases)."""
    num_vids, num_frames, dim = vid_embeds.shape
    num_caps, num_phrases, _ = phrase_embeds.shape
    pad = (vid_masks == 0).unsqueeze(1).unsqueeze(3)
    # [V, C, T, P]
    ground = cosine_sim(vid_embeds.reshape(-1, dim), phrase_embeds.reshape(-1, dim)).view(
        num_vids, num_frames, num_caps, num_phrases).transpose(1, 2)
    attn = ground.masked_fill(pad, 0).clamp(min=0)
    attn = l2norm(attn, dim=2).masked_fill(pad, MASKED)
    attn = torch.softmax(sigma * attn, dim=2)
    if fusion == "embed":
        attended = torch.einsum("abcd,ace->abde", attn, vid_embeds)
        sims = torch.einsum("abde,bde->abd", l2norm(attended), l2norm(phrase_embeds))
    else:
        sims = torch.sum(ground * attn, dim=2)
    masks = phrase_masks.float().unsqueeze(0)
    return torch.sum(sims * masks, 2) / torch.sum(phrase_masks, 1).float().unsqueeze(0).clamp(min=1)


def level_scores(video: VideoEmbeds, text: TextEmbeds, sigma: float, fusion: str = "embed"
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(global, verb, noun) scores, each [V, C]."""
    vid_masks = sequence_mask(video.lengths, video.verb.size(1))
    verb_masks = sequence_mask(text.verb_counts, text.verb.size(1))
    noun_masks = sequence_mask(text.noun_counts, text.noun.size(1))
    return (cosine_sim(video.sent, text.sent),
            phrase_scores(video.verb, vid_masks, text.verb, verb_masks, sigma, fusion),
            phrase_scores(video.noun, vid_masks, text.noun, noun_masks, sigma, fusion))


def fused(levels: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The mean of the three level scores, as the original: (global + verb + noun) / 3."""
    return (levels[0] + levels[1] + levels[2]) / 3


def block_sizes(num_videos: int, num_captions: int, num_phrases: int, dim: int, budget_bytes: int,
                element_bytes: int = 4) -> tuple[int, int]:
    """(videos, captions) per block so that a block's largest intermediate, the attended frame
    embeddings [videos, captions, phrases, E], stays within ``budget_bytes``."""
    per_pair = max(num_phrases, 1) * dim * element_bytes
    captions = max(1, min(num_captions, budget_bytes // per_pair))
    videos = max(1, min(num_videos, budget_bytes // (per_pair * captions)))
    return videos, captions


def level_scores_blocked(video: VideoEmbeds, text: TextEmbeds, sigma: float, fusion: str = "embed",
                         budget_bytes: int = 256 * 2 ** 20,
                         reduce: Callable[[tuple[torch.Tensor, ...]], torch.Tensor] = fused) -> torch.Tensor:
    """``reduce`` of the level scores of every (video, caption) pair, [V, C] float32,
    computed in blocks whose intermediates stay within about ``budget_bytes``; every pair's
    value equals the unblocked computation's."""
    num_videos, num_captions = video.sent.size(0), text.sent.size(0)
    phrases = max(text.verb.size(1), text.noun.size(1))
    element = torch.finfo(video.verb.dtype).bits // 8
    step_v, step_c = block_sizes(num_videos, num_captions, phrases, video.verb.size(2), budget_bytes, element)
    out = torch.empty(num_videos, num_captions, dtype=torch.float32, device=video.sent.device)
    for c0 in range(0, num_captions, step_c):
        caps = text.rows(c0, c0 + step_c)
        for v0 in range(0, num_videos, step_v):
            out[v0:v0 + step_v, c0:c0 + step_c] = reduce(level_scores(video.rows(v0, v0 + step_v), caps, sigma,
                                                                      fusion)).float()
    return out
