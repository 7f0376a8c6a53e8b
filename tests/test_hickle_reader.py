"""data_loader/released/hickle_reader.py: hickle 3, 4 and 5 feature tables read as plain HDF5."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from conftest import REPO

from data_loader.released.convert import load_released
from data_loader.released.hickle_reader import load_hickle
from data_loader.store.feature_store import StoreError

FIXTURES = REPO / "tests" / "data" / "hickle"


def expected_table() -> dict:
    rng = np.random.default_rng(0)
    return {"video0": rng.standard_normal((3, 4)).astype(np.float32), "video1": float("nan"),
            "video2": rng.standard_normal((5, 4)).astype(np.float32)}


@pytest.mark.parametrize("version", [3, 4, 5])
def test_every_hickle_layout_reads_as_the_dumped_table(version):
    table = load_hickle(FIXTURES / f"vggish-raw-hickle{version}.hickle")
    expected = expected_table()
    assert sorted(table) == sorted(expected)
    assert isinstance(table["video1"], float) and np.isnan(table["video1"])
    for key in ("video0", "video2"):
        assert table[key].dtype == np.float32
        np.testing.assert_array_equal(table[key], expected[key])


def test_queryd_audio_is_read_from_its_released_hickle(tmp_path):
    relative = "aggregated_audio/vggish-raw.hickle"
    (tmp_path / relative).parent.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "vggish-raw-hickle4.hickle", tmp_path / relative)
    assert sorted(load_released(tmp_path, relative, "QuerYD")) == ["video0", "video1", "video2"]


def test_files_that_are_not_feature_tables_are_named(tmp_path):
    text = tmp_path / "text.hickle"
    text.write_text("not hdf5")
    with pytest.raises(StoreError, match=f"{text}: not a readable HDF5/hickle file"):
        load_hickle(text)
    other = tmp_path / "other.hickle"
    with h5py.File(other, "w") as f:
        f["features"] = np.zeros(3)
    with pytest.raises(StoreError, match=f"{other}: not a hickle file holding a dict"):
        load_hickle(other)
    strings = tmp_path / "strings.hickle"
    with h5py.File(strings, "w") as f:
        f.create_group("data")["'video0'"] = np.array([b"a", b"b"])
    with pytest.raises(StoreError, match="'video0': expected a numeric array per video, got dtype"):
        load_hickle(strings)
