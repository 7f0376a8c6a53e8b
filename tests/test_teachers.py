"""TeachText teachers: original pickles in the store, bad teachers, export, and training with them."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, load_script, run

from data_loader.batches import make_batch
from data_loader.generated.synthetic import generate_synthetic
from data_loader.prepare import prepare_store
from data_loader.released.convert import read_layout
from data_loader.teachtext.teachers import (
    TeacherArrays,
    gather_teachers,
    load_teacher,
    read_teacher,
    teacher_path,
    write_teacher,
)
from model.teachtext.distillation import distillation_target
from trainer.build import build_data, build_distillation, build_model
from trainer.teachtext.export import teacher_embeddings
from utils.config.load import load_config
from utils.errors import StoreError

SPLITS = {"train": 96, "val": 24, "test": 24}
CE = REPO / "configs" / "synthetic" / "train-ce.json"
TEACHTEXT = REPO / "configs" / "synthetic" / "train-teachtext-ce.json"
DIM = 16  # experts.ce_shared_dim of the small models here


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("Synthetic")
    generate_synthetic(folder, seed=0, split_sizes=SPLITS)
    return folder


def small(data_dir, *extra: str) -> list[str]:
    return [f"data_loader.args.data_dir={data_dir}", f"experts.ce_shared_dim={DIM}", *extra]


def original_table(data_dir, experts: dict[str, int], skip: set[str] = frozenset()) -> dict:
    """An original-format teacher table with random embeddings for every video but ``skip``."""
    layout = read_layout(data_dir / "store")
    rng = np.random.default_rng(0)
    table = {}
    for row, video in enumerate(layout.video_ids):
        if video in skip:
            continue
        captions = int(layout.caption_offsets[row + 1] - layout.caption_offsets[row])
        table[video] = {"vid_embds": {e: rng.standard_normal(d).astype(np.float32) for e, d in experts.items()},
                        "text_embds": {e: rng.standard_normal((captions, d)).astype(np.float32)
                                       for e, d in experts.items()}}
    return table


def write_pickle(path, table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(table, protocol=2))


@pytest.mark.slow
def test_an_original_teacher_pickle_converts_to_the_store_and_back(synthetic):
    layout = read_layout(synthetic / "store")
    skipped = layout.video_ids[int(layout.splits["test"][0])]
    table = original_table(synthetic, {"appearance": DIM, "motion": 8}, skip={skipped})
    write_pickle(synthetic / "teachers" / "original.pkl", table)
    prepare_store("Synthetic", synthetic, teachers=[("teachers/", "original.pkl")])
    stored = read_teacher(teacher_path(synthetic / "store", "teachers/original"))
    assert stored.experts == ["appearance", "motion"]
    for row, video in enumerate(layout.video_ids):
        lo, hi = layout.caption_offsets[row], layout.caption_offsets[row + 1]
        assert stored.covered[row] == (video != skipped)
        for expert in stored.experts:
            if video == skipped:
                assert not stored.video[expert][row].any() and not stored.text[expert][lo:hi].any()
            else:
                np.testing.assert_array_equal(stored.video[expert][row], table[video]["vid_embds"][expert])
                np.testing.assert_array_equal(stored.text[expert][lo:hi], table[video]["text_embds"][expert])


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.slow
def test_a_malicious_teacher_pickle_is_refused_and_runs_nothing(synthetic, tmp_path):
    marker, save_dir = tmp_path / "ran", tmp_path / "saved"
    evil = synthetic / "teachers" / "evil.pkl"
    write_pickle(evil, {"video0000": {"vid_embds": Payload(marker), "text_embds": {}}})
    done = subprocess.run([sys.executable, "train.py", "--config", str(TEACHTEXT), "--set",
                           *small(synthetic, f"trainer.save_dir={save_dir}", 'distil_params.teachers=["evil.pkl"]')],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(evil) in last and "system" in last
    assert not marker.exists()
    assert not save_dir.exists()
    assert not teacher_path(synthetic / "store", "teachers/evil").exists()


def teacher_config(synthetic, name: str):
    return load_config(TEACHTEXT, small(synthetic, f'distil_params.teachers=["{name}"]'))


def write_random_teacher(synthetic, name: str, dims: dict[str, int], uncovered: int | None = None) -> None:
    layout = read_layout(synthetic / "store")
    rng = np.random.default_rng(1)
    covered = np.ones(len(layout.video_ids), dtype=bool)
    if uncovered is not None:
        covered[uncovered] = False
    write_teacher(synthetic / "store", name, TeacherArrays(
        covered, {e: rng.standard_normal((len(covered), d)) for e, d in dims.items()},
        {e: rng.standard_normal((int(layout.caption_offsets[-1]), d)) for e, d in dims.items()}))


@pytest.mark.slow
@pytest.mark.parametrize("dims, uncovered, message", [
    ({"appearance": DIM, "motion": DIM}, "train", "no embeddings for training video"),
    ({"appearance": DIM, "motion": DIM + 1}, None, f"expert 'motion' has embeddings of width {DIM + 1}, expected {DIM}"),
    ({"appearance": DIM, "colour": DIM}, None, "names expert 'colour', which the config does not know"),
])
def test_a_bad_teacher_stops_before_training_naming_its_file(synthetic, dims, uncovered, message):
    layout = read_layout(synthetic / "store")
    row = int(layout.splits["train"][3]) if uncovered == "train" else None
    write_random_teacher(synthetic, "teachers/bad", dims, row)
    config = teacher_config(synthetic, "bad")
    with pytest.raises(StoreError) as info:
        build_distillation(config, build_data(config))
    assert str(teacher_path(synthetic / "store", "teachers/bad")) in str(info.value)
    assert message in str(info.value)


@pytest.mark.slow
def test_a_teacher_of_another_dataset_version_is_refused(tmp_path):
    data = tmp_path / "Synthetic"
    generate_synthetic(data, seed=0, split_sizes=SPLITS)
    write_random_teacher(data, "teachers/old", {"appearance": DIM})
    generate_synthetic(data, seed=1, split_sizes=SPLITS)  # a new build of the store keeps the teacher
    assert teacher_path(data / "store", "teachers/old").is_file()
    config = teacher_config(data, "old")
    with pytest.raises(StoreError, match="made for another version of .*index.h5; export the teacher again"):
        build_distillation(config, build_data(config))


@pytest.mark.slow
def test_an_exported_teacher_reproduces_the_model_scores(synthetic):
    """With every expert present, the teacher's summed inner products are the model's own scores."""
    config = load_config(CE, small(synthetic, 'experts.modalities=["appearance", "motion", "scene"]'))
    torch.manual_seed(0)
    model, data = build_model(config).eval(), build_data(config)
    write_teacher(synthetic / "store", "teachers/exported", teacher_embeddings(model, data, torch.device("cpu")))
    teacher = load_teacher(synthetic / "store", "teachers/exported", {e: DIM for e in ("appearance", "motion", "scene")},
                           data.train_rows, data.store.video_ids)
    rows = data.train_rows[:10]
    captions = data.store.caption_offsets[rows] + 1
    batch = make_batch(data.store, rows, captions[:, None], data.max_tokens)
    with torch.no_grad():
        sims = model(batch.experts, batch.ind, batch.text)["cross_view_conf_matrix"]
    torch.testing.assert_close(distillation_target(gather_teachers([teacher], rows, captions)), sims,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_distillation_logs_its_parts_resumes_exactly_and_evaluates_without_teachers(synthetic, tmp_path, monkeypatch):
    for name in ("train-ce-refined-text-w2v", "train-ce-refined-text-gpt2", "train-ce-refined-text-gpt2-xl-finetune"):
        write_random_teacher(synthetic, f"teachers/{name}", {e: DIM for e in ("appearance", "audio", "motion")})
    common = small(synthetic, "data_loader.args.batch_size=32", "trainer.tensorboard=true")
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train = load_script("train")
    assert run(train, monkeypatch, "--config", str(TEACHTEXT), "--set", *common, "trainer.epochs=3",
               f"trainer.save_dir={straight}") == 0
    assert run(train, monkeypatch, "--config", str(TEACHTEXT), "--set", *common, "trainer.epochs=1",
               f"trainer.save_dir={interrupted}") == 0
    (first,) = (interrupted / "models" / "synthetic-train-teachtext-ce").iterdir()
    assert run(train, monkeypatch, "--resume", str(first / "checkpoint-epoch1.pth"), "--set", "trainer.epochs=3") == 0
    (done,) = (straight / "models" / "synthetic-train-teachtext-ce").iterdir()
    a = torch.load(done / "checkpoint-epoch3.pth", weights_only=True)
    b = torch.load(first / "checkpoint-epoch3.pth", weights_only=True)
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    log_dir = straight / "log" / "synthetic-train-teachtext-ce" / done.name
    log = (log_dir / "info.log").read_text()
    assert "loss_t2v" in log and "loss_distil" in log and "+ distil" in log
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tags = EventAccumulator(str(log_dir)).Reload().Tags()["scalars"]
    assert {"train/loss_t2v", "train/loss_v2t", "train/loss_distil", "train/epoch_loss_distil"} <= set(tags)
    assert json.loads((done / "config.json").read_text())["distil_loss"] is True
    # evaluating a distilled model needs no teachers
    for path in (synthetic / "store" / "teachers").glob("train-ce-refined-text-*.h5"):
        path.unlink()
    assert run(load_script("test"), monkeypatch, "--resume", str(done / "trained_model.pth")) == 0


@pytest.mark.slow
def test_training_file_and_caption_masks_shape_the_training_batches(synthetic):
    layout = read_layout(synthetic / "store")
    chosen = [layout.video_ids[int(r)] for r in layout.splits["train"][::3]]
    (synthetic / "my-train.txt").write_text("\n".join(chosen) + "\n")
    config = load_config(CE, small(synthetic, "training_file=my-train.txt", "caption_masks=kept",
                                   "data_loader.args.batch_size=16"))
    data = build_data(config)
    assert [data.store.video_ids[int(r)] for r in data.train_rows] == chosen
    batches = list(data.train_batches(torch.Generator().manual_seed(0)))
    videos = torch.cat([b.video_rows for b in batches])
    captions = torch.cat([b.caption_rows[:, 0] for b in batches])
    assert sorted(videos.tolist()) == sorted(data.train_rows.tolist())
    assert data.kept_captions[captions].all()
    assert not data.kept_captions.all()
    (synthetic / "bad-train.txt").write_text("video0001\nnot-a-video\n")
    with pytest.raises(StoreError, match="bad-train.txt: video not-a-video is not in the store"):
        build_data(load_config(CE, small(synthetic, "training_file=bad-train.txt")))


@pytest.mark.slow
def test_the_recipe_reuses_finished_runs_and_tabulates_mean_and_std(tmp_path):
    recipe = load_script("misc/run_teachtext")
    config = load_config(CE, [f"trainer.save_dir={tmp_path}", "seed=1"])
    for run_id, seed in (("a", 1), ("b", 2)):
        run = tmp_path / "models" / "synthetic-train-ce" / run_id
        run.mkdir(parents=True)
        saved = json.loads(json.dumps(config.data))
        saved["seed"] = seed
        (run / "config.json").write_text(json.dumps(saved))
        (run / "metrics.json").write_text("{}")
    assert recipe.finished_run(config, CE).name == "a"
    assert recipe.finished_run(load_config(CE, [f"trainer.save_dir={tmp_path}", "seed=3"]), CE) is None
    runs = [{"t2v_metrics": {"R1": r, "R5": 2 * r, "R10": 3 * r, "MedR": 5, "geometric_mean_R1-R5-R10": r},
             "v2t_metrics": {"geometric_mean_R1-R5-R10": 2 * r}} for r in (10.0, 12.0, 14.0)]
    lines = recipe.table({"CE": runs}).splitlines()
    assert lines[0].split()[:3] == ["method", "t2v", "R1"]
    assert lines[1].split()[:4] == ["CE", "12.00", "±", "2.00"] and lines[1].split()[-3:] == ["24.00", "±", "4.00"]
