"""Reading feature tables saved with hickle (an HDF5 layout for Python objects) through h5py.

Some releases (QuerYD, QuerYDSegments: ``aggregated_audio/vggish-raw.hickle``) store their
video id -> feature table with hickle instead of pickle. Only the data is read: hickle's type
attributes (pickled classes in hickle 4) are never unpickled, so no code in a file can run.
The three layouts hickle has written for a ``dict`` of numpy arrays and floats are supported:

* hickle 3: group ``data_0``; per key a group ``'<key>'`` holding dataset ``data_0``;
* hickle 4: group ``data``; per key a group ``'<key>'`` holding dataset ``data``;
* hickle 5: group ``data``; per key a dataset ``"<key>"``.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from utils.errors import StoreError

ROOT_GROUPS = ("data", "data_0")


def _key(name: str) -> str:
    """The dict key of a hickle item name (the key between quotes)."""
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        return name[1:-1]
    return name


def _value(node: h5py.Group | h5py.Dataset, where: str) -> np.ndarray | float:
    """A numeric array, or a float for a scalar (NaN marks a missing feature)."""
    if isinstance(node, h5py.Group):
        inner = [node[n] for n in ROOT_GROUPS if n in node]
        if len(inner) != 1 or not isinstance(inner[0], h5py.Dataset):
            raise StoreError(f"{where}: expected one array per video, found a group holding {sorted(node)}")
        node = inner[0]
    if node.dtype.kind not in "fiub":
        raise StoreError(f"{where}: expected a numeric array per video, got dtype {node.dtype}")
    value = node[()]
    return float(value) if node.shape == () else np.asarray(value)


def load_hickle(path: Path) -> dict[str, np.ndarray | float]:
    """The video id -> feature table of a hickle file; StoreError naming the file when unreadable."""
    try:
        with h5py.File(path, "r") as f:
            roots = [f[n] for n in ROOT_GROUPS if n in f and isinstance(f[n], h5py.Group)]
            if len(roots) != 1:
                raise StoreError(f"{path}: not a hickle file holding a dict (no group 'data' or 'data_0')")
            return {_key(name): _value(node, f"{path}:{name}") for name, node in roots[0].items()}
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5/hickle file ({exc})") from None
