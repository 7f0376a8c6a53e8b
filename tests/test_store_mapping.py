"""Store features and word embeddings are read from their files on demand: loading reads
nothing into memory, a gather returns the stored rows, the files are never written."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data_loader.batches import gather_tokens
from data_loader.store.feature_store import ExpertArrays, TokenArrays, load_store, write_store
from data_loader.store.file_rows import FileRows


def write(path, rows=2):
    return write_store(path, dataset="Tiny", video_ids=[f"v{i}" for i in range(rows)],
                       splits={"train": np.arange(rows)},
                       experts={"rgb": ExpertArrays(np.arange(3 * rows, dtype=np.float16).reshape(rows, 3),
                                                    np.ones(rows, bool))},
                       captions=[["x"]] * rows,
                       text={"w": TokenArrays(np.arange(4 * rows, dtype=np.float32).reshape(2 * rows, 2),
                                              np.arange(0, 2 * rows + 1, 2))})


def test_rows_read_on_demand_keep_the_stored_values_and_dtype(tmp_path):
    store = load_store(write(tmp_path / "store"), ["rgb"], "w")
    features = store.experts["rgb"].features
    assert isinstance(features, FileRows) and isinstance(store.text_embeddings, FileRows)
    assert features.dtype == torch.float16 and features.shape == (2, 3)
    assert features.read().tolist() == [[0, 1, 2], [3, 4, 5]]
    assert store.text_embeddings.read().tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert features[torch.tensor(1)].tolist() == [3, 4, 5]


@pytest.mark.parametrize("index", [[[5, 3, 3], [0, 6, 7]], [[], []], [[2, 3, 4, 5]], [[9, 1, 0, 0]]])
def test_gather_equals_indexing_the_whole_array(tmp_path, index):
    rows = load_store(write(tmp_path / "store", rows=5), ["rgb"], "w").text_embeddings
    index = torch.tensor(index, dtype=torch.long)
    assert torch.equal(rows[index], rows.read()[index])


@pytest.mark.parametrize("max_len", [1, 2, 3])
def test_padded_token_gather_reads_the_same_as_from_memory(tmp_path, max_len):
    store = load_store(write(tmp_path / "store", rows=6), ["rgb"], "w")
    captions = torch.tensor([[4, -1], [0, 5]])
    got = gather_tokens(store.text_embeddings, store.text_offsets, captions, max_len)
    assert got.shape == (2, 2, max_len, 2)
    assert torch.equal(got, gather_tokens(store.text_embeddings.read(), store.text_offsets, captions, max_len))


def test_out_of_range_rows_are_refused(tmp_path):
    rows = load_store(write(tmp_path / "store"), ["rgb"], "w").experts["rgb"].features
    with pytest.raises(IndexError, match="rgb.h5: row index out of range"):
        rows[torch.tensor([2])]


def test_blocks_cover_the_array_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr("data_loader.store.file_rows.CHUNK_BYTES", 16)
    rows = load_store(write(tmp_path / "store", rows=5), ["rgb"], "w").text_embeddings
    seen = np.concatenate([block.copy() for _, block in rows.chunks()])
    assert [start for start, _ in rows.chunks()] == [0, 2, 4, 6, 8]
    assert np.array_equal(seen, rows.read().numpy())


def test_a_non_finite_embedding_is_found_in_a_later_block(tmp_path, monkeypatch):
    monkeypatch.setattr("data_loader.store.file_rows.CHUNK_BYTES", 16)
    path = tmp_path / "store"
    write_store(path, dataset="Tiny", video_ids=["a", "b"], splits={"train": np.array([0, 1])},
                experts={"rgb": ExpertArrays(np.zeros((2, 3), np.float16), np.ones(2, bool))},
                captions=[["x"], ["y"]],
                text={"w": TokenArrays(np.r_[np.zeros((6, 2)), [[0, np.nan]], np.zeros((1, 2))].astype(np.float32),
                                       np.array([0, 4, 8]))})
    with pytest.raises(Exception, match=r"text/w.h5: embeddings row 6 \(caption 1, 'y'\) holds NaN"):
        load_store(path, ["rgb"], "w")


def test_loading_and_gathering_leave_the_file_alone(tmp_path):
    path = write(tmp_path / "store")
    before = (path / "experts" / "rgb.h5").read_bytes()
    store = load_store(path, ["rgb"], "w")
    batch = store.experts["rgb"].features[torch.tensor([0, 1])]
    batch.zero_()
    assert (path / "experts" / "rgb.h5").read_bytes() == before
    assert load_store(path, ["rgb"], "w").experts["rgb"].features.read().tolist() == [[0, 1, 2], [3, 4, 5]]


def test_huge_finite_embeddings_are_not_mistaken_for_infinite(tmp_path):
    path = tmp_path / "store"
    big = np.full((4, 2), 3e38, np.float32)  # their float32 sum overflows
    write_store(path, dataset="Tiny", video_ids=["a", "b"], splits={"train": np.array([0, 1])},
                experts={"rgb": ExpertArrays(np.zeros((2, 3), np.float16), np.ones(2, bool))},
                captions=[["x"], ["y"]], text={"w": TokenArrays(big, np.array([0, 2, 4]))})
    assert load_store(path, ["rgb"], "w").text_embeddings.read().max() == np.float32(3e38)
