"""Reproduce a published table: train every experiment x seed, then tabulate our mean (std) beside
the published mean (std) and the difference, as markdown and CSV.

Each experiment is a registry name (misc/published/models.json, e.g. msrvtt-train-full-ce: its
config is the one the registry names) or a config file. Every (experiment, seed) is one
``python3 train.py --config C --seeds S`` run into --save_dir, launched

  * locally (default): one after another, or --jobs N at a time;
  * through submitit: --launcher slurm --partition P (one Slurm job per run), or
    --launcher submitit-local (submitit's local executor: the same code path, on this machine).

The table (report.results_table's seed table, with a published and a difference row under each
experiment the registry knows) is printed and written to <out>.md and <out>.csv.

Examples (from the repository root):

  python3 misc/run_table.py --experiments msrvtt-train-full-ce msrvtt-train-full-moee --seeds 0,1,2
  python3 misc/run_table.py --experiments msrvtt-train-full-ce --seeds 0,1,2 --launcher slurm --partition gpu
  python3 misc/run_table.py --experiments configs/synthetic/train-ce.json --seeds 0,1 --group_seeds \
      --set trainer.epochs=1
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from repo_root import REPO  # the repository root, put on sys.path (misc/repo_root.py)

# isort: split
from report.published import comparison_table, for_experiment, load_registry
from report.results_table import read_run_result, to_markdown, write_tables
from report.run_folder import experiment_folder, experiment_name
from utils.cli import run_cli
from utils.errors import UserError

LAUNCHERS = ("local", "submitit-local", "slurm")


@dataclass(frozen=True)
class Job:
    """One train.py process: a config, its seeds (one run each, in order) and the ``--set`` overrides."""

    config: str
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]

    def command(self) -> list[str]:
        return [sys.executable, "train.py", "--config", self.config, "--seeds", ",".join(map(str, self.seeds)),
                "--set", *self.overrides]

    def __str__(self) -> str:
        return f"{self.config} seed{'s' if len(self.seeds) > 1 else ''} {','.join(map(str, self.seeds))}"


def train(job: Job) -> str:
    """Run ``job`` with train.py in the repository root; returns its last output line. Raises
    RuntimeError with the end of its stderr when it fails (on whichever machine runs it)."""
    done = subprocess.run(job.command(), cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"train.py ({job}) exited {done.returncode}: {tail}")
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[-1] if lines else ""


def config_of(experiment: str) -> str:
    """The config file of a registry name, or ``experiment`` itself when it is a config file."""
    if experiment.endswith(".json"):
        if not (REPO / experiment).is_file() and not Path(experiment).is_file():
            raise UserError(f"--experiments {experiment}: no such config file")
        return str(Path(experiment).resolve()) if Path(experiment).is_file() else experiment
    model = for_experiment(load_registry(), experiment)
    if model is None:
        raise UserError(f"--experiments {experiment}: not in misc/published/models.json and not a config file")
    if model.config is None:
        raise UserError(f"--experiments {experiment}: no config of this name ships in this repository "
                        f"(see docs/published-models.md); give a config file instead")
    return model.config


def launch_local(jobs: list[Job], workers: int) -> None:
    """Run ``jobs`` on this machine, ``workers`` at a time."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for job, line in zip(jobs, pool.map(train, jobs)):
            print(f"done: {job}: {line}", flush=True)


def launch_submitit(jobs: list[Job], args: argparse.Namespace) -> None:
    """Submit ``jobs`` through submitit (Slurm, or its local executor) and wait for all of them."""
    import submitit

    folder = args.save_dir / "submitit" / "%j"
    if args.launcher == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(slurm_partition=args.partition, timeout_min=args.timeout_min,
                                   gpus_per_node=args.gpus, cpus_per_task=args.cpus, name="run_table")
    else:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=args.timeout_min)
    batch = len(jobs) if args.launcher == "slurm" else args.jobs
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        submitted = [executor.submit(train, job) for job in chunk]
        for job, handle in zip(chunk, submitted):
            try:
                line = handle.result()
            except submitit.core.utils.FailedJobError as exc:
                raise UserError(f"job {handle.job_id} ({job}) failed: "
                                f"{str(exc).strip().splitlines()[-1]}") from None
            print(f"done: {job} (job {handle.job_id}): {line}", flush=True)


def new_runs(save_dir: Path, experiments: list[str], before: set[Path]) -> list[Path]:
    """Run folders with a metrics.json made under ``save_dir`` for ``experiments`` since ``before``."""
    found = []
    for experiment in experiments:
        for run in sorted(experiment_folder(save_dir, experiment).glob("*")):
            if run not in before and (run / "metrics.json").is_file():
                found.append(run)
    return found


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", nargs="+", required=True, metavar="NAME_OR_CONFIG",
                        help="registry names (python3 misc/sync_models.py --list) or config files")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                        help="config overrides for every run, e.g. trainer.epochs=1 data_loader.args.data_dir=...")
    parser.add_argument("--save_dir", type=Path, default=Path("data/saved"),
                        help="where the runs go (trainer.save_dir; default data/saved)")
    parser.add_argument("--out", type=Path, help="prefix of the tables (default: <save_dir>/table -> table.md, .csv)")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="local",
                        help="local (default), submitit-local (submitit's local executor) or slurm")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time on this machine (default 1)")
    parser.add_argument("--partition", help="Slurm partition (--launcher slurm)")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per Slurm job (default 1)")
    parser.add_argument("--cpus", type=int, default=8, help="CPUs per Slurm job (default 8)")
    parser.add_argument("--group_seeds", action="store_true",
                        help="one job per experiment training its seeds one after another (start-up paid once: "
                             "for short runs), instead of one job per experiment x seed")
    parser.add_argument("--timeout_min", type=int, default=24 * 60, help="time limit per job, minutes (default 1440)")
    args = parser.parse_args()
    if args.launcher == "slurm" and not args.partition:
        parser.error("--launcher slurm needs --partition")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        args.seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    return args


def main() -> int:
    args = parse_args()
    args.save_dir = args.save_dir.resolve()
    configs = [config_of(experiment) for experiment in args.experiments]
    names = [experiment_name(Path(config)) for config in configs]
    overrides = (f"trainer.save_dir={args.save_dir}", *args.set)
    groups = [tuple(args.seeds)] if args.group_seeds else [(seed,) for seed in args.seeds]
    jobs = [Job(config, seeds, overrides) for config in configs for seeds in groups]
    before = {run for name in names for run in experiment_folder(args.save_dir, name).glob("*")}
    started = time.monotonic()
    print(f"{len(configs)} experiments x {len(args.seeds)} seeds in {len(jobs)} jobs via {args.launcher}", flush=True)
    if args.launcher == "local":
        launch_local(jobs, args.jobs)
    else:
        launch_submitit(jobs, args)
    runs = new_runs(args.save_dir, names, before)
    expected = len(configs) * len(args.seeds)
    if len(runs) != expected:
        raise UserError(f"expected {expected} finished runs under {args.save_dir / 'models'}, found {len(runs)}")
    table = comparison_table([read_run_result(run) for run in runs])
    print(to_markdown(table))
    markdown, csv = write_tables(table, args.out or args.save_dir / "table")
    print(f"{len(runs)} runs in {time.monotonic() - started:.0f} s; wrote {markdown} and {csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
