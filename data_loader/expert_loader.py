"""``ExpertDataLoader``: the config-built data source for training and evaluation.

It opens a dataset's feature store (made ready beforehand by ``data_loader/prepare.py``),
loads the configured experts into memory once, and serves index-gathered batches: training
batches with one random caption per video, and whole evaluation splits.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch

from base.role_graph_text import RoleGraphText
from data_loader.batches import (
    Batch,
    caption_table,
    expert_batch,
    sample_captions,
    select_frames,
    shard_bounds,
    text_batch,
)
from data_loader.hgr.graph_store import RoleGraphTable
from data_loader.ranp.classes import (
    captions_sha1,
    classes_path,
    read_classes,
    read_relevance,
    read_relevance_columns,
    relevance_path,
)
from data_loader.ranp.relevance import VideoCaptionRelevance
from data_loader.released.convert import check_release, read_test_captions
from data_loader.released.datasets import (
    CHALLENGE_TEST_ROOT_FEAT_FOLDER,
    DEFAULT_ROOT_FEAT_FOLDER,
    RELEASES,
    feature_root,
    read_video_list,
    release_key,
    split_pair,
    store_dir,
)
from data_loader.released.release_plan import StorePlan, plan_store, test_captions_path
from data_loader.store.feature_store import STORE_ID, FeatureStore, load_store, read_index_attrs
from data_loader.teachtext.caption_masks import load_caption_mask
from utils.config.options import AtLeast, Count
from utils.errors import ConfigError, StoreError
from utils.registry import DATASETS

DEFAULT_MAX_TOKENS = {"text": 30}
FRAME_SAMPLINGS = ("first", "select")


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

    @property
    def query_rows(self) -> torch.Tensor:
        """Store rows [K] of the existing captions, video by video (the order of the queries)."""
        return self.caption_rows[self.query_masks != 0]


def _load(path: Path, experts: list[str], text_feat: str, plan: StorePlan | None) -> FeatureStore:
    """Load the configured experts, keyed by their config names (a plan maps them to store files)."""
    if plan is None:
        return load_store(path, experts, text_feat)
    stored = {name: plan.experts[name].store_name for name in experts}
    store = load_store(path, list(dict.fromkeys(stored.values())), text_feat)
    return dataclasses.replace(store, experts={name: store.experts[s] for name, s in stored.items()})


MIN_BATCH = 2  # videos in a training batch: a ranking loss needs a negative
# Share of a CUDA device's free memory the feature store may take when it is moved there
DEVICE_STORE_SHARE = 0.5


def store_nbytes(store: FeatureStore) -> int:
    """Bytes of the store's tensors (features, availability, offsets, splits, text)."""
    tensors = [store.caption_offsets, store.text_embeddings, store.text_offsets, *store.splits.values()]
    tensors += [] if store.text_tokens is None else [store.text_tokens]
    for expert in store.experts.values():
        tensors += [expert.features, expert.available] + ([] if expert.offsets is None else [expert.offsets])
    return sum(t.numel() * t.element_size() for t in tensors)


def store_on(store: FeatureStore, device: torch.device) -> FeatureStore:
    """The same store with every tensor on ``device``."""
    experts = {name: dataclasses.replace(e, features=e.features.to(device), available=e.available.to(device),
                                         offsets=None if e.offsets is None else e.offsets.to(device))
               for name, e in store.experts.items()}
    return dataclasses.replace(store, splits={k: v.to(device) for k, v in store.splits.items()}, experts=experts,
                               caption_offsets=store.caption_offsets.to(device),
                               text_embeddings=store.text_embeddings.to(device),
                               text_offsets=store.text_offsets.to(device),
                               text_tokens=None if store.text_tokens is None else store.text_tokens.to(device))


@DATASETS.register()
class ExpertDataLoader:
    """Serves batches of expert features and caption embeddings from a feature store.

    Config args: ``dataset_name``, ``data_dir``, ``split_name`` (selects the training and
    evaluation splits, as in the original: e.g. "val" trains on train and evaluates on val;
    the test run sets it through ``eval_settings``), ``batch_size``, ``max_tokens`` (per
    token expert and ``text``), ``feat_aggregation`` (per expert ``temporal``: "vlad" for
    token experts, "avg"/"max" for fixed ones; for released datasets also where the expert's
    files lie, see ``data_loader/released/release_plan.py``), ``num_test_captions`` (captions per video
    at evaluation), ``restrict_train_captions`` (train on the first N captions of each video
    only, as the original's MSR-VTT caption ablation; 0 = all), ``root_feat_folder``
    (released datasets: the folder under ``data_dir`` holding the unpacked feature release,
    converted into ``<data_dir>/store/`` by ``data_loader.prepare.prepare_store``),
    ``fuse_captions`` (the original's key: when given it must agree with the dataset's own rule,
    which fuses the captions of DiDeMo, ActivityNet and QuerYD into one per video),
    ``challenge_test_root_feat_folder`` (the CVPR 2020 challenge's second release, holding the
    ``public_server_test`` list, text and captions; read in challenge mode only).
    ``class_annotations`` and ``relevance_files`` (a JSON file of per-caption semantic classes
    and ``{split: HDF5 file}`` of precomputed relevance, for RANP) are imported into the store
    by ``prepare_store``; the loader reads what the store holds (``data_loader/ranp/classes.py``).
    ``role_graphs`` (HGR): the name of the store's ``hgr/<name>.h5`` (``data_loader/hgr/graph_store.py``);
    captions are then served as :class:`base.role_graph_text.RoleGraphText` rather than word
    embeddings (``role_graph_files``, the sources they are imported from, is read by
    ``prepare_store``). ``frame_sampling``: how a token expert longer than its ``max_tokens`` is cut,
    "first" (its first tokens) or "select" (HGR's evenly spaced ``round(linspace)`` frames;
    ``ind`` then holds each video's number of frames, 0 where the expert is missing).
    ``experts`` and ``text_feat`` come from the program, and so do the config's top-level keys
    ``challenge_mode`` (the dataset's challenge splits and store, ``datasets.release_key``),
    ``caption_masks`` (training samples only the captions a mask keeps, see
    ``data_loader/teachtext/caption_masks.py``) and ``training_file`` (a list of video ids, one per line,
    replacing the training split); both are paths relative to the feature root
    (``datasets.feature_root``), as in the original.
    """

    def __init__(self, dataset_name: str, data_dir: str, split_name: str = "val",
                 batch_size: Annotated[int, AtLeast(MIN_BATCH)] = 64,
                 max_tokens: dict[str, Count] | None = None, feat_aggregation: dict | None = None,
                 num_test_captions: Count = 20, restrict_train_captions: int = 0, synthetic_seed: int = 0,
                 root_feat_folder: str = DEFAULT_ROOT_FEAT_FOLDER, fuse_captions: bool | None = None,
                 class_annotations: str | None = None, relevance_files: dict[str, str] | None = None,
                 challenge_test_root_feat_folder: str = CHALLENGE_TEST_ROOT_FEAT_FOLDER,
                 role_graphs: str | None = None, role_graph_files: dict[str, str] | None = None,
                 frame_sampling: str = "first", *,
                 experts: list[str], text_feat: str, caption_masks: str | None = None,
                 training_file: str | None = None, challenge_mode: bool = False):
        self.dataset_name = dataset_name
        self.batch_size = batch_size
        self.max_tokens = {**DEFAULT_MAX_TOKENS, **(max_tokens or {})}
        self.num_test_captions = num_test_captions
        if restrict_train_captions < 0:
            raise ConfigError(f"data_loader.args.restrict_train_captions: expected 0 (all captions) or a "
                             f"positive count, got {restrict_train_captions}")
        self.restrict_train_captions = restrict_train_captions
        if frame_sampling not in FRAME_SAMPLINGS:
            raise ConfigError(f"data_loader.args.frame_sampling: expected one of {FRAME_SAMPLINGS}, "
                              f"got {frame_sampling!r}")
        self.frame_sampling = frame_sampling
        release = RELEASES.get(dataset_name)
        fused = release is not None and release.fused_captions
        if fuse_captions is not None and bool(fuse_captions) != fused:
            raise ConfigError(f"data_loader.args.fuse_captions: {str(fuse_captions).lower()} is not supported for "
                              f"{dataset_name}; captions are fused by the dataset's own rule here "
                              "(DiDeMo, ActivityNet, QuerYD)")
        key = release_key(dataset_name, challenge_mode) if release is not None else dataset_name
        self.challenge_mode = challenge_mode
        path = store_dir(key, data_dir)
        plan = None
        if release is not None:
            check_release(key, Path(data_dir), root_feat_folder)
            plan = plan_store(key, list(experts), feat_aggregation or {}, text_feat, split_name)
        self.store: FeatureStore = _load(path, experts, text_feat, plan)
        self._check(feat_aggregation or {})
        self.role_graphs = None if role_graphs is None else RoleGraphTable(
            path, role_graphs, str(read_index_attrs(path)[STORE_ID]), self.store.raw_captions)
        self.train_split, self.eval_split = split_pair(key, split_name, list(self.store.splits))
        self._require_split(self.eval_split)
        self.test_captions = None
        if plan is not None and plan.test_split:
            self.test_captions = read_test_captions(path, plan.test_split)
            if self.test_captions is None:
                raise StoreError(f"{test_captions_path(path, plan.test_split)}: test caption table not found; "
                                 "convert it with python3 misc/convert_features.py")
        classes = read_classes(path, self.store.raw_captions)
        self.class_relevance = None if classes is None else VideoCaptionRelevance(
            classes.verbs, classes.nouns, self.store.caption_offsets)
        self.relevance_files = dict(relevance_files or {})  # only the files this config names are used
        self._eval_relevance: dict[str, torch.Tensor] = {}
        root = feature_root(dataset_name, data_dir, root_feat_folder)
        self.training_rows = None if training_file is None else self._read_training_file(root / training_file)
        self.kept_captions = self.kept_upto = None  # the mask [C] and its running count [C]
        if caption_masks is not None:
            if restrict_train_captions:
                raise ConfigError("caption_masks and data_loader.args.restrict_train_captions cannot be combined")
            self.kept_captions = load_caption_mask(path, caption_masks, self.train_rows, self.store.video_ids,
                                                   self.store.caption_offsets)
            self.kept_upto = self.kept_captions.long().cumsum(0)

    def _read_training_file(self, path: Path) -> torch.Tensor:
        """Store rows [n] of the videos listed in ``path`` (one id per line)."""
        if not path.is_file():
            raise StoreError(f"{path}: training_file not found")
        ids = read_video_list(path, self.dataset_name)
        row = {v: i for i, v in enumerate(self.store.video_ids)}
        unknown = [v for v in ids if v not in row]
        if unknown or not ids:
            raise StoreError(f"{path}: " + (f"video {unknown[0]} is not in the store" if unknown else "lists no video"))
        return torch.tensor([row[v] for v in ids], dtype=torch.int64)

    def _check(self, feat_aggregation: dict) -> None:
        for name, expert in self.store.experts.items():
            temporal = feat_aggregation.get(name, {}).get("temporal")
            wants_tokens = temporal == "vlad"
            if wants_tokens != (expert.kind == "tokens"):
                raise StoreError(f"{self.store.path}: expert '{name}' is stored as {expert.kind} features but "
                                 f"data_loader.args.feat_aggregation.{name}.temporal is {temporal!r}")
            if wants_tokens and name not in self.max_tokens:
                raise StoreError(f"{self.store.path}: expert '{name}' has tokens; "
                                 f"set data_loader.args.max_tokens.{name}")

    def _require_split(self, split: str) -> None:
        """StoreError unless the store holds ``split`` (a release converted while it held only some
        splits' videos lacks the others)."""
        if split not in self.store.splits:
            others = [name for name in sorted(self.store.splits) if name not in (split, self.train_split)]
            hint = (f"it may hold the split '{others[0]}' you want: test.py --split val evaluates the training "
                    "config's own split; " if split != self.train_split and others else "")
            raise StoreError(f"{self.store.path}: split '{split}' not in the store (it has: "
                             f"{', '.join(sorted(self.store.splits))}); {hint}if the release now holds its "
                             "videos, delete the store folder to convert it again")

    def load_to_device(self, device: torch.device) -> bool:
        """Keep the store's tensors on ``device`` when they fit (a CUDA device: within
        ``DEVICE_STORE_SHARE`` of its free memory), so batches are gathered there; True if moved."""
        if device.type != "cuda":
            return False
        free, _ = torch.cuda.mem_get_info(device)
        if store_nbytes(self.store) > DEVICE_STORE_SHARE * free:
            return False
        self.store = store_on(self.store, device)
        if self.role_graphs is not None:
            self.role_graphs.to(device)
        if self.test_captions is not None:
            self.test_captions = self.test_captions.to(device)
        if self.kept_upto is not None:
            self.kept_upto = self.kept_upto.to(device)
        return True

    @property
    def train_rows(self) -> torch.Tensor:
        """Store rows of the training videos: the ``training_file``'s, else the training split's
        (training needs them; evaluation does not)."""
        if self.training_rows is not None:
            return self.training_rows
        self._require_split(self.train_split)
        return self.store.splits[self.train_split]

    def video_inputs(self, video_rows: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Features and availability of videos ``video_rows`` [B] (``data_loader.batches.expert_batch``);
        with ``frame_sampling`` "select", token experts are sampled as HGR does and ``ind`` holds
        their frame counts."""
        if self.frame_sampling == "first":
            return expert_batch(self.store, video_rows, self.max_tokens)
        experts, ind = {}, {}
        for name, expert in self.store.experts.items():
            available = expert.available[video_rows].float()
            if expert.offsets is None:
                experts[name], ind[name] = expert.features[video_rows].float(), available
                continue
            frames, lengths = select_frames(expert.features, expert.offsets, video_rows, self.max_tokens[name])
            experts[name], ind[name] = frames.float(), lengths.float().to(available.device) * available
        return experts, ind

    def text_inputs(self, caption_rows: torch.Tensor) -> torch.Tensor | RoleGraphText:
        """Captions ``caption_rows`` [*S] (-1 = none) as the model reads them: word embeddings
        [*S, T, D], or with ``role_graphs`` HGR's word ids and role graphs."""
        if self.role_graphs is not None:
            return self.role_graphs.gather(caption_rows)
        return text_batch(self.store, caption_rows, self.max_tokens["text"])

    def num_train_batches(self, world_size: int = 1) -> int:
        full, rest = divmod(len(self.train_rows), self.batch_size)
        return full + (rest >= max(MIN_BATCH, world_size))

    def require_relevance(self, train: bool, evaluate: bool) -> None:
        """Check that the store can give what a run asks for: semantic classes for the
        relevance of training batches (``train``), classes or a relevance matrix of the
        evaluation split for relevance metrics (``evaluate``). StoreError otherwise."""
        path = self.store.path
        if train and self.class_relevance is None:
            raise StoreError(f"{classes_path(path)}: not found; a relevance-aware loss needs the captions' "
                             "semantic classes (data_loader.args.class_annotations, see README)")
        if evaluate and self.class_relevance is None and self.eval_split not in self.relevance_files:
            raise StoreError(f"{relevance_path(path, self.eval_split)}: not found, nor {classes_path(path)}; "
                             "relevance metrics need the split's relevance (data_loader.args.relevance_files) "
                             "or the captions' semantic classes (see README)")

    def train_batches(self, generator: torch.Generator, rank: int = 0, world_size: int = 1,
                      relevance: bool = False) -> Iterator[Batch]:
        """One epoch: shuffled training videos, one random caption each (among the first
        ``restrict_train_captions`` or the kept ones when set); ``text`` is [B, 1, T, D]. With
        ``relevance`` every batch carries the [video, caption] relevance of its videos to its captions.

        With ``world_size`` > 1 every rank draws the same global batches (same generator state)
        and yields its contiguous share of each (``shard_bounds``), so together the ranks see the
        batches of a single process; the relevance is that of the whole global batch, which the
        ranks' gathered similarities are scored against. A last batch of fewer than
        ``max(MIN_BATCH, world_size)`` videos is left out: one video has no negatives for the
        ranking loss and BatchNorm cannot train on it, and every rank needs a video."""
        if relevance:
            self.require_relevance(train=True, evaluate=False)
        order = torch.randperm(len(self.train_rows), generator=generator).to(self.train_rows.device)
        rows = self.train_rows[order]
        for start in range(0, len(rows), self.batch_size):
            video_rows = rows[start:start + self.batch_size]
            if len(video_rows) < max(MIN_BATCH, world_size):
                break
            captions = sample_captions(self.store, video_rows, generator, self.restrict_train_captions,
                                       self.kept_upto)[:, None]
            lo, hi = shard_bounds(len(video_rows), rank, world_size)
            batch = Batch(*self.video_inputs(video_rows[lo:hi]), self.text_inputs(captions[lo:hi]),
                          video_rows[lo:hi], captions[lo:hi])
            if world_size > 1:
                batch.global_rows = (video_rows, captions[:, 0])
            if relevance:
                batch.relevance = self.class_relevance(video_rows.cpu(), captions[:, 0].cpu())
            yield batch

    def eval_set(self) -> EvalSet:
        """The evaluation split with up to ``num_test_captions`` captions per video.

        Splits with a released test caption table (MSRVTT jsfusion) evaluate only the caption it
        gives for each video, in slot 0.
        """
        video_rows = self.store.splits[self.eval_split]
        if self.test_captions is None:
            captions = caption_table(self.store, video_rows, self.num_test_captions)
        else:
            captions = torch.full((len(video_rows), self.num_test_captions), -1, dtype=torch.int64,
                                  device=video_rows.device)
            captions[:, 0] = self.test_captions
        return EvalSet(self.eval_split, video_rows, captions, (captions >= 0).float())

    def eval_relevance(self, eval_set: EvalSet) -> torch.Tensor:
        """Relevance [N, K] of the split's videos to its K existing captions (``query_rows``),
        indexed [video, caption]: the store's matrix of the split when it has one, else
        computed from the semantic classes. The store's matrix is the file the config names for the
        split (``relevance_files``), else the dataset's own (EPIC-KITCHENS-100's official test
        relevance; ``data_loader.ranp.classes.read_relevance``). Read or computed once per split."""
        if eval_set.split not in self._eval_relevance:
            shape = (eval_set.num_videos, eval_set.num_queries)
            matrix = read_relevance(self.store.path, eval_set.split, shape, captions_sha1(self.store.raw_captions),
                                    self.relevance_files.get(eval_set.split))
            if matrix is None:
                self.require_relevance(train=False, evaluate=True)
                matrix = self.class_relevance(eval_set.video_rows.cpu(), eval_set.query_rows.cpu())
            self._eval_relevance[eval_set.split] = matrix
        return self._eval_relevance[eval_set.split]

    def eval_relevance_columns(self, eval_set: EvalSet) -> torch.Tensor | None:
        """The caption (query) number [M] each column of :meth:`eval_relevance` is scored as,
        when the stored relevance has a sentence set of its own (EPIC-KITCHENS-100's test
        sentences); None when its columns are the split's captions."""
        columns = read_relevance_columns(self.store.path, eval_set.split)
        return None if columns is None else columns[0]
