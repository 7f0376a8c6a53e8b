"""Atomic file writes: readers see the old file or the complete new one, never a partial one.

A write goes to ``<name>.partial-<pid>`` beside the destination, which is then renamed over
the destination. Neither the destination nor the temporary file may be a symbolic link, so a
write lands in the named folder and nowhere else.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PARTIAL = ".partial-"


class SymlinkError(ValueError):
    """A destination or temporary path that is a symbolic link, described in one line naming it."""


def refuse_symlink(path: Path) -> None:
    """Raise SymlinkError when ``path`` itself is a symbolic link (dangling or not)."""
    if Path(path).is_symlink():
        raise SymlinkError(f"{path}: is a symbolic link; refusing to write through it (remove the link and re-run)")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path`` (rename).

    The folder is created if needed. Raises SymlinkError, writing nothing, when ``path`` or the
    temporary path is a symbolic link. On an exception or interruption the temporary file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{PARTIAL}{os.getpid()}")
    refuse_symlink(path)
    refuse_symlink(tmp)
    tmp.unlink(missing_ok=True)  # left by an earlier process that had this pid
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
