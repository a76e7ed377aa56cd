"""Self-checks for the chapter "Positions and the Transformer block".

Five exercises, each with a reference solution and a check:

* :func:`solution_sinusoidal_encoding`, :func:`check_sinusoidal_encoding` -- the sinusoidal
  position table of Vaswani et al. (2017), without a Python loop;
* :func:`solution_rope`, :func:`check_rope` -- rotary position embeddings in the rotate-half
  layout;
* :func:`solution_pre_norm_block`, :func:`check_pre_norm_block` -- one pre-norm encoder block,
  written from a layer's parts (calling the layer itself is refused);
* :func:`solution_predict_unchanged`, :func:`check_predict_unchanged` -- a prediction, made
  before running anything: which outputs of a position-free stack survive swapping the first two
  tokens, with and without a causal mask.
* :func:`solution_ntk_frequencies`, :func:`check_ntk_frequencies` -- RoPE's frequencies under
  NTK-aware scaling (the base raised so that the fastest pair is kept and the slowest one is
  interpolated).

Each check is decorated with :func:`~attnlib.exercises.checks`: an unfilled template (a body of
``...``) runs the reference solution instead, so the chapter executes top to bottom.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). When a wrong answer matches a classic mistake (sines and cosines in two halves, the
exponent i/D instead of 2i/D, neighbouring pairs instead of halves, the post-norm order, a missing
residual...), the message names that mistake.

Shape legend (see the notation page): N batch, H heads, L length, E size per head, D model size.
"""

from __future__ import annotations

import dis
import types
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from ..layers import TransformerEncoderLayer
from . import call_answer, cases_generator, checks, passed
from ._compare import ExerciseError, diagnose, expect_close, expect_tensor

__all__ = [
    "solution_sinusoidal_encoding",
    "check_sinusoidal_encoding",
    "solution_rope",
    "check_rope",
    "solution_pre_norm_block",
    "check_pre_norm_block",
    "solution_predict_unchanged",
    "check_predict_unchanged",
    "solution_ntk_frequencies",
    "check_ntk_frequencies",
]


def _diagnose(got, expected: torch.Tensor, mistakes, what: str) -> None:
    """:func:`~attnlib.exercises.diagnose` with a loose match (1e-2).

    A wrong formula evaluated in float32 at large angles drifts from its float64 twin, while
    every mistake listed is far (> 0.05) from the right answer; a mistake that gives the right
    answer on this case (e.g. ignoring positions that happen to be 0, 1, 2, ...) is skipped.
    """
    diagnose(got, mistakes, what, expected=expected, tol=1e-2, distinct_tol=5e-2)


# ------------------------------------------------------------------------------------------------
# Exercise 1: the sinusoidal table
# ------------------------------------------------------------------------------------------------


def _table(length: int, dim: int, exponent_scale: float = 2.0, layout: str = "interleaved",
           swap: bool = False, multiply: bool = False) -> torch.Tensor:
    """Sinusoidal tables right and wrong, in float64."""
    positions = torch.arange(length, dtype=torch.float64)[:, None]  # (L, 1)
    i = torch.arange(dim // 2, dtype=torch.float64)  # (D/2,)
    scale = 10000.0 ** (exponent_scale * i / dim)  # (D/2,)
    angles = positions * scale if multiply else positions / scale  # (L, D/2)
    first, second = (angles.cos(), angles.sin()) if swap else (angles.sin(), angles.cos())
    if layout == "halves":
        return torch.cat((first, second), dim=-1)  # (L, D)
    return torch.stack((first, second), dim=-1).reshape(length, dim)  # (L, D)


def solution_sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """Exercise 1's reference solution: the sinusoidal position table, without a Python loop.

    Args:
        length: ``L``, the number of positions.
        dim: ``D``, even.

    Returns:
        ``(L, D)``: ``sin(p / 10000^(2i/D))`` in column ``2i``, ``cos`` of the same angle in
        column ``2i + 1``.
    """
    positions = torch.arange(length, dtype=torch.float32)[:, None]  # (L, 1)
    freqs = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (D/2,)
    angles = positions * freqs  # (L, D/2): one angle per position and pair
    pe = torch.zeros(length, dim)  # (L, D)
    pe[:, 0::2] = angles.sin()  # even columns: sines
    pe[:, 1::2] = angles.cos()  # odd columns: cosines
    return pe


_LOOP_OPCODES = {"FOR_ITER", "JUMP_ABSOLUTE"}  # plus every backward jump (3.11+: *BACKWARD*)


def _python_loop_in(fn: Callable) -> bool:
    """True when ``fn``'s own code (or a comprehension, lambda or function defined inside it) has
    a ``for`` or ``while`` loop: the bytecode jumps backwards or iterates."""
    code = getattr(fn, "__code__", None)
    stack = [code] if code is not None else []
    while stack:
        c = stack.pop()
        if any(ins.opname in _LOOP_OPCODES or "BACKWARD" in ins.opname
               for ins in dis.get_instructions(c)):
            return True
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return False


def _count_ops(fn: Callable, *args) -> tuple[object, int]:
    """``(fn(*args), how many ATen operators it ran)``: a loop-free answer runs the same number
    of operators for every size; a loop over positions or pairs runs more for larger tables."""
    from torch.utils._python_dispatch import TorchDispatchMode

    count = 0

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types=(), args=(), kwargs=None):
            nonlocal count
            count += 1
            return func(*args, **(kwargs or {}))

    with _Count():
        result = fn(*args)
    return result, count


_NO_LOOP = (
    "the exercise asks for the table without a Python loop: build every angle at once, "
    "positions (L, 1) times frequencies (D/2,) broadcast to (L, D/2), then fill the even "
    "columns with pe[:, 0::2] = ... and the odd ones with pe[:, 1::2] = ..."
)


@checks(solution_sinusoidal_encoding)
def check_sinusoidal_encoding(fn: Callable[[int, int], torch.Tensor]) -> None:
    r"""Check the sinusoidal position encoding of "Attention is all you need", built without a
    Python loop.

    The answer is called as ``fn(length, dim)`` for a few sizes and must return the ``(L, D)``
    table with :math:`PE_{p,2i} = \sin(p / 10000^{2i/D})` in the even columns and
    :math:`PE_{p,2i+1} = \cos(p / 10000^{2i/D})` in the odd ones. A ``for`` or ``while`` loop (or
    a comprehension) in the answer is refused, and so is an answer whose number of tensor
    operations grows with the size of the table (a loop hidden in a helper).

    Args:
        fn: takes ``length`` (L) and an even ``dim`` (D), returns a floating tensor ``(L, D)``.

    Raises:
        ExerciseError: on a Python loop, a wrong type, shape or value, or when the function
            crashes.

    See the chapter's exercises.
    """
    if _python_loop_in(fn):
        raise ExerciseError(f"`{getattr(fn, '__name__', 'fn')}` contains a Python loop (for, "
                            f"while or a comprehension); {_NO_LOOP}")
    cases = [(4, 6), (1, 2), (50, 16), (12, 128)]
    op_counts = {}
    for length, dim in cases:
        what = f"fn(length={length}, dim={dim})"
        try:
            got, op_counts[length, dim] = _count_ops(fn, length, dim)
        except Exception as err:  # the learner's code failed: say on which case
            raise ExerciseError(
                f"{what}: your function raised {type(err).__name__}: {err}"
            ) from err
        expected = solution_sinusoidal_encoding(length, dim)  # (L, D)
        hint = ""
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (dim, length) and dim != length:
            hint = ": rows are positions and columns are dimensions, so the shape is (L, D)"
        expect_tensor(got, expected, what=what, hint=hint)
        if not got.is_floating_point():
            raise ExerciseError(f"{what}: expected a floating tensor, got dtype {got.dtype}")
        _diagnose(got, expected, [
            (
                _table(length, dim, layout="halves"),
                "the sines fill the first half of the columns and the cosines the second; that "
                "layout works in a model too (it is a fixed permutation of the columns), but the "
                "paper's, asked for here, interleaves them: sin in columns 0, 2, 4, ..., cos in "
                "columns 1, 3, 5, ...",
            ),
            (
                _table(length, dim, swap=True),
                "sin and cos are swapped: the even columns hold the sines (position 0 gives "
                "0, 1, 0, 1, ...)",
            ),
            (
                _table(length, dim, exponent_scale=1.0),
                "the exponent is i/D; it is 2i/D for pair i (columns 2i and 2i+1), so that the "
                "wavelengths run from 2 pi up to 10000 * 2 pi across the whole table",
            ),
            (
                _table(length, dim, multiply=True),
                "the positions are multiplied by 10000^(2i/D); divide by it, so that the later "
                "pairs turn more slowly",
            ),
        ], what)
        expect_close(got, expected.to(got.dtype), what=what)
    smallest, largest = op_counts[1, 2], max(op_counts.values())
    if largest > 2 * smallest + 10:
        big = max(op_counts, key=op_counts.get)
        raise ExerciseError(
            f"fn(length={big[0]}, dim={big[1]}) ran {largest} tensor operations and "
            f"fn(length=1, dim=2) only {smallest}: the work is done in a loop (perhaps inside a "
            f"helper), one step per position or pair; {_NO_LOOP}"
        )
    passed(
        f"the sinusoidal table matches on {len(cases)} sizes, up to L = 50 and D = 128, sines "
        "and cosines interleaved, with the same few tensor operations for every size (no loop)."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: rotary embeddings
# ------------------------------------------------------------------------------------------------


def _rope_variant(x: torch.Tensor, positions: torch.Tensor, *, layout: str = "half",
                  sign: float = 1.0, exponent_scale: float = 2.0) -> torch.Tensor:
    E = x.size(-1)
    freqs = 10000.0 ** (-exponent_scale * torch.arange(E // 2, dtype=torch.float64) / E)
    angles = positions.double()[:, None] * freqs  # (L, E/2)
    cos, sin = angles.cos(), sign * angles.sin()
    xd = x.double()
    if layout == "interleaved":
        a, b = xd[..., 0::2], xd[..., 1::2]
        out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
        return out.flatten(-2).to(x.dtype)
    a, b = xd[..., : E // 2], xd[..., E // 2 :]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1).to(x.dtype)


def solution_rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Exercise 2's reference solution: rotary embeddings in the rotate-half layout.

    Args:
        x: queries or keys ``(N, H, L, E)``, ``E`` even.
        positions: ``(L,)`` integers, the position of each token (not necessarily from 0).

    Returns:
        ``(N, H, L, E)``: pair ``i``, dimensions ``i`` and ``i + E/2``, turned by the angle
        ``p * 10000^(-2i/E)``.
    """
    E = x.size(-1)
    freqs = 10000.0 ** (-torch.arange(0, E, 2, dtype=torch.float32) / E)  # (E/2,)
    angles = positions[:, None].float() * freqs  # (L, E/2)
    cos, sin = angles.cos(), angles.sin()  # (L, E/2) each
    a, b = x[..., : E // 2], x[..., E // 2 :]  # (N, H, L, E/2) each: pair i is (a_i, b_i)
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)  # (N, H, L, E)


@checks(solution_rope)
def check_rope(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check rotary position embeddings in the rotate-half layout (base 10000).

    The answer is called as ``fn(x, positions)`` with ``x`` ``(N, H, L, E)`` and ``positions``
    ``(L,)`` (integers, not always starting at 0). Dimension ``i`` and ``i + E/2`` form pair
    ``i``, turned counter-clockwise by the angle ``positions[l] * 10000 ** (-2i / E)``.

    Args:
        fn: takes ``x`` ``(N, H, L, E)`` (E even) and ``positions`` ``(L,)``, returns the rotated
            ``(N, H, L, E)`` without changing ``x`` in place.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter's exercises.
    """
    g = cases_generator(7)
    cases = [
        ("x (1, 1, 3, 4), positions [0, 1, 2]", torch.randn(1, 1, 3, 4, generator=g),
         torch.arange(3)),
        ("x (2, 3, 5, 8), positions [7, ..., 11]", torch.randn(2, 3, 5, 8, generator=g),
         torch.arange(5) + 7),
        ("x (1, 2, 6, 32), positions [100, 3, 0, 1, 50, 9]", torch.randn(1, 2, 6, 32, generator=g),
         torch.tensor([100, 3, 0, 1, 50, 9])),
    ]
    for what, x, positions in cases:
        got = call_answer(fn, what, x, positions)
        expected = solution_rope(x, positions)
        expect_tensor(got, expected, what=what)
        _diagnose(got, expected, [
            (
                _rope_variant(x, positions, layout="interleaved"),
                "the pairs are neighbours (0, 1), (2, 3), ...: that is the RoPE paper's layout; "
                "here pair i is (i, i + E/2), Hugging Face Llama's rotate-half layout",
            ),
            (
                _rope_variant(x, positions, sign=-1.0),
                "the rotation goes the wrong way (by -m theta): the first half becomes "
                "a cos - b sin and the second a sin + b cos",
            ),
            (
                _rope_variant(x, positions, exponent_scale=1.0),
                "the frequencies use the exponent i/E; pair i turns at 10000^(-2i/E)",
            ),
            (
                solution_rope(x, torch.arange(x.size(-2))),
                "the result ignores `positions` (it uses 0, 1, 2, ...): rotate token l by "
                "positions[l] times each frequency",
            ),
        ], what)
        expect_close(got, expected, what=what)
    passed(
        f"RoPE matches on {len(cases)} cases, including positions that do not start at 0 and a "
        "head size of 32."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 3: a pre-norm block by hand
# ------------------------------------------------------------------------------------------------


def _attn(layer: TransformerEncoderLayer, h: torch.Tensor) -> torch.Tensor:
    return layer.self_attn(h, h, h, need_weights=False)[0]  # (N, L, D)


def _mlp(layer: TransformerEncoderLayer, h: torch.Tensor, act=True) -> torch.Tensor:
    hidden = layer.linear1(h)  # (N, L, dim_feedforward)
    return layer.linear2(layer.activation(hidden) if act else hidden)  # (N, L, D)


def _block_variants(
    layer: TransformerEncoderLayer, x: torch.Tensor
) -> list[tuple[torch.Tensor, str]]:
    n1, n2 = layer.norm1, layer.norm2
    post = n1(x + _attn(layer, x))
    post = n2(post + _mlp(layer, post))
    no_res_attn = _attn(layer, n1(x))
    no_res_attn = no_res_attn + _mlp(layer, n2(no_res_attn))
    no_res_mlp = x + _attn(layer, n1(x))
    no_res_mlp = _mlp(layer, n2(no_res_mlp))
    pre = x + _attn(layer, n1(x))
    pre = pre + _mlp(layer, n2(pre))
    normed_stream = n1(x) + _attn(layer, n1(x))
    normed_stream = n2(normed_stream) + _mlp(layer, n2(normed_stream))
    no_act = x + _attn(layer, n1(x))
    no_act = no_act + _mlp(layer, n2(no_act), act=False)
    swapped = x + _attn(layer, n2(x))
    swapped = swapped + _mlp(layer, n1(swapped))
    return [
        (post, "this is the post-norm order (the 2017 paper's): x = norm1(x + attention(x)); "
               "pre-norm normalises the input of each sublayer instead: "
               "x = x + attention(norm1(x))"),
        (no_res_attn, "the attention sublayer has no residual connection: add its input back, "
                      "x = x + attention(norm1(x))"),
        (no_res_mlp, "the MLP sublayer has no residual connection: add its input back, "
                     "x = x + mlp(norm2(x))"),
        (F.layer_norm(pre, (pre.size(-1),)), "the result was normalised once more at the end; "
                                             "a pre-norm block returns the residual stream as is"),
        (normed_stream, "the normalised x was added back to the residual stream; add the "
                        "un-normalised x: x = x + attention(norm1(x))"),
        (no_act, "the MLP has no activation between linear1 and linear2: use layer.activation"),
        (swapped, "norm1 and norm2 are swapped: norm1 goes before the attention, norm2 before "
                  "the MLP"),
    ]


def solution_pre_norm_block(x: torch.Tensor, layer: TransformerEncoderLayer) -> torch.Tensor:
    """Exercise 3's reference solution: one pre-norm encoder block from a layer's parts.

    Args:
        x: ``(N, L, D)``, the residual stream.
        layer: an :class:`attnlib.TransformerEncoderLayer` whose ``norm1``, ``self_attn``,
            ``norm2``, ``linear1``, ``activation`` and ``linear2`` are used.

    Returns:
        ``(N, L, D)``: ``x + attention(norm1(x))``, then ``+ mlp(norm2(.))``; the stream itself is
        never normalised.
    """
    h = layer.norm1(x)  # (N, L, D): normalise the branch's input, not the stream
    x = x + layer.self_attn(h, h, h)[0]  # (N, L, D): residual around attention
    h = layer.norm2(x)
    return x + layer.linear2(layer.activation(layer.linear1(h)))  # (N, L, D): residual around MLP


class _WholeLayerCalled(ExerciseError):
    """Raised inside a check when the answer calls the layer instead of its parts (an
    ExerciseError, so that :func:`~attnlib.exercises.call_answer` lets it through)."""


class _PartsOnlyLayer(TransformerEncoderLayer):
    """The layer the pre-norm check hands out: its parts work, calling the layer does not."""

    def forward(self, *args, **kwargs):
        raise _WholeLayerCalled


@checks(solution_pre_norm_block)
def check_pre_norm_block(
    fn: Callable[[torch.Tensor, TransformerEncoderLayer], torch.Tensor],
) -> None:
    """Check a pre-norm encoder block written from the parts of a layer.

    The answer is called as ``fn(x, layer)``, where ``layer`` is an
    :class:`attnlib.TransformerEncoderLayer` (dropout 0, eval mode) whose parts the answer uses:
    ``layer.self_attn`` (call it as ``layer.self_attn(h, h, h)[0]``), ``layer.norm1``,
    ``layer.norm2``, ``layer.linear1``, ``layer.activation`` and ``layer.linear2``. It must return
    what ``TransformerEncoderLayer(..., norm_first=True)`` computes. Calling the layer itself,
    ``layer(x)``, is refused: the exercise is to wire the parts.

    Args:
        fn: takes ``x`` ``(N, L, D)`` and the layer, returns ``(N, L, D)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter's exercises.
    """
    g = cases_generator(11)
    sizes = [(1, 4, 8, 2, 16, "relu"), (2, 6, 16, 4, 24, "gelu")]
    with torch.random.fork_rng():  # the layers' initial weights; the learner's state is kept
        torch.manual_seed(11)
        layers = []
        for _, _, D, H, ff, act in sizes:
            layer = _PartsOnlyLayer(D, H, ff, dropout=0.0, activation=act,
                                    norm_first=True).eval()
            with torch.no_grad():  # LayerNorms that are not the identity, so each one matters
                for norm in (layer.norm1, layer.norm2):
                    norm.weight.copy_(1.0 + 0.5 * torch.randn(D, generator=g))
                    norm.bias.copy_(0.5 * torch.randn(D, generator=g))
            layers.append(layer)
    for (N, L, D, H, ff, act), layer in zip(sizes, layers, strict=True):
        what = f"x ({N}, {L}, {D}), a layer with {H} heads, dim_feedforward={ff}, {act}"
        x = 2.0 * torch.randn(N, L, D, generator=g) + 1.0
        with torch.no_grad():
            try:
                got = call_answer(lambda t, layer=layer: fn(t, layer), what, x)
            except _WholeLayerCalled:
                raise ExerciseError(
                    f"{what}: your function calls the layer itself (layer(x)), which computes the "
                    "block for you; the exercise is to build it from the layer's parts: "
                    "layer.norm1, layer.self_attn, layer.norm2, layer.linear1, layer.activation "
                    "and layer.linear2"
                ) from None
            expected = solution_pre_norm_block(x, layer)
            expect_tensor(got, expected, what=what)
            _diagnose(got, expected, _block_variants(layer, x), what)
        expect_close(got, expected, what=what)
    passed(
        f"your pre-norm block equals TransformerEncoderLayer(norm_first=True) on {len(sizes)} "
        "layers, with ReLU and with GELU."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 4: predict what survives a swap
# ------------------------------------------------------------------------------------------------


def solution_predict_unchanged(num_layers: int, causal: bool) -> set[int]:
    """Exercise 4's reference prediction: the positions whose output survives the swap.

    Six tokens ``a b c d e f`` and the same tokens with the first two swapped, ``b a c d e f``,
    run through ``num_layers`` self-attention layers without positions, with or without a causal
    mask. Which positions (0 to 5) give the same output vector in both runs?

    Args:
        num_layers: 1 or 2.
        causal: whether the layers use a causal mask.

    Returns:
        The set of unchanged positions.
    """
    # Without a mask every position sees the same set of tokens in both runs, at any depth, and
    # positions 2..5 hold the same token: unchanged. (Positions 0 and 1 trade their outputs.)
    # With a causal mask, position i sees tokens 0..i: for i >= 2 that set is the same, so one
    # layer leaves positions 2..5 unchanged. But positions 0 and 1 now see {b} and {a, b} instead
    # of {a} and {a, b}: their outputs change, and a second layer, which reads them, passes the
    # change on to every position.
    if causal and num_layers >= 2:
        return set()
    return {2, 3, 4, 5}


def _unchanged_positions(num_layers: int, causal: bool) -> set[int]:
    """What the layers actually do: run both orders, compare position by position."""
    D, H, L = 16, 4, 6
    g = cases_generator(12)
    with torch.random.fork_rng():
        torch.manual_seed(12)
        layers = [TransformerEncoderLayer(D, H, 32, dropout=0.0).eval()
                  for _ in range(num_layers)]
    x = torch.randn(1, L, D, generator=g)  # (N, L, D): tokens a b c d e f
    swapped = x[:, [1, 0, 2, 3, 4, 5]]  # b a c d e f
    with torch.no_grad():
        out, out_swapped = x, swapped
        for layer in layers:
            out = layer(out, is_causal=causal)
            out_swapped = layer(out_swapped, is_causal=causal)
    same = (out - out_swapped).abs().amax(dim=-1)[0] < 1e-5  # (L,)
    return {i for i in range(L) if bool(same[i])}


@checks(solution_predict_unchanged)
def check_predict_unchanged(fn: Callable[[int, bool], Iterable[int]]) -> None:
    """Compare the prediction ``fn(num_layers, causal)`` with what the layers do.

    For 1 and 2 layers, without and with a causal mask, the answer names the positions (0 to 5)
    whose output does not change when the first two of six tokens are swapped. The check runs
    :class:`attnlib.TransformerEncoderLayer` stacks (random weights, no positions) on both orders,
    prints what they give, and raises :class:`~attnlib.exercises.ExerciseError` for a wrong
    prediction, saying which one and why.

    Args:
        fn: takes ``num_layers`` (1 or 2) and ``causal`` (bool), returns a set (or any iterable)
            of positions.

    Raises:
        ExerciseError: on a wrong prediction, an answer that is not a collection of positions, or
            when the function crashes.

    See the chapter's exercises.
    """
    settings = [(1, False), (2, False), (1, True), (2, True)]
    truth = {s: _unchanged_positions(*s) for s in settings}
    lines = []
    for (num_layers, causal), actual in truth.items():
        what = f"{num_layers} layer{'s' if num_layers > 1 else ''}, " + (
            "causal mask" if causal else "no mask")
        lines.append(f"  {what}: unchanged at {sorted(actual) or 'no position'}")
        try:
            got = fn(num_layers, causal)
        except Exception as err:
            raise ExerciseError(
                f"fn({num_layers}, {causal}): your function raised {type(err).__name__}: {err}"
            ) from err
        try:
            predicted = {int(p) for p in got}
        except (TypeError, ValueError):
            raise ExerciseError(
                f"fn({num_layers}, {causal}) ({what}): expected a set of positions such as "
                f"{{2, 3}}, got {type(got).__name__}"
            ) from None
        if predicted != actual:
            why = (
                "with a causal mask, position i sees tokens 0..i; which of those sets does the "
                "swap change, and what does a second layer read?"
                if causal else
                "without a mask, every position sees all six tokens whatever their order, so "
                "the swap only moves tokens a and b"
            )
            raise ExerciseError(
                f"{what}: you predicted unchanged outputs at {sorted(predicted)}, the layers "
                f"give {sorted(actual)}; {why}"
            )
    print("What the layers give:\n" + "\n".join(lines))
    passed(
        "all four predictions match: without a mask the stack only moves the swapped tokens, at "
        "any depth; with a causal mask the change at positions 0 and 1 reaches every position "
        "after two layers."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 5: NTK-aware RoPE scaling
# ------------------------------------------------------------------------------------------------


def _plain_frequencies(dim: int, base: float = 10000.0, exponent_scale: float = 2.0):
    return base ** (-exponent_scale * torch.arange(dim // 2, dtype=torch.float64) / dim)  # (E/2,)


def solution_ntk_frequencies(dim: int, scale: float) -> torch.Tensor:
    """Exercise 5's reference solution: RoPE's frequencies under NTK-aware scaling.

    Args:
        dim: the head size E (even).
        scale: s, how many times longer the context becomes.

    Returns:
        ``(E/2,)`` float32: ``theta_i = base'^(-2i/E)`` with ``base' = 10000 * s^(E/(E-2))``, so
        pair 0 keeps the frequency 1 and the last pair turns exactly ``s`` times slower.
    """
    base = 10000.0 * scale ** (dim / (dim - 2))  # the raised base
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (E/2,)


@checks(solution_ntk_frequencies)
def check_ntk_frequencies(fn: Callable[[int, float], torch.Tensor]) -> None:
    """Check RoPE's frequencies under NTK-aware scaling (base 10000).

    The answer is called as ``fn(dim, scale)`` and must return the ``(dim/2,)`` frequencies
    ``base'^(-2i/dim)`` with ``base' = 10000 * scale^(dim/(dim-2))``. Values are compared
    relative to plain RoPE's, since the slow pairs' frequencies are tiny.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter's exercises.
    """
    cases = [(16, 4.0), (128, 4.0), (64, 8.0), (8, 1.0)]
    for dim, scale in cases:
        what = f"dim = {dim}, scale = {scale:g}"
        try:
            got = fn(dim, scale)
        except ExerciseError:
            raise
        except Exception as err:
            message = f"{what}: your function raised {type(err).__name__}: {err}"
            raise ExerciseError(message) from err
        expected = solution_ntk_frequencies(dim, scale)
        expect_tensor(got, expected, what=what)
        plain = _plain_frequencies(dim)
        ratio = got.double() / plain  # how much each pair is slowed down
        mistakes = [
            (
                torch.full_like(plain, 1.0 / scale),
                "every frequency is divided by scale: that is position interpolation; NTK-aware "
                "scaling raises the base instead, so the fastest pair keeps its frequency",
            ),
            (
                _plain_frequencies(dim, 10000.0 * scale) / plain,
                "the base is multiplied by scale alone; raise scale to the power dim / (dim - 2) "
                "first, so that the slowest pair turns exactly scale times slower",
            ),
            (
                _plain_frequencies(dim, 10000.0 * scale ** (dim / (dim - 2)), 1.0) / plain,
                "the frequencies use the exponent i/dim; pair i turns at base'^(-2i/dim)",
            ),
        ]  # the ratios are near 1: a tighter match than the other exercises' _diagnose
        diagnose(ratio, mistakes, what, expected=expected.double() / plain, tol=1e-3,
                 distinct_tol=1e-2)
        expect_close(ratio.float(), (expected.double() / plain).float(), what=what)
    passed(
        f"NTK-aware frequencies match on {len(cases)} cases: pair 0 keeps its frequency and the "
        "last pair turns exactly `scale` times slower."
    )
