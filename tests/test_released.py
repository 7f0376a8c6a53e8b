"""Reading the original feature release and converting it into the feature store.

Fixtures are tiny releases written the way the original ones are: pickles of plain dicts of
numpy arrays, a float NaN for a missing expert, variable caption counts and token lengths.
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import REPO

from data_loader.batches import Batch, make_batch
from data_loader.expert_loader import ExpertDataLoader
from data_loader.prepare import prepare_store
from data_loader.released import datasets
from data_loader.released.convert import (
    convert_released,
    load_pickle,
    needs_conversion,
    read_split_lists,
    read_test_captions,
    read_text_feature,
)
from data_loader.released.release_plan import canonical_files, expert_source, plan_store, released_files
from data_loader.store.feature_store import (
    INDEX_NAME,
    STORE_ID,
    StoreError,
    file_store_id,
    load_store,
    read_index_attrs,
)
from utils.errors import ConfigError

NAN = float("nan")
TEXT_DIM = 6
MAX_TOKENS = {"text": 4, "audio": 3, "speech": 5, "audio.vggish.0": 2}
MSRVTT_LISTS = {
    "train_list_full": range(0, 6), "val_list_full": range(6, 8), "test_list_full": range(8, 10),
    "train_list_jsfusion": range(0, 8), "val_list_jsfusion": range(8, 10),
    "train_list_miech": range(0, 6), "test_list_miech": range(6, 10),
}
MSRVTT_AGG = {
    "imagenet.senet154.0": {"temporal": "avg-max", "type": "embed", "fps": 25, "pixel_dim": 256, "stride": 1,
                            "offset": 0, "aggregate": "concat", "aggregate-axis": 1},
    "face": {"temporal": "avg", "type": "embed"},
    "audio": {"temporal": "vlad", "type": "embed"},
    "speech": {"temporal": "vlad", "type": "embed"},
}
RGB_DIR = "aggregated_imagenet_25fps_256px_stride1_offset0"
MSRVTT_FILES = {
    "imagenet.senet154.0": (f"{RGB_DIR}/senet154-avg.pickle", f"{RGB_DIR}/senet154-max.pickle"),
    "face": ("aggregated_face_feats/facefeats-avg.pickle",),
    "audio": ("aggregated_audio_feats/Audio_MSRVTT_new.pickle",),
    "speech": ("aggregated_speech/speech-w2v.pickle",),
}
TEXT_FILE = "aggregated_text_feats/w2v_MSRVTT_openAIGPT.pickle"


@pytest.fixture(autouse=True)
def no_official_lists(tmp_path, monkeypatch):
    """Tiny fixtures carry their own split lists: hide the official ones."""
    monkeypatch.setattr(datasets, "LIST_ROOT", tmp_path / "no-official-lists")


def dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def captions_and_text(rng, ids: list[str], counts: list[int]) -> tuple[dict, dict]:
    raw, text = {}, {}
    for vid, count in zip(ids, counts):
        lengths = rng.integers(1, 7, count)
        raw[vid] = [[f"w{vid}{c}{k}" for k in range(n)] for c, n in enumerate(lengths)]
        text[vid] = [rng.standard_normal((n, TEXT_DIM)) for n in lengths]
    return raw, text


def tokens(rng, n: int, d: int) -> np.ndarray:
    return rng.standard_normal((n, d)).astype(np.float32)


def write_msrvtt(root: Path, seed: int = 0) -> dict:
    """A 10-video MSRVTT-like release; returns the tables written, keyed by relative path."""
    rng = np.random.default_rng(seed)
    ids = [f"video{i}" for i in range(10)]
    for name, rows in MSRVTT_LISTS.items():
        (root / f"{name}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{name}.txt").write_text("\n".join(ids[i] for i in rows) + "\n")
    raw, text = captions_and_text(rng, ids, [3, 2, 4, 1, 3, 2, 4, 3, 2, 3])
    files = {
        "raw-captions.pkl": raw, TEXT_FILE: text,
        MSRVTT_FILES["imagenet.senet154.0"][0]: {v: rng.standard_normal(4) for v in ids},
        MSRVTT_FILES["imagenet.senet154.0"][1]: {v: rng.standard_normal((1, 4)) for v in ids},
        MSRVTT_FILES["face"][0]: {v: NAN if i % 3 == 0 else rng.standard_normal(5) for i, v in enumerate(ids)},
        MSRVTT_FILES["audio"][0]: {v: NAN if i == 4 else tokens(rng, i % 5, 3)
                                   for i, v in enumerate(ids) if i != 7},
        MSRVTT_FILES["speech"][0]: {v: tokens(rng, 2 + i, 2) for i, v in enumerate(ids)},
        "jsfusion_val_caption_idx.pkl": {"video8": 1, "video9": 2},
    }
    for relative, table in files.items():
        dump(root / relative, table)
    return files


@pytest.fixture
def msrvtt(tmp_path) -> tuple[Path, dict]:
    data_dir = tmp_path / "MSRVTT"
    return data_dir, write_msrvtt(data_dir / "structured-symlinks")


def convert_msrvtt(data_dir: Path, split_name: str = "full-val", text_feat: str = "openai") -> Path:
    return convert_released("MSRVTT", data_dir, "structured-symlinks", list(MSRVTT_AGG), MSRVTT_AGG,
                            text_feat, progress=False, split_name=split_name)


def reference_batch(files: dict, experts: dict[str, tuple[str, ...]], text_file: str, videos: list[str],
                    picks: list[int], fused: bool = False) -> dict:
    """The batch built directly from the released tables (one caption ``picks[i]`` per video)."""
    out = {"experts": {}, "ind": {}}
    for name, sources in experts.items():
        tables = [files[s] for s in sources]
        values = [[t.get(v, NAN) for t in tables] for v in videos]
        present = [not any(isinstance(x, float) for x in vals) for vals in values]
        out["ind"][name] = torch.tensor(present, dtype=torch.float32)
        if name in MAX_TOKENS:
            rows = np.zeros((len(videos), MAX_TOKENS[name], tables[0][videos[present.index(True)]].shape[1]))
            for i, (vals, ok) in enumerate(zip(values, present)):
                if ok:
                    keep = vals[0][:MAX_TOKENS[name]]
                    rows[i, :len(keep)] = keep
        else:
            width = sum(np.size(t[videos[present.index(True)]]) for t in tables)
            rows = np.zeros((len(videos), width))
            for i, (vals, ok) in enumerate(zip(values, present)):
                if ok:
                    rows[i] = np.concatenate([np.ravel(x) for x in vals])
        out["experts"][name] = torch.tensor(rows, dtype=torch.float32)
    text = np.zeros((len(videos), 1, MAX_TOKENS["text"], TEXT_DIM))
    for i, (v, k) in enumerate(zip(videos, picks)):
        caption = np.vstack(files[text_file][v]) if fused else files[text_file][v][k]
        keep = caption[:MAX_TOKENS["text"]]
        text[i, 0, :len(keep)] = keep
    out["text"] = torch.tensor(text, dtype=torch.float32)
    return out


def assert_batches_equal(batch: Batch, expected: dict) -> None:
    for key in ("experts", "ind"):
        assert list(getattr(batch, key)) == list(expected[key])
        for name in expected[key]:
            torch.testing.assert_close(getattr(batch, key)[name], expected[key][name], msg=f"{key}.{name}")
    torch.testing.assert_close(batch.text, expected["text"])


def load(store_dir: Path, experts: dict[str, tuple[str, ...]], text_feat: str, dataset: str = "MSRVTT",
         aggregation: dict = MSRVTT_AGG):
    """The store with experts renamed to their config names."""
    names = {e: expert_source(dataset, e, aggregation[e]).store_name for e in experts}
    store = load_store(store_dir, list(names.values()), text_feat)
    store.experts = {e: store.experts[s] for e, s in names.items()}
    return store


# ----------------------------------------------------------------------------- paths

def test_released_paths_follow_the_original_layout():
    i3d = {"temporal": "avg", "type": "embed", "fps": 25, "pixel_dim": 256, "stride": 25, "offset": 0,
           "inner_stride": 1}
    assert canonical_files("i3d.i3d.0", i3d) == (
        "aggregated_i3d_25fps_256px_stride25_offset0_inner_stride1/i3d-avg.pickle",)
    assert canonical_files("moments_3d.moments-resnet3d50.0", {**i3d, "type": "logits", "temporal": "avg-max"}) == (
        "aggregated_moments_3d_25fps_256px_stride25_offset0_inner_stride1/moments-resnet3d50-avg-logits.pickle",
        "aggregated_moments_3d_25fps_256px_stride25_offset0_inner_stride1/moments-resnet3d50-max-logits.pickle")
    assert canonical_files("audio.vggish.0", {"temporal": "vlad"}) == ("aggregated_audio/vggish-vlad.pickle",)
    kinetics = expert_source("MSVD", "r2p1d.r2p1d-ig65m-kinetics.0", {**i3d, "stride": 32})
    assert kinetics.files == ("aggregated_r2p1d_30fps_256px_stride8_offset0_inner_stride1/"
                              "r2p1d-ig65m-kinetics-avg.pickle",)
    miech = plan_store("MSRVTT", ["audio", "speech"], MSRVTT_AGG, "openai", "miech")
    assert miech.experts["audio"].files == ("antoine/audio_features.pickle",) and miech.test_split is None
    assert miech.experts["speech"].store_name == "aggregated_speech/speech-w2v"
    assert plan_store("MSRVTT", [], MSRVTT_AGG, "openai", "jsfusion").test_split == "val_list_jsfusion"
    with pytest.raises(StoreError, match="expert 'rgb': no released features known for MSRVTT"):
        expert_source("MSRVTT", "rgb", {"temporal": "avg"})
    with pytest.raises(ConfigError, match="unknown split 'val1' for MSRVTT"):
        plan_store("MSRVTT", [], {}, "openai", "val1")


def test_split_lists_prefer_official_copies_and_strip_didemo_suffixes(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for name, entries in {"train_list": "a.mp4\nb.\n", "val_list": "c.avi\n", "test_list": "d.mov\n"}.items():
        (root / f"{name}.txt").write_text(entries)
    assert read_split_lists("DiDeMo", root) == {"train_list": ["a", "b"], "val_list": ["c"], "test_list": ["d"]}
    official = datasets.LIST_ROOT / "didemo"
    official.mkdir(parents=True)
    (official / "val_list.txt").write_text("e.mp4\n")
    assert read_split_lists("DiDeMo", root)["val_list"] == ["e"]


def test_msvd_text_features_are_mapped_from_youtube_ids(tmp_path):
    root = tmp_path / "root"
    for part, youtube in (("train", "yt0"), ("val", "yt1"), ("test", "yt2")):
        dump(root / f"aggregated_text_feats/openai-caption-{part}.pkl", {youtube: [np.ones((2, 3)) * len(part)]})
    dump(root / "dict_youtube_mapping.pkl", {"v0": "yt0", "v1": "yt1", "v2": "yt2"})
    table, _ = read_text_feature("MSVD", root, "openai")
    assert sorted(table) == ["v0", "v1", "v2"] and table["v2"][0][0, 0] == 4


# ----------------------------------------------------------------------------- conversion

def test_converted_batches_equal_batches_from_the_pickles(msrvtt):
    data_dir, files = msrvtt
    store = load(convert_msrvtt(data_dir), MSRVTT_FILES, "openai")
    assert store.splits["val_list_full"].tolist() == [6, 7]
    assert np.diff(store.caption_offsets.numpy()).tolist() == [3, 2, 4, 1, 3, 2, 4, 3, 2, 3]
    assert store.captions_of(1) == [" ".join(c) for c in files["raw-captions.pkl"]["video1"]]
    videos = [f"video{i}" for i in (0, 3, 4, 7, 9, 6)]
    picks = [2, 0, 1, 2, 0, 3]
    rows = torch.tensor([store.video_ids.index(v) for v in videos])
    caption_rows = (store.caption_offsets[rows] + torch.tensor(picks))[:, None]
    batch = make_batch(store, rows, caption_rows, MAX_TOKENS)
    assert_batches_equal(batch, reference_batch(files, MSRVTT_FILES, TEXT_FILE, videos, picks))
    assert batch.ind["audio"].tolist() == [1, 1, 0, 0, 1, 1]  # NaN (video4) and absent (video7)


def test_conversion_resumes_and_rewrites_only_missing_files(msrvtt):
    data_dir, _ = msrvtt
    store_dir = convert_msrvtt(data_dir)
    written = sorted(p for p in store_dir.rglob("*.h5"))
    assert len(written) == 1 + 4 + 1  # index, four experts (avg+max in one), text
    for path in written:
        os.utime(path, ns=(10**18, 10**18))
    face = store_dir / "experts" / "aggregated_face_feats" / "facefeats-avg.h5"
    before = {k: v[()] for k, v in h5py.File(face, "r").items()}
    face.unlink()
    convert_msrvtt(data_dir)
    assert [p for p in written if p.stat().st_mtime_ns != 10**18] == [face]
    with h5py.File(face, "r") as f:
        for key, value in before.items():
            np.testing.assert_array_equal(f[key][()], value)


@pytest.mark.parametrize("split_name", ["full-val", "jsfusion"])
def test_released_files_are_exactly_what_a_conversion_reads(msrvtt, tmp_path, split_name):
    data_dir, files = msrvtt
    needed = released_files(plan_store("MSRVTT", list(MSRVTT_AGG), MSRVTT_AGG, "openai", split_name))
    subset = tmp_path / "subset"
    for relative in needed:
        (subset / "structured-symlinks" / relative).parent.mkdir(parents=True, exist_ok=True)
        os.link(data_dir / "structured-symlinks" / relative, subset / "structured-symlinks" / relative)
    convert_released("MSRVTT", subset, "structured-symlinks", list(MSRVTT_AGG), MSRVTT_AGG, "openai",
                     progress=False, split_name=split_name)
    for relative in needed:
        (subset / "structured-symlinks" / relative).unlink()
        shutil.rmtree(subset / "store", ignore_errors=True)
        with pytest.raises(StoreError, match=relative.replace(".", r"\.")):
            convert_released("MSRVTT", subset, "structured-symlinks", list(MSRVTT_AGG), MSRVTT_AGG, "openai",
                             progress=False, split_name=split_name)
        os.link(data_dir / "structured-symlinks" / relative, subset / "structured-symlinks" / relative)


def test_files_of_another_build_of_the_index_are_converted_again(msrvtt, tmp_path):
    data_dir, _ = msrvtt
    store_dir = convert_msrvtt(data_dir)
    other = tmp_path / "other"
    shutil.copytree(data_dir / "structured-symlinks", other / "structured-symlinks")
    face = Path("experts/aggregated_face_feats/facefeats-avg.h5")
    shutil.copy(convert_msrvtt(other) / face, store_dir / face)
    plan = plan_store("MSRVTT", list(MSRVTT_AGG), MSRVTT_AGG, "openai", "full-val")
    assert needs_conversion(plan, data_dir, "structured-symlinks")
    convert_msrvtt(data_dir)
    assert file_store_id(store_dir / face) == read_index_attrs(store_dir)[STORE_ID]
    assert not needs_conversion(plan, data_dir, "structured-symlinks")
    load(store_dir, MSRVTT_FILES, "openai")


def test_a_store_of_the_previous_version_is_converted_again_whole(msrvtt):
    data_dir, _ = msrvtt
    store_dir = convert_msrvtt(data_dir)
    with h5py.File(store_dir / INDEX_NAME, "r+") as f:  # as version 1 wrote it: no store ids
        f.attrs["version"] = 1
        del f.attrs[STORE_ID]
    with pytest.raises(StoreError, match=r"index.h5: store version 1 is not supported \(expected 2\)"):
        load(store_dir, MSRVTT_FILES, "openai")
    convert_msrvtt(data_dir)
    store_id = read_index_attrs(store_dir)[STORE_ID]
    assert {file_store_id(p) for p in store_dir.rglob("*.h5") if p.name != INDEX_NAME} == {store_id}
    load(store_dir, MSRVTT_FILES, "openai")


def test_a_store_folder_that_is_a_link_is_not_written_through(msrvtt, tmp_path):
    data_dir, _ = msrvtt
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (data_dir / "store").symlink_to(elsewhere)
    with pytest.raises(ValueError, match=r"store: is a symbolic link; refusing to write through it"):
        convert_msrvtt(data_dir)
    assert list(elsewhere.iterdir()) == []


def test_a_test_caption_of_another_video_is_refused(msrvtt):
    data_dir, _ = msrvtt
    store_dir = convert_msrvtt(data_dir, split_name="jsfusion")
    with h5py.File(store_dir / "test_captions" / "val_list_jsfusion.h5", "r+") as f:
        f["caption_rows"][1] = f["caption_rows"][0]  # video9's row now names a caption of video8
    with pytest.raises(StoreError, match=r"val_list_jsfusion.h5: caption_rows\[1\] = \d+ is not a caption of "
                                         r"video 9 \(expected \d+ <= row < \d+\)"):
        read_test_captions(store_dir, "val_list_jsfusion")


def test_interrupted_conversion_leaves_no_trusted_file(msrvtt, monkeypatch, tmp_path):
    data_dir, _ = msrvtt
    calls = []

    def interrupt_second_file(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        os.rename(src, dst)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr("utils.atomic.os.replace", interrupt_second_file)
        convert_msrvtt(data_dir)
    store_dir = data_dir / "store"
    assert (store_dir / INDEX_NAME).is_file() and not Path(calls[1]).exists()
    assert not list(store_dir.rglob("*.partial-*"))
    convert_msrvtt(data_dir)
    fresh = tmp_path / "fresh"
    write_msrvtt(fresh / "structured-symlinks")
    convert_msrvtt(fresh)
    a, b = load(store_dir, MSRVTT_FILES, "openai"), load(fresh / "store", MSRVTT_FILES, "openai")
    for name in MSRVTT_FILES:
        torch.testing.assert_close(a.experts[name].features.read(), b.experts[name].features.read())
    torch.testing.assert_close(a.text_embeddings.read(), b.text_embeddings.read())


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_referencing_os_system_is_refused_without_running(msrvtt, tmp_path):
    data_dir, _ = msrvtt
    marker = tmp_path / "ran"
    evil = data_dir / "structured-symlinks" / MSRVTT_FILES["face"][0]
    dump(evil, {"video0": Payload(marker)})
    with pytest.raises(StoreError) as info:
        load_pickle(evil)
    message = str(info.value)
    assert "\n" not in message and str(evil) in message and "system" in message
    with pytest.raises(StoreError, match="refused to unpickle global"):
        convert_msrvtt(data_dir)
    assert not marker.exists()
    assert not (data_dir / "store" / "experts" / "aggregated_face_feats").exists()


def test_missing_released_file_is_named(msrvtt, tmp_path):
    data_dir, _ = msrvtt
    missing = data_dir / "structured-symlinks" / MSRVTT_FILES["speech"][0]
    missing.unlink()
    with pytest.raises(StoreError, match=f"{missing}: released file not found; fetch the features with "
                                         "python3 misc/sync_experts.py --dataset MSRVTT"):
        convert_msrvtt(data_dir)
    with pytest.raises(StoreError, match="feature store for MSRVTT not found and the released features folder"):
        convert_msrvtt(tmp_path / "nothing")


# ----------------------------------------------------------------------------- end to end

def make_loader(data_dir: Path, split_name: str, num_test_captions: int = 4,
                restrict_train_captions: int = 0) -> ExpertDataLoader:
    prepare_store("MSRVTT", data_dir, root_feat_folder="structured-symlinks", split_name=split_name,
                  experts=sorted(MSRVTT_AGG), feat_aggregation=MSRVTT_AGG, text_feat="openai")
    return ExpertDataLoader("MSRVTT", str(data_dir), split_name, batch_size=4, max_tokens=MAX_TOKENS,
                            feat_aggregation=MSRVTT_AGG, num_test_captions=num_test_captions,
                            restrict_train_captions=restrict_train_captions, root_feat_folder="structured-symlinks",
                            experts=sorted(MSRVTT_AGG), text_feat="openai")


def test_loader_converts_on_first_use_and_serves_eval_splits(msrvtt):
    data_dir, files = msrvtt
    for split_name, videos in (("full-val", ["video6", "video7"]), ("full-test", ["video8", "video9"])):
        loader = make_loader(data_dir, split_name)
        eval_set = loader.eval_set()
        assert [loader.store.video_ids[r] for r in eval_set.video_rows] == videos
        counts = [len(files["raw-captions.pkl"][v]) for v in videos]
        assert eval_set.query_masks.sum(1).tolist() == [min(c, 4) for c in counts]
        batch = make_batch(loader.store, eval_set.video_rows, eval_set.caption_rows[:, :1], loader.max_tokens)
        assert_batches_equal(batch, reference_batch(files, {e: MSRVTT_FILES[e] for e in sorted(MSRVTT_AGG)},
                                                    TEXT_FILE, videos, [0, 0]))
        train = next(loader.train_batches(torch.Generator().manual_seed(0)))
        assert train.text.shape == (4, 1, 4, TEXT_DIM) and set(train.experts) == set(MSRVTT_AGG)
    assert sorted(p.name for p in (data_dir / "store").iterdir()) == ["experts", INDEX_NAME, "text"]


def test_restricted_training_uses_the_first_caption_of_each_video(msrvtt):
    data_dir, _ = msrvtt
    loader = make_loader(data_dir, "full-val", restrict_train_captions=1)
    offsets = loader.store.caption_offsets
    for seed in range(5):
        for batch in loader.train_batches(torch.Generator().manual_seed(seed)):
            assert torch.equal(batch.caption_rows[:, 0], offsets[batch.video_rows])
    eval_set = loader.eval_set()
    assert eval_set.query_masks.sum() > len(eval_set.video_rows)  # evaluation still uses every caption


def test_a_last_batch_of_one_video_is_left_out(msrvtt):
    loader = make_loader(msrvtt[0], "full-val")
    videos = len(loader.train_rows)
    for batch_size, sizes in ((videos - 1, [videos - 1]), (videos - 2, [videos - 2, 2])):
        loader.batch_size = batch_size
        batches = list(loader.train_batches(torch.Generator().manual_seed(0)))
        assert [len(b.video_rows) for b in batches] == sizes
        assert loader.num_train_batches() == len(sizes)


def test_jsfusion_evaluates_the_released_test_caption_only(msrvtt):
    data_dir, files = msrvtt
    loader = make_loader(data_dir, "jsfusion", num_test_captions=3)
    eval_set = loader.eval_set()
    offsets = loader.store.caption_offsets[eval_set.video_rows]
    assert eval_set.caption_rows[:, 0].tolist() == (offsets + torch.tensor([1, 2])).tolist()
    assert eval_set.query_masks.tolist() == [[1, 0, 0], [1, 0, 0]]
    assert read_test_captions(data_dir / "store", "val_list_jsfusion").tolist() == eval_set.caption_rows[:, 0].tolist()
    assert read_test_captions(data_dir / "store", "val_list_full") is None


# ----------------------------------------------------------------------------- a fused dataset

QUERYD_AGG = {"scene.densenet161.0": {"temporal": "avg", "type": "embed", "fps": 25, "pixel_dim": 256,
                                      "stride": 1, "offset": 0},
              "audio.vggish.0": {"temporal": "vlad", "type": "embed"}}
QUERYD_FILES = {
    "scene.densenet161.0": ("aggregated_scene_25fps_256px_stride1_offset0/densenet161-avg.pickle",),
    "audio.vggish.0": ("aggregated_audio/vggish-vlad.pickle",),
}


def write_queryd(root: Path) -> dict:
    """A 6-video QuerYD-like release (fused captions; lists and captions from the feature root)."""
    rng = np.random.default_rng(1)
    ids = [f"yt{i}" for i in range(6)]
    for name, rows in {"train_list": ids[:3], "val_list": ids[3:5], "test_list": ids[5:]}.items():
        (root / f"{name}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{name}.txt").write_text("\n".join(rows))
    raw, text = captions_and_text(rng, ids, [2, 1, 3, 2, 1, 2])
    files = {
        "structured-symlinks/raw_captions_combined_filtered.pkl": raw, "text_embeddings/w2v.pkl": text,
        QUERYD_FILES["scene.densenet161.0"][0]: {v: rng.standard_normal(7) for v in ids},
        QUERYD_FILES["audio.vggish.0"][0]: {v: NAN if i == 1 else tokens(rng, 1 + i, 2) for i, v in enumerate(ids)},
    }
    for relative, table in files.items():
        dump(root / relative, table)
    return files


def test_fused_captions_become_one_caption_per_video(tmp_path):
    files = write_queryd(tmp_path / "QuerYD" / "structured-symlinks")
    store_dir = convert_released("QuerYD", tmp_path / "QuerYD", "structured-symlinks", list(QUERYD_AGG),
                                 QUERYD_AGG, "w2v", progress=False)
    store = load(store_dir, QUERYD_FILES, "w2v", "QuerYD", QUERYD_AGG)
    raw = files["structured-symlinks/raw_captions_combined_filtered.pkl"]
    assert np.diff(store.caption_offsets.numpy()).tolist() == [1] * 6
    assert store.captions_of(2) == [" ".join(" ".join(c) for c in raw["yt2"])]
    videos = ["yt4", "yt1", "yt2"]
    rows = torch.tensor([store.video_ids.index(v) for v in videos])
    batch = make_batch(store, rows, store.caption_offsets[rows][:, None], MAX_TOKENS)
    expected = reference_batch(files, QUERYD_FILES, "text_embeddings/w2v.pkl", videos, [0, 0, 0], fused=True)
    assert_batches_equal(batch, expected)


@pytest.mark.slow
def test_convert_features_cli(tmp_path):
    data_dir = tmp_path / "QuerYD"
    write_queryd(data_dir / "structured-symlinks")
    run = [sys.executable, "misc/convert_features.py", "--dataset", "QuerYD", "--data_dir", str(data_dir)]
    done = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2 experts, text features: w2v" in done.stdout
    assert (data_dir / "store" / "experts" / "aggregated_audio" / "vggish-vlad.h5").is_file()
    done = subprocess.run(run[:-1] + [str(tmp_path / "none")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'none'}/structured-symlinks")


def test_a_release_holding_only_the_evaluated_split_evaluates(msrvtt):
    data_dir, files = msrvtt
    raw = files["raw-captions.pkl"]
    dump(data_dir / "structured-symlinks" / "raw-captions.pkl", {v: raw[v] for v in ("video6", "video7")})
    loader = make_loader(data_dir, "full-val")
    eval_set = loader.eval_set()
    assert [loader.store.video_ids[int(r)] for r in eval_set.video_rows] == ["video6", "video7"]
    assert eval_set.num_queries == len(raw["video6"]) + len(raw["video7"])
    with pytest.raises(StoreError, match="split 'train_list_full' not in the store"):
        _ = loader.train_rows
