"""The EPIC-KITCHENS-100 Multi-Instance Retrieval leaderboard file, from a test evaluation.

The file is a pickle of a dict (the challenge's format):

* ``version`` "0.1", ``challenge`` "multi_instance_retrieval";
* ``sim_mat``: float32 [9668, 3842], the score of test clip i (rows, the order of
  ``EPIC_100_retrieval_test.csv``) for test sentence j (columns, the order of
  ``EPIC_100_retrieval_test_sentence.csv``); only the ranking matters;
* ``vis_ids``, ``txt_ids``: the ``narration_id`` of every row and column (pandas Index);
* ``sls_pt``, ``sls_tl``, ``sls_td``: the Supervision Levels Scale of the method (pre-training,
  training labels, training data; integers 0-5).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data_loader.expert_loader import ExpertDataLoader
from data_loader.ranp.classes import read_relevance_columns
from trainer.evaluate import EvalResult
from utils.atomic import atomic_path
from utils.errors import StoreError

VERSION = "0.1"
CHALLENGE = "multi_instance_retrieval"
# Supervision Levels Scale of the models here, as the official baselines declare theirs.
DEFAULT_SLS = (2, 3, 3)


def sentence_scores(result: EvalResult, data: ExpertDataLoader) -> tuple[np.ndarray, list[str], list[str]]:
    """The [video, sentence] scores of an evaluation whose split has a sentence set of its own
    (the store's ``relevance/<split>.h5`` with columns), with the video and sentence ids.

    Returns ``(sim_mat float32 [N, M], vis_ids [N], txt_ids [M])``.
    """
    columns = read_relevance_columns(data.store.path, result.split)
    if columns is None:
        raise StoreError(f"{data.store.path}: split '{result.split}' has no sentence set (relevance/{result.split}.h5 "
                         "with columns); a submission file needs the EPIC-KITCHENS-100 test split")
    caption_numbers, txt_ids = columns
    valid = torch.from_numpy(result.query_masks.reshape(-1) > 0)
    kept = torch.from_numpy(result.sims)[valid]
    sim_mat = kept[caption_numbers].t().contiguous().numpy().astype(np.float32, copy=False)
    vis_ids = [data.store.video_ids[int(v)] for v in data.store.splits[result.split]]
    return sim_mat, vis_ids, txt_ids


def write_submission(path: Path, sim_mat: np.ndarray, vis_ids: list[str], txt_ids: list[str],
                     sls: tuple[int, int, int] = DEFAULT_SLS) -> Path:
    """Write the leaderboard pickle atomically; returns ``path``."""
    if sim_mat.shape != (len(vis_ids), len(txt_ids)):
        raise ValueError(f"sim_mat {sim_mat.shape} does not match {len(vis_ids)} videos x {len(txt_ids)} sentences")
    payload = {"version": VERSION, "challenge": CHALLENGE, "sim_mat": sim_mat,
               "vis_ids": pd.Index(vis_ids, name="narration_id"), "txt_ids": pd.Index(txt_ids, name="narration_id"),
               "sls_pt": int(sls[0]), "sls_tl": int(sls[1]), "sls_td": int(sls[2])}
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(pickle.dumps(payload, protocol=4))
    return Path(path)
