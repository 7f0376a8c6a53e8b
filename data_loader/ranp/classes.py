"""Semantic classes and relevance matrices in the feature store (RANP).

Two kinds of files beside the index, both optional (C captions in the index's order)::

    classes.h5              attrs: captions_sha1 (of the index's captions), num_verbs, num_nouns, source
        /verbs/values       (Tv,)  int64   verb classes of all captions, concatenated
        /verbs/offsets      (C+1,) int64   caption c owns values[offsets[c]:offsets[c+1]]
        /nouns/values       (Tn,)  int64   noun classes, likewise
        /nouns/offsets      (C+1,) int64
    relevance/<split>.h5    attrs: captions_sha1, source, kind ("dataset": the dataset's own, else imported)
        /rel_mat            (n, K) float   [video, caption] relevance of an evaluation split:
                                           rows its n videos in /splits/<split> order, columns
                                           its K captions video by video (the query order)
        /columns            (M,) int64     optional: the columns are a sentence set of its own
                                           (EPIC-KITCHENS-100's 3,842 test sentences); rel_mat
                                           is then (n, M) and sentence j is scored as the
                                           split's caption (query) columns[j], one with its text
        /column_ids         (M,) str       with columns: the sentences' ids (submission files)

Class ids lie in ``[0, num_verbs)`` and ``[0, num_nouns)``; ``num_verbs == 0`` marks a
dataset with noun classes only (and ``num_nouns == 0`` one with verbs only). The
``captions_sha1`` attribute ties a file to the captions it describes: after the captions
change, a stale file is refused rather than misread.

Sources: the embedded Synthetic dataset derives its classes from its captions
(``data_loader/generated/synthetic_classes.py``); any other dataset imports a JSON annotation file and
HDF5 relevance matrices (:func:`classes_from_annotations`, :func:`import_relevance`, run by
``data_loader/prepare.py``).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from data_loader.ranp.relevance import ClassLists
from data_loader.store.feature_store import INDEX_NAME, _check_offsets, _open, _read, _strings, atomic_h5
from utils.errors import StoreError

CLASSES_NAME = "classes.h5"
RELEVANCE_DIR = "relevance"
RELEVANCE_KEY = "rel_mat"
MAX_CLASSES = 100_000
"""Class ids lie below this: relevance is computed on [items, classes] multi-hot sets (EPIC-Kitchens-100
has 97 verbs and 300 nouns), and an id of 10**12 would ask for petabytes."""
COLUMNS_KEY = "columns"
COLUMN_IDS_KEY = "column_ids"
DATASET_RELEVANCE = "dataset"
"""``kind`` attribute of a relevance file a dataset's conversion writes (its official relevance),
which evaluation uses without a config naming it; an imported file is used only by a config
that names it (``data_loader.args.relevance_files``)."""


@dataclass
class CaptionClasses:
    """Verb and noun classes of every caption; None for a kind the dataset does not have."""

    verbs: ClassLists | None
    nouns: ClassLists | None


def read_captions(store_dir: Path) -> tuple[list[str], torch.Tensor, list[str]]:
    """Video ids [N], caption offsets [N + 1] and caption texts [C] of a store's index."""
    with _open(Path(store_dir) / INDEX_NAME, "feature store index") as f:
        return (_strings(_read(f, "videos/ids")), torch.from_numpy(_read(f, "captions/offsets")),
                _strings(_read(f, "captions/raw")))


def captions_sha1(raw_captions: list[str]) -> str:
    """A fingerprint of the captions (text and order) that classes and relevance belong to."""
    digest = hashlib.sha1()
    for caption in raw_captions:
        digest.update(caption.encode("utf-8") + b"\n")
    return digest.hexdigest()


def classes_path(store_dir: Path) -> Path:
    return Path(store_dir) / CLASSES_NAME


def relevance_path(store_dir: Path, split: str) -> Path:
    return Path(store_dir) / RELEVANCE_DIR / f"{split}.h5"


def stored_source(path: Path, sha1: str) -> str | None:
    """The ``source`` attribute of a classes or relevance file that belongs to the captions
    ``sha1``; None when the file is absent, unreadable or stale."""
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs["source"]) if f.attrs.get("captions_sha1") == sha1 else None
    except (OSError, KeyError):
        return None


def write_classes(store_dir: Path, classes: CaptionClasses, *, sha1: str, source: str) -> Path:
    """Write ``classes.h5`` atomically."""
    path = classes_path(store_dir)
    with atomic_h5(path) as f:
        f.attrs.update({"captions_sha1": sha1, "source": source})
        for kind, lists in (("verbs", classes.verbs), ("nouns", classes.nouns)):
            f.attrs[f"num_{kind}"] = 0 if lists is None else lists.num_classes
            if lists is not None:
                f.create_dataset(f"{kind}/values", data=lists.values.numpy())
                f.create_dataset(f"{kind}/offsets", data=lists.offsets.numpy())
    return path


def _lists(f: h5py.File, kind: str, num_captions: int) -> ClassLists | None:
    num_classes = int(f.attrs.get(f"num_{kind}", 0))
    if num_classes == 0:
        return None
    values = torch.from_numpy(_read(f, f"{kind}/values").astype(np.int64))
    offsets = _read(f, f"{kind}/offsets")
    _check_offsets(f.filename, f"{kind}/offsets", offsets, rows=num_captions, total=values.numel(), per="caption",
                   of=f"{kind} class ids")
    offsets = torch.from_numpy(offsets.astype(np.int64))
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= num_classes):
        raise StoreError(f"{f.filename}: {kind}/values must lie in [0, {num_classes}) (attribute num_{kind})")
    return ClassLists(values, offsets, num_classes)


def read_classes(store_dir: Path, raw_captions: list[str]) -> CaptionClasses | None:
    """The classes of the captions ``raw_captions`` (the index's); None without ``classes.h5``.

    A file written for other captions, or with malformed lists, is a StoreError.
    """
    path = classes_path(store_dir)
    if not path.is_file():
        return None
    with _open(path, "class file") as f:
        if f.attrs.get("captions_sha1") != captions_sha1(raw_captions):
            raise StoreError(f"{path}: the classes belong to other captions than the index's; "
                             "delete the file and prepare the store again")
        classes = CaptionClasses(_lists(f, "verbs", len(raw_captions)), _lists(f, "nouns", len(raw_captions)))
    if classes.verbs is None and classes.nouns is None:
        raise StoreError(f"{path}: holds neither verb nor noun classes (num_verbs = num_nouns = 0)")
    return classes


def _class_ids(value: object, where: str) -> list[int]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < MAX_CLASSES for c in items):
        raise StoreError(f"{where}: expected a class id (int in [0, {MAX_CLASSES})) or a list of them, "
                         f"got {json.dumps(value)}")
    return items


def classes_from_annotations(path: Path, video_ids: list[str], caption_offsets: torch.Tensor) -> CaptionClasses:
    """Read per-caption classes from a JSON annotation file (format in the README).

    The file maps every video id of the store to a list with one entry per stored caption,
    in the store's order: ``{"verb_class": int or [int, ...], "noun_classes": [int, ...]}``
    (either key may be left out everywhere, for nouns-only or verbs-only datasets). Videos
    the store does not hold are ignored. Anything else is a StoreError naming the video.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: class annotation file not found (data_loader.args.class_annotations)")
    try:
        annotations = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: not a JSON class annotation file ({exc})") from None
    if not isinstance(annotations, dict):
        raise StoreError(f"{path}: expected an object mapping video ids to lists of caption classes")
    lists: dict[str, list[list[int]]] = {"verb_class": [], "noun_classes": []}
    seen = {key: False for key in lists}
    for video, vid in enumerate(video_ids):
        expected = int(caption_offsets[video + 1] - caption_offsets[video])
        entries = annotations.get(vid)
        if not isinstance(entries, list) or len(entries) != expected:
            got = "none" if entries is None else (len(entries) if isinstance(entries, list) else json.dumps(entries))
            raise StoreError(f"{path}: video '{vid}' needs a list of {expected} caption entries "
                             f"(one per stored caption), got {got}")
        for k, entry in enumerate(entries):
            if not isinstance(entry, dict) or not set(entry) <= set(lists):
                raise StoreError(f"{path}: video '{vid}' caption {k}: expected an object with keys "
                                 f"'verb_class' and/or 'noun_classes', got {json.dumps(entry)}")
            for key in lists:
                seen[key] |= key in entry
                lists[key].append(_class_ids(entry.get(key, []), f"{path}: video '{vid}' caption {k}: {key}"))
    if not any(seen.values()):
        raise StoreError(f"{path}: no caption has 'verb_class' or 'noun_classes'")
    verbs, nouns = (ClassLists.from_lists(lists[key]) if seen[key] else None for key in lists)
    return CaptionClasses(verbs, nouns)


def check_relevance_block(block: np.ndarray, label: str, first_row: int = 0) -> None:
    """StoreError naming ``label`` when a block of a relevance matrix (rows from ``first_row``)
    is not numeric, holds NaN or infinity, or a value outside [0, 1] (relevance is a share of
    classes in common: 1 for the same classes, 0 for none)."""
    if block.dtype.kind not in "biuf":
        raise StoreError(f"{label}: {RELEVANCE_KEY} holds {block.dtype} values, expected numbers in [0, 1]")
    values = block.astype(np.float64, copy=False)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise StoreError(f"{label}: {RELEVANCE_KEY}[{first_row + row}, {col}] = {float(values[row, col])!r}, "
                         f"expected relevance in [0, 1] ({int(bad.sum())} such value(s) in rows "
                         f"{first_row}..{first_row + len(block) - 1})")


def _blocks(matrix: h5py.Dataset) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of a 2-D dataset, about 16 M values at a time."""
    step = max(1, (1 << 24) // max(matrix.shape[1], 1))
    for lo in range(0, matrix.shape[0], step):
        yield lo, matrix[lo:lo + step]


def import_relevance(source: Path, store_dir: Path, split: str, *, sha1: str, dataset_own: bool = False) -> Path:
    """Copy the ``rel_mat`` [video, caption] matrix of an HDF5 file into the store as the
    relevance of ``split``. A missing file or key, a matrix that is not 2-D, whose rows are not
    the split's videos, or whose values are not numbers in [0, 1] is a StoreError, and nothing
    is written (its columns are checked against the split's captions when it is read).
    ``dataset_own`` marks it as the dataset's own relevance (a conversion's, e.g. RANP's MSR-VTT
    files in HGR's layout), which evaluation reads without a config naming it."""
    source = Path(source)
    path = relevance_path(store_dir, split)
    with _open(source, "relevance file (data_loader.args.relevance_files)") as f:
        matrix = f.get(RELEVANCE_KEY)
        if not isinstance(matrix, h5py.Dataset) or matrix.ndim != 2:
            raise StoreError(f"{source}: expected a 2-D dataset '{RELEVANCE_KEY}' (the [video, caption] relevance)")
        videos = split_size(store_dir, split)
        if videos is not None and matrix.shape[0] != videos:
            raise StoreError(f"{source}: {RELEVANCE_KEY} has shape {tuple(matrix.shape)}, the {split} split has "
                             f"{videos} videos (rows: its videos, columns: its captions video by video)")
        for lo, block in _blocks(matrix):
            check_relevance_block(block, str(source), lo)
        with atomic_h5(path) as out:
            out.attrs.update({"captions_sha1": sha1, "source": str(source)})
            if dataset_own:
                out.attrs["kind"] = DATASET_RELEVANCE
            copy = out.create_dataset(RELEVANCE_KEY, shape=matrix.shape, dtype=matrix.dtype)
            for lo, block in _blocks(matrix):
                copy[lo:lo + len(block)] = block
    return path


def split_size(store_dir: Path, split: str) -> int | None:
    """The number of videos of ``split`` in a store's index; None when it has no such split, or no
    index yet (a store being built: the matrix's shape is checked again when it is read)."""
    if not (Path(store_dir) / INDEX_NAME).is_file():
        return None
    with _open(Path(store_dir) / INDEX_NAME, "feature store index") as f:
        rows = f.get(f"splits/{split}")
        return None if rows is None else int(rows.shape[0])


def write_relevance(store_dir: Path, split: str, matrix: np.ndarray, *, sha1: str, source: str,
                    columns: np.ndarray | None = None, column_ids: list[str] | None = None) -> Path:
    """Write a dataset's own ``relevance/<split>.h5`` atomically (kind :data:`DATASET_RELEVANCE`):
    ``matrix`` [n, K] (or [n, M] with ``columns`` [M], the split's caption each sentence column
    is scored as, and their ``column_ids`` [M])."""
    check_relevance_block(np.asarray(matrix), f"relevance of {split} from {source}")
    path = relevance_path(store_dir, split)
    with atomic_h5(path) as f:
        f.attrs.update({"captions_sha1": sha1, "source": source, "kind": DATASET_RELEVANCE})
        f.create_dataset(RELEVANCE_KEY, data=matrix)
        if columns is not None:
            f.create_dataset(COLUMNS_KEY, data=np.asarray(columns, dtype=np.int64))
            f.create_dataset(COLUMN_IDS_KEY, data=np.array(column_ids, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
    return path


def read_relevance_columns(store_dir: Path, split: str) -> tuple[torch.Tensor, list[str]] | None:
    """The sentence columns of the stored relevance of ``split``: (caption numbers [M] int64,
    sentence ids [M]); None when the file is absent or its columns are the split's captions."""
    path = relevance_path(store_dir, split)
    if not path.is_file():
        return None
    with _open(path, "relevance file") as f:
        if COLUMNS_KEY not in f:
            return None
        return torch.from_numpy(_read(f, COLUMNS_KEY).astype(np.int64)), _strings(_read(f, COLUMN_IDS_KEY))


def read_relevance(store_dir: Path, split: str, shape: tuple[int, int], sha1: str,
                   source: str | None) -> torch.Tensor | None:
    """The stored relevance [video, caption] of ``split``, checked against the split's ``shape``
    (its columns' count when the file has a sentence set of its own), the captions' fingerprint
    ``sha1`` and the values' range [0, 1].

    ``source``: the file the config names for the split (``data_loader.args.relevance_files``),
    whose import the store must hold; None when the config names none, and then only a
    dataset's own relevance (:func:`write_relevance`) is read, else None is returned (the
    relevance is derived from the classes)."""
    path = relevance_path(store_dir, split)
    if not path.is_file():
        if source is None:
            return None
        raise StoreError(f"{path}: not found; the config names {source} for the {split} split "
                         "(it is imported when train.py or test.py prepares the store)")
    with _open(path, "relevance file") as f:
        if source is None and f.attrs.get("kind") != DATASET_RELEVANCE:
            return None
        if f.attrs.get("captions_sha1") != sha1:
            raise StoreError(f"{path}: the relevance belongs to other captions than the index's; "
                             "delete the file and prepare the store again")
        if source is not None and str(f.attrs.get("source")) != str(source):
            raise StoreError(f"{path}: imported from {f.attrs.get('source')}, but the config names {source}; "
                             "prepare the store again (train.py and test.py do)")
        origin = f.attrs.get("source")
        array = _read(f, RELEVANCE_KEY)
        if array.ndim == 2:
            check_relevance_block(array, str(path))
        matrix = torch.from_numpy(array)
        columns = _read(f, COLUMNS_KEY) if COLUMNS_KEY in f else None
    if columns is not None:
        if columns.ndim != 1 or (columns.size and (columns.min() < 0 or columns.max() >= shape[1])):
            raise StoreError(f"{path}: {COLUMNS_KEY} must be 1-D caption numbers in [0, {shape[1]}) "
                             f"of the {split} split")
        shape = (shape[0], len(columns))
    if tuple(matrix.shape) != tuple(shape):
        raise StoreError(f"{path} (from {origin}): {RELEVANCE_KEY} has shape {tuple(matrix.shape)}, the {split} "
                         f"split needs {tuple(shape)} ([video, caption]: its videos, its captions video by video)")
    return matrix
