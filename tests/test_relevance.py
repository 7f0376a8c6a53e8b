"""data_loader/ranp/relevance.py: parity with the original RANP relevance and explicit set arithmetic."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import reference_path

from data_loader.ranp.relevance import (
    caption_relevance,
    class_counts,
    csr_from_lists,
    multi_hot,
    pool_video_classes,
    relevance,
    set_iou,
    video_caption_relevance,
)


def load(case: str) -> tuple[dict[str, torch.Tensor], dict]:
    arrays = np.load(reference_path("ranp", f"{case}.npz"))
    expected = json.loads(reference_path("ranp", f"{case}.json").read_text())
    return {k: torch.from_numpy(v) for k, v in arrays.items()}, expected


def csr_lists(values: torch.Tensor, offsets: torch.Tensor) -> list[list[int]]:
    return [values[a:b].tolist() for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def explicit_relevance(verbs_a, verbs_b, nouns_a, nouns_b) -> float:
    """The README formula on Python sets, one pair at a time."""
    def iou(a, b) -> float:
        a, b = set(a), set(b)
        return len(a & b) / max(1, len(a | b))
    verb = iou(verbs_a, verbs_b) if isinstance(verbs_a, list) else float(verbs_a == verbs_b)
    return 0.5 * (verb + iou(nouns_a, nouns_b))


def reference_sets(case: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    arrays, expected = load(case)
    nouns = multi_hot(arrays["noun_values"], arrays["noun_offsets"], int(arrays["noun_values"].max()) + 1)
    if "verb_scalar" in arrays:
        verbs = arrays["verb_scalar"]
    else:
        verbs = multi_hot(arrays["verb_values"], arrays["verb_offsets"], int(arrays["verb_values"].max()) + 1)
    return verbs, nouns, expected


@pytest.mark.parametrize("case", ["relevance_captions_listverbs", "relevance_captions_scalarverb"])
def test_caption_relevance_matches_reference(case: str) -> None:
    verbs, nouns, expected = reference_sets(case)
    rel = caption_relevance(verbs, nouns)
    assert rel.dtype == torch.float64
    np.testing.assert_array_equal(rel.numpy(), np.array(expected["rel_float64"]))
    np.testing.assert_array_equal(rel.float().numpy(), np.array(expected["rel_sent_float32"], np.float32))


@pytest.mark.parametrize("case", ["relevance_captions_listverbs", "relevance_captions_scalarverb"])
def test_noun_only_and_verb_only_match_reference(case: str) -> None:
    verbs, nouns, expected = reference_sets(case)
    noun_only = caption_relevance(None, nouns).float().numpy()
    verb_only = caption_relevance(verbs, None).float().numpy()
    np.testing.assert_array_equal(noun_only, np.array(expected["rel_noun_only_float32"], np.float32))
    np.testing.assert_array_equal(verb_only, np.array(expected["rel_verb_only_float32"], np.float32))
    assert noun_only.min() >= 0.5 and verb_only.min() >= 0.5


def test_empty_sets_give_zero_iou_and_probes() -> None:
    none = torch.zeros(1, 3, dtype=torch.bool)
    assert set_iou(none, none).item() == 0.0
    # relevance([], [], [], []) == 0 and relevance(2, 2, [], []) == 0.5 in the original
    assert caption_relevance(torch.zeros(1, 4), none).item() == 0.0
    assert caption_relevance(torch.tensor([2]), none).item() == 0.5


def test_listverbs_empty_captions_self_relevance() -> None:
    verbs, nouns, expected = reference_sets("relevance_captions_listverbs")
    rel = caption_relevance(verbs, nouns)
    for i in expected["empty_captions"]:
        has_verbs, has_nouns = bool(verbs[i].any()), bool(nouns[i].any())
        assert rel[i, i].item() == 0.5 * (has_verbs + has_nouns)


def test_mixed_verb_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="scalar classes on both sides"):
        relevance(torch.tensor([3]), None, torch.tensor([[0, 0, 0, 1]]), None)
    with pytest.raises(ValueError, match="both sides or for neither"):
        relevance(torch.tensor([3]), None, None, torch.ones(1, 2))


def test_csr_helpers_round_trip_and_count_duplicates() -> None:
    lists = [[2, 0, 2], [], [1]]
    values, offsets = csr_from_lists(lists)
    assert csr_lists(values, offsets) == lists
    counts = class_counts(values, offsets, 3)
    assert counts.tolist() == [[1, 0, 2], [0, 0, 0], [0, 1, 0]]
    assert multi_hot(values, offsets, 3).tolist() == [[True, False, True], [False] * 3, [False, True, False]]
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 2\)"):
        class_counts(values, offsets, 2)


def explicit_pool(captions: list[list[int]], percent: float = 0.25) -> set[int]:
    counts = Counter(c for caption in captions for c in caption)
    return {c for c, n in counts.items() if n >= percent * len(captions)}


def pooled(videos: list[list[list[int]]], num_classes: int) -> list[set[int]]:
    captions = [caption for video in videos for caption in video]
    owner = torch.tensor([v for v, video in enumerate(videos) for _ in video], dtype=torch.int64)
    counts = class_counts(*csr_from_lists(captions), num_classes)
    sets = pool_video_classes(counts, owner, len(videos))
    return [set(torch.nonzero(row).flatten().tolist()) for row in sets]


def test_pooling_thresholds_of_the_25_percent_rule() -> None:
    five = [[1], [1], [2], [3, 4], [4]]              # 1.25 -> needs 2
    eight = [[5, 5], [6], [6], [7], [], [], [], []]  # 2.0 -> needs 2; 5 twice in one caption counts
    twenty = [[8]] * 5 + [[9]] * 4 + [[]] * 11       # 5.0 -> needs 5
    assert pooled([five, eight, twenty], 10) == [{1, 4}, {5, 6}, {8}]


def test_pooling_matches_explicit_counts_on_random_videos() -> None:
    rng = np.random.default_rng(3)
    videos = [[rng.integers(0, 12, rng.integers(0, 4)).tolist() for _ in range(rng.integers(1, 21))]
              for _ in range(30)]
    assert pooled(videos, 12) == [explicit_pool(v) for v in videos]


def test_video_without_captions_has_no_classes() -> None:
    counts = torch.ones(2, 3, dtype=torch.int64)
    sets = pool_video_classes(counts, torch.tensor([0, 0]), num_videos=2)
    assert sets.tolist() == [[True] * 3, [False] * 3]


def test_video_caption_relevance_matches_explicit_pairs() -> None:
    rng = np.random.default_rng(11)
    def caption() -> list[list[int]]:
        verbs, nouns = rng.integers(0, 6, rng.integers(0, 3)), rng.integers(0, 9, rng.integers(0, 4))
        return [verbs.tolist(), nouns.tolist()]
    videos = [[caption() for _ in range(rng.integers(1, 9))] for _ in range(12)]
    captions = [caption for video in videos for caption in video]
    owner = torch.tensor([v for v, video in enumerate(videos) for _ in video], dtype=torch.int64)
    verb_counts = class_counts(*csr_from_lists([c[0] for c in captions]), 6)
    noun_counts = class_counts(*csr_from_lists([c[1] for c in captions]), 9)
    got = video_caption_relevance(pool_video_classes(verb_counts, owner, len(videos)),
                                  pool_video_classes(noun_counts, owner, len(videos)),
                                  verb_counts > 0, noun_counts > 0)
    video_verbs = [sorted(explicit_pool([c[0] for c in video])) for video in videos]
    video_nouns = [sorted(explicit_pool([c[1] for c in video])) for video in videos]
    expected = [[explicit_relevance(video_verbs[v], c[0], video_nouns[v], c[1]) for c in captions]
                for v in range(len(videos))]
    assert got.shape == (len(videos), len(captions))
    np.testing.assert_array_equal(got.numpy(), np.array(expected))


def test_caption_relevance_matches_explicit_pairs_on_reference_lists() -> None:
    arrays, _ = load("relevance_captions_listverbs")
    verbs = csr_lists(arrays["verb_values"], arrays["verb_offsets"])
    nouns = csr_lists(arrays["noun_values"], arrays["noun_offsets"])
    got = caption_relevance(multi_hot(arrays["verb_values"], arrays["verb_offsets"], 64),
                            multi_hot(arrays["noun_values"], arrays["noun_offsets"], 64))
    expected = [[explicit_relevance(verbs[i], verbs[j], nouns[i], nouns[j]) for j in range(len(verbs))]
                for i in range(len(verbs))]
    np.testing.assert_array_equal(got.numpy(), np.array(expected))
