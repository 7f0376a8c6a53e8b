"""EPIC-KITCHENS-100: the generated release, its conversion into the store, training relevance,
the EK-100 evaluation (recall, nDCG, mAP) and the leaderboard file from test.py."""
from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from data_loader.expert_loader import ExpertDataLoader
from data_loader.generated.epic_kitchens import generate_epic_kitchens
from data_loader.prepare import prepare_store
from data_loader.ranp.classes import read_relevance_columns
from data_loader.ranp.epic_relevance import TEST_CLIPS_CSV, TEST_SENTENCES_CSV, read_clips, read_sentences
from data_loader.ranp.relevance import relevance
from data_loader.released.epic_kitchens import (
    ANNOTATION_DIR,
    DATASET,
    FEATURES,
    MODALITIES,
    NAMES,
    POOLED_SUFFIX,
    TRAIN_ANNOTATIONS,
    carve_validation,
    convert_epic_kitchens,
    text_feature,
    video_of,
)
from data_loader.store.feature_store import STORE_DIR, load_store
from utils.errors import StoreError

ROOT = Path(__file__).resolve().parents[1]
EXPERTS = [*MODALITIES, *(m + POOLED_SUFFIX for m in MODALITIES)]
SIZES = {"train": 260, "test": 90}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("ek100")
    generate_epic_kitchens(data_dir / "generated", seed=3, sizes=SIZES, steps=4)
    return data_dir


@pytest.fixture(scope="module")
def store(release: Path) -> Path:
    return prepare_store(DATASET, release, root_feat_folder="generated")


def test_validation_is_carved_by_video() -> None:
    names = [f"P0{p}_0{v}_{k}" for p in range(1, 4) for v in range(1, 8) for k in range(5)]
    splits = carve_validation(names)
    assert sorted(np.concatenate([splits["train"], splits["val"]]).tolist()) == list(range(len(names)))
    train_videos = {video_of(names[i]) for i in splits["train"]}
    val_videos = {video_of(names[i]) for i in splits["val"]}
    assert not train_videos & val_videos
    assert val_videos == {"P01_01", "P02_04", "P03_07"}  # every 10th of the 21 sorted video ids
    assert carve_validation(list(reversed(names)))["val"].size == splits["val"].size


def test_text_feature_maps_words_to_vocabulary_rows() -> None:
    vectors = {"take": np.ones(300, np.float32), "plate": np.full(300, 2, np.float32)}
    tokens = text_feature(["take plate", "take unknown"], vectors)
    np.testing.assert_array_equal(tokens.offsets, [0, 2, 4])
    assert tokens.vocabulary.shape == (3, 300) and not tokens.vocabulary[0].any()
    np.testing.assert_array_equal(tokens.vocabulary[tokens.values], np.stack(
        [vectors["take"], vectors["plate"], vectors["take"], np.zeros(300)]))


@pytest.mark.slow
def test_store_holds_the_release(release: Path, store: Path) -> None:
    loaded = load_store(store, EXPERTS, "glove")
    root = release / "generated"
    test = read_clips(root / ANNOTATION_DIR / TEST_CLIPS_CSV)
    assert [loaded.video_ids[i] for i in loaded.splits["test"]] == test.ids
    assert {k: len(v) for k, v in loaded.splits.items()}["test"] == SIZES["test"]
    assert len(loaded.splits["train"]) + len(loaded.splits["val"]) == SIZES["train"]
    assert not {video_of(loaded.video_ids[i]) for i in loaded.splits["train"]} & {
        video_of(loaded.video_ids[i]) for i in loaded.splits["val"]}
    captions = json.loads((root / ANNOTATION_DIR / "ref_captions.json").read_text())
    assert loaded.raw_captions == [captions[v][0] for v in loaded.video_ids]
    with h5py.File(root / FEATURES.format("tst")) as f:
        clip = np.asarray(f[test.ids[5]]).reshape(-1, 3072).astype(np.float32)
    row = int(loaded.splits["test"][5])
    for m, modality in enumerate(MODALITIES):
        tokens = loaded.experts[modality]
        lo, hi = int(tokens.offsets[row]), int(tokens.offsets[row + 1])
        part = clip[:, m * 1024:(m + 1) * 1024]
        np.testing.assert_array_equal(np.asarray(tokens.features[torch.arange(lo, hi)]), part)
        pooled = np.asarray(loaded.experts[modality + POOLED_SUFFIX].features[torch.tensor([row])])[0]
        np.testing.assert_allclose(pooled, part.mean(axis=0), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_training_and_test_relevance_follow_the_official_formula(release: Path, store: Path) -> None:
    data = ExpertDataLoader(DATASET, str(release), "test", root_feat_folder="generated", experts=EXPERTS[3:],
                            text_feat="glove", num_test_captions=1)
    root = release / "generated"
    annotations = json.loads((root / TRAIN_ANNOTATIONS).read_text())["database"]
    rows = data.store.splits["train"][:40]
    entries = [annotations[data.store.video_ids[int(r)]]["annotations"][0] for r in rows]
    verbs = torch.tensor([e["verb_class"] for e in entries])
    nouns = torch.zeros(len(entries), 300, dtype=torch.bool)
    for i, e in enumerate(entries):
        nouns[i, json.loads(e["noun_classes"]) if isinstance(e["noun_classes"], str) else e["noun_classes"]] = True
    batch = data.class_relevance(rows, data.store.caption_offsets[rows])
    np.testing.assert_array_equal(batch.double().numpy(), relevance(verbs, nouns, verbs, nouns).float().double().numpy())

    eval_set = data.eval_set()
    matrix = data.eval_relevance(eval_set)
    sentence_ids, texts = read_sentences(root / ANNOTATION_DIR / TEST_SENTENCES_CSV)
    assert matrix.shape == (SIZES["test"], len(sentence_ids)) and matrix.dtype == torch.float64
    assert (matrix == 1).any(dim=0).all() and (matrix == 1).any(dim=1).all()
    columns, ids = read_relevance_columns(store, "test")
    assert ids == sentence_ids
    test_captions = [data.store.raw_captions[int(c)] for c in eval_set.query_rows]
    assert [test_captions[int(c)] for c in columns] == texts


@pytest.mark.slow
def test_bad_releases_are_one_line_errors(release: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="release folder not found"):
        convert_epic_kitchens(tmp_path, "missing")
    broken = tmp_path / "broken"
    generate_epic_kitchens(broken, seed=1, sizes={"train": 30, "test": 12}, steps=2)
    names = np.load(broken / NAMES.format("tst"))
    np.save(broken / NAMES.format("tst"), names[:-1])
    with pytest.raises(StoreError, match=r"tst_names.npy: its 11 clips are not the 12 clips"):
        convert_epic_kitchens(tmp_path, "broken")
    np.save(broken / NAMES.format("tst"), names)
    with h5py.File(broken / FEATURES.format("trn"), "a") as f:
        del f[list(f)[0]]
    with pytest.raises(StoreError, match=r"EPIC100_TBN_feats_SA_trn.hdf5: no features for clip"):
        convert_epic_kitchens(tmp_path, "broken")
    assert not (tmp_path / STORE_DIR).exists()


def _train(config: Path, data_dir: Path, save_dir: Path, seed: int = 0) -> Path:
    result = subprocess.run(
        [sys.executable, "train.py", "--config", str(config), "--set", f"data_loader.args.data_dir={data_dir}",
         f"trainer.save_dir={save_dir}", "trainer.epochs=3", f"seed={seed}", "trainer.tensorboard=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return next(save_dir.rglob("trained_model.pth"))


@pytest.mark.slow
def test_test_py_prints_recall_ndcg_map_and_writes_the_submission(release: Path, store: Path, tmp_path: Path) -> None:
    checkpoint = _train(ROOT / "configs/epic-kitchens-100/generated/train-ce-ranp.json", release, tmp_path / "saved")
    submission = tmp_path / "test.pkl"
    result = subprocess.run([sys.executable, "test.py", "--resume", str(checkpoint), "--submission", str(submission)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert re.search(r"t2v\s+\d", output) and re.search(r"v2t\s+\d", output)
    for key in ("nDCG_vt", "nDCG_tv", "nDCG_avg", "mAP_vt", "mAP_tv", "mAP_avg"):
        assert re.search(rf"{key} 0\.\d{{4}}", output), key
    metrics = json.loads((checkpoint.parent / "metrics.json").read_text())["relevance_metrics"]
    assert metrics["nDCG_avg"] > 0.3 and metrics["mAP_avg"] > 0.2
    root = release / "generated" / ANNOTATION_DIR
    clips = pd.read_csv(root / TEST_CLIPS_CSV)
    sentences = pd.read_csv(root / TEST_SENTENCES_CSV)
    payload = pickle.loads(submission.read_bytes())
    assert payload["challenge"] == "multi_instance_retrieval" and payload["version"] == "0.1"
    assert payload["sim_mat"].shape == (len(clips), len(sentences))
    assert list(payload["vis_ids"]) == list(clips["narration_id"])
    assert list(payload["txt_ids"]) == list(sentences["narration_id"])
    assert {payload[k] for k in ("sls_pt", "sls_tl", "sls_td")} <= set(range(6))
