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
import sys
from pathlib import Path

import torch

from logger.logger import setup_logging
from report.run_folder import (
    RunDirs,
    experiment_name,
    new_run_dirs,
    newest_checkpoint,
    remove_run_dirs,
    run_dirs_of_checkpoint,
    runs_of_config,
)
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
from trainer.precision import PrecisionChoice, report_choice, use_precision
from trainer.trainer import Trainer
from utils.atomic import remove_stale_partials
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
                        help="train one run per seed (each sets the config's seed), e.g. 0,1,2; run again "
                             "after an interruption, it skips the seeds that finished and resumes the "
                             "interrupted one from its last checkpoint")
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
    precision = use_precision(config, device)
    for run_config in with_seeds(config, args.seeds):
        resume, run_state = args.resume, state
        if args.seeds:
            done, checkpoint = earlier_seed_run(run_config, args.config)
            if done is not None:
                if place.is_main:
                    print(f"seed {run_config['seed']}: finished in {done}; skipped", file=sys.stderr)
                continue
            if checkpoint is not None:
                resume, run_state = resumable_checkpoint(checkpoint, load_any_checkpoint(checkpoint))
        train_run(args, run_config, run_state, resume, device, place, precision)
    distributed.stop(place)
    return 0


def earlier_seed_run(config: Config, config_path: Path) -> tuple[Path | None, Path | None]:
    """What an earlier ``--seeds`` command left for this seed's config (the same resolved config,
    seed included, in the same experiment): (a finished run's folder, None) to skip it, (None,
    the newest epoch checkpoint of an interrupted run) to resume it, or (None, None)."""
    runs = runs_of_config(Path(trainer_options(config).save_dir), experiment_name(config_path), config.data)
    finished = [folder for folder in runs if (folder / "metrics.json").is_file()]
    if finished:
        return finished[-1], None
    checkpoints = [found for folder in reversed(runs) if (found := newest_checkpoint(folder)) is not None]
    return None, (checkpoints[0] if checkpoints else None)


def train_run(args: argparse.Namespace, config: Config, state: dict | None, resume: Path | None,
              device: torch.device, place: distributed.Distributed, precision: PrecisionChoice) -> None:
    """Train one run of ``config`` in a new run folder (or continue the checkpoint ``state`` read
    from ``resume``), at the forward passes' ``precision`` (already written into ``config``).

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
            dirs = resumed_run_dirs(resume, state, config)
            remove_stale_partials(dirs.models, min_age_s=0)  # of the killed process this run continues
        else:
            dirs = new_run_dirs(Path(options.save_dir), experiment_name(args.config))
        config.save(dirs.models / "config.json")
    dirs = distributed.broadcast(dirs, place)
    report_choice(precision, setup_logging(dirs.log if place.is_main else None, verbosity))
    trainer = Trainer(config, options, model, build_loss(config), optimizer, scheduler, data, dirs, device,
                      build_page_writer(config), test_data=lambda: build_data(test_config, device, training=False),
                      distillation=distillation, place=place)
    if state is not None:
        trainer.resume(state, resume)
    try:
        trainer.train()
    except BaseException:
        if state is None and place.is_main and not any(dirs.models.glob("*.pth")):
            remove_run_dirs(dirs)
        raise
    if place.is_main:
        print(f"The best performing ckpt can be found at {trainer.best_path}", flush=True)


if __name__ == "__main__":
    run_cli(main)
