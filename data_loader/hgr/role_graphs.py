"""Captions and role graphs as HGR reads them (the original's ``readers/rolegraphs.py`` rules).

Tokenisation: whitespace split, unknown words -> ``UNK`` (2), at most ``max_words`` words,
padded with ``EOS`` (1). Role graphs come from ``sent2rolegraph.augment.json``:
``{sentence: [nodes, edges]}``, ``nodes`` ``{id: {"role": str, "spans": [word index, ...],
"words": [...]}}`` (ids ``ROOT``, ``1``, ``2``, ...), ``edges`` ``[[verb id, argument id, role], ...]``.
Nodes are taken in the file's order: the first ``num_verbs`` ``V`` nodes become verb nodes
(root -> verb edges), the first ``num_nouns`` other non-root nodes argument nodes with their
role id (``C-``/``R-`` prefixes folded, unknown roles -> ``NOUN``); a node whose first word
lies past ``max_words`` is left out, as are its words past it. Every edge between two kept
nodes links them both ways; the adjacency [target, source] is row-normalised.

Such files are made by semantic role labelling (AllenNLP's BERT SRL, spaCy noun chunks and
verbs as the fallback; see docs/hgr.md); nothing here depends on those tools.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.errors import StoreError

BOS, EOS, UNK = 0, 1, 2
ROLES = ("V", "ARG1", "ARG0", "ARG2", "ARG3", "ARG4", "ARGM-LOC", "ARGM-MNR", "ARGM-TMP", "ARGM-DIR",
         "ARGM-ADV", "ARGM-PRP", "ARGM-PRD", "ARGM-COM", "ARGM-MOD", "NOUN")
ROLE_IDS = {f"{prefix}{role}": i for i, role in enumerate(ROLES) for prefix in ("", "C-", "R-")}


def tokenise(sentence: str, word2int: dict[str, int], max_words: int) -> np.ndarray:
    """Word ids [n] (n <= max_words) of ``sentence``: whitespace split, unknown words UNK."""
    return np.array([word2int.get(w, UNK) for w in sentence.split()][:max_words], dtype=np.int64)


@dataclass
class GraphArrays:
    """One caption's graph: ``verb_masks`` [NV, W], ``noun_masks`` [NN, W] (bool),
    ``node_roles`` [NV + NN] (int64), ``rel_edges`` [1 + NV + NN, 1 + NV + NN] (float32)."""

    verb_masks: np.ndarray
    noun_masks: np.ndarray
    node_roles: np.ndarray
    rel_edges: np.ndarray


def _first_word(node: dict, sentence: str, key: str) -> int:
    spans = node.get("spans") if isinstance(node, dict) else None
    if not isinstance(spans, list) or not spans or not all(isinstance(w, int) for w in spans):
        raise StoreError(f"role graph of {sentence!r}: node '{key}' has no word indices in 'spans'")
    return min(spans)


def graph_arrays(graph: object, sentence: str, max_words: int, num_verbs: int, num_nouns: int) -> GraphArrays:
    """The arrays of ``graph`` ([nodes, edges] of ``sentence``), as the original builds them."""
    if not isinstance(graph, (list, tuple)) or len(graph) != 2 or not isinstance(graph[0], dict):
        raise StoreError(f"role graph of {sentence!r}: expected [nodes, edges]")
    nodes, edges = graph
    verb_masks = np.zeros((num_verbs, max_words), dtype=bool)
    noun_masks = np.zeros((num_nouns, max_words), dtype=bool)
    roles = np.zeros(num_verbs + num_nouns, dtype=np.int64)
    links: list[tuple[int, int]] = []
    verb_index: dict[str, int] = {}
    noun_index: dict[str, int] = {}
    for key, node in nodes.items():
        if len(verb_index) >= num_verbs:
            break
        if node.get("role") == "V" and _first_word(node, sentence, key) < max_words:
            k = len(verb_index)
            verb_index[key] = 1 + k
            verb_masks[k, [w for w in node["spans"] if w < max_words]] = True
            roles[k] = ROLE_IDS["V"]
            links.append((0, 1 + k))
    for key, node in nodes.items():
        if len(noun_index) >= num_nouns:
            break
        if node.get("role") not in ("ROOT", "V") and _first_word(node, sentence, key) < max_words:
            k = len(noun_index)
            noun_index[key] = 1 + num_verbs + k
            noun_masks[k, [w for w in node["spans"] if w < max_words]] = True
            roles[num_verbs + k] = ROLE_IDS.get(node.get("role"), ROLE_IDS["NOUN"])
    for edge in edges:
        if edge[0] in verb_index and edge[1] in noun_index:
            links += [(verb_index[edge[0]], noun_index[edge[1]]), (noun_index[edge[1]], verb_index[edge[0]])]
    size = 1 + num_verbs + num_nouns
    rel = np.zeros((size, size), dtype=np.float32)
    for source, target in links:
        rel[target, source] = 1
    sums = rel.sum(1, keepdims=True)
    rel = np.where(sums > 0, rel / np.maximum(sums, 1), rel).astype(np.float32)
    return GraphArrays(verb_masks, noun_masks, roles, rel)
