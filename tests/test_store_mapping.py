"""Store features and word embeddings are memory-mapped: nothing read at load, the files never written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_loader.store import ExpertArrays, TokenArrays, load_store, write_store


def write(path):
    return write_store(path, dataset="Tiny", video_ids=["a", "b"], splits={"train": np.array([0, 1])},
                       experts={"rgb": ExpertArrays(np.arange(6, dtype=np.float16).reshape(2, 3), np.ones(2, bool))},
                       captions=[["x"], ["y"]],
                       text={"w": TokenArrays(np.arange(8, dtype=np.float32).reshape(4, 2), np.array([0, 1, 4]))})


def test_mapped_arrays_keep_the_stored_values_and_dtype(tmp_path):
    store = load_store(write(tmp_path / "store"), ["rgb"], "w")
    features = store.experts["rgb"].features
    assert features.dtype == torch.float16 and features.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert store.text_embeddings.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert mapped_file(features).endswith("experts/rgb.h5")
    assert mapped_file(store.text_embeddings).endswith("text/w.h5")


def mapped_file(tensor: torch.Tensor) -> str:
    """The file whose memory mapping holds ``tensor``'s data ("" when none: read into memory)."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("needs /proc/self/maps")
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= tensor.data_ptr() < hi:
            return fields[5] if len(fields) == 6 else ""
    return ""


def test_writing_to_a_loaded_tensor_leaves_the_file_alone(tmp_path):
    path = write(tmp_path / "store")
    store = load_store(path, ["rgb"], "w")
    store.experts["rgb"].features.zero_()
    store.text_embeddings.fill_(7)
    again = load_store(path, ["rgb"], "w")
    assert again.experts["rgb"].features.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert again.text_embeddings[0].tolist() == [0, 1]
