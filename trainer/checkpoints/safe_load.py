"""The one safe loader every checkpoint read goes through: ``torch.load`` with an allow-list.

A checkpoint is a pickle, and unpickling can run code; so no checkpoint is ever loaded with
full pickle. Files are read with ``torch.load(weights_only=True)`` plus the allow-list
``ALLOWED_GLOBALS`` (torch >= 2.5); older torch reads them through ``utils.original.unpickle``'s
restricted unpickler, which resolves the same globals and nothing else. Any other global is
refused with a one-line :class:`CheckpointError` before anything in the file runs.

Beyond torch's tensor types, the allow-list holds what the original Collaborative Experts
trainer pickled into its checkpoints (listed with ``pickletools`` from the reference
checkpoint's ``data.pkl``): ``parse_config.ConfigParser``, ``argparse.Namespace``,
``pathlib.PosixPath``, ``collections.OrderedDict``, ``numpy.core.multiarray.scalar``,
``numpy.dtype`` and ``_codecs.encode``. The original config object is rebuilt as an inert
:class:`OriginalConfig` registered under the name ``parse_config.ConfigParser``: the original
module is never imported and ``sys.modules`` is left untouched. Pickled paths are rebuilt as
pure paths (``PurePosixPath`` / ``PureWindowsPath``), so nothing touches the filesystem and a
file written on either OS reads on both.
"""
from __future__ import annotations

import argparse
import codecs
import pathlib
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy
import torch

from utils.errors import CheckpointError
from utils.original.unpickle import NUMPY_GLOBALS, pickle_module

_numpy_scalar = NUMPY_GLOBALS[("numpy.core.multiarray", "scalar")]

# torch.save's format before torch 1.6 opens with its magic number, pickled with protocol 2.
LEGACY_HEADER = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)[:-1]

# Scalar dtypes whose pickled state may be restored (``monitor_best`` is a float64). The
# object dtype is deliberately absent.
NUMPY_SCALAR_DTYPES = ("float16", "float32", "float64", "int32", "int64", "bool")


class OriginalConfig:
    """Inert stand-in for the original ``parse_config.ConfigParser``.

    Unpickling only stores the pickled attributes (``_config``, ``_args``, ``cfg_fname``,
    ``_save_dir`` ...) in ``__dict__``; no method of the original class exists here.
    """

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"parse_config.ConfigParser state is a {type(state).__name__}, "
                                         "expected a dict")
        self.__dict__.update(state)


def _allowed_globals() -> list[Any]:
    """Globals an original checkpoint may reference, beyond torch's tensor defaults."""
    named = [
        (OriginalConfig, "parse_config.ConfigParser"),
        (argparse.Namespace, "argparse.Namespace"),
        (pathlib.PurePosixPath, "pathlib.PosixPath"),
        (pathlib.PurePosixPath, "pathlib.PurePosixPath"),
        (pathlib.PureWindowsPath, "pathlib.WindowsPath"),
        (pathlib.PureWindowsPath, "pathlib.PureWindowsPath"),
        (_numpy_scalar, "numpy.core.multiarray.scalar"),
        (_numpy_scalar, "numpy._core.multiarray.scalar"),
        (numpy.dtype, "numpy.dtype"),
    ]
    dtype_classes = [type(numpy.dtype(name)) for name in NUMPY_SCALAR_DTYPES]
    return [OrderedDict, *named, *dtype_classes]


ALLOWED_GLOBALS = _allowed_globals()

_REFUSED = re.compile(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>")


def _refusal(exc: Exception) -> str:
    """One line out of torch's (multi-line) load error: the refused global if it names one."""
    message = str(exc)
    match = _REFUSED.search(message)
    if match:
        return _refused_message([next(group for group in match.groups() if group)])
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    detail = next((line for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else "")
    return f"not a readable checkpoint ({type(exc).__name__}: {detail[:200]})"


def _refused_message(names: list[str]) -> str:
    return f"refused global {', '.join(names)} (not allowed in a checkpoint; nothing was loaded)"


def _unsafe_globals(path: Path) -> list[str]:
    """Globals of a zip checkpoint's pickle outside the active allow-list, as the file names them.

    Empty for files torch cannot scan statically (the legacy format, unusual opcodes):
    ``torch.load(weights_only=True)`` still refuses their disallowed globals.
    """
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (ValueError, RuntimeError, EOFError, pickle.UnpicklingError):
        return []


def _globals_by_name() -> dict[tuple[str, str], Any]:
    """``(module, name)`` -> object for every global the fallback loader resolves:
    ``ALLOWED_GLOBALS`` and torch's tensor rebuild helpers (storage classes are resolved by
    ``torch.load`` itself)."""
    table = {tuple(name.rsplit(".", 1)): obj for obj, name in (e for e in ALLOWED_GLOBALS if isinstance(e, tuple))}
    table.update({(cls.__module__, cls.__qualname__): cls for cls in ALLOWED_GLOBALS if isinstance(cls, type)})
    table.update({("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
                  ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
                  ("torch", "Size"): torch.Size, ("_codecs", "encode"): codecs.encode})
    return table


# The ``pickle_module`` handed to ``torch.load`` by the fallback loader.
ALLOW_LIST_PICKLE = pickle_module(_globals_by_name())


def _load_with_allow_list(path: Path) -> Any:
    """``torch.load`` through the restricted unpickler (:data:`ALLOW_LIST_PICKLE`): for torch < 2.5, which lacks
    ``torch.serialization.safe_globals``; the same globals are allowed."""
    try:
        return torch.load(path, map_location="cpu", pickle_module=ALLOW_LIST_PICKLE, weights_only=False)
    except Exception as exc:  # any unreadable content becomes a one-line CheckpointError
        raise CheckpointError(f"{path}: {_refusal(exc)}") from None


def require_torch_file(path: Path) -> None:
    """CheckpointError (one line naming ``path``) unless it exists and is in a format torch.save
    writes: a zip archive, or the legacy format that opens with torch's magic number."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if zipfile.is_zipfile(path):
        return
    with open(path, "rb") as handle:
        if handle.read(len(LEGACY_HEADER)) == LEGACY_HEADER:
            return
    raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither torch.save's zip format nor its legacy "
                          "one, e.g. a plain pickle); expected a file written by torch.save, such as a run's "
                          "checkpoint-epoch<N>.pth")


def safe_load(path: Path, mmap: bool = False) -> Any:
    """``torch.load`` onto the CPU with only ``ALLOWED_GLOBALS`` (and torch's tensor types);
    CheckpointError naming the file when it is missing, unreadable or refers to another global.

    With ``mmap`` a zip-format file's tensors are mapped copy-on-write rather than read, so
    loading returns at once and pages are read as they are first used (the file is never
    written); a legacy-format file is read as usual."""
    path = Path(path)
    require_torch_file(path)
    mmap = mmap and zipfile.is_zipfile(path)
    if not hasattr(torch.serialization, "safe_globals"):
        return _load_with_allow_list(path)
    with torch.serialization.safe_globals(ALLOWED_GLOBALS):
        refused = _unsafe_globals(path)
        if refused:
            raise CheckpointError(f"{path}: {_refused_message(refused)}")
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as exc:  # any unreadable content becomes a one-line CheckpointError
            raise CheckpointError(f"{path}: {_refusal(exc)}") from None
