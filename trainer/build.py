"""Build the model, data, loss, optimiser, scheduler and page writer from a resolved config.

This is where the component packages are imported, and so where they fill the registries
of ``utils.registry`` that configs name their components from.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import torch

import data_loader  # noqa: F401  (registers ExpertDataLoader)
import model  # noqa: F401  (registers models, losses, metrics)
import utils.visualizer  # noqa: F401  (registers RankingPage)
from data_loader.expert_loader import ExpertDataLoader
from data_loader.prepare import prepare_store
from model.dims import model_inputs
from trainer import optim  # noqa: F401  (registers optimisers and schedulers)
from utils.config import Config
from utils.options import TrainerOptions, options_from, used_experts
from utils.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, SCHEDULERS, VISUALIZERS


def trainer_options(config: Config) -> TrainerOptions:
    """The ``trainer`` section with every default filled in."""
    return options_from(TrainerOptions, config.get("trainer", {}))


def build_model(config: Config) -> torch.nn.Module:
    """The model of ``config["arch"]``: its registered config dataclass, built (no data read)."""
    return MODELS.build(config["arch"], **model_inputs(config.data)).build()


def prepare_data(config: Config) -> None:
    """Generate or convert what the dataset's store lacks for ``config`` (see data_loader/prepare.py)."""
    args = config["data_loader"]["args"]
    prepare_store(args["dataset_name"], args["data_dir"], args.get("synthetic_seed", 0),
                  root_feat_folder=args.get("root_feat_folder", "structured-symlinks"),
                  split_name=args.get("split_name", "val"), experts=used_experts(config["experts"]),
                  feat_aggregation=args.get("feat_aggregation", {}), text_feat=config["experts"]["text_feat"])


def build_data(config: Config, device: torch.device | None = None) -> ExpertDataLoader:
    """The data loader of ``config["data_loader"]`` over a store :func:`prepare_data` made ready;
    its features are kept on ``device`` when they fit there (``ExpertDataLoader.load_to_device``)."""
    data = DATASETS.build(config["data_loader"], experts=used_experts(config["experts"]),
                          text_feat=config["experts"]["text_feat"])
    if device is not None:
        data.load_to_device(device)
    return data


def build_loss(config: Config) -> torch.nn.Module:
    return LOSSES.build(config["loss"])


def build_optimizer(config: Config, model: torch.nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    """Optimiser over the trainable parameters, and its scheduler (None when not configured)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS.build(config["optimizer"], params)
    scheduler = SCHEDULERS.build(config["lr_scheduler"], optimizer) if config.get("lr_scheduler") else None
    return optimizer, scheduler


def build_page_writer(config: Config) -> Callable[..., Any]:
    return VISUALIZERS.build(config.get("visualizer") or {"type": "RankingPage"})


def select_device(config: Config, local_rank: int = 0) -> torch.device:
    """``trainer.device``: "auto" picks CUDA when present (and ``n_gpu`` is not 0), else CPU; "cpu",
    "cuda" (GPU ``local_rank``, one per torchrun process) or "cuda:<n>".

    ConfigError for another value, or for CUDA on a machine without it.
    """
    wanted = trainer_options(config).device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() and config.get("n_gpu", 1) != 0 else "cpu"
    try:
        device = torch.device(wanted)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise config.error("trainer.device", 'expected "auto", "cpu", "cuda" or "cuda:<n>", '
                                             f"got {json.dumps(wanted)}")
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        raise config.error("trainer.device", f"{json.dumps(wanted)} asked for, but torch {torch.__version__} "
                                             'sees no CUDA device on this machine (use "cpu" or "auto")')
    index = local_rank if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise config.error("trainer.device", f"CUDA device {index} asked for, but this machine has "
                                             f"{torch.cuda.device_count()}")
    return torch.device("cuda", index)
