"""Self-checks for the chapter "Attention as a soft lookup: queries, keys and values".

Four exercises, each with a reference solution and a check:

* :func:`solution_cosine`, :func:`check_cosine` -- a matrix of cosine similarities between
  queries and keys, computed with a single matrix product (the check counts them);
* :func:`solution_soft_lookup`, :func:`check_soft_lookup` -- one query looks up a weighted
  average of values, at a temperature;
* :func:`solution_temperature`, :func:`check_temperature` -- the largest temperature at which one
  key still takes 90 % of the weight;
* :func:`solution_predictions`, :func:`check_predictions` -- predict, before computing, what three
  changes to the chapter's first lookup do to its output.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). Each is decorated with :func:`~attnlib.exercises.checks`: a template still to be
filled in (a body of ``...``) runs the reference solution instead.

Shape legend (see the notation page): L query length, S key length, E query/key size, Ev value size.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import torch

from . import call_answer, cases_generator, checks, passed
from ._compare import ExerciseError, expect_close

__all__ = [
    "solution_cosine",
    "check_cosine",
    "solution_soft_lookup",
    "check_soft_lookup",
    "solution_temperature",
    "check_temperature",
    "top_weight",
    "TEMPERATURE_SCORES",
    "TARGET_WEIGHT",
    "solution_predictions",
    "check_predictions",
    "LOOKUP_KEYS",
    "LOOKUP_VALUES",
    "LOOKUP_QUERY",
    "CHANGES",
]

#: The scores of one query against four keys, used by :func:`check_temperature`.
TEMPERATURE_SCORES: tuple[float, ...] = (2.0, 1.0, 0.5, 0.0)
#: The weight the best key must keep in :func:`check_temperature`.
TARGET_WEIGHT: float = 0.9


def solution_cosine(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Exercise 1's reference solution: the cosine similarity of every query with every key.

    Args:
        queries: ``(L, E)``, no zero row.
        keys: ``(S, E)``, no zero row.

    Returns:
        ``(L, S)``: the dot products of the rows scaled to length 1, in one matrix product.
    """
    q_unit = queries / queries.norm(dim=-1, keepdim=True)  # (L, E), every row of length 1
    k_unit = keys / keys.norm(dim=-1, keepdim=True)  # (S, E), every row of length 1
    return q_unit @ k_unit.T  # (L, S)


#: The ATen operators that multiply matrices or vectors; :func:`check_cosine` counts their calls.
_MATRIX_PRODUCTS = frozenset(
    {"mm", "bmm", "mv", "dot", "vdot", "addmm", "addmv", "addbmm", "baddbmm", "matmul"}
)


def _count_matrix_products(fn: Callable, what: str, *args: torch.Tensor) -> tuple[object, int]:
    """Call ``fn`` on ``args`` (as :func:`~attnlib.exercises.call_answer` does) and count the
    matrix and vector products it runs, from a log of the ATen operators it dispatches."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: Counter[str] = Counter()

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            counts[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    with _Count():
        result = call_answer(fn, what, *args)
    return result, sum(n for op, n in counts.items() if op in _MATRIX_PRODUCTS)


@checks(solution_cosine)
def check_cosine(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check a function that returns the cosine similarity of every query with every key.

    The answer is called as ``fn(queries, keys)`` on vectors of very different lengths (so a plain
    dot product fails) and with ``L != S`` (so a transposed result fails). The exercise asks for a
    single matrix product: an answer that runs none (``F.cosine_similarity`` on broadcast
    tensors, or a sum of elementwise products) or several (a loop over queries or pairs) fails,
    even when its values are right.

    Args:
        fn: takes ``queries`` ``(L, E)`` and ``keys`` ``(S, E)`` (no zero vectors) and returns
            ``(L, S)``, entry ``[i, j]`` being ``cos(queries[i], keys[j])``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the answer does not compute the
            matrix with exactly one matrix product.

    See the chapter\'s section "Similarity: dot product and cosine".
    """
    g = cases_generator(2)
    lengths_q = torch.tensor([0.5, 1.0, 3.0])[:, None]  # (3, 1)
    lengths_k = torch.tensor([2.0, 0.25, 1.0, 5.0, 0.7])[:, None]  # (5, 1)
    cases = [
        (
            "queries [[1, 0], [0, 2]] and keys [[3, 0], [1, 1], [0, -1]]",
            torch.tensor([[1.0, 0.0], [0.0, 2.0]]),
            torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, -1.0]]),
        ),
        (
            "random queries (3, 4) and keys (5, 4) of different lengths",
            torch.randn(3, 4, generator=g) * lengths_q,
            torch.randn(5, 4, generator=g) * lengths_k,
        ),
        (
            "one query (1, 6) against keys (2, 6) pointing the same way",
            torch.full((1, 6), 0.5),
            torch.stack([torch.full((6,), 4.0), torch.full((6,), 0.1)]),
        ),
    ]
    for what, queries, keys in cases:
        got, products = _count_matrix_products(fn, f"cosine of {what}", queries, keys)
        expect_close(got, solution_cosine(queries, keys), what=f"cosine of {what}")
        if products != 1:
            how = (
                "none: the values are right, but they were not computed as a matrix product"
                if products == 0
                else f"{products}: a loop over queries or pairs runs one product per step"
            )
            raise ExerciseError(
                f"cosine of {what}: the exercise asks for a single matrix product of the "
                f"normalised queries and keys, (L, E) @ (E, S); your function ran {how}"
            )
    passed(
        f"cosine similarities match on {len(cases)} cases, including vectors of very different "
        "lengths, each from a single matrix product."
    )


def solution_soft_lookup(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Exercise 2's reference solution: a soft lookup of one query at a temperature.

    Args:
        query: ``(E,)``.
        keys: ``(S, E)``.
        values: ``(S, Ev)``.
        temperature: a positive float; the scores are divided by it before the softmax.

    Returns:
        ``(Ev,)``: ``softmax(keys @ query / temperature) @ values``. ``torch.softmax`` subtracts
        the largest score before ``exp``, so a very low temperature does not overflow.
    """
    scores = keys @ query / temperature  # (S,)
    weights = torch.softmax(scores, dim=-1)  # (S,); subtracts the largest score before exp
    return weights @ values  # (Ev,)


@checks(solution_soft_lookup)
def check_soft_lookup(
    fn: Callable[..., torch.Tensor],
) -> None:
    """Check a soft lookup: softmax of query-key dot products over temperature, then average.

    The answer is called as ``fn(query, keys, values, temperature=tau)``, with values of a size
    different from the keys' (``Ev != E``), at several temperatures, including a very low one where
    a naive ``exp`` overflows.

    Args:
        fn: takes ``query`` ``(E,)``, ``keys`` ``(S, E)``, ``values`` ``(S, Ev)`` and a keyword
            ``temperature`` (a positive float) and returns ``(Ev,)``:
            ``softmax(keys @ query / temperature) @ values``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter\'s section "The soft lookup, step by step".
    """
    g = cases_generator(2)
    keys = torch.randn(5, 3, generator=g)  # (S, E) = (5, 3)
    values = torch.randn(5, 2, generator=g) * 3  # (S, Ev) = (5, 2)
    query = torch.randn(3, generator=g)  # (E,)
    sharp_query = 40.0 * keys[3]  # at temperature 0.05 the scores reach thousands: exp overflows
    cases = [
        ("query (3,), keys (5, 3), values (5, 2), temperature=1.0", query, 1.0),
        ("the same lookup at temperature=0.25", query, 0.25),
        ("the same lookup at temperature=10.0", query, 10.0),
        ("a query aligned with key 3 at temperature=0.05", sharp_query, 0.05),
    ]
    for what, q, temperature in cases:
        got = call_answer(fn, what, q, keys, values, temperature=temperature)
        expected = solution_soft_lookup(q, keys, values, temperature)
        expect_close(got, expected, what=what)
    passed(
        f"the soft lookup matches on {len(cases)} cases, from temperature 10 (nearly an average) "
        "to 0.05 (nearly a hard lookup)."
    )


def top_weight(temperature: float, scores: tuple[float, ...] = TEMPERATURE_SCORES) -> float:
    """The largest softmax weight of ``scores / temperature`` (a helper for exercise 3).

    Args:
        temperature: a positive float.
        scores: the scores of one query against its keys.

    Returns:
        The weight of the best-matching key, a float in ``(0, 1]``.
    """
    s = torch.tensor(scores, dtype=torch.float64) / temperature  # (S,)
    return float(torch.softmax(s, dim=-1).max())


def solution_temperature(target: float = TARGET_WEIGHT) -> float:
    """Exercise 3's reference solution: the largest temperature that keeps ``target`` weight.

    The best key's weight only falls as the temperature rises, so a bisection finds the
    temperature at which it crosses ``target``, on a log scale because temperatures span decades.

    Args:
        target: the weight the best key must keep, in ``(1/S, 1)``.

    Returns:
        The largest temperature at which :func:`top_weight` is at least ``target``.
    """
    lo, hi = 0.01, 100.0  # top_weight(lo) is above the target, top_weight(hi) below
    for _ in range(60):  # bisection on a log scale
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if top_weight(mid) >= target else (lo, mid)
    return lo


@checks(solution_temperature)
def check_temperature(temperature: float | Callable[[], float]) -> None:
    """Check the largest temperature at which the best key keeps at least 90 % of the weight.

    The query's scores against four keys are :data:`TEMPERATURE_SCORES` = (2, 1, 0.5, 0). Its
    weights are ``softmax(scores / temperature)``. The answer is accepted when the best key's weight
    is at least :data:`TARGET_WEIGHT` = 0.9 at ``temperature`` and falls below 0.9 at a temperature
    1 % higher (so the answer is the largest such temperature, to within 1 %).

    Args:
        temperature: the learner's answer, a positive number, or a function that returns it
            when called with no arguments (the chapter's template).

    Raises:
        ExerciseError: when the answer is not a positive number, is too hot (the top weight is
            below 0.9) or too cold (a warmer temperature would still keep 0.9).

    See the chapter\'s section "Temperature: from a soft lookup to a hard one".
    """
    if callable(temperature):
        search = temperature
        try:
            temperature = search()
        except Exception as err:  # the learner's code failed: report it, keep the cause
            raise ExerciseError(
                f"{getattr(search, '__name__', 'your function')}() raised "
                f"{type(err).__name__}: {err}"
            ) from err
    if isinstance(temperature, torch.Tensor) and temperature.numel() == 1:
        temperature = temperature.item()
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ExerciseError(
            f"expected a positive number (a float), got {type(temperature).__name__}"
        )
    if not math.isfinite(temperature) or temperature <= 0:
        raise ExerciseError(f"expected a positive, finite temperature, got {temperature}")
    weight = top_weight(temperature)
    if weight < TARGET_WEIGHT:
        raise ExerciseError(
            f"at temperature {temperature:.4g} the best key gets weight {weight:.4f}, "
            f"expected at least {TARGET_WEIGHT}: too hot, lower the temperature"
        )
    warmer = temperature * 1.01
    if top_weight(warmer) >= TARGET_WEIGHT:
        raise ExerciseError(
            f"at temperature {temperature:.4g} the best key gets weight {weight:.4f} >= "
            f"{TARGET_WEIGHT}, but so does the warmer temperature {warmer:.4g} "
            f"(weight {top_weight(warmer):.4f}): expected the largest such temperature, "
            "to within 1 %"
        )
    passed(
        f"at temperature {temperature:.3f} the best key keeps weight {weight:.3f}, and any "
        f"temperature 1 % higher drops it below {TARGET_WEIGHT}."
    )


#: The chapter's first example: four keys ``(S, E) = (4, 3)``, their values ``(S, Ev) = (4, 2)``
#: and the query that matches no key exactly, as nested lists (the check builds the tensors).
LOOKUP_KEYS: tuple[tuple[float, ...], ...] = (
    (1.0, 0.0, 1.0),
    (0.0, 2.0, 0.0),
    (1.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
)
LOOKUP_VALUES: tuple[tuple[float, ...], ...] = ((1.0, 0.0), (0.0, 1.0), (2.0, 2.0), (-1.0, 3.0))
LOOKUP_QUERY: tuple[float, ...] = (1.0, 2.0, 0.0)

#: The three changes whose effect :func:`check_predictions` asks about, with the reason the
#: check prints next to the computed output.
CHANGES: dict[str, str] = {
    "values + 10": "the weights sum to 1, so adding 10 to every value adds 10 to the output",
    "zero query": (
        "every score is 0, the weights are uniform, 1/4 each, and the output is the mean of "
        "the values"
    ),
    "keys + (1, 1, 1)": (
        "every score grows by q . (1, 1, 1) = 3, the same for every key; the softmax ignores a "
        "shift shared by the whole row, so nothing changes"
    ),
}


def _changed_lookup(change: str) -> torch.Tensor:
    """The output ``(Ev,)`` of the chapter's first lookup (scale 1) after ``change``."""
    keys = torch.tensor(LOOKUP_KEYS, dtype=torch.float64)  # (S, E)
    values = torch.tensor(LOOKUP_VALUES, dtype=torch.float64)  # (S, Ev)
    query = torch.tensor(LOOKUP_QUERY, dtype=torch.float64)  # (E,)
    if change == "values + 10":
        values = values + 10
    elif change == "zero query":
        query = torch.zeros_like(query)
    elif change == "keys + (1, 1, 1)":
        keys = keys + 1
    return torch.softmax(keys @ query, dim=-1) @ values  # (Ev,)


def solution_predictions() -> dict[str, tuple[float, float]]:
    """Exercise 4's reference predictions, reasoned out without running the lookup.

    The unchanged lookup of the query (1, 2, 0) gives the output (0.534, 1.247) (printed in the
    chapter).

    Returns:
        For each change in :data:`CHANGES`, the predicted output ``(Ev,)`` as two floats.
    """
    return {
        "values + 10": (10.534, 11.247),  # the weights sum to 1: the output moves by 10
        "zero query": (0.5, 1.5),  # uniform weights: the mean of the four values
        "keys + (1, 1, 1)": (0.534, 1.247),  # every score + 3: the softmax does not change
    }


@checks(solution_predictions)
def check_predictions(predict: Callable[[], dict]) -> None:
    """Compare predicted outputs of the chapter's first lookup with the computed ones.

    Prints, for each change in :data:`CHANGES`, the prediction, the computed output (to three
    decimals) and why; then raises if a prediction is off by more than 0.01 in a coordinate.

    Args:
        predict: called with no arguments, returns a dict mapping each key of :data:`CHANGES` to a
            pair of floats (a list, tuple or tensor of two numbers), the predicted output.

    Raises:
        ExerciseError: a change is missing, a prediction is not two numbers, or it is wrong.

    See the chapter\'s section "The soft lookup, step by step".
    """
    try:
        predictions = predict()
    except Exception as err:  # the learner's code failed: report it, keep the cause
        raise ExerciseError(f"your predictions raised {type(err).__name__}: {err}") from err
    if not isinstance(predictions, dict):
        raise ExerciseError(
            f"expected a dict with the keys {', '.join(map(repr, CHANGES))}, "
            f"got {type(predictions).__name__}"
        )
    missing = [c for c in CHANGES if c not in predictions]
    if missing:
        raise ExerciseError(f"no prediction for {', '.join(map(repr, missing))}")
    wrong = []
    for change, why in CHANGES.items():
        truth = _changed_lookup(change)
        try:
            guess = torch.as_tensor(predictions[change], dtype=torch.float64).flatten()
        except (TypeError, ValueError, RuntimeError) as err:
            raise ExerciseError(
                f"{change!r}: expected two numbers, got {predictions[change]!r}"
            ) from err
        if guess.numel() != 2:
            raise ExerciseError(f"{change!r}: expected two numbers, got {guess.numel()}")
        right = bool(((guess - truth).abs() <= 0.01).all())
        shown = ", ".join(f"{x:.3f}" for x in guess.tolist())
        computed = ", ".join(f"{x:.3f}" for x in truth.tolist())
        print(f"{change:>17}: predicted ({shown}), computed ({computed}): {why}")
        if not right:
            wrong.append(change)
    if wrong:
        raise ExerciseError(
            f"{len(wrong)} of {len(CHANGES)} predictions were off by more than 0.01: "
            f"{', '.join(map(repr, wrong))} (the computed outputs and the reasons are above)"
        )
    passed(f"all {len(CHANGES)} predictions within 0.01 of the computed outputs.")
