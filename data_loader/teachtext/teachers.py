"""TeachText teachers: a trained model's embeddings of every video and caption, kept with the dataset.

A teacher is named by a config as ``distil_params.base_path`` + a file of ``distil_params.teachers``
(e.g. ``teachers/train-full-ce-refined-text-w2v.pkl``); it is stored under that name, suffix
dropped, next to the other store files (N videos, C captions in index order, D an embedding width)::

    <name>.h5           attrs: format = "teacher"; experts = the teacher's experts, in order;
                        store_id = the index build it was made for (as every store file); source =
                        the pickle it was converted from ("" when exported by misc/export_teacher.py)
        /covered            (N,)   bool     videos the teacher has embeddings for
        /video/<expert>     (N, D) float32  each video's embedding for the expert (zero rows where not covered)
        /text/<expert>      (C, D) float32  each caption's text embedding for the expert (zero where not covered)

An original teacher pickle (video id -> {"vid_embds": {expert: [D]}, "text_embds": {expert:
[captions, D]}}) at ``<feature root>/<base_path><file>`` is read with the restricted unpickler and
converted on first use. For training, teachers are loaded once into tensors and gathered by index.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import h5py
import numpy as np
import torch

from data_loader.released.convert import load_pickle, read_layout
from data_loader.store.feature_store import INDEX_NAME, STORE_ID, atomic_h5, current_store_id, file_store_id
from utils.errors import StoreError

FORMAT = "teacher"


@dataclass
class TeacherArrays:
    """A teacher in store order: ``covered`` [N], ``video`` expert -> [N, D], ``text`` expert -> [C, D]."""

    covered: np.ndarray
    video: dict[str, np.ndarray]
    text: dict[str, np.ndarray]

    @property
    def experts(self) -> list[str]:
        return list(self.video)


def teacher_name(base_path: str, file: str) -> str:
    """The store name of teacher ``file`` under ``base_path`` (its suffix dropped), always inside
    the store: a leading ``/`` and ``..`` parts are dropped (``/data/t/a.pkl`` -> ``data/t/a``)."""
    path = PurePosixPath(f"{base_path}{file}").with_suffix("")
    return str(PurePosixPath(*[part for part in path.parts if part not in ("/", "..", ".")]))


def teacher_path(store_dir: Path, name: str) -> Path:
    return Path(store_dir) / f"{name}.h5"


def check_teacher(teacher: TeacherArrays, num_videos: int, num_captions: int, label: str) -> None:
    """StoreError naming ``label`` unless ``teacher`` fits a store of ``num_videos`` videos and
    ``num_captions`` captions: ``covered`` [N], each expert's ``video`` [N, D] and ``text``
    [C, D] of one width D, every value finite."""
    covered = np.asarray(teacher.covered)
    if covered.shape != (num_videos,):
        raise StoreError(f"{label}: covered has shape {list(covered.shape)}, the store has {num_videos} videos")
    if not teacher.experts:
        raise StoreError(f"{label}: names no expert")
    for expert in teacher.experts:
        video, text = teacher.video[expert], teacher.text[expert]
        if video.ndim != 2 or len(video) != num_videos:
            raise StoreError(f"{label}: video/{expert} has shape {list(video.shape)}, expected "
                             f"[{num_videos}, D] (one row per video of the store)")
        if text.ndim != 2 or len(text) != num_captions or text.shape[1] != video.shape[1]:
            raise StoreError(f"{label}: text/{expert} has shape {list(text.shape)}, expected "
                             f"[{num_captions}, {video.shape[1]}] (one row per caption, the videos' width)")
        for kind, array in (("video", video), ("text", text)):
            finite = np.isfinite(array)
            if not finite.all():
                row = int(np.argwhere(~finite)[0][0])
                raise StoreError(f"{label}: {kind}/{expert} holds NaN or infinity ({int((~finite).sum())} values, "
                                 f"first in row {row}); a teacher must be a model with finite weights")


def write_teacher(store_dir: Path, name: str, teacher: TeacherArrays, source: str = "", stamp: str = "") -> Path:
    """Write teacher ``name`` into the store atomically, once :func:`check_teacher` passes.
    ``source``: the pickle it was converted from, ``stamp`` that file's :func:`file_stamp`."""
    path = teacher_path(store_dir, name)
    layout = read_layout(store_dir)
    check_teacher(teacher, len(layout.video_ids), int(layout.caption_offsets[-1]), f"teacher {name}")
    with atomic_h5(path) as f:
        f.attrs.update({"format": FORMAT, "experts": teacher.experts, STORE_ID: current_store_id(store_dir),
                        "source": source, "source_stamp": stamp})
        f.create_dataset("covered", data=np.asarray(teacher.covered, dtype=bool))
        for expert in teacher.experts:
            f.create_dataset(f"video/{expert}", data=np.asarray(teacher.video[expert], dtype=np.float32))
            f.create_dataset(f"text/{expert}", data=np.asarray(teacher.text[expert], dtype=np.float32))
    return path


def read_teacher(path: Path) -> TeacherArrays:
    """A stored teacher as arrays; a StoreError names a dataset it lacks."""
    with h5py.File(path, "r") as f:
        experts = [str(e) for e in np.atleast_1d(f.attrs.get("experts", []))]
        for key in ["covered", *(f"{kind}/{e}" for e in experts for kind in ("video", "text"))]:
            if not isinstance(f.get(key), h5py.Dataset):
                raise StoreError(f"{path}: has no dataset '{key}' (attribute experts = {experts})")
        return TeacherArrays(f["covered"][()], {e: f[f"video/{e}"][()] for e in experts},
                             {e: f[f"text/{e}"][()] for e in experts})


def _matrix(value: object, rows: int | None, label: str) -> np.ndarray:
    """A float array of shape [D] (rows None) or [rows, D]; StoreError otherwise."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise StoreError(f"{label}: expected a numeric array, got {type(value).__name__}")
    shape_ok = value.ndim == 1 if rows is None else (value.ndim == 2 and len(value) == rows)
    if not shape_ok:
        expected = "[D]" if rows is None else f"[{rows}, D]"
        raise StoreError(f"{label}: expected shape {expected}, got {list(value.shape)}")
    return value.astype(np.float32)


def teacher_from_table(table: object, video_ids: list[str], caption_offsets: np.ndarray, label: str) -> TeacherArrays:
    """Pack an original teacher table (video id -> {"vid_embds", "text_embds"}) into store order.

    The expert set is the first entry's, as in the original; every entry must give the same
    experts and widths, and one text embedding per caption of its video.
    """
    if not isinstance(table, dict) or not table:
        raise StoreError(f"{label}: expected a non-empty dict of video id -> teacher embeddings")
    first = next(iter(table.values()))
    if not isinstance(first, dict) or not isinstance(first.get("vid_embds"), dict) or not first["vid_embds"]:
        raise StoreError(f"{label}: expected entries "
                         "{'vid_embds': {expert: [D]}, 'text_embds': {expert: [captions, D]}}")
    experts = [str(e) for e in first["vid_embds"]]
    num_captions = int(caption_offsets[-1])
    covered = np.zeros(len(video_ids), dtype=bool)
    video: dict[str, np.ndarray] = {}
    text: dict[str, np.ndarray] = {}
    for row, video_id in enumerate(video_ids):
        entry = table.get(video_id)
        if entry is None:
            continue
        where = f"{label}: video {video_id}"
        if not isinstance(entry, dict) or set(entry) != {"vid_embds", "text_embds"}:
            raise StoreError(f"{where}: expected the keys 'vid_embds' and 'text_embds'")
        for key in ("vid_embds", "text_embds"):
            if not isinstance(entry[key], dict) or sorted(map(str, entry[key])) != sorted(experts):
                raise StoreError(f"{where}: {key} must give the experts {experts}")
        lo, hi = int(caption_offsets[row]), int(caption_offsets[row + 1])
        for expert in experts:
            vid = _matrix(entry["vid_embds"][expert], None, f"{where}: vid_embds[{expert}]")
            txt = _matrix(entry["text_embds"][expert], hi - lo, f"{where}: text_embds[{expert}] (one row per caption)")
            if expert not in video:
                video[expert] = np.zeros((len(video_ids), len(vid)), np.float32)
                text[expert] = np.zeros((num_captions, len(vid)), np.float32)
            if len(vid) != video[expert].shape[1] or txt.shape[1] != video[expert].shape[1]:
                raise StoreError(f"{where}: {expert} embeddings of width {len(vid)}/{txt.shape[1]}, "
                                 f"expected {video[expert].shape[1]} as for the other videos")
            video[expert][row], text[expert][lo:hi] = vid, txt
        covered[row] = True
    if not covered.any():
        raise StoreError(f"{label}: no video of the store has teacher embeddings")
    return TeacherArrays(covered, video, text)


def file_stamp(path: Path) -> str:
    """``<size>:<mtime ns>:<sha1>`` of a file: changes when the file is edited or replaced."""
    stat = Path(path).stat()
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{stat.st_size}:{stat.st_mtime_ns}:{digest.hexdigest()}"


def _stored_stamp(path: Path) -> str | None:
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("source_stamp", ""))
    except OSError:
        return None


def _same_file(stamp: str | None, path: Path) -> bool:
    """Whether ``path`` is the file ``stamp`` (:func:`file_stamp`) was taken of: the same size
    and time, or (touched or copied) the same content; only the latter reads the file."""
    if not stamp or stamp.count(":") != 2:
        return False
    size, mtime, digest = stamp.split(":")
    stat = Path(path).stat()
    if (str(stat.st_size), str(stat.st_mtime_ns)) == (size, mtime):
        return True
    return str(stat.st_size) == size and file_stamp(path).rsplit(":", 1)[1] == digest


def convert_teacher(pickle_path: Path, store_dir: Path, name: str) -> Path:
    """Convert an original teacher pickle into the store's teacher ``name``."""
    layout = read_layout(store_dir)
    teacher = teacher_from_table(load_pickle(pickle_path), layout.video_ids, layout.caption_offsets, str(pickle_path))
    return write_teacher(store_dir, name, teacher, source=str(pickle_path), stamp=file_stamp(pickle_path))


def ensure_teacher(store_dir: Path, feature_root: Path, base_path: str, file: str) -> Path:
    """The store file of a teacher; an original pickle ``<feature_root>/<base_path><file>`` is
    converted when the store lacks it, holds it for another build of the index, or holds a
    conversion of an earlier version of the pickle (another size, time or content)."""
    name = teacher_name(base_path, file)
    path = teacher_path(store_dir, name)
    source = Path(feature_root) / f"{base_path}{file}"
    if path.is_file() and not source.is_file():
        return path  # an exported teacher (a stale one is reported by load_teacher)
    if teacher_is_current(store_dir, name) and _same_file(_stored_stamp(path), source):
        return path
    if not source.is_file():
        raise StoreError(f"{path}: teacher '{name}' not in the store and {source} does not exist; export one with "
                         f"python3 misc/export_teacher.py --resume <trained_model.pth> --name {name}")
    return convert_teacher(source, store_dir, name)


def teacher_is_current(store_dir: Path, name: str) -> bool:
    """True when the store holds teacher ``name`` made for its current index build."""
    made_for = file_store_id(teacher_path(store_dir, name))
    return made_for is not None and made_for == current_store_id(store_dir)


@dataclass
class Teacher:
    """A teacher in memory: ``video`` expert -> [N, D], ``text`` expert -> [C, D]."""

    video: dict[str, torch.Tensor]
    text: dict[str, torch.Tensor]


def load_teacher(store_dir: Path, name: str, dims: dict[str, int], train_rows: torch.Tensor,
                 video_ids: list[str]) -> Teacher:
    """Load teacher ``name`` for training on ``train_rows`` [n].

    ``dims``: every expert the config knows -> the embedding width a teacher must have for it. A
    teacher made for another index, naming another expert, of another width, or missing a
    training video is a StoreError naming its file.
    """
    path = teacher_path(store_dir, name)
    if not path.is_file():
        raise StoreError(f"{path}: teacher '{name}' not in the store")
    try:
        with h5py.File(path, "r") as f:
            fmt = str(f.attrs.get("format", ""))
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 file ({exc})") from None
    if fmt != FORMAT:
        raise StoreError(f"{path}: not a teacher file (attribute format != '{FORMAT}')")
    if not teacher_is_current(store_dir, name):
        raise StoreError(f"{path}: made for another version of {store_dir / INDEX_NAME}; export the teacher again")
    arrays = read_teacher(path)
    layout = read_layout(store_dir)
    check_teacher(arrays, len(layout.video_ids), int(layout.caption_offsets[-1]), str(path))
    for expert in arrays.experts:
        if expert not in dims:
            raise StoreError(f"{path}: names expert '{expert}', which the config does not know "
                             "(data_loader.args.feat_aggregation has no entry for it)")
        width = arrays.video[expert].shape[1]
        if width != dims[expert]:
            raise StoreError(f"{path}: expert '{expert}' has embeddings of width {width}, expected {dims[expert]}")
    missing = train_rows[~torch.from_numpy(arrays.covered.astype(bool))[train_rows]]
    if len(missing):
        raise StoreError(f"{path}: no embeddings for training video {video_ids[int(missing[0])]} "
                         f"({len(missing)} training videos missing)")
    return Teacher({e: torch.from_numpy(v) for e, v in arrays.video.items()},
                   {e: torch.from_numpy(t) for e, t in arrays.text.items()})


TeacherBatch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]


def gather_teachers(teachers: list[Teacher], video_rows: torch.Tensor,
                    caption_rows: torch.Tensor) -> list[TeacherBatch]:
    """For each teacher, (text expert -> [B, D], video expert -> [B, D]) of the captions
    ``caption_rows`` [B] and videos ``video_rows`` [B] (store rows, gathered on the CPU)."""
    video_rows, caption_rows = video_rows.cpu(), caption_rows.cpu()
    return [({e: t[caption_rows] for e, t in teacher.text.items()},
             {e: v[video_rows] for e, v in teacher.video.items()}) for teacher in teachers]
