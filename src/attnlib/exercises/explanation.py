"""Self-checks for the chapter "Attention is not explanation".

Two exercises, each with a reference solution and a check:

* :func:`solution_rollout`, :func:`check_rollout` -- attention rollout (Abnar & Zuidema, 2020):
  average the heads, mix in the identity for the residual connection, renormalise the rows,
  multiply through the layers;
* :func:`solution_zero_heads`, :func:`check_zero_heads` -- the heart of a head-ablation hook:
  given the heads' outputs side by side, ``(N, L, H*E)``, return a copy with chosen heads' slices
  set to zero.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). When a wrong answer matches a classic mistake (no residual, the layers multiplied in
the wrong order, rows not renormalised, heads taken as interleaved features...), the message names
it.

Shape legend (see the notation page): N batch, H heads, L length, E size per head; ``layers`` is
the number of layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .._checks import shape
from . import call_answer, cases_generator, passed
from ._compare import ExerciseError, diagnose, expect_close

__all__ = ["solution_rollout", "check_rollout", "solution_zero_heads", "check_zero_heads"]


# --- exercise 1: attention rollout ----------------------------------------------------------------


def solution_rollout(attentions: torch.Tensor) -> torch.Tensor:
    """Exercise 1's reference solution: attention rollout with the heads averaged.

    Args:
        attentions: ``(layers, N, H, L, L)``, first layer first.

    Returns:
        ``(N, L, L)``: the product of every layer's ``0.5 * mean_h(A) + 0.5 * I`` (rows
        renormalised), later layers on the left; every row sums to 1.
    """
    A = attentions.mean(dim=2)  # (layers, N, L, L): heads averaged
    A = 0.5 * A + 0.5 * torch.eye(A.size(-1), device=A.device)  # (layers, N, L, L)
    A = A / A.sum(dim=-1, keepdim=True)  # (layers, N, L, L): rows sum to 1
    R = A[0]  # (N, L, L)
    for layer in range(1, A.size(0)):
        R = A[layer] @ R  # (N, L, L): later layers on the left
    return R


def _mix(attentions: torch.Tensor, fusion: str = "mean", residual: float = 0.5) -> torch.Tensor:
    fused = attentions.mean(2) if fusion == "mean" else attentions.amax(2)  # (layers, N, L, L)
    eye = torch.eye(fused.size(-1), dtype=fused.dtype)  # (L, L)
    mixed = (1 - residual) * fused + residual * eye  # (layers, N, L, L)
    return mixed / mixed.sum(-1, keepdim=True)  # (layers, N, L, L)


def _product(mats: torch.Tensor, later_on_left: bool = True) -> torch.Tensor:
    out = mats[0]  # (N, L, L)
    for m in mats[1:]:
        out = m @ out if later_on_left else out @ m  # (N, L, L)
    return out


def _rollout_cases() -> list[tuple[str, torch.Tensor]]:
    layer1 = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [1.0, 0.0]]])  # (H, L, L)
    layer2 = torch.tensor([[[0.5, 0.5], [0.0, 1.0]], [[0.5, 0.5], [0.0, 1.0]]])  # (H, L, L)
    hand = torch.stack([layer1, layer2])[:, None]  # (layers=2, N=1, H=2, L=2, L=2)
    g = cases_generator(11)
    scores = torch.randn(3, 2, 4, 5, 5, generator=g) * 2  # (layers, N, H, L, L)
    return [
        ("2 layers, 2 heads, 2 tokens (the chapter's hand example)", hand),
        ("3 layers, N = 2 sentences, 4 heads, 5 tokens", torch.softmax(scores, dim=-1)),
    ]


def check_rollout(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(attentions) -> rollout``: attention rollout with averaged heads.

    ``attentions`` has shape ``(layers, N, H, L, L)`` (first layer first); the answer must
    return ``(N, L, L)``: for every layer, average the heads, compute ``0.5 * A + 0.5 * I``,
    divide each row by its sum, and multiply the layers' matrices with later layers on the left.
    """
    cases = _rollout_cases()
    for what, attentions in cases:
        n_layers, N, H, L, _ = attentions.shape
        mixed = _mix(attentions)  # (layers, N, L, L)
        expected = solution_rollout(attentions)  # (N, L, L)
        got = call_answer(fn, what, attentions)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            hints = {
                (N, H, L, L): "one matrix per head: average over the heads (dim=2) first",
                (n_layers, N, L, L): "one matrix per layer: multiply them into one rollout",
                (n_layers, N, H, L, L): "the attentions unchanged: average the heads, add the "
                "identity, renormalise, multiply through the layers",
            }
            hint = hints.get(tuple(got.shape))
            message = f"{what}: expected shape {shape(expected)}, got shape {shape(got)}"
            raise ExerciseError(message + (f": that is {hint}" if hint else ""))
        diagnose(
            got,
            [
                (
                    _product(attentions.mean(2)),
                    "this is the product of the raw head-averaged weights: add the identity for "
                    "the residual connection first (0.5 * A + 0.5 * I), or every token's own "
                    "path through the skip connections is lost",
                ),
                (
                    _product(mixed, later_on_left=False),
                    "the layers are multiplied in the wrong order: the later layer goes on the "
                    "left, R = A_l @ R (a layer reads the mixture the earlier layers made)",
                ),
                (
                    _product(attentions.mean(2) + torch.eye(L)),
                    f"each row sums to {2 ** n_layers}, not 1: after adding the identity, "
                    "divide each row by its sum (or use 0.5 * A + 0.5 * I)",
                ),
                (
                    mixed[-1],
                    "this is the last layer alone: multiply the layers' matrices together",
                ),
                (
                    _product(_mix(attentions, fusion="max")),
                    "the heads were fused with their maximum: the paper averages them (mean "
                    "over dim=2)",
                ),
            ],
            what,
            expected=expected,
        )
        expect_close(got, expected, what=what, atol=1e-5)
    passed(
        f"your rollout matches on {len(cases)} cases, including the hand example; every row "
        "sums to 1."
    )


# --- exercise 2: zero chosen heads ----------------------------------------------------------------


def solution_zero_heads(x: torch.Tensor, heads: Sequence[int], num_heads: int) -> torch.Tensor:
    """Exercise 2's reference solution: a copy of the heads' outputs with chosen heads zeroed.

    Args:
        x: ``(N, L, H*E)``, the heads' outputs side by side, head ``h`` in features ``h*E`` to
            ``(h+1)*E - 1``; left unchanged.
        heads: the heads to zero.
        num_heads: ``H``.

    Returns:
        ``(N, L, H*E)``: ``x`` with the listed heads' features set to 0.
    """
    N, L, D = x.shape
    y = x.view(N, L, num_heads, D // num_heads).clone()  # (N, L, H, E)
    y[:, :, heads, :] = 0.0
    return y.view(N, L, D)  # (N, L, H*E)


def _zero_interleaved(x: torch.Tensor, heads: Sequence[int], num_heads: int) -> torch.Tensor:
    E = x.size(-1) // num_heads
    y = x.view(*x.shape[:-1], E, num_heads).clone()  # (N, L, E, H): the wrong layout
    y[..., list(heads)] = 0.0
    return y.flatten(-2)  # (N, L, H*E)


def check_zero_heads(fn: Callable[[torch.Tensor, list[int], int], torch.Tensor]) -> None:
    """Check ``fn(x, heads, num_heads) -> y``: zero chosen heads' slices of ``(N, L, H*E)``.

    ``x`` is what a multi-head attention passes to its output projection: the H heads' outputs
    side by side, head ``h`` in features ``h*E`` to ``(h+1)*E - 1``. The answer returns a new
    tensor equal to ``x`` except that the listed heads' features are 0, and leaves ``x`` as it was.
    """
    g = cases_generator(12)
    x = torch.randn(2, 3, 12, generator=g)  # (N, L, H*E) with H = 4, E = 3
    cases = [
        ("x (2, 3, 12), num_heads 4, heads [1]", x, [1], 4),
        ("x (2, 3, 12), num_heads 4, heads [0, 3]", x, [0, 3], 4),
        ("x (2, 3, 12), num_heads 6, heads [5]", x, [5], 6),
        ("x (2, 3, 12), num_heads 4, heads [] (nothing to zero)", x, [], 4),
    ]
    for what, inp, heads, H in cases:
        expected = solution_zero_heads(inp, heads, H)
        got = call_answer(lambda t, hs=heads, n=H: fn(t, list(hs), n), what, inp)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            raise ExerciseError(
                f"{what}: expected shape {shape(expected)} (the same as x), got shape "
                f"{shape(got)}: keep the heads side by side, (N, L, H*E)"
            )
        E = inp.size(-1) // H
        others = [h for h in range(H) if h not in heads]
        mistakes = [
            (
                _zero_interleaved(inp, heads, H),
                "the zeros landed on every H-th feature: the heads are not interleaved; head h "
                f"is one block of E = {E} features, x[..., h*E:(h+1)*E] (view as (N, L, H, E), "
                "not (N, L, E, H))",
            ),
            (
                solution_zero_heads(inp, others, H),
                "the chosen heads were kept and all the other heads zeroed: zero only the "
                "listed heads",
            ),
        ]
        if heads and max(heads) + 1 < H:
            mistakes.append(
                (
                    solution_zero_heads(inp, [h + 1 for h in heads], H),
                    "the zeros are one head too far: head h starts at feature h*E (heads count "
                    "from 0)",
                )
            )
        if heads:
            diagnose(got, mistakes, what, expected=expected)
        expect_close(got, expected, what=what, atol=0.0, rtol=0.0)
    passed(
        f"your function zeroes exactly the chosen heads' slices on {len(cases)} cases and leaves "
        "its input alone."
    )
