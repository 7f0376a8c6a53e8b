"""The official EPIC-KITCHENS-100 Multi-Instance Retrieval relevance, built from the annotation CSVs.

relevance(clip i, sentence j) = (verb_term + noun_IoU) / 2, with ``verb_term`` 1 when the two
verb classes are equal (else 0) and ``noun_IoU`` the IoU of the two *sets* of
``all_noun_classes``. A sentence row's classes are those of the clip its ``narration_id``
names; its text is not used (the published sentence CSV's last rows carry shifted text, kept
as published). The result is bit-equal to the official matrix: the same IoU quotients and the
same halving, in float64 (``data_loader.ranp.relevance.relevance``).

Files (official, ``retrieval_annotations/``):

* ``EPIC_100_retrieval_test.csv``: one row per clip, ``narration_id``, ``narration``,
  ``verb_class``, ``all_noun_classes`` (a list written as text, e.g. ``[2, 14]``), ...
* ``EPIC_100_retrieval_test_sentence.csv``: ``narration_id``, ``narration``: 3,842 rows.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data_loader.ranp.relevance import ClassLists, relevance
from utils.errors import StoreError

# The official annotation copies shipped with the project (CC BY-NC 4.0, see their README).
SHIPPED_ANNOTATIONS = Path(__file__).resolve().parents[2] / "misc" / "datasets" / "epic-kitchens-100"
TEST_CLIPS_CSV = "EPIC_100_retrieval_test.csv"
TEST_SENTENCES_CSV = "EPIC_100_retrieval_test_sentence.csv"
NUM_VERB_CLASSES = 97
NUM_NOUN_CLASSES = 300
# Rows of relevance built at once: bounds the float64 temporaries to a few times rows x sentences.
_ROW_BLOCK = 1024


@dataclass
class ClipAnnotations:
    """Clips in file order: ids [n], narration texts [n], verb classes int64 [n] and noun
    class lists (CSR, ``ClassLists``)."""

    ids: list[str]
    narrations: list[str]
    verbs: np.ndarray
    nouns: ClassLists


def parse_class_list(value: object, where: str) -> list[int]:
    """A class list as the annotation files write it: ``[3, 14]`` as text, a list, or one int."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise StoreError(f"{where}: expected a list of class ids like [3, 14], got {value!r}") from None
    items = value if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 0 for c in items):
        raise StoreError(f"{where}: expected class ids (ints >= 0), got {value!r}")
    return [int(c) for c in items]


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise StoreError(f"{path}: EPIC-KITCHENS-100 annotation file not found")
    table = pd.read_csv(path, dtype={"narration_id": str, "narration": str}, keep_default_na=False)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise StoreError(f"{path}: missing column(s) {', '.join(missing)} (expected the official layout)")
    return table


def read_clips(path: Path) -> ClipAnnotations:
    """The clips of an official clip CSV (e.g. ``EPIC_100_retrieval_test.csv``), in file order."""
    table = _read_csv(Path(path), ("narration_id", "narration", "verb_class", "all_noun_classes"))
    nouns = [parse_class_list(v, f"{path}: narration_id {i} all_noun_classes")
             for i, v in zip(table["narration_id"], table["all_noun_classes"])]
    return ClipAnnotations(list(table["narration_id"]), list(table["narration"]),
                           table["verb_class"].to_numpy(np.int64), ClassLists.from_lists(nouns, NUM_NOUN_CLASSES))


def read_sentences(path: Path) -> tuple[list[str], list[str]]:
    """``(narration_ids, texts)`` of an official sentence CSV, in file order, text as published."""
    table = _read_csv(Path(path), ("narration_id", "narration"))
    return list(table["narration_id"]), list(table["narration"])


def sentence_clips(clips: ClipAnnotations, sentence_ids: list[str], where: str) -> np.ndarray:
    """int64 [M]: the clip row of every sentence's ``narration_id`` (StoreError if one is unknown)."""
    row = {clip: i for i, clip in enumerate(clips.ids)}
    unknown = [s for s in sentence_ids if s not in row]
    if unknown:
        raise StoreError(f"{where}: narration_id {unknown[0]} is not a clip of the clip annotations "
                         f"({len(unknown)} unknown)")
    return np.array([row[s] for s in sentence_ids], dtype=np.int64)


def clip_sentence_relevance(clips: ClipAnnotations, sentence_rows: np.ndarray) -> np.ndarray:
    """float64 ``[n_clips, M]``: the official relevance of every clip to every sentence, the
    sentence ``j`` carrying the classes of clip ``sentence_rows[j]``; built a block of rows at a time."""
    nouns = clips.nouns.multi_hot()
    verbs = torch.tensor(clips.verbs)
    cols = torch.from_numpy(np.asarray(sentence_rows, dtype=np.int64))
    out = np.empty((len(clips.ids), len(cols)), dtype=np.float64)
    for lo in range(0, len(clips.ids), _ROW_BLOCK):
        hi = min(lo + _ROW_BLOCK, len(clips.ids))
        out[lo:hi] = relevance(verbs[lo:hi], nouns[lo:hi], verbs[cols], nouns[cols]).numpy()
    return out


def official_test_relevance(folder: Path = SHIPPED_ANNOTATIONS) -> tuple[np.ndarray, ClipAnnotations, list[str],
                                                                         list[str]]:
    """The official test relevance from the two CSVs in ``folder``.

    Returns ``(relevance float64 [9668, 3842], clips, sentence ids [3842], sentence texts [3842])``.
    """
    clips = read_clips(Path(folder) / TEST_CLIPS_CSV)
    sentence_ids, texts = read_sentences(Path(folder) / TEST_SENTENCES_CSV)
    rows = sentence_clips(clips, sentence_ids, str(Path(folder) / TEST_SENTENCES_CSV))
    return clip_sentence_relevance(clips, rows), clips, sentence_ids, texts
