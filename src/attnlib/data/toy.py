"""A synthetic copy task for sequence-to-sequence models: reverse a string.

Reversing needs no knowledge of language, only of positions: output character ``t`` is source
character ``S - 1 - t``. A decoder that sees the whole source through one summary vector must
squeeze every position into it; one that attends can look the right character up. The chapter on
attention in RNN encoder–decoders measures the difference as the strings grow.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .._checks import positive_int

__all__ = ["reversal_pairs"]


def reversal_pairs(
    n: int, lengths: Sequence[int], *, alphabet: str = "abcdefghijklmnopqrstuvwxyz", seed: int = 0
) -> list[tuple[str, str]]:
    """A synthetic task: random strings and the same strings reversed (``"abc"`` -> ``"cba"``).

    Args:
        n: number of pairs.
        lengths: the lengths to draw from, uniformly.
        alphabet: the characters.
        seed: seeds a private generator.

    Returns:
        ``n`` pairs ``(text, reversed text)``.
    """
    positive_int(n, "n", "reversal_pairs")
    lengths = list(lengths)
    if not lengths or any(not isinstance(k, int) or k <= 0 for k in lengths):
        raise ValueError(f"reversal_pairs: lengths must be positive ints, got {lengths}")
    if not alphabet:
        raise ValueError("reversal_pairs: alphabet is empty")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = "".join(rng.choice(alphabet) for _ in range(rng.choice(lengths)))
        out.append((text, text[::-1]))
    return out
