"""The one restricted unpickler for files written by the original code (pickles, checkpoints).

:class:`RestrictedUnpickler` resolves a global only through an explicit table of allowed
``(module, name)`` pairs; any other global is refused by name before anything in the file
runs. :data:`NUMPY_GLOBALS` is the table for numpy arrays, scalars and dtypes, which every
original file may hold; callers add what their files need (see ``trainer/checkpoints/original.py``).
"""
from __future__ import annotations

import _compat_pickle
import codecs
import pickle
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import numpy as np

Globals = Mapping[tuple[str, str], Any]


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """Globals numpy arrays, scalars and dtypes pickle to, under numpy 1 and 2 module names."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode, ("collections", "OrderedDict"): OrderedDict,
        **{("builtins", t.__name__): t for t in (set, frozenset, complex, slice, bytearray)},
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    classes = {name: getattr(dtypes, name) for name in dir(dtypes)} if dtypes is not None else {}
    allowed.update({("numpy.dtypes", name): cls for name, cls in classes.items()
                    if isinstance(cls, type) and issubclass(cls, np.dtype)})
    return allowed


NUMPY_GLOBALS: dict[tuple[str, str], Any] = _numpy_globals()


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle referenced a global outside the allowed table; ``name`` is ``module.name``."""

    def __init__(self, name: str):
        super().__init__(f"GLOBAL {name} is not allowed")
        self.name = name


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and the globals of ``allowed`` only (Python 2 names mapped)."""

    def __init__(self, file: BinaryIO, allowed: Globals = NUMPY_GLOBALS, **kwargs: Any):
        super().__init__(file, **kwargs)
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names, as protocol 2 writes them
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None


def load_restricted(path: Path, allowed: Globals = NUMPY_GLOBALS) -> Any:
    """Unpickle the file ``path`` with :class:`RestrictedUnpickler` (latin1 for Python 2 pickles)."""
    with open(path, "rb") as f:
        return RestrictedUnpickler(f, allowed, encoding="latin1").load()


def pickle_module(allowed: Globals) -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` whose unpickler resolves only ``allowed``."""
    module = types.ModuleType("restricted_pickle")

    class Unpickler(RestrictedUnpickler):
        def __init__(self, file: BinaryIO, **kwargs: Any):
            super().__init__(file, allowed, **kwargs)

    module.Unpickler = Unpickler
    module.load = lambda file, **kwargs: Unpickler(file, **kwargs).load()
    return module
