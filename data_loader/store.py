"""The HDF5 feature store: one file per dataset, plain arrays only (no pickles, no classes).

Layout of ``<data_dir>/store.h5`` (N videos, C captions, ``d`` a feature width)::

    attrs: format="expert-store", version=1, dataset=<name>, plus producer attributes
    /videos/ids                  (N,)   str     video ids, row order used everywhere below
    /splits/<split>              (n,)   int64   rows of /videos/ids in the split, in list order
    /experts/<name>              group, attrs kind = "fixed" | "tokens", dim = d
        features                 fixed:  (N, d)  float    one vector per video
                                 tokens: (T, d)  float    the tokens (frames, words) of all
                                                          videos, concatenated in row order
        offsets                  tokens only: (N+1,) int64; video v owns features[offsets[v]:offsets[v+1]]
        available                (N,)   bool    False where the video has no such feature;
                                                the stored values of such rows are meaningless
    /captions/offsets            (N+1,) int64   video v owns captions offsets[v]:offsets[v+1]
    /captions/raw                (C,)   str     caption text, grouped by video in row order
    /text/<text_feat>/embeddings (W, D) float   word-level embeddings of all captions, concatenated
    /text/<text_feat>/offsets    (C+1,) int64   caption c owns embeddings[offsets[c]:offsets[c+1]]

Writing is atomic: the file is built under a temporary name and renamed into place, so an
interrupted write never leaves a store a later run would trust.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

FORMAT = "expert-store"
VERSION = 1
STORE_NAME = "store.h5"


class StoreError(ValueError):
    """A missing or malformed store, described in one line naming the file and the key."""


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


def write_store(path: Path, *, dataset: str, video_ids: list[str], splits: dict[str, np.ndarray],
                experts: dict[str, ExpertArrays], captions: list[list[str]],
                text: dict[str, TokenArrays], attrs: dict | None = None) -> Path:
    """Write a complete store to ``path`` atomically. See the module docstring for the layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".partial-{os.getpid()}")
    num_videos = len(video_ids)
    str_dtype = h5py.string_dtype("utf-8")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"format": FORMAT, "version": VERSION, "dataset": dataset, **(attrs or {})})
            f.create_dataset("videos/ids", data=np.array(video_ids, dtype=object), dtype=str_dtype)
            for name, rows in splits.items():
                f.create_dataset(f"splits/{name}", data=np.asarray(rows, dtype=np.int64))
            for name, expert in experts.items():
                group = f.create_group(f"experts/{name}")
                group.attrs.update({"kind": expert.kind, "dim": expert.features.shape[-1]})
                group.create_dataset("features", data=expert.features)
                group.create_dataset("available", data=np.asarray(expert.available, dtype=bool))
                if expert.offsets is not None:
                    group.create_dataset("offsets", data=np.asarray(expert.offsets, dtype=np.int64))
            counts = np.array([len(c) for c in captions], dtype=np.int64)
            f.create_dataset("captions/offsets", data=np.concatenate([[0], np.cumsum(counts)]))
            flat = [c for caps in captions for c in caps]
            f.create_dataset("captions/raw", data=np.array(flat, dtype=object), dtype=str_dtype)
            for name, tokens in text.items():
                f.create_dataset(f"text/{name}/embeddings", data=tokens.values)
                f.create_dataset(f"text/{name}/offsets", data=np.asarray(tokens.offsets, dtype=np.int64))
            if len(counts) != num_videos:
                raise StoreError(f"{path}: captions: {len(counts)} caption lists for {num_videos} videos")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


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


def _read(f: h5py.File, key: str, path: Path) -> np.ndarray:
    if key not in f:
        raise StoreError(f"{path}: missing dataset '{key}'")
    return f[key][()]


def _strings(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def load_store(path: Path, experts: list[str], text_feat: str) -> FeatureStore:
    """Load the named experts and text feature of a store into memory.

    Raises StoreError (one line naming the file and key) for a missing file, a foreign file,
    or a missing expert / text feature.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: feature store not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 feature store ({exc})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise StoreError(f"{path}: not a feature store (attribute format != '{FORMAT}')")
        if int(f.attrs.get("version", -1)) != VERSION:
            raise StoreError(f"{path}: store version {f.attrs.get('version')} is not supported (expected {VERSION})")
        loaded = {}
        for name in experts:
            key = f"experts/{name}"
            if key not in f:
                have = ", ".join(sorted(f["experts"])) if "experts" in f else "none"
                raise StoreError(f"{path}: expert '{name}' not in the store (it has: {have})")
            group = f[key]
            offsets = _read(f, f"{key}/offsets", path) if group.attrs["kind"] == "tokens" else None
            loaded[name] = ExpertTensors(
                kind=str(group.attrs["kind"]),
                features=torch.from_numpy(_read(f, f"{key}/features", path)),
                available=torch.from_numpy(_read(f, f"{key}/available", path).astype(bool)),
                offsets=None if offsets is None else torch.from_numpy(offsets),
            )
        text_key = f"text/{text_feat}"
        if text_key not in f:
            have = ", ".join(sorted(f["text"])) if "text" in f else "none"
            raise StoreError(f"{path}: text feature '{text_feat}' not in the store (it has: {have})")
        return FeatureStore(
            path=path,
            video_ids=_strings(_read(f, "videos/ids", path)),
            splits={name: torch.from_numpy(f[f"splits/{name}"][()]) for name in f["splits"]},
            experts=loaded,
            caption_offsets=torch.from_numpy(_read(f, "captions/offsets", path)),
            raw_captions=_strings(_read(f, "captions/raw", path)),
            text_embeddings=torch.from_numpy(_read(f, f"{text_key}/embeddings", path)),
            text_offsets=torch.from_numpy(_read(f, f"{text_key}/offsets", path)),
        )
