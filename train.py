"""Train a text-video retrieval model from a JSON config.

Examples:
  python3 train.py --config configs/synthetic/train-ce.json
  python3 train.py --config configs/synthetic/train-ce.json --set trainer.epochs=3 optimizer.args.lr=1e-3
  python3 train.py --resume data/saved/models/synthetic-train-ce/<run>/checkpoint-epoch5.pth
  python3 train.py --resume original/checkpoint-epoch10.pth   (written by the original CE trainer)
  python3 train.py --config configs/synthetic/train-ce.json --dry_run
  python3 train.py --config configs/synthetic/train-ce.json --seeds 0,1,2   (one run per seed)
  python3 train.py --config configs/msrvtt/train-full-ce.json --device cuda --precision bf16
  torchrun --nproc_per_node=2 train.py --config configs/synthetic/train-ce.json   (data parallel)
"""
from __future__ import annotations

import utils.cpu_memory  # noqa: F401  (first, before torch: how large CPU tensors get memory)

# isort: split

import argparse
import copy
from pathlib import Path

import torch

from logger.logger import setup_logging
from report.run_folder import RunDirs, experiment_name, new_run_dirs, remove_run_dirs, run_dirs_of_checkpoint
from trainer import distributed
from trainer.build import (
    build_data,
    build_distillation,
    build_loss,
    build_model,
    build_optimizer,
    build_page_writer,
    initialise_weights,
    prepare_data,
    select_device,
    trainer_options,
)
from trainer.checkpoints.files import (
    config_for_checkpoint,
    is_own_checkpoint,
    load_any_checkpoint,
    resumable_checkpoint,
)
from trainer.trainer import Trainer
from utils.cli import add_device_options, device_overrides, run_cli
from utils.config.load import apply_overrides, with_eval_settings
from utils.config.resolved import Config
from utils.errors import ConfigError
from utils.summary import module_summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="config file (JSON, may use inherit_from)")
    parser.add_argument("--resume", type=Path,
                        help="checkpoint to continue from; its saved config is used unless --config is given "
                             "(a best-model file continues from the epoch checkpoint of its epoch)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                        help="override config keys, e.g. trainer.epochs=3 (values parsed as JSON)")
    parser.add_argument("--dry_run", action="store_true",
                        help="build the model from the config alone, print a summary and the parameter count, exit")
    parser.add_argument("--seeds", type=seed_list, metavar="S1,S2,...",
                        help="train one run per seed (each sets the config's seed), e.g. 0,1,2")
    add_device_options(parser)
    args = parser.parse_args()
    args.set += device_overrides(args)
    return args


def seed_list(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat: {text!r}")
    return seeds


def with_seeds(config: Config, seeds: list[int] | None) -> list[Config]:
    """One copy of ``config`` per seed (``seed`` set as by ``--set seed=S``); ``[config]`` without seeds."""
    if not seeds:
        return [config]
    configs = []
    for seed in seeds:
        seeded = Config(copy.deepcopy(config.data), dict(config.origin), config.path)
        apply_overrides(seeded, [f"seed={seed}"])
        configs.append(seeded)
    return configs


def resolve_config(args: argparse.Namespace, state: dict | None) -> Config:
    if args.config is None and state is None:
        raise ConfigError("train.py: give --config (or --resume with a checkpoint that holds its config)")
    return config_for_checkpoint(state, args.resume, args.config, args.set)


def resumed_run_dirs(checkpoint: Path, state: dict, config: Config) -> RunDirs:
    """This project's checkpoints continue in their own run folder; one written by the original
    trainer continues in a new run folder of the same experiment, leaving its files untouched."""
    if is_own_checkpoint(state):
        return run_dirs_of_checkpoint(checkpoint)
    return new_run_dirs(Path(trainer_options(config).save_dir), Path(checkpoint).resolve().parent.parent.name)


def main() -> int:
    args = parse_args()
    if args.seeds and args.resume is not None:
        raise ConfigError("train.py: --seeds starts new runs and cannot be combined with --resume")
    state = None
    if args.resume is not None:
        args.resume, state = resumable_checkpoint(args.resume, load_any_checkpoint(args.resume))
    config = resolve_config(args, state)
    if args.dry_run:
        with torch.device("meta"):
            model = build_model(config)
        print(module_summary(model))
        return 0
    place = distributed.from_environment()
    device = select_device(config, place.local_rank)
    place = distributed.start(place, device)
    for run_config in with_seeds(config, args.seeds):
        train_run(args, run_config, state, device, place)
    distributed.stop(place)
    return 0


def train_run(args: argparse.Namespace, config: Config, state: dict | None, device: torch.device,
              place: distributed.Distributed) -> None:
    """Train one run of ``config`` in a new run folder (or continue the checkpoint ``state``).

    Everything that can fail on bad input (data, model, device, optimiser) is built before the
    run folder exists; a new run that stops before its first checkpoint removes its folders.
    Under torchrun, rank 0 prepares the store and makes the run folder; every rank trains.
    """
    options = trainer_options(config)
    verbosity = options.verbosity if place.is_main else 0
    setup_logging(None, verbosity)
    torch.manual_seed(int(config.get("seed", 0)))
    model = distributed.use_global_batch_norm(build_model(config), place)
    if state is None:
        initialise_weights(model)
    test_config = with_eval_settings(config)
    if place.is_main:
        prepare_data(config)
        prepare_data(test_config, training=False)
    distributed.barrier(place)
    data = build_data(config, device)
    distillation = build_distillation(config, data)
    model.to(device)
    optimizer, scheduler = build_optimizer(config, model)
    dirs = None
    if place.is_main:
        if state is not None:
            dirs = resumed_run_dirs(args.resume, state, config)
        else:
            dirs = new_run_dirs(Path(options.save_dir), experiment_name(args.config))
        config.save(dirs.models / "config.json")
    dirs = distributed.broadcast(dirs, place)
    setup_logging(dirs.log if place.is_main else None, verbosity)
    trainer = Trainer(config, options, model, build_loss(config), optimizer, scheduler, data, dirs, device,
                      build_page_writer(config), test_data=lambda: build_data(test_config, device, training=False),
                      distillation=distillation, place=place)
    if state is not None:
        trainer.resume(state, args.resume)
    try:
        trainer.train()
    except BaseException:
        if state is None and place.is_main and not any(dirs.models.glob("*.pth")):
            remove_run_dirs(dirs)
        raise


if __name__ == "__main__":
    run_cli(main)
