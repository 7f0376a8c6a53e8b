"""The HDF5 feature store: a folder of small files holding plain arrays (no pickles, no classes).

Layout of ``<data_dir>/store/`` (N videos, C captions, ``d`` a feature width)::

    index.h5        attrs: format="expert-store", version=1, dataset=<name>, producer attributes
        /videos/ids             (N,)   str     video ids, row order used by every file
        /splits/<split>         (n,)   int64   rows of the split's videos, in list order
        /captions/offsets       (N+1,) int64   video v owns captions offsets[v]:offsets[v+1]
        /captions/raw           (C,)   str     caption text, grouped by video in row order
    experts/<name>.h5   attrs: kind = "fixed" | "tokens", dim = d
        /features               fixed:  (N, d) float   one vector per video
                                tokens: (T, d) float   tokens (frames, words) of all videos, concatenated
        /offsets                tokens only: (N+1,) int64; video v owns features[offsets[v]:offsets[v+1]]
        /available              (N,)   bool    False where the video has no such feature; the
                                               stored values of such rows are meaningless
    text/<text_feat>.h5
        /embeddings             (W, D) float   word-level embeddings of all captions, concatenated
        /offsets                (C+1,) int64   caption c owns embeddings[offsets[c]:offsets[c+1]]

Every file is written atomically (built under a temporary name, then renamed), so an
interrupted write never leaves a file a later run would trust, and a conversion that stops
half way keeps the files it finished.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import torch

from utils.atomic import atomic_path
from utils.errors import StoreError

FORMAT = "expert-store"
VERSION = 1
STORE_DIR = "store"
INDEX_NAME = "index.h5"


@dataclass
class ExpertArrays:
    """One expert's features. ``offsets`` is None for fixed-size experts."""

    features: np.ndarray
    available: np.ndarray
    offsets: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return "fixed" if self.offsets is None else "tokens"


@dataclass
class TokenArrays:
    """Variable-length rows packed flat: row r owns ``values[offsets[r]:offsets[r+1]]``."""

    values: np.ndarray
    offsets: np.ndarray


@contextmanager
def atomic_h5(path: Path) -> Iterator[h5py.File]:
    """An HDF5 file opened for writing that replaces ``path`` only once complete."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        yield f


def expert_path(store_dir: Path, name: str) -> Path:
    return Path(store_dir) / "experts" / f"{name}.h5"


def text_path(store_dir: Path, name: str) -> Path:
    return Path(store_dir) / "text" / f"{name}.h5"


def write_expert(store_dir: Path, name: str, expert: ExpertArrays) -> Path:
    """Write ``experts/<name>.h5`` atomically."""
    path = expert_path(store_dir, name)
    with atomic_h5(path) as f:
        f.attrs.update({"kind": expert.kind, "dim": expert.features.shape[-1]})
        f.create_dataset("features", data=expert.features)
        f.create_dataset("available", data=np.asarray(expert.available, dtype=bool))
        if expert.offsets is not None:
            f.create_dataset("offsets", data=np.asarray(expert.offsets, dtype=np.int64))
    return path


def write_text(store_dir: Path, name: str, tokens: TokenArrays) -> Path:
    """Write ``text/<name>.h5`` atomically."""
    path = text_path(store_dir, name)
    with atomic_h5(path) as f:
        f.create_dataset("embeddings", data=tokens.values)
        f.create_dataset("offsets", data=np.asarray(tokens.offsets, dtype=np.int64))
    return path


def write_index(store_dir: Path, *, dataset: str, video_ids: list[str], splits: dict[str, np.ndarray],
                captions: list[list[str]], attrs: dict | None = None) -> Path:
    """Write ``index.h5`` (ids, splits, captions) atomically."""
    if len(captions) != len(video_ids):
        raise StoreError(f"{store_dir}: {len(captions)} caption lists for {len(video_ids)} videos")
    str_dtype = h5py.string_dtype("utf-8")
    path = Path(store_dir) / INDEX_NAME
    with atomic_h5(path) as f:
        f.attrs.update({"format": FORMAT, "version": VERSION, "dataset": dataset, **(attrs or {})})
        f.create_dataset("videos/ids", data=np.array(video_ids, dtype=object), dtype=str_dtype)
        for name, rows in splits.items():
            f.create_dataset(f"splits/{name}", data=np.asarray(rows, dtype=np.int64))
        counts = np.array([len(c) for c in captions], dtype=np.int64)
        f.create_dataset("captions/offsets", data=np.concatenate([[0], np.cumsum(counts)]))
        flat = [c for caps in captions for c in caps]
        f.create_dataset("captions/raw", data=np.array(flat, dtype=object), dtype=str_dtype)
    return path


def write_store(store_dir: Path, *, dataset: str, video_ids: list[str], splits: dict[str, np.ndarray],
                experts: dict[str, ExpertArrays], captions: list[list[str]],
                text: dict[str, TokenArrays], attrs: dict | None = None) -> Path:
    """Write a whole store; the index goes last, so its presence marks a complete store."""
    for name, expert in experts.items():
        write_expert(store_dir, name, expert)
    for name, tokens in text.items():
        write_text(store_dir, name, tokens)
    write_index(store_dir, dataset=dataset, video_ids=video_ids, splits=splits, captions=captions, attrs=attrs)
    return Path(store_dir)


@dataclass
class ExpertTensors:
    """An expert held in memory: ``features`` [N, d] (fixed) or [T, d] with ``offsets`` [N+1]."""

    kind: str
    features: torch.Tensor
    available: torch.Tensor
    offsets: torch.Tensor | None


@dataclass
class FeatureStore:
    """A store loaded into contiguous tensors, ready for index-gathered batches."""

    path: Path
    video_ids: list[str]
    splits: dict[str, torch.Tensor]
    experts: dict[str, ExpertTensors]
    caption_offsets: torch.Tensor
    raw_captions: list[str]
    text_embeddings: torch.Tensor
    text_offsets: torch.Tensor

    @property
    def num_videos(self) -> int:
        return len(self.video_ids)

    def captions_of(self, video: int) -> list[str]:
        lo, hi = int(self.caption_offsets[video]), int(self.caption_offsets[video + 1])
        return self.raw_captions[lo:hi]


def _open(path: Path, what: str) -> h5py.File:
    if not path.is_file():
        raise StoreError(f"{path}: {what} not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 file ({exc})") from None


def _read(f: h5py.File, key: str) -> np.ndarray:
    if key not in f:
        raise StoreError(f"{f.filename}: missing dataset '{key}'")
    return f[key][()]


def _mapped(f: h5py.File, key: str) -> np.ndarray:
    """Dataset ``key`` memory-mapped from the file when it is stored contiguously and uncompressed
    (as :func:`write_store` writes it), so loading reads nothing and processes share the pages;
    else read into memory. Mapped copy-on-write: the file is never modified."""
    if key not in f:
        raise StoreError(f"{f.filename}: missing dataset '{key}'")
    dataset = f[key]
    offset = dataset.id.get_offset()
    if offset is None or dataset.chunks is not None or dataset.size == 0:
        return dataset[()]
    return np.memmap(f.filename, dtype=dataset.dtype, mode="c", offset=offset, shape=dataset.shape)


def _strings(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _names(folder: Path) -> str:
    names = sorted(p.stem for p in folder.glob("*.h5"))
    return ", ".join(names) or "none"


def read_index_attrs(store_dir: Path) -> dict:
    """Attributes of a store's index (empty when there is no readable index)."""
    try:
        with h5py.File(Path(store_dir) / INDEX_NAME, "r") as f:
            return dict(f.attrs)
    except OSError:
        return {}


def load_store(store_dir: Path, experts: list[str], text_feat: str) -> FeatureStore:
    """Load the named experts and text feature of a store: features and word embeddings
    memory-mapped (see :func:`_mapped`), the rest read into memory.

    Raises StoreError (one line naming the file) for a missing store, a foreign file, or a
    missing expert / text feature.
    """
    store_dir = Path(store_dir)
    with _open(store_dir / INDEX_NAME, "feature store index") as f:
        if f.attrs.get("format") != FORMAT:
            raise StoreError(f"{f.filename}: not a feature store index (attribute format != '{FORMAT}')")
        if int(f.attrs.get("version", -1)) != VERSION:
            raise StoreError(f"{f.filename}: store version {f.attrs.get('version')} is not supported (expected {VERSION})")
        video_ids = _strings(_read(f, "videos/ids"))
        splits = {name: torch.from_numpy(f[f"splits/{name}"][()]) for name in f.get("splits", {})}
        caption_offsets = torch.from_numpy(_read(f, "captions/offsets"))
        raw_captions = _strings(_read(f, "captions/raw"))
    loaded = {}
    for name in experts:
        path = expert_path(store_dir, name)
        if not path.is_file():
            raise StoreError(f"{path}: expert '{name}' not in the store (it has: {_names(path.parent)})")
        with _open(path, "expert file") as f:
            kind = str(f.attrs.get("kind"))
            loaded[name] = ExpertTensors(
                kind=kind,
                features=torch.from_numpy(_mapped(f, "features")),
                available=torch.from_numpy(_read(f, "available").astype(bool)),
                offsets=torch.from_numpy(_read(f, "offsets")) if kind == "tokens" else None,
            )
        if len(loaded[name].available) != len(video_ids):
            raise StoreError(f"{path}: {len(loaded[name].available)} videos, the index has {len(video_ids)}")
    path = text_path(store_dir, text_feat)
    if not path.is_file():
        raise StoreError(f"{path}: text feature '{text_feat}' not in the store (it has: {_names(path.parent)})")
    with _open(path, "text feature file") as f:
        text_embeddings = torch.from_numpy(_mapped(f, "embeddings"))
        text_offsets = torch.from_numpy(_read(f, "offsets"))
    return FeatureStore(store_dir, video_ids, splits, loaded, caption_offsets, raw_captions,
                        text_embeddings, text_offsets)
