"""Feature store round trip, index-gathered batches and the Synthetic generator."""
from __future__ import annotations

import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch

from data_loader.batches import caption_table, gather_tokens, make_batch, sample_captions, text_batch
from data_loader.generated.synthetic import (
    CAPTIONS_PER_VIDEO,
    EXPERTS,
    KEPT_CAPTIONS,
    TEXT_ENCODERS,
    WRONG_CONCEPT_RATE,
    generate_synthetic,
)
from data_loader.store.feature_store import (
    INDEX_NAME,
    ExpertArrays,
    StoreError,
    TokenArrays,
    load_store,
    read_index_attrs,
    write_store,
)
from data_loader.teachtext.caption_masks import caption_mask_path, convert_caption_mask, load_caption_mask

SMALL = {"train": 40, "val": 10, "test": 10}


def tiny_store(path):
    features = np.arange(6, dtype=np.float32).reshape(3, 2)
    tokens = np.arange(10, dtype=np.float32).reshape(5, 2)
    return write_store(
        path, dataset="Tiny", video_ids=["a", "b", "c"], splits={"train": np.array([0, 1]), "test": np.array([2])},
        experts={"rgb": ExpertArrays(features, np.array([True, False, True])),
                 "audio": ExpertArrays(tokens, np.array([True, True, False]), np.array([0, 3, 5, 5]))},
        captions=[["x y"], ["p", "q r"], ["s"]],
        text={"w": TokenArrays(np.ones((6, 4), np.float32), np.array([0, 2, 3, 5, 6]))},
    )


def test_gather_tokens_pads_truncates_and_handles_empty_rows():
    values = torch.arange(10.0).reshape(5, 2)
    offsets = torch.tensor([0, 3, 5, 5])
    out = gather_tokens(values, offsets, torch.tensor([[0, 1], [2, -1]]), max_len=2)
    assert out.shape == (2, 2, 2, 2)
    assert out[0, 0].tolist() == [[0, 1], [2, 3]]          # truncated to 2 of 3 tokens
    assert out[0, 1].tolist() == [[6, 7], [8, 9]]
    assert out[1].abs().sum() == 0                          # empty row and "no caption" row


def test_store_round_trip_and_batches(tmp_path):
    store = load_store(tiny_store(tmp_path / "store"), ["audio", "rgb"], "w")
    assert store.video_ids == ["a", "b", "c"]
    assert store.captions_of(1) == ["p", "q r"]
    captions = caption_table(store, torch.tensor([0, 1]), 2)
    assert captions.tolist() == [[0, -1], [1, 2]]
    batch = make_batch(store, torch.tensor([0, 2]), captions, {"audio": 4, "text": 3})
    assert batch.experts["rgb"].tolist() == [[0, 1], [4, 5]]
    assert batch.experts["audio"].shape == (2, 4, 2)
    assert batch.ind["rgb"].tolist() == [1, 1] and batch.ind["audio"].tolist() == [1, 0]
    assert batch.text.shape == (2, 2, 3, 4)
    assert batch.text[0, 1].abs().sum() == 0


def test_a_vocabulary_text_feature_gives_the_embeddings_of_its_tokens(tmp_path):
    vocabulary = np.arange(12, dtype=np.float32).reshape(4, 3)
    tokens = np.array([3, 0, 0, 2, 1, 3])
    path = tiny_store(tmp_path / "store")
    write_store(path, dataset="Tiny", video_ids=["a", "b", "c"], splits={"train": np.array([0, 1])}, experts={},
                captions=[["x y"], ["p", "q r"], ["s"]],
                text={"v": TokenArrays(tokens, np.array([0, 2, 3, 5, 6]), vocabulary)})
    store = load_store(path, [], "v")
    dense = vocabulary[tokens]
    got = text_batch(store, torch.tensor([[0, 2], [3, -1]]), 3)
    np.testing.assert_array_equal(got[0, 0, :2], dense[0:2])
    np.testing.assert_array_equal(got[0, 1, :2], dense[3:5])
    np.testing.assert_array_equal(got[1, 0, :1], dense[5:6])
    assert got[0, :, 2].abs().sum() == 0 and got[1, 0, 1:].abs().sum() == 0 and got[1, 1].abs().sum() == 0


def test_store_errors_name_file_and_key(tmp_path):
    with pytest.raises(StoreError, match="index.h5: feature store index not found"):
        load_store(tmp_path / "none", ["rgb"], "w")
    path = tiny_store(tmp_path / "store")
    with pytest.raises(StoreError, match=r"flow.h5: expert 'flow' not in the store \(it has: audio, rgb\)"):
        load_store(path, ["flow"], "w")
    with pytest.raises(StoreError, match="gpt.h5: text feature 'gpt' not in the store"):
        load_store(path, ["rgb"], "gpt")
    (path / "experts" / "rgb.h5").write_bytes(b"not hdf5")
    with pytest.raises(StoreError, match="rgb.h5: not a readable HDF5"):
        load_store(path, ["rgb"], "w")


def test_sample_captions_stays_within_each_video():
    offsets = torch.tensor([0, 3, 4, 9])
    store = type("S", (), {"caption_offsets": offsets})()
    rows = torch.tensor([0, 1, 2] * 50)
    picks = sample_captions(store, rows, torch.Generator().manual_seed(0))
    assert ((picks >= offsets[rows]) & (picks < offsets[rows + 1])).all()
    assert len(set(picks[rows == 2].tolist())) > 1


def test_masked_sampling_draws_every_kept_caption_and_only_those():
    store = type("S", (), {"caption_offsets": torch.tensor([0, 3, 4, 9])})()
    kept = torch.tensor([0, 1, 1, 1, 1, 0, 0, 1, 0], dtype=torch.bool)
    rows = torch.tensor([0, 1, 2] * 50)
    picks = sample_captions(store, rows, torch.Generator().manual_seed(0), kept_upto=kept.long().cumsum(0))
    assert [set(picks[rows == v].tolist()) for v in range(3)] == [{1, 2}, {3}, {4, 7}]


def test_an_original_caption_mask_converts_and_covers_the_training_videos(tmp_path):
    path = tiny_store(tmp_path / "store")
    masks = tmp_path / "masks.pkl"
    masks.write_bytes(pickle.dumps({"a": np.array([0]), "b": np.array([1, 0]), "zz": np.array([1])}))
    convert_caption_mask(masks, path, "masks.pkl")
    store = load_store(path, [], "w")
    kept = load_caption_mask(path, "masks.pkl", torch.tensor([1]), store.video_ids, store.caption_offsets)
    assert kept.tolist() == [False, True, False, True]  # video c is not covered: its caption stays kept
    with pytest.raises(StoreError, match="masks.h5: training video a keeps none of its captions"):
        load_caption_mask(path, "masks.pkl", torch.tensor([0, 1]), store.video_ids, store.caption_offsets)
    with pytest.raises(StoreError, match="masks.h5: no caption mask for training video c"):
        load_caption_mask(path, "masks.pkl", torch.tensor([2]), store.video_ids, store.caption_offsets)
    masks.write_bytes(pickle.dumps({"b": np.array([1, 0, 1])}))
    with pytest.raises(StoreError, match="masks.pkl: video b: expected 2 0/1 values"):
        convert_caption_mask(masks, path, "masks.pkl")


@pytest.mark.parametrize("first, allowed", [(1, [{0}, {3}, {4}]), (2, [{0, 1}, {3}, {4, 5}])])
def test_restricted_sampling_draws_every_one_of_the_first_captions_only(first, allowed):
    store = type("S", (), {"caption_offsets": torch.tensor([0, 3, 4, 9])})()
    rows = torch.tensor([0, 1, 2] * 50)
    picks = sample_captions(store, rows, torch.Generator().manual_seed(0), first)
    assert [set(picks[rows == v].tolist()) for v in range(3)] == allowed


@pytest.mark.slow
def test_synthetic_is_deterministic_and_has_missing_experts(tmp_path):
    a = generate_synthetic(tmp_path / "a", seed=3, split_sizes=SMALL)
    b = generate_synthetic(tmp_path / "b", seed=3, split_sizes=SMALL)
    for name in [f"experts/{e}.h5" for e in EXPERTS] + [f"text/{t}.h5" for t in TEXT_ENCODERS]:
        with h5py.File(a / name) as fa, h5py.File(b / name) as fb:
            for key in ("vocabulary", "tokens") if name.startswith("text") else ("features",):
                np.testing.assert_array_equal(fa[key][()], fb[key][()])
    for text_feat, (dim, _) in TEXT_ENCODERS.items():
        store = load_store(a, [], text_feat)
        assert store.text_embeddings.shape[1] == dim and len(store.text_offsets) == 60 * CAPTIONS_PER_VIDEO + 1
    with h5py.File(caption_mask_path(a, KEPT_CAPTIONS)) as f:
        assert f["covered"][()].all() and 0.5 * WRONG_CONCEPT_RATE < 1 - f["kept"][()].mean() < WRONG_CONCEPT_RATE
    store = load_store(a, sorted(EXPERTS), "w2v")
    assert {k: len(v) for k, v in store.splits.items()} == SMALL
    assert len(store.raw_captions) == 60 * CAPTIONS_PER_VIDEO
    dims = {name: store.experts[name].features.shape[-1] for name in EXPERTS}
    assert dims["appearance"] == 2048 and dims["motion"] == 1024 and dims["scene"] == 512
    missing = {name: 1 - store.experts[name].available.float().mean().item() for name in EXPERTS}
    assert sum(m > 0.15 for m in missing.values()) >= 3
    assert missing["appearance"] == 0
    assert {store.experts[n].kind for n in ("audio", "ocr", "speech")} == {"tokens"}


def test_interrupted_write_leaves_no_trusted_file(tmp_path, monkeypatch):
    store = tiny_store(tmp_path / "store")
    before = (store / INDEX_NAME).read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("utils.atomic.os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        tiny_store(tmp_path / "store")
    assert not list(store.rglob("*.partial-*"))
    assert (store / INDEX_NAME).read_bytes() == before
    with pytest.raises(KeyboardInterrupt):
        tiny_store(tmp_path / "fresh")
    assert not (tmp_path / "fresh" / INDEX_NAME).exists() and not list((tmp_path / "fresh").rglob("*.h5"))


@pytest.mark.slow
def test_interrupted_regeneration_with_another_seed_leaves_the_old_store(tmp_path, monkeypatch):
    store = generate_synthetic(tmp_path, seed=1, split_sizes=SMALL)
    before = load_store(store, sorted(EXPERTS), "synthetic")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("data_loader.store.feature_store.write_text", interrupt)  # the experts are written by then
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(tmp_path, seed=2, split_sizes=SMALL)
    monkeypatch.undo()
    assert read_index_attrs(store)["seed"] == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    after = load_store(store, sorted(EXPERTS), "synthetic")
    for name in EXPERTS:
        assert torch.equal(after.experts[name].features.read(), before.experts[name].features.read())


@pytest.mark.slow
def test_a_file_of_another_build_is_refused(tmp_path):
    a = generate_synthetic(tmp_path / "a", seed=1, split_sizes=SMALL)
    b = generate_synthetic(tmp_path / "b", seed=2, split_sizes=SMALL)
    shutil.copy(b / "experts" / "motion.h5", a / "experts" / "motion.h5")
    load_store(a, ["appearance"], "synthetic")
    with pytest.raises(StoreError, match=r"motion.h5: belongs to another build of the store \(store_id \w+, "
                                         r"index.h5 has \w+\); delete .* and re-run to rebuild it"):
        load_store(a, ["appearance", "motion"], "synthetic")


def rewrite(path, key: str, value) -> None:
    """Replace dataset ``key`` of the HDF5 file ``path`` with ``value``, keeping its attributes."""
    with h5py.File(path, "r+") as f:
        del f[key]
        f[key] = value


TEXT_ROWS = np.ones((6, 4), np.float32)
MALFORMED = {
    "token offsets beyond the features": ("experts/audio.h5", "offsets", np.array([0, 3, 5, 7]),
                                          r"audio.h5: offsets\[3\] = 7, expected 5, the number of feature rows"),
    "decreasing token offsets": ("experts/audio.h5", "offsets", np.array([0, 3, 2, 5]),
                                 r"audio.h5: offsets\[2\] = 2 is less than offsets\[1\] = 3"),
    "offsets not starting at 0": ("text/w.h5", "offsets", np.array([1, 2, 3, 5, 6]),
                                  r"w.h5: offsets\[0\] = 1, expected 0"),
    "text offsets for another caption count": ("text/w.h5", "offsets", np.array([0, 2, 6]),
                                               r"w.h5: offsets: expected 5 integer offsets \(one per caption"),
    "split row out of range": (INDEX_NAME, "splits/test", np.array([2, 3]),
                               r"index.h5: splits/test\[1\] = 3, expected a row of the index \(0 <= row < 3\)"),
    "fixed expert with a row too few": ("experts/rgb.h5", "features", np.zeros((2, 2), np.float32),
                                        r"rgb.h5: features has 2 rows, expected 3, one per video"),
    "availability of another length": ("experts/rgb.h5", "available", np.ones(4, bool),
                                       r"rgb.h5: available has shape \(4,\)"),
    "NaN in a caption's embedding": ("text/w.h5", "embeddings", np.where(np.arange(6)[:, None] == 3, np.nan, TEXT_ROWS),
                                     r"w.h5: embeddings row 3 \(caption 2, 'q r'\) holds NaN or infinity"),
    "infinity in a caption's embedding": ("text/w.h5", "embeddings",
                                          np.where(np.arange(6)[:, None] == 5, np.inf, TEXT_ROWS),
                                          r"w.h5: embeddings row 5 \(caption 3, 's'\) holds NaN"),
    "a video without captions": (INDEX_NAME, "captions/offsets", np.array([0, 1, 1, 4]),
                                 r"index.h5: video 1 \('b'\) has no captions \(captions/offsets\[1\] = "
                                 r"captions/offsets\[2\] = 1\); every video needs at least one"),
}


@pytest.mark.parametrize("relative, key, value, message", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_stores_stop_with_one_line_naming_file_and_violation(tmp_path, relative, key, value, message):
    store = tiny_store(tmp_path / "store")
    load_store(store, ["audio", "rgb"], "w")
    rewrite(store / relative, key, value)
    with pytest.raises(StoreError, match=message) as info:
        load_store(store, ["audio", "rgb"], "w")
    assert "\n" not in str(info.value)
