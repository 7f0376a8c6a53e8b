"""Reading the original feature release and converting it, once, into the feature store.

Released layout, relative to the feature root ``<data_dir>/<root_feat_folder>/`` (per-dataset
paths and rules in ``data_loader/released/datasets.py``):

* split lists ``<split>.txt``, one video id per line (official copies under misc/datasets/ win);
* raw captions: pickle of video id -> list of captions, each a list of words;
* text features: pickle of video id -> list (one per caption) of [tokens, D] arrays;
* expert features: pickle of video id -> [D] (or [1, D]) array for fixed experts, [T, d] for
  token experts, a float NaN where the video lacks the feature. An expert
  ``<type>.<model>.<index>`` lives at ``aggregated_<type>[_<fps>fps_<px>px_stride<s>]``
  ``[_offset<o>][_inner_stride<i>][_num_segments<n>]/<model>-<temporal>[-logits].pickle``, one
  file per '-'-separated temporal mode, concatenated along features; others at custom paths;
* MSRVTT 1k-A: ``jsfusion_val_caption_idx.pkl``, video id -> index of its only test caption.

Pickles are read with ``utils.original.unpickle``: it builds plain containers and numpy arrays
only, so a released file never runs code. Tables saved with hickle (QuerYD audio) are read as
plain HDF5 (``data_loader/released/hickle_reader.py``).

Store additions, on top of the layout in ``data_loader/store/feature_store.py``::

    index.h5                 attrs also: producer="released", root_feat_folder, fused_captions
        /splits/<stem>       one split per list file (e.g. train_list_full, val_list_jsfusion)
        /captions/...        fused datasets: one caption per video, its captions joined
    experts/<source>.h5      named after the released file(s) it holds, without suffix, e.g.
                             experts/aggregated_audio_feats/Audio_MSRVTT_new.h5; several temporal
                             modes: experts/<folder>/senet154-avg+senet154-max.h5. A NaN feature
                             or a video absent from the pickle -> available False with a zero
                             row (fixed) or no tokens (token experts)
    text/<text_feat>.h5      fused datasets: one token sequence per video, its captions stacked
    test_captions/<split>.h5 /caption_rows (n,) int64: store caption row of the only caption
                             evaluated for each video of /splits/<split>, in split order
                             (MSRVTT jsfusion: val_list_jsfusion)

The index is written once per dataset; every expert, text feature and test caption table a
config needs is added when missing, so the store folder is shared by all configs of a dataset
and an interrupted conversion resumes where it stopped.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np
import torch
from tqdm import tqdm

from data_loader.released import packing
from data_loader.released.datasets import RELEASES, list_path, read_video_list, split_lists
from data_loader.released.datasets import store_dir as store_dir_of
from data_loader.released.hickle_reader import load_hickle
from data_loader.released.release_plan import ExpertSource, StorePlan, plan_store, test_captions_path
from data_loader.store.feature_store import (
    INDEX_NAME,
    STORE_ID,
    atomic_h5,
    check_build,
    current_store_id,
    expert_path,
    file_store_id,
    new_store_id,
    read_index_attrs,
    text_path,
    write_expert,
    write_index,
    write_text,
)
from utils.atomic import refuse_symlink
from utils.errors import StoreError
from utils.libc import release_freed_memory
from utils.original.unpickle import RefusedGlobal, load_restricted

PRODUCER = "released"
log = logging.getLogger(__name__)


def load_pickle(path: Path) -> object:
    """Read a released pickle with the restricted unpickler (StoreError when malformed or when it
    references anything but containers and numpy values)."""
    try:
        return load_restricted(path)
    except RefusedGlobal as exc:
        raise StoreError(f"{path}: refused to unpickle global '{exc.name}' "
                         "(feature pickles may hold only containers and numpy arrays)") from None
    except Exception as exc:
        raise StoreError(f"{path}: not a readable feature pickle ({type(exc).__name__}: {exc})") from None


def missing_release(path: Path, dataset_name: str) -> StoreError:
    """The error of a missing released file, with the command fetching its release."""
    challenge = [part for part in Path(path).parts if part.startswith("challenge-release-")]
    release = f" --release {challenge[-1]}" if challenge else ""
    return StoreError(f"{path}: released file not found; fetch the features with "
                      f"python3 misc/sync_experts.py --dataset {RELEASES[dataset_name].folder}{release}")


def load_released(root: Path, relative: str, dataset_name: str) -> object:
    """The released file ``root/relative``; StoreError naming it when absent or unsupported."""
    path = Path(root) / relative
    if not path.is_file():
        raise missing_release(path, dataset_name)
    if path.suffix in {".hkl", ".hickle"}:
        return load_hickle(path)
    return load_pickle(path)


def _table(obj: object, path: Path) -> dict:
    if not isinstance(obj, dict):
        raise StoreError(f"{path}: expected a dict keyed by video id, got {type(obj).__name__}")
    return obj


# ----------------------------------------------------------------------------- readers

def read_split_lists(dataset_name: str, root: Path, official: bool = True,
                     extra_roots: Sequence[Path] = ()) -> dict[str, list[str]]:
    """Split (list stem) -> video ids, for every list the dataset's splits use (the shipped official
    lists first unless ``official`` is False; a list not under ``root`` is looked for under each of
    ``extra_roots`` in turn)."""
    release = RELEASES[dataset_name]
    lists = {}
    for split in split_lists(dataset_name):
        path = list_path(dataset_name, split, root, official)
        path = next((p for p in (path, *(Path(r) / path.name for r in extra_roots)) if p.is_file()), path)
        if not path.is_file() and split in release.optional_lists:
            continue
        if not path.is_file():
            raise missing_release(path, dataset_name)
        lists[split] = read_video_list(path, dataset_name)
    return lists


def _caption_text(caption: object) -> str:
    return caption if isinstance(caption, str) else " ".join(str(word) for word in caption)


def _merged_table(dataset_name: str, roots: Sequence[Path], relative: str) -> dict:
    """The released table ``relative`` of every root merged in order (a later root's videos are
    added, and win where both hold one)."""
    merged: dict = {}
    for root in roots:
        merged.update(_table(load_released(root, relative, dataset_name), Path(root) / relative))
    return merged


def read_raw_caption_table(dataset_name: str, root: Path, extra_roots: Sequence[Path] = ()) -> dict:
    """The release's raw captions: video id -> list of captions (each a list of words or a string),
    those of ``extra_roots`` added."""
    return _merged_table(dataset_name, [root, *extra_roots], RELEASES[dataset_name].raw_captions)


def caption_texts(dataset_name: str, table: dict, video_ids: list[str]) -> list[list[str]]:
    """Caption texts per video of ``video_ids`` (all in ``table``; one joined caption per video for
    fused datasets)."""
    texts = [[_caption_text(c) for c in table[v]] for v in video_ids]
    return [[" ".join(t)] for t in texts] if RELEASES[dataset_name].fused_captions else texts


def read_text_feature(dataset_name: str, root: Path, text_feat: str,
                      extra_roots: Sequence[Path] = ()) -> tuple[dict, str]:
    """Text feature ``text_feat`` as one dict video id -> caption embeddings (those of
    ``extra_roots`` added), and its file label."""
    release = RELEASES[dataset_name]
    if release.text_feats is not None and text_feat not in release.text_feats:
        raise StoreError(f"experts.text_feat: {dataset_name} has no text feature '{text_feat}'; "
                         f"expected one of: {', '.join(release.text_feats)}")
    files = release.text_files(text_feat)
    roots = [root, *extra_roots]
    merged: dict = {}
    for relative in files.paths:
        merged.update(_merged_table(dataset_name, roots, relative))
    label = ", ".join(str(Path(r) / p) for r in roots for p in files.paths)
    if files.youtube_keyed:
        mapping_path = Path(root) / release.youtube_mapping
        mapping = _table(load_released(root, release.youtube_mapping, dataset_name), mapping_path)
        to_video = {youtube: video for video, youtube in mapping.items()}
        packing.require_videos(to_video, list(merged), str(mapping_path), "video id")
        merged = {to_video[key]: value for key, value in merged.items()}
    return merged, label


def read_expert(dataset_name: str, root: Path, source: ExpertSource) -> list[dict]:
    """One table (video id -> feature) per released file of ``source``."""
    return [_table(load_released(root, f, dataset_name), Path(root) / f) for f in source.files]


# ----------------------------------------------------------------------------- conversion

@dataclass
class IndexLayout:
    """What conversions need from a written index: ids [N], caption offsets [N+1], splits, and
    the store_id of its build, which every file converted for it carries."""

    video_ids: list[str]
    caption_offsets: np.ndarray
    splits: dict[str, np.ndarray]
    fused_captions: bool
    store_id: str


def read_layout(store_dir: Path) -> IndexLayout:
    """The layout of the store's index."""
    with h5py.File(Path(store_dir) / INDEX_NAME, "r") as f:
        return IndexLayout(f["videos/ids"].asstr()[()].tolist(), f["captions/offsets"][()],
                           {name: f[f"splits/{name}"][()] for name in f.get("splits", {})},
                           bool(f.attrs.get("fused_captions", False)), str(f.attrs[STORE_ID]))


def _splits_with_captions(dataset_name: str, root: Path, lists: dict[str, list[str]],
                          table: dict) -> dict[str, list[str]]:
    """The split lists whose videos all have raw captions in ``table`` (a release may hold only
    the split to be evaluated); StoreError naming the captions file when no split is complete."""
    release = RELEASES[dataset_name]
    complete = {name: ids for name, ids in lists.items() if all(v in table for v in ids)}
    if not complete:
        every = list(dict.fromkeys(v for ids in lists.values() for v in ids))
        packing.require_videos(table, every, str(Path(root) / release.raw_captions), "raw captions")
    for name in sorted(set(lists) - set(complete)):
        log.info(f"{dataset_name}: split {name} left out of the store: the release lacks some of its videos")
    return complete


def write_released_index(dataset_name: str, root: Path, store_dir: Path, root_feat_folder: str,
                         official_lists: bool = True, extra_roots: Sequence[Path] = ()) -> Path:
    """index.h5 from the split lists and raw captions (the lists under ``root`` alone when
    ``official_lists`` is False; lists and captions of ``extra_roots`` added)."""
    table = read_raw_caption_table(dataset_name, root, extra_roots)
    lists = _splits_with_captions(dataset_name, root,
                                  read_split_lists(dataset_name, root, official_lists, extra_roots), table)
    video_ids = list(dict.fromkeys(v for ids in lists.values() for v in ids))
    row = {v: i for i, v in enumerate(video_ids)}
    splits = {name: np.array([row[v] for v in ids], dtype=np.int64) for name, ids in lists.items()}
    return write_index(store_dir, dataset=dataset_name, video_ids=video_ids, splits=splits,
                       captions=caption_texts(dataset_name, table, video_ids), store_id=new_store_id(),
                       attrs={"producer": PRODUCER, "root_feat_folder": root_feat_folder,
                              "fused_captions": RELEASES[dataset_name].fused_captions})


def write_test_captions(dataset_name: str, root: Path, store_dir: Path, split: str, layout: IndexLayout) -> Path:
    """test_captions/<split>.h5 from the dataset's released caption index of ``split``."""
    relative = RELEASES[dataset_name].test_captions[split]
    table = _table(load_released(root, relative, dataset_name), Path(root) / relative)
    rows = packing.select_captions(table, layout.video_ids, layout.splits[split], layout.caption_offsets,
                                   str(Path(root) / relative))
    path = test_captions_path(store_dir, split)
    with atomic_h5(path) as f:
        f.attrs.update({"source": relative, STORE_ID: layout.store_id})
        f.create_dataset("caption_rows", data=rows)
    return path


def _check_test_captions(path: Path, rows: np.ndarray, layout: IndexLayout, split: str) -> None:
    """StoreError unless ``rows`` holds one caption of each video of ``split``, in split order."""
    videos = layout.splits[split]
    if rows.shape != videos.shape:
        raise StoreError(f"{path}: caption_rows has shape {rows.shape}, expected {videos.shape}, one per video "
                         f"of split {split}")
    first, end = layout.caption_offsets[videos], layout.caption_offsets[videos + 1]
    bad = np.flatnonzero((rows < first) | (rows >= end))
    if bad.size:
        j = int(bad[0])
        raise StoreError(f"{path}: caption_rows[{j}] = {rows[j]} is not a caption of video {videos[j]} "
                         f"(expected {first[j]} <= row < {end[j]})")


def read_test_captions(store_dir: Path, split: str) -> torch.Tensor | None:
    """Caption rows [n] evaluated for the videos of ``split``, or None when it uses all captions.

    StoreError when the table belongs to another build of the store or names a caption of
    another video."""
    path = test_captions_path(store_dir, split)
    if not path.is_file():
        return None
    layout = read_layout(store_dir)
    with h5py.File(path, "r") as f:
        check_build(f, layout.store_id, store_dir)
        rows = f["caption_rows"][()]
    _check_test_captions(path, rows, layout, split)
    return torch.from_numpy(rows)


def _expert_job(plan: StorePlan, source: ExpertSource, root: Path, store_dir: Path,
                layout: Callable[[], IndexLayout]) -> Callable[[], Path]:
    def write() -> Path:
        label = ", ".join(str(root / f) for f in source.files)
        tables = read_expert(plan.dataset, root, source)
        kind = source.kind or packing.infer_kind(tables[0])
        arrays = packing.pack_expert(tables, layout().video_ids, kind, label)
        return write_expert(store_dir, source.store_name, arrays, layout().store_id)
    return write


def _text_job(plan: StorePlan, roots: list[Path], store_dir: Path,
              layout: Callable[[], IndexLayout]) -> Callable[[], Path]:
    def write() -> Path:
        table, label = read_text_feature(plan.dataset, roots[0], plan.text_feat, roots[1:])
        index = layout()
        counts = np.diff(index.caption_offsets)
        tokens = packing.pack_text(table, index.video_ids, counts, index.fused_captions, label)
        return write_text(store_dir, plan.text_feat, tokens, index.store_id)
    return write


def _jobs(plan: StorePlan, roots: list[Path], store_dir: Path,
          root_feat_folder: str) -> dict[Path, Callable[[], object]]:
    """Store file -> the call writing it, for every file ``plan`` needs (the index first); experts
    are read from ``roots[0]``, lists, captions and text from all ``roots``."""
    root = roots[0]
    layout = functools.cache(lambda: read_layout(store_dir))
    jobs: dict[Path, Callable[[], object]] = {
        store_dir / INDEX_NAME: functools.partial(write_released_index, plan.dataset, root, store_dir,
                                                  root_feat_folder, extra_roots=roots[1:])}
    for source in plan.experts.values():
        jobs[expert_path(store_dir, source.store_name)] = _expert_job(plan, source, root, store_dir, layout)
    if plan.text_feat is not None:
        jobs[text_path(store_dir, plan.text_feat)] = _text_job(plan, roots, store_dir, layout)
    if plan.test_split is not None:
        jobs[test_captions_path(store_dir, plan.test_split)] = lambda: write_test_captions(
            plan.dataset, root, store_dir, plan.test_split, layout())
    return jobs


def check_release(dataset_name: str, data_dir: Path, root_feat_folder: str) -> None:
    """StoreError unless the dataset's store (``<data_dir>/store/``, see ``datasets.store_dir``)
    belongs to ``dataset_name`` or, with no store yet, the release folder
    ``<data_dir>/<root_feat_folder>/`` exists."""
    index, root = store_dir_of(dataset_name, data_dir) / INDEX_NAME, Path(data_dir) / root_feat_folder
    if index.is_file():
        found = read_index_attrs(index.parent).get("dataset")
        if found != dataset_name:
            raise StoreError(f"{index}: the store holds dataset {found!r}, not {dataset_name}")
    elif not root.is_dir():
        raise StoreError(f"{index}: feature store for {dataset_name} not found and the released features "
                         f"folder {root} does not exist; fetch it with "
                         f"python3 misc/sync_experts.py --dataset {RELEASES[dataset_name].folder}")


def _pending(jobs: dict[Path, Callable[[], object]], store_dir: Path) -> dict[Path, Callable[[], object]]:
    """The jobs whose file is missing or belongs to another build of the index; all of them when the
    index is missing or of an older store version (it is then rebuilt, and everything with it)."""
    store_id = current_store_id(store_dir)
    if store_id is None:
        return jobs
    return {path: job for path, job in jobs.items()
            if path != store_dir / INDEX_NAME and file_store_id(path) != store_id}


def needs_conversion(plan: StorePlan, data_dir: Path, root_feat_folder: str,
                     extra_folders: Sequence[str] = ()) -> bool:
    """True when the store lacks a file ``plan`` needs, or holds one of another build."""
    store_dir = store_dir_of(plan.dataset, data_dir)
    roots = [Path(data_dir) / folder for folder in (root_feat_folder, *extra_folders)]
    return bool(_pending(_jobs(plan, roots, store_dir, root_feat_folder), store_dir))


def convert_plan(plan: StorePlan, data_dir: Path, root_feat_folder: str, progress: bool = True,
                 extra_folders: Sequence[str] = ()) -> Path:
    """Write every store file ``plan`` needs that the store (``datasets.store_dir``) lacks or holds
    for another build of its index, one file at a time (one expert or text feature in memory at
    once, freed and handed back to the kernel before the next); returns the store. Lists,
    captions and text features not in ``<data_dir>/<root_feat_folder>/`` are read from
    ``<data_dir>/<extra_folders>/`` (the challenge's second release). A store folder that is a
    symbolic link is refused
    (SymlinkError): nothing is written through a link."""
    data_dir = Path(data_dir)
    store_dir = store_dir_of(plan.dataset, data_dir)
    roots = [data_dir / folder for folder in (root_feat_folder, *extra_folders)]
    refuse_symlink(store_dir)
    check_release(plan.dataset, data_dir, root_feat_folder)
    pending = _pending(_jobs(plan, roots, store_dir, root_feat_folder), store_dir)
    for path in tqdm(pending, desc=f"converting {plan.dataset}", unit="file", disable=not (progress and pending)):
        pending[path]()
        release_freed_memory()  # a file's tables are freed; the heap need not keep them for training
    return store_dir


def convert_released(dataset_name: str, data_dir: str | Path, root_feat_folder: str, experts: list[str],
                     feat_aggregation: dict, text_feat: str | None, progress: bool = True, *,
                     split_name: str | None = None) -> Path:
    """Convert what a config needs from the release under ``<data_dir>/<root_feat_folder>/``
    into ``<data_dir>/store/`` (files already there are kept); returns the store folder.

    ``split_name`` selects split-specific expert files (MSRVTT "miech") and the test caption
    table of its evaluation split (MSRVTT "jsfusion").
    """
    plan = plan_store(dataset_name, experts, feat_aggregation, text_feat, split_name)
    return convert_plan(plan, Path(data_dir), root_feat_folder, progress)
