"""Benchmark the retrieval metrics on an MSR-VTT-full-test-sized similarity matrix.

Times ``t2v_metrics`` and ``v2t_metrics`` from ``model.metric`` on a random float32
``[videos * captions, videos]`` matrix (default 59,800 x 2,990, 20 captions per video),
reports the median over several runs and writes the figures as JSON.

Example:
    python3 misc/bench_metrics.py --out data/benchmarks/metrics.json
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as ``python3 misc/<script>.py``, only misc/ is on the path
    sys.path.insert(0, str(REPO))

from model.metric import t2v_metrics, v2t_metrics  # noqa: E402
from utils.atomic import write_text_atomic  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2990, help="number of videos (columns)")
    parser.add_argument("--captions", type=int, default=20, help="captions per video")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per function")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the matrix")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("data/benchmarks/metrics.json"),
        help="where to write the JSON results (folders are created)",
    )
    return parser.parse_args()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_runs(fn, sims: np.ndarray, repeats: int) -> tuple[list[float], dict[str, float]]:
    """Run ``fn(sims)`` ``repeats`` times; return the wall times (s) and the last result."""
    times = []
    result: dict[str, float] = {}
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(sims)
        times.append(time.perf_counter() - start)
    return times, result


def main() -> None:
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    shape = (args.videos * args.captions, args.videos)
    sims = rng.standard_normal(shape, dtype=np.float32)
    rss_before = peak_rss_mb()

    report: dict[str, object] = {
        "shape": list(shape),
        "captions_per_video": args.captions,
        "dtype": "float32",
        "repeats": args.repeats,
        "seed": args.seed,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
    for name, fn in (("t2v_metrics", t2v_metrics), ("v2t_metrics", v2t_metrics)):
        times, metrics = time_runs(fn, sims, args.repeats)
        median = statistics.median(times)
        report[name] = {"median_s": median, "runs_s": times, "metrics": metrics}
        print(f"{name}: median {median:.3f} s over {args.repeats} runs "
              f"({', '.join(f'{t:.3f}' for t in times)}); R1 {metrics['R1']:.3f}, "
              f"MedR {metrics['MedR']:.1f}")
    report["matrix_mb"] = sims.nbytes / 2**20
    report["peak_rss_increase_mb"] = peak_rss_mb() - rss_before
    print(f"matrix {report['matrix_mb']:.0f} MiB; peak RSS increase during the runs "
          f"{report['peak_rss_increase_mb']:.0f} MiB")

    path = write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
