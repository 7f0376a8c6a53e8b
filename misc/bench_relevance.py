"""Benchmark relevance_metrics (nDCG, mAP) on a 10,000-video x 60,000-caption test set.

Times ``model.ranp.metrics.ndcg_and_map`` on random float32 similarities ``[videos, captions]``
and a sparse graded relevance matrix: every video owns ``captions / videos`` captions at
relevance 1.0, and a ``--density`` fraction of the other entries gets a grade in
{1/8, ..., 8/8}. The relevance is stored as float16 by default (the grades are exact in it,
and it halves the input memory); the metrics are computed in float64 whatever the dtype.
Reports the wall time, the resident memory of the inputs and the peak resident memory the
call adds, and writes the figures as JSON.

Example:
    python3 misc/bench_relevance.py --out data/benchmarks/relevance.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import repo_root  # noqa: F401  (the repository root on sys.path: misc/repo_root.py)
import torch

# isort: split
from model.ranp.metrics import ndcg_and_map
from utils.atomic import write_text_atomic

REL_DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10_000, help="number of videos (rows)")
    parser.add_argument("--captions", type=int, default=60_000, help="number of captions (columns)")
    parser.add_argument("--density", type=float, default=0.05,
                        help="fraction of the other entries with a relevance grade above 0")
    parser.add_argument("--rel-dtype", choices=sorted(REL_DTYPES), default="float16",
                        help="storage dtype of the relevance matrix")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="queries per block (default: relevance_metrics' own)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the matrices")
    parser.add_argument("--out", type=Path, default=Path("data/benchmarks/relevance.json"),
                        help="where to write the JSON results (folders are created)")
    return parser.parse_args()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_inputs(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sims float32 ``[V, T]`` and graded relevance ``[V, T]``, built a block of rows
    at a time so no full-size temporary is made."""
    gen = torch.Generator().manual_seed(args.seed)
    videos, captions = args.videos, args.captions
    sims = torch.empty(videos, captions, dtype=torch.float32)
    rel = torch.empty(videos, captions, dtype=REL_DTYPES[args.rel_dtype])
    owner = torch.arange(captions) * videos // captions
    step = max(1, (1 << 22) // captions)
    for start in range(0, videos, step):
        stop = min(start + step, videos)
        sims[start:stop].normal_(generator=gen)
        grades = torch.randint(1, 9, (stop - start, captions), generator=gen) / 8
        keep = torch.rand(stop - start, captions, generator=gen) < args.density
        block = torch.where(keep, grades, 0.0)
        block[owner[None, :] == torch.arange(start, stop)[:, None]] = 1.0
        rel[start:stop] = block
    return sims, rel


def main() -> None:
    args = parse_args()
    sims, rel = make_inputs(args)
    input_mb = (sims.nbytes + rel.nbytes) / 2**20
    rss_before = peak_rss_mb()

    load_before = os.getloadavg()[0]
    times = []
    metrics: dict[str, float] = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        metrics = ndcg_and_map(sims, rel, args.chunk_size)
        times.append(time.perf_counter() - start)
    added_mb = peak_rss_mb() - rss_before
    median = statistics.median(times)
    print(f"relevance_metrics on {args.videos} x {args.captions}: median {median:.1f} s over "
          f"{args.repeats} run(s) ({', '.join(f'{t:.1f}' for t in times)})")
    print(f"inputs {input_mb:.0f} MiB (sims float32, relevance {args.rel_dtype}); peak RSS "
          f"{rss_before:.0f} MiB before the call, +{added_mb:.0f} MiB during it")
    print("  ".join(f"{key} {value:.4f}" for key, value in metrics.items()))
    print(f"1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads)")

    report = {
        "shape": [args.videos, args.captions],
        "density": args.density,
        "relevance_dtype": args.rel_dtype,
        "chunk_size": args.chunk_size,
        "repeats": args.repeats,
        "seed": args.seed,
        "median_s": median,
        "runs_s": times,
        "input_mb": input_mb,
        "peak_rss_before_mb": rss_before,
        "peak_rss_added_mb": added_mb,
        "metrics": metrics,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
    path = write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
