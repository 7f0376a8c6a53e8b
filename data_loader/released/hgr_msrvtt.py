"""MSR-VTT in HGR's layout (RANP's MSR-VTT files), converted into the feature store.

Reads, under a root folder (the ``root_dir`` of RANP's config scripts; the generated
``data_loader/generated/hgr_layout.py`` writes the same layout): per split ``trn``/``val``/``tst``
the frame features ``ordered_feature/msrvttSA/<features>.pth/<split>_ft.hdf5`` (one dataset
per video, key = name with ``/`` as ``_``, (frames, d) or (1, frames, d)) and the names
``public_split_msrvtt/<split>_names.npy``; and in ``annotation/msr-vttRET/``
``ref_captions.json``, ``sent2rolegraph.augment.json``, ``word2int_msr-vtt.json``,
``int2word_msr-vtt.npy``, ``msrvtt_train.json`` (training classes) and the relevance
matrices ``sorted_MSRVTT-Full_rel_mat_wordsets0.25{,_val}.hdf5``.

Writes one store build: videos in trn, val, tst order (splits ``train``, ``val``, ``test``),
every video's reference captions, the token expert ``<features>`` (all frames; HGR's loader
samples 20 with ``frame_sampling: "select"``), the text feature ``hgr_words`` (the word ids
as HGR tokenises them, over a zero vocabulary of ``num_words`` x 300: HGR learns its own
embeddings), the HGR inputs ``hgr/<ROLE_GRAPHS>.h5``, ``classes.h5`` (training captions'
classes from ``msrvtt_train.json``; none for val/test captions) and ``relevance/{val,test}.h5``.
The relevance columns are taken to follow the store's captions, video by video.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from data_loader.hgr.graph_store import encode_captions, write_graph_store
from data_loader.hgr.import_graphs import (
    ROLE_GRAPHS,
    TEXT_FEATURE,
    read_json,
    read_names,
    read_vocabulary,
    word_feature,
)
from data_loader.ranp.classes import CaptionClasses, captions_sha1, import_relevance, write_classes
from data_loader.ranp.relevance import ClassLists
from data_loader.store.feature_store import STORE_DIR, ExpertArrays, read_index_attrs, write_store
from utils.errors import StoreError

LAYOUT_SPLITS = {"trn": "train", "val": "val", "tst": "test"}
ANNOTATION = "annotation/msr-vttRET"
RELEVANCE = {"test": "sorted_MSRVTT-Full_rel_mat_wordsets0.25.hdf5",
             "val": "sorted_MSRVTT-Full_rel_mat_wordsets0.25_val.hdf5"}
SOURCE_ATTR = "hgr_layout"


def _frames(f: h5py.File, name: str, path: Path) -> np.ndarray:
    key = name.replace("/", "_")
    if key not in f:
        raise StoreError(f"{path}: no features for video '{name}'")
    frames = np.asarray(f[key][...], dtype=np.float32)
    frames = frames[0] if frames.ndim == 3 and frames.shape[0] == 1 else frames
    if frames.ndim != 2 or not len(frames):
        raise StoreError(f"{path}: features of '{name}' have shape {frames.shape}, expected (frames, d)")
    return frames


def _training_classes(annotation: Path, video_ids: list[str], captions: list[list[str]], train: set[str]
                      ) -> CaptionClasses:
    database = read_json(annotation / "msrvtt_train.json")
    database = database.get("database") if isinstance(database, dict) else None
    if not isinstance(database, dict):
        raise StoreError(f"{annotation / 'msrvtt_train.json'}: expected {{\"database\": {{...}}}}")
    verbs, nouns = [], []
    for vid, caps in zip(video_ids, captions):
        for k in range(len(caps)):
            entry = database.get(f"{vid}_{k}") if vid in train else None
            if vid in train and entry is None:
                raise StoreError(f"{annotation / 'msrvtt_train.json'}: no entry '{vid}_{k}'")
            note = entry["annotations"][0] if entry else {}
            verbs.append([int(v) for v in np.atleast_1d(note.get("verb_class", []))])
            nouns.append([int(n) for n in note.get("noun_classes", [])])
    return CaptionClasses(ClassLists.from_lists(verbs), ClassLists.from_lists(nouns))


def convert_hgr_msrvtt(root: Path, store_dir: Path, features: str = "resnet152", max_words: int = 30) -> Path:
    """Convert the HGR layout under ``root`` into the store ``store_dir`` (one new build)."""
    root, store_dir = Path(root), Path(store_dir)
    annotation = root / ANNOTATION
    ref_captions = read_json(annotation / "ref_captions.json")
    graphs = read_json(annotation / "sent2rolegraph.augment.json")
    word2int, num_words = read_vocabulary(annotation / "word2int_msr-vtt.json", annotation / "int2word_msr-vtt.npy")
    video_ids, splits, captions, frames = [], {}, [], []
    for layout_split, split in LAYOUT_SPLITS.items():
        names = read_names(root / f"public_split_msrvtt/{layout_split}_names.npy")
        path = root / f"ordered_feature/msrvttSA/{features}.pth/{layout_split}_ft.hdf5"
        if not path.is_file():
            raise StoreError(f"{path}: not found (HGR layout)")
        splits[split] = np.arange(len(video_ids), len(video_ids) + len(names))
        with h5py.File(path, "r") as f:
            for name in tqdm(names, desc=f"{layout_split} features", leave=False):
                if name not in ref_captions:
                    raise StoreError(f"{annotation / 'ref_captions.json'}: no captions for video '{name}'")
                frames.append(_frames(f, name, path))
                captions.append(list(ref_captions[name]))
                video_ids.append(name)
    flat = [c for caps in captions for c in caps]
    arrays = encode_captions(flat, graphs, word2int, max_words=max_words,
                             source=str(annotation / "sent2rolegraph.augment.json"))
    text = word_feature(arrays, num_words)
    counts = np.array([len(f) for f in frames])
    expert = ExpertArrays(np.concatenate(frames), np.ones(len(frames), dtype=bool),
                          np.concatenate([[0], np.cumsum(counts)]))
    classes = _training_classes(annotation, video_ids, captions, set(np.array(video_ids)[splits["train"]]))

    def extras(building: Path, store_id: str) -> None:
        sha1 = captions_sha1(flat)
        write_graph_store(building, ROLE_GRAPHS, arrays, raw_captions=flat, num_words=num_words,
                          source=str(annotation / "sent2rolegraph.augment.json"), store_id=store_id)
        write_classes(building, classes, sha1=sha1, source=str(annotation / "msrvtt_train.json"))
        for split, name in RELEVANCE.items():
            if (annotation / name).is_file():
                import_relevance(annotation / name, building, split, sha1=sha1, dataset_own=True)

    return write_store(store_dir, dataset="MSRVTT-HGR", video_ids=video_ids, splits=splits,
                       experts={features: expert}, captions=captions, text={TEXT_FEATURE: text},
                       attrs={SOURCE_ATTR: str(root.resolve())}, extras=extras)


def is_converted(root: Path, data_dir: Path) -> bool:
    """Whether ``<data_dir>/store`` is a conversion of the HGR layout under ``root``."""
    return read_index_attrs(Path(data_dir) / STORE_DIR).get(SOURCE_ATTR) == str(Path(root).resolve())
