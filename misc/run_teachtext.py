"""The TeachText recipe on the embedded Synthetic dataset, from scratch, in one command.

1. Train one teacher per text feature (configs/synthetic/teachers/*.json, seed 0) and export
   each into the dataset's store as ``teachers/<config name>`` (misc/export_teacher.py).
2. Train CE, CE+, TeachText-CE, TeachText-CE+ and TeachText-CE+ with denoising for every seed.
3. Print the mean and standard deviation over seeds of their test metrics.

What already exists is skipped: a teacher in the store made for the current dataset, a finished
run (its metrics.json written) whose saved config is the one this command would train. The
overrides of ``--set`` apply to every run, e.g. ``trainer.save_dir=/tmp/teachtext``.

  python3 misc/run_teachtext.py
  python3 misc/run_teachtext.py --seeds 0,1,2 --set trainer.save_dir=/tmp/teachtext
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from repo_root import REPO  # the repository root, put on sys.path (misc/repo_root.py)

# isort: split
from data_loader.store.feature_store import STORE_DIR
from data_loader.teachtext.teachers import teacher_is_current
from report.run_folder import experiment_folder, experiment_name
from trainer.build import prepare_data, trainer_options
from utils.cli import run_cli
from utils.config.load import load_config
from utils.config.resolved import Config

CONFIGS = Path("configs/synthetic")
TEACHERS = CONFIGS / "teachers"
STUDENTS = {
    "CE": CONFIGS / "train-ce-w2v.json",
    "CE+": CONFIGS / "train-ce-plus.json",
    "TeachText-CE": CONFIGS / "train-teachtext-ce.json",
    "TeachText-CE+": CONFIGS / "train-teachtext-ce-plus.json",
    "TeachText-CE+ denoising": CONFIGS / "train-teachtext-ce-plus-denoising.json",
}
COLUMNS = {"t2v R1": ("t2v_metrics", "R1"), "t2v R5": ("t2v_metrics", "R5"), "t2v R10": ("t2v_metrics", "R10"),
           "t2v MedR": ("t2v_metrics", "MedR"), "t2v geom": ("t2v_metrics", "geometric_mean_R1-R5-R10"),
           "v2t geom": ("v2t_metrics", "geometric_mean_R1-R5-R10")}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the student runs")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                        help="overrides applied to every run (teachers and students)")
    return parser.parse_args()


def finished_run(config: Config, path: Path) -> Path | None:
    """The models folder of a finished run of exactly ``config`` (loaded from ``path``), if any."""
    runs = experiment_folder(Path(trainer_options(config).save_dir), experiment_name(path))
    wanted = json.loads(json.dumps(config.data))
    for run in sorted(runs.glob("*/metrics.json"), reverse=True):
        saved = run.parent / "config.json"
        if saved.is_file() and json.loads(saved.read_text()) == wanted:
            return run.parent
    return None


def call(*command: str) -> None:
    """Run a command line of this repository; a failure stops the recipe with its exit code."""
    print("$", " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, *command], cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(done.returncode)


def trained(path: Path, overrides: list[str]) -> Path:
    """A finished run of config ``path`` with ``overrides``, training it when there is none."""
    config = load_config(path, overrides)
    run = finished_run(config, path)
    if run is None:
        call("train.py", "--config", str(path), "--set", *overrides)
        run = finished_run(config, path)
    assert run is not None, f"train.py left no finished run of {path}"
    return run


def ensure_teacher(path: Path, overrides: list[str]) -> None:
    """Teacher ``teachers/<config name>`` in the store: trained with seed 0 and exported unless the
    store already holds one made for the current dataset."""
    config = load_config(path, [*overrides, "seed=0"])
    prepare_data(config)
    store_dir = Path(config["data_loader"]["args"]["data_dir"]) / STORE_DIR
    name = f"teachers/{path.stem}"
    if teacher_is_current(store_dir, name):
        print(f"teacher {name}: already in {store_dir}", file=sys.stderr)
        return
    run = trained(path, [*overrides, "seed=0"])
    call("misc/export_teacher.py", "--resume", str(run / "trained_model.pth"), "--name", name)


def table(results: dict[str, list[dict]]) -> str:
    """Mean +- standard deviation (over seeds) of every column, one row per method."""
    width = max(len(name) for name in results) + 2
    lines = [f"{'method':{width}s}" + "".join(f"{name:>16s}" for name in COLUMNS)]
    for name, runs in results.items():
        cells = []
        for metric, key in COLUMNS.values():
            values = [run[metric][key] for run in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):9.2f} ± {spread:4.2f}")
        lines.append(f"{name:{width}s}" + "".join(f"{cell:>16s}" for cell in cells))
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    for path in sorted(TEACHERS.glob("*.json")):
        ensure_teacher(path, args.set)
    results: dict[str, list[dict]] = {}
    for name, path in STUDENTS.items():
        for seed in seeds:
            run = trained(path, [*args.set, f"seed={seed}"])
            results.setdefault(name, []).append(json.loads((run / "metrics.json").read_text()))
    print(f"test split, mean ± std over seeds {', '.join(map(str, seeds))}")
    print(table(results))
    return 0


if __name__ == "__main__":
    run_cli(main)
