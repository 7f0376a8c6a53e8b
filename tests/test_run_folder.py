"""report/run_folder.py: every run gets folders of its own, however many start at once."""
from __future__ import annotations

import multiprocessing
import sys
import threading
from pathlib import Path

import pytest

from report import run_folder
from report.run_folder import new_run_dirs

STARTS = 24


@pytest.fixture
def same_second(monkeypatch):
    """Every run starts within the same second, so all want the same run id."""
    monkeypatch.setattr(run_folder.time, "strftime", lambda fmt: "2026-01-01_00-00-00")


def assert_distinct(created: list[Path], save_dir: Path) -> None:
    assert len(created) == STARTS and len(set(created)) == STARTS
    assert sorted(p.name for p in (save_dir / "models" / "exp").iterdir()) == sorted(p.name for p in created)
    for kind in ("log", "web"):
        assert sorted(p.name for p in (save_dir / kind / "exp").iterdir()) == sorted(p.name for p in created)


def test_concurrent_threads_get_distinct_folders(tmp_path, same_second):
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to provoke races
    barrier, created, lock = threading.Barrier(STARTS), [], threading.Lock()

    def start() -> None:
        barrier.wait()
        dirs = new_run_dirs(tmp_path, "exp")
        with lock:
            created.append(dirs.models)

    threads = [threading.Thread(target=start) for _ in range(STARTS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert_distinct(created, tmp_path)


def _start_after(barrier, save_dir: Path, queue) -> None:
    """One process: wait for the others, create a run's folders, report its models folder."""
    barrier.wait()
    queue.put(str(new_run_dirs(save_dir, "exp").models))


@pytest.mark.slow
def test_concurrent_processes_get_distinct_folders(tmp_path, same_second):
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(STARTS), context.Queue()
    processes = [context.Process(target=_start_after, args=(barrier, tmp_path, queue)) for _ in range(STARTS)]
    for process in processes:
        process.start()
    created = [Path(queue.get(timeout=60)) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert_distinct(created, tmp_path)
