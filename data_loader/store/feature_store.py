"""The HDF5 feature store: a folder of small files holding plain arrays (no pickles, no classes).

Layout of ``<data_dir>/store/`` (N videos, C captions, ``d`` a feature width)::

    index.h5        attrs: format="expert-store", version=2, dataset=<name>, store_id, producer attributes
        /videos/ids             (N,)   str     video ids, row order used by every file
        /splits/<split>         (n,)   int64   rows of the split's videos, in list order
        /captions/offsets       (N+1,) int64   video v owns captions offsets[v]:offsets[v+1]
        /captions/raw           (C,)   str     caption text, grouped by video in row order
    experts/<name>.h5   attrs: kind = "fixed" | "tokens", dim = d, store_id
        /features               fixed:  (N, d) float   one vector per video
                                tokens: (T, d) float   tokens (frames, words) of all videos, concatenated
        /offsets                tokens only: (N+1,) int64; video v owns features[offsets[v]:offsets[v+1]]
        /available              (N,)   bool    False where the video has no such feature; the
                                               stored values of such rows are meaningless
    text/<text_feat>.h5 attrs: store_id
        /embeddings             (W, D) float   word-level embeddings of all captions, concatenated
        /offsets                (C+1,) int64   caption c owns embeddings[offsets[c]:offsets[c+1]]
      or, for a feature whose words take one of V embeddings (a vocabulary):
        /vocabulary             (V, D) float   the embeddings
        /tokens                 (W,)   int64   vocabulary row of every word of all captions, concatenated
        /offsets                (C+1,) int64   caption c owns tokens[offsets[c]:offsets[c+1]]
    caption_masks/<name>.h5     captions training may sample (layout in data_loader/teachtext/caption_masks.py)
    <base_path><teacher>.h5     a TeachText teacher's embeddings, e.g. teachers/<name>.h5 (layout in
                                data_loader/teachtext/teachers.py)

Every file carries the attribute ``store_id`` of the index it was built for: the index names
one build of the store (a fresh id each time it is written) and a file with another id belongs
to another build, so a store mixing two builds is never trusted. Every file is written
atomically (built under a temporary name, then renamed), so an interrupted write never leaves a
file a later run would trust, and a conversion that stops half way keeps the files it finished.
A whole store (:func:`write_store`, the Synthetic dataset) is built in a fresh folder renamed
into place once complete.

Opening a store (:func:`load_store`) checks its invariants once and stops at the first
violation with one line naming the file: offsets start at 0, never decrease and end at the
number of rows they index; split rows are rows of the index; every file has one row per video
(caption); every video has at least one caption; text features are finite.

Optional files for relevance-aware training and metrics (RANP), ``classes.h5`` (semantic
classes of every caption) and ``relevance/<split>.h5`` (a split's [video, caption] relevance),
are laid out in ``data_loader/ranp/classes.py``.
"""
from __future__ import annotations

import math
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np
import torch

from data_loader.store.file_rows import FileRows
from logger.logger import get_logger
from utils.atomic import PARTIAL as PARTIAL_MARK
from utils.atomic import atomic_dir, atomic_path
from utils.errors import StoreError

FORMAT = "expert-store"
VERSION = 2  # 2: every file carries its index's store_id
STORE_ID = "store_id"
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
    """Variable-length rows packed flat: row r owns ``values[offsets[r]:offsets[r+1]]``.

    With a ``vocabulary`` [V, D], ``values`` [W] are its row numbers rather than embeddings [W, D].
    To be written only, ``values`` may also be the rows' [T_r, D] arrays in order, a list.
    """

    values: np.ndarray | list[np.ndarray]
    offsets: np.ndarray
    vocabulary: np.ndarray | None = None


@contextmanager
def atomic_h5(path: Path) -> Iterator[h5py.File]:
    """An HDF5 file opened for writing that replaces ``path`` only once complete."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        yield f


def expert_path(store_dir: Path, name: str) -> Path:
    return Path(store_dir) / "experts" / f"{name}.h5"


def text_path(store_dir: Path, name: str) -> Path:
    return Path(store_dir) / "text" / f"{name}.h5"


def new_store_id() -> str:
    """A fresh id for one build of a store's index."""
    return uuid.uuid4().hex


def file_store_id(path: Path) -> str | None:
    """The ``store_id`` attribute of a store file; None when it has none or cannot be read."""
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get(STORE_ID)
    except OSError:
        return None
    return None if value is None else str(value)


def current_store_id(store_dir: Path) -> str | None:
    """The ``store_id`` of the store's index when it is of this store version, else None."""
    attrs = read_index_attrs(store_dir)
    return str(attrs[STORE_ID]) if STORE_ID in attrs and attrs.get("version") == VERSION else None


def write_expert(store_dir: Path, name: str, expert: ExpertArrays, store_id: str) -> Path:
    """Write ``experts/<name>.h5`` atomically, for the index build ``store_id``."""
    path = expert_path(store_dir, name)
    with atomic_h5(path) as f:
        f.attrs.update({"kind": expert.kind, "dim": expert.features.shape[-1], STORE_ID: store_id})
        f.create_dataset("features", data=expert.features)
        f.create_dataset("available", data=np.asarray(expert.available, dtype=bool))
        if expert.offsets is not None:
            f.create_dataset("offsets", data=np.asarray(expert.offsets, dtype=np.int64))
    return path


def write_rows(f: h5py.File, name: str, rows: list[np.ndarray], total: int, block_bytes: int = 64 << 20) -> None:
    """Dataset ``name`` [total, D] float32 of ``rows`` ([T_r, D] arrays, ``total`` rows in all)
    stacked, written in blocks of about ``block_bytes``: never a second whole copy in memory."""
    width = next((r.shape[1] for r in rows if r.size), rows[0].shape[1] if rows else 0)
    dataset = f.create_dataset(name, shape=(total, width), dtype=np.float32)
    start, block, size = 0, [], 0
    for i, row in enumerate(rows):
        block.append(row)
        size += row.nbytes
        if size >= block_bytes or i == len(rows) - 1:
            stacked = np.concatenate(block)
            dataset[start:start + len(stacked)] = stacked
            start, block, size = start + len(stacked), [], 0


def write_text(store_dir: Path, name: str, tokens: TokenArrays, store_id: str) -> Path:
    """Write ``text/<name>.h5`` atomically, for the index build ``store_id``."""
    path = text_path(store_dir, name)
    with atomic_h5(path) as f:
        f.attrs[STORE_ID] = store_id
        if isinstance(tokens.values, list):
            write_rows(f, "embeddings", tokens.values, int(tokens.offsets[-1]))
        elif tokens.vocabulary is None:
            f.create_dataset("embeddings", data=tokens.values)
        else:
            f.create_dataset("vocabulary", data=tokens.vocabulary)
            f.create_dataset("tokens", data=np.asarray(tokens.values, dtype=np.int64))
        f.create_dataset("offsets", data=np.asarray(tokens.offsets, dtype=np.int64))
    return path


def write_index(store_dir: Path, *, dataset: str, video_ids: list[str], splits: dict[str, np.ndarray],
                captions: list[list[str]], store_id: str, attrs: dict | None = None) -> Path:
    """Write ``index.h5`` (ids, splits, captions) atomically as the build ``store_id``."""
    if len(captions) != len(video_ids):
        raise StoreError(f"{store_dir}: {len(captions)} caption lists for {len(video_ids)} videos")
    str_dtype = h5py.string_dtype("utf-8")
    path = Path(store_dir) / INDEX_NAME
    with atomic_h5(path) as f:
        f.attrs.update({"format": FORMAT, "version": VERSION, "dataset": dataset, **(attrs or {}),
                        STORE_ID: store_id})
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
                text: dict[str, TokenArrays], attrs: dict | None = None,
                extras: Callable[[Path, str], None] | None = None, derived: tuple[str, ...] = ()) -> Path:
    """Write a whole store as one new build, in a fresh folder that replaces ``store_dir`` only once
    complete (:func:`utils.atomic.atomic_dir`): an interrupted write leaves the previous store as it was.
    ``extras(folder, store_id)`` writes further files of the build into the folder being built.
    Files of the previous build that this one does not write are kept (:func:`carry_additions`),
    except those named in ``derived`` (relative paths the program derives again from the new build)."""
    store_id = new_store_id()
    with atomic_dir(store_dir) as building:
        if extras is not None:
            extras(building, store_id)
        for name, expert in experts.items():
            write_expert(building, name, expert, store_id)
        for name, tokens in text.items():
            write_text(building, name, tokens, store_id)
        write_index(building, dataset=dataset, video_ids=video_ids, splits=splits, captions=captions,
                    store_id=store_id, attrs=attrs)
        kept = carry_additions(Path(store_dir), building, derived)
    if kept:
        get_logger().info(f"{store_dir}: rebuilt; kept {len(kept)} file(s) added to the previous build, made for "
                          f"it (teachers are converted or must be exported again, relevance imported again): "
                          f"{', '.join(str(path) for path in kept)}")
    return Path(store_dir)


def carry_additions(old: Path, new: Path, derived: tuple[str, ...] = ()) -> list[Path]:
    """Link into the store being built (``new``) every file of the previous build (``old``) that
    the new build does not write: what users and runs added (exported and converted teachers,
    imported relevance, class files). Returns their paths relative to the store. A rebuild thus
    never deletes them; their ``store_id`` or captions fingerprint marks them as made for the
    previous build, so readers convert or refuse them as for any stale file."""
    if not old.is_dir():
        return []
    kept = []
    for path in sorted(old.rglob("*")):
        relative = path.relative_to(old)
        target = new / relative
        if (path.is_symlink() or not path.is_file() or target.exists() or PARTIAL_MARK in path.name
                or relative.as_posix() in derived):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)  # files are replaced by renames, never edited in place: sharing is safe
        except OSError:
            shutil.copy2(path, target)
        kept.append(relative)
    return kept


@dataclass
class ExpertTensors:
    """A loaded expert: ``features`` [N, d] (fixed) or [T, d] with ``offsets`` [N+1], read from
    the file on demand (:class:`FileRows`, indexed like a tensor) or held in memory."""

    kind: str
    features: FileRows | torch.Tensor
    available: torch.Tensor
    offsets: torch.Tensor | None


@dataclass
class FeatureStore:
    """A loaded store, ready for index-gathered batches.

    ``text_embeddings`` is [W, D] (one row per word of all captions, usually read from the file
    on demand), or the vocabulary [V, D] (in memory) when ``text_tokens`` [W] gives each word's
    vocabulary row.
    """

    path: Path
    video_ids: list[str]
    splits: dict[str, torch.Tensor]
    experts: dict[str, ExpertTensors]
    caption_offsets: torch.Tensor
    raw_captions: list[str]
    text_embeddings: FileRows | torch.Tensor
    text_offsets: torch.Tensor
    text_tokens: torch.Tensor | None = None

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


def _rows(f: h5py.File, key: str) -> FileRows | torch.Tensor:
    """Dataset ``key`` served from the file on demand (:class:`FileRows`) when it is stored
    contiguously and uncompressed (as :func:`write_store` writes it), so loading reads nothing
    and the process holds only the rows a batch asks for; else read into memory."""
    if key not in f:
        raise StoreError(f"{f.filename}: missing dataset '{key}'")
    dataset = f[key]
    offset = dataset.id.get_offset()
    if offset is None or dataset.chunks is not None or dataset.size == 0 or dataset.ndim != 2:
        return torch.from_numpy(dataset[()])
    return FileRows(Path(f.filename), offset, dataset.dtype, dataset.shape)


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


@dataclass
class _Index:
    """The index of a store, checked: numpy arrays as stored."""

    store_id: str
    video_ids: list[str]
    splits: dict[str, np.ndarray]
    caption_offsets: np.ndarray
    raw_captions: list[str]


def _check_offsets(path: Path, key: str, offsets: np.ndarray, *, rows: int, total: int, per: str, of: str,
                   labels: list[str] | None = None) -> None:
    """StoreError naming the first violation unless ``offsets`` packs ``rows`` rows (one per ``per``)
    into ``total`` entries (``of``): ``rows + 1`` integers from 0 to ``total``, never decreasing, and
    with ``labels`` given, every row owning at least one entry."""
    if offsets.shape != (rows + 1,) or not np.issubdtype(offsets.dtype, np.integer):
        raise StoreError(f"{path}: {key}: expected {rows + 1} integer offsets (one per {per}, plus one), "
                         f"got shape {offsets.shape} of {offsets.dtype}")
    if offsets[0] != 0:
        raise StoreError(f"{path}: {key}[0] = {offsets[0]}, expected 0")
    sizes = np.diff(offsets)
    bad = np.flatnonzero(sizes < (1 if labels is not None else 0))
    if bad.size:
        i = int(bad[0])
        if sizes[i] < 0:
            raise StoreError(f"{path}: {key}[{i + 1}] = {offsets[i + 1]} is less than {key}[{i}] = {offsets[i]}, "
                             f"expected non-decreasing offsets")
        raise StoreError(f"{path}: {per} {i} ({labels[i]!r}) has no {of} ({key}[{i}] = {key}[{i + 1}] = "
                         f"{offsets[i]}); every {per} needs at least one")
    if offsets[-1] != total:
        raise StoreError(f"{path}: {key}[{rows}] = {offsets[-1]}, expected {total}, the number of {of}")


def _check_split(path: Path, name: str, rows: np.ndarray, num_videos: int) -> None:
    """StoreError unless split ``name`` holds row numbers of the index's videos."""
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise StoreError(f"{path}: splits/{name}: expected a list of integer rows, got shape {rows.shape} "
                         f"of {rows.dtype}")
    bad = np.flatnonzero((rows < 0) | (rows >= num_videos))
    if bad.size:
        j = int(bad[0])
        raise StoreError(f"{path}: splits/{name}[{j}] = {rows[j]}, expected a row of the index "
                         f"(0 <= row < {num_videos})")


def _first_non_finite_row(values: FileRows | torch.Tensor) -> int | None:
    """First row of ``values`` holding a NaN or an infinity; None when all are finite (one
    pass then, block by block for rows read from a file)."""
    blocks = values.chunks() if isinstance(values, FileRows) else [(0, values.numpy())]
    for start, block in blocks:
        # a float32 sum is finite unless a value is not (or finite values overflow: looked at row by row)
        with np.errstate(over="ignore", invalid="ignore"):
            total = block.sum(dtype=np.float32)
        if not math.isfinite(total):
            rows = np.flatnonzero(~np.isfinite(block).reshape(len(block), -1).all(axis=1))
            if rows.size:
                return start + int(rows[0])
    return None


def check_build(f: h5py.File, store_id: str, store_dir: Path) -> None:
    """StoreError unless the store file ``f`` was written for the index build ``store_id``."""
    found = f.attrs.get(STORE_ID)
    if found is None or str(found) != store_id:
        raise StoreError(f"{f.filename}: belongs to another build of the store (store_id {found}, "
                         f"{INDEX_NAME} has {store_id}); delete {store_dir} and re-run to rebuild it")


def _read_index(store_dir: Path) -> _Index:
    """The store's index, its format, version and invariants checked."""
    path = store_dir / INDEX_NAME
    with _open(path, "feature store index") as f:
        if f.attrs.get("format") != FORMAT:
            raise StoreError(f"{path}: not a feature store index (attribute format != '{FORMAT}')")
        if int(f.attrs.get("version", -1)) != VERSION or STORE_ID not in f.attrs:
            raise StoreError(f"{path}: store version {f.attrs.get('version')} is not supported (expected "
                             f"{VERSION}); delete {store_dir} and re-run to rebuild it")
        index = _Index(str(f.attrs[STORE_ID]), _strings(_read(f, "videos/ids")),
                       {name: f[f"splits/{name}"][()] for name in f.get("splits", {})},
                       _read(f, "captions/offsets"), _strings(_read(f, "captions/raw")))
    for name, rows in index.splits.items():
        _check_split(path, name, rows, len(index.video_ids))
    _check_offsets(path, "captions/offsets", index.caption_offsets, rows=len(index.video_ids),
                   total=len(index.raw_captions), per="video", of="captions", labels=index.video_ids)
    return index


def _read_expert(store_dir: Path, name: str, index: _Index) -> ExpertTensors:
    """Expert ``name`` of the store, checked against ``index``."""
    path = expert_path(store_dir, name)
    if not path.is_file():
        raise StoreError(f"{path}: expert '{name}' not in the store (it has: {_names(path.parent)})")
    num_videos = len(index.video_ids)
    with _open(path, "expert file") as f:
        check_build(f, index.store_id, store_dir)
        kind = str(f.attrs.get("kind"))
        features, available = _rows(f, "features"), _read(f, "available").astype(bool)
        offsets = _read(f, "offsets") if kind == "tokens" else None
    if kind not in ("fixed", "tokens"):
        raise StoreError(f"{path}: attribute kind = {kind!r}, expected 'fixed' or 'tokens'")
    if available.shape != (num_videos,) or features.ndim != 2:
        raise StoreError(f"{path}: available has shape {available.shape} and features {features.shape}, expected "
                         f"({num_videos},) and 2 dimensions (the index has {num_videos} videos)")
    if offsets is None and len(features) != num_videos:
        raise StoreError(f"{path}: features has {len(features)} rows, expected {num_videos}, one per video")
    if offsets is not None:
        _check_offsets(path, "offsets", offsets, rows=num_videos, total=len(features), per="video",
                       of="feature rows")
    return ExpertTensors(kind, features, torch.from_numpy(available),
                         None if offsets is None else torch.from_numpy(offsets))


def _read_text(store_dir: Path, text_feat: str, index: _Index
               ) -> tuple[FileRows | torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``text_feat`` checked against ``index``: word embeddings [W, D], no tokens and caption
    offsets [C+1]; or, for a feature stored with a vocabulary, the vocabulary [V, D], every
    word's vocabulary row [W] and the caption offsets."""
    path = text_path(store_dir, text_feat)
    if not path.is_file():
        raise StoreError(f"{path}: text feature '{text_feat}' not in the store (it has: {_names(path.parent)})")
    with _open(path, "text feature file") as f:
        check_build(f, index.store_id, store_dir)
        key = "vocabulary" if "vocabulary" in f else "embeddings"
        # a vocabulary is small and every batch reads all over it: in memory
        embeddings = torch.from_numpy(_read(f, key)) if key == "vocabulary" else _rows(f, key)
        offsets = _read(f, "offsets")
        tokens = _read(f, "tokens") if key == "vocabulary" else None
    if embeddings.ndim != 2:
        raise StoreError(f"{path}: {key} has shape {embeddings.shape}, expected 2 dimensions")
    words = len(embeddings) if tokens is None else len(tokens)
    _check_offsets(path, "offsets", offsets, rows=len(index.raw_captions), total=words, per="caption",
                   of="embedding rows" if tokens is None else "tokens")
    if tokens is not None and len(tokens) and (tokens.min() < 0 or tokens.max() >= len(embeddings)):
        raise StoreError(f"{path}: tokens hold rows outside the vocabulary's {len(embeddings)}")
    row = _first_non_finite_row(embeddings)
    if row is not None:
        caption = int(np.searchsorted(offsets, row, side="right")) - 1
        where = "" if tokens is not None else f" (caption {caption}, {index.raw_captions[caption]!r})"
        raise StoreError(f"{path}: {key} row {row}{where} holds NaN or infinity, expected finite values")
    return (embeddings, None if tokens is None else torch.from_numpy(tokens),
            torch.from_numpy(offsets))


def load_store(store_dir: Path, experts: list[str], text_feat: str) -> FeatureStore:
    """Load the named experts and text feature of a store: features and word embeddings read
    from their files on demand (see :func:`_rows`), the rest read into memory.

    Raises StoreError (one line naming the file) for a missing store, a foreign file, a missing
    expert / text feature, a file of another build of the store, or the first violation of the
    store's invariants (see the module docstring).
    """
    store_dir = Path(store_dir)
    index = _read_index(store_dir)
    loaded = {name: _read_expert(store_dir, name, index) for name in experts}
    text_embeddings, text_tokens, text_offsets = _read_text(store_dir, text_feat, index)
    splits = {name: torch.from_numpy(rows) for name, rows in index.splits.items()}
    return FeatureStore(store_dir, index.video_ids, splits, loaded, torch.from_numpy(index.caption_offsets),
                        index.raw_captions, text_embeddings, text_offsets, text_tokens)
