"""Benchmark one training step of a config's model at its real expert dimensions.

Builds the model, loss and optimiser of a config (default: the full MSR-VTT CE, 183M
parameters), feeds a random batch shaped as the config's data would be (every expert present,
token experts and captions at their ``max_tokens``) and times forward, backward and the
optimiser step separately. No features are needed. Prints the medians and samples per second
(the original code trained MSR-VTT CE at 35 samples/s on a 2-core CPU) and writes them as JSON.

Example:
    python3 misc/bench_train_step.py --out data/benchmarks/train_step.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as ``python3 misc/<script>.py``, only misc/ is on the path
    sys.path.insert(0, str(REPO))

from model.dims import model_inputs  # noqa: E402
from trainer.build import build_loss, build_model, build_optimizer  # noqa: E402
from utils.cli import run_cli  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.summary import count_trainable  # noqa: E402
from utils.atomic import write_text_atomic  # noqa: E402

DEFAULT_CONFIG = Path("configs/msrvtt/train-full-ce.json")
ORIGINAL_SAMPLES_PER_S = 35.0  # the original code, DEFAULT_CONFIG, 2-core CPU


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="config whose model, loss and optimiser to time (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, help="videos per batch (default: the config's)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=7, help="timed steps (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("data/benchmarks/train_step.json"),
                        help="where to write the JSON results (default: %(default)s)")
    return parser.parse_args()


def random_batch(config, batch_size: int) -> dict:
    """A batch shaped as the config's loader yields it, every expert present."""
    inputs = model_inputs(config)
    raw_dims, text_dim = inputs["feat_dims"], inputs["text_dim"]
    args = config["data_loader"]["args"]
    max_tokens, aggregation = args["max_tokens"], args["feat_aggregation"]
    experts = {name: torch.randn(batch_size, max_tokens[name], dim)
               if aggregation[name].get("temporal") == "vlad" else torch.randn(batch_size, dim)
               for name, dim in raw_dims.items()}
    return {"experts": experts, "ind": {name: torch.ones(batch_size) for name in raw_dims},
            "text": torch.randn(batch_size, 1, max_tokens["text"], text_dim)}


def main() -> int:
    args = parse_args()
    config = load_config(args.config)
    batch_size = args.batch_size or config["data_loader"]["args"].get("batch_size", 64)
    torch.manual_seed(0)
    model = build_model(config).train()
    optimizer, _ = build_optimizer(config, model)
    loss_fn = build_loss(config)
    batch = random_batch(config, batch_size)
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": [], "step": []}
    for index in range(args.warmup + args.steps):
        optimizer.zero_grad()
        start = time.perf_counter()
        loss = loss_fn(model(**batch)["cross_view_conf_matrix"])
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        optimizer.step()
        end = time.perf_counter()
        if index >= args.warmup:
            for name, seconds in (("forward", forward - start), ("backward", backward - forward),
                                  ("optimizer", end - backward), ("step", end - start)):
                phases[name].append(seconds)
    medians = {name: statistics.median(times) for name, times in phases.items()}
    samples_per_s = batch_size / medians["step"]
    report = {
        "config": str(args.config), "parameters": count_trainable(model), "batch_size": batch_size,
        "optimizer": type(optimizer).__name__, "steps": args.steps, "median_s": medians, "runs_s": phases,
        "samples_per_s": samples_per_s,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "machine": platform.platform(),
    }
    print(f"{args.config}: {report['parameters']:,} parameters, batch {batch_size}, {type(optimizer).__name__}")
    print("median over {} steps: forward {forward:.3f} s, backward {backward:.3f} s, optimizer {optimizer:.3f} s, "
          "step {step:.3f} s".format(args.steps, **medians))
    print(f"{samples_per_s:.1f} samples/s with {torch.get_num_threads()} threads")
    if args.config == DEFAULT_CONFIG:
        report["original_samples_per_s"] = ORIGINAL_SAMPLES_PER_S
        print(f"{samples_per_s / ORIGINAL_SAMPLES_PER_S:.2f}x the original's {ORIGINAL_SAMPLES_PER_S:.0f} "
              "samples/s on a 2-core CPU")
    path = write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
