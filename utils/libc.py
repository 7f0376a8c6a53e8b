"""Functions of the C library called by name (glibc's malloc controls); importing this changes nothing."""
import ctypes
import sys
from typing import Callable


def libc_function(name: str, argtypes: list) -> Callable | None:
    """``name`` from the C library on Linux (None elsewhere or where it lacks it); returns an int."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = argtypes, ctypes.c_int
    return function


def release_freed_memory() -> None:
    """Hand the memory the heap keeps back to the kernel (glibc's ``malloc_trim``), e.g. after a
    phase that used much more memory than the next, or before measuring a phase's peak; a no-op
    without glibc."""
    trim = libc_function("malloc_trim", [ctypes.c_size_t])
    if trim is not None:
        trim(0)
