"""Tables of a synthetic feature release in the original pickled layout (shared by the fixture
writers: misc/make_release_fixture.py and data_loader/generated/challenge.py).

Features are noise plus shared random concepts: each video has two, every expert carries a weak
direction per concept and each caption contains words naming them, so a short training run
ranks above chance.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

PICKLE_PROTOCOL = 4
NUM_CONCEPTS = 100
CONCEPTS_PER_VIDEO = 2
EXPERT_SNR = 4.0  # norm of a concept's direction in an expert, against unit noise per coordinate
WORD_NOISE = 0.5  # noise added to a word's vector in each caption
FILLER_WORDS = ("a", "the", "man", "woman", "people", "is", "are", "in", "on", "of", "with", "and",
                "video", "someone", "playing", "talking", "showing", "about", "while", "there")
NAN = float("nan")


@dataclass(frozen=True)
class ExpertFile:
    """One released expert file: its path under the feature root, kind ("fixed" or "tokens"),
    feature width, fraction of videos without the feature and token count range."""

    relative: str
    kind: str
    dim: int
    missing: float
    tokens: tuple[int, int]

    def expected_bytes(self, num_videos: int) -> int:
        per_video = 1 if self.kind == "fixed" else sum(self.tokens) / 2
        return int(num_videos * (1 - self.missing) * per_video * self.dim * 4)


def dump(path: Path, obj: object) -> None:
    """Pickle ``obj`` as the release does (protocol 4, arrays through numpy's _reconstruct).

    The memo is off (fast mode): it would keep a copy of every array's bytes until the end,
    doubling the memory a large file needs; the tables hold no shared or recursive objects.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickler = pickle.Pickler(f, protocol=PICKLE_PROTOCOL)
        pickler.fast = True
        pickler.dump(obj)


def video_concepts(rng: np.random.Generator, num_videos: int) -> np.ndarray:
    """[N, 2] distinct concepts of every video."""
    first = rng.integers(NUM_CONCEPTS, size=num_videos)
    second = (first + rng.integers(1, NUM_CONCEPTS, size=num_videos)) % NUM_CONCEPTS
    return np.stack([first, second], axis=1)


def expert_table(spec: ExpertFile, video_ids: list[str], concepts: np.ndarray,
                 rng: np.random.Generator) -> dict[str, np.ndarray | float]:
    """Video id -> feature of one expert file: [d] (fixed) or [T, d] (tokens), NaN when missing.

    A video's feature is unit Gaussian noise plus its concepts' directions (a random one per
    token for token experts)."""
    directions = rng.standard_normal((NUM_CONCEPTS, spec.dim), dtype=np.float32) * np.float32(
        EXPERT_SNR / np.sqrt(spec.dim))
    present = np.flatnonzero(rng.random(len(video_ids)) >= spec.missing)
    if spec.kind == "fixed":
        rows = directions[concepts[present]].sum(axis=1)
    else:
        lengths = rng.integers(spec.tokens[0], spec.tokens[1] + 1, size=len(present))
        owner = np.repeat(present, lengths)
        token_concepts = concepts[owner, rng.integers(CONCEPTS_PER_VIDEO, size=len(owner))]
        rows = np.split(directions[token_concepts], np.cumsum(lengths)[:-1])
    table: dict[str, np.ndarray | float] = dict.fromkeys(video_ids, NAN)
    for index, row in zip(present, rows):
        table[video_ids[index]] = row + rng.standard_normal(row.shape, dtype=np.float32)
    return table


def text_token_range(text_tokens: int) -> tuple[int, int]:
    """Words per caption (inclusive range, mean ``text_tokens``)."""
    return text_tokens - text_tokens // 2, text_tokens + text_tokens // 2


def captions_and_text(video_ids: list[str], concepts: np.ndarray, counts: list[int], text_tokens: int,
                      text_dim: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Raw captions (video id -> ``counts[i]`` lists of words) and their word embeddings (video id
    -> one [words, D] array per caption) of videos ``video_ids`` [N] with concepts [N, 2]. Each
    caption names one or both of its video's concepts among filler words."""
    vocabulary = [f"concept{c:03d}" for c in range(NUM_CONCEPTS)] + list(FILLER_WORDS)
    vectors = rng.standard_normal((len(vocabulary), text_dim), dtype=np.float32)
    low, high = text_token_range(text_tokens)
    raw, text = {}, {}
    for index, video in enumerate(tqdm(video_ids, desc="captions", unit="video")):
        count = counts[index]
        lengths = rng.integers(low, high + 1, size=count)
        words = rng.integers(NUM_CONCEPTS, len(vocabulary), size=int(lengths.sum()))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        for start, length in zip(starts, lengths):
            named = rng.permutation(concepts[index])[:rng.integers(1, CONCEPTS_PER_VIDEO + 1)][:length]
            words[start + rng.choice(length, len(named), replace=False)] = named
        embedded = vectors[words] + WORD_NOISE * rng.standard_normal((len(words), text_dim), dtype=np.float32)
        raw[video] = [[vocabulary[w] for w in words[s:s + n]] for s, n in zip(starts, lengths)]
        text[video] = np.split(embedded, starts[1:])
    return raw, text
