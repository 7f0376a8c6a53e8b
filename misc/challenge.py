"""CVPR 2020 Video Pentathlon: check, pack and score submissions, run the baselines.

Subcommands (each has its own --help):

  pack       validate every predictions CSV of a phase named in a predictions JSON
             ({"MSRVTT": {"public_server_val": "<csv>", ...}, "ActivityNet": {...}}) against the
             expected shape (videos x captions per video - invalid queries, 10), integer type and
             index range, then zip them flat into
             <dest_dir>/<phase>-<sha256 of the sorted CSV paths, 10 hex>-<timestamp>.zip; every
             problem is one line and nothing is written when there is one
  score      R@1, R@5, R@10 and their geometric mean of a predictions CSV, from the phase's list
             and query masks (the ground truth of row r is the video of the r-th valid query);
             several datasets also get a mean of their geometric means, labelled unofficial
  baselines  train the trainval baselines one after another, test the test configs with their
             best checkpoints, write the ckpts/predictions JSONs and pack both phases
  generate   write a small synthetic challenge release of one dataset in the original layout,
             and its expected counts (for pack --counts)

Examples:
  python3 misc/challenge.py pack --phase public_server_val predictions.json
  python3 misc/challenge.py score --config configs/cvpr2020-challenge/msrvtt/baseline-public-trainval.json \\
      --csv data/saved/log/msrvtt-baseline-public-trainval/<run>/MSRVTT-public_server_val-predictions.csv
  python3 misc/challenge.py baselines --datasets MSRVTT MSVD DiDeMo activity-net YouCook2
  python3 misc/challenge.py generate --dataset MSRVTT --out /tmp/challenge/MSRVTT --counts /tmp/challenge/counts.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import repo_root  # noqa: F401  (the repository root on sys.path: misc/repo_root.py)

# isort: split
from data_loader.generated.challenge import SplitSizes, write_challenge_release
from data_loader.released.datasets import PUBLIC_SPLITS, RELEASES
from model.dims import TEXT_DIMS, model_inputs
from model.metric import GMEAN_KEY
from trainer.build import build_data, prepare_data
from trainer.challenge import SAVED_LINE, TOP_K
from utils.atomic import atomic_path, write_text_atomic
from utils.cli import run_cli
from utils.config.load import apply_overrides, load_config, with_eval_settings
from utils.config.options import used_experts
from utils.errors import UserError

CONFIG_DIR = Path("configs/cvpr2020-challenge")
DEST_DIR = Path("data/cvpr2020-challenge-submissions")
BEST_LINE = "The best performing ckpt can be found at"
DEFAULT_DATASETS = ("MSRVTT", "MSVD", "DiDeMo", "activity-net", "YouCook2")
EXIT_BAD_INPUT = 2


class SubmissionError(UserError):
    """A predictions file or JSON that cannot be packed or scored."""


@dataclass(frozen=True)
class PhaseCount:
    """The shape a phase's CSV must have: ``videos * captions_per_video - invalid`` rows of
    indices in ``[0, videos)``."""

    videos: int
    captions_per_video: int
    invalid: int

    @property
    def rows(self) -> int:
        return self.videos * self.captions_per_video - self.invalid


# As the original's prepare_submission.py: dataset -> phase -> (videos, captions per video, invalid queries)
EXPECTED: dict[str, dict[str, PhaseCount]] = {
    "MSRVTT": {"public_server_val": PhaseCount(497, 20, 0), "public_server_test": PhaseCount(2990, 20, 6)},
    "MSVD": {"public_server_val": PhaseCount(100, 81, 3810), "public_server_test": PhaseCount(670, 81, 26507)},
    "DiDeMo": {"public_server_val": PhaseCount(1065, 1, 0), "public_server_test": PhaseCount(1004, 1, 0)},
    "ActivityNet": {"public_server_val": PhaseCount(1001, 1, 0), "public_server_test": PhaseCount(4917, 1, 0)},
    "YouCook2": {"public_server_val": PhaseCount(969, 1, 0), "public_server_test": PhaseCount(3310, 1, 0)},
    "LSMDC": {"public_server_val": PhaseCount(7408, 1, 0), "public_server_test": PhaseCount(1000, 1, 0)},
}


def json_key(dataset: str) -> str:
    """The predictions-JSON key of a dataset as --datasets names it (``activity-net`` -> ``ActivityNet``)."""
    return {"activity-net": "ActivityNet"}.get(dataset, dataset)


def config_folder(dataset: str) -> str:
    """The configs/cvpr2020-challenge/ folder of a dataset (``ActivityNet`` -> ``activity-net``)."""
    return {"ActivityNet": "activity-net"}.get(dataset, dataset).lower()


# ----------------------------------------------------------------------------- validation

def read_predictions(path: Path) -> tuple[np.ndarray | None, list[str]]:
    """The integer matrix of a predictions CSV, or None and the problems found (one line each:
    the first non-integer value, the first row of another width)."""
    if not path.is_file():
        return None, [f"{path}: predictions file not found"]
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split(",")
        for column, field in enumerate(fields, start=1):
            try:
                int(field.strip())
            except ValueError:
                return None, [f"{path}: line {number}, column {column}: {field.strip()!r} is not an integer "
                              "video index"]
        rows.append([int(field) for field in fields])
    widths = {len(row) for row in rows}
    if len(widths) > 1 or widths and widths != {TOP_K}:
        bad = next(i for i, row in enumerate(rows) if len(row) != TOP_K)
        return None, [f"{path}: line {bad + 1} has {len(rows[bad])} values, expected {TOP_K} video indices"]
    return np.array(rows, dtype=np.int64).reshape(len(rows), TOP_K), []


def check_predictions(path: Path, count: PhaseCount) -> list[str]:
    """Every problem of the CSV at ``path`` against ``count``, one line each (empty when valid)."""
    ranks, problems = read_predictions(path)
    if ranks is None:
        return problems
    if len(ranks) != count.rows:
        problems.append(f"{path}: {len(ranks)} rows, expected {count.rows} ({count.videos} videos x "
                        f"{count.captions_per_video} captions - {count.invalid} invalid queries)")
    bad = np.argwhere((ranks < 0) | (ranks >= count.videos))
    if len(bad):
        row, column = bad[0]
        problems.append(f"{path}: line {row + 1}, column {column + 1}: video index {ranks[row, column]} is out of "
                        f"range, expected 0 to {count.videos - 1}")
    return problems


def read_json_file(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SubmissionError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise SubmissionError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def expected_counts(counts_path: Path | None) -> dict[str, dict[str, PhaseCount]]:
    """The original's table, with the entries of ``counts_path`` (same layout, each a
    ``{"videos", "captions_per_video", "invalid"}`` object) in their place."""
    table = {dataset: dict(phases) for dataset, phases in EXPECTED.items()}
    if counts_path is None:
        return table
    for dataset, phases in read_json_file(counts_path, "counts file").items():
        for phase, entry in phases.items():
            try:
                table.setdefault(dataset, {})[phase] = PhaseCount(**entry)
            except TypeError:
                raise SubmissionError(f"{counts_path}: {dataset}.{phase}: expected an object with videos, "
                                      "captions_per_video and invalid") from None
    return table


def phase_files(predictions: dict, phase: str, json_path: Path) -> dict[str, Path]:
    """Dataset key -> CSV of ``phase`` (relative paths: to the working folder, else to the JSON's)."""
    files = {}
    for dataset, phases in predictions.items():
        if not isinstance(phases, dict):
            raise SubmissionError(f"{json_path}: {dataset}: expected an object phase -> CSV path")
        if phase in phases:
            path = Path(phases[phase])
            files[dataset] = path if path.is_absolute() or path.exists() else json_path.parent / path
    if not files:
        raise SubmissionError(f"{json_path}: no dataset has a {phase} predictions file")
    return files


def pack(json_path: Path, phase: str, dest_dir: Path, counts_path: Path | None = None, validate: bool = True,
         refresh: bool = False) -> tuple[Path | None, list[str]]:
    """Validate and zip the CSVs of ``phase``; returns (zip or None, problems). Nothing is written
    when there is a problem; an existing zip of the same CSVs is kept unless ``refresh``."""
    files = phase_files(read_json_file(json_path, "predictions JSON"), phase, json_path)
    if validate:
        table = expected_counts(counts_path)
        problems = []
        for dataset, path in files.items():
            count = table.get(dataset, {}).get(phase)
            if count is None:
                problems.append(f"{json_path}: {dataset}: no expected counts for {phase}; expected one of: "
                                f"{', '.join(table)}")
            else:
                problems += check_predictions(path, count)
        if problems:
            return None, problems
    digest = hashlib.sha256("".join(sorted(str(p) for p in files.values())).encode()).hexdigest()[:10]
    existing = sorted(Path(dest_dir).glob(f"{phase}-{digest}-*.zip"))
    if existing and not refresh:
        print(f"{existing[-1]} holds these predictions already (--refresh to write it again)")
        return existing[-1], []
    dest = Path(dest_dir) / f"{phase}-{digest}-{time.strftime('%Y-%m-%d_%H-%M-%S')}.zip"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as partial, zipfile.ZipFile(partial, "w") as archive:
        for path in files.values():
            archive.write(path, arcname=path.name)
    return dest, []


# ----------------------------------------------------------------------------- scoring

def query_layout(config_path: Path, overrides: list[str], split: str | None) -> tuple[str, np.ndarray]:
    """(dataset name, query masks [N, Q]) of the config's test run (with ``split`` as its
    split_name when given), read from the dataset's challenge store (converted if needed)."""
    config = with_eval_settings(load_config(config_path, overrides))
    if split is not None:
        apply_overrides(config, [f"data_loader.args.split_name={split}"])
    prepare_data(config, training=False)
    data = build_data(config, training=False)
    return data.dataset_name, data.eval_set().query_masks.cpu().numpy()


def recall_metrics(ranks: np.ndarray, query_masks: np.ndarray) -> dict[str, float]:
    """R1, R5, R10 (percent) and their geometric mean of top-10 predictions [K, 10] whose row r
    is the r-th valid query of masks [N, Q] (video-major: its ground truth is its video)."""
    truth = np.flatnonzero(query_masks.reshape(-1) != 0) // query_masks.shape[1]
    hits = ranks == truth[:, None]
    position = np.where(hits.any(axis=1), hits.argmax(axis=1), TOP_K)
    metrics = {f"R{k}": float(100 * np.mean(position < k)) for k in (1, 5, 10)}
    recalls = np.array([metrics["R1"], metrics["R5"], metrics["R10"]])
    metrics[GMEAN_KEY] = float(np.exp(np.log(recalls).mean())) if recalls.min() > 0 else 0.0
    return metrics


def split_of(csv: Path) -> str | None:
    """The split a predictions file is named for (``MSRVTT-public_server_val-predictions.csv``)."""
    parts = csv.name.removesuffix("-predictions.csv").split("-")
    return parts[-1] if len(parts) >= 2 and csv.name.endswith("-predictions.csv") else None


def score(config_path: Path, csv: Path, overrides: list[str], split: str | None = None) -> tuple[str, dict]:
    """(dataset, metrics) of the predictions ``csv`` of the config's test run (see recall_metrics)."""
    dataset, masks = query_layout(config_path, overrides, split or split_of(csv))
    count = PhaseCount(masks.shape[0], masks.shape[1], int(masks.size - masks.sum()))
    problems = check_predictions(csv, count)
    if problems:
        raise SubmissionError(problems[0])
    ranks, _ = read_predictions(csv)
    return dataset, recall_metrics(ranks, masks)


# ----------------------------------------------------------------------------- baselines

def run_command(kind: str, dataset: str, overrides: list[str], device: str | None, resume: Path | None = None
                ) -> list[str]:
    """The command line of one baseline run: ``train`` (the trainval config) or ``test`` (the test
    config with the best checkpoint ``resume``). A launcher (e.g. Slurm) would submit this line."""
    folder = CONFIG_DIR / config_folder(dataset)
    if kind == "train":
        command = [sys.executable, "-u", "train.py", "--config", str(folder / "baseline-public-trainval.json")]
    else:
        command = [sys.executable, "-u", "test.py", "--config", str(folder / "baseline-public-test.json"),
                   "--eval_from_training_config", "--resume", str(resume)]
    command += ["--device", device] if device else []
    return command + (["--set", *overrides] if overrides else [])


def run_and_parse(command: list[str], prefixes: list[str]) -> dict[str, str]:
    """Run ``command`` with its output streamed through; the path ending the one line that starts
    with each of ``prefixes``. SubmissionError when it fails or a line is not found exactly once."""
    print("running:", " ".join(command), flush=True)
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1) as process:
        for line in process.stdout:
            sys.stdout.write(line)
            lines.append(line.rstrip("\n"))
    if process.returncode != 0:
        raise SubmissionError(f"{' '.join(command)}: exited with status {process.returncode}")
    found = {}
    for prefix in prefixes:
        matches = [line for line in lines if line.startswith(prefix)]
        if len(matches) != 1:
            raise SubmissionError(f"{' '.join(command)}: expected one line starting {prefix!r}, found {len(matches)}")
        found[prefix] = matches[0][len(prefix):].strip()
    return found


def write_json(path: Path, data: dict) -> Path:
    print(f"Writing {path}")
    return write_text_atomic(path, json.dumps(data, indent=4, sort_keys=True) + "\n")


def run_baselines(datasets: list[str], dest_dir: Path, overrides: list[str], device: str | None,
                  counts_path: Path | None) -> list[Path]:
    """Train, test and pack the baselines of ``datasets``; returns the two zips."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    ckpts, predictions = {}, {phase: {} for phase in PUBLIC_SPLITS}
    for dataset in datasets:
        found = run_and_parse(run_command("train", dataset, overrides, device), [SAVED_LINE, BEST_LINE])
        ckpts[json_key(dataset)] = found[BEST_LINE]
        predictions["public_server_val"][json_key(dataset)] = {"public_server_val": found[SAVED_LINE]}
    write_json(dest_dir / f"ckpts-baselines-{stamp}-public_server_val-{'-'.join(datasets)}.json", ckpts)
    for dataset in datasets:
        found = run_and_parse(run_command("test", dataset, overrides, device, Path(ckpts[json_key(dataset)])),
                              [SAVED_LINE])
        predictions["public_server_test"][json_key(dataset)] = {"public_server_test": found[SAVED_LINE]}
    zips = []
    for phase, entries in predictions.items():
        path = write_json(dest_dir / f"predictions-baselines-{stamp}-{phase}-{'-'.join(datasets)}.json", entries)
        zipped, problems = pack(path, phase, dest_dir, counts_path)
        if problems:
            raise SubmissionError(problems[0])
        print(f"Packed {phase} submission: {zipped}")
        zips.append(zipped)
    return zips


# ----------------------------------------------------------------------------- synthetic release

def generate(dataset_folder: str, out: Path, counts_path: Path | None, sizes: SplitSizes, seed: int) -> None:
    """Write a synthetic challenge release of the dataset whose configs are in ``dataset_folder``
    for the experts of its test config, and merge its expected counts into ``counts_path``."""
    config = load_config(CONFIG_DIR / dataset_folder / "baseline-public-test.json")
    args = config["data_loader"]["args"]
    experts = used_experts(config["experts"])
    dims = model_inputs(config.data)["feat_dims"]
    text_feat = config["experts"]["text_feat"]
    written = write_challenge_release(out, args["dataset_name"], args["feat_aggregation"],
                                      {e: dims[e] for e in experts}, {text_feat: TEXT_DIMS[text_feat]}, sizes, seed)
    print(f"wrote {out}: " + ", ".join(f"{stem} {len(ids)} videos" for stem, ids in written.lists.items()))
    if counts_path is None:
        return
    table = read_json_file(counts_path, "counts file") if counts_path.exists() else {}
    per_video = with_eval_settings(config)["data_loader"]["args"].get("num_test_captions", 20)
    fused = RELEASES[args["dataset_name"]].fused_captions
    for phase in [p for p in PUBLIC_SPLITS if p in written.lists]:
        videos, invalid = written.phase_count(phase, per_video, fused)
        table.setdefault(args["dataset_name"], {})[phase] = {"videos": videos, "captions_per_video": per_video,
                                                              "invalid": invalid}
    write_json(counts_path, table)


# ----------------------------------------------------------------------------- command line

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack", help="validate the CSVs of a phase and zip them")
    p.add_argument("predictions", type=Path, help="predictions JSON: {dataset: {phase: csv path}}")
    p.add_argument("--phase", choices=PUBLIC_SPLITS, default="public_server_val", help="(default: %(default)s)")
    p.add_argument("--dest_dir", type=Path, default=DEST_DIR, help="where the zip goes (default: %(default)s)")
    p.add_argument("--counts", type=Path, help="JSON of expected counts replacing the original's table for the "
                                               "datasets it names (written by the generate subcommand)")
    p.add_argument("--validate", type=int, choices=(0, 1), default=1, help="check the CSVs first (default: 1)")
    p.add_argument("--refresh", action="store_true", help="write a new zip even if one of these CSVs exists")
    p = commands.add_parser("score", help="R@1/5/10 of predictions CSVs from the split's query masks")
    p.add_argument("--config", type=Path, action="append", required=True,
                   help="the challenge config of the dataset (repeat with --csv for several datasets)")
    p.add_argument("--csv", type=Path, action="append", required=True, help="its predictions CSV")
    p.add_argument("--split", help="split the CSVs rank (default: from the file name, <Dataset>-<split>-...)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                   help="config overrides for every config, e.g. data_loader.args.data_dir=/data/MSRVTT")
    p = commands.add_parser("baselines", help="train, test and pack the baselines, one after another")
    p.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS), help="(default: %(default)s)")
    p.add_argument("--dest_dir", type=Path, default=DEST_DIR, help="(default: %(default)s)")
    p.add_argument("--device", help="passed on to train.py and test.py")
    p.add_argument("--train_single_epoch", action="store_true", help="train one epoch per dataset")
    p.add_argument("--counts", type=Path, help="expected counts for packing (see pack --counts)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                   help="config overrides for every run (e.g. data_loader.args.data_dir=... is per dataset: "
                        "use one dataset per call then)")
    p = commands.add_parser("generate", help="write a synthetic challenge release of one dataset")
    p.add_argument("--dataset", required=True, help="config folder: msrvtt, msvd, didemo, activity-net, youcook2, "
                                                    "lsmdc (or a dataset name)")
    p.add_argument("--out", type=Path, required=True, help="the dataset folder (data_loader.args.data_dir)")
    p.add_argument("--counts", type=Path, help="JSON of expected counts to add this dataset's phases to")
    p.add_argument("--seed", type=int, default=0)
    for name, default in vars(SplitSizes()).items():
        p.add_argument(f"--{name}", type=int, default=default, help=f"videos in {name} (default: %(default)s)")
    args = parser.parse_args()
    if args.command == "score" and len(args.config) != len(args.csv):
        parser.error("score: give one --csv per --config")
    return args


def main() -> int:
    args = parse_args()
    if args.command == "pack":
        zipped, problems = pack(args.predictions, args.phase, args.dest_dir, args.counts, bool(args.validate),
                                args.refresh)
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        if problems:
            return EXIT_BAD_INPUT
        print(f"Submission: {zipped}")
    elif args.command == "score":
        gmeans = []
        for config, csv in zip(args.config, args.csv):
            dataset, metrics = score(config, csv, args.set, args.split)
            gmeans.append(metrics[GMEAN_KEY])
            print(f"{dataset}: " + "  ".join(f"{k.replace(GMEAN_KEY, 'geom')} {v:.2f}" for k, v in metrics.items()))
        if len(gmeans) > 1:
            print(f"mean of the geometric means over {len(gmeans)} datasets: {np.mean(gmeans):.2f} "
                  "(unofficial: the organisers' rule for combining datasets is not published)")
    elif args.command == "baselines":
        overrides = args.set + (["trainer.epochs=1"] if args.train_single_epoch else [])
        run_baselines(args.datasets, args.dest_dir, overrides, args.device, args.counts)
    else:
        sizes = SplitSizes(**{name: getattr(args, name) for name in vars(SplitSizes())})
        generate(config_folder(args.dataset), args.out, args.counts, sizes, args.seed)
    return 0


if __name__ == "__main__":
    run_cli(main)
