"""Write a small synthetic CVPR 2020 challenge release of one dataset, in the original layout.

Under ``<data_dir>/`` (a config's ``data_loader.args.data_dir``) it writes the two releases the
challenge configs read (``data_loader/released/datasets.py``, challenge section):

* ``challenge-release-1/``: ``train_list.txt``, ``val_list.txt`` (the dev split) and
  ``public_server_val.txt``; the raw captions and text features of those videos; the visual
  expert files of every video, those of ``public_server_test`` included;
* ``challenge-release-2/`` (not for LSMDC, which has none): ``public_server_test.txt`` and the
  raw captions and text features of its videos only.

Captions per video follow the dataset's evaluation (:data:`CAPTIONS`): MSR-VTT has 20, and a few
``public_server_test`` videos 19 (padded queries, as the 6 of the real test phase); MSVD has a
varying number up to 81; DiDeMo and ActivityNet have several sentences that the store fuses into
one paragraph per video; YouCook2 several, of which the first is evaluated; LSMDC one. DiDeMo
lists carry file extensions, stripped on reading as in the release. Features come from
``release_tables`` (noise plus shared concepts), so a short training run ranks above chance.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_loader.generated.release_tables import ExpertFile, captions_and_text, dump, expert_table, video_concepts
from data_loader.released.datasets import (
    CHALLENGE_ROOT_FEAT_FOLDER,
    CHALLENGE_TEST_ROOT_FEAT_FOLDER,
    RELEASES,
    SPLITS,
    challenge_key,
)
from data_loader.released.release_plan import plan_store

# dataset -> (fewest, most) captions per video; MSRVTT public_server_test videos lose one in SHORT_EVERY
CAPTIONS = {"MSRVTT": (20, 20), "MSVD": (5, 81), "DiDeMo": (2, 4), "ActivityNet": (2, 4), "YouCook2": (2, 6),
            "LSMDC": (1, 1)}
SHORT_EVERY = 5
MISSING_FRACTION = 0.3  # of the videos lacking a flaky expert
TOKEN_RANGE = (2, 12)  # tokens per video of token experts
LIST_SUFFIX = ".mp4"  # on list entries of datasets whose lists carry file names (DiDeMo)


@dataclass(frozen=True)
class GeneratedRelease:
    """What was written: list stem -> video ids (list order), video id -> its caption count."""

    lists: dict[str, list[str]]
    captions: dict[str, int]

    def phase_count(self, stem: str, per_video: int, fused: bool) -> tuple[int, int]:
        """(videos, invalid queries) of list ``stem`` evaluated with ``per_video`` captions per
        video (one, the paragraph, for a fused dataset)."""
        ids = self.lists[stem]
        valid = sum(1 if fused else min(self.captions[v], per_video) for v in ids)
        return len(ids), len(ids) * per_video - valid


@dataclass(frozen=True)
class SplitSizes:
    """Videos per list of the generated release."""

    train: int = 48
    val: int = 12
    public_server_val: int = 12
    public_server_test: int = 12


def challenge_lists(dataset: str, sizes: SplitSizes) -> dict[str, list[str]]:
    """List stem -> video ids (disjoint lists), ``public_server_test`` only where the dataset has one."""
    counts = {"train_list": sizes.train, "val_list": sizes.val, "public_server_val": sizes.public_server_val}
    if "public_server_test" in SPLITS[challenge_key(dataset)]:
        counts["public_server_test"] = sizes.public_server_test
    lists, start = {}, 0
    for stem, count in counts.items():
        lists[stem] = [f"video{start + i}" for i in range(count)]
        start += count
    return lists


def caption_counts(dataset: str, video_ids: list[str], test_ids: set[str], rng: np.random.Generator) -> list[int]:
    """Captions of every video: within the dataset's range, one fewer for every SHORT_EVERY-th
    ``public_server_test`` video of a dataset with a fixed count above one (MSR-VTT)."""
    low, high = CAPTIONS[dataset]
    counts = rng.integers(low, high + 1, size=len(video_ids)).tolist()
    if low == high > 1:
        short = sorted(test_ids)[::SHORT_EVERY]
        counts = [c - (v in short) for c, v in zip(counts, video_ids)]
    return counts


def expert_files(dataset: str, feat_aggregation: dict, expert_dims: dict[str, int]) -> list[ExpertFile]:
    """The release-1 files of experts ``expert_dims`` (config name -> width the loader gives)."""
    plan = plan_store(challenge_key(dataset), list(expert_dims), feat_aggregation, None)
    files = []
    for expert, source in plan.experts.items():
        flaky = feat_aggregation[expert].get("flaky")
        dim = expert_dims[expert] // len(source.files) if source.kind == "fixed" else expert_dims[expert]
        files += [ExpertFile(f, source.kind, dim, MISSING_FRACTION if flaky else 0.0, TOKEN_RANGE)
                  for f in source.files]
    return files


def _write_list(path: Path, ids: list[str], suffix: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{v}{suffix}\n" for v in ids))


def write_challenge_release(data_dir: Path, dataset: str, feat_aggregation: dict, expert_dims: dict[str, int],
                            text_dims: dict[str, int], sizes: SplitSizes = SplitSizes(), seed: int = 0,
                            text_tokens: int = 4) -> GeneratedRelease:
    """Write both releases of ``dataset`` under ``data_dir`` (see the module docstring); returns the
    lists and caption counts written.

    ``feat_aggregation``: the config's entries (where each expert lies); ``expert_dims``: the
    experts to write and their widths; ``text_dims``: text feature name -> word vector width."""
    release = RELEASES[challenge_key(dataset)]
    rng = np.random.default_rng(seed)
    lists = challenge_lists(dataset, sizes)
    video_ids = [v for ids in lists.values() for v in ids]
    test_ids = set(lists.get("public_server_test", []))
    concepts = video_concepts(rng, len(video_ids))
    counts = caption_counts(dataset, video_ids, test_ids, rng)
    roots = {False: Path(data_dir) / CHALLENGE_ROOT_FEAT_FOLDER, True: Path(data_dir) / CHALLENGE_TEST_ROOT_FEAT_FOLDER}
    suffix = LIST_SUFFIX if release.strip_list_suffix else ""
    for stem, ids in lists.items():
        _write_list(roots[stem == "public_server_test"] / f"{stem}.txt", ids, suffix)
    for number, (name, dim) in enumerate(text_dims.items()):
        raw, text = captions_and_text(video_ids, concepts, counts, text_tokens, dim, np.random.default_rng(
            [seed, number]))
        relative = release.text_files(name).paths[0]
        for in_test, root in roots.items():
            if in_test and not test_ids:
                continue
            dump(root / relative, {v: text[v] for v in video_ids if (v in test_ids) == in_test})
            if number == 0:
                dump(root / release.raw_captions, {v: raw[v] for v in video_ids if (v in test_ids) == in_test})
    for spec in expert_files(dataset, feat_aggregation, expert_dims):
        dump(roots[False] / spec.relative, expert_table(spec, video_ids, concepts, rng))
    return GeneratedRelease(lists, dict(zip(video_ids, counts)))
