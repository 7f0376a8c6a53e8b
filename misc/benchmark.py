"""Benchmark training and evaluation on a synthetic MSR-VTT at full scale, against this machine's own floor.

The first run writes a synthetic MSR-VTT release at the real expert dimensions of
configs/msrvtt/train-full-ce.json (misc/make_release_fixture.py; 6,513 / 497 / 2,990 videos at
--scale 1) under --cache and converts it into the feature store; later runs reuse both. Then it
measures, in one process:

* the machine: matrix-product throughput in fp32 and bf16 (best of a few shapes the model
  uses) and memory bandwidth (a large copy);
* loader build, train split (full-val) and full-test, from the existing store;
* training, per precision: --warmup steps, then --blocks blocks of --block_steps steps; the
  median block gives samples/s and the shares of batch gathering, forward, backward and
  optimiser;
* full-test evaluation, per precision: forward (video embeddings, caption chunks,
  similarities) and metrics, with the weights the first training phase reached, so the
  precisions' metrics compare the same model;
* peak memory of each phase (resident memory sampled every 5 ms from what the phase starts
  with, after handing back what earlier phases freed, and its part not backed by files, i.e.
  without the loaded libraries; on CUDA the allocator's peak);
* each phase's time as a multiple of its floor: matrix-product FLOPs (counted with
  torch.utils.flop_counter) at the measured rate of their precision, plus for training the
  optimiser's memory traffic (read p, g, m, v; write p, m, v) at the measured bandwidth.

Prints a table and writes every figure as JSON (--out), keyed by phase, precision and unit,
e.g. ``train_fp32_samples_per_s``.

With ``--hgr_eval VIDEOS,CAPTIONS`` it instead times HGR's pairwise evaluation of that many
videos and captions (random weights, generated inputs; misc/bench_hgr.py), e.g. the EK-100
test's 9668,3842, per precision, with the phase's peak memory.

Examples:
    python3 misc/benchmark.py                                   # full scale, fp32 and bf16
    python3 misc/benchmark.py --hgr_eval 9668,3842 --precision bf16   # HGR on the EK-100 test size
    python3 misc/benchmark.py --scale 0.05 --block_steps 3      # a quick look
    python3 misc/benchmark.py --device cuda --precision bf16
"""
from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import repo_root  # noqa: F401  (the repository root on sys.path: misc/repo_root.py)

# isort: split
from utils.cpu_memory import release_freed_memory  # before torch: how large CPU tensors get memory

# isort: split
import torch
from torch.utils.flop_counter import FlopCounterMode

from data_loader.batches import text_batch
from misc.bench_hgr import hgr_eval_figures
from misc.make_release_fixture import DEFAULT_TEXT_TOKENS, plan_fixture, write_fixture
from model.metric import t2v_metrics, v2t_metrics
from trainer.build import (
    build_data,
    build_loss,
    build_model,
    build_optimizer,
    load_model,
    prepare_data,
    select_device,
    trainer_options,
)
from trainer.evaluate import EvalSet, compute_similarities, embed_split_videos
from trainer.precision import PRECISIONS, autocast
from utils.atomic import write_text_atomic
from utils.cli import run_cli
from utils.config.load import load_config, with_eval_settings
from utils.config.resolved import Config
from utils.errors import StoreError
from utils.summary import count_trainable

DEFAULT_CONFIG = Path("configs/msrvtt/train-full-ce.json")
# The original CE code measured side by side on the same 2-core CPU with this config at scale 1:
# training steady state, and the full-test evaluation split in 4 slices by hand (its single pass
# ran out of memory at 23 GiB).
ORIGINAL = {"train_samples_per_s": 31.0, "eval_s": 195.0}
MATMUL_SHAPES = ((64, 21504, 768), (768, 64, 21504), (64, 768, 768), (2048, 2048, 2048))  # (m, k, n)
GIB = 2 ** 30
OPTIMIZER_BYTES_PER_PARAMETER = 7 * 4  # a fused Adam-style step reads p, g, m, v and writes p, m, v (float32)


def pair_of_counts(text: str) -> tuple[int, int]:
    """"9668,3842" -> (9668, 3842)."""
    try:
        videos, captions = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two counts VIDEOS,CAPTIONS, e.g. 9668,3842; got {text!r}") from None
    if videos < 1 or captions < 1:
        raise argparse.ArgumentTypeError(f"counts must be positive, got {text!r}")
    return videos, captions


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config to time (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of MSR-VTT's videos (default: 1)")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                        help="precisions to time (default: both)")
    parser.add_argument("--device", default="cpu", help='"cpu" (default), "cuda" or "cuda:<n>"')
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first (default: 3)")
    parser.add_argument("--blocks", type=int, default=3, help="timed blocks of training steps (default: 3)")
    parser.add_argument("--block_steps", type=int, default=10, help="training steps per block (default: 10)")
    parser.add_argument("--cache", type=Path, default=Path("data/benchmark"),
                        help="folder of the cached synthetic release and store (default: %(default)s)")
    parser.add_argument("--hgr_eval", metavar="VIDEOS,CAPTIONS", type=pair_of_counts,
                        help="time only HGR's pairwise evaluation of this many videos and captions "
                             "(misc/bench_hgr.py), e.g. 9668,3842 (EK-100 test)")
    parser.add_argument("--out", type=Path, default=Path("data/benchmark/results.json"),
                        help="JSON results (default: %(default)s)")
    return parser.parse_args()


# ----------------------------------------------------------------------------- measuring


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory while the block runs, in bytes, on the CPU sampled every 5 ms: ``peak``, the
    resident memory of this process, and ``peak_private``, the part not backed by files (the
    loaded libraries are). The heap's free memory is handed back first (see utils/cpu_memory.py:
    the command lines keep it for reuse), so an earlier phase's leftovers do not count. On CUDA
    both are the allocator's peak on ``device``."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self.peak_private, self._running = device, 0, 0, False

    @staticmethod
    def resident() -> tuple[int, int]:
        """(resident, resident and not file-backed) bytes of this process."""
        with open("/proc/self/statm") as f:
            _, resident, shared = (int(v) for v in f.read().split()[:3])
        return resident * 4096, (resident - shared) * 4096

    def _sample(self) -> None:
        while self._running:
            resident, private = self.resident()
            self.peak, self.peak_private = max(self.peak, resident), max(self.peak_private, private)
            time.sleep(0.005)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            release_freed_memory()  # what earlier phases freed but the heap kept is not this phase's
            self._running = True
            self.peak, self.peak_private = self.resident()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = self.peak_private = torch.cuda.max_memory_allocated(self.device)
        else:
            self._running = False
            self._thread.join()


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def matmul_gflops(dtype: torch.dtype, device: torch.device, budget_s: float = 0.5) -> dict[str, float]:
    """GFLOP/s of ``[m, k] @ [k, n]`` in ``dtype`` for each of MATMUL_SHAPES (best of ``budget_s`` runs)."""
    rates = {}
    for m, k, n in MATMUL_SHAPES:
        a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
        best, spent = float("inf"), 0.0
        while spent < budget_s:
            took = seconds(lambda a=a, b=b: a @ b, device)
            best, spent = min(best, took), spent + took
        rates[f"{m}x{k}x{n}"] = 2 * m * k * n / best / 1e9
    return rates


def bandwidth_gb_per_s(device: torch.device, size: int = 1 << 27) -> float:
    """Bytes read and written per second by a copy of ``size`` float32 values (best of 5)."""
    src, dst = torch.ones(size, device=device), torch.empty(size, device=device)
    best = min(seconds(lambda: dst.copy_(src), device) for _ in range(5))
    return 2 * 4 * size / best / 1e9


def matmul_flops(fn: Callable[[], object]) -> int:
    """Matrix-product FLOPs of running ``fn`` (forward and, inside it, backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- data


def fixture_folder(args: argparse.Namespace) -> Path:
    return args.cache / f"MSRVTT-scale{args.scale:g}"


def ensure_fixture(config: Config, args: argparse.Namespace) -> None:
    """Write the synthetic release into ``fixture_folder`` and convert it, unless done before."""
    folder = fixture_folder(args)
    marker = folder / "fixture.json"
    if not marker.is_file():
        if folder.exists() and any(folder.iterdir()):
            raise StoreError(f"{folder}: an unfinished fixture; delete the folder and run again")
        print(f"writing a synthetic MSR-VTT release at scale {args.scale:g} into {folder} (once)")
        write_fixture(folder, plan_fixture(config, args.scale), args.scale, 0, DEFAULT_TEXT_TOKENS)
        write_text_atomic(marker, json.dumps({"scale": args.scale, "config": str(args.config)}) + "\n")
    for needed in (config, with_eval_settings(config)):
        prepare_data(needed)


# ----------------------------------------------------------------------------- phases


def train_phase(config: Config, data, device: torch.device, precision: str,
                args: argparse.Namespace) -> tuple[dict, dict]:
    """Steady-state training figures of ``precision`` and the weights it ends with."""
    torch.manual_seed(0)
    model = build_model(config).to(device).train()
    optimizer, _ = build_optimizer(config, model)
    loss_fn = build_loss(config)
    generator = torch.Generator().manual_seed(0)

    def batches() -> Iterator:
        while True:
            yield from data.train_batches(generator)

    stream = batches()
    parts = {"data": [], "forward": [], "backward": [], "optimizer": []}

    def step(timed: bool) -> int:
        marks = [time.perf_counter()]
        batch = next(stream).to(device)
        synchronize(device)
        marks.append(time.perf_counter())
        with autocast(device, precision):
            out = model(batch.experts, batch.ind, batch.text)
        loss = loss_fn(out["cross_view_conf_matrix"])
        synchronize(device)
        marks.append(time.perf_counter())
        loss.backward()
        synchronize(device)
        marks.append(time.perf_counter())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        marks.append(time.perf_counter())
        if timed:
            for name, lo, hi in zip(parts, marks, marks[1:]):
                parts[name].append(hi - lo)
        return len(batch)

    batch = next(stream).to(device)
    flops = matmul_flops(lambda: loss_fn(model(batch.experts, batch.ind, batch.text)["cross_view_conf_matrix"])
                         .backward())
    optimizer.zero_grad(set_to_none=True)
    with PeakMemory(device) as memory:
        for _ in range(args.warmup):
            step(False)
        blocks = []
        for _ in range(args.blocks):
            start, samples = time.perf_counter(), 0
            for _ in range(args.block_steps):
                samples += step(True)
            took = time.perf_counter() - start
            blocks.append((samples / took, took))
    rate, block_s = sorted(blocks)[len(blocks) // 2]
    total = sum(sum(times) for times in parts.values())
    figures = {"samples_per_s": rate, "block_samples_per_s": [r for r, _ in blocks],
               "step_s": block_s / args.block_steps, "gflop_per_step": flops / 1e9,
               "peak_gib": memory.peak / GIB, "peak_private_gib": memory.peak_private / GIB,
               "parameters": count_trainable(model),
               **{f"{name}_share": sum(times) / total for name, times in parts.items()}}
    return figures, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def eval_flops(model, data, eval_set: EvalSet, device: torch.device, precision: str, chunk: int) -> tuple[int, int]:
    """(all FLOPs, float32 similarity FLOPs) of evaluating ``eval_set``, counted on its first
    ``chunk`` videos and their captions and scaled to the split (linear in the videos for the
    embeddings, in videos x captions for the similarities)."""
    num_videos = eval_set.num_videos
    subset = EvalSet(eval_set.split, eval_set.video_rows[:chunk], eval_set.caption_rows[:chunk],
                     eval_set.query_masks[:chunk])
    embedded = []
    with torch.no_grad():
        video_flops = matmul_flops(lambda: embedded.append(
            embed_split_videos(model, data, subset.video_rows, device, chunk, precision)))
        (vid_embds, ind), = embedded
        text = text_batch(data.store, subset.caption_rows, data.max_tokens["text"]).to(device)
        with autocast(device, precision):
            text_flops = matmul_flops(lambda: embedded.append(model.embed_text(text)))
        text_embds, weights = embedded[-1]
        sim_flops = matmul_flops(lambda: model.similarity(text_embds, weights, vid_embds, ind, merge="indep"))
    scale = num_videos / subset.num_videos
    return int((video_flops + text_flops) * scale + sim_flops * scale ** 2), int(sim_flops * scale ** 2)


def eval_phase(config: Config, data, device: torch.device, precision: str, state: dict) -> dict:
    """Full-test evaluation figures of ``precision`` with the weights ``state``."""
    model = load_model(config, state).to(device).eval()
    chunk = trainer_options(config).eval_chunk_videos
    eval_set = data.eval_set()
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        sims, _ = compute_similarities(model, data, eval_set, device, chunk, progress=False, precision=precision)
        synchronize(device)
        forward_s = time.perf_counter() - start
        start = time.perf_counter()
        masks = eval_set.query_masks.cpu().numpy()
        metrics = {"t2v": t2v_metrics(sims, masks), "v2t": v2t_metrics(sims, masks)}
        metrics_s = time.perf_counter() - start
    flops, sim_flops = eval_flops(model, data, eval_set, device, precision, chunk)
    return {"forward_s": forward_s, "metrics_s": metrics_s, "total_s": forward_s + metrics_s,
            "tflop": flops / 1e12, "similarity_tflop": sim_flops / 1e12, "peak_gib": memory.peak / GIB,
            "peak_private_gib": memory.peak_private / GIB,
            "videos": eval_set.num_videos, "queries": eval_set.num_queries,
            **{f"{d}_{k}": v for d, res in metrics.items() for k, v in res.items() if k in ("R1", "R5", "R10", "MedR")}}


# ----------------------------------------------------------------------------- report


def table(report: dict, precisions: list[str]) -> str:
    lines = [f"{'phase':26s}{'time':>12s}{'rate':>18s}{'floor':>10s}{'x floor':>9s}{'peak (private)':>20s}"]

    def row(name: str, took: float, rate: str = "", floor: float | None = None, key: str | None = None) -> None:
        against_floor = f"{floor:8.2f} s{took / floor:8.2f}x" if floor else " " * 19
        peak = f"{report[key + '_peak_gib']:6.1f} GiB ({report[key + '_peak_private_gib']:.1f})" if key else ""
        lines.append(f"{name:26s}{took:10.2f} s{rate:>18s}" + against_floor + peak)

    for split in ("train", "full_test"):
        row(f"loader build {split}", report[f"loader_{split}_s"], key=f"loader_{split}")
    for p in precisions:
        if f"train_{p}_samples_per_s" in report:
            row(f"train step {p}", report[f"train_{p}_step_s"], f"{report[f'train_{p}_samples_per_s']:.1f} samples/s",
                report[f"train_{p}_floor_s"], f"train_{p}")
            shares = ", ".join(f"{k} {report[f'train_{p}_{k}_share']:.0%}"
                               for k in ("data", "forward", "backward", "optimizer"))
            lines.append(f"{'':26s}{shares}")
    for p in precisions:
        if f"eval_{p}_total_s" in report:
            row(f"full-test forward {p}", report[f"eval_{p}_forward_s"], f"{report[f'eval_{p}_tflop']:.1f} TFLOP",
                report[f"eval_{p}_floor_s"], f"eval_{p}")
            row(f"full-test metrics {p}", report[f"eval_{p}_metrics_s"])
            lines.append(f"{'':26s}t2v R1 {report[f'eval_{p}_t2v_R1']:.2f}, v2t R1 {report[f'eval_{p}_v2t_R1']:.2f} "
                         f"({report[f'eval_{p}_queries']:,} queries x {report[f'eval_{p}_videos']:,} videos)")
    return "\n".join(lines)


def timed_loader(report: dict, split: str, config: Config, device: torch.device):
    """Build the loader of ``config`` and record its build time and peak memory under ``loader_<split>``."""
    with PeakMemory(torch.device("cpu")) as memory:
        start = time.perf_counter()
        data = build_data(config, device)
        report[f"loader_{split}_s"] = time.perf_counter() - start
    report[f"loader_{split}_peak_gib"] = memory.peak / GIB
    report[f"loader_{split}_peak_private_gib"] = memory.peak_private / GIB
    return data


def hgr_eval_main(args: argparse.Namespace) -> int:
    """The --hgr_eval phase alone: per precision, HGR's evaluation time and peak memory."""
    videos, captions = args.hgr_eval
    device = torch.device(args.device)
    report: dict = {"hgr_eval_videos": videos, "hgr_eval_captions": captions, "device": str(device),
                    "torch_threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine()}
    for precision in args.precision:
        with PeakMemory(device) as memory:
            figures = hgr_eval_figures(videos, captions, device, precision)
        figures["peak_private_gib"] = memory.peak_private / 2 ** 30
        report.update({f"hgr_eval_{precision}_{key}": value for key, value in figures.items()})
        print(f"HGR evaluation {videos} x {captions} on {device}, {precision}: {figures['total_s']:.1f} s "
              f"(videos {figures['video_embed_s']:.1f}, captions {figures['text_embed_s']:.1f}, "
              f"scoring {figures['scoring_s']:.1f}), peak memory {figures['peak_private_gib']:.2f} GiB")
    print(f"wrote {write_text_atomic(args.out, json.dumps(report, indent=2) + chr(10))}")
    return 0


def main() -> int:
    args = parse_args()
    if args.hgr_eval:
        return hgr_eval_main(args)
    config = load_config(args.config, [f"data_loader.args.data_dir={fixture_folder(args)}",
                                       f"trainer.device={args.device}"])
    device = select_device(config)
    ensure_fixture(config, args)
    report: dict = {"config": str(args.config), "scale": args.scale, "device": str(device),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "machine": platform.platform(), "processor": platform.processor() or platform.machine()}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rates = matmul_gflops(dtype, device)
        report[f"matmul_{precision}_gflop_per_s"] = max(rates.values())
        report[f"matmul_{precision}_gflop_per_s_by_shape"] = rates
    report["memory_gb_per_s"] = bandwidth_gb_per_s(device)

    test_config = with_eval_settings(config)
    data = timed_loader(report, "train", config, device)
    state = None
    for precision in args.precision:
        figures, trained = train_phase(config, data, device, precision, args)
        state = state or trained
        figures["floor_s"] = (figures["gflop_per_step"] / report[f"matmul_{precision}_gflop_per_s"]
                              + OPTIMIZER_BYTES_PER_PARAMETER * figures["parameters"] / 1e9 / report["memory_gb_per_s"])
        report.update({f"train_{precision}_{key}": value for key, value in figures.items()})
    del data
    data = timed_loader(report, "full_test", test_config, device)
    for precision in args.precision:
        figures = eval_phase(test_config, data, device, precision, state)
        figures["floor_s"] = ((figures["tflop"] - figures["similarity_tflop"]) * 1e3
                              / report[f"matmul_{precision}_gflop_per_s"]
                              + figures["similarity_tflop"] * 1e3 / report["matmul_fp32_gflop_per_s"])
        report.update({f"eval_{precision}_{key}": value for key, value in figures.items()})
    print(f"{args.config} at scale {args.scale:g} on {device} "
          f"({torch.get_num_threads()} threads, torch {torch.__version__}); "
          f"matmul fp32 {report['matmul_fp32_gflop_per_s']:.0f}, bf16 {report['matmul_bf16_gflop_per_s']:.0f} GFLOP/s; "
          f"memory {report['memory_gb_per_s']:.0f} GB/s")
    print(table(report, args.precision))
    if args.scale == 1 and args.config == DEFAULT_CONFIG and device.type == "cpu":
        report["original"] = ORIGINAL
        for p in args.precision:
            print(f"{p}: training {report[f'train_{p}_samples_per_s'] / ORIGINAL['train_samples_per_s']:.2f}x and "
                  f"full-test evaluation {ORIGINAL['eval_s'] / report[f'eval_{p}_total_s']:.2f}x the original's "
                  f"speed on a 2-core CPU")
    print(f"wrote {write_text_atomic(args.out, json.dumps(report, indent=2) + chr(10))}")
    return 0


if __name__ == "__main__":
    run_cli(main)
