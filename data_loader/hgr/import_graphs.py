"""Adding HGR's text inputs to an existing store (e.g. EPIC-KITCHENS-100's) from RANP's files.

Sources: ``sent2rolegraph.augment.json`` (role graphs keyed by caption text), the vocabulary
``word2int_<dataset>.json`` ({word: id}) and ``int2word_<dataset>.npy`` (its length is the
vocabulary size). Writes ``hgr/<name>.h5`` (``data_loader/hgr/graph_store.py``) and the text
feature ``hgr_words`` (the word ids over a zero vocabulary: HGR learns its own embeddings),
both for the store's current build. ``source="generated"`` instead derives role graphs and a
vocabulary from the captions themselves (``data_loader/generated/role_graphs.py``), for
generated datasets whose captions are "<verb> <noun words> [and <noun words> ...]".
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from data_loader.generated.role_graphs import GENERATED, template_role_graphs, vocabulary_of
from data_loader.hgr.graph_store import encode_captions, graph_store_path, write_graph_store
from data_loader.ranp.classes import captions_sha1, read_captions
from data_loader.store.feature_store import STORE_ID, TokenArrays, read_index_attrs, write_text
from utils.errors import StoreError

ROLE_GRAPHS = "rolegraphs"
TEXT_FEATURE = "hgr_words"
WORD_DIM = 300


def read_json(path: Path) -> object:
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: not found")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: not valid JSON ({exc})") from None


def read_names(path: Path) -> list[str]:
    """A numpy array of strings (names, ``int2word``), read without unpickling."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: not found")
    try:
        return [str(n) for n in np.load(path, allow_pickle=False)]
    except ValueError as exc:
        raise StoreError(f"{path}: expected a numpy array of strings ({exc})") from None


def read_vocabulary(word2int_path: Path, int2word_path: Path) -> tuple[dict[str, int], int]:
    """(word -> id, vocabulary size = length of ``int2word``)."""
    word2int = read_json(word2int_path)
    if not isinstance(word2int, dict):
        raise StoreError(f"{word2int_path}: expected {{word: id}}")
    return word2int, len(read_names(int2word_path))


def word_feature(arrays: dict[str, np.ndarray], num_words: int) -> TokenArrays:
    """The ``hgr_words`` text feature of encoded captions: their word ids over a zero vocabulary."""
    lengths = arrays["sent_lens"]
    tokens = np.concatenate([ids[:n] for ids, n in zip(arrays["sent_ids"], lengths)])
    return TokenArrays(tokens, np.concatenate([[0], np.cumsum(lengths)]),
                       np.zeros((num_words, WORD_DIM), dtype=np.float32))


def graphs_are_current(store_dir: Path, name: str, source: str) -> bool:
    """Whether ``hgr/<name>.h5`` is from ``source``, for the store's build and captions."""
    try:
        with h5py.File(graph_store_path(store_dir, name), "r") as f:
            attrs = dict(f.attrs)
    except OSError:
        return False
    _, _, raw = read_captions(store_dir)
    return (attrs.get("source") == source and attrs.get("captions_sha1") == captions_sha1(raw)
            and attrs.get(STORE_ID) == read_index_attrs(store_dir).get(STORE_ID))


def add_role_graphs(store_dir: Path, graphs: str, word2int: str | None = None, int2word: str | None = None,
                    name: str = ROLE_GRAPHS, max_words: int = 30, num_verbs: int = 4, num_nouns: int = 6) -> Path:
    """Write ``hgr/<name>.h5`` and ``text/hgr_words.h5`` for the store's captions from the role
    graphs ``graphs`` and the vocabulary files (or ``graphs=GENERATED``); returns the first.
    A caption without a role graph is a StoreError naming it."""
    store_dir = Path(store_dir)
    _, _, raw = read_captions(store_dir)
    if graphs == GENERATED:
        role_graphs = template_role_graphs(raw)
        words, num_words = vocabulary_of(raw)
    else:
        if word2int is None or int2word is None:
            raise StoreError(f"{graphs}: role graphs need the vocabulary files word2int and int2word too")
        role_graphs = read_json(Path(graphs))
        if not isinstance(role_graphs, dict):
            raise StoreError(f"{graphs}: expected {{caption: [nodes, edges]}}")
        words, num_words = read_vocabulary(Path(word2int), Path(int2word))
    arrays = encode_captions(raw, role_graphs, words, max_words=max_words, num_verbs=num_verbs,
                             num_nouns=num_nouns, source=str(graphs))
    store_id = str(read_index_attrs(store_dir)[STORE_ID])
    write_text(store_dir, TEXT_FEATURE, word_feature(arrays, num_words), store_id)
    return write_graph_store(store_dir, name, arrays, raw_captions=raw, num_words=num_words, source=str(graphs),
                             store_id=store_id)
