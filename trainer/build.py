"""Build the model, data, loss, optimiser, scheduler and page writer from a resolved config."""
from __future__ import annotations

from typing import Any, Callable

import torch

from data_loader.expert_loader import ExpertDataLoader
from model.dims import compute_dims, used_experts
from utils.config import Config
from utils.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, SCHEDULERS, VISUALIZERS


def build_model(config: Config) -> torch.nn.Module:
    """The model of ``config["arch"]`` with dims derived from the experts config (no data read)."""
    expert_dims, _, text_dim = compute_dims(config.data)
    return MODELS.build(
        config["arch"], expert_dims=expert_dims, text_dim=text_dim,
        feat_aggregation=config["data_loader"]["args"].get("feat_aggregation", {}),
        ce_shared_dim=config["experts"].get("ce_shared_dim", 768),
        disable_nan_checks=config.get("disable_nan_checks", False),
    )


def build_data(config: Config) -> ExpertDataLoader:
    """The data loader of ``config["data_loader"]`` (generates the embedded default if needed)."""
    return DATASETS.build(config["data_loader"], experts=used_experts(config["experts"]),
                          text_feat=config["experts"]["text_feat"])


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


def select_device(config: Config) -> torch.device:
    """``trainer.device``: "auto" picks CUDA when present (and ``n_gpu`` is not 0), else CPU."""
    wanted = config["trainer"].get("device", "auto")
    if wanted == "auto":
        use_cuda = torch.cuda.is_available() and config.get("n_gpu", 1) != 0
        return torch.device("cuda" if use_cuda else "cpu")
    return torch.device(wanted)
