"""Train several configs under the same settings and tabulate their test metrics.

Each config is trained by ``train.py`` in a fresh process (so runs cannot leak state into
each other); the table is read from each run's ``metrics.json``. Example, the expert
ablation on the embedded default:

  python3 misc/compare_runs.py --configs configs/synthetic/train-ce.json \\
      configs/synthetic/train-single-*.json --out data/benchmarks/synthetic-experts.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEYS = ("R1", "R5", "R10", "MedR", "geometric_mean_R1-R5-R10")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", type=Path, required=True, help="config files to train")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                        help="overrides applied to every config (e.g. trainer.epochs=10)")
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


def table(results: dict[str, dict]) -> str:
    """A fixed-width table: t2v R1, R5, R10, MedR, geometric mean, then the v2t geometric mean."""
    width = max(len(name) for name in results) + 2
    names = ["t2v R1", "t2v R5", "t2v R10", "t2v MedR", "t2v geom", "v2t geom"]
    lines = [f"{'config':{width}s}" + "".join(f"{n:>10s}" for n in names)]
    for name, res in results.items():
        values = [res["t2v_metrics"][k] for k in KEYS] + [res["v2t_metrics"]["geometric_mean_R1-R5-R10"]]
        lines.append(f"{name:{width}s}" + "".join(f"{v:10.2f}" for v in values))
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    save_dir = args.save_dir or Path(tempfile.mkdtemp(prefix="compare-runs-"))
    results = {}
    for config in args.configs:
        print(f"training {config} ...", file=sys.stderr, flush=True)
        results[str(config)] = train(config.resolve(), save_dir.resolve(), args.set)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"overrides": args.set, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
