"""Benchmark a test-split evaluation: similarities of every caption to every video, then metrics.

Builds a config's model (seeded weights: the time does not depend on them) and its test data
(the config with ``eval_settings`` merged), then times the evaluation that train.py runs at the
end and test.py runs on a checkpoint, repeated ``--repeats`` times. The original code took
194 s for the MSR-VTT full-test evaluation (2,990 videos, 59,794 queries) on a 2-core CPU.
Without the real features, a dataset in the released layout comes from
misc/make_release_fixture.py. Prints the medians and writes them as JSON.

Example:
    python3 misc/make_release_fixture.py --dataset MSRVTT --out /tmp/fixture/MSRVTT
    python3 misc/bench_eval.py --set data_loader.args.data_dir=/tmp/fixture/MSRVTT
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

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as ``python3 misc/<script>.py``, only misc/ is on the path
    sys.path.insert(0, str(REPO))

from trainer.build import build_data, build_model  # noqa: E402
from trainer.evaluate import evaluate, format_table  # noqa: E402
from utils.cli import run_cli  # noqa: E402
from utils.config import load_config, with_eval_settings  # noqa: E402
from utils.atomic import write_text_atomic  # noqa: E402

DEFAULT_CONFIG = Path("configs/msrvtt/train-full-ce.json")
ORIGINAL_SECONDS = 194.0  # the original code, DEFAULT_CONFIG's full-test, 2-core CPU


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="config whose model and test split to time (default: %(default)s)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                        help="config overrides, e.g. data_loader.args.data_dir=/tmp/fixture/MSRVTT")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("data/benchmarks/eval.json"),
                        help="where to write the JSON results (default: %(default)s)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    config = with_eval_settings(load_config(args.config, args.set))
    torch.manual_seed(0)
    model = build_model(config)
    start = time.perf_counter()
    data = build_data(config)
    load_s = time.perf_counter() - start
    chunk = config["trainer"].get("eval_chunk_videos", 64)
    runs, result = [], None
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = evaluate(model, data, torch.device("cpu"), chunk, progress=False)
        runs.append(time.perf_counter() - start)
    median = statistics.median(runs)
    report = {
        "config": str(args.config), "overrides": args.set, "split": result.split,
        "num_videos": result.num_videos, "num_queries": result.num_queries, "load_s": load_s,
        "median_s": median, "runs_s": runs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "machine": platform.platform(),
    }
    print(format_table(result))
    print(f"data loaded in {load_s:.1f} s; evaluation median {median:.1f} s over {args.repeats} runs "
          f"({', '.join(f'{t:.1f}' for t in runs)}); peak memory {report['peak_rss_mb'] / 1024:.1f} GiB")
    if args.config == DEFAULT_CONFIG:
        report["original_s"] = ORIGINAL_SECONDS
        print(f"{ORIGINAL_SECONDS / median:.2f}x the original's speed ({ORIGINAL_SECONDS:.0f} s on a 2-core CPU)")
    path = write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
