"""Stores keep what users added: a rebuilt store keeps exported and converted teachers and imported
relevance, says so, and marks them as made for the previous build (data_loader/store/feature_store.py)."""
from __future__ import annotations

import logging

import pytest

from data_loader.generated.synthetic import generate_synthetic
from data_loader.teachtext.teachers import teacher_is_current

SPLITS = {"train": 30, "val": 10, "test": 10}
pytestmark = pytest.mark.slow  # each generates a store


@pytest.fixture
def store(tmp_path):
    generate_synthetic(tmp_path, seed=0, split_sizes=SPLITS)
    return tmp_path / "store"


def test_rebuild_keeps_added_files_and_lists_them(store, tmp_path, caplog, monkeypatch):
    added = {"teachers/precious.h5": b"exported", "tp/good.h5": b"converted", "relevance/test.h5": b"imported"}
    for name, data in added.items():
        (store / name).parent.mkdir(parents=True, exist_ok=True)
        (store / name).write_bytes(data)
    monkeypatch.setattr(logging.getLogger("ce"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="ce"):
        generate_synthetic(tmp_path, seed=1, split_sizes=SPLITS)
    for name, data in added.items():
        assert (store / name).read_bytes() == data
    (line,) = [r.getMessage() for r in caplog.records if "kept" in r.getMessage()]
    assert "kept 3 file(s)" in line and all(name in line for name in added)
    assert not list(tmp_path.glob("store.*partial*"))


def test_kept_teacher_of_the_previous_build_is_not_current(store, tmp_path):
    import numpy as np

    from data_loader.released.convert import read_layout
    from data_loader.teachtext.teachers import TeacherArrays, write_teacher
    layout = read_layout(store)
    videos, captions = len(layout.video_ids), int(layout.caption_offsets[-1])
    write_teacher(store, "teachers/mine", TeacherArrays(np.ones(videos, bool), {"a": np.zeros((videos, 4))},
                                                        {"a": np.zeros((captions, 4))}))
    assert teacher_is_current(store, "teachers/mine")
    generate_synthetic(tmp_path, seed=1, split_sizes=SPLITS)
    assert (store / "teachers" / "mine.h5").is_file() and not teacher_is_current(store, "teachers/mine")


def test_generated_files_are_replaced_not_kept(store, tmp_path):
    index = (store / "index.h5").stat().st_ino
    generate_synthetic(tmp_path, seed=1, split_sizes=SPLITS)
    assert (store / "index.h5").stat().st_ino != index
