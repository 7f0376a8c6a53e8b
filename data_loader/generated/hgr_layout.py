"""A tiny dataset in the layout RANP's HGR code reads for MSR-VTT, with role graphs for its
generated captions (deterministic, from the templates: no semantic role labelling).

Written under a root folder (paths as in RANP's ``prepare_mlmatch_configs_MSRVTT_*.py``)::

    ordered_feature/msrvttSA/resnet152.pth/{trn,val,tst}_ft.hdf5   one dataset per video, (frames, FEATURE_DIM)
    public_split_msrvtt/{trn,val,tst}_names.npy                    video names (str array)
    annotation/msr-vttRET/ref_captions.json                        {video: [caption, ...]}
    annotation/msr-vttRET/sent2rolegraph.augment.json              {caption: [nodes, edges]}
    annotation/msr-vttRET/word2int_msr-vtt.json, int2word_msr-vtt.npy
    annotation/msr-vttRET/msrvtt_train.json                        {"database": {"<video>_<k>": {"annotations":
                                                                    [{"verb_class": [v], "noun_classes": [...]}]}}}
    annotation/msr-vttRET/sorted_MSRVTT-Full_rel_mat_wordsets0.25{,_val}.hdf5   rel_mat [videos, captions]

Generative model (``numpy.random.default_rng(seed)``): every video shows one action (one of
``NUM_VERBS`` verbs) on one or two objects (of ``NUM_NOUNS`` nouns), popular classes more
often (``VERB_P``, ``NOUN_P``). Its frames (``MIN_FRAMES``
to ``MAX_FRAMES`` of them) each show the action or one object: the frame holds that
concept's feature direction plus noise. Captions name the video's action and objects in short
templates whose role graphs (a ``V`` node, an ``ARG0`` agent, ``ARG1``/``ARG2`` objects) follow
from the template. The relevance of a video to a caption is RANP's: half for the same verb,
half the IoU of the noun sets. Videos share verbs and nouns, so many captions are partly
relevant to many videos, as in the real datasets.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from utils.atomic import atomic_path

NUM_VERBS = 16
NUM_NOUNS = 32
FEATURE_DIM = 64
MIN_FRAMES, MAX_FRAMES = 8, 30
CAPTIONS_PER_VIDEO = 4
SPLIT_SIZES = {"trn": 600, "val": 100, "tst": 150}
# popular classes are drawn more often (p ~ 1 / rank), as EK-100's verbs and nouns: many clips share
# their classes, and a plain ranking loss pushes such relevant pairs apart
VERB_P = 1 / np.arange(1, NUM_VERBS + 1) / np.sum(1 / np.arange(1, NUM_VERBS + 1))
NOUN_P = 1 / np.arange(1, NUM_NOUNS + 1) / np.sum(1 / np.arange(1, NUM_NOUNS + 1))
VERBS = ("cuts", "washes", "opens", "throws", "carries", "paints", "pushes", "drops", "fills", "shakes", "lifts",
         "folds", "kicks", "cleans", "turns", "holds")
NOUNS = ("apple", "door", "box", "ball", "bread", "cup", "knife", "plate", "chair", "bottle", "pan", "bag", "onion",
         "towel", "lid", "drawer", "spoon", "bowl", "phone", "book", "shoe", "glass", "tomato", "pot", "jar",
         "sponge", "fork", "table", "lamp", "basket", "carrot", "egg")
AGENTS = ("a man", "a woman", "someone")
UNKNOWN_WORDS = ("someone",)  # left out of the vocabulary: tokenised as UNK
FEATURES = "ordered_feature/msrvttSA/resnet152.pth/{split}_ft.hdf5"
NAMES = "public_split_msrvtt/{split}_names.npy"
ANNOTATION = "annotation/msr-vttRET"
RELEVANCE = {"tst": "sorted_MSRVTT-Full_rel_mat_wordsets0.25.hdf5",
             "val": "sorted_MSRVTT-Full_rel_mat_wordsets0.25_val.hdf5"}


def caption_and_graph(agent: str, verb: str, nouns: list[str]) -> tuple[str, list]:
    """A caption "<agent> <verb> the <noun> [and the <noun>]" and its role graph in the
    ``sent2rolegraph.augment.json`` format."""
    words = agent.split() + [verb]
    verb_at = len(words) - 1
    nodes: dict[str, dict] = {"ROOT": {"role": "ROOT", "spans": [], "words": []},
                              "1": {"role": "V", "spans": [verb_at], "words": [verb]},
                              "2": {"role": "ARG0", "spans": list(range(verb_at)), "words": agent.split()}}
    edges = [["1", "2", "ARG0"]]
    for k, noun in enumerate(nouns):
        if k:
            words.append("and")
        words += ["the", noun]
        key, role = str(3 + k), f"ARG{1 + k}"
        nodes[key] = {"role": role, "spans": [len(words) - 2, len(words) - 1], "words": ["the", noun]}
        edges.append(["1", key, role])
    return " ".join(words), [nodes, edges]


def relevance(video_classes: list[tuple[int, list[int]]], caption_classes: list[tuple[int, list[int]]]
              ) -> np.ndarray:
    """[videos, captions] float32: 0.5 [same verb] + 0.5 IoU(noun sets)."""
    out = np.zeros((len(video_classes), len(caption_classes)), dtype=np.float32)
    for i, (verb_i, nouns_i) in enumerate(video_classes):
        for j, (verb_j, nouns_j) in enumerate(caption_classes):
            a, b = set(nouns_i), set(nouns_j)
            out[i, j] = 0.5 * (verb_i == verb_j) + 0.5 * len(a & b) / max(len(a | b), 1)
    return out


def _write_h5(path: Path, datasets: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value))


def generate_hgr_layout(root: Path, seed: int = 0, sizes: dict[str, int] | None = None) -> Path:
    """Write the dataset of the module docstring under ``root``; returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((NUM_VERBS + NUM_NOUNS, FEATURE_DIM)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    captions: dict[str, list[str]] = {}
    graphs: dict[str, list] = {}
    database: dict[str, dict] = {}
    for split, size in (sizes or SPLIT_SIZES).items():
        names, features, classes, caption_classes = [], {}, [], []
        for i in range(size):
            name = f"{split}{i:04d}"
            verb = int(rng.choice(NUM_VERBS, p=VERB_P))
            nouns = sorted(int(n) for n in rng.choice(NUM_NOUNS, size=int(rng.integers(1, 3)), replace=False,
                                                      p=NOUN_P))
            frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
            shown = rng.choice([verb] + [NUM_VERBS + n for n in nouns], size=frames)
            features[name] = (1.5 * directions[shown] + rng.standard_normal((frames, FEATURE_DIM))).astype(np.float32)
            names.append(name)
            classes.append((verb, nouns))
            captions[name] = []
            for k in range(CAPTIONS_PER_VIDEO):
                order = list(rng.permutation(nouns))
                text, graph = caption_and_graph(AGENTS[int(rng.integers(len(AGENTS)))], VERBS[verb],
                                                [NOUNS[n] for n in order])
                captions[name].append(text)
                graphs[text] = graph
                caption_classes.append((verb, nouns))
                database[f"{name}_{k}"] = {"annotations": [{"verb_class": [verb], "noun_classes": nouns}]}
        _write_h5(root / FEATURES.format(split=split), features)
        path = root / NAMES.format(split=split)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, np.array(names))
        if split in RELEVANCE:
            _write_h5(root / ANNOTATION / RELEVANCE[split], {"rel_mat": relevance(classes, caption_classes)})
    words = sorted({w for text in graphs for w in text.split()} - set(UNKNOWN_WORDS))
    int2word = ["<sos>", "<eos>", "<unk>"] + words
    _write_json(root / ANNOTATION / "ref_captions.json", captions)
    _write_json(root / ANNOTATION / "sent2rolegraph.augment.json", graphs)
    _write_json(root / ANNOTATION / "word2int_msr-vtt.json", {w: i for i, w in enumerate(int2word)})
    _write_json(root / ANNOTATION / "msrvtt_train.json", {"database": database})
    with atomic_path(root / ANNOTATION / "int2word_msr-vtt.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, np.array(int2word))
    return root
