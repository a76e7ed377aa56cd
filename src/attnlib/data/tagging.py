"""A tagging task where a name's label is decided by the word after it or by the word before it.

Some names are a person or a place depending on the sentence ("jordan smiled" / "jordan flooded").
Each sentence tags every word ``O``, ``PER`` or ``LOC``, and each ambiguous name is decided either
**on the right** (``[opener] NAME VERB``: the verb that follows says which) or **on the left**
(``SUBJECT met|visited NAME``: the verb before it says which). A bidirectional encoder reads both
sides; a causal one sees only the left, so it can tag the second kind and must guess on the first.
The BERT chapter trains one of each on it.

Sentences are lists of words; a batch pads them with id 0 (``<pad>``) and gives padding the label
``-100``, which :func:`torch.nn.functional.cross_entropy` ignores.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import torch

__all__ = [
    "AMBIGUOUS",
    "PEOPLE",
    "PLACES",
    "PERSON_VERBS",
    "PLACE_VERBS",
    "OPENERS",
    "TAGS",
    "VOCAB",
    "STOI",
    "decided_on_the_right",
    "decided_on_the_left",
    "sample",
    "to_batch",
    "right_decided_sentences",
    "left_decided_sentences",
]

#: Names that are a person in one sentence and a place in another.
AMBIGUOUS = ("jordan", "paris", "georgia", "austin", "florence", "sydney")
PEOPLE = ("alice", "omar", "maria", "ken")
PLACES = ("london", "tokyo", "cairo", "lima")
PERSON_VERBS = ("said", "smiled", "waved", "laughed")
PLACE_VERBS = ("flooded", "grew", "glittered", "froze")
OPENERS = ("", "then", "today", "sadly")  # "" means the sentence starts with the name
TAGS = ("O", "PER", "LOC")
VOCAB = (
    "<pad>",
    "met",
    "visited",
    *sorted({*AMBIGUOUS, *PEOPLE, *PLACES, *PERSON_VERBS, *PLACE_VERBS, *filter(None, OPENERS)}),
)
STOI = {w: k for k, w in enumerate(VOCAB)}

Sentence = tuple[list[str], list[str]]  # (words, tags), one tag per word


def decided_on_the_right(opener: str, name: str, kind: str, verb: str) -> Sentence:
    """``[opener] NAME VERB``: the verb, to the right of the name, decides ``PER`` or ``LOC``."""
    words = [opener, name, verb] if opener else [name, verb]
    return words, (["O"] if opener else []) + [kind, "O"]


def decided_on_the_left(subject: str, kind: str, name: str) -> Sentence:
    """``SUBJECT met|visited NAME``: the verb, to the left of the name, decides."""
    return [subject, "met" if kind == "PER" else "visited", name], ["PER", "O", kind]


def sample(rng: random.Random) -> Sentence:
    """One random training sentence.

    40 % an ambiguous name decided on the right, 20 % an unambiguous name in the same frame, 40 %
    an ambiguous name decided on the left.
    """
    kind = rng.choice(["PER", "LOC"])
    verbs = PERSON_VERBS if kind == "PER" else PLACE_VERBS
    r = rng.random()
    if r < 0.4:  # an ambiguous name, decided by the word after it
        return decided_on_the_right(
            rng.choice(OPENERS), rng.choice(AMBIGUOUS), kind, rng.choice(verbs)
        )
    if r < 0.6:  # an unambiguous name in the same frame
        name = rng.choice(PEOPLE if kind == "PER" else PLACES)
        return decided_on_the_right(rng.choice(OPENERS), name, kind, rng.choice(verbs))
    return decided_on_the_left(rng.choice(PEOPLE), kind, rng.choice(AMBIGUOUS))


def to_batch(examples: Sequence[Sentence]) -> tuple[torch.Tensor, torch.Tensor]:
    """Word ids and tag ids, padded to the longest sentence.

    Returns:
        ``(ids, tags)``, both ``(N, L)`` long: ids padded with 0, tags (indices into
        :data:`TAGS`) padded with ``-100`` so that the loss ignores padding.
    """
    if not examples:
        raise ValueError("to_batch: examples is empty")
    L = max(len(words) for words, _ in examples)
    ids = torch.zeros(len(examples), L, dtype=torch.long)  # (N, L), padded with 0
    tags = torch.full((len(examples), L), -100)  # (N, L), -100: no loss on padding
    for n, (words, labels) in enumerate(examples):
        ids[n, : len(words)] = torch.tensor([STOI[w] for w in words])
        tags[n, : len(labels)] = torch.tensor([TAGS.index(t) for t in labels])
    return ids, tags


def right_decided_sentences() -> list[Sentence]:
    """Every right-decided sentence with an ambiguous name: each name in both roles after the
    same opener (192 sentences)."""
    return [
        decided_on_the_right(o, n, k, v)
        for o, n, k in itertools.product(OPENERS, AMBIGUOUS, ["PER", "LOC"])
        for v in (PERSON_VERBS if k == "PER" else PLACE_VERBS)
    ]


def left_decided_sentences() -> list[Sentence]:
    """Every left-decided sentence: each subject, each ambiguous name, both roles (48)."""
    return [
        decided_on_the_left(s, k, n)
        for s, n, k in itertools.product(PEOPLE, AMBIGUOUS, ["PER", "LOC"])
    ]
