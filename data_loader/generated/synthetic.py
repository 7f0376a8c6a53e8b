"""The embedded default dataset ``Synthetic``: a deterministic, learnable stand-in for MSR-VTT.

Generative model (all draws from ``numpy.random.default_rng(seed)``):

* ``NUM_CONCEPTS`` latent concepts, each with a name (a word), a text direction in the word
  embedding space and, for every expert, a direction in that expert's feature space.
* Every video holds ``CONCEPTS_PER_VIDEO`` distinct concepts (popular concepts are drawn more
  often) with saliences in [0.6, 1.4].
* Every expert *sees* only its own random subset of the concepts (``VISIBLE_FRACTION``), so no
  single expert describes a video fully and experts are complementary.
* Fixed experts (appearance 2048-d, motion 1024-d, scene 512-d, face 512-d): the salience-
  weighted sum of the visible concepts' directions plus Gaussian noise.
* Token experts (audio 128-d, ocr 300-d, speech 300-d; 2-12 tokens each, pooled by NetVLAD):
  every token is a visible concept's direction or a background direction, plus noise.
* Flaky experts are missing for a fraction of videos (face 50%, audio 30%, ocr 60%,
  speech 45%): ``available`` is False and their rows hold zeros.
* ``CAPTIONS_PER_VIDEO`` captions per video, each naming 1-3 of the video's concepts inside
  filler words from short templates. In ``WRONG_CONCEPT_RATE`` of the captions the last named
  concept is replaced by a random one; the caption mask ``caption_masks/kept.h5`` keeps the
  captions that name only concepts of their video (for denoising).
* The word-level text feature ``synthetic`` (300-d), an ideal encoder, embeds a concept word
  near its concept's text direction and each filler word at its own random direction, with a
  little per-occurrence noise.
* Three more word-level text features stand in for real text encoders of increasing quality,
  for TeachText (``TEXT_ENCODERS``, drawn from ``default_rng([seed, 1])`` so that everything
  above is what generator version 2 made): ``w2v`` (300-d), ``gpt2`` (768-d) and
  ``gpt2-xl-finetune`` (1600-d). Each knows its own random subset of the concept words (35%,
  60%, 85%): a known word lies at its concept's direction, any other mostly at a partner
  concept's, so that encoder confuses the two. The subsets are drawn independently, so the
  encoders complement each other. Every word occurrence takes one of ``WORD_CONTEXTS`` noisy
  embeddings of its word (a small vocabulary per feature, stored as such).

Text and video therefore share the latent concepts only through learnable projections.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_loader.ranp.classes import CLASSES_NAME
from data_loader.store.feature_store import STORE_DIR, ExpertArrays, TokenArrays, write_store
from data_loader.teachtext.caption_masks import write_caption_mask

GENERATOR_VERSION = 3  # 2: files carry the store_id; 3: the TeachText text features and caption mask added
NUM_CONCEPTS = 48
CONCEPTS_PER_VIDEO = 4
VISIBLE_FRACTION = 0.4
CAPTIONS_PER_VIDEO = 20
TEXT_DIM = 300
WRONG_CONCEPT_RATE = 0.1
KEPT_CAPTIONS = "kept"  # caption mask of the captions naming only concepts of their video
# text feature -> (width, fraction of the concept words the encoder knows well)
TEXT_ENCODERS = {"w2v": (300, 0.35), "gpt2": (768, 0.6), "gpt2-xl-finetune": (1600, 0.85)}
WORD_CONTEXTS = 8
POOR_OWN_WEIGHT = 0.2
CONTEXT_NOISE = {"known": 0.2, "poor": 0.6, "filler": 0.1}
SPLIT_SIZES = {"train": 1000, "val": 200, "test": 500}
# name -> (kind, dim, fraction of videos missing the expert, noise scale)
EXPERTS = {
    "appearance": ("fixed", 2048, 0.0, 1.0),
    "motion": ("fixed", 1024, 0.0, 1.0),
    "scene": ("fixed", 512, 0.0, 1.0),
    "face": ("fixed", 512, 0.5, 0.8),
    "audio": ("tokens", 128, 0.3, 0.6),
    "ocr": ("tokens", 300, 0.6, 0.5),
    "speech": ("tokens", 300, 0.45, 0.6),
}
CONCEPT_WORDS = (
    "dog cat horse bird fish car truck bicycle boat train plane guitar piano drum violin "
    "ball football basketball tennis swimming dancing cooking baking painting singing "
    "kitchen beach forest mountain city street river snow rain fire computer phone camera "
    "baby child woman man crowd teacher doctor chef robot cartoon news game"
).split()
TEMPLATES = ("{} is shown", "a video of {}", "someone with {}", "people near {} in a clip",
             "the clip shows {} and more", "{} on the video", "a man talks about {}", "there is {} here")
FILLER_WORDS = tuple(sorted({w for t in TEMPLATES for w in t.split() if w != "{}"} | {"and"}))


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _video_concepts(rng: np.random.Generator, num_videos: int) -> tuple[np.ndarray, np.ndarray]:
    popularity = 1.0 / np.arange(1, NUM_CONCEPTS + 1) ** 0.5
    popularity = rng.permutation(popularity / popularity.sum())
    concepts = np.stack([rng.choice(NUM_CONCEPTS, CONCEPTS_PER_VIDEO, replace=False, p=popularity)
                         for _ in range(num_videos)])
    salience = rng.uniform(0.6, 1.4, size=concepts.shape)
    return concepts, salience


def _fixed_expert(rng, concepts, salience, visible, dim, noise) -> np.ndarray:
    directions = _unit(rng, NUM_CONCEPTS, dim)
    weights = salience * visible[concepts]
    signal = np.einsum("vk,vkd->vd", weights, directions[concepts])
    return (signal + noise * rng.standard_normal(signal.shape) / np.sqrt(dim) * 3).astype(np.float32)


def _token_expert(rng, concepts, visible, dim, noise) -> tuple[np.ndarray, np.ndarray]:
    directions = _unit(rng, NUM_CONCEPTS, dim)
    background = _unit(rng, 16, dim)
    rows, lengths = [], []
    for video_concepts in concepts:
        seen = video_concepts[visible[video_concepts]]
        n = int(rng.integers(2, 13))
        from_concept = rng.random(n) < (0.6 if len(seen) else 0.0)
        tokens = background[rng.integers(0, len(background), n)]
        if from_concept.any():
            tokens[from_concept] = directions[rng.choice(seen, from_concept.sum())]
        tokens = tokens * rng.uniform(0.8, 1.2, (n, 1)) + noise * rng.standard_normal((n, dim)) / np.sqrt(dim) * 3
        rows.append(tokens.astype(np.float32))
        lengths.append(n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return np.concatenate(rows), offsets


def _captions(rng, concepts, salience) -> tuple[list[list[str]], TokenArrays, TokenArrays, np.ndarray]:
    """Caption texts per video; the ``synthetic`` text feature [W, 300]; the words packed per
    caption (a concept word as its concept's number, a filler word as NUM_CONCEPTS + its place
    in FILLER_WORDS); and which captions name only concepts of their video [C]."""
    text_dirs = _unit(rng, NUM_CONCEPTS, TEXT_DIM)
    concept_vecs = text_dirs + 0.3 * _unit(rng, NUM_CONCEPTS, TEXT_DIM)
    filler_vecs = _unit(rng, len(FILLER_WORDS), TEXT_DIM)
    vocab = {w: v for w, v in zip(CONCEPT_WORDS, concept_vecs)} | {w: v for w, v in zip(FILLER_WORDS, filler_vecs)}
    filler_id = {w: NUM_CONCEPTS + i for i, w in enumerate(FILLER_WORDS)}
    captions, embeddings, ids, lengths, kept = [], [], [], [], []
    for video_concepts, video_salience in zip(concepts, salience):
        video_caps = []
        for _ in range(CAPTIONS_PER_VIDEO):
            k = int(rng.choice([1, 2, 3], p=[0.2, 0.5, 0.3]))
            named = rng.choice(video_concepts, k, replace=False, p=video_salience / video_salience.sum())
            if rng.random() < WRONG_CONCEPT_RATE:
                named[-1] = rng.integers(NUM_CONCEPTS)
            phrase = " and ".join(CONCEPT_WORDS[c] for c in named)
            template = TEMPLATES[rng.integers(len(TEMPLATES))]
            words = template.format(phrase).split()
            phrase_ids = [filler_id["and"]] * (2 * k - 1)  # "c1 and c2 and c3"
            phrase_ids[::2] = [int(c) for c in named]
            vecs = np.stack([vocab[w] for w in words]) + 0.05 * rng.standard_normal((len(words), TEXT_DIM))
            video_caps.append(" ".join(words))
            embeddings.append(vecs.astype(np.float32))
            ids.extend(i for w in template.split() for i in (phrase_ids if w == "{}" else [filler_id[w]]))
            lengths.append(len(words))
            kept.append(bool(np.isin(named, video_concepts).all()))
        captions.append(video_caps)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return (captions, TokenArrays(np.concatenate(embeddings), offsets),
            TokenArrays(np.array(ids, dtype=np.int64), offsets), np.array(kept))


def _text_feature(rng: np.random.Generator, words: TokenArrays, dim: int, known_fraction: float) -> TokenArrays:
    """One text encoder's word-level feature of the captions ``words`` (vocabulary rows).

    The encoder knows a random ``known_fraction`` of the concept words: each lies at its
    concept's direction. Any other concept word lies mostly at the direction of a random
    partner concept (``POOR_OWN_WEIGHT`` of its own), so the encoder confuses the two. Every
    occurrence of a word takes one of ``WORD_CONTEXTS`` embeddings: its base vector plus noise
    along the concept directions (``CONTEXT_NOISE``: more for poorly known words). The result
    has a vocabulary of (number of words x WORD_CONTEXTS) rows of width ``dim``.
    """
    concept_dirs = _unit(rng, NUM_CONCEPTS, dim)
    known = rng.random(NUM_CONCEPTS) < known_fraction
    partner = (np.arange(NUM_CONCEPTS) + rng.integers(1, NUM_CONCEPTS, NUM_CONCEPTS)) % NUM_CONCEPTS
    confused = POOR_OWN_WEIGHT * concept_dirs + concept_dirs[partner]
    confused /= np.linalg.norm(confused, axis=1, keepdims=True)
    base = np.concatenate([np.where(known[:, None], concept_dirs, confused), _unit(rng, len(FILLER_WORDS), dim)])
    noise = np.concatenate([np.where(known, CONTEXT_NOISE["known"], CONTEXT_NOISE["poor"]),
                            np.full(len(FILLER_WORDS), CONTEXT_NOISE["filler"])])
    mix = rng.standard_normal((len(base), WORD_CONTEXTS, NUM_CONCEPTS)) / np.sqrt(NUM_CONCEPTS)
    vocabulary = base[:, None, :] + noise[:, None, None] * (mix @ concept_dirs)
    tokens = words.values * WORD_CONTEXTS + rng.integers(0, WORD_CONTEXTS, len(words.values))
    return TokenArrays(tokens, words.offsets, vocabulary.reshape(-1, dim).astype(np.float32))


def generate_synthetic(data_dir: Path, seed: int = 0, split_sizes: dict[str, int] | None = None) -> Path:
    """Generate the Synthetic dataset's store under ``data_dir``; returns the store folder.

    ``split_sizes`` (videos per split) defaults to ``SPLIT_SIZES``; smaller sizes make quick fixtures.
    """
    split_sizes = split_sizes or SPLIT_SIZES
    rng = np.random.default_rng(seed)
    num_videos = sum(split_sizes.values())
    concepts, salience = _video_concepts(rng, num_videos)
    experts = {}
    bar = tqdm(EXPERTS.items(), desc=f"generating Synthetic ({num_videos} videos)", unit="expert",
               total=len(EXPERTS), leave=False)
    for name, (kind, dim, missing, noise) in bar:
        visible = rng.random(NUM_CONCEPTS) < VISIBLE_FRACTION
        available = rng.random(num_videos) >= missing
        if kind == "fixed":
            features = _fixed_expert(rng, concepts, salience, visible, dim, noise)
            features[~available] = 0.0
            experts[name] = ExpertArrays(features, available)
        else:
            features, offsets = _token_expert(rng, concepts, visible, dim, noise)
            for v in np.flatnonzero(~available):
                features[offsets[v]:offsets[v + 1]] = 0.0
            experts[name] = ExpertArrays(features, available, offsets)
    captions, text, words, kept = _captions(rng, concepts, salience)
    order = rng.permutation(num_videos)
    bounds = np.cumsum([0, *split_sizes.values()])
    splits = {name: np.sort(order[lo:hi]) for name, lo, hi in zip(split_sizes, bounds[:-1], bounds[1:])}
    encoders_rng = np.random.default_rng([seed, 1])
    encoders = {name: _text_feature(encoders_rng, words, dim, known) for name, (dim, known) in TEXT_ENCODERS.items()}

    def write_mask(building: Path, store_id: str) -> None:
        write_caption_mask(building, KEPT_CAPTIONS, kept, np.ones(num_videos, dtype=bool), store_id)

    return write_store(
        Path(data_dir) / STORE_DIR, dataset="Synthetic",
        video_ids=[f"video{v:04d}" for v in range(num_videos)], splits=splits, experts=experts,
        captions=captions, text={"synthetic": text, **encoders},
        attrs={"generator": "synthetic", "generator_version": GENERATOR_VERSION, "seed": seed,
               "num_videos": num_videos},
        extras=write_mask,
        derived=(CLASSES_NAME,),  # derived from the captions when the store is prepared
    )
