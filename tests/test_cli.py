"""Command lines: bad input gives one clear line and a non-zero exit, never a traceback."""
from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import REPO

from data_loader.generated.synthetic import generate_synthetic

CONFIG = "configs/synthetic/train-ce.json"


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(done: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    assert lines[-1].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[-1]


@pytest.mark.slow
def test_help_describes_the_commands():
    for script in ("train.py", "test.py", "misc/compare_runs.py"):
        done = run(script, "--help")
        assert done.returncode == 0, done.stderr
        assert "usage:" in done.stdout and ("--config" in done.stdout or "--resume" in done.stdout)


@pytest.mark.slow
def test_dry_run_prints_summary_and_parameter_count():
    done = run("train.py", "--config", CONFIG, "--dry_run")
    assert done.returncode == 0, done.stderr
    assert "CENet" in done.stdout and "text_pooling" in done.stdout
    assert "Trainable parameters: 7,321,981" in done.stdout


@pytest.mark.slow
def test_malformed_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"trainer": {"epochs": 3,}}')
    assert_one_line_error(run("train.py", "--config", str(bad)), 2, "bad.json: malformed JSON at line 1")


@pytest.mark.slow
def test_unknown_key_and_wrong_type():
    assert_one_line_error(run("train.py", "--config", CONFIG, "--set", "trainer.epoch=3"), 2,
                          "trainer.epoch: unknown key")
    assert_one_line_error(run("train.py", "--config", CONFIG, "--set", "optimizer.args.lr=fast"), 2,
                          "optimizer.args.lr")


@pytest.mark.slow
def test_missing_feature_store(tmp_path):
    done = run("train.py", "--config", CONFIG, "--set", "data_loader.args.dataset_name=MSRVTT",
               f"data_loader.args.data_dir={tmp_path}", f"trainer.save_dir={tmp_path / 'saved'}")
    assert_one_line_error(done, 2, f"{tmp_path}/store/index.h5: feature store for MSRVTT not found")


@pytest.mark.slow
def test_negative_caption_restriction(tmp_path):
    done = run("train.py", "--config", CONFIG, "--set", "data_loader.args.restrict_train_captions=-1",
               f"data_loader.args.data_dir={tmp_path}", f"trainer.save_dir={tmp_path / 'saved'}")
    assert_one_line_error(done, 2, "data_loader.args.restrict_train_captions: expected 0 (all captions) or a "
                                   "positive count, got -1")


@pytest.mark.slow
def test_missing_checkpoint(tmp_path):
    assert_one_line_error(run("test.py", "--resume", str(tmp_path / "nope.pth")), 2, "checkpoint not found")


@pytest.mark.slow
def test_foreign_checkpoint_is_refused_without_running_code(tmp_path):
    evil = tmp_path / "evil.pth"
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (shutil.copy, (__file__, str(marker)))

    evil.write_bytes(pickle.dumps({"state_dict": Payload()}))
    assert_one_line_error(run("test.py", "--resume", str(evil)), 2, "evil.pth")
    assert not marker.exists()


@pytest.mark.slow
def test_nan_in_a_present_expert_is_a_clear_error(tmp_path):
    data = tmp_path / "Synthetic"
    path = generate_synthetic(data, seed=0, split_sizes={"train": 64, "val": 16, "test": 16})
    with h5py.File(path / "experts" / "appearance.h5", "r+") as f:
        row = int(np.flatnonzero(f["available"][()])[0])
        f["features"][row, 5] = np.nan
    done = run("train.py", "--config", CONFIG, "--set", f"data_loader.args.data_dir={data}",
               f"trainer.save_dir={tmp_path / 'saved'}", "trainer.epochs=1", "data_loader.args.batch_size=80")
    assert_one_line_error(done, 2, "appearance", "NaN")
    leftovers = [p for p in (tmp_path / "saved").rglob("*") if p.is_file()]
    assert not leftovers, leftovers  # a run that stops before its first checkpoint removes its folders


@pytest.mark.slow
def test_only_user_errors_become_one_line(capsys):
    from utils.cli import run_cli
    from utils.errors import StoreError

    def bad_input() -> int:
        raise StoreError("store/index.h5: feature store not found")

    with pytest.raises(SystemExit) as exited:
        run_cli(bad_input)
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: store/index.h5: feature store not found\n"

    def bug() -> int:
        raise KeyError("a bug keeps its traceback")

    with pytest.raises(KeyError, match="a bug keeps its traceback"):
        run_cli(bug)


@pytest.mark.slow
def test_feature_width_that_disagrees_with_the_store_is_one_line(tmp_path):
    data = tmp_path / "Synthetic"
    generate_synthetic(data, seed=0, split_sizes={"train": 8, "val": 4, "test": 4})
    done = run("train.py", "--config", CONFIG, "--set", f"data_loader.args.data_dir={data}",
               f"trainer.save_dir={tmp_path / 'saved'}", "data_loader.args.feat_aggregation.motion.feat_dims.embed=999")
    assert_one_line_error(done, 2, "data_loader.args.feat_aggregation.motion", "999-wide", "1024 wide")


@pytest.mark.slow
def test_plain_pickle_checkpoint_is_one_line(tmp_path):
    plain = tmp_path / "weights.pkl"
    plain.write_bytes(pickle.dumps({"state_dict": {}, "epoch": 1}, protocol=pickle.HIGHEST_PROTOCOL))
    for script in ("test.py", "train.py"):
        done = run(script, "--resume", str(plain))
        assert_one_line_error(done, 2, f"{plain}: not a PyTorch checkpoint")
        assert "issue" not in done.stderr


@pytest.mark.slow
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_one_line(tmp_path):
    done = run("train.py", "--config", CONFIG, "--device", "cuda", "--set", f"trainer.save_dir={tmp_path}")
    assert_one_line_error(done, 2, "trainer.device", "no CUDA device")
    assert not any(tmp_path.iterdir())
