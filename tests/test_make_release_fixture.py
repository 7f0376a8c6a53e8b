"""misc/make_release_fixture.py: a tiny synthetic MSRVTT release converts and loads for the config
it was made for, on its training, test and 1k-A (jsfusion) splits."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO

from data_loader.released.convert import load_pickle
from trainer.build import build_data, prepare_data
from utils.config.load import load_config, with_eval_settings

SCRIPT = "misc/make_release_fixture.py"
CONFIG = "configs/msrvtt/train-full-ce.json"
FIXED_DIMS = {"imagenet.senet154.0": 2048, "scene.densenet161.0": 2208, "i3d.i3d.0": 1024, "face": 512}
TOKEN_DIMS = {"audio": 128, "ocr": 300, "speech": 300}


@pytest.mark.slow
def test_tiny_fixture_converts_and_loads(tmp_path, monkeypatch):
    out = tmp_path / "MSRVTT"
    done = subprocess.run([sys.executable, SCRIPT, "--out", str(out), "--scale", "0.003", "--text_tokens", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    root = out / "structured-symlinks"
    lists = {p.stem: p.read_text().split() for p in root.glob("*_list_*.txt")}
    official = (REPO / "misc/datasets/msrvtt/test_list_full.txt").read_text().split()
    assert lists["test_list_full"] == official[:round(len(official) * 0.003)]

    face = load_pickle(root / "aggregated_face_feats/facefeats-avg.pickle")
    missing = [v for v in face.values() if isinstance(v, float)]
    assert missing and all(math.isnan(v) for v in missing)
    assert {(v.shape, v.dtype) for v in face.values() if isinstance(v, np.ndarray)} == {((512,), np.dtype(np.float32))}
    raw = load_pickle(root / "raw-captions.pkl")
    assert {len(raw[v]) for v in lists["test_list_full"]} == {19, 20}

    monkeypatch.chdir(REPO)
    config = load_config(CONFIG, [f"data_loader.args.data_dir={out}"])
    prepare_data(config)
    train = build_data(config)
    batch = next(train.train_batches(torch.Generator().manual_seed(0)))
    for expert, dim in FIXED_DIMS.items():
        assert batch.experts[expert].shape[-1] == dim
    for expert, dim in TOKEN_DIMS.items():
        assert batch.experts[expert].shape[-1] == dim and batch.experts[expert].ndim == 3
    assert batch.text.shape[-1] == 768
    assert len(train.train_rows) == len(lists["train_list_full"])

    prepare_data(with_eval_settings(config))
    test_set = build_data(with_eval_settings(config)).eval_set()
    assert test_set.num_videos == len(lists["test_list_full"])
    assert test_set.num_queries == sum(len(raw[v]) for v in lists["test_list_full"])

    jsfusion_config = load_config(CONFIG, [f"data_loader.args.data_dir={out}", "data_loader.args.split_name=jsfusion"])
    prepare_data(jsfusion_config)
    jsfusion = build_data(jsfusion_config)
    picks = load_pickle(root / "jsfusion_val_caption_idx.pkl")
    eval_set = jsfusion.eval_set()
    starts = jsfusion.store.caption_offsets[eval_set.video_rows]
    assert (eval_set.caption_rows[:, 0] - starts).tolist() == [picks[v] for v in lists["val_list_jsfusion"]]


def test_lists_above_scale_one_add_renamed_copies_that_overlap_as_the_official_ones():
    from make_release_fixture import official_lists

    single, double = official_lists(1), official_lists(2)
    for split, ids in single.items():
        assert double[split] == ids + [f"{v}-copy1" for v in ids]
    shared = set(single["val_list_jsfusion"]) & set(single["test_list_full"])
    assert {f"{v}-copy1" for v in shared} <= set(double["val_list_jsfusion"]) & set(double["test_list_full"])
