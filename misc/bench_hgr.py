"""HGR's pairwise evaluation at a given test size: time and peak memory (misc/benchmark.py --hgr_eval).

A random-weight HGR of the EK-100 configuration (configs/epic-kitchens-100/hgr.json: 3 x 1,024-d
frames, 20 of them, embeddings of 1,024) scores V videos against C captions, as the
evaluation does: video embeddings computed once, captions streamed in chunks, each chunk
scored against every video in blocks of ``arch.args.eval_block_mib``
(model/hgr/matching.py). Inputs are generated (seeded): frames of N(0, 1) values, captions of 2-6
words with one verb node and one or two noun nodes. Memory beyond the [V, C] score matrix and
the embeddings stays bounded by the block budget, whatever V and C.
"""
from __future__ import annotations

import time

import torch

from base.role_graph_text import RoleGraphText
from model.hgr.hgr import HGR, HGRConfig
from trainer.precision import autocast

FRAMES, WORDS, NUM_WORDS = 20, 6, 1700
EK100 = {"feat_dims": {"rgb": 1024, "flow": 1024, "audio": 1024}, "num_words": NUM_WORDS}


def random_captions(count: int, generator: torch.Generator, num_verbs: int = 4, num_nouns: int = 6) -> RoleGraphText:
    """``count`` captions of 2-``WORDS`` words: word 0 the verb node, the next one or two words noun nodes."""
    lens = torch.randint(2, WORDS + 1, (count,), generator=generator)
    ids = torch.randint(3, NUM_WORDS, (count, WORDS), generator=generator)
    verbs = torch.zeros(count, num_verbs, WORDS, dtype=torch.bool)
    verbs[:, 0, 0] = True
    nouns = torch.zeros(count, num_nouns, WORDS, dtype=torch.bool)
    nouns[:, 0, 1] = True
    two = lens > 2
    nouns[two, 1, 2] = True
    roles = torch.zeros(count, num_verbs + num_nouns, dtype=torch.long)
    roles[:, num_verbs:num_verbs + 2] = 1
    size = 1 + num_verbs + num_nouns
    rel = torch.zeros(count, size, size)
    rel[:, 1, 0] = 1.0
    rel[:, 1 + num_verbs, 1] = 1.0
    rel[two, 2 + num_verbs, 1] = 1.0
    rel[:, 1, 1 + num_verbs] = 1.0
    rel[two, 1, 2 + num_verbs] = 1.0
    rel[:, 1] /= rel[:, 1].sum(1, keepdim=True)
    return RoleGraphText(ids, lens, verbs, nouns, roles, rel)


@torch.no_grad()
def hgr_eval_figures(videos: int, captions: int, device: torch.device, precision: str = "fp32",
                     chunk: int = 512, block_mib: int = 256) -> dict[str, float]:
    """Seconds of the video embedding, caption embedding and scoring of ``videos`` x
    ``captions`` pairs, and the score matrix's checksum."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = HGR(HGRConfig(**EK100, eval_block_mib=block_mib)).eval().to(device)
    figures: dict[str, float] = {}
    start = time.perf_counter()
    with autocast(device, precision):
        parts = []
        for lo in range(0, videos, chunk):
            n = min(chunk, videos - lo)
            frames = torch.randn(n, FRAMES, 3072, generator=generator).to(device)
            lengths = torch.full((n,), float(FRAMES), device=device)
            experts = dict(zip(("rgb", "flow", "audio"), frames.split(1024, dim=-1)))
            parts.append(model.embed_videos(experts, dict.fromkeys(experts, lengths)))
        vids = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
        del parts
        figures["video_embed_s"] = time.perf_counter() - start
        scores = torch.empty(captions, videos)
        text_s = score_s = 0.0
        for lo in range(0, captions, chunk):
            tick = time.perf_counter()
            caps, weights = model.embed_text(random_captions(min(chunk, captions - lo), generator).to(device))
            tock = time.perf_counter()
            scores[lo:lo + chunk] = model.similarity(caps, weights, vids, {}).cpu()
            text_s, score_s = text_s + tock - tick, score_s + time.perf_counter() - tock
    figures.update({"text_embed_s": text_s, "scoring_s": score_s, "total_s": time.perf_counter() - start,
                    "pairs": float(videos * captions), "checksum": float(scores.double().sum())})
    return figures
