"""``ExpertDataLoader``: the config-built data source for training and evaluation.

It makes sure the dataset's feature store exists (generating the embedded default, or
converting the original feature release of a known dataset, on first use), loads the
configured experts into memory once, and serves index-gathered batches: training batches with
one random caption per video, and whole evaluation splits.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from data_loader.batches import caption_table, make_batch, sample_captions
from data_loader.datasets import RELEASES, split_pair
from data_loader.release_plan import StorePlan, plan_store
from data_loader.released import check_release, convert_plan, needs_conversion, read_test_captions
from data_loader.store import INDEX_NAME, STORE_DIR, FeatureStore, StoreError, load_store, read_index_attrs
from data_loader.synthetic import GENERATOR_VERSION, generate_synthetic
from utils.registry import DATASETS

DEFAULT_MAX_TOKENS = {"text": 30}


@dataclass
class EvalSet:
    """An evaluation split: N videos, up to Q captions each (video-major query order)."""

    split: str
    video_rows: torch.Tensor      # [N]
    caption_rows: torch.Tensor    # [N, Q], -1 where the video has fewer captions
    query_masks: torch.Tensor     # [N, Q] float, 1 where the caption exists

    @property
    def num_videos(self) -> int:
        return len(self.video_rows)

    @property
    def num_queries(self) -> int:
        return int(self.query_masks.sum())


def _synthetic_is_current(store_dir: Path, seed: int) -> bool:
    attrs = read_index_attrs(store_dir)
    return attrs.get("generator_version") == GENERATOR_VERSION and int(attrs.get("seed", -1)) == seed


def ensure_store(dataset_name: str, data_dir: Path, synthetic_seed: int = 0, *,
                 root_feat_folder: str = "structured-symlinks", split_name: str | None = None,
                 experts: Sequence[str] = (), feat_aggregation: dict | None = None,
                 text_feat: str | None = None) -> tuple[Path, StorePlan | None]:
    """The dataset's store folder, and for a released dataset the plan mapping its experts to files.

    The Synthetic store is generated when absent or stale. For a released dataset
    (``datasets.RELEASES``) the index and every expert, text feature and test caption table the
    config needs that the store lacks are converted from ``<data_dir>/<root_feat_folder>/``; a
    missing released file is a StoreError naming it.
    """
    store_dir = Path(data_dir) / STORE_DIR
    if dataset_name == "Synthetic":
        if not _synthetic_is_current(store_dir, synthetic_seed):
            generate_synthetic(Path(data_dir), seed=synthetic_seed)
        return store_dir, None
    if dataset_name in RELEASES:
        check_release(dataset_name, Path(data_dir), root_feat_folder)
        plan = plan_store(dataset_name, list(experts), feat_aggregation or {}, text_feat, split_name)
        if needs_conversion(plan, Path(data_dir), root_feat_folder):
            convert_plan(plan, Path(data_dir), root_feat_folder)
        return store_dir, plan
    if not (store_dir / INDEX_NAME).is_file():
        raise StoreError(f"{store_dir / INDEX_NAME}: feature store for {dataset_name} not found; "
                         f"set data_loader.args.data_dir to the folder holding {STORE_DIR}/")
    return store_dir, None


def _load(path: Path, experts: list[str], text_feat: str, plan: StorePlan | None) -> FeatureStore:
    """Load the configured experts, keyed by their config names (a plan maps them to store files)."""
    if plan is None:
        return load_store(path, experts, text_feat)
    stored = {name: plan.experts[name].store_name for name in experts}
    store = load_store(path, list(dict.fromkeys(stored.values())), text_feat)
    return dataclasses.replace(store, experts={name: store.experts[s] for name, s in stored.items()})


MIN_BATCH = 2  # videos in a training batch: a ranking loss needs a negative


@DATASETS.register()
class ExpertDataLoader:
    """Serves batches of expert features and caption embeddings from a feature store.

    Config args: ``dataset_name``, ``data_dir``, ``split_name`` (selects the training and
    evaluation splits, as in the original: e.g. "val" trains on train and evaluates on val;
    the test run sets it through ``eval_settings``), ``batch_size``, ``max_tokens`` (per
    token expert and ``text``), ``feat_aggregation`` (per expert ``temporal``: "vlad" for
    token experts, "avg"/"max" for fixed ones; for released datasets also where the expert's
    files lie, see ``data_loader/release_plan.py``), ``num_test_captions`` (captions per video
    at evaluation), ``restrict_train_captions`` (train on the first N captions of each video
    only, as the original's MSR-VTT caption ablation; 0 = all), ``root_feat_folder``
    (released datasets: the folder under ``data_dir`` holding the unpacked feature release,
    converted into ``<data_dir>/store/`` on first use).
    ``experts`` and ``text_feat`` come from the program.
    """

    def __init__(self, dataset_name: str, data_dir: str, split_name: str = "val", batch_size: int = 64,
                 max_tokens: dict[str, int] | None = None, feat_aggregation: dict | None = None,
                 num_test_captions: int = 20, restrict_train_captions: int = 0, synthetic_seed: int = 0,
                 root_feat_folder: str = "structured-symlinks", *,
                 experts: list[str], text_feat: str):
        self.dataset_name = dataset_name
        self.batch_size = batch_size
        self.max_tokens = {**DEFAULT_MAX_TOKENS, **(max_tokens or {})}
        self.num_test_captions = num_test_captions
        if restrict_train_captions < 0:
            raise ValueError(f"data_loader.args.restrict_train_captions: expected 0 (all captions) or a "
                             f"positive count, got {restrict_train_captions}")
        self.restrict_train_captions = restrict_train_captions
        path, plan = ensure_store(dataset_name, Path(data_dir), synthetic_seed, root_feat_folder=root_feat_folder,
                                  split_name=split_name, experts=experts, feat_aggregation=feat_aggregation,
                                  text_feat=text_feat)
        self.store: FeatureStore = _load(path, experts, text_feat, plan)
        self._check(feat_aggregation or {})
        self.train_split, self.eval_split = split_pair(dataset_name, split_name, list(self.store.splits))
        for split in (self.train_split, self.eval_split):
            if split not in self.store.splits:
                raise StoreError(f"{path}: split '{split}' not in the store (it has: {', '.join(sorted(self.store.splits))})")
        self.test_captions = read_test_captions(path, self.eval_split) if plan and plan.test_split else None

    def _check(self, feat_aggregation: dict) -> None:
        for name, expert in self.store.experts.items():
            temporal = feat_aggregation.get(name, {}).get("temporal")
            wants_tokens = temporal == "vlad"
            if wants_tokens != (expert.kind == "tokens"):
                raise StoreError(f"{self.store.path}: expert '{name}' is stored as {expert.kind} features but "
                                 f"data_loader.args.feat_aggregation.{name}.temporal is {temporal!r}")
            if wants_tokens and name not in self.max_tokens:
                raise StoreError(f"{self.store.path}: expert '{name}' has tokens; set data_loader.args.max_tokens.{name}")

    @property
    def train_rows(self) -> torch.Tensor:
        return self.store.splits[self.train_split]

    def num_train_batches(self) -> int:
        full, rest = divmod(len(self.train_rows), self.batch_size)
        return full + (rest >= MIN_BATCH)

    def train_batches(self, generator: torch.Generator) -> Iterator[dict]:
        """One epoch: shuffled training videos, one random caption each (among the first
        ``restrict_train_captions`` when set); ``text`` is [B, 1, T, D].

        A last batch of one video is left out: it has no negatives for the ranking loss, and
        BatchNorm cannot train on a single sample."""
        rows = self.train_rows[torch.randperm(len(self.train_rows), generator=generator)]
        for start in range(0, len(rows), self.batch_size):
            video_rows = rows[start:start + self.batch_size]
            if len(video_rows) < MIN_BATCH:
                break
            captions = sample_captions(self.store, video_rows, generator, self.restrict_train_captions)[:, None]
            yield make_batch(self.store, video_rows, captions, self.max_tokens)

    def eval_set(self) -> EvalSet:
        """The evaluation split with up to ``num_test_captions`` captions per video.

        Splits with a released test caption table (MSRVTT jsfusion) evaluate only the caption it
        gives for each video, in slot 0.
        """
        video_rows = self.store.splits[self.eval_split]
        if self.test_captions is None:
            captions = caption_table(self.store, video_rows, self.num_test_captions)
        else:
            captions = torch.full((len(video_rows), self.num_test_captions), -1, dtype=torch.int64)
            captions[:, 0] = self.test_captions
        return EvalSet(self.eval_split, video_rows, captions, (captions >= 0).float())

