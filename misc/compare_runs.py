"""Train several configs under the same settings and tabulate their test metrics.

Each config is trained by ``train.py`` in a fresh process (so runs cannot leak state into
each other); the table is read from each run's ``metrics.json``. With ``--seeds`` every
config is trained once per seed (seed by seed, so early rows are comparable) and the table
gives the mean and standard deviation over the seeds. Runs with ``relevance_metrics`` add
nDCG_avg and mAP_avg columns. Examples, the expert ablation and RANP on the embedded default:

  python3 misc/compare_runs.py --configs configs/synthetic/train-ce.json \\
      configs/synthetic/train-single-*.json --out data/benchmarks/synthetic-experts.json
  python3 misc/compare_runs.py --configs configs/synthetic/train-ce.json configs/synthetic/train-ce-ran.json \\
      configs/synthetic/train-ce-ranp.json --seeds 0 1 2 --set trainer.epochs=10 \\
      'metrics=["t2v_metrics","v2t_metrics","relevance_metrics"]' --out data/benchmarks/synthetic-ranp.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = (("t2v R1", "t2v_metrics", "R1"), ("t2v R5", "t2v_metrics", "R5"), ("t2v R10", "t2v_metrics", "R10"),
           ("t2v MedR", "t2v_metrics", "MedR"), ("t2v geom", "t2v_metrics", "geometric_mean_R1-R5-R10"),
           ("v2t geom", "v2t_metrics", "geometric_mean_R1-R5-R10"))
RELEVANCE_COLUMNS = (("nDCG_avg", "relevance_metrics", "nDCG_avg"), ("mAP_avg", "relevance_metrics", "mAP_avg"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", type=Path, required=True, help="config files to train")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                        help="overrides applied to every config (e.g. trainer.epochs=10)")
    parser.add_argument("--seeds", nargs="+", type=int, help="train every config once per seed (default: its own seed)")
    parser.add_argument("--save_dir", type=Path, help="run folder root (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=Path("data/benchmarks/compare_runs.json"),
                        help="where to write the results as JSON")
    return parser.parse_args()


def train(config: Path, save_dir: Path, overrides: list[str]) -> dict:
    """Train one config; returns its metrics.json content plus the wall time."""
    start = time.perf_counter()
    command = [sys.executable, str(REPO / "train.py"), "--config", str(config),
               "--set", f"trainer.save_dir={save_dir}", "trainer.tensorboard=false", *overrides]
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training {config} failed:\n{done.stderr[-2000:]}")
    experiment = f"{config.parent.name}-{config.stem}"
    (run,) = sorted((save_dir / "models" / experiment).iterdir())[-1:]
    return {**json.loads((run / "metrics.json").read_text()), "seconds": time.perf_counter() - start}


def table(results: dict[str, list[dict]]) -> str:
    """A fixed-width table, one row per config: t2v R1, R5, R10, MedR, geometric mean, the v2t
    geometric mean and, when measured, nDCG_avg and mAP_avg (as percentages); ``mean +- std``
    over the runs of a config when it has several."""
    runs = [run for config_runs in results.values() for run in config_runs]
    columns = COLUMNS + (RELEVANCE_COLUMNS if any("relevance_metrics" in run for run in runs) else ())
    several = any(len(config_runs) > 1 for config_runs in results.values())
    cell = 16 if several else 10
    width = max(len(name) for name in results) + 2
    lines = [f"{'config':{width}s}" + "".join(f"{label:>{cell}s}" for label, _, _ in columns)]
    for name, config_runs in results.items():
        row = f"{name:{width}s}"
        for _, group, key in columns:
            scale = 100 if group == "relevance_metrics" else 1
            values = [run[group][key] * scale for run in config_runs if group in run]
            if not values:
                row += f"{'-':>{cell}s}"
            elif several:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                row += f"{f'{statistics.mean(values):.2f} +- {std:.2f}':>{cell}s}"
            else:
                row += f"{values[0]:{cell}.2f}"
        lines.append(row)
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    save_dir = args.save_dir or Path(tempfile.mkdtemp(prefix="compare-runs-"))
    results: dict[str, list[dict]] = {str(config): [] for config in args.configs}
    for seed in args.seeds or [None]:
        overrides = args.set if seed is None else [*args.set, f"seed={seed}"]
        for config in args.configs:
            print(f"training {config}{'' if seed is None else f' (seed {seed})'} ...", file=sys.stderr, flush=True)
            results[str(config)].append(train(config.resolve(), save_dir.resolve(), overrides))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"overrides": args.set, "seeds": args.seeds, "results": results},
                                           indent=2) + "\n")
    print(table(results))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
