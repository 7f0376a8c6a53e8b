"""Imported relevance matrices (RANP): values checked when imported and read, nothing left behind
by a failed import, and a stored matrix used only by a config that names its file
(data_loader/ranp/classes.py, data_loader/expert_loader.py)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from test_classes import ANNOTATIONS, loader, tiny, write_json  # noqa: F401  (the tiny store fixture)

from data_loader.prepare import prepare_store
from data_loader.ranp.classes import relevance_path
from utils.errors import StoreError

GOOD = np.array([[1.0, 0.5, 0.0], [0.0, 0.25, 1.0]], dtype=np.float32)


def write_matrix(path, matrix) -> str:
    with h5py.File(path, "w") as f:
        f["rel_mat"] = matrix
    return str(path)


@pytest.mark.parametrize("matrix, message", [
    (np.where(GOOD > 0.4, np.nan, GOOD), r"rel_mat\[0, 0\] = nan, expected relevance in \[0, 1\]"),
    (-GOOD, r"rel_mat\[0, 0\] = -1.0, expected relevance in \[0, 1\]"),
    (GOOD * 5, r"rel_mat\[0, 0\] = 5.0"),
    (np.where(GOOD > 0.9, np.inf, GOOD), r"rel_mat\[0, 0\] = inf"),
    ((GOOD > 0.4).astype(np.int64) * 3, r"rel_mat\[0, 0\] = 3.0"),
    (np.full((2, 3), b"1", dtype="S1"), r"holds \|S1 values, expected numbers in \[0, 1\]"),
])
def test_relevance_values_outside_zero_one_are_refused(tiny, matrix, message):  # noqa: F811
    source = write_matrix(tiny / "rel.h5", matrix)
    with pytest.raises(StoreError, match=message):
        prepare_store("Tiny", tiny, relevance_files={"test": source})
    assert not relevance_path(tiny / "store", "test").exists()  # a failed import leaves nothing behind


def test_integer_and_bool_matrices_in_range_are_accepted(tiny):  # noqa: F811
    source = write_matrix(tiny / "rel.h5", (GOOD > 0.4))
    prepare_store("Tiny", tiny, relevance_files={"test": source})
    data = loader(tiny, relevance_files={"test": source})
    assert data.eval_relevance(data.eval_set()).tolist() == (GOOD > 0.4).tolist()


def test_stored_relevance_is_used_only_by_a_config_naming_it(tiny):  # noqa: F811
    annotations = write_json(tiny / "classes.json", ANNOTATIONS)
    source = write_matrix(tiny / "rel.h5", GOOD)
    prepare_store("Tiny", tiny, class_annotations=annotations, relevance_files={"test": source})
    named = loader(tiny, relevance_files={"test": source})
    np.testing.assert_array_equal(named.eval_relevance(named.eval_set()).numpy(), GOOD)
    prepare_store("Tiny", tiny, class_annotations=annotations)
    unnamed = loader(tiny)
    eval_set = unnamed.eval_set()
    expected = unnamed.class_relevance(eval_set.video_rows, eval_set.query_rows)
    np.testing.assert_array_equal(unnamed.eval_relevance(eval_set).numpy(), expected.numpy())
    assert not np.array_equal(expected.numpy(), GOOD)


def test_a_stored_relevance_edited_in_the_store_is_refused_when_read(tiny):  # noqa: F811
    source = write_matrix(tiny / "rel.h5", GOOD)
    prepare_store("Tiny", tiny, relevance_files={"test": source})
    with h5py.File(relevance_path(tiny / "store", "test"), "r+") as f:
        f["rel_mat"][0, 1] = 7.0
    data = loader(tiny, relevance_files={"test": source})
    with pytest.raises(StoreError, match=r"relevance/test.h5: rel_mat\[0, 1\] = 7.0"):
        data.eval_relevance(data.eval_set())


def test_a_store_holding_another_files_relevance_says_so(tiny):  # noqa: F811
    source = write_matrix(tiny / "rel.h5", GOOD)
    prepare_store("Tiny", tiny, relevance_files={"test": source})
    data = loader(tiny, relevance_files={"test": str(tiny / "other.h5")})
    with pytest.raises(StoreError, match="imported from .*rel.h5, but the config names .*other.h5"):
        data.eval_relevance(data.eval_set())


def test_huge_class_id_is_refused_before_anything_is_written(tiny):  # noqa: F811
    from data_loader.ranp.classes import classes_path
    annotations = write_json(tiny / "classes.json", {**ANNOTATIONS, "v2": [{"noun_classes": [10 ** 12]}]})
    with pytest.raises(StoreError, match=r"video 'v2' caption 0: noun_classes: expected a class id \(int in \[0, "):
        prepare_store("Tiny", tiny, class_annotations=annotations)
    assert not classes_path(tiny / "store").exists()
