"""Benchmark training and evaluation on a synthetic MSR-VTT at full scale, against this machine's own floor.

The first run writes a synthetic MSR-VTT release at the real expert dimensions of
configs/msrvtt/train-full-ce.json (misc/make_release_fixture.py; 6,513 / 497 / 2,990 videos at
--scale 1) under --cache and converts it into the feature store; later runs reuse both. The
release is written into a temporary folder renamed into place once complete, so a run
interrupted while writing it leaves nothing that a later run would take for a finished cache.
Then it measures, in one process:

* the machine: its kind (the instruction set level torch uses, and whether it computes bf16
  natively; a GPU's name), matrix-product throughput in fp32 and bf16 (the fastest of a few
  shapes the model uses, each the median of --floor_repeats timings) and memory bandwidth (a
  large copy, median too), measured before and after the phases; a warning when the timings of
  the same product spread by more than a fifth (the machine is busy: ratios are then unsure);
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
  optimiser's memory traffic (read p, g, m, v; write p, m, v) at the measured bandwidth;
* the original code's figures as ratios, only when they were measured on this machine kind.

Prints a table and writes every figure as JSON (--out), keyed by phase, precision and unit,
e.g. ``train_fp32_samples_per_s``.

With --scales it instead times, at each scale, the train loader's build, a few training steps
(scaled to an epoch), the test loader's build and the full-test evaluation, with each phase's
peak memory, and prints how they grow with the dataset.

With ``--hgr_eval VIDEOS,CAPTIONS`` it instead times HGR's pairwise evaluation of that many
videos and captions (random weights, generated inputs; misc/bench_hgr.py), e.g. the EK-100
test's 9668,3842, per precision, with the phase's peak memory.

--precision takes "auto" (the default: bf16 where the hardware computes it natively, else
fp32; trainer/precision.py), "fp32" and "bf16", one or several.

Examples:
    python3 misc/benchmark.py --precision fp32                  # full scale, fp32
    python3 misc/benchmark.py --precision fp32 bf16             # both
    python3 misc/benchmark.py --scale 0.05 --block_steps 3      # a quick look
    python3 misc/benchmark.py --scales 0.25 0.5 1 2             # growth with the dataset
    python3 misc/benchmark.py --device cuda --precision bf16
    python3 misc/benchmark.py --hgr_eval 9668,3842 --precision bf16   # HGR on the EK-100 test size
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
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
from trainer.precision import PRECISIONS, autocast, choose_precision, device_kind
from utils.atomic import atomic_dir, write_text_atomic
from utils.cli import run_cli
from utils.config.load import load_config, with_eval_settings
from utils.config.resolved import Config
from utils.summary import count_trainable

DEFAULT_CONFIG = Path("configs/msrvtt/train-full-ce.json")
# The original CE code measured side by side with this project on one machine kind, with this
# config at scale 1: training steady state, and the full-test evaluation split in 4 slices by
# hand (its single pass ran out of memory at 23 GiB). Compared only on the same machine kind.
ORIGINAL = {"machine_kind": "CPU AVX512, native bf16", "threads": 2, "train_samples_per_s": 31.0, "eval_s": 195.0}
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]  # what every phase and floor is timed with (--clock)
BUSY_SPREAD = 0.2  # (slowest - fastest) / median of one product's timings above which the machine is busy
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
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["auto"],
                        help="precisions to time; auto: bf16 where the hardware computes it natively, else "
                             "fp32 (default: auto)")
    parser.add_argument("--scales", nargs="+", type=float, metavar="SCALE",
                        help="time loader builds, an epoch of training (from --blocks x --block_steps steps) and "
                             "the full-test evaluation at each scale, and print how they grow")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="time phases and floors in wall time (default) or in this process's CPU time: on a "
                             "machine other jobs share, run with OMP_NUM_THREADS=1 and --clock cpu, so that time "
                             "waiting for a core does not count")
    parser.add_argument("--floor_repeats", type=int, default=7,
                        help="timings per matrix product and copy for the floors, each time measured (default: 7)")
    parser.add_argument("--device", default="cpu", help='"cpu" (default), "cuda" or "cuda:<n>"')
    parser.add_argument("--warmup", type=int, help="untimed training steps first (default: 3; 1 with --scales)")
    parser.add_argument("--blocks", type=int, help="timed blocks of training steps (default: 3; 1 with --scales)")
    parser.add_argument("--block_steps", type=int,
                        help="training steps per block (default: 10; 4 with --scales)")
    parser.add_argument("--cache", type=Path, default=Path("data/benchmark"),
                        help="folder of the cached synthetic release and store (default: %(default)s)")
    parser.add_argument("--hgr_eval", metavar="VIDEOS,CAPTIONS", type=pair_of_counts,
                        help="time only HGR's pairwise evaluation of this many videos and captions "
                             "(misc/bench_hgr.py), e.g. 9668,3842 (EK-100 test)")
    parser.add_argument("--out", type=Path, default=Path("data/benchmark/results.json"),
                        help="JSON results (default: %(default)s)")
    args = parser.parse_args()
    for name, single, several in (("warmup", 3, 1), ("blocks", 3, 1), ("block_steps", 10, 4)):
        if getattr(args, name) is None:
            setattr(args, name, several if args.scales else single)
    return args


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
    start = clock()
    fn()
    synchronize(device)
    return clock() - start


def product_timings(dtype: torch.dtype, device: torch.device, repeats: int,
                    budget_s: float = 3.0) -> dict[tuple[int, int, int], list[float]]:
    """Seconds of ``[m, k] @ [k, n]`` in ``dtype`` for each (m, k, n) of MATMUL_SHAPES, after one
    untimed run: ``repeats`` timings, fewer (at least one) where they take over ``budget_s`` in all
    (bfloat16 emulated on a CPU without it runs at about 1 GFLOP/s)."""
    timings = {}
    for m, k, n in MATMUL_SHAPES:
        a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
        spent = seconds(lambda a=a, b=b: a @ b, device)
        taken: list[float] = []
        while len(taken) < repeats and (spent < budget_s or not taken):
            taken.append(seconds(lambda a=a, b=b: a @ b, device))
            spent += taken[-1]
        timings[(m, k, n)] = taken
    return timings


def copy_timings(device: torch.device, repeats: int, size: int = 1 << 27) -> list[float]:
    """Seconds of copying ``size`` float32 values, ``repeats`` times after one untimed copy."""
    src, dst = torch.ones(size, device=device), torch.empty(size, device=device)
    seconds(lambda: dst.copy_(src), device)
    return [seconds(lambda: dst.copy_(src), device) for _ in range(repeats)]


def spread(timings: list[float]) -> float:
    """(slowest - fastest) / median of ``timings``."""
    return (max(timings) - min(timings)) / statistics.median(timings)


class Floors:
    """This machine's matrix-product rate per precision and memory bandwidth, from timings taken
    at several moments of the run (``measure``): each product's median timing, the fastest
    product's rate, and how far the timings of that product spread."""

    def __init__(self, device: torch.device, precisions: list[str], repeats: int):
        self.device, self.repeats = device, repeats
        self.dtypes = {p: {"fp32": torch.float32, "bf16": torch.bfloat16}[p] for p in dict.fromkeys(precisions)}
        self.products = {p: {} for p in self.dtypes}
        self.copies: list[float] = []

    def measure(self) -> None:
        for precision, dtype in self.dtypes.items():
            for shape, taken in product_timings(dtype, self.device, self.repeats).items():
                self.products[precision].setdefault(shape, []).extend(taken)
        self.copies += copy_timings(self.device, self.repeats)

    def figures(self) -> dict:
        """``matmul_<p>_gflop_per_s`` (and ``_by_shape``, ``_spread``), ``memory_gb_per_s`` (and ``_spread``)."""
        out = {}
        for precision, by_shape in self.products.items():
            rates = {f"{m}x{k}x{n}": 2 * m * k * n / statistics.median(t) / 1e9 for (m, k, n), t in by_shape.items()}
            best = max(rates, key=rates.get)
            out[f"matmul_{precision}_gflop_per_s"] = rates[best]
            out[f"matmul_{precision}_gflop_per_s_by_shape"] = rates
            out[f"matmul_{precision}_spread"] = spread(by_shape[tuple(int(x) for x in best.split("x"))])
        out["memory_gb_per_s"] = 2 * 4 * (1 << 27) / statistics.median(self.copies) / 1e9
        out["memory_spread"] = spread(self.copies)
        return out


def matmul_flops(fn: Callable[[], object]) -> int:
    """Matrix-product FLOPs of running ``fn`` (forward and, inside it, backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- data


def fixture_folder(cache: Path, scale: float) -> Path:
    return cache / f"MSRVTT-scale{scale:g}"


def ensure_fixture(config: Config, folder: Path, scale: float) -> None:
    """Write the synthetic release at ``scale`` into ``folder`` and convert it for ``config`` and
    its test run, unless done before. The release is written into a temporary folder renamed to
    ``folder`` once complete (with its marker, fixture.json); a ``folder`` without the marker is
    left from an interrupted run of an earlier version and is written again. The conversion
    itself resumes where it stopped (data_loader/released/convert.py)."""
    marker = folder / "fixture.json"
    if not marker.is_file():
        if folder.exists():
            print(f"{folder}: left unfinished by an interrupted run; writing it again")
            shutil.rmtree(folder)
        print(f"writing a synthetic MSR-VTT release at scale {scale:g} into {folder} (once)")
        with atomic_dir(folder) as building:
            write_fixture(building, plan_fixture(config, scale), scale, 0, DEFAULT_TEXT_TOKENS)
            write_text_atomic(building / marker.name, json.dumps({"scale": scale}) + "\n")
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
        marks = [clock()]
        batch = next(stream).to(device)
        synchronize(device)
        marks.append(clock())
        with autocast(device, precision):
            out = model(batch.experts, batch.ind, batch.text)
        loss = loss_fn(out["cross_view_conf_matrix"])
        synchronize(device)
        marks.append(clock())
        loss.backward()
        synchronize(device)
        marks.append(clock())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        marks.append(clock())
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
            start, samples = clock(), 0
            for _ in range(args.block_steps):
                samples += step(True)
            took = clock() - start
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
        start = clock()
        sims, _ = compute_similarities(model, data, eval_set, device, chunk, progress=False, precision=precision)
        synchronize(device)
        forward_s = clock() - start
        start = clock()
        masks = eval_set.query_masks.cpu().numpy()
        metrics = {"t2v": t2v_metrics(sims, masks), "v2t": v2t_metrics(sims, masks)}
        metrics_s = clock() - start
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
        start = clock()
        data = build_data(config, device)
        report[f"loader_{split}_s"] = clock() - start
    report[f"loader_{split}_peak_gib"] = memory.peak / GIB
    report[f"loader_{split}_peak_private_gib"] = memory.peak_private / GIB
    return data


def scale_config(args: argparse.Namespace, scale: float) -> tuple[Config, Path]:
    """``--config`` reading the synthetic release of ``scale``, and that release's folder."""
    folder = fixture_folder(args.cache, scale)
    return load_config(args.config, [f"data_loader.args.data_dir={folder}", f"trainer.device={args.device}"]), folder


def used_precisions(requested: list[str], device: torch.device) -> list[str]:
    """The precisions ``requested`` resolve to on ``device`` (auto chosen), each once; a warning
    line for bf16 on hardware that emulates it."""
    used = []
    for precision in requested:
        choice = choose_precision(precision, device)
        if choice.slow and choice.used not in used:
            print(f"warning: bf16 {choice.reason}: it runs emulated, far slower than fp32")
        used.append(choice.used)
    return list(dict.fromkeys(used))


def add_floors(report: dict, precisions: list[str]) -> None:
    """Each phase's floor (``<phase>_<p>_floor_s``) from the machine's figures in ``report``."""
    for p in precisions:
        train = f"train_{p}_"
        if train + "gflop_per_step" in report:
            report[train + "floor_s"] = (report[train + "gflop_per_step"] / report[f"matmul_{p}_gflop_per_s"]
                                         + OPTIMIZER_BYTES_PER_PARAMETER * report[train + "parameters"] / 1e9
                                         / report["memory_gb_per_s"])
        evaluation = f"eval_{p}_"
        if evaluation + "tflop" in report:
            similarity = report[evaluation + "similarity_tflop"]
            report[evaluation + "floor_s"] = ((report[evaluation + "tflop"] - similarity) * 1e3
                                              / report[f"matmul_{p}_gflop_per_s"]
                                              + similarity * 1e3 / report["matmul_fp32_gflop_per_s"])


def machine_lines(report: dict, precisions: list[str]) -> list[str]:
    """The machine's kind and floors in words, and a warning when its timings spread (busy)."""
    rates = ", ".join(f"{p} {report[f'matmul_{p}_gflop_per_s']:.0f}" for p in precisions)
    lines = [f"{report['config']} at scale {report['scale']:g} on {report['device']}, {report['machine_kind']} "
             f"({report['torch_threads']} threads, torch {report['torch']}, {report['clock']} time); "
             f"matmul {rates} GFLOP/s; "
             f"memory {report['memory_gb_per_s']:.0f} GB/s (medians)"]
    spreads = {k: v for k, v in report.items() if k.endswith("_spread") and v > BUSY_SPREAD}
    if spreads:
        worst = max(spreads, key=spreads.get)
        lines.append(f"warning: the machine is busy: timings of the same work spread by up to {spreads[worst]:.0%} "
                     f"({worst.removesuffix('_spread')}); times and floors are less sure than usual")
    return lines


def original_lines(report: dict, precisions: list[str]) -> list[str]:
    """The original code's speed against this run's, only for the machine kind it was measured on."""
    if (report["machine_kind"], report["torch_threads"], report["clock"]) != (ORIGINAL["machine_kind"],
                                                                              ORIGINAL["threads"], "wall"):
        return [f"the original code was measured on a {ORIGINAL['machine_kind']} with {ORIGINAL['threads']} threads "
                f"only: no comparison on this {report['machine_kind']} with {report['torch_threads']} threads"]
    report["original"] = ORIGINAL
    return [f"{p}: training {report[f'train_{p}_samples_per_s'] / ORIGINAL['train_samples_per_s']:.2f}x and "
            f"full-test evaluation {ORIGINAL['eval_s'] / report[f'eval_{p}_total_s']:.2f}x the original's "
            f"speed on this machine kind" for p in precisions]


def detailed_run(args: argparse.Namespace) -> dict:
    """Every phase at ``--scale``, against the floors; prints the table, returns the figures."""
    config, folder = scale_config(args, args.scale)
    device = select_device(config)
    ensure_fixture(config, folder, args.scale)
    precisions = used_precisions(args.precision, device)
    floors = Floors(device, ["fp32", *precisions], args.floor_repeats)
    floors.measure()
    report: dict = {"config": str(args.config), "scale": args.scale, "device": str(device),
                    "machine_kind": device_kind(device), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "machine": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "precisions": precisions,
                    "clock": args.clock}
    test_config = with_eval_settings(config)
    data = timed_loader(report, "train", config, device)
    state = None
    for precision in precisions:
        figures, trained = train_phase(config, data, device, precision, args)
        state = state or trained
        report.update({f"train_{precision}_{key}": value for key, value in figures.items()})
    del data
    data = timed_loader(report, "full_test", test_config, device)
    for precision in precisions:
        figures = eval_phase(test_config, data, device, precision, state)
        report.update({f"eval_{precision}_{key}": value for key, value in figures.items()})
    floors.measure()  # again after the phases: the floors are the medians over the whole run
    report.update(floors.figures())
    add_floors(report, precisions)
    print("\n".join(machine_lines(report, list(dict.fromkeys(["fp32", *precisions])))))
    print(table(report, precisions))
    for p in precisions:
        print(f"{p}: training {report[f'train_{p}_step_s'] / report[f'train_{p}_floor_s']:.2f}x and full-test "
              f"evaluation {report[f'eval_{p}_total_s'] / report[f'eval_{p}_floor_s']:.2f}x this machine's floor")
    if args.scale == 1 and args.config == DEFAULT_CONFIG and device.type == "cpu":
        print("\n".join(original_lines(report, precisions)))
    return report


SCALE_COLUMNS = (("train videos", "train_videos", "{:,}"), ("loader train", "loader_train_s", "{:.1f} s"),
                 ("epoch", "epoch_s", "{:.0f} s"), ("train peak", "train_peak_gib", "{:.1f} GiB"),
                 ("test queries x videos", "test_size", "{}"), ("loader test", "loader_full_test_s", "{:.1f} s"),
                 ("evaluation", "eval_s", "{:.1f} s"), ("eval peak", "eval_peak_gib", "{:.1f} GiB"))


def scale_table(rows: list[dict]) -> str:
    """One line per scale: the columns of SCALE_COLUMNS."""
    widths = [max(len(title), 10) for title, _, _ in SCALE_COLUMNS]
    lines = [f"{'scale':>6s}  " + "  ".join(f"{title:>{w}s}" for (title, _, _), w in zip(SCALE_COLUMNS, widths))]
    for row in rows:
        lines.append(f"{row['scale']:6g}  " + "  ".join(f"{fmt.format(row[key]):>{w}s}"
                                                        for (_, key, fmt), w in zip(SCALE_COLUMNS, widths)))
    return "\n".join(lines)


def scales_run(args: argparse.Namespace) -> dict:
    """Loader builds, an epoch of training and the full-test evaluation at each of ``--scales``, in
    the first precision of ``--precision``; prints the growth table, returns the figures."""
    rows = []
    for scale in args.scales:
        config, folder = scale_config(args, scale)
        device = select_device(config)
        ensure_fixture(config, folder, scale)
        precision = used_precisions(args.precision, device)[0]
        row: dict = {"scale": scale, "precision": precision, "machine_kind": device_kind(device)}
        data = timed_loader(row, "train", config, device)
        figures, state = train_phase(config, data, device, precision, args)
        batches = data.num_train_batches(1)
        row.update({"train_videos": len(data.train_rows), "train_batches": batches, "step_s": figures["step_s"],
                    "epoch_s": figures["step_s"] * batches, "train_peak_gib": figures["peak_gib"]})
        del data
        data = timed_loader(row, "full_test", with_eval_settings(config), device)
        figures = eval_phase(with_eval_settings(config), data, device, precision, state)
        del data
        row.update({"eval_s": figures["total_s"], "eval_peak_gib": figures["peak_gib"],
                    "test_size": f"{figures['queries']:,} x {figures['videos']:,}"})
        rows.append(row)
        print(f"scale {scale:g} done: epoch {row['epoch_s']:.0f} s, evaluation {row['eval_s']:.1f} s", flush=True)
    print(f"{args.config} on {rows[0]['machine_kind']} ({torch.get_num_threads()} threads, {args.clock} time), "
          f"{rows[0]['precision']}; "
          f"epoch = step time x batches per epoch ({args.blocks} x {args.block_steps} steps timed)")
    print(scale_table(rows))
    return {"config": str(args.config), "torch_threads": torch.get_num_threads(), "clock": args.clock, "scales": rows}


def hgr_eval_run(args: argparse.Namespace) -> dict:
    """The --hgr_eval phase alone: per precision, HGR's evaluation time and peak memory."""
    videos, captions = args.hgr_eval
    device = torch.device(args.device)
    report: dict = {"hgr_eval_videos": videos, "hgr_eval_captions": captions, "device": str(device),
                    "torch_threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine()}
    for precision in used_precisions(args.precision, device):
        with PeakMemory(device) as memory:
            figures = hgr_eval_figures(videos, captions, device, precision)
        figures["peak_private_gib"] = memory.peak_private / 2 ** 30
        report.update({f"hgr_eval_{precision}_{key}": value for key, value in figures.items()})
        print(f"HGR evaluation {videos} x {captions} on {device}, {precision}: {figures['total_s']:.1f} s "
              f"(videos {figures['video_embed_s']:.1f}, captions {figures['text_embed_s']:.1f}, "
              f"scoring {figures['scoring_s']:.1f}), peak memory {figures['peak_private_gib']:.2f} GiB")
    return report


def main() -> int:
    global clock
    args = parse_args()
    clock = CLOCKS[args.clock]
    if args.hgr_eval:
        report = hgr_eval_run(args)
    else:
        report = scales_run(args) if args.scales else detailed_run(args)
    print(f"wrote {write_text_atomic(args.out, json.dumps(report, indent=2) + chr(10))}")
    return 0


if __name__ == "__main__":
    run_cli(main)
