"""Configs written by the original Collaborative Experts trainer, translated to this project's schema.

The original trainer saves the merged config of every run as ``config.json`` next to its
checkpoints (and pickles the same dict into them). Such a config is complete: its
``inherit_from`` names the parents it was already merged with, so it is never followed
here. (Unmerged experiment files of the original repository are not read this way.)

:func:`translate_original` turns one into this project's schema. Each key is

* kept: same name, same meaning (most of ``experts``, ``arch``, ``data_loader``, ``loss``,
  ``lr_scheduler``, ``trainer``);
* mapped (:func:`_map_sections`): ``trainer.val_freq`` -> ``trainer.eval_every``;
  ``distil_params: null`` -> no ``distil_params``; visualizer
  ``Visualizer`` -> ``RankingPage`` (``num_samples`` -> ``num_queries``, at most
  ``MAX_PAGE_QUERIES``; ``src_video_dir`` kept); optimiser ``RAdam`` -> torch's ``RAdam`` with
  ``decoupled_weight_decay`` (the original's RAdam decays weights that way; see
  ``trainer/ranger.py``), ``Ranger`` -> this project's ``Ranger``; ``concat_experts`` ->
  also ``concat_zero_pad_bug`` (the original always had that behaviour);
  ``eval_mode: "fixed_num_epochs"`` -> ``trainer.monitor: "off"`` (the last epoch is the
  one tested); ``eval_settings: false`` (no separate test run) -> no ``eval_settings``, so
  the test run evaluates the training config's own evaluation split, which is what the
  original reported for those configs;
* dropped, only where the value changes nothing this project computes: the table
  :data:`DROPPED` lists every such key with the values that may be dropped and why. Any
  other value of a listed key stops with a one-line :class:`ConfigError` naming the key, as
  does a used expert whose ``feat_aggregation`` entry asks for temporal relation segments
  (``trn_seg``, the original's ``trn_config``).

The same rules apply inside ``eval_settings``. Keys in none of these groups are kept and
meet the usual validation, which names any key this project does not know.
"""
from __future__ import annotations

import copy
import inspect
import json
import logging
from pathlib import Path
from typing import Any, Callable

import torch

from utils.errors import ConfigError

# Top-level and section keys that only the original trainer writes.
ORIGINAL_TOP_KEYS = frozenset({"log_name", "eval_mode", "eval_config", "text_embedding_model_configs"})
ORIGINAL_TRAINER_KEYS = frozenset({"val_freq", "save_only_best", "skip_first_n_saves", "include_optim_in_ckpts"})
ORIGINAL_LOADER_KEYS = frozenset({"num_workers", "trn_cat", "text_dropout", "fuse_captions", "refresh_lru_cache"})
EVAL_MODES = ("test_run", "fixed_num_epochs")
MAX_PAGE_QUERIES = 100

Accept = Callable[[Any, dict], bool]
log = logging.getLogger(__name__)


def _any(value: Any, config: dict) -> bool:
    return True


def _off(value: Any, config: dict) -> bool:
    return not value


# key path -> (which values may be dropped, why dropping them changes no result).
DROPPED: dict[str, tuple[Accept, str]] = {
    "inherit_from": (_any, "the original wrote the config already merged with these parents"),
    "log_name": (_any, "file name of the original's JSON log"),
    "text_embedding_model_configs": (_any, "the original's table of text dims; here they follow experts.text_feat"),
    "eval_config": (_any, "path of a separate evaluation config; training never reads it"),
    "eval_mode": (lambda value, config: value in EVAL_MODES,
                  "how the original summarised runs; 'fixed_num_epochs' is kept as trainer.monitor 'off'"),
    "tester": (_any, "output folder and verbosity of the original's test run; here the test run writes "
                     "into the training run's folders"),
    "disable_gpu": (_any, "device of the original's test run; the metrics do not depend on it"),
    "force_cpu_val": (_any, "device of the original's validation; the metrics do not depend on it"),
    "task": (lambda value, config: value == "retrieval", "text-video retrieval is the only task here"),
    "manual_linear_init": (_off, "only the standard initialisation is supported"),
    "cache_targets": (_off, "classification predictions are not cached here"),
    "experts.text_dim": (_any, "the original never reads it: the text dim follows experts.text_feat"),
    "arch.args.trn_config": (_off, "temporal relation networks are not supported"),
    "arch.args.spatial_feats": (_off, "detection-sem options are not supported"),
    "arch.args.kron_dets": (_off, "detection-sem options are not supported"),
    "arch.args.coord_dets": (_off, "detection-sem options are not supported"),
    "arch.args.rand_proj": (_off, "detection-sem options are not supported"),
    "arch.args.geometric_mlp": (_off, "detection-sem options are not supported"),
    "data_loader.args.num_workers": (_any, "worker processes change loading speed only"),
    "data_loader.args.refresh_lru_cache": (_any, "controls the original's in-process dataset cache"),
    "data_loader.args.trn_cat": (_off, "temporal relation features are not supported (the original's "
                                       "loader refuses them too)"),
    "data_loader.args.text_dropout": (_off, "caption tokens are never dropped here"),
    "data_loader.args.drop_last": (_off, "the last partial batch of an epoch is used here (unless it holds "
                                             "a single video)"),
    "data_loader.args.spatial_feats": (_off, "detection-sem options are not supported"),
    "data_loader.args.cls_partitions": (_any, "read only by classification tasks"),
    "visualizer.args.vis_vid_freq": (_any, "how often the original rewrote its page"),
    "trainer.save_only_best": (_any, "which checkpoint files are written; the best epoch is still "
                                     "trained_model.pth and is the one tested"),
    "trainer.skip_first_n_saves": (_any, "which checkpoint files are written"),
    "trainer.include_optim_in_ckpts": (_any, "checkpoints here always hold the optimiser state"),
    "trainer.early_stop": (lambda value, config: isinstance(value, (int, float)) and value >= 1,
                           "the original resets its counter every epoch, so a value >= 1 never stops a run "
                           "(0 stops at the first evaluation without improvement: trainer.early_stop 1 here)"),
}


def is_original_config(data: dict) -> bool:
    """True for a config written by the original trainer (it has keys only the original writes)."""
    trainer = data.get("trainer")
    visualizer = data.get("visualizer")
    loader = data.get("data_loader")
    loader_args = loader.get("args") if isinstance(loader, dict) else None
    experts = data.get("experts")
    return bool(
        ORIGINAL_TOP_KEYS & data.keys()
        or (isinstance(trainer, dict) and ORIGINAL_TRAINER_KEYS & trainer.keys())
        or (isinstance(visualizer, dict) and visualizer.get("type") == "Visualizer")
        or (isinstance(loader_args, dict) and ORIGINAL_LOADER_KEYS & loader_args.keys())
        or (isinstance(experts, dict) and "text_dim" in experts)
    )


def _pop_path(tree: dict, keypath: str) -> tuple[bool, Any]:
    """Remove ``keypath`` (dotted) from ``tree``; returns (found, value)."""
    *parents, last = keypath.split(".")
    node = tree
    for part in parents:
        node = node.get(part)
        if not isinstance(node, dict):
            return False, None
    if last not in node:
        return False, None
    return True, node.pop(last)


def _drop(tree: dict, prefix: str, config: dict, path: str) -> None:
    """Apply :data:`DROPPED` to ``tree`` (the config, or its ``eval_settings`` with that prefix);
    each dropped key is noted in the log."""
    for keypath, (accept, why) in DROPPED.items():
        found, value = _pop_path(tree, keypath)
        if found and not accept(value, config):
            raise ConfigError(f"{path}: {prefix}{keypath}: {json.dumps(value)} is not supported here ({why})")
        if found:
            log.debug(f"{path}: {prefix}{keypath} ignored: {why}")


def _refuse_trn_segments(config: dict, path: str) -> None:
    """A used expert with ``trn_seg`` turns on the original's temporal relation network (trn_config)."""
    args = config.get("data_loader", {}).get("args", {})
    for expert in config.get("experts", {}).get("modalities", []):
        if "trn_seg" in args.get("feat_aggregation", {}).get(expert, {}):
            raise ConfigError(f"{path}: data_loader.args.feat_aggregation.{expert}.trn_seg: temporal relation "
                              "networks (trn_config) are not supported here")


def _map_sections(tree: dict, path: str) -> None:
    """Rename and convert the sections whose names or types differ from the original's."""
    if "distil_params" in tree and tree["distil_params"] is None:  # the original's "no teachers"
        del tree["distil_params"]
    trainer = tree.get("trainer")
    if isinstance(trainer, dict) and "val_freq" in trainer:
        trainer["eval_every"] = trainer.pop("val_freq")
    visualizer = tree.get("visualizer")
    if isinstance(visualizer, dict) and visualizer.get("type") == "Visualizer":
        args = dict(visualizer.get("args", {}))
        page_args = {"num_queries": min(args.pop("num_samples"), MAX_PAGE_QUERIES)} if "num_samples" in args else {}
        tree["visualizer"] = {"type": "RankingPage", "args": {**page_args, **args}}
    optimizer = tree.get("optimizer")
    if isinstance(optimizer, dict) and optimizer.get("type") == "RAdam":
        args = optimizer.setdefault("args", {})
        if "decoupled_weight_decay" in inspect.signature(torch.optim.RAdam).parameters:
            args["decoupled_weight_decay"] = True
        elif args.get("weight_decay"):
            raise ConfigError(f"{path}: optimizer: the original's RAdam decays weights decoupled, which "
                              f"torch.optim.RAdam does from torch 2.2 on (this is torch {torch.__version__})")
    arch = tree.get("arch")
    arch_args = arch.get("args") if isinstance(arch, dict) else None
    if isinstance(arch_args, dict) and arch_args.get("concat_experts"):
        arch_args.setdefault("concat_zero_pad_bug", True)


def translate_original(data: dict, origin: dict[str, str], path: str | Path) -> dict:
    """This project's config equivalent to ``data``, an original resolved config.

    ``origin`` is filled with ``path`` as the source of every top-level key, so validation
    errors name the file. Raises a one-line ConfigError for a value this project cannot honour.
    """
    source = str(path)
    config = copy.deepcopy(data)
    if config.get("eval_mode") == "fixed_num_epochs":
        config.setdefault("trainer", {})["monitor"] = "off"
    settings = config.get("eval_settings")
    if settings is False:
        del config["eval_settings"]
    elif isinstance(settings, dict):
        _drop(settings, "eval_settings.", data, source)
        _map_sections(settings, source)
    elif "eval_settings" in config:
        raise ConfigError(f"{source}: eval_settings: expected an object or false, got {json.dumps(settings)}")
    _drop(config, "", data, source)
    _refuse_trn_segments(config, source)
    _map_sections(config, source)
    origin.update({key: source for key in config})
    return config
