"""utils/atomic.py: a write either completes or leaves the previous file untouched."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from utils.atomic import PARTIAL, STALE_AFTER_S, atomic_dir, atomic_path, write_text_atomic


def test_completed_write_replaces_and_creates_folders(tmp_path):
    target = tmp_path / "a" / "b" / "page.html"
    assert write_text_atomic(target, "first") == target
    write_text_atomic(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["page.html"]


def test_failed_write_keeps_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "metrics.json"
    write_text_atomic(target, "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_symlinked_destination_is_refused_and_its_target_untouched(tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").symlink_to(outside)
    with pytest.raises(ValueError, match=r"metrics.json: is a symbolic link; refusing to write through it"):
        write_text_atomic(run / "metrics.json", "new")
    assert outside.read_text() == "precious" and (run / "metrics.json").is_symlink()


def test_symlinked_temporary_path_is_refused_and_its_target_untouched(tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / f"checkpoint.pth.partial-{os.getpid()}").symlink_to(outside)
    with pytest.raises(ValueError, match=r"checkpoint.pth.partial-\d+: is a symbolic link"):
        write_text_atomic(run / "checkpoint.pth", "new")
    assert outside.read_text() == "precious" and not (run / "checkpoint.pth").exists()


def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_next_write_removes_stale_partials_of_dead_processes_only(tmp_path):
    dead, old = dead_pid(), time.time() - 2 * STALE_AFTER_S
    stale = tmp_path / f"checkpoint-epoch3.pth{PARTIAL}{dead}"
    live = tmp_path / f"trained_model.pth{PARTIAL}{os.getppid()}"   # a process that still runs
    recent = tmp_path / f"index.h5{PARTIAL}{dead}"                  # written moments ago
    stale_folder = tmp_path / f"store{PARTIAL}{dead}"
    (stale_folder / "experts").mkdir(parents=True)
    for path in (stale, live, recent, stale_folder / "experts" / "audio.h5"):
        path.write_bytes(b"half a file")
    for path in (stale, live, stale_folder):
        os.utime(path, (old, old))
    write_text_atomic(tmp_path / "metrics.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["metrics.json", live.name, recent.name])


def test_atomic_dir_replaces_the_folder_whole_or_not_at_all(tmp_path):
    store = tmp_path / "store"
    with atomic_dir(store) as building:
        (building / "index.h5").write_text("first")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(store) as building:
            (building / "experts.h5").write_text("second")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["store"] and [p.name for p in store.iterdir()] == ["index.h5"]
    with atomic_dir(store) as building:
        (building / "experts.h5").write_text("third")
    assert [p.name for p in tmp_path.iterdir()] == ["store"] and [p.name for p in store.iterdir()] == ["experts.h5"]
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "linked").symlink_to("elsewhere")
    with pytest.raises(ValueError, match="linked: is a symbolic link"):
        with atomic_dir(tmp_path / "linked"):
            pass
    assert list((tmp_path / "elsewhere").iterdir()) == []
