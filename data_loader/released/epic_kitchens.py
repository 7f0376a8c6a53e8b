"""EPIC-KITCHENS-100 Multi-Instance Retrieval as RANP released it, converted once into the feature store.

Release layout under ``<data_dir>/<root_feat_folder>/`` (RANP's paths; ``{s}`` is ``trn``, ``val``
or ``tst``)::

    public_split_epic100/{s}_names.npy          clip names (narration_ids) of RANP's splits
    ordered_feature/epic100SA/TBN.pth/EPIC100_TBN_feats_SA_{s}.hdf5
                                                one dataset per clip, keyed by its name with '/'
                                                replaced by '_': (T, 3072) or (1, T, 3072), the TBN
                                                RGB | Flow | Audio features, 1024 each (T = 25)
    annotation/epic100RET/ref_captions.json     {clip: [narration]}, one narration per clip
    annotation/epic100RET/epic100_train.json    {"database": {clip: {"annotations": [{"verb_class": int,
                                                "noun_classes": [int, ...] or "[3, 14]"}]}}}
    annotation/epic100RET/EPIC_100_retrieval_test.csv, EPIC_100_retrieval_test_sentence.csv
                                                the official test annotations (when absent, the
                                                copies shipped in misc/datasets/epic-kitchens-100/)
    glove.42B.300d.txt                          GloVe word vectors, "word v1 ... v300" per line

The store (``<data_dir>/store/``, layout in ``data_loader/store/feature_store.py``) then holds:

* videos: every clip of RANP's ``trn`` and ``val`` lists (the training pool) then the 9,668
  test clips in the order of ``EPIC_100_retrieval_test.csv``; one caption each, the narration
  as published (``ref_captions.json``; the test CSV's for test clips).
* splits ``train``, ``val`` and ``test``. ``val`` is carved from the training pool by video:
  the clips of every ``VAL_EVERY``-th video id (``P01_01``, ...) in sorted order, so it is
  deterministic and no video lends clips to both sides. RANP's own ``val`` list is merged
  into the pool, since its relevance file is not public.
* token experts ``rgb``, ``flow``, ``audio`` (T x 1024 per clip, for NetVLAD and HGR) and their
  temporal means ``rgb_avg``, ``flow_avg``, ``audio_avg`` (1024 per clip, for CE and MoEE).
* text feature ``glove`` (300-d): every whitespace word of a caption as its GloVe vector (a
  vocabulary; words GloVe lacks take a zero vector).
* ``classes.h5``: each caption's verb class and noun classes (``data_loader/ranp/classes.py``),
  from which training batches and the validation split get their relevance.
* ``relevance/test.h5``: the official 9,668 x 3,842 test relevance, its columns the official
  sentences (``data_loader/ranp/epic_relevance.py``), each scored as a test caption with its text.

Conversion streams: one clip's features are in memory at a time (the whole release is
67,217 + 9,668 clips x 25 x 3,072 floats). Every file is written atomically and the store folder
replaces any previous one only once complete.
"""
from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from data_loader.ranp.classes import CaptionClasses, captions_sha1, write_classes, write_relevance
from data_loader.ranp.epic_relevance import (
    NUM_NOUN_CLASSES,
    NUM_VERB_CLASSES,
    SHIPPED_ANNOTATIONS,
    TEST_CLIPS_CSV,
    TEST_SENTENCES_CSV,
    clip_sentence_relevance,
    parse_class_list,
    read_clips,
    read_sentences,
    sentence_clips,
)
from data_loader.ranp.relevance import ClassLists
from data_loader.store.feature_store import (
    INDEX_NAME,
    STORE_DIR,
    STORE_ID,
    TokenArrays,
    atomic_h5,
    expert_path,
    new_store_id,
    read_index_attrs,
    write_index,
    write_text,
)
from utils.atomic import atomic_dir
from utils.errors import StoreError

DATASET = "EPIC-KITCHENS-100"
CONVERTER_VERSION = 1
NAMES = "public_split_epic100/{}_names.npy"
FEATURES = "ordered_feature/epic100SA/TBN.pth/EPIC100_TBN_feats_SA_{}.hdf5"
ANNOTATION_DIR = "annotation/epic100RET"
CAPTIONS = f"{ANNOTATION_DIR}/ref_captions.json"
TRAIN_ANNOTATIONS = f"{ANNOTATION_DIR}/epic100_train.json"
WORD_VECTORS = "glove.42B.300d.txt"
TEXT_FEAT = "glove"
TEXT_DIM = 300
MODALITIES = ("rgb", "flow", "audio")  # the thirds of the 3,072 TBN channels, in this order
MODALITY_DIM = 1024
POOLED_SUFFIX = "_avg"
VAL_EVERY = 10  # every 10th video of the training pool (sorted ids) is held out for validation
WRITE_CLIPS = 512  # clips converted per write: bounds memory to a few hundred clips' features


@dataclass
class Clips:
    """The clips of the store in row order: names [N], captions [N], verb classes [N], noun
    lists [N], and the release split each clip's features are in."""

    names: list[str]
    captions: list[str]
    verbs: list[int]
    nouns: list[list[int]]
    sources: list[str]


def _json(path: Path) -> object:
    if not path.is_file():
        raise StoreError(f"{path}: not found (EPIC-KITCHENS-100 release, see docs/epic-kitchens-100.md)")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: not valid JSON ({exc})") from None


def read_names(root: Path, split: str, required: bool = True) -> list[str]:
    """The clip names of RANP's ``split`` list (``trn``, ``val``, ``tst``); [] for an absent
    optional list."""
    path = root / NAMES.format(split)
    if not path.is_file():
        if required:
            raise StoreError(f"{path}: clip name list not found (EPIC-KITCHENS-100 release)")
        return []
    names = np.load(path, allow_pickle=False)
    if names.ndim != 1:
        raise StoreError(f"{path}: expected a 1-D array of clip names, got shape {names.shape}")
    return [str(n) for n in names]


def annotation_file(root: Path, name: str) -> Path:
    """An official annotation CSV: the release's copy, else the one shipped with the project."""
    path = root / ANNOTATION_DIR / name
    return path if path.is_file() else SHIPPED_ANNOTATIONS / name


def train_classes(root: Path, names: list[str]) -> tuple[list[int], list[list[int]]]:
    """Verb class [n] and noun class lists [n] of the training clips ``names``."""
    path = root / TRAIN_ANNOTATIONS
    database = _json(path)
    database = database.get("database") if isinstance(database, dict) else None
    if not isinstance(database, dict):
        raise StoreError(f"{path}: expected {{\"database\": {{clip: {{\"annotations\": [...]}}}}}}")
    verbs, nouns = [], []
    for name in names:
        entry = database.get(name)
        try:
            annotation = entry["annotations"][0]
            verb, noun_list = annotation["verb_class"], annotation["noun_classes"]
        except (KeyError, IndexError, TypeError):
            raise StoreError(f"{path}: clip {name} needs annotations[0] with verb_class and noun_classes") from None
        verbs.append(parse_class_list(verb, f"{path}: clip {name} verb_class")[0])
        nouns.append(parse_class_list(noun_list, f"{path}: clip {name} noun_classes"))
    return verbs, nouns


def read_clip_table(root: Path) -> tuple[Clips, dict[str, np.ndarray], Path, Path]:
    """Every clip of the store with its caption and classes, the store's splits, and the two
    official test CSVs used."""
    pool = {name: "trn" for name in read_names(root, "trn")}
    pool.update({name: "val" for name in read_names(root, "val", required=False) if name not in pool})
    test_csv, sentence_csv = annotation_file(root, TEST_CLIPS_CSV), annotation_file(root, TEST_SENTENCES_CSV)
    test = read_clips(test_csv)
    released_test = read_names(root, "tst")
    if sorted(released_test) != sorted(test.ids):
        raise StoreError(f"{root / NAMES.format('tst')}: its {len(released_test)} clips are not the "
                         f"{len(test.ids)} clips of {test_csv}")
    captions = _json(root / CAPTIONS)
    if not isinstance(captions, dict):
        raise StoreError(f"{root / CAPTIONS}: expected {{clip: [narration]}}")
    names = list(pool)
    pool_captions = []
    for name in names:
        caption = captions.get(name)
        if not isinstance(caption, list) or len(caption) != 1 or not isinstance(caption[0], str):
            raise StoreError(f"{root / CAPTIONS}: clip {name} needs a list of one narration, got {caption!r}")
        pool_captions.append(caption[0])
    verbs, nouns = train_classes(root, names)
    test_nouns = [test.nouns.values[test.nouns.offsets[i]:test.nouns.offsets[i + 1]].tolist()
                  for i in range(len(test.ids))]
    clips = Clips(names + test.ids, pool_captions + test.narrations, verbs + test.verbs.tolist(),
                  nouns + test_nouns, [pool[n] for n in names] + ["tst"] * len(test.ids))
    return clips, {**carve_validation(names), "test": np.arange(len(names), len(clips.names))}, test_csv, sentence_csv


def video_of(clip: str) -> str:
    """The video id of a clip name: ``P01_01_12`` -> ``P01_01``."""
    return clip.rsplit("_", 1)[0]


def carve_validation(names: list[str]) -> dict[str, np.ndarray]:
    """``{"train": rows, "val": rows}`` of the training pool ``names``: the clips of every
    ``VAL_EVERY``-th video id in sorted order (starting with the first) are validation."""
    videos = sorted({video_of(n) for n in names})
    held_out = set(videos[::VAL_EVERY])
    is_val = np.array([video_of(n) in held_out for n in names], dtype=bool)
    return {"train": np.flatnonzero(~is_val), "val": np.flatnonzero(is_val)}


def _clip_features(files: dict[str, h5py.File], source: str, name: str) -> np.ndarray:
    """One clip's (T, 3072) features from the release split ``source``'s HDF5 file."""
    f = files[source]
    key = name.replace("/", "_")
    if key not in f:
        raise StoreError(f"{f.filename}: no features for clip {name} (dataset '{key}')")
    values = np.asarray(f[key])
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2 or values.shape[1] != len(MODALITIES) * MODALITY_DIM or values.shape[0] == 0:
        raise StoreError(f"{f.filename}: clip {name} has shape {values.shape}, expected (T, "
                         f"{len(MODALITIES) * MODALITY_DIM}) with T >= 1")
    return values


def _open_features(root: Path, sources: set[str], stack: ExitStack) -> dict[str, h5py.File]:
    files = {}
    for source in sorted(sources):
        path = root / FEATURES.format(source)
        if not path.is_file():
            raise StoreError(f"{path}: TBN feature file not found (EPIC-KITCHENS-100 release)")
        files[source] = stack.enter_context(h5py.File(path, "r"))
    return files


def write_features(root: Path, building: Path, clips: Clips, store_id: str) -> None:
    """Stream every clip's features into the token experts and their temporal means."""
    with ExitStack() as stack:
        files = _open_features(root, set(clips.sources), stack)
        lengths = np.empty(len(clips.names), dtype=np.int64)
        for i, (name, source) in enumerate(zip(clips.names, clips.sources)):
            f = files[source]
            key = name.replace("/", "_")
            if key not in f:
                raise StoreError(f"{f.filename}: no features for clip {name} (dataset '{key}')")
            lengths[i] = f[key].shape[-2]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        outputs = {}
        for name in MODALITIES:
            for out_name, rows, kind in ((name, int(offsets[-1]), "tokens"),
                                         (name + POOLED_SUFFIX, len(clips.names), "fixed")):
                out = stack.enter_context(atomic_h5(expert_path(building, out_name)))
                out.attrs.update({"kind": kind, "dim": MODALITY_DIM, STORE_ID: store_id})
                out.create_dataset("available", data=np.ones(len(clips.names), dtype=bool))
                if kind == "tokens":
                    out.create_dataset("offsets", data=offsets)
                outputs[out_name] = out.create_dataset("features", shape=(rows, MODALITY_DIM), dtype=np.float32)
        bar = tqdm(zip(clips.names, clips.sources), total=len(clips.names), desc=f"converting {DATASET}",
                   unit="clip")
        pending: list[np.ndarray] = []
        start = 0
        for i, (name, source) in enumerate(bar):
            values = _clip_features(files, source, name)
            if len(values) != lengths[i]:
                raise StoreError(f"{files[source].filename}: clip {name} changed length while converting")
            pending.append(values)
            if len(pending) == WRITE_CLIPS or i == len(clips.names) - 1:
                _write_block(outputs, pending, start, offsets)
                start += len(pending)
                pending = []


def _write_block(outputs: dict[str, h5py.Dataset], block: list[np.ndarray], start: int, offsets: np.ndarray) -> None:
    """Write the features of the clips ``start:start + len(block)`` (each (T, 3072)) into every expert."""
    tokens = np.concatenate(block).astype(np.float32)
    stop = start + len(block)
    lo, hi = int(offsets[start]), int(offsets[stop])
    bounds = offsets[start:stop] - lo
    for m, modality in enumerate(MODALITIES):
        part = tokens[:, m * MODALITY_DIM:(m + 1) * MODALITY_DIM]
        outputs[modality][lo:hi] = part
        sums = np.add.reduceat(part.astype(np.float64), bounds, axis=0)
        outputs[modality + POOLED_SUFFIX][start:stop] = (sums / np.diff(offsets[start:stop + 1])[:, None]).astype(
            np.float32)


def read_word_vectors(path: Path, words: set[str]) -> dict[str, np.ndarray]:
    """The GloVe vectors of ``words`` (only those the file has), streaming the text file."""
    if not path.is_file():
        raise StoreError(f"{path}: GloVe word vectors not found (see docs/epic-kitchens-100.md)")
    found = {}
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(tqdm(f, desc="reading word vectors", unit=" words", leave=False), 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            if word in words and word not in found:
                vector = np.array(rest.split(), dtype=np.float32)
                if vector.shape != (TEXT_DIM,):
                    raise StoreError(f"{path}: line {line_number}: expected a word and {TEXT_DIM} numbers")
                found[word] = vector
    return found


def text_feature(captions: list[str], vectors: dict[str, np.ndarray]) -> TokenArrays:
    """The ``glove`` text feature: vocabulary [1 + V, 300] (row 0: zeros, for unknown words),
    tokens [W] and offsets [C + 1] over the whitespace words of ``captions``."""
    words = sorted(vectors)
    row = {w: i + 1 for i, w in enumerate(words)}
    tokens = [[row.get(w, 0) for w in caption.split()] for caption in captions]
    if any(not t for t in tokens):
        empty = next(c for c, t in zip(captions, tokens) if not t)
        raise StoreError(f"{DATASET}: caption {empty!r} has no word")
    vocabulary = np.zeros((len(words) + 1, TEXT_DIM), dtype=np.float32)
    if words:
        vocabulary[1:] = np.stack([vectors[w] for w in words])
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in tokens])])
    return TokenArrays(np.array([i for t in tokens for i in t], dtype=np.int64), offsets, vocabulary)


def test_relevance(test_csv: Path, sentence_csv: Path, test_captions: list[str]
                   ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The official test relevance [n_test, M], the test caption each sentence is scored as [M]
    (the first test clip whose narration is the sentence's text as published) and the sentence ids."""
    clips = read_clips(test_csv)
    sentence_ids, texts = read_sentences(sentence_csv)
    matrix = clip_sentence_relevance(clips, sentence_clips(clips, sentence_ids, str(sentence_csv)))
    first = {}
    for i, caption in enumerate(test_captions):
        first.setdefault(caption, i)
    missing = [t for t in texts if t not in first]
    if missing:
        raise StoreError(f"{sentence_csv}: sentence {missing[0]!r} is no test clip's narration")
    return matrix, np.array([first[t] for t in texts], dtype=np.int64), sentence_ids


def convert_epic_kitchens(data_dir: Path, root_feat_folder: str) -> Path:
    """Convert the release under ``<data_dir>/<root_feat_folder>`` into ``<data_dir>/store``."""
    root = Path(data_dir) / root_feat_folder
    if not root.is_dir():
        raise StoreError(f"{root}: EPIC-KITCHENS-100 release folder not found (data_loader.args.root_feat_folder; "
                         "see docs/epic-kitchens-100.md)")
    clips, splits, test_csv, sentence_csv = read_clip_table(root)
    words = {w for caption in clips.captions for w in caption.split()}
    vectors = read_word_vectors(root / WORD_VECTORS, words)
    test_rows = splits["test"]
    matrix, columns, sentence_ids = test_relevance(test_csv, sentence_csv, [clips.captions[i] for i in test_rows])
    sha1 = captions_sha1(clips.captions)
    store_id = new_store_id()
    store_dir = Path(data_dir) / STORE_DIR
    with atomic_dir(store_dir) as building:
        write_features(root, building, clips, store_id)
        write_text(building, TEXT_FEAT, text_feature(clips.captions, vectors), store_id)
        classes = CaptionClasses(ClassLists.from_lists([[v] for v in clips.verbs], NUM_VERB_CLASSES),
                                 ClassLists.from_lists(clips.nouns, NUM_NOUN_CLASSES))
        write_classes(building, classes, sha1=sha1, source=str(root / TRAIN_ANNOTATIONS))
        write_relevance(building, "test", matrix, sha1=sha1, source=str(sentence_csv), columns=columns,
                        column_ids=sentence_ids)
        write_index(building, dataset=DATASET, video_ids=clips.names, splits=splits,
                    captions=[[c] for c in clips.captions], store_id=store_id,
                    attrs={"converter": DATASET, "converter_version": CONVERTER_VERSION, "release": str(root)})
    return store_dir


def store_is_current(data_dir: Path, root_feat_folder: str) -> bool:
    """Whether ``<data_dir>/store`` was converted by this converter version from this release."""
    store_dir = Path(data_dir) / STORE_DIR
    if not (store_dir / INDEX_NAME).is_file():
        return False
    attrs = read_index_attrs(store_dir)
    return (attrs.get("converter") == DATASET and int(attrs.get("converter_version", -1)) == CONVERTER_VERSION
            and attrs.get("release") == str(Path(data_dir) / root_feat_folder))
