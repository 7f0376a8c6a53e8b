"""CVPR 2020 challenge mode: configs, the two-release store, predictions CSVs, packing, local scoring."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import challenge as cli  # misc/challenge.py
import numpy as np
import pytest
import torch
from conftest import REPO

from data_loader.generated.challenge import SplitSizes, write_challenge_release
from data_loader.released.datasets import RELEASES, SPLITS, challenge_key, release_key, split_pair
from model.dims import TEXT_DIMS, model_inputs
from model.metric import t2v_metrics
from trainer.build import build_data, build_model, prepare_data
from trainer.challenge import predictions_name, top_k_predictions, write_predictions, write_submission
from trainer.evaluate import evaluate
from utils.config.load import apply_overrides, load_config, with_eval_settings
from utils.config.options import used_experts
from utils.errors import ConfigError

CONFIGS = REPO / "configs" / "cvpr2020-challenge"
FOLDERS = ("msrvtt", "msvd", "didemo", "activity-net", "youcook2", "lsmdc")
PENTATHLON = FOLDERS[:5]
TINY = SplitSizes(train=8, val=4, public_server_val=10, public_server_test=11)  # phases: 10 videos to rank
DEFAULT_SIZES = SplitSizes()  # what misc/challenge.py generate writes


# ----------------------------------------------------------------------------- configs and facts

def test_the_19_configs_keep_the_original_chain():
    files = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.json"))
    assert len(files) == 19
    for folder in FOLDERS:
        trainval = json.loads((CONFIGS / folder / "baseline-public-trainval.json").read_text())
        test = json.loads((CONFIGS / folder / "baseline-public-test.json").read_text())
        assert trainval["inherit_from"] == f"configs/cvpr2020-challenge/data_loader_{folder}.json"
        assert sorted(trainval["experts"]["modalities"]) == ["i3d.i3d.0", "imagenet.senet154.0"]
        assert test == {"inherit_from": f"configs/cvpr2020-challenge/{folder}/baseline-public-trainval.json",
                        "eval_settings": {"data_loader": {"args": {"split_name": "public_server_test"}}}}
        config = load_config(CONFIGS / folder / "baseline-public-test.json")
        assert config["challenge_mode"] is True
        assert config["data_loader"]["args"]["root_feat_folder"] == "challenge-release-1"
        assert config["data_loader"]["args"]["challenge_test_root_feat_folder"] == "challenge-release-2"
        phase = with_eval_settings(load_config(CONFIGS / folder / "baseline-public-trainval.json"))
        assert phase["data_loader"]["args"]["split_name"] == "public_server_val"


def test_challenge_mode_is_a_validated_bool(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"inherit_from": str(CONFIGS / "msrvtt" / "baseline-public-trainval.json"),
                                "challenge_mode": "yes"}))
    with pytest.raises(ConfigError, match=r"challenge_mode: expected bool"):
        load_config(path)
    path.write_text(json.dumps({"inherit_from": str(CONFIGS / "msrvtt" / "baseline-public-trainval.json"),
                                "data_loader": {"args": {"challenge_mode": True}}}))
    with pytest.raises(ConfigError, match=r"data_loader.args.challenge_mode: is set by the program"):
        load_config(path)


def test_challenge_splits_and_release_paths():
    assert split_pair(challenge_key("MSRVTT"), "val", []) == ("train_list", "val_list")  # not val_list_full
    assert split_pair(challenge_key("MSVD"), "dev", []) == ("train_list", "val_list")
    assert split_pair(challenge_key("LSMDC"), "full-val", []) == ("train_list", "val_list")
    for name in ("MSRVTT", "MSVD", "DiDeMo", "ActivityNet", "YouCook2"):
        assert split_pair(challenge_key(name), "public_server_test", []) == ("train_list", "public_server_test")
    assert "public_server_test" not in SPLITS[challenge_key("LSMDC")]  # no release-2
    with pytest.raises(ConfigError, match="unknown split 'public_server_val' for MSRVTT"):
        split_pair("MSRVTT", "public_server_val", [])
    with pytest.raises(ConfigError, match="QuerYD is not a challenge dataset"):
        release_key("QuerYD", True)
    text = {name: RELEASES[challenge_key(name)].text_files(feat).paths for name, feat in
            [("MSRVTT", "openai"), ("LSMDC", "w2v"), ("MSVD", "openai"), ("ActivityNet", "openai")]}
    assert text == {"MSRVTT": ("aggregated_text_feats/openai.pickle",),
                    "LSMDC": ("aggregated_text_feats/w2v.pickle",),
                    "MSVD": ("aggregated_text_feats/openai.pkl",),
                    "ActivityNet": ("aggregated_text_feats/openai.pkl",)}
    assert RELEASES[challenge_key("ActivityNet")].raw_captions == "raw-captions-train-val_1.pkl"
    assert RELEASES[challenge_key("DiDeMo")].fused_captions and RELEASES[challenge_key("DiDeMo")].strip_list_suffix


def test_sync_experts_knows_the_challenge_releases(tmp_path, monkeypatch):
    import sync_experts

    assert sync_experts.archive_name("activity-net", "challenge-release-2") == \
        "challenge-release-2-activity-net-experts.tar.gz"
    monkeypatch.setattr(sys, "argv", ["sync_experts.py", "--release", "challenge-release-1"])
    assert sync_experts.parse_args(None).dataset == ["MSRVTT", "MSVD", "DiDeMo", "activity-net", "YouCook2"]
    folder, root_feat_folder, paths = sync_experts.needed_files(CONFIGS / "msrvtt" / "baseline-public-test.json",
                                                                tmp_path)
    second = tmp_path / "MSRVTT" / "challenge-release-2"
    assert (folder, root_feat_folder) == ("MSRVTT", "challenge-release-1")
    assert {p for p in paths if p.parent.parent == second or p.parent == second} == {
        second / "public_server_test.txt", second / "raw-captions.pkl", second / "aggregated_text_feats/openai.pickle"}
    first = tmp_path / "MSRVTT" / "challenge-release-1"
    assert first / "aggregated_imagenet_25fps_256px_stride1_offset0/senet154-avg.pickle" in paths
    assert first / "public_server_val.txt" in paths


# ----------------------------------------------------------------------------- predictions

def test_top_k_rows_are_the_valid_queries_best_first_ties_lower_index_first():
    rng = np.random.default_rng(0)
    masks = np.ones((7, 3))
    masks[[1, 4], 2] = 0
    sims = rng.standard_normal((21, 7)).astype(np.float32)
    sims[0] = [0.5, 0.9, 0.5, 0.9, 0.1, 0.5, 0.0]  # ties
    ranks = top_k_predictions(sims, masks, k=5, chunk=4)
    valid = np.flatnonzero(masks.reshape(-1))
    assert ranks.shape == (19, 5)
    assert ranks[0].tolist() == [1, 3, 0, 2, 5]
    for row, query in zip(ranks[1:], valid[1:]):
        assert row.tolist() == np.argsort(-sims[query])[:5].tolist()
    with pytest.raises(ValueError, match="do not match query masks"):
        top_k_predictions(sims[:20], masks)


def test_predictions_csv_format(tmp_path):
    ranks = np.array([[3, 0, 1], [2, 1, 0]])
    path = write_predictions(tmp_path / predictions_name("MSRVTT", "public_server_val"), ranks)
    assert path.name == "MSRVTT-public_server_val-predictions.csv"
    assert path.read_text() == "3,0,1\n2,1,0\n"
    assert np.loadtxt(path, dtype=int, delimiter=",").tolist() == ranks.tolist()


def _csv(path: Path, rows: int, videos: int, seed: int = 0) -> Path:
    ranks = np.stack([np.random.default_rng(seed + r).permutation(videos)[:10] for r in range(rows)])
    return write_predictions(path, ranks)


def test_pack_checks_and_zips(tmp_path):
    count = cli.PhaseCount(videos=12, captions_per_video=2, invalid=1)
    good = _csv(tmp_path / "MSRVTT-public_server_test-predictions.csv", count.rows, 12)
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps({"MSRVTT": {"public_server_test": vars(count)}}))
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps({"MSRVTT": {"public_server_test": str(good)}}))
    dest = tmp_path / "submissions"
    zipped, problems = cli.pack(predictions, "public_server_test", dest, counts)
    assert problems == []
    assert re.fullmatch(r"public_server_test-[0-9a-f]{10}-\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.zip", zipped.name)
    with zipfile.ZipFile(zipped) as archive:
        assert archive.namelist() == [good.name]
        assert archive.read(good.name) == good.read_bytes()
    again, _ = cli.pack(predictions, "public_server_test", dest, counts)
    assert again == zipped and len(list(dest.iterdir())) == 1  # kept without --refresh
    _, problems = cli.pack(predictions, "public_server_test", tmp_path / "other")  # the real phase's counts
    assert problems == [f"{good}: 23 rows, expected 59794 (2990 videos x 20 captions - 6 invalid queries)"]
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("corrupt, message", [
    (lambda lines: lines[:-1], r"22 rows, expected 23 \(12 videos x 2 captions - 1 invalid queries\)$"),
    (lambda lines: lines[:3] + ["1,2,3,4,5,6,7,8,9,1.5"] + lines[4:], r"line 4, column 10: '1.5' is not an integer"),
    (lambda lines: lines[:5] + ["0,1,2,3,4,5,6,7,8,12"] + lines[6:], r"line 6, column 10: video index 12 is out of"
                                                                     r" range, expected 0 to 11$"),
])
def test_check_predictions_refuses_with_one_line(tmp_path, corrupt, message):
    count = cli.PhaseCount(videos=12, captions_per_video=2, invalid=1)
    path = _csv(tmp_path / "p.csv", count.rows, 12)
    path.write_text("\n".join(corrupt(path.read_text().splitlines())) + "\n")
    problems = cli.check_predictions(path, count)
    assert len(problems) == 1 and re.search(message, problems[0]), problems


def test_local_recalls_equal_t2v_metrics():
    rng = np.random.default_rng(1)
    videos, per_video = 40, 3
    masks = np.ones((videos, per_video))
    masks[rng.random((videos, per_video)) < 0.2] = 0
    masks[:, 0] = 1
    truth = np.repeat(np.eye(videos, dtype=np.float32), per_video, axis=0)
    sims = (rng.standard_normal((videos * per_video, videos)) + 1.5 * truth).astype(np.float32)
    expected = t2v_metrics(sims, query_masks=masks)
    got = cli.recall_metrics(top_k_predictions(sims, masks), masks)
    for key in ("R1", "R5", "R10", "geometric_mean_R1-R5-R10"):
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key
    assert 10 < got["R1"] < 95  # neither trivial nor perfect


# ----------------------------------------------------------------------------- generated release

def _tiny_config(folder: str, data_dir: Path, split: str):
    config = with_eval_settings(load_config(CONFIGS / folder / "baseline-public-test.json"))
    apply_overrides(config, [f"data_loader.args.data_dir={data_dir}", f"data_loader.args.split_name={split}"])
    return config


def _write_release(folder: str, data_dir: Path) -> object:
    config = load_config(CONFIGS / folder / "baseline-public-test.json")
    dims = model_inputs(config.data)["feat_dims"]
    text_feat = config["experts"]["text_feat"]
    return write_challenge_release(data_dir, config["data_loader"]["args"]["dataset_name"],
                                   config["data_loader"]["args"]["feat_aggregation"],
                                   {e: dims[e] for e in used_experts(config["experts"])},
                                   {text_feat: TEXT_DIMS[text_feat]}, TINY)


@pytest.mark.slow
@pytest.mark.parametrize("folder", FOLDERS)
def test_generated_release_converts_and_evaluates(tmp_path, folder):
    """Each dataset's challenge config converts the generated two-release layout and an untrained
    model's test run writes a CSV of one row per valid query."""
    data_dir = tmp_path / folder
    written = _write_release(folder, data_dir)
    release_1, release_2 = data_dir / "challenge-release-1", data_dir / "challenge-release-2"
    assert (release_1 / "public_server_val.txt").is_file() and not (release_1 / "public_server_test.txt").exists()
    assert (release_2 / "public_server_test.txt").is_file() == (folder != "lsmdc")
    assert not list(release_2.rglob("*senet154*"))  # visual features only in release-1
    first_line = (release_1 / "public_server_val.txt").read_text().splitlines()[0]
    assert first_line.endswith(".mp4") == (folder == "didemo")  # DiDeMo lists name files
    phases = ["public_server_val"] + (["public_server_test"] if folder != "lsmdc" else [])
    torch.manual_seed(0)
    for phase in phases:
        config = _tiny_config(folder, data_dir, phase)
        prepare_data(config, training=False)
        data = build_data(config, training=False)
        dataset = config["data_loader"]["args"]["dataset_name"]
        assert data.store.path == data_dir / "challenge-store"
        assert [data.store.video_ids[int(r)] for r in data.store.splits[phase]] == written.lists[phase]
        per_video = config["data_loader"]["args"]["num_test_captions"]
        videos, invalid = written.phase_count(phase, per_video, RELEASES[dataset].fused_captions)
        result = evaluate(build_model(config), data, torch.device("cpu"), progress=False,
                          with_metrics=False)
        path = write_submission(tmp_path / "log", dataset, phase, result.sims, result.query_masks)
        assert path.name == f"{dataset}-{phase}-predictions.csv"
        count = cli.PhaseCount(videos, per_video, invalid)
        assert cli.check_predictions(path, count) == []
        if folder == "msrvtt" and phase == "public_server_test":
            assert invalid > 0  # 19-caption videos: padded queries left out
        if folder == "msvd":
            assert invalid > 0 and per_video == 81


DOC = REPO / "docs" / "challenge.md"


def run_metrics_path(log_csv: Path) -> Path:
    """The metrics.json of the run whose log folder (<save_dir>/log/<experiment>/<run>/) holds ``log_csv``."""
    run = log_csv.parent
    return run.parents[2] / "models" / run.parent.name / run.name / "metrics.json"


def _generated_walkthrough() -> str:
    """The bash block of docs/challenge.md's 'Try it on a generated release' section."""
    section = DOC.read_text().split("## Try it on a generated release", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_documented_sequence_on_a_generated_msrvtt_release(tmp_path):
    """The walkthrough of docs/challenge.md, run as written (in a temporary folder): one epoch of
    the MSR-VTT baseline, the test phase's CSV (videos x 20 - missing rows), packed; the packer
    refuses broken copies with one line each; the local score equals the run's t2v metrics.
    (One epoch on 48 videos checks the sequence, not learning: its recalls are near chance.)"""
    script = _generated_walkthrough().replace("/tmp/challenge", str(tmp_path))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads((tmp_path / "counts.json").read_text())["MSRVTT"]
    test_count = cli.PhaseCount(**counts["public_server_test"])
    assert test_count.videos == DEFAULT_SIZES.public_server_test and test_count.invalid > 0
    predictions = json.loads((tmp_path / "predictions.json").read_text())["MSRVTT"]
    test_csv = Path(predictions["public_server_test"])
    ranks = np.loadtxt(test_csv, dtype=int, delimiter=",")
    assert ranks.shape == (test_count.videos * 20 - test_count.invalid, 10)
    assert ranks.min() >= 0 and ranks.max() < test_count.videos
    assert len(list((tmp_path / "submissions").glob("public_server_test-*.zip"))) == 1

    lines = test_csv.read_text().splitlines()
    broken = {"rows": lines[:-2], "type": ["0,1,2,3,4,5,6,7,8,x"] + lines[1:],
              "range": lines[:-1] + [f"0,1,2,3,4,5,6,7,8,{test_count.videos}"]}
    for name, content in broken.items():
        bad = tmp_path / name / test_csv.name
        bad.parent.mkdir()
        bad.write_text("\n".join(content) + "\n")
        (tmp_path / f"{name}.json").write_text(json.dumps({"MSRVTT": {"public_server_test": str(bad)}}))
        refused = subprocess.run([sys.executable, "misc/challenge.py", "pack", "--phase", "public_server_test",
                                  str(tmp_path / f"{name}.json"), "--counts", str(tmp_path / "counts.json"),
                                  "--dest_dir", str(tmp_path / f"{name}-zips")],
                                 cwd=REPO, capture_output=True, text=True)
        assert refused.returncode == 2
        assert len(refused.stderr.strip().splitlines()) == 1 and str(bad) in refused.stderr, refused.stderr
        assert not (tmp_path / f"{name}-zips").exists()

    val_csv = Path(predictions["public_server_val"])
    metrics = json.loads(run_metrics_path(val_csv).read_text())["t2v_metrics"]
    score_line = done.stdout.strip().splitlines()[-1]
    scored = dict(re.findall(r"(R1|R5|R10|geom) ([0-9.]+)", score_line))
    for key in ("R1", "R5", "R10"):
        assert float(scored[key]) == pytest.approx(metrics[key], abs=0.005), score_line



def test_run_commands_are_the_original_lines():
    train = cli.run_command("train", "activity-net", [], "0")
    assert train[1:] == ["-u", "train.py", "--config", "configs/cvpr2020-challenge/activity-net/"
                         "baseline-public-trainval.json", "--device", "0"]
    test = cli.run_command("test", "MSRVTT", ["trainer.epochs=1"], None, Path("best/trained_model.pth"))
    assert test[1:] == ["-u", "test.py", "--config", "configs/cvpr2020-challenge/msrvtt/baseline-public-test.json",
                        "--eval_from_training_config", "--resume", "best/trained_model.pth",
                        "--set", "trainer.epochs=1"]


def test_baselines_collect_parse_and_pack(tmp_path, monkeypatch):
    """run_baselines with each run replaced by one printing the two parsed lines."""
    count = cli.PhaseCount(videos=12, captions_per_video=1, invalid=0)
    csvs = {(d, p): _csv(tmp_path / d / f"{d}-{p}-predictions.csv", count.rows, 12)
            for d in ("MSVD", "DiDeMo") for p in ("public_server_val", "public_server_test")}
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps({d: {p: vars(count) for p in ("public_server_val", "public_server_test")}
                                  for d in ("MSVD", "DiDeMo")}))

    def fake(kind, dataset, overrides, device, resume=None):
        phase = "public_server_val" if kind == "train" else "public_server_test"
        lines = [f"{cli.SAVED_LINE} {csvs[dataset, phase]}", "noise"]
        lines += [f"{cli.BEST_LINE} {tmp_path / dataset / 'trained_model.pth'}"] if kind == "train" else []
        return [sys.executable, "-c", "print(" + repr("\n".join(lines)) + ")"]

    monkeypatch.setattr(cli, "run_command", fake)
    zips = cli.run_baselines(["MSVD", "DiDeMo"], tmp_path / "out", [], None, counts)
    assert [z.name.split("-")[0] for z in zips] == ["public_server_val", "public_server_test"]
    ckpts = json.loads(next((tmp_path / "out").glob("ckpts-baselines-*-public_server_val-MSVD-DiDeMo.json")).read_text())
    assert ckpts == {"MSVD": str(tmp_path / "MSVD" / "trained_model.pth"),
                     "DiDeMo": str(tmp_path / "DiDeMo" / "trained_model.pth")}
    tests = json.loads(next((tmp_path / "out").glob("predictions-baselines-*-public_server_test-*.json")).read_text())
    assert tests == {d: {"public_server_test": str(csvs[d, "public_server_test"])} for d in ("MSVD", "DiDeMo")}
    with zipfile.ZipFile(zips[1]) as archive:
        assert sorted(archive.namelist()) == ["DiDeMo-public_server_test-predictions.csv",
                                              "MSVD-public_server_test-predictions.csv"]


@pytest.mark.slow
@pytest.mark.parametrize("folder", FOLDERS)
def test_baseline_configs_dry_run(folder, monkeypatch, capsys):
    from conftest import load_script

    train = load_script("train")
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(CONFIGS / folder / "baseline-public-test.json"),
                                      "--dry_run"])
    assert train.main() == 0
    assert re.search(r"Trainable parameters: [\d,]+", capsys.readouterr().out)
