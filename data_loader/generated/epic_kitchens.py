"""A small, learnable EPIC-KITCHENS-100 in RANP's release layout (``data_loader/released/epic_kitchens.py``).

Generative model (all draws from ``numpy.random.default_rng(seed)``):

* ``VERBS`` and ``NOUNS``: verb and noun classes, each said with one of its words (synonyms,
  as EPIC's classes group several verbs and nouns). Every clip has one verb class and 1-3
  distinct noun classes, drawn long-tailed (``VERB_SKEW``, ``NOUN_SKEW``) as in EPIC-KITCHENS-100,
  where a few actions ("take plate", "open drawer") recur across many clips; its narration is a verb word followed by
  its noun words joined by "and" ("take plate and knife"). Clips with the same classes can
  therefore have different narrations, and graded relevance (same verb, overlapping nouns)
  is common, as in EPIC-KITCHENS-100.
* Latent concepts shared by video and text: every verb and noun class has a direction in each
  modality's 1,024-d space and in the 300-d word space. ``rgb`` sees nouns strongly and verbs
  weakly, ``flow`` the reverse, ``audio`` both weakly (``MODALITY_WEIGHTS``). A clip's ``steps``
  temporal features are its classes' directions with per-step saliences, plus distractors (the
  directions of ``DISTRACTOR_NOUNS`` unnamed objects and of one unnamed verb, slightly weaker)
  and Gaussian noise, so a clip's classes are never certain from its features.
* Word vectors (``glove.42B.300d.txt``): a class word at its class's direction plus a little
  noise; "and" and a few distractor words at random directions.
* Participants ``P01``, ``P02``, ... each record videos ``Pxx_yy`` of consecutive clips
  ``Pxx_yy_k``; the last ``test`` clips form the test split, with the official test CSVs
  (clip CSV and sentence CSV, sentences = unique narrations by first appearance).

Text and video therefore share the classes only through learnable projections, and a loss
that knows the relevance (RANP) can learn the graded structure a plain ranking loss ignores.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from data_loader.ranp.epic_relevance import TEST_CLIPS_CSV, TEST_SENTENCES_CSV
from data_loader.released.epic_kitchens import (
    ANNOTATION_DIR,
    CAPTIONS,
    FEATURES,
    MODALITIES,
    MODALITY_DIM,
    NAMES,
    TEXT_DIM,
    TRAIN_ANNOTATIONS,
    WORD_VECTORS,
)

VERBS = (("take", "grab"), ("put", "place"), ("open",), ("close", "shut"), ("wash", "rinse"), ("cut", "chop"),
         ("mix", "stir"), ("pour",), ("move",), ("dry", "wipe"), ("peel",), ("throw",))
NOUNS = (("tap",), ("plate", "dish"), ("knife",), ("cup", "mug"), ("pan",), ("onion",), ("bowl",), ("spoon",),
         ("fridge",), ("drawer",), ("lid",), ("sponge",), ("tomato",), ("bag",), ("water",), ("oil",),
         ("fork",), ("board",), ("cupboard", "cabinet"), ("bottle",), ("jar",), ("salt",), ("carrot",), ("egg",))
DISTRACTORS = ("and", "the", "some", "down", "up")
# modality -> (weight of the verb direction, weight of each noun direction, noise scale)
MODALITY_WEIGHTS = {"rgb": (0.5, 1.0, 3.0), "flow": (1.0, 0.35, 3.0), "audio": (0.6, 0.6, 4.0)}
NOUN_COUNT_P = (0.75, 0.2, 0.05)  # clips with 1, 2, 3 nouns
VERB_SKEW, NOUN_SKEW = 1.2, 1.0  # class popularity ~ 1 / rank ** skew: a few actions are very common
DISTRACTOR_NOUNS = 2  # objects in view that the narration does not name, per clip
DISTRACTOR_WEIGHT = 0.8  # their weight (and that of one unnamed action's verb direction) next to 1 for named ones
CLIPS_PER_VIDEO = (8, 20)
VIDEOS_PER_PARTICIPANT = 4
SIZES = {"train": 1200, "test": 400}
STEPS = 6


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _clip_names(rng: np.random.Generator, total: int) -> list[str]:
    names: list[str] = []
    video = 0
    while len(names) < total:
        participant, index = divmod(video, VIDEOS_PER_PARTICIPANT)
        count = int(rng.integers(*CLIPS_PER_VIDEO))
        names += [f"P{participant + 1:02d}_{index + 1:02d}_{k}" for k in range(count)]
        video += 1
    return names[:total]


def _classes(rng: np.random.Generator, total: int) -> tuple[np.ndarray, list[list[int]]]:
    popularity = 1.0 / np.arange(1, len(VERBS) + 1) ** VERB_SKEW
    verbs = rng.choice(len(VERBS), total, p=rng.permutation(popularity / popularity.sum()))
    noun_pop = 1.0 / np.arange(1, len(NOUNS) + 1) ** NOUN_SKEW
    noun_pop = rng.permutation(noun_pop / noun_pop.sum())
    nouns = [sorted(rng.choice(len(NOUNS), int(rng.choice(3, p=NOUN_COUNT_P)) + 1, replace=False, p=noun_pop).tolist())
             for _ in range(total)]
    return verbs, nouns


def _narration(rng: np.random.Generator, verb: int, nouns: list[int]) -> str:
    words = [VERBS[verb][rng.integers(len(VERBS[verb]))]]
    for k, noun in enumerate(rng.permutation(nouns)):
        words += (["and"] if k else []) + [NOUNS[noun][rng.integers(len(NOUNS[noun]))]]
    return " ".join(words)


def _features(rng: np.random.Generator, verbs: np.ndarray, nouns: list[list[int]], steps: int
              ) -> dict[str, np.ndarray]:
    """modality -> (clips, steps, 1024) float32 features."""
    out = {}
    for modality in MODALITIES:
        verb_w, noun_w, noise = MODALITY_WEIGHTS[modality]
        verb_dirs, noun_dirs = _unit(rng, len(VERBS), MODALITY_DIM), _unit(rng, len(NOUNS), MODALITY_DIM)
        signal = verb_w * verb_dirs[verbs][:, None, :] * rng.uniform(0.5, 1.5, (len(verbs), steps, 1))
        signal += verb_w * DISTRACTOR_WEIGHT * verb_dirs[rng.integers(0, len(VERBS), len(verbs))][:, None, :]
        for i, clip_nouns in enumerate(nouns):
            seen = clip_nouns + rng.choice(len(NOUNS), DISTRACTOR_NOUNS).tolist()
            weight = np.array([1.0] * len(clip_nouns) + [DISTRACTOR_WEIGHT] * DISTRACTOR_NOUNS)
            salience = rng.uniform(0.5, 1.5, (steps, len(seen))) * weight
            signal[i] += noun_w * salience @ noun_dirs[seen]
        scale = noise / np.sqrt(MODALITY_DIM) * 3
        out[modality] = (signal + scale * rng.standard_normal(signal.shape)).astype(np.float32)
    return out


def _word_vectors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    vectors = {}
    for groups in (VERBS, NOUNS):
        directions = _unit(rng, len(groups), TEXT_DIM)
        for direction, words in zip(directions, groups):
            for word in words:
                vectors[word] = direction + 0.3 * _unit(rng, 1, TEXT_DIM)[0]
    for word, direction in zip(DISTRACTORS, _unit(rng, len(DISTRACTORS), TEXT_DIM)):
        vectors[word] = direction
    return vectors


def _write_test_csvs(folder: Path, names: list[str], narrations: list[str], verbs: np.ndarray,
                     nouns: list[list[int]]) -> None:
    """The official clip CSV and sentence CSV of the test clips (unique narrations, first clip)."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "narration_id": names, "participant_id": [n.split("_")[0] for n in names],
        "video_id": [n.rsplit("_", 1)[0] for n in names], "narration": narrations,
        "verb": [VERBS[v][0] for v in verbs], "verb_class": verbs,
        "noun": [NOUNS[n[0]][0] for n in nouns], "noun_class": [n[0] for n in nouns],
        "all_nouns": [str([NOUNS[c][0] for c in n]) for n in nouns], "all_noun_classes": [str(n) for n in nouns],
    }).to_csv(folder / TEST_CLIPS_CSV, index=False)
    first: dict[str, str] = {}
    for name, text in zip(names, narrations):
        first.setdefault(text, name)
    pd.DataFrame({"narration_id": list(first.values()), "narration": list(first)}).to_csv(
        folder / TEST_SENTENCES_CSV, index=False)


def generate_epic_kitchens(root: Path, seed: int = 0, sizes: dict[str, int] | None = None,
                           steps: int = STEPS) -> Path:
    """Write a generated EPIC-KITCHENS-100 release under ``root`` (RANP's layout); returns ``root``.

    ``sizes``: clips of the training pool (``train``) and of the test split (``test``), default
    ``SIZES``; ``steps``: temporal features per clip.
    """
    sizes = sizes or SIZES
    root = Path(root)
    rng = np.random.default_rng(seed)
    total = sizes["train"] + sizes["test"]
    names = _clip_names(rng, total)
    verbs, nouns = _classes(rng, total)
    narrations = [_narration(rng, v, n) for v, n in zip(verbs, nouns)]
    features = _features(rng, verbs, nouns, steps)
    vectors = _word_vectors(rng)
    parts = {"trn": slice(0, sizes["train"]), "tst": slice(sizes["train"], total)}
    for split, rows in parts.items():
        path = root / NAMES.format(split)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.array(names[rows]))
        path = root / FEATURES.format(split)
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as f:
            for i in tqdm(range(total)[rows], desc=f"generating EPIC-KITCHENS-100 {split}", leave=False):
                clip = np.concatenate([features[m][i] for m in MODALITIES], axis=1).astype(np.float16)
                f.create_dataset(names[i].replace("/", "_"), data=clip[None] if i % 2 else clip)
    (root / ANNOTATION_DIR).mkdir(parents=True, exist_ok=True)
    (root / CAPTIONS).write_text(json.dumps({n: [t] for n, t in zip(names, narrations)}))
    train = parts["trn"]
    database = {n: {"annotations": [{"verb_class": int(v), "noun_classes": str(c) if k % 3 == 0 else c}]}
                for k, (n, v, c) in enumerate(zip(names[train], verbs[train], nouns[train]))}
    (root / TRAIN_ANNOTATIONS).write_text(json.dumps({"database": database}))
    test = parts["tst"]
    _write_test_csvs(root / ANNOTATION_DIR, names[test], narrations[test], verbs[test], nouns[test])
    with open(root / WORD_VECTORS, "w") as f:
        for word, vector in vectors.items():
            f.write(word + " " + " ".join(f"{x:.5f}" for x in vector) + "\n")
    return root
