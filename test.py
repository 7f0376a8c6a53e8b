"""Evaluate a trained checkpoint on the test split.

Prints a t2v / v2t table, writes metrics.json next to the checkpoint, the HTML ranking
pages into the run's web folder, and refreshes the run's page and the site index (with
--split val: metrics-val.json and val-<checkpoint>.html, so training's results are never
replaced). The config saved in the checkpoint is used unless --config is given.
Checkpoints and config.json files written by the original CE code are read too (safely:
no code in a checkpoint can run).

Examples:
  python3 test.py --resume data/saved/models/synthetic-train-ce/<run>/trained_model.pth
  python3 test.py --config original/config.json --resume original/trained_model.pth
  python3 test.py --resume data/saved/models/synthetic-train-ce/<run>/trained_model.pth --precision bf16
  python3 test.py --resume data/saved/models/epic-kitchens-100-train-ce-ranp/<run>/trained_model.pth \
      --submission test.pkl   # EPIC-KITCHENS-100: also the leaderboard file (9,668 x 3,842 scores)
"""
from __future__ import annotations

import utils.cpu_memory  # noqa: F401  (first, before torch: how large CPU tensors get memory)

# isort: split

import argparse
from pathlib import Path

from logger.logger import setup_logging
from report.run_folder import run_dirs_of_checkpoint
from report.site import publish_run
from trainer.build import build_data, build_page_writer, load_model, prepare_data, select_device, trainer_options
from trainer.checkpoints.files import checkpoint_with_config
from trainer.evaluate import evaluate, format_table, write_metrics_json, write_page
from trainer.submission import DEFAULT_SLS, sentence_scores, write_submission
from utils.cli import add_device_options, device_overrides, run_cli
from utils.config.load import with_eval_settings
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


def output_names(split: str, checkpoint: Path) -> tuple[str, str]:
    """(metrics file, ranking page) names: the test split's are those training writes
    (``metrics.json``, ``test.html``); another split's carry its name, and the page the
    checkpoint's, so they never replace the test results or training's per-epoch ``val.html``."""
    if split == "test":
        return "metrics.json", "test.html"
    return f"metrics-{split}.json", f"{split}-{checkpoint.stem}.html"


def main() -> int:
    args = parse_args()
    state, config = checkpoint_with_config(args.resume, args.config, args.set)
    if args.split == "test":
        config = with_eval_settings(config)
    device = select_device(config)
    dirs = run_dirs_of_checkpoint(args.resume)
    options = trainer_options(config)
    log = setup_logging(dirs.log, options.verbosity)
    model = load_model(config, state.pop("state_dict")).to(device)
    prepare_data(config, training=False)
    data = build_data(config, device, training=False)
    result = evaluate(model, data, device, options.eval_chunk_videos, config.get("metrics"),
                      precision=options.precision)
    metrics_name, page_name = output_names(args.split, args.resume)
    metrics_path = write_metrics_json(args.resume.parent / metrics_name, result, epoch=state["epoch"],
                                      checkpoint=str(args.resume), params=count_trainable(model))
    page = write_page(build_page_writer(config), dirs.web / page_name, result, data,
                      f"{args.resume} - {result.split}")
    log.info(format_table(result))
    log.info(f"Wrote {metrics_path} and {page}; run page {publish_run(dirs.models, dirs.web)}")
    if args.submission is not None:
        sim_mat, vis_ids, txt_ids = sentence_scores(result, data)
        write_submission(args.submission, sim_mat, vis_ids, txt_ids, tuple(args.sls))
        log.info(f"Wrote the submission file {args.submission} ({sim_mat.shape[0]} x {sim_mat.shape[1]} scores)")
    return 0


if __name__ == "__main__":
    run_cli(main)
