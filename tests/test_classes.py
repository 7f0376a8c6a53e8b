"""Semantic classes in the store: Synthetic's derived classes, imported annotations and
relevance matrices, bad files refused in one line, and the loader's relevance."""
from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
import torch

from data_loader.expert_loader import ExpertDataLoader
from data_loader.generated.synthetic import CONCEPT_WORDS, TEMPLATES, generate_synthetic
from data_loader.generated.synthetic_classes import NOUN_WORDS, VERB_WORDS, caption_concepts
from data_loader.prepare import prepare_store
from data_loader.ranp.classes import classes_path, read_captions, read_classes, relevance_path
from data_loader.ranp.relevance import (
    ClassLists,
    VideoCaptionRelevance,
    class_counts,
    pool_dataset,
    pool_video_classes,
    video_caption_relevance,
)
from data_loader.store.feature_store import ExpertArrays, TokenArrays, write_store
from utils.errors import StoreError

SMALL = {"train": 40, "val": 10, "test": 10}
TEXT = "w"


def lists_of(lists: ClassLists) -> list[list[int]]:
    return [lists.values[a:b].tolist() for a, b in zip(lists.offsets[:-1].tolist(), lists.offsets[1:].tolist())]


def loader(data_dir, **args) -> ExpertDataLoader:
    return ExpertDataLoader("Tiny", str(data_dir), split_name="test", batch_size=2, num_test_captions=3,
                            feat_aggregation={"rgb": {"temporal": "avg"}}, experts=["rgb"], text_feat=TEXT, **args)


@pytest.fixture
def tiny(tmp_path):
    """A store of 4 videos (splits train 0-1, test 2-3) with 2, 3, 1 and 2 captions."""
    captions = [["a", "b"], ["c", "d", "e"], ["f"], ["g", "h"]]
    write_store(tmp_path / "store", dataset="Tiny", video_ids=["v0", "v1", "v2", "v3"],
                splits={"train": np.array([0, 1]), "test": np.array([2, 3])},
                experts={"rgb": ExpertArrays(np.ones((4, 2), np.float32), np.ones(4, bool))},
                captions=captions, text={TEXT: TokenArrays(np.ones((8, 3), np.float32), np.arange(9))})
    return tmp_path


ANNOTATIONS = {"v0": [{"verb_class": 0, "noun_classes": [1, 2]}, {"verb_class": [0], "noun_classes": [2]}],
               "v1": [{"verb_class": 1, "noun_classes": [0]}] * 3,
               "v2": [{"verb_class": 1, "noun_classes": [0, 0]}],
               "v3": [{"verb_class": 2, "noun_classes": []}, {"verb_class": 1, "noun_classes": [0]}],
               "not_in_store": []}


def write_json(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_synthetic_captions_parse_into_the_concepts_they_name():
    assert caption_concepts("people near dog and cooking in a clip") == ["dog", "cooking"]
    assert caption_concepts("a man talks about dog") == ["dog"]           # the template's "man" is filler
    assert caption_concepts("a man talks about man and man") == ["man", "man"]
    assert caption_concepts("the clip shows guitar and beach and more") == ["guitar", "beach"]
    assert set(VERB_WORDS) == {"swimming", "dancing", "cooking", "baking", "painting", "singing"}
    assert sorted(VERB_WORDS + NOUN_WORDS) == sorted(CONCEPT_WORDS)
    for text in ("dog is here", "a video of unicorn", ""):
        with pytest.raises(ValueError, match="template and concept phrase"):
            caption_concepts(text)
    every = [t.format(" and ".join(CONCEPT_WORDS[i:i + 3])) for t in TEMPLATES for i in range(0, 48, 3)]
    assert all(caption_concepts(c) for c in every)


@pytest.mark.slow
def test_synthetic_store_gets_classes_of_every_caption(tmp_path):
    generate_synthetic(tmp_path, seed=0, split_sizes=SMALL)
    store_dir = prepare_store("Synthetic", tmp_path, 0)
    _, _, raw = read_captions(store_dir)
    classes = read_classes(store_dir, raw)
    verbs, nouns = lists_of(classes.verbs), lists_of(classes.nouns)
    assert len(verbs) == len(nouns) == len(raw) == 60 * 20
    for caption, v, n in zip(raw, verbs, nouns):
        named = caption_concepts(caption)
        assert [VERB_WORDS[i] for i in v] == [w for w in named if w in VERB_WORDS]
        assert [NOUN_WORDS[i] for i in n] == [w for w in named if w in NOUN_WORDS]
        assert 1 <= len(v) + len(n) <= 3
        assert all(word in caption.split() for word in [VERB_WORDS[i] for i in v] + [NOUN_WORDS[i] for i in n])
    assert 0 < sum(map(len, verbs)) < sum(map(len, nouns))
    with pytest.raises(StoreError, match="classes belong to other captions"):
        read_classes(store_dir, raw[::-1])
    # regenerating replaces the whole store folder, classes included: preparing derives them anew
    generate_synthetic(tmp_path, seed=1, split_sizes=SMALL)
    assert read_classes(store_dir, read_captions(store_dir)[2]) is None
    prepare_store("Synthetic", tmp_path, 1)
    assert read_classes(store_dir, read_captions(store_dir)[2]) is not None


@pytest.mark.slow
def test_synthetic_test_split_has_graded_relevance(tmp_path):
    generate_synthetic(tmp_path, seed=0, split_sizes=SMALL)
    prepare_store("Synthetic", tmp_path, 0)
    data = ExpertDataLoader("Synthetic", str(tmp_path), split_name="test", num_test_captions=20,
                            feat_aggregation={"scene": {"temporal": "avg"}}, experts=["scene"], text_feat="synthetic")
    eval_set = data.eval_set()
    rel = data.eval_relevance(eval_set)
    assert rel.shape == (10, 200) and rel.dtype == torch.float32
    own = rel.reshape(10, 10, 20).diagonal(dim1=0, dim2=1)      # [caption slot, video]: each video's own captions
    assert own.mean() > 2 * rel.mean() > 0
    assert ((rel >= 0) & (rel <= 1)).all() and len(rel.unique()) > 5


def test_annotations_are_imported_and_give_batch_and_split_relevance(tiny):
    prepare_store("Tiny", tiny, class_annotations=write_json(tiny / "classes.json", ANNOTATIONS))
    data = loader(tiny)
    classes = read_classes(tiny / "store", read_captions(tiny / "store")[2])
    assert lists_of(classes.verbs) == [[0], [0], [1], [1], [1], [1], [2], [1]]
    assert lists_of(classes.nouns) == [[1, 2], [2], [0], [0], [0], [0, 0], [], [0]]
    # pooled (25 % of 2 captions: one occurrence): video 0 verbs {0}, nouns {1, 2}; video 3 verbs {1, 2},
    # nouns {0}. Caption 5: verb 1, nouns {0}; caption 6: verb 2, no nouns.
    got = data.class_relevance(torch.tensor([0, 3]), torch.tensor([5, 6]))
    assert got.tolist() == [[0.0, 0.0], [0.5 * (1 / 2 + 1), 0.5 * (1 / 2 + 0)]]
    (batch,) = data.train_batches(torch.Generator().manual_seed(0), relevance=True)
    assert batch.relevance.shape == (2, 2)
    torch.testing.assert_close(batch.relevance, data.class_relevance(batch.video_rows, batch.caption_rows[:, 0]))
    assert next(iter(data.train_batches(torch.Generator().manual_seed(0)))).relevance is None
    eval_set = data.eval_set()
    assert eval_set.query_rows.tolist() == [5, 6, 7]
    torch.testing.assert_close(data.eval_relevance(eval_set), data.class_relevance(torch.tensor([2, 3]),
                                                                                  torch.tensor([5, 6, 7])))


def test_a_relevance_file_is_imported_and_used_for_its_split(tiny):
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3) / 6
    with h5py.File(tiny / "rel.hdf5", "w") as f:
        f["rel_mat"] = matrix
    prepare_store("Tiny", tiny, relevance_files={"test": str(tiny / "rel.hdf5")})
    assert relevance_path(tiny / "store", "test").is_file() and not classes_path(tiny / "store").is_file()
    data = loader(tiny, relevance_files={"test": str(tiny / "rel.hdf5")})
    np.testing.assert_array_equal(data.eval_relevance(data.eval_set()).numpy(), matrix)
    with pytest.raises(StoreError, match="classes.h5: not found; a relevance-aware loss"):
        next(iter(data.train_batches(torch.Generator(), relevance=True)))


def one_line_error(call) -> str:
    with pytest.raises(StoreError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("annotations, message", [
    (None, "class annotation file not found"),
    ("not json", "not a JSON class annotation file"),
    ([1, 2], "expected an object mapping video ids"),
    ({**ANNOTATIONS, "v1": ANNOTATIONS["v1"][:2]}, "video 'v1' needs a list of 3 caption entries .* got 2"),
    ({k: v for k, v in ANNOTATIONS.items() if k != "v2"}, "video 'v2' needs a list of 1 caption entries .* got none"),
    ({**ANNOTATIONS, "v2": [{"verb_class": -1}]}, r"video 'v2' caption 0: verb_class: expected a class id"),
    ({**ANNOTATIONS, "v2": [{"verbs": 1}]}, r"video 'v2' caption 0: expected an object with keys"),
    ({"v0": [{}, {}], "v1": [{}] * 3, "v2": [{}], "v3": [{}, {}]}, "no caption has 'verb_class' or 'noun_classes'"),
])
def test_bad_annotation_files_are_refused_in_one_line(tiny, annotations, message):
    path = tiny / "classes.json"
    if annotations is not None:
        path.write_text(annotations if isinstance(annotations, str) else json.dumps(annotations))
    text = one_line_error(lambda: prepare_store("Tiny", tiny, class_annotations=str(path)))
    assert "classes.json: " in text
    assert re.search(message, text), text


def test_bad_relevance_files_are_refused_in_one_line(tiny):
    path = tiny / "rel.hdf5"
    assert "relevance file" in one_line_error(lambda: prepare_store("Tiny", tiny, relevance_files={"test": str(path)}))
    with h5py.File(path, "w") as f:
        f["relevance"] = np.zeros((2, 3))
    assert "expected a 2-D dataset 'rel_mat'" in one_line_error(
        lambda: prepare_store("Tiny", tiny, relevance_files={"test": str(path)}))
    with h5py.File(path, "w") as f:
        f["rel_mat"] = np.zeros((3, 2))
    assert "rel_mat has shape (3, 2), the test split has 2 videos" in one_line_error(
        lambda: prepare_store("Tiny", tiny, relevance_files={"test": str(path)}))
    with h5py.File(path, "w") as f:
        f["rel_mat"] = np.zeros((2, 2))
    prepare_store("Tiny", tiny, relevance_files={"test": str(path)})
    data = loader(tiny, relevance_files={"test": str(path)})
    text = one_line_error(lambda: data.eval_relevance(data.eval_set()))
    assert "rel.hdf5): rel_mat has shape (2, 2), the test split needs (2, 3)" in text


def test_relevance_metrics_without_classes_or_matrix_are_refused(tiny):
    text = one_line_error(lambda: loader(tiny).require_relevance(train=False, evaluate=True))
    assert "relevance/test.h5: not found, nor" in text


def test_class_lists_select_and_dataset_pooling_match_the_dense_forms():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(0, 4, (50,), generator=gen)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    lists = ClassLists(torch.randint(0, 7, (int(offsets[-1]),), generator=gen), offsets, 7)
    rows = torch.tensor([4, 0, 49, 4])
    assert lists_of(lists.select(rows)) == [lists_of(lists)[r] for r in rows.tolist()]
    caption_offsets = torch.tensor([0, 5, 5, 12, 30, 50])
    owner = torch.repeat_interleave(torch.arange(5), caption_offsets.diff())
    dense = pool_video_classes(class_counts(lists.values, lists.offsets, 7), owner, 5)
    assert torch.equal(pool_dataset(lists, caption_offsets), dense)
    nouns = ClassLists(torch.randint(0, 9, (int(offsets[-1]),), generator=gen), offsets, 9)
    source = VideoCaptionRelevance(lists, nouns, caption_offsets)
    videos, captions = torch.tensor([3, 0, 2]), torch.arange(50).flip(0)
    expected = video_caption_relevance(dense[videos], source.video_nouns[videos],
                                       lists.select(captions).multi_hot(), nouns.select(captions).multi_hot())
    torch.testing.assert_close(source(videos, captions), expected.float())
