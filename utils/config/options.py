"""Typed options of the config sections that are plain settings rather than built objects.

Field names keep the original configs' key names. The config validator checks each section
against these dataclasses: an unknown key or a wrong type is an error before anything runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Annotated, Literal, get_args

from utils.metric_names import GMEAN_KEY


@dataclass(frozen=True)
class Bounds:
    """The range of a numeric config value, read by the validator from ``Annotated`` hints:
    ``low`` to ``high``, each end included unless ``low_open`` / ``high_open``."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        """``">= 1"``, ``"> 0"`` or ``"in (0, 1]"``."""
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.low == -math.inf:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return (f"in {'(' if self.low_open else '['}{_number(self.low)}, "
                f"{_number(self.high)}{')' if self.high_open else ']'}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else f"{value:g}"


def AtLeast(minimum: float) -> Bounds:
    """Values >= ``minimum`` (named as the annotation it makes: ``Annotated[int, AtLeast(1)]``)."""
    return Bounds(low=minimum)


def Above(minimum: float) -> Bounds:
    """Values > ``minimum``."""
    return Bounds(low=minimum, low_open=True)


Count = Annotated[int, AtLeast(1)]
Positive = Annotated[float, Above(0)]
NonNegative = Annotated[float, AtLeast(0)]
Fraction = Annotated[float, Bounds(0, 1, low_open=True)]
"""A share in (0, 1], e.g. a relevance threshold."""
Seed = Annotated[int, Bounds(-2 ** 63, 2 ** 64 - 1)]
"""What ``torch.manual_seed`` accepts."""


@dataclass(frozen=True)
class NonEmpty:
    """A string config value that must not be empty, read by the validator from ``Annotated`` hints."""


NonEmptyText = Annotated[str, NonEmpty()]


@dataclass
class ExpertsOptions:
    """``experts``: which expert features the model uses and the shared embedding size."""

    modalities: list[str] = field(default_factory=list)
    drop_feats: str = ""
    text_feat: str = "openai"
    text_agg: str = "vlad"
    ce_shared_dim: int = 768
    face_dim: int = 512
    use_zeros_for_missing: bool = False


Precision = Literal["auto", "fp32", "bf16"]  # of the forward passes (trainer/precision.py)
PRECISIONS: tuple[str, ...] = get_args(Precision)


@dataclass
class TrainerOptions:
    """``trainer``: the training loop, evaluation schedule, checkpoints and logging.

    ``device``: "auto" (CUDA when present), "cpu", "cuda" or "cuda:<n>". ``precision``: "bf16"
    autocasts the model's forward passes in training and evaluation (similarities, losses and
    metrics stay float32); "auto" uses bf16 where the hardware computes it natively, else fp32
    (trainer/precision.py). ``compile``: train through ``torch.compile(model)``.
    """

    epochs: Count = 100
    save_dir: NonEmptyText = "data/saved"
    save_period: Count = 1
    num_keep_ckpts: Count = 3
    monitor: str = f"max val_t2v_metrics_{GMEAN_KEY}"
    early_stop: Annotated[int, AtLeast(0)] = 0
    eval_every: Count = 1
    eval_chunk_videos: Count = 64
    log_every: Count = 10
    tensorboard: bool = True
    verbosity: int = 2
    device: str = "auto"
    precision: Precision = "auto"
    compile: bool = False


@dataclass
class DistilOptions:
    """``distil_params`` (TeachText; used when the top-level ``distil_loss`` is true).

    ``teachers``: teacher files, each at ``base_path`` + file (see ``data_loader/teachtext/teachers.py``);
    ``moee``: the teachers' embeddings have each expert's own width instead of
    ``experts.ce_shared_dim`` (one flag for all teachers or one per teacher); ``distil_weight``:
    the weight of the distillation term added to the ranking loss (1 in the original).
    """

    base_path: str = "teachers/"
    teachers: list[str] = field(default_factory=list)
    moee: bool | list[bool] = False
    distil_weight: NonNegative = 1.0


def options_from(cls: type, section: dict) -> object:
    """Build an options dataclass from an already validated config section."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in section.items() if k in names})


def used_experts(experts_cfg: dict) -> list[str]:
    """Experts in use: ``sorted(modalities)`` minus the comma-separated ``drop_feats``."""
    dropped = {name.strip() for name in experts_cfg.get("drop_feats", "").split(",") if name.strip()}
    return [name for name in sorted(experts_cfg["modalities"]) if name not in dropped]
