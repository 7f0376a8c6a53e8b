"""Caption masks (the original's ``caption_masks``): which captions training may sample.

A config's ``caption_masks`` names a mask relative to the dataset's feature root (e.g. the
original's ``denoising_masks/denoise-less100.pkl``, a pickle of video id -> 0/1 array over the
video's captions). It is stored once, without its suffix, next to the other store files::

    caption_masks/<name>.h5   attrs: store_id (the index build it was made for, as every store file),
                              source = the pickle it was converted from ("" if written directly)
        /kept                 (C,) bool   True for captions training may sample (index caption order)
        /covered              (N,) bool   videos the mask gives; every training video must be covered

The embedded Synthetic dataset writes its own mask (``caption_masks/kept.h5``: captions that name
only concepts of their video); a released dataset's pickle is converted on first use.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import h5py
import numpy as np
import torch

from data_loader.released.convert import load_pickle, read_layout
from data_loader.store.feature_store import STORE_ID, atomic_h5, current_store_id, file_store_id
from utils.errors import StoreError

FOLDER = "caption_masks"


def caption_mask_path(store_dir: Path, name: str) -> Path:
    """The store file of mask ``name`` (its suffix, e.g. ``.pkl``, dropped)."""
    return Path(store_dir) / FOLDER / f"{PurePosixPath(name).with_suffix('')}.h5"


def write_caption_mask(store_dir: Path, name: str, kept: np.ndarray, covered: np.ndarray, store_id: str,
                       source: str = "") -> Path:
    """Write mask ``name`` for the index build ``store_id``: ``kept`` [C] over all captions,
    ``covered`` [N] over all videos."""
    path = caption_mask_path(store_dir, name)
    with atomic_h5(path) as f:
        f.attrs.update({STORE_ID: store_id, "source": source})
        f.create_dataset("kept", data=np.asarray(kept, dtype=bool))
        f.create_dataset("covered", data=np.asarray(covered, dtype=bool))
    return path


def convert_caption_mask(pickle_path: Path, store_dir: Path, name: str) -> Path:
    """Convert an original mask pickle (video id -> 0/1 per caption) into the store."""
    table = load_pickle(pickle_path)
    if not isinstance(table, dict):
        raise StoreError(f"{pickle_path}: expected a dict of video id -> caption mask, got {type(table).__name__}")
    layout = read_layout(store_dir)
    offsets = layout.caption_offsets
    kept = np.ones(int(offsets[-1]), dtype=bool)
    covered = np.zeros(len(layout.video_ids), dtype=bool)
    for row, video in enumerate(layout.video_ids):
        if video not in table:
            continue
        mask = np.asarray(table[video]).reshape(-1)
        count = int(offsets[row + 1] - offsets[row])
        if mask.dtype.kind not in "biuf" or len(mask) != count:
            raise StoreError(f"{pickle_path}: video {video}: expected {count} 0/1 values (one per caption), "
                             f"got {len(mask)} of dtype {mask.dtype}")
        kept[offsets[row]:offsets[row + 1]] = mask != 0
        covered[row] = True
    return write_caption_mask(store_dir, name, kept, covered, layout.store_id, source=str(pickle_path))


def ensure_caption_mask(store_dir: Path, feature_root: Path, name: str) -> Path:
    """The store file of mask ``name``, converted from ``<feature_root>/<name>`` when missing or
    made for another build of the index."""
    path = caption_mask_path(store_dir, name)
    if path.is_file() and file_store_id(path) == current_store_id(store_dir):
        return path
    source = Path(feature_root) / name
    if not source.is_file():
        raise StoreError(f"{path}: caption mask '{name}' not in the store and {source} does not exist")
    return convert_caption_mask(source, store_dir, name)


def load_caption_mask(store_dir: Path, name: str, train_rows: torch.Tensor, video_ids: list[str],
                      caption_offsets: torch.Tensor) -> torch.Tensor:
    """Kept captions [C] (bool) of mask ``name``; StoreError naming the file when a training video
    (``train_rows`` [n]) is not covered or keeps no caption."""
    path = caption_mask_path(store_dir, name)
    if not path.is_file():
        raise StoreError(f"{path}: caption mask '{name}' not in the store")
    if file_store_id(path) != current_store_id(store_dir):
        raise StoreError(f"{path}: made for another build of the store; delete it to convert it again")
    with h5py.File(path, "r") as f:
        kept = torch.from_numpy(f["kept"][()].astype(bool))
        covered = torch.from_numpy(f["covered"][()].astype(bool))
    if len(kept) != int(caption_offsets[-1]) or len(covered) != len(video_ids):
        raise StoreError(f"{path}: mask of {len(kept)} captions and {len(covered)} videos, the index has "
                         f"{int(caption_offsets[-1])} and {len(video_ids)}")
    uncovered = train_rows[~covered[train_rows]]
    if len(uncovered):
        raise StoreError(f"{path}: no caption mask for training video {video_ids[int(uncovered[0])]}")
    counts = torch.zeros(len(video_ids), dtype=torch.long).index_add_(
        0, torch.repeat_interleave(torch.arange(len(video_ids)), torch.diff(caption_offsets)), kept.long())
    empty = train_rows[counts[train_rows] == 0]
    if len(empty):
        raise StoreError(f"{path}: training video {video_ids[int(empty[0])]} keeps none of its captions")
    return kept
