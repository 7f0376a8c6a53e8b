"""Evaluate a trained checkpoint on the test split.

Prints a t2v / v2t table, writes metrics.json next to the checkpoint, the HTML ranking
pages into the run's web folder, and refreshes the run's page and the site index (with
--split val: metrics-val.json and val-<checkpoint>.html, so training's results are never
replaced). When --set, --config or --precision change the checkpoint's config, the results go
beside the run's own (metrics-bf16.json and test-bf16.html, or metrics-<hash>.json for other
changes) unless --replace is given; every metrics file records the command and the changes.
The config saved in the checkpoint is used unless --config is given.
Checkpoints and config.json files written by the original CE code are read too (safely:
no code in a checkpoint can run). A published model fetched by misc/sync_models.py is evaluated
with the config.json downloaded beside it, and its published numbers are printed under the
table: the seed's own numbers from its summary log and the paper's mean (std) over three seeds
(metrics.json records both under "published").

In challenge mode (the configs under configs/cvpr2020-challenge/) it also writes the
submission file <Dataset>-<split>-predictions.csv into the run's log folder and prints its
path; the test phase (public_server_test) gets no metrics. See docs/challenge.md.

Examples:
  python3 test.py --resume data/saved/models/synthetic-train-ce/<run>/trained_model.pth
  python3 test.py --config original/config.json --resume original/trained_model.pth
  python3 test.py --resume data/saved/models/synthetic-train-ce/<run>/trained_model.pth --precision bf16
  python3 test.py --resume data/models/msrvtt-train-full-ce/074e6b24/seed-0/2020-01-07_15-24-30/trained_model.pth
  python3 test.py --resume data/saved/models/epic-kitchens-100-train-ce-ranp/<run>/trained_model.pth \
      --submission test.pkl   # EPIC-KITCHENS-100: also the leaderboard file (9,668 x 3,842 scores)
"""
from __future__ import annotations

import utils.cpu_memory  # noqa: F401  (first, before torch: how large CPU tensors get memory)

# isort: split

import argparse
import hashlib
import json
import shlex
import sys
from pathlib import Path

from logger.logger import setup_logging
from report.published import downloaded_config, format_published, published_numbers
from report.results_table import flatten
from report.run_files import read_json_file
from report.run_folder import run_dirs_of_checkpoint
from report.site import publish_run_safely
from trainer import challenge
from trainer.build import build_data, build_page_writer, load_model, prepare_data, select_device, trainer_options
from trainer.checkpoints.files import checkpoint_with_config
from trainer.evaluate import (
    evaluate,
    format_table,
    unscored_reason,
    write_metrics_json,
    write_page,
    write_unscored_json,
)
from trainer.precision import report_choice, use_precision
from trainer.submission import DEFAULT_SLS, sentence_scores, write_submission
from utils.cli import add_device_options, device_overrides, run_cli
from utils.config.load import with_eval_settings
from utils.config.resolved import Config
from utils.errors import NonFiniteError
from utils.original.config import is_original_config
from utils.summary import count_trainable


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resume", type=Path, required=True, help="checkpoint to evaluate (e.g. trained_model.pth)")
    parser.add_argument("--config", type=Path, help="config file to use instead of the one saved in the checkpoint")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                        help="override config keys, e.g. data_loader.args.data_dir=/data/MSRVTT")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="test (default): the config with its eval_settings merged, i.e. the test "
                             "run; val: the training config's own evaluation split")
    parser.add_argument("--replace", action="store_true",
                        help="write metrics.json and test.html even when --set, --config or --precision change "
                             "the checkpoint's config (by default such an evaluation is written beside them, "
                             "as metrics-<precision or hash of the changes>.json)")
    parser.add_argument("--eval_from_training_config", action="store_const", const="test", dest="split",
                        help="the original CE flag for the test run; the same as --split test")
    parser.add_argument("--submission", type=Path, metavar="PATH",
                        help="EPIC-KITCHENS-100 test split: also write the Multi-Instance Retrieval leaderboard "
                             "file (a pickle of the 9,668 x 3,842 clip x sentence scores) to PATH")
    parser.add_argument("--sls", type=int, nargs=3, default=list(DEFAULT_SLS), metavar=("PT", "TL", "TD"),
                        help="with --submission: the method's Supervision Levels Scale (pre-training, training "
                             "labels, training data); default: %(default)s")
    add_device_options(parser)
    args = parser.parse_args()
    args.set += device_overrides(args)
    return args


IGNORED_CHANGES = ("trainer.device", "trainer.verbosity", "trainer.tensorboard", "trainer.save_dir",
                   "trainer.eval_chunk_videos", "trainer.log_every")
"""Config keys whose value does not change an evaluation's numbers."""


def config_changes(state: dict, config: Config) -> dict[str, object]:
    """The keys (dotted) whose value in ``config`` differs from the config saved in the
    checkpoint ``state`` (empty when the checkpoint holds none), other than :data:`IGNORED_CHANGES`."""
    saved = state.get("config")
    if not isinstance(saved, dict) or is_original_config(saved):
        return {}
    before, after = flatten(saved), flatten(config.data)
    return {key: after.get(key) for key in sorted({*before, *after})
            if before.get(key) != after.get(key) and key not in IGNORED_CHANGES}


def output_names(split: str, checkpoint: Path, changes: dict[str, object], replace: bool) -> tuple[str, str]:
    """(metrics file, ranking page) names. The test split of a checkpoint with its own config
    writes those training writes (``metrics.json``, ``test.html``) unless the run's metrics.json
    is another checkpoint's; another split's carry its name and the checkpoint's; another
    checkpoint's than the one in metrics.json carry its name, and a
    changed config (``--set``, ``--config``, ``--precision``) its precision when that is all that
    changed, else a hash of the changes (``metrics-bf16.json``, ``metrics-checkpoint-epoch2.json``,
    ``metrics-3f2a9c1e.json``), so they never replace the run's results unless ``replace``."""
    if split != "test":
        return f"metrics-{split}.json", f"{split}-{checkpoint.stem}.html"
    recorded, _ = read_json_file(checkpoint.parent / "metrics.json")
    owner = recorded.get("checkpoint") if isinstance(recorded, dict) else None
    tags = [checkpoint.stem] if isinstance(owner, str) and Path(owner).name != checkpoint.name else []
    if set(changes) == {"trainer.precision"}:
        tags.append(str(changes["trainer.precision"]))
    elif changes:
        tags.append(hashlib.sha1(json.dumps(changes, sort_keys=True).encode()).hexdigest()[:8])
    if not tags or replace:
        return "metrics.json", "test.html"
    tag = "-".join(tags)
    return f"metrics-{tag}.json", f"test-{tag}.html"


def main() -> int:
    args = parse_args()
    state, config = checkpoint_with_config(args.resume, args.config or downloaded_config(args.resume), args.set)
    changes = config_changes(state, config)
    if args.split == "test":
        config = with_eval_settings(config)
    device = select_device(config)
    precision = use_precision(config, device)
    dirs = run_dirs_of_checkpoint(args.resume)
    options = trainer_options(config)
    log = setup_logging(dirs.log, options.verbosity)
    report_choice(precision, log)
    model = load_model(config, state.pop("state_dict"), args.resume).to(device)
    metrics_name, page_name = output_names(args.split, args.resume, changes, args.replace)
    record = {"epoch": state["epoch"], "checkpoint": str(args.resume), "params": count_trainable(model),
              "precision": options.precision, "command": " ".join(shlex.quote(a) for a in sys.argv),
              "overrides": changes}
    reason = unscored_reason(model, args.resume)
    if reason is not None:
        write_unscored_json(args.resume.parent / metrics_name, reason, **record)
        publish_run_safely(dirs.models, dirs.web)
        raise NonFiniteError(reason)
    prepare_data(config, training=False)
    data = build_data(config, device, training=False)
    published = published_numbers(args.resume) if args.split == "test" else None  # a bad log fails first
    challenge_mode = bool(config.get("challenge_mode"))
    result = evaluate(model, data, device, options.eval_chunk_videos, config.get("metrics"),
                      precision=options.precision,
                      with_metrics=not challenge_mode or challenge.has_metrics(data.eval_split))
    if challenge_mode:
        challenge.write_submission(dirs.log, data.dataset_name, result.split, result.sims, result.query_masks)
    if not result.metrics:
        log.info(f"No metrics for {result.split} (no ground truth is shown for it)")
        return 0
    if published:
        record["published"] = published
    metrics_path = write_metrics_json(args.resume.parent / metrics_name, result, **record)
    page = write_page(build_page_writer(config), dirs.web / page_name, result, data,
                      f"{args.resume} - {result.split}")
    log.info(format_table(result))
    if published:
        log.info(format_published(published, result.metrics))
    log.info(f"Wrote {metrics_path} and {page}; run page {publish_run_safely(dirs.models, dirs.web)}")
    if args.submission is not None:
        sim_mat, vis_ids, txt_ids = sentence_scores(result, data)
        write_submission(args.submission, sim_mat, vis_ids, txt_ids, tuple(args.sls))
        log.info(f"Wrote the submission file {args.submission} ({sim_mat.shape[0]} x {sim_mat.shape[1]} scores)")
    return 0


if __name__ == "__main__":
    run_cli(main)
