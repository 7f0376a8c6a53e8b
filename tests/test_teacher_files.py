"""TeachText teacher files checked when written and read: finite values, shapes against the store,
edited pickles converted again, and converted files always inside the store
(data_loader/teachtext/teachers.py)."""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from test_teachers import DIM, original_table, synthetic, teacher_config, write_pickle  # noqa: F401

from data_loader.prepare import prepare_store
from data_loader.released.convert import read_layout
from data_loader.teachtext.teachers import read_teacher, teacher_name, teacher_path, write_teacher
from trainer.build import build_data, build_distillation
from utils.errors import StoreError

EXPERTS = {"appearance": DIM, "motion": DIM}


def converted(synthetic, name: str, table: dict):  # noqa: F811
    write_pickle(synthetic / "teachers" / f"{name}.pkl", table)
    prepare_store("Synthetic", synthetic, teachers=[("teachers/", f"{name}.pkl")])
    return teacher_path(synthetic / "store", f"teachers/{name}")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_teacher_pickle_is_refused_when_converted(synthetic, value):  # noqa: F811
    table = original_table(synthetic, EXPERTS)
    video = next(iter(table))
    table[video]["text_embds"]["motion"][3, 0] = value
    with pytest.raises(StoreError, match=r"teacher teachers/nonfinite: text/motion holds NaN or infinity"):
        converted(synthetic, "nonfinite", table)
    assert not teacher_path(synthetic / "store", "teachers/nonfinite").exists()


def edit_store_teacher(synthetic, name: str, edit) -> None:  # noqa: F811
    path = converted(synthetic, "good", original_table(synthetic, EXPERTS))
    target = teacher_path(synthetic / "store", f"teachers/{name}")
    target.write_bytes(path.read_bytes())
    with h5py.File(target, "r+") as f:
        edit(f)


def _replace(f, key, array):
    del f[key]
    f[key] = array


STORE_EDITS = {
    "nan text": (lambda f: f["text/appearance"].__setitem__((5, 0), np.nan), "text/appearance holds NaN"),
    "text rows short": (lambda f: _replace(f, "text/appearance", f["text/appearance"][:-10]),
                        r"text/appearance has shape \[\d+, 16\], expected \[\d+, 16\]"),
    "video rows short": (lambda f: _replace(f, "video/appearance", f["video/appearance"][:-5]),
                         r"video/appearance has shape \[\d+, 16\], expected \[\d+, D\]"),
    "covered short": (lambda f: _replace(f, "covered", f["covered"][:-3]), r"covered has shape \[\d+\], the store"),
    "text narrower": (lambda f: _replace(f, "text/appearance", f["text/appearance"][:, :8]),
                      r"text/appearance has shape \[\d+, 8\], expected \[\d+, 16\]"),
    "video 1-D": (lambda f: _replace(f, "video/appearance", f["video/appearance"][:, 0]),
                  r"video/appearance has shape \[\d+\], expected"),
    "expert without dataset": (lambda f: f.attrs.__setitem__("experts", ["appearance", "face"]),
                               "has no dataset 'video/face'"),
}


@pytest.mark.parametrize("case", sorted(STORE_EDITS))
def test_malformed_store_teacher_is_one_line_before_training(synthetic, case):  # noqa: F811
    edit, message = STORE_EDITS[case]
    edit_store_teacher(synthetic, "edited", edit)
    config = teacher_config(synthetic, "edited")
    with pytest.raises(StoreError, match=message):
        build_distillation(config, build_data(config))


def test_edited_teacher_pickle_is_converted_again(synthetic):  # noqa: F811
    path = converted(synthetic, "changing", original_table(synthetic, EXPERTS))
    assert read_teacher(path).video["appearance"].shape[1] == DIM
    stat = path.stat()
    converted(synthetic, "changing", original_table(synthetic, {"appearance": 8}))
    assert read_teacher(path).video["appearance"].shape[1] == 8
    assert path.stat().st_mtime_ns != stat.st_mtime_ns


def test_touched_but_unchanged_pickle_is_not_converted_again(synthetic):  # noqa: F811
    path = converted(synthetic, "touched", original_table(synthetic, EXPERTS))
    written = path.stat().st_mtime_ns
    source = synthetic / "teachers" / "touched.pkl"
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    prepare_store("Synthetic", synthetic, teachers=[("teachers/", "touched.pkl")])
    assert path.stat().st_mtime_ns == written


@pytest.mark.parametrize("base_path, file, name", [
    ("/abs/olute/", "t.pkl", "abs/olute/t"), ("../../up/", "t.pkl", "up/t"), ("teachers/", "t.pkl", "teachers/t")])
def test_teacher_names_stay_inside_the_store(base_path, file, name):
    assert teacher_name(base_path, file) == name


def test_a_teacher_outside_the_feature_root_converts_into_the_store(synthetic, tmp_path):  # noqa: F811
    outside = tmp_path / "elsewhere"
    write_pickle(outside / "far.pkl", original_table(synthetic, EXPERTS))
    prepare_store("Synthetic", synthetic, teachers=[(f"{outside}/", "far.pkl")])
    inside = teacher_path(synthetic / "store", teacher_name(f"{outside}/", "far.pkl"))
    assert inside.is_file() and inside.resolve().is_relative_to((synthetic / "store").resolve())
    assert not (outside / "far.h5").exists()


def test_export_of_a_non_finite_model_is_refused(synthetic):  # noqa: F811
    layout = read_layout(synthetic / "store")
    from data_loader.teachtext.teachers import TeacherArrays
    videos, captions = len(layout.video_ids), int(layout.caption_offsets[-1])
    teacher = TeacherArrays(np.ones(videos, bool), {"appearance": np.full((videos, DIM), np.nan, np.float32)},
                            {"appearance": np.zeros((captions, DIM), np.float32)})
    with pytest.raises(StoreError, match="video/appearance holds NaN or infinity"):
        write_teacher(synthetic / "store", "teachers/exported_nan", teacher)
