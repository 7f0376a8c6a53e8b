"""Write a synthetic MSRVTT feature release, laid out exactly as the original Collaborative Experts one.

The fixture exercises the release reader, the conversion into the feature store and a training
run end to end without the real features. Under <out>/structured-symlinks/ it writes:

* the split lists (copies of misc/datasets/msrvtt/*_list_*.txt);
* raw-captions.pkl: video id -> 20 captions, each a list of words (a few test videos have 19,
  as in the release: 6 of test_list_full, 2 of them in val_list_jsfusion);
* the config's text feature (openai: aggregated_text_feats/w2v_MSRVTT_openAIGPT.pickle):
  video id -> one [words, 768] float32 array per caption, about --text_tokens words each;
* every expert file the config needs, at the paths and widths the project reads: a [D] float32
  array per video for fixed experts, a [T, d] one with T varying by video for token experts
  (audio, ocr, speech); flaky experts (face, ocr, speech, audio) are a Python float NaN for part
  of the videos, as the release marks a missing feature;
* jsfusion_val_caption_idx.pkl: video id -> index of the one caption the 1k-A split evaluates.

Features are noise plus shared random concepts (data_loader/generated/release_tables.py), so a
short training run ranks above chance.

Reduced scale (--scale < 1): each list is a prefix of the official one and only the videos of
those prefixes get captions and features; above 1 each list continues with renamed copies of
its videos (``<id>-copy<k>``), e.g. --scale 2 doubles every split. The project reads the official lists under
misc/datasets/msrvtt/ whenever they exist (data_loader.released.datasets.list_path), and they name videos
a reduced fixture lacks, so the script also writes the store index <out>/store/index.h5 from the
fixture's own lists; the first training run then converts the features as usual and needs no
other override. A reduced fixture whose store/ was deleted cannot be converted again: write a
new one (the same holds above 1). At --scale 1 no store is written; the first training run converts everything.

Run from the repository root, e.g.:

  python3 misc/make_release_fixture.py --dataset MSRVTT --out /tmp/fixture/MSRVTT --scale 0.02
  python3 train.py --config configs/msrvtt/train-full-ce.json \\
      --set data_loader.args.data_dir=/tmp/fixture/MSRVTT trainer.epochs=1 trainer.save_dir=/tmp/fixture-runs
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import repo_root  # noqa: F401  (the repository root on sys.path: misc/repo_root.py)
from tqdm import tqdm

# isort: split
from data_loader.generated.release_tables import (
    ExpertFile,
    captions_and_text,
    dump,
    expert_table,
    video_concepts,
)
from data_loader.released import datasets
from data_loader.released.convert import write_released_index
from data_loader.released.datasets import DEFAULT_ROOT_FEAT_FOLDER
from data_loader.released.release_plan import config_plans
from data_loader.store.feature_store import STORE_DIR
from model.dims import TEXT_DIMS, model_inputs
from trainer import build  # noqa:F401  (fills the registries that configs are validated against)
from utils.cli import run_cli
from utils.config.load import load_config
from utils.config.resolved import Config

DATASET = "MSRVTT"
DEFAULT_CONFIG = Path("configs/msrvtt/train-full-ce.json")
DEFAULT_TEXT_TOKENS = 4  # 10k videos x 20 captions x 4 words x 768 float32 = 2.46 GB
CAPTIONS_PER_VIDEO = 20
# Videos with one caption fewer at scale 1, as in the release: 6 of test_list_full, of which 2
# are in val_list_jsfusion.
SHORT_IN_JSFUSION_VAL, SHORT_ELSEWHERE_IN_TEST = 2, 4

# Fraction of videos lacking a flaky expert (approximately as in the MSRVTT release).
MISSING_FRACTION = {"face": 0.35, "ocr": 0.55, "speech": 0.45, "audio": 0.08}
DEFAULT_MISSING_FRACTION = 0.3
# Token count range (inclusive) per video of token experts: vggish frames, OCR and speech words.
TOKEN_RANGE = {"audio": (10, 32), "ocr": (1, 20), "speech": (3, 60)}
DEFAULT_TOKEN_RANGE = (1, 30)

@dataclass(frozen=True)
class FixturePlan:
    """What to write: split lists, the text feature's file and width, the expert files."""

    lists: dict[str, list[str]]
    text_file: str
    text_dim: int
    experts: list[ExpertFile]
    root_feat_folder: str

    @property
    def video_ids(self) -> list[str]:
        """Every video of the lists, in first-listed order."""
        return list(dict.fromkeys(v for ids in self.lists.values() for v in ids))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=DATASET, choices=[DATASET], help="dataset to imitate")
    parser.add_argument("--out", type=Path, required=True,
                        help="dataset folder to create (the data_loader.args.data_dir of the training run); "
                             "must be new or empty")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="write the expert and text files this config needs, for its split_name and "
                             "eval_settings (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="size of each split against the official list: below 1 a prefix, above 1 the list "
                             "and renamed copies; other than 1, <out>/store/index.h5 is written too "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--text_tokens", type=int, default=DEFAULT_TEXT_TOKENS,
                        help="mean words per caption; at scale 1 each word adds about 0.61 GB to the text "
                             "feature file (default: %(default)s)")
    args = parser.parse_args()
    if not 0 < args.scale:
        parser.error(f"--scale: expected a scale above 0, got {args.scale}")
    if args.text_tokens < 1:
        parser.error(f"--text_tokens: expected at least 1, got {args.text_tokens}")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        parser.error(f"--out: {args.out} exists and is not an empty folder; choose a new folder")
    return args


def official_lists(scale: float) -> dict[str, list[str]]:
    """Each split list of the dataset, cut to its first ``scale`` fraction (at least one video).
    Above 1 each list is followed by renamed copies of itself (``<id>-copy<k>``, the same
    renaming in every list, so lists overlap as the official ones do) before it is cut."""
    lists = {}
    copies = math.ceil(scale)
    for split in datasets.split_lists(DATASET):
        path = datasets.LIST_ROOT / datasets.RELEASES[DATASET].list_folder / f"{split}.txt"
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        repeated = ids + [f"{v}-copy{k}" for k in range(1, copies) for v in ids]
        lists[split] = repeated[:max(1, round(len(ids) * scale))]
    return lists


def plan_fixture(config: Config, scale: float) -> FixturePlan:
    """The files ``config`` reads from the release (paths from the project's own release plan)."""
    plans = config_plans(config, DATASET)
    feat_aggregation = config["data_loader"]["args"]["feat_aggregation"]
    raw_dims = model_inputs(config)["feat_dims"]
    experts: dict[str, ExpertFile] = {}
    for plan in plans:
        for expert, source in plan.experts.items():
            aggregation = feat_aggregation[expert]
            missing = MISSING_FRACTION.get(expert, DEFAULT_MISSING_FRACTION) if aggregation.get("flaky") else 0.0
            dim = raw_dims[expert] // len(source.files) if source.kind == "fixed" else raw_dims[expert]
            for relative in source.files:
                experts[relative] = ExpertFile(relative, source.kind, dim, missing,
                                               TOKEN_RANGE.get(expert, DEFAULT_TOKEN_RANGE))
    text_feat = plans[0].text_feat
    text_files = datasets.RELEASES[DATASET].text_files(text_feat).paths
    root_feat_folder = config["data_loader"]["args"].get("root_feat_folder", DEFAULT_ROOT_FEAT_FOLDER)
    return FixturePlan(official_lists(scale), text_files[0], TEXT_DIMS[text_feat], list(experts.values()),
                       root_feat_folder)


def expected_sizes(plan: FixturePlan, text_tokens: int) -> dict[str, int]:
    """Approximate bytes of every feature file."""
    num_videos = len(plan.video_ids)
    sizes = {plan.text_file: num_videos * CAPTIONS_PER_VIDEO * text_tokens * plan.text_dim * 4}
    sizes.update({e.relative: e.expected_bytes(num_videos) for e in plan.experts})
    return sizes


def report_sizes(plan: FixturePlan, text_tokens: int, out: Path) -> None:
    """Print the expected file sizes, disk and memory use before writing anything."""
    sizes = expected_sizes(plan, text_tokens)
    print(f"{len(plan.video_ids)} videos; expected feature files under {out / plan.root_feat_folder}:")
    for relative, size in sorted(sizes.items(), key=lambda item: -item[1]):
        print(f"  {size / 1e9:8.3f} GB  {relative}")
    total = sum(sizes.values())
    print(f"  {total / 1e9:8.3f} GB  total; memory while writing: about {max(sizes.values()) / 1e9:.2f} GB "
          "(one file at a time)")
    print(f"converting into {out / STORE_DIR} on first use takes about as much again on disk")
    existing = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < 2 * total:
        print(f"warning: {existing} has {free / 1e9:.1f} GB free, fixture and store need about "
              f"{2 * total / 1e9:.1f} GB", file=sys.stderr)


def short_captioned(lists: dict[str, list[str]], scale: float) -> set[str]:
    """Test videos given one caption fewer (at least one in and one outside val_list_jsfusion)."""
    jsfusion = lists["val_list_jsfusion"]
    in_jsfusion = set(jsfusion)
    elsewhere = [v for v in lists["test_list_full"] if v not in in_jsfusion]
    return {*jsfusion[:max(1, round(SHORT_IN_JSFUSION_VAL * scale))],
            *elsewhere[:max(1, round(SHORT_ELSEWHERE_IN_TEST * scale))]}


def write_lists(root: Path, lists: dict[str, list[str]], scale: float) -> None:
    """The split lists: copies of the official files at scale 1, the lists of ``official_lists`` otherwise."""
    folder = datasets.LIST_ROOT / datasets.RELEASES[DATASET].list_folder
    root.mkdir(parents=True, exist_ok=True)
    for split, ids in lists.items():
        if scale == 1:
            shutil.copyfile(folder / f"{split}.txt", root / f"{split}.txt")
        else:
            (root / f"{split}.txt").write_text("".join(f"{v}\n" for v in ids))


def write_fixture(out: Path, plan: FixturePlan, scale: float, seed: int, text_tokens: int) -> None:
    """Every file of the fixture under ``out``; the store index too when ``scale`` is not 1."""
    root = out / plan.root_feat_folder
    rng = np.random.default_rng(seed)
    video_ids = plan.video_ids
    concepts = video_concepts(rng, len(video_ids))
    write_lists(root, plan.lists, scale)
    release = datasets.RELEASES[DATASET]
    files = [release.raw_captions, plan.text_file, *release.test_captions.values(),
             *(e.relative for e in plan.experts)]
    short = short_captioned(plan.lists, scale)
    raw, text = captions_and_text(video_ids, concepts, [CAPTIONS_PER_VIDEO - (v in short) for v in video_ids],
                                  text_tokens, plan.text_dim, rng)
    with tqdm(total=len(files), desc="writing", unit="file") as bar:
        def write(relative: str, table: dict) -> None:
            bar.set_postfix_str(relative)
            dump(root / relative, table)
            bar.update()

        write(release.raw_captions, raw)
        write(plan.text_file, text)
        del text
        for split, relative in release.test_captions.items():
            write(relative, {v: int(rng.integers(len(raw[v]))) for v in plan.lists[split]})
        for spec in plan.experts:
            write(spec.relative, expert_table(spec, video_ids, concepts, rng))
    if scale != 1:  # the index from the fixture's own lists, not the official ones
        write_released_index(DATASET, root, out / STORE_DIR, plan.root_feat_folder, official_lists=False)


def main() -> int:
    args = parse_args()
    plan = plan_fixture(load_config(args.config), args.scale)
    report_sizes(plan, args.text_tokens, args.out)
    write_fixture(args.out, plan, args.scale, args.seed, args.text_tokens)
    print(f"wrote {args.out / plan.root_feat_folder}" + (f" and {args.out / STORE_DIR}" if args.scale != 1 else ""))
    print(f"train on it with: python3 train.py --config {args.config} --set data_loader.args.data_dir={args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
