"""Role graphs and a vocabulary for generated captions of the form
"<verb> <noun words> [and <noun words> ...]" (EPIC-KITCHENS-100 narrations such as
"take plate and knife"), without semantic role labelling: the first word is the ``V``
node, every run of words between "and"s an ``ARG1`` node linked to it. The vocabulary is the
captions' words after HGR's special ids (BOS 0, EOS 1, UNK 2), in sorted order.
"""
from __future__ import annotations

GENERATED = "generated"
SPECIAL = ("<sos>", "<eos>", "<unk>")


def template_role_graph(caption: str) -> list:
    """[nodes, edges] in the ``sent2rolegraph.augment.json`` format."""
    words = caption.split()
    nodes: dict[str, dict] = {"ROOT": {"role": "ROOT", "spans": [], "words": []}}
    if not words:
        return [nodes, []]
    nodes["1"] = {"role": "V", "spans": [0], "words": words[:1]}
    edges, run = [], []
    for i, word in enumerate(words[1:] + ["and"], start=1):
        if word != "and":
            run.append(i)
            continue
        if run:
            key = str(len(nodes))
            nodes[key] = {"role": "ARG1", "spans": run, "words": [words[j] for j in run]}
            edges.append(["1", key, "ARG1"])
        run = []
    return [nodes, edges]


def template_role_graphs(captions: list[str]) -> dict[str, list]:
    """{caption: [nodes, edges]} for every distinct caption."""
    return {caption: template_role_graph(caption) for caption in dict.fromkeys(captions)}


def vocabulary_of(captions: list[str]) -> tuple[dict[str, int], int]:
    """(word -> id, vocabulary size) over the captions' words."""
    words = list(SPECIAL) + sorted({w for c in captions for w in c.split()} - set(SPECIAL))
    return {w: i for i, w in enumerate(words)}, len(words)
