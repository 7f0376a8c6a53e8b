"""Environment failures are one line naming the path: a full disk, a path through a file, two
downloads of one archive (utils/cli.py, trainer/checkpoints/files.py, misc/sync_experts.py)."""
from __future__ import annotations

import errno
import json
import threading
import time
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import sync_experts as sync
import torch
from conftest import REPO

from report.run_folder import new_run_dirs
from trainer.checkpoints import files
from utils.cli import run_cli


def one_line_exit(capsys, main) -> str:
    with pytest.raises(SystemExit) as info:
        run_cli(main)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_full_disk_during_a_checkpoint_names_enospc_and_keeps_the_previous(tmp_path, monkeypatch, capsys):
    path = tmp_path / "checkpoint-epoch1.pth"
    files.save_checkpoint(path, {"epoch": 1, "state_dict": {"w": torch.ones(2)}})
    before = path.read_bytes()

    def failing_save(obj, target):
        open(target, "wb").write(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 8193408 vs 8193300")

    monkeypatch.setattr(files.torch, "save", failing_save)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda folder: SimpleNamespace(total=100, used=100, free=0))
    err = one_line_exit(capsys, lambda: files.save_checkpoint(path, {"epoch": 2, "state_dict": {}}))
    assert str(path) in err and "ENOSPC" in err
    assert path.read_bytes() == before and not list(tmp_path.glob("*.partial-*"))


def test_failed_checkpoint_write_with_room_left_keeps_its_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(files.torch, "save", lambda obj, target: (_ for _ in ()).throw(RuntimeError("bug")))
    with pytest.raises(RuntimeError, match="bug"):
        files.save_checkpoint(tmp_path / "c.pth", {})


def test_full_disk_anywhere_is_one_line(capsys):
    def full():
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/metrics.json")
    assert one_line_exit(capsys, full) == "error: /runs/metrics.json: no space left on device (ENOSPC); " \
                                          "files written before are intact"


def test_run_path_through_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    err = one_line_exit(capsys, lambda: new_run_dirs(tmp_path / "file" / "saved", "exp"))
    assert str(tmp_path / "file") in err and ("ENOTDIR" in err or "EEXIST" in err)


def test_other_os_errors_keep_their_traceback():
    def broken():
        raise OSError(errno.EIO, "I/O error")
    with pytest.raises(OSError):
        run_cli(broken)


def test_second_download_of_an_archive_waits_for_the_first(tmp_path):
    lock, lines, order = tmp_path / "A.tar.gz.lock", [], []
    with sync.dataset_lock(lock, lines.append):
        def second():
            with sync.dataset_lock(lock, lines.append):
                order.append("second")
        waiter = threading.Thread(target=second)
        waiter.start()
        for _ in range(100):
            if lines:
                break
            time.sleep(0.01)
        order.append("first")
    waiter.join(10)
    assert order == ["first", "second"] and not lock.exists()
    assert len(lines) == 1 and "another sync_experts.py is fetching" in lines[0] and str(lock) in lines[0]


def test_verify_lists_teacher_and_relevance_files(tmp_path, capsys):
    data = tmp_path / "data"
    good, bad = tmp_path / "rel_good.h5", tmp_path / "rel_bad.h5"
    with h5py.File(good, "w") as f:
        f["rel_mat"] = np.full((3, 4), 0.5)
    with h5py.File(bad, "w") as f:
        f["rel_mat"] = np.full((3, 4), 2.0)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "inherit_from": str(REPO / "configs" / "msvd" / "train-full-ce-only-scene.json"),
        "distil_loss": True, "distil_params": {"base_path": "teachers/", "teachers": ["t.pkl"]},
        "data_loader": {"args": {"relevance_files": {"val": str(good), "test": str(bad)}}}}))
    assert sync.main(["--verify", "--config", str(config), "--data_dir", str(data)]) == 1
    out = capsys.readouterr().out
    assert f"ok      {good}" in out
    assert f"BAD     {bad}: rel_mat[0, 0] = 2.0, expected relevance in [0, 1]" in out
    assert "MISSING " in out and "teachers/t.pkl" in out
    assert "1 of 3 teacher, mask, class and relevance files ok" in out
