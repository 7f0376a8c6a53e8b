"""Semantic classes of the Synthetic captions, derived from the generator's vocabulary.

Every Synthetic caption is one of the generator's ``TEMPLATES`` around a phrase of concept
words joined by " and " (``data_loader/generated/synthetic.py``). A caption's classes are the concepts
it names:

* verb classes: the named concept words that name an action, the ``-ing`` words (swimming,
  dancing, cooking, baking, painting, singing), one class each;
* noun classes: every other named concept word (dog, guitar, beach, ...), one class each.

The template words are filler and carry no class ("a man talks about dog" names the noun
dog only). So "people near dog and cooking in a clip" has the verb classes {cooking} and the
noun classes {dog}; a concept named twice is listed twice, as pooling counts occurrences.
Class ids follow the order of the words in ``CONCEPT_WORDS``.

The classes are computed from the stored caption text, so they always describe the captions
the store holds; ``data_loader/prepare.py`` writes them into ``classes.h5``.
"""
from __future__ import annotations

import re

from data_loader.generated.synthetic import CONCEPT_WORDS, TEMPLATES
from data_loader.ranp.classes import CaptionClasses
from data_loader.ranp.relevance import ClassLists

VERB_WORDS = tuple(w for w in CONCEPT_WORDS if w.endswith("ing"))
NOUN_WORDS = tuple(w for w in CONCEPT_WORDS if not w.endswith("ing"))
SOURCE = "synthetic vocabulary"
_PATTERNS = tuple(re.compile("^" + "(.+)".join(map(re.escape, t.split("{}"))) + "$") for t in TEMPLATES)
_VERB_IDS = {w: i for i, w in enumerate(VERB_WORDS)}
_NOUN_IDS = {w: i for i, w in enumerate(NOUN_WORDS)}


def caption_concepts(caption: str) -> list[str]:
    """The concept words a Synthetic caption names, in order (duplicates kept).

    Raises ValueError for text that no template and concept phrase produce, or that two
    templates could both produce.
    """
    parses = []
    for pattern in _PATTERNS:
        match = pattern.match(caption)
        if match:
            words = match.group(1).split(" and ")
            if all(w in _VERB_IDS or w in _NOUN_IDS for w in words):
                parses.append(words)
    if len(parses) != 1:
        raise ValueError(f"{caption!r}: {'no' if not parses else 'more than one'} template and concept "
                         "phrase of the Synthetic generator produce this caption")
    return parses[0]


def synthetic_classes(raw_captions: list[str]) -> CaptionClasses:
    """Verb and noun class lists of every caption, in order."""
    named = [caption_concepts(c) for c in raw_captions]
    verbs = ClassLists.from_lists([[_VERB_IDS[w] for w in words if w in _VERB_IDS] for words in named],
                                  len(VERB_WORDS))
    nouns = ClassLists.from_lists([[_NOUN_IDS[w] for w in words if w in _NOUN_IDS] for words in named],
                                  len(NOUN_WORDS))
    return CaptionClasses(verbs, nouns)
