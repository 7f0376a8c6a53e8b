"""Turn a trained checkpoint into a TeachText teacher stored with its dataset.

Embeds every video and caption of the checkpoint's dataset with the trained model and writes
the teacher ``<data_dir>/store/<name>.h5`` (layout in data_loader/teachtext/teachers.py). A student
config uses it with ``"distil_loss": true`` and ``distil_params`` naming it: base_path
"teachers/" and file "<rest of the name>" for ``--name teachers/<rest of the name>``.

Examples (from the repository root):

  python3 misc/export_teacher.py --resume data/saved/models/<experiment>/<run>/trained_model.pth \\
      --name teachers/train-ce-refined-text-w2v
"""
from __future__ import annotations

import argparse
from pathlib import Path

import repo_root  # noqa: F401  (the repository root on sys.path: misc/repo_root.py)

# isort: split
from data_loader.teachtext.teachers import write_teacher
from trainer.build import build_data, load_model, prepare_data, select_device
from trainer.checkpoints.files import checkpoint_with_config
from trainer.evaluate import unscored_reason
from trainer.teachtext.export import teacher_embeddings
from utils.cli import run_cli
from utils.errors import NonFiniteError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resume", type=Path, required=True, help="the trained checkpoint (e.g. trained_model.pth)")
    parser.add_argument("--name", required=True, help="the teacher's name in the store, e.g. teachers/my-teacher")
    parser.add_argument("--config", type=Path, help="config to use instead of the one saved in the checkpoint")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY.PATH=VALUE",
                        help="override config keys, e.g. data_loader.args.data_dir=/data/MSRVTT")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    state, config = checkpoint_with_config(args.resume, args.config, args.set)
    device = select_device(config)
    model = load_model(config, state["state_dict"], args.resume).to(device)
    reason = unscored_reason(model, args.resume)
    if reason is not None:
        raise NonFiniteError(reason.replace("not scored", "not a teacher"))
    prepare_data(config, training=False)
    data = build_data(config, training=False)
    path = write_teacher(data.store.path, args.name, teacher_embeddings(model, data, device))
    print(f"Wrote teacher {args.name}: {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
