"""HGR's text inputs in the feature store: ``<store>/hgr/<name>.h5``, one row per caption of
the index (C captions, W = ``max_words``, NV = ``num_verbs``, NN = ``num_nouns``)::

    hgr/<name>.h5   attrs: store_id, captions_sha1, max_words, num_verbs, num_nouns,
                           num_words (vocabulary size), source
        /sent_ids       (C, W)          int64    word ids (role_graphs.tokenise), padded with EOS
        /sent_lens      (C,)            int64    words kept (>= 1)
        /verb_masks     (C, NV, W)      bool     words of each verb node
        /noun_masks     (C, NN, W)      bool     words of each argument node
        /node_roles     (C, NV + NN)    int64    role ids (role_graphs.ROLES)
        /rel_edges      (C, N, N)       float32  row-normalised adjacency, N = 1 + NV + NN

Written atomically for one build of the store (``store_id``) and tied to its captions
(``captions_sha1``): a file of another build or other captions is refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from base.role_graph_text import RoleGraphText
from data_loader.hgr.role_graphs import EOS, graph_arrays, tokenise
from data_loader.ranp.classes import captions_sha1
from data_loader.store.feature_store import STORE_ID, _open, _read, atomic_h5, check_build, read_index_attrs
from utils.errors import StoreError

HGR_DIR = "hgr"
ARRAYS = ("sent_ids", "sent_lens", "verb_masks", "noun_masks", "node_roles", "rel_edges")


def graph_store_path(store_dir: Path, name: str) -> Path:
    return Path(store_dir) / HGR_DIR / f"{name}.h5"


def encode_captions(captions: list[str], graphs: dict, word2int: dict[str, int], *, max_words: int = 30,
                    num_verbs: int = 4, num_nouns: int = 6, source: str = "role graphs"
                    ) -> dict[str, np.ndarray]:
    """The arrays of the module docstring for ``captions`` [C]; a caption without a role graph
    in ``graphs`` or without words is a StoreError naming it (and ``source``)."""
    size = 1 + num_verbs + num_nouns
    out = {"sent_ids": np.full((len(captions), max_words), EOS, dtype=np.int64),
           "sent_lens": np.zeros(len(captions), dtype=np.int64),
           "verb_masks": np.zeros((len(captions), num_verbs, max_words), dtype=bool),
           "noun_masks": np.zeros((len(captions), num_nouns, max_words), dtype=bool),
           "node_roles": np.zeros((len(captions), num_verbs + num_nouns), dtype=np.int64),
           "rel_edges": np.zeros((len(captions), size, size), dtype=np.float32)}
    for c, caption in enumerate(tqdm(captions, desc="role graphs", leave=False, disable=len(captions) < 10000)):
        if caption not in graphs:
            raise StoreError(f"{source}: no role graph for caption {caption!r}")
        ids = tokenise(caption, word2int, max_words)
        if not len(ids):
            raise StoreError(f"{source}: caption {caption!r} has no words")
        out["sent_ids"][c, :len(ids)] = ids
        out["sent_lens"][c] = len(ids)
        arrays = graph_arrays(graphs[caption], caption, max_words, num_verbs, num_nouns)
        for key in ("verb_masks", "noun_masks", "node_roles", "rel_edges"):
            out[key][c] = getattr(arrays, key)
    return out


def write_graph_store(store_dir: Path, name: str, arrays: dict[str, np.ndarray], *, raw_captions: list[str],
                      num_words: int, source: str, store_id: str | None = None) -> Path:
    """Write ``hgr/<name>.h5`` atomically for the store's build (``store_id``, default the index's)."""
    store_id = store_id or str(read_index_attrs(store_dir)[STORE_ID])
    path = graph_store_path(store_dir, name)
    with atomic_h5(path) as f:
        f.attrs.update({STORE_ID: store_id, "captions_sha1": captions_sha1(raw_captions), "source": source,
                        "num_words": int(num_words), "max_words": arrays["sent_ids"].shape[1],
                        "num_verbs": arrays["verb_masks"].shape[1], "num_nouns": arrays["noun_masks"].shape[1]})
        for key in ARRAYS:
            f.create_dataset(key, data=arrays[key])
    return path


class RoleGraphTable:
    """A loaded ``hgr/<name>.h5``: every caption's arrays as tensors, gathered by caption rows."""

    def __init__(self, store_dir: Path, name: str, store_id: str, raw_captions: list[str]):
        path = graph_store_path(store_dir, name)
        if not path.is_file():
            raise StoreError(f"{path}: HGR text inputs '{name}' not in the store (data_loader.args.role_graphs; "
                             "convert them with python3 misc/convert_role_graphs.py)")
        with _open(path, "HGR text input file") as f:
            check_build(f, store_id, Path(store_dir))
            if f.attrs.get("captions_sha1") != captions_sha1(raw_captions):
                raise StoreError(f"{path}: written for other captions than the index's; convert it again")
            self.num_words = int(f.attrs["num_words"])
            self.arrays = {key: torch.from_numpy(_read(f, key)) for key in ARRAYS}
        if len(self.arrays["sent_lens"]) != len(raw_captions):
            raise StoreError(f"{path}: {len(self.arrays['sent_lens'])} rows for {len(raw_captions)} captions")
        self.path = path

    def to(self, device: torch.device) -> "RoleGraphTable":
        self.arrays = {key: value.to(device) for key, value in self.arrays.items()}
        return self

    def gather(self, caption_rows: torch.Tensor) -> RoleGraphText:
        """The inputs of captions ``caption_rows`` [*S] (-1 = none: one EOS word, no nodes)."""
        rows = caption_rows.to(self.arrays["sent_lens"].device)
        safe = rows.clamp(min=0)
        none = rows < 0
        out = {key: value[safe] for key, value in self.arrays.items()}
        if none.any():
            out["sent_ids"][none] = EOS
            out["sent_lens"][none] = 1
            for key in ("verb_masks", "noun_masks", "node_roles", "rel_edges"):
                out[key][none] = 0
        return RoleGraphText(**out)
