"""Numeric precision of the model's forward passes: float32, or bfloat16 under autocast.

With "bf16", matrix products (and the operations torch autocasts with them) run in bfloat16
while parameters, gradients and optimiser state stay float32; the model computes its
similarities in float32 (``model.ce_module.CEModule.similarity``), so losses and metrics are
float32 too.

"auto" (the default) picks bf16 where the hardware computes it natively and fp32 elsewhere:
on a CPU without bf16 instructions torch emulates bfloat16 matrix products, dozens of times
slower than float32 ones (0.6 against 39.9 GFLOP/s on one AVX2 core), so bf16 there runs but
is slower than fp32, and the run says so once.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from utils.config.load import apply_overrides
from utils.config.options import PRECISIONS
from utils.config.resolved import Config
from utils.errors import ConfigError

CPUINFO = Path("/proc/cpuinfo")
# cpuinfo flags of native bfloat16 arithmetic: x86 AVX512-BF16 and AMX, Arm's BF16 extension.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
# Measured on a 2-core AVX2 CPU (no native bf16), MSR-VTT CE: the full-test evaluation in bf16
# took about six times as long as in fp32.
EMULATED_BF16_SLOWDOWN = "about 6x slower than fp32"


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses (``used``: "fp32" or "bf16"), what was asked for (``requested``)
    and why, in words (``reason``); ``slow``: bf16 was asked for on hardware that emulates it."""

    used: str
    requested: str
    reason: str
    slow: bool = False


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags as the kernel lists them (``flags`` on x86, ``Features`` on Arm),
    lower case; empty where there is no ``/proc/cpuinfo``."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.lower().split())
    return frozenset()


def cpu_has_native_bf16(capability: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """True when this CPU computes bfloat16 natively: an x86 CPU on which torch uses AVX-512
    (``torch.backends.cpu.get_cpu_capability()``) and which lists AVX512-BF16 or AMX-BF16, or an
    Arm CPU listing BF16. ``capability`` and ``flags`` default to this machine's."""
    capability = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    flags = cpu_flags() if flags is None else flags
    if capability.startswith("AVX"):
        return capability.startswith("AVX512") and bool(flags & {"avx512_bf16", "amx_bf16"})
    return "bf16" in flags


def has_fast_bf16(device: torch.device) -> bool:
    """True when bfloat16 matrix products are native on ``device`` (a CUDA GPU with bf16, or
    a CPU as in ``cpu_has_native_bf16``)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return cpu_has_native_bf16()


def device_kind(device: torch.device) -> str:
    """``device`` in words: the GPU's name, or the CPU's instruction set level torch uses and
    whether it has native bf16, e.g. "CPU AVX2, no native bf16"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    native = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return f"CPU {torch.backends.cpu.get_cpu_capability()}, {native}"


def choose_precision(requested: str, device: torch.device) -> PrecisionChoice:
    """The precision to run ``requested`` ("auto", "fp32" or "bf16") at on ``device``.
    ConfigError for another value."""
    if requested not in PRECISIONS:
        raise ConfigError(f"trainer.precision: expected one of {', '.join(PRECISIONS)}, got {requested!r}")
    fast, kind = has_fast_bf16(device), device_kind(device)
    if requested == "auto":
        return PrecisionChoice("bf16" if fast else "fp32", requested, f"auto on {kind}")
    if requested == "bf16" and not fast:
        return PrecisionChoice("bf16", requested, f"asked for on {kind}", slow=True)
    return PrecisionChoice(requested, requested, f"asked for on {kind}")


def use_precision(config: Config, device: torch.device) -> PrecisionChoice:
    """Choose the precision of ``config``'s ``trainer.precision`` on ``device`` and write the one
    used back into ``config`` (so the run's saved config records it)."""
    choice = choose_precision(config.get("trainer", {}).get("precision", "auto"), device)
    apply_overrides(config, [f"trainer.precision={choice.used}"])
    return choice


_warned: set[str] = set()


def report_choice(choice: PrecisionChoice, logger: logging.Logger) -> None:
    """Log the precision in use; a bf16 run on hardware that emulates it is a warning, given
    once per process."""
    if not choice.slow:
        logger.info(f"Precision: {choice.used} ({choice.reason})")
    elif choice.reason not in _warned:
        _warned.add(choice.reason)
        logger.warning(f"Precision: bf16 {choice.reason}: expect it to run {EMULATED_BF16_SLOWDOWN} "
                       "(use --precision fp32 or auto)")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context to run forward passes in at ``precision`` ("fp32" or "bf16") on ``device``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ConfigError(f"trainer.precision: expected fp32 or bf16 here (auto resolved first), got {precision!r}")
