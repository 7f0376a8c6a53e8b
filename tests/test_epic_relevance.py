"""The official EPIC-KITCHENS-100 test relevance, rebuilt from the shipped annotation CSVs,
and the random-scorer baseline of the official metrics on it."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from data_loader.ranp.epic_relevance import (
    SHIPPED_ANNOTATIONS,
    TEST_SENTENCES_CSV,
    official_test_relevance,
    parse_class_list,
    read_sentences,
)
from model.ranp.metrics import ndcg_and_map
from utils.errors import StoreError


@pytest.fixture(scope="module")
def official():
    return official_test_relevance()


@pytest.mark.slow
def test_shape_values_and_partners(official) -> None:
    rel, clips, sentence_ids, _ = official
    assert rel.shape == (9668, 3842) and rel.dtype == np.float64
    values = np.unique(rel)
    assert len(values) == 18
    grid = {Fraction(v + n, 2) for v in (0, 1) for n in
            {Fraction(i, u) for u in range(1, 12) for i in range(0, u + 1)}}
    assert all(any(abs(v - float(g)) < 1e-15 for g in grid) for v in values)
    assert rel.sum() == pytest.approx(2_040_309.23, abs=0.01)
    assert (rel == 1).any(axis=1).all() and (rel == 1).any(axis=0).all()
    assert (rel > 0).mean() == pytest.approx(0.1137, abs=1e-4)
    assert (rel == 1).mean() == pytest.approx(0.00168, abs=1e-5)
    # a sentence is fully relevant to the clip its narration_id names
    row = {clip: i for i, clip in enumerate(clips.ids)}
    assert all(rel[row[s], j] == 1 for j, s in enumerate(sentence_ids))


@pytest.mark.slow
def test_entries_follow_the_definition(official) -> None:
    """Spot checks of 0.5 * [same verb] + 0.5 * IoU(noun sets) against Python sets."""
    rel, clips, sentence_ids, _ = official
    row = {clip: i for i, clip in enumerate(clips.ids)}
    nouns = [set(clips.nouns.values[clips.nouns.offsets[i]:clips.nouns.offsets[i + 1]].tolist())
             for i in range(len(clips.ids))]
    rng = np.random.default_rng(0)
    for i, j in zip(rng.integers(0, rel.shape[0], 400), rng.integers(0, rel.shape[1], 400)):
        c = row[sentence_ids[j]]
        expected = ((clips.verbs[i] == clips.verbs[c]) + len(nouns[i] & nouns[c]) / len(nouns[i] | nouns[c])) / 2
        assert rel[i, j] == expected


@pytest.mark.slow
def test_random_scores_give_the_random_baseline(official) -> None:
    rel = official[0]
    sims = np.random.default_rng(0).random(rel.shape)
    metrics = ndcg_and_map(sims, rel)
    assert metrics["mAP_vt"] == pytest.approx(0.057, abs=0.002)
    assert metrics["mAP_tv"] == pytest.approx(0.056, abs=0.002)
    assert metrics["nDCG_vt"] == pytest.approx(0.108, abs=0.002)
    assert metrics["nDCG_tv"] == pytest.approx(0.110, abs=0.002)


def test_sentence_text_is_kept_as_published() -> None:
    """The published sentence CSV's extra rows carry the previous extra row's text."""
    ids, texts = read_sentences(SHIPPED_ANNOTATIONS / TEST_SENTENCES_CSV)
    assert len(ids) == 3842
    assert ids[-7:] == ["P22_04_144", "P08_16_88", "P08_15_47", "P22_01_180", "P01_14_59", "P12_03_60", "P12_03_90"]
    assert texts[-7:] == ["wash cooker", "cut slice", "throw away bits", "throw away bits", "put down down slice",
                          "looking for something", "count"]


def test_class_lists_parse_and_bad_ones_are_named() -> None:
    assert parse_class_list("[3, 14]", "x") == [3, 14]
    assert parse_class_list(7, "x") == [7]
    with pytest.raises(StoreError, match="clip P01_1 noun_classes"):
        parse_class_list("[3, oops]", "clip P01_1 noun_classes")
