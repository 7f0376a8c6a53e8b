"""Atomic writes: readers see the old file (folder) or the complete new one, never a partial one.

A write goes to ``<name>.partial-<pid>`` beside the destination, which is then renamed over
the destination. Neither the destination nor the temporary path may be a symbolic link, so a
write lands in the named folder and nowhere else. Temporary files and folders left by
processes that were killed mid-write are removed by the next write into the same folder: the
one place every checkpoint, store, metrics file and page goes through, and a folder that is
written to again when its run resumes or its store is converted again.
"""
from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from utils.errors import UserError

PARTIAL = ".partial-"
STALE_AFTER_S = 60.0  # a writer touches its file far more often; spares a live writer on another machine


class SymlinkError(UserError, ValueError):
    """A destination or temporary path that is a symbolic link, described in one line naming it
    (a UserError: the command lines print that line and exit 2)."""


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
    except PermissionError:  # it runs, as another user
        return True
    return True


def _stale_owner(name: str) -> bool:
    """True for ``<name>.partial-<pid>`` of a process other than this one that no longer runs."""
    stem, partial, pid = name.rpartition(PARTIAL)
    return bool(stem and partial and pid.isdigit()) and int(pid) != os.getpid() and not _running(int(pid))


def remove_path(path: Path) -> None:
    """Delete a file or a link (never what it points to), or a folder with its contents."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_partials(folder: Path, min_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete the ``*.partial-<pid>`` files and folders in ``folder`` of processes that no longer run
    and that were not modified for ``min_age_s`` seconds; returns the deleted paths. A run that
    starts (or resumes) in its own folder passes 0: no other writer can be at work there."""
    removed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not _stale_owner(entry.name) or entry.is_symlink():
                continue
            if time.time() - entry.stat(follow_symlinks=False).st_mtime >= min_age_s:
                remove_path(Path(entry.path))
                removed.append(Path(entry.path))
    return removed


def _temporaries(path: Path, *infixes: str) -> list[Path]:
    """This process's temporary paths ``<name><infix>.partial-<pid>`` beside ``path``, ready for
    writing: the folder created and cleared of stale temporaries, leftovers of an earlier process
    that had this pid removed; SymlinkError when ``path`` or one of them is a symbolic link."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent)
    temporaries = [path.with_name(f"{path.name}{infix}{PARTIAL}{os.getpid()}") for infix in infixes]
    for each in (path, *temporaries):
        refuse_symlink(each)
    for leftover in temporaries:
        remove_path(leftover)
    return temporaries


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path`` (rename).

    The folder is created if needed and cleared of stale temporary files
    (:func:`remove_stale_partials`). Raises SymlinkError, writing nothing, when ``path`` or the
    temporary path is a symbolic link. On an exception or interruption the temporary file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    (tmp,) = _temporaries(path, "")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _swap(new: Path, path: Path, aside: Path) -> None:
    """Put folder ``new`` in the place of folder ``path`` (moved to ``aside`` meanwhile, then deleted)."""
    if path.exists():
        os.replace(path, aside)
    try:
        os.replace(new, path)
    except BaseException:
        if aside.exists() and not path.exists():
            os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside the folder ``path``; on a clean exit it replaces ``path``.

    Readers see the old folder or the complete new one (none, if the process dies between the
    two renames of the swap). Stale temporaries are cleared as in :func:`atomic_path`. Raises
    SymlinkError, writing nothing, when ``path`` or a temporary path is a symbolic link. On an
    exception or interruption the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp, aside = _temporaries(path, "", ".old")
    tmp.mkdir()
    try:
        yield tmp
        _swap(tmp, path, aside)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
