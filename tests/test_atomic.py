"""utils/atomic.py: a write either completes or leaves the previous file untouched."""
from __future__ import annotations

import pytest

from utils.atomic import atomic_path, write_text_atomic


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
