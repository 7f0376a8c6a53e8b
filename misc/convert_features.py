"""Convert a dataset's original feature release into this project's feature store.

Reads the unpacked release under <data_dir>/<root_feat_folder>/ (fetched with
misc/sync_experts.py) and writes <data_dir>/store/: the index (split lists and captions) once,
then every expert and text feature asked for that the store does not hold yet. Files already
converted are kept, so an interrupted conversion resumes where it stopped. Training converts
on first use too; this tool does it ahead of time.

With --config: the experts, text feature and splits that config uses (its split_name and
the one in its eval_settings); a challenge config (configs/cvpr2020-challenge/) converts both
challenge releases into <data_dir>/challenge-store/. Without: every expert and text feature
file present.

Examples (from the repository root):

  python3 misc/convert_features.py --dataset MSRVTT --config <config.json>
  python3 misc/convert_features.py --dataset MSRVTT
  python3 misc/convert_features.py --dataset MSRVTT --root_feat_folder high-quality/structured-symlinks
  python3 misc/convert_features.py --dataset MSRVTT --config configs/cvpr2020-challenge/msrvtt/baseline-public-test.json
"""
from __future__ import annotations

import argparse
from pathlib import Path

import repo_root  # noqa: F401  (the repository root on sys.path: misc/repo_root.py)

# isort: split
from data_loader.released.convert import convert_plan
from data_loader.released.datasets import (
    CHALLENGE_TEST_ROOT_FEAT_FOLDER,
    DATASET_NAMES,
    DEFAULT_ROOT_FEAT_FOLDER,
    RELEASES,
    test_release_folders,
)
from data_loader.released.release_plan import config_plans, present_plans
from trainer import build  # noqa:F401  (fills the registries that configs are validated against)
from utils.cli import run_cli
from utils.config.load import load_config
from utils.errors import StoreError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=sorted(DATASET_NAMES), help="dataset to convert")
    parser.add_argument("--data_dir", type=Path,
                        help="dataset folder (default: the config's data_loader.args.data_dir, else data/<folder>)")
    parser.add_argument("--root_feat_folder",
                        help="release folder under data_dir (default: the config's, else structured-symlinks)")
    parser.add_argument("--config", type=Path, help="convert only what this config needs")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    config = load_config(args.config) if args.config else None
    config_args = config["data_loader"].get("args", {}) if config else {}
    data_dir = args.data_dir or Path(config_args.get("data_dir", f"data/{RELEASES[args.dataset].folder}"))
    root_feat_folder = args.root_feat_folder or config_args.get("root_feat_folder", DEFAULT_ROOT_FEAT_FOLDER)
    if config is not None:
        plans = config_plans(config, args.dataset)
    else:
        if not (data_dir / root_feat_folder).is_dir():
            raise StoreError(f"{data_dir / root_feat_folder}: released features folder not found; fetch it with "
                             f"python3 misc/sync_experts.py --dataset {RELEASES[args.dataset].folder}")
        plans = present_plans(args.dataset, data_dir / root_feat_folder)
    test_folder = config_args.get("challenge_test_root_feat_folder", CHALLENGE_TEST_ROOT_FEAT_FOLDER)
    for plan in plans:
        store_dir = convert_plan(plan, data_dir, root_feat_folder,
                                 extra_folders=test_release_folders(plan.dataset, test_folder))
    experts = {source.store_name for plan in plans for source in plan.experts.values()}
    texts = sorted({plan.text_feat for plan in plans if plan.text_feat})
    print(f"{store_dir}: index, {len(experts)} experts, text features: {', '.join(texts) or 'none'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
