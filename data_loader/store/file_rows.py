"""Rows of a 2-D array stored contiguously in a file, read on demand.

The feature store's large arrays (expert features, word embeddings) are served this way instead
of being read into memory or memory-mapped: a gather reads only the rows it names, one read
per row or per caption's run of token rows, into a fresh tensor. Nothing of the file stays in the
process (a mapping would count every page it ever touched as resident); the operating system's
page cache keeps hot rows fast across epochs and across processes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

CHUNK_BYTES = 64 << 20  # rows read at a time by :meth:`FileRows.chunks`


class FileRows:
    """A read-only ``[N, d]`` array of ``dtype`` at byte ``offset`` of ``path``.

    Indexing with an integer tensor of any shape S returns ``[*S, d]`` (like a tensor's
    ``values[index]``); :meth:`read` returns the whole array. The file stays open for the
    object's lifetime, so later replacing it on disk does not change what is read. One reader
    at a time: reads seek the shared file handle.
    """

    def __init__(self, path: Path, offset: int, dtype: np.dtype, shape: tuple[int, int]):
        self.path, self.offset, self.np_dtype = Path(path), int(offset), np.dtype(dtype)
        self.shape = torch.Size(shape)
        self.dtype = torch.from_numpy(np.empty(0, self.np_dtype)).dtype
        self._file = open(self.path, "rb", buffering=0)
        self._row_bytes = self.shape[1] * self.np_dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return 2

    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    def element_size(self) -> int:
        return self.np_dtype.itemsize

    def _read_rows(self, start: int, out: np.ndarray) -> None:
        """Fill ``out`` [n, d] (C-contiguous) with rows ``start:start+n``."""
        if out.size == 0:
            return
        view = memoryview(out).cast("B")
        self._file.seek(self.offset + start * self._row_bytes)
        done = 0
        while done < len(view):
            got = self._file.readinto(view[done:])
            if not got:
                raise OSError(f"{self.path}: file ends before row {start + len(out)} of {len(self)}")
            done += got

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        """Rows ``index`` (integers in ``[0, N)``, any shape S): ``[*S, d]``, one read per row."""
        index = torch.as_tensor(index)
        flat = index.reshape(-1).cpu()
        return self.runs(flat, torch.ones_like(flat), 1).reshape(*index.shape, self.shape[1])

    def runs(self, starts: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
        """The first ``width`` rows of each run ``starts[i] : starts[i] + lengths[i]`` (both
        [N]), zero-padded: ``[N, width, d]``, one read per non-empty run straight into place."""
        out = np.empty((len(starts), width, self.shape[1]), self.np_dtype)
        for i, (start, length) in enumerate(zip(starts.tolist(), lengths.clamp(max=width).tolist())):
            if start < 0 or start + length > len(self):
                raise IndexError(f"{self.path}: row index out of range [0, {len(self)}) "
                                 f"(rows {start}:{start + length})")
            self._read_rows(start, out[i, :length])
            out[i, length:] = 0
        return torch.from_numpy(out)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) of consecutive blocks of about CHUNK_BYTES covering the array;
        each block's buffer is reused by the next."""
        step = max(1, CHUNK_BYTES // max(self._row_bytes, 1))
        buffer = np.empty((min(step, len(self)), self.shape[1]), self.np_dtype)
        for start in range(0, len(self), step):
            block = buffer[:min(step, len(self) - start)]
            self._read_rows(start, block)
            yield start, block

    def read(self) -> torch.Tensor:
        """The whole array, ``[N, d]``."""
        out = np.empty(tuple(self.shape), self.np_dtype)
        self._read_rows(0, out)
        return torch.from_numpy(out)

    def to(self, device: torch.device | str) -> torch.Tensor:
        """The whole array as a tensor on ``device``."""
        return self.read().to(device)
