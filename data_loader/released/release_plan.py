"""What a config needs from a released dataset's store, and which released files provide it.

A config names experts (``<type>.<model>.<index>`` or a dataset's custom names such as
``audio``), their ``feat_aggregation`` entries, a text feature and a ``split_name``; a
:class:`StorePlan` maps each to its released files and to the store file holding them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from data_loader.released.datasets import RELEASES, Release, official_list, release_key, split_lists, split_pair
from utils.config.load import with_eval_settings
from utils.config.options import used_experts
from utils.config.resolved import Config
from utils.errors import ConfigError, StoreError

UNCANONICAL_TYPES = {"ocr", "speech", "audio"}  # canonical folders without fps/px/stride
FEATURE_SUFFIXES = {".pickle", ".pkl"}


@dataclass(frozen=True)
class ExpertSource:
    """An expert's released files (concatenated along features) and its kind: "fixed", "tokens",
    or None to let the data decide (see packing.infer_kind)."""

    files: tuple[str, ...]
    kind: str | None

    @property
    def store_name(self) -> str:
        """The store file name: the released folder and the file stems joined by '+'."""
        folder = PurePosixPath(self.files[0]).parent
        return str(folder / "+".join(PurePosixPath(f).stem for f in self.files))


@dataclass(frozen=True)
class StorePlan:
    """The parts of a dataset's store a config needs: experts keyed by the config's names (by
    released path for :func:`present_plans`), its text feature and test caption table."""

    dataset: str
    experts: dict[str, ExpertSource]
    text_feat: str | None
    test_split: str | None  # evaluation split with a released test caption index


def canonical_files(expert: str, aggregation: dict) -> tuple[str, ...]:
    """Released files of ``<type>.<model>.<index>`` for its feat_aggregation entry."""
    feat_type, model_name, _ = expert.split(".")
    base = f"aggregated_{feat_type.replace('-', '_')}"
    if feat_type not in UNCANONICAL_TYPES:
        if any(aggregation.get(key) is None for key in ("fps", "pixel_dim", "stride")):
            raise StoreError(f"data_loader.args.feat_aggregation.{expert}: needs fps, pixel_dim and stride "
                             "to locate its released features")
        base += f"_{aggregation['fps']}fps_{aggregation['pixel_dim']}px_stride{aggregation['stride']}"
    for option in ("offset", "inner_stride", "num_segments"):
        if aggregation.get(option) is not None:
            base += f"_{option}{aggregation[option]}"
    logits = "-logits" if aggregation.get("type") == "logits" else ""
    return tuple(f"{base}/{model_name}-{mode}{logits}.pickle" for mode in str(aggregation["temporal"]).split("-"))


def expert_source(dataset_name: str, expert: str, aggregation: dict, split_name: str | None = None) -> ExpertSource:
    """Where ``expert`` lies in the release (custom path of the split or dataset, else canonical)."""
    release = RELEASES[dataset_name]
    custom = release.split_paths.get(split_name, release.custom_paths)
    if "temporal" not in aggregation:
        raise StoreError(f"data_loader.args.feat_aggregation.{expert}: missing 'temporal'")
    if expert in custom:
        files = custom[expert]
    elif expert.count(".") == 2:
        files = canonical_files(expert, aggregation)
    else:
        raise StoreError(f"expert '{expert}': no released features known for {dataset_name}; expected "
                         f"'<type>.<model>.<index>' or one of: {', '.join(sorted(custom))}")
    if len(files) > 1 and aggregation.get("aggregate", "concat") != "concat":
        raise StoreError(f"data_loader.args.feat_aggregation.{expert}.aggregate: several temporal modes "
                         "can only be concatenated ('concat')")
    return ExpertSource(tuple(files), "tokens" if aggregation["temporal"] == "vlad" else "fixed")


def plan_store(dataset_name: str, experts: list[str], feat_aggregation: dict, text_feat: str | None,
               split_name: str | None = None) -> StorePlan:
    """What a config (experts, their feat_aggregation, text feature, split) needs from the store."""
    missing = [e for e in experts if e not in feat_aggregation]
    if missing:
        raise StoreError(f"data_loader.args.feat_aggregation: no entry for expert '{missing[0]}'")
    sources = {e: expert_source(dataset_name, e, feat_aggregation[e], split_name) for e in experts}
    eval_split = split_pair(dataset_name, split_name, [])[1] if split_name is not None else None
    test_split = eval_split if eval_split in RELEASES[dataset_name].test_captions else None
    return StorePlan(dataset_name, sources, text_feat, test_split)


def released_files(plan: StorePlan) -> list[str]:
    """Every released file converting ``plan`` reads, relative to the feature root: the split lists
    the project does not ship, the raw captions, the experts' and the text feature's files and
    the test caption index (lists a release may lack are left out)."""
    release = RELEASES[plan.dataset]
    files = [f"{split}.txt" for split in split_lists(plan.dataset)
             if official_list(plan.dataset, split) is None and split not in release.optional_lists]
    files.append(release.raw_captions)
    files += [path for source in plan.experts.values() for path in source.files]
    if plan.text_feat is not None:
        text = release.text_files(plan.text_feat)
        files += [*text.paths, *([release.youtube_mapping] if text.youtube_keyed else [])]
    if plan.test_split is not None:
        files.append(release.test_captions[plan.test_split])
    return list(dict.fromkeys(files))


def test_captions_path(store_dir: Path, split: str) -> Path:
    return Path(store_dir) / "test_captions" / f"{split}.h5"


def _present_text_feats(release: Release, root: Path) -> list[str]:
    """Text features whose released files are all under ``root`` (files named like a part of an
    overridden feature, e.g. ActivityNet's openai-val2.pkl, are not features of their own)."""
    parts = tuple(f"{name}-" for name in release.text_paths)
    names = {p.stem for p in (root / release.text_dir).glob("*.pkl") if not p.stem.startswith(parts)}
    names |= {name for name, files in release.text_paths.items() if all((root / p).is_file() for p in files.paths)}
    return sorted(n for n in names if release.text_feats is None or n in release.text_feats)


def present_plans(dataset_name: str, root: Path) -> list[StorePlan]:
    """Plans converting every expert and text feature file present under the feature root.

    Expert files are the pickles in its sub-folders other than text features, teachers and
    captions; each is stored on its own, its kind decided by the data. The first plan holds
    them all, then one plan per text feature and per released test caption index.
    """
    release = RELEASES[dataset_name]
    root = Path(root)
    text_feats = _present_text_feats(release, root)
    not_experts = {release.raw_captions, *(p for n in text_feats for p in release.text_files(n).paths)}
    experts = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix in FEATURE_SUFFIXES and p.parent != root):
        relative = path.relative_to(root).as_posix()
        if relative.split("/")[0] not in {release.text_dir, "teachers"} and relative not in not_experts:
            experts[relative] = ExpertSource((relative,), None)
    plans = [StorePlan(dataset_name, experts, None, None)]
    plans += [StorePlan(dataset_name, {}, name, None) for name in text_feats]
    plans += [StorePlan(dataset_name, {}, None, split) for split, relative in release.test_captions.items()
              if (root / relative).is_file()]
    return plans


def config_plans(config: Config, dataset: str) -> list[StorePlan]:
    """One plan per split the config trains/evaluates on (split_name, then eval_settings'), of the
    dataset's challenge release in challenge mode."""
    args = config["data_loader"].get("args", {})
    if args.get("dataset_name") != dataset:
        raise ConfigError(f"{config.where('data_loader.args.dataset_name')}: data_loader.args.dataset_name is "
                          f"{args.get('dataset_name')!r}, not --dataset {dataset}")
    splits = [args.get("split_name", "val")]
    if config.get("eval_settings"):
        splits.append(with_eval_settings(config)["data_loader"]["args"].get("split_name", splits[0]))
    experts = used_experts(config["experts"])
    feat_aggregation = args.get("feat_aggregation", {})
    text_feat = config["experts"].get("text_feat", "openai")
    key = release_key(dataset, bool(config.get("challenge_mode", False)))
    return [plan_store(key, experts, feat_aggregation, text_feat, split) for split in dict.fromkeys(splits)]
