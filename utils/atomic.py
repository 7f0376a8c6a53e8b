"""Atomic file writes: readers see the old file or the complete new one, never a partial one.

A write goes to ``<name>.partial-<pid>`` beside the destination, which is then renamed over
the destination. Neither the destination nor the temporary file may be a symbolic link, so a
write lands in the named folder and nowhere else. Temporary files left by processes that were
killed mid-write are removed by the next write into the same folder: the one place every
checkpoint, store file, metrics file and page goes through, and a folder that is written to
again when its run resumes or its store is converted again.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PARTIAL = ".partial-"
STALE_AFTER_S = 60.0  # a writer touches its file far more often; spares a live writer on another machine


class SymlinkError(ValueError):
    """A destination or temporary path that is a symbolic link, described in one line naming it."""


def refuse_symlink(path: Path) -> None:
    """Raise SymlinkError when ``path`` itself is a symbolic link (dangling or not)."""
    if Path(path).is_symlink():
        raise SymlinkError(f"{path}: is a symbolic link; refusing to write through it (remove the link and re-run)")


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_owner(name: str) -> bool:
    """True for ``<name>.partial-<pid>`` of a process other than this one that no longer runs."""
    stem, partial, pid = name.rpartition(PARTIAL)
    return bool(stem and partial and pid.isdigit()) and int(pid) != os.getpid() and not _running(int(pid))


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete the ``*.partial-<pid>`` files in ``folder`` of processes that no longer run and that
    nobody wrote for ``STALE_AFTER_S`` seconds; returns the deleted paths."""
    removed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not (_stale_owner(entry.name) and entry.is_file(follow_symlinks=False)):
                continue
            if time.time() - entry.stat(follow_symlinks=False).st_mtime >= STALE_AFTER_S:
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path`` (rename).

    The folder is created if needed and cleared of stale temporary files
    (:func:`remove_stale_partials`). Raises SymlinkError, writing nothing, when ``path`` or the
    temporary path is a symbolic link. On an exception or interruption the temporary file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent)
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
