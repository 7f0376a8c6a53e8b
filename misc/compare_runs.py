"""Train several configs under the same settings and tabulate their test metrics.

Each config is trained by ``train.py`` in a fresh process (so runs cannot leak state into
each other), for each of ``--seeds`` when given; the table (``report.results_table``, as
``misc/aggregate_runs.py``: mean(std) over seeds per config) is printed and written as
markdown and CSV. Example, the expert ablation on the embedded default:

  python3 misc/compare_runs.py --configs configs/synthetic/train-ce.json \\
      configs/synthetic/train-single-*.json --out data/benchmarks/synthetic-experts
  python3 misc/compare_runs.py --configs configs/synthetic/train-ce.json configs/synthetic/train-ce-ran.json \\
      configs/synthetic/train-ce-ranp.json --seeds 0,1,2 \\
      --set 'metrics=["t2v_metrics","v2t_metrics","relevance_metrics"]' --out data/benchmarks/synthetic-ranp
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from repo_root import REPO  # the repository root, put on sys.path (misc/repo_root.py)

# isort: split
from report.results_table import print_and_write_table
from utils.cli import run_cli


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", type=Path, required=True, help="config files to train")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                        help="overrides applied to every config (e.g. trainer.epochs=10)")
    parser.add_argument("--seeds", help="comma-separated seeds, one run each (default: the configs' own seed)")
    parser.add_argument("--save_dir", type=Path, help="run folder root (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=Path("data/benchmarks/compare_runs"),
                        help="prefix of the written tables (<out>.md, <out>.csv)")
    return parser.parse_args()


RUN_FOLDER_LINE = re.compile(r"Training on [^\n]*?, run folder (?P<folder>[^\r\n]+)")
"""The line train.py logs as each run starts (trainer/trainer.py), naming its models folder."""


def train(config: Path, save_dir: Path, overrides: list[str], seeds: str | None) -> list[Path]:
    """Train one config (once per seed); returns the run folders it made, as its own log names
    them (another train.py writing into the same save_dir meanwhile is not mistaken for it)."""
    command = [sys.executable, str(REPO / "train.py"), "--config", str(config),
               *(["--seeds", seeds] if seeds else []),
               "--set", f"trainer.save_dir={save_dir}", "trainer.tensorboard=false", *overrides,
               "trainer.verbosity=1"]
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training {config} failed:\n{done.stderr[-2000:]}")
    return sorted({Path(match["folder"].strip()) for match in RUN_FOLDER_LINE.finditer(done.stderr)})


def main() -> int:
    args = parse_args()
    save_dir = (args.save_dir or Path(tempfile.mkdtemp(prefix="compare-runs-"))).resolve()
    runs = []
    for config in args.configs:
        print(f"training {config} ...", file=sys.stderr, flush=True)
        runs += train(config.resolve(), save_dir, args.set, args.seeds)
    markdown, csv = print_and_write_table(runs, args.out)
    print(f"runs under {save_dir}; wrote {markdown} and {csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
