"""Tabulate finished runs as the published tables do: mean(std) over seeds, per config.

Each argument is an experiment folder (``<save_dir>/models/<experiment>``), a run folder, a
save_dir (all its experiments), or a glob of any of these (quote it). Runs still without a
``metrics.json`` are left out. Prints the markdown table and writes ``<out>.md`` and
``<out>.csv``. Example, three seeds of the embedded default:

  python3 train.py --config configs/synthetic/train-ce.json --seeds 0,1,2
  python3 misc/aggregate_runs.py data/saved/models/synthetic-train-ce
"""
from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import repo_root  # noqa: F401  (the repository root on sys.path: misc/repo_root.py)

# isort: split
from report.results_table import print_and_write_table
from utils.cli import run_cli
from utils.errors import UserError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="experiment folders, run folders, save_dirs or globs of them")
    parser.add_argument("--out", type=Path, default=Path("seed_table"),
                        help="prefix of the written tables (default: seed_table -> seed_table.md, seed_table.csv)")
    return parser.parse_args()


def run_folders(pattern: str) -> list[Path]:
    """The run folders (holding a metrics.json) that ``pattern`` names or contains."""
    found = []
    for folder in sorted(Path(p) for p in glob.glob(pattern)):
        for candidate in (folder, *folder.glob("*"), *folder.glob("models/*/*")):
            if (candidate / "metrics.json").is_file():
                found.append(candidate)
    return found


def main() -> int:
    args = parse_args()
    runs = sorted({run for pattern in args.folders for run in run_folders(pattern)})
    if not runs:
        raise UserError(f"no finished run (a folder with metrics.json) in {', '.join(args.folders)}")
    markdown, csv = print_and_write_table(runs, args.out)
    print(f"{len(runs)} runs; wrote {markdown} and {csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
