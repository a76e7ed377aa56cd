"""Where a token sits: positional encodings (the chapter "Positions and the Transformer block").

Self-attention by itself cannot tell word order: permute the tokens and its output is permuted the
same way, nothing else changes. This module holds the three standard ways of giving a Transformer
the positions back:

* :func:`sinusoidal_encoding` -- the fixed sines and cosines of Vaswani et al. (2017), *added* to
  the token embeddings (and :class:`SinusoidalPositionalEncoding`, the same as a module);
* :class:`LearnedPositionalEmbedding` -- one trained vector per position, added likewise (BERT,
  GPT-2);
* rotary position embeddings, RoPE (Su et al., 2021) -- :func:`rope_frequencies`,
  :func:`rotate_half` and :func:`apply_rope`: nothing is added to the embeddings; instead the
  queries and keys of every head are *rotated* by an angle proportional to their position, so that
  the score :math:`q_m \\cdot k_n` depends on the positions only through :math:`m - n` (Llama,
  SmolLM2).

and the two ways that put positions into the attention scores themselves, as a bias that depends on
the distance between query and key:

* ALiBi (Press et al., 2022) -- :func:`alibi_slopes` and :func:`alibi_causal_bias`: a fixed penalty
  proportional to the distance, one slope per head (see the GPT chapter);
* T5's relative position bias (Raffel et al., 2020) -- :func:`relative_position_bucket` and
  :class:`RelativePositionBias`: a learned scalar per head for each bucket of distances (see the T5
  chapter).

Shape legend (see book/notation.md): N batch, H heads, L query length, S key length, E query/key
size per head, D model size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import positive_int
from .masks import causal_mask

__all__ = [
    "sinusoidal_encoding",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
    "rope_frequencies",
    "rope_cos_sin",
    "rotate_half",
    "apply_rope",
    "alibi_slopes",
    "alibi_causal_bias",
    "relative_position_bucket",
    "RelativePositionBias",
]


def _check_size(name: str, n, *, minimum: int = 0, even: bool = False) -> None:
    positive_int(n, name, minimum=minimum)
    if even and n % 2:
        raise ValueError(
            f"{name} must be even: the dimensions come in (sin, cos) pairs, one pair per "
            f"frequency; got {name} = {n}"
        )


def _check_base(base) -> None:
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 1.0:
        raise ValueError(f"base must be a number > 1, got {base!r}")


def _check_scale(scale) -> None:
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or not scale > 0.0
    ):
        raise ValueError(
            f"scale must be a positive number (the position interpolation factor, 1 for plain "
            f"RoPE), got {scale!r}"
        )


# ------------------------------------------------------------------------------------------------
# Sinusoidal encoding (Vaswani et al., 2017)
# ------------------------------------------------------------------------------------------------


def sinusoidal_encoding(
    length: int,
    dim: int,
    *,
    base: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""The fixed sinusoidal position encoding of "Attention is all you need".

    .. math::
        PE_{p,\,2i} = \sin\!\left(p \,/\, \mathrm{base}^{2i/D}\right), \qquad
        PE_{p,\,2i+1} = \cos\!\left(p \,/\, \mathrm{base}^{2i/D}\right)

    Pair ``i`` of dimensions turns at the angular frequency ``base ** (-2i / D)``: the first pair
    once per ``2 pi`` positions, the last one about ``base`` times more slowly. Sines sit in the
    even columns and cosines in the odd ones, as in the paper. The angles are computed in float64
    and the result cast to ``dtype``, so the table is the same on every device.

    Args:
        length: the number of positions L (rows), positions ``0 .. L - 1``.
        dim: the model size D (columns); must be even.
        base: the wavelength scale (10000 in the paper).
        device: where to put the result.
        dtype: its floating dtype.

    Returns:
        ``(L, D)``: row ``p`` is the vector added to the embedding of the token at position ``p``.

    See the chapter "Positions and the Transformer block", "Sinusoidal encodings".
    """
    _check_size("length", length)
    _check_size("dim", dim, minimum=2, even=True)
    _check_base(base)
    positions = torch.arange(length, dtype=torch.float64)  # (L,)
    freqs = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,)
    angles = positions[:, None] * freqs[None, :]  # (L, D/2)
    pe = torch.stack((angles.sin(), angles.cos()), dim=-1)  # (L, D/2, 2): sin, cos per pair
    return pe.reshape(length, dim).to(device=device, dtype=dtype)  # (L, D), sin/cos interleaved


def _check_sequence(x: torch.Tensor, max_len: int, dim: int, offset: int, who: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 3:
        shape = tuple(getattr(x, "shape", ()))
        raise ValueError(
            f"{who}: expected embeddings x of shape (N, L, D) and a floating dtype, "
            f"got shape {shape}" + (f" and dtype {x.dtype}" if isinstance(x, torch.Tensor) else "")
        )
    if x.size(-1) != dim:
        raise ValueError(
            f"{who}: x has D = {x.size(-1)} features but the encoding has dim = {dim}; "
            f"x has shape {tuple(x.shape)}"
        )
    _check_size("offset", offset)
    if offset + x.size(1) > max_len:
        raise ValueError(
            f"{who}: positions {offset} .. {offset + x.size(1) - 1} are needed but only "
            f"max_len = {max_len} positions exist (x has shape {tuple(x.shape)})"
        )


class SinusoidalPositionalEncoding(nn.Module):
    """Adds :func:`sinusoidal_encoding` to a batch of embeddings (nothing to train).

    Args:
        max_len: the most positions a sequence may have.
        dim: the model size D (even).
        base: as in :func:`sinusoidal_encoding`.

    The table is a non-persistent buffer: it moves with ``.to(device)`` but is not saved in the
    state dict, since it can always be recomputed.

    See the chapter "Positions and the Transformer block", "Sinusoidal encodings".
    """

    def __init__(
        self, max_len: int, dim: int, *, base: float = 10000.0, device=None, dtype=None
    ) -> None:
        super().__init__()
        _check_size("max_len", max_len, minimum=1)
        self.max_len, self.dim = max_len, dim
        table = sinusoidal_encoding(max_len, dim, base=base, dtype=dtype or torch.float32)
        self.register_buffer("table", table.to(device), persistent=False)  # (max_len, D)

    def forward(self, x: torch.Tensor, *, offset: int = 0) -> torch.Tensor:
        """Add the encodings of positions ``offset .. offset + L - 1``.

        Args:
            x: embeddings ``(N, L, D)``.
            offset: the position of the first token (e.g. when decoding one token at a time).

        Returns:
            ``(N, L, D)``: ``x + PE[offset : offset + L]``.
        """
        _check_sequence(x, self.max_len, self.dim, offset, type(self).__name__)
        pe = self.table[offset : offset + x.size(1)]  # (L, D)
        return x + pe.to(x.dtype)  # (N, L, D), broadcast over the batch

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, dim={self.dim}"


# ------------------------------------------------------------------------------------------------
# Learned positions (BERT, GPT-2)
# ------------------------------------------------------------------------------------------------


class LearnedPositionalEmbedding(nn.Module):
    """One trained vector per position, added to the token embeddings (BERT, GPT-2).

    Args:
        max_len: the number of positions it has vectors for; a longer sequence is an error, since
            a position never seen in training has no vector.
        dim: the model size D.
        init_std: the standard deviation of the initial vectors (0.02 as in BERT and GPT-2).

    Attributes:
        weight: ``(max_len, D)``, the learned table (an ``nn.Parameter``).

    See the chapter "Positions and the Transformer block", "Learned positions".
    """

    def __init__(
        self, max_len: int, dim: int, *, init_std: float = 0.02, device=None, dtype=None
    ) -> None:
        super().__init__()
        _check_size("max_len", max_len, minimum=1)
        _check_size("dim", dim, minimum=1)
        self.max_len, self.dim = max_len, dim
        self.weight = nn.Parameter(torch.empty(max_len, dim, device=device, dtype=dtype))
        nn.init.normal_(self.weight, std=init_std)

    def forward(self, x: torch.Tensor, *, offset: int = 0) -> torch.Tensor:
        """Add the vectors of positions ``offset .. offset + L - 1``.

        Args:
            x: embeddings ``(N, L, D)``.
            offset: the position of the first token.

        Returns:
            ``(N, L, D)``: ``x + weight[offset : offset + L]``.
        """
        _check_sequence(x, self.max_len, self.dim, offset, type(self).__name__)
        return x + self.weight[offset : offset + x.size(1)]  # (N, L, D)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, dim={self.dim}"


# ------------------------------------------------------------------------------------------------
# Rotary position embeddings (Su et al., 2021), rotate-half layout (Hugging Face Llama)
# ------------------------------------------------------------------------------------------------


def rope_frequencies(
    dim: int,
    *,
    base: float = 10000.0,
    scale: float = 1.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""The angular frequencies of rotary embeddings, one per pair of dimensions.

    .. math:: \theta_i = \mathrm{base}^{-2i/E} / \mathrm{scale}, \qquad i = 0, \dots, E/2 - 1

    (Hugging Face calls these ``inv_freq``.) The token at position ``m`` has pair ``i`` rotated
    by the angle ``m * theta_i``.

    Args:
        dim: the head size E; must be even.
        base: 10000 in the RoPE paper and Llama 2; SmolLM2 uses 100000.
        scale: position interpolation (Chen et al., 2023; Hugging Face's ``"linear"`` RoPE
            scaling): every frequency divided by ``scale``, so position ``scale * m`` gets the
            angles that position ``m`` had and a model trained on L positions reads
            ``scale * L`` without meeting a new angle. 1 (the default) is plain RoPE.
        device: where to put the result.

    Returns:
        ``(E/2,)`` float32, from ``1 / scale`` down to about ``1 / (base * scale)``.

    See the chapter "Positions and the Transformer block", "Rotary embeddings" and "Positions
    in causal models".
    """
    _check_size("dim", dim, minimum=2, even=True)
    _check_base(base)
    _check_scale(scale)
    # The same float32 arithmetic as transformers' LlamaRotaryEmbedding.
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim  # (E/2,)
    freqs = 1.0 / (base**exponents)  # (E/2,)
    if scale != 1.0:
        freqs = freqs / scale  # (E/2,): positions interpolated into the trained range
    return freqs.to(device)  # (E/2,)


def _positions(positions, L: int, device: torch.device) -> torch.Tensor:
    if positions is None:
        return torch.arange(L, device=device)  # (L,)
    if not isinstance(positions, torch.Tensor):
        positions = torch.as_tensor(positions)
    if positions.dtype == torch.bool or positions.is_complex():
        raise TypeError(f"positions must be integers or floats, got dtype {positions.dtype}")
    if positions.dim() not in (1, 2) or positions.size(-1) != L:
        raise ValueError(
            f"positions must have shape (L,) or (N, L) with L = {L}, the length of x, got shape "
            f"{tuple(positions.shape)}"
        )
    return positions.to(device)


def rope_cos_sin(
    positions: torch.Tensor,
    dim: int,
    *,
    base: float = 10000.0,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cosines and sines that :func:`apply_rope` multiplies by, in the rotate-half layout.

    Args:
        positions: ``(L,)`` or ``(N, L)``, the position of each token (ints or floats).
        dim: the head size E (even).
        base: as in :func:`rope_frequencies`.
        scale: as in :func:`rope_frequencies` (position interpolation; 1 for plain RoPE).

    Returns:
        ``(cos, sin)``, each ``(..., L, E)`` float32 with the leading dimensions of ``positions``:
        column ``j`` holds the angle of pair ``j mod E/2``, i.e. the angles repeated twice, as in
        Hugging Face's Llama (``emb = cat(freqs, freqs)``).
    """
    freqs = rope_frequencies(dim, base=base, scale=scale, device=positions.device)  # (E/2,)
    angles = positions[..., None].float() * freqs  # (..., L, E/2)
    angles = torch.cat((angles, angles), dim=-1)  # (..., L, E): pair i is (i, i + E/2)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Map each pair ``(x_i, x_{i+E/2})`` to ``(-x_{i+E/2}, x_i)``: a quarter turn of every pair.

    Args:
        x: ``(..., E)`` with E even.

    Returns:
        ``(..., E)``: ``cat(-second_half, first_half)``.
    """
    first, second = x.chunk(2, dim=-1)  # (..., E/2) each
    return torch.cat((-second, first), dim=-1)  # (..., E)


def apply_rope(
    x: torch.Tensor,
    positions: torch.Tensor | None = None,
    *,
    base: float = 10000.0,
    scale: float = 1.0,
) -> torch.Tensor:
    r"""Rotate queries or keys by their positions: rotary position embeddings (RoPE).

    Dimension ``i`` and dimension ``i + E/2`` form a pair (the *rotate-half* layout of Hugging
    Face's Llama; the RoPE paper pairs neighbours ``2i, 2i + 1`` instead, which is the same thing
    after a fixed permutation of the features). The pair of the token at position ``m`` is turned
    by the angle ``m * theta_i`` (:func:`rope_frequencies`):

    .. math:: \begin{pmatrix} x'_i \\ x'_{i+E/2} \end{pmatrix} =
              \begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\
                              \sin m\theta_i & \cos m\theta_i \end{pmatrix}
              \begin{pmatrix} x_i \\ x_{i+E/2} \end{pmatrix}

    Rotations keep lengths and compose by adding angles, so for a query rotated to position ``m``
    and a key rotated to position ``n`` the dot product depends on ``m - n`` only:
    ``R_m q . R_n k = q . R_{n-m} k``. Apply it to the queries and keys of every head, after the
    projections and before the scores; never to the values.

    Args:
        x: queries or keys ``(N, H, L, E)`` (any ``(..., L, E)`` works), E even.
        positions: the position of each of the L tokens: ``(L,)`` shared by the batch, or
            ``(N, L)`` (e.g. left-padded batches); ints or floats. Defaults to ``0 .. L - 1``.
            With a KV cache, pass the true positions of the new tokens.
        base: as in :func:`rope_frequencies` (SmolLM2: 100000).
        scale: position interpolation, as in :func:`rope_frequencies`: position ``scale * m``
            is rotated as position ``m`` is without it. 1 (the default) is plain RoPE.

    Returns:
        ``(N, H, L, E)``, the same shape and dtype as ``x``. The angles are computed in float32.

    See the chapter "Positions and the Transformer block", "Rotary embeddings".
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        shape = tuple(getattr(x, "shape", ()))
        raise ValueError(
            f"apply_rope: x must be a floating tensor (N, H, L, E), got shape {shape}"
        )
    L, E = x.size(-2), x.size(-1)
    if E % 2:
        raise ValueError(
            f"apply_rope: the head size E must be even (dimensions are rotated in pairs), got x "
            f"of shape {tuple(x.shape)}"
        )
    pos = _positions(positions, L, x.device)  # (L,) or (N, L)
    cos, sin = rope_cos_sin(pos, E, base=base, scale=scale)  # (L, E) or (N, L, E)
    if pos.dim() == 2:
        if x.dim() != 4 or x.size(0) != pos.size(0):
            raise ValueError(
                f"apply_rope: positions of shape {tuple(pos.shape)} (N, L) need x of shape "
                f"(N, H, L, E) with the same N, got {tuple(x.shape)}"
            )
        cos, sin = cos[:, None], sin[:, None]  # (N, 1, L, E): the same angles for every head
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin  # (N, H, L, E)



# ------------------------------------------------------------------------------------------------
# ALiBi: attention with linear biases (Press et al., 2022)
# ------------------------------------------------------------------------------------------------


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes: a geometric sequence ``2^(-8/H), 2^(-16/H), ..., 2^(-8)``.

    Head ``h`` subtracts ``slope[h] * distance`` from each score, so some heads look far back
    (small slope) and others mostly at the last few positions (large slope).

    Args:
        num_heads: H.

    Returns:
        ``(H,)`` float32.

    See the GPT chapter, "ALiBi".
    """
    positive_int(num_heads, "num_heads", "alibi_slopes")
    H = num_heads
    return 2.0 ** (-8.0 * torch.arange(1, H + 1, dtype=torch.float32) / H)  # (H,)


def alibi_causal_bias(
    slopes: torch.Tensor,
    L: int,
    past_length: int = 0,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A float attention mask: ``-slope * distance`` to earlier keys, ``-inf`` to later ones.

    Attention with Linear Biases replaces position embeddings by this penalty on the scores. It
    depends on the distance ``i - j`` only, so a model trained on short windows can read longer
    ones. The forbidden (future) keys are those of :func:`attnlib.masks.causal_mask` with the same
    ``past_length``.

    Args:
        slopes: ``(H,)`` from :func:`alibi_slopes`.
        L: the number of new queries (at positions ``past_length .. past_length + L - 1``).
        past_length: how many positions are already cached.
        device: where to build the bias.

    Returns:
        ``(H, L, S)`` float32, S = past_length + L; added to the scores ``(N, H, L, S)``.
    """
    allowed = causal_mask(L, past_length=past_length, device=device)  # (L, S)
    queries = torch.arange(past_length, past_length + L, device=device)  # (L,)
    keys = torch.arange(past_length + L, device=device)  # (S,)
    distance = (queries[:, None] - keys[None, :]).float()  # (L, S), >= 0 where allowed
    bias = -slopes.to(device)[:, None, None] * distance  # (H, L, S)
    return bias.masked_fill(~allowed, float("-inf"))  # (H, L, S): the future is forbidden


# ------------------------------------------------------------------------------------------------
# T5's relative position bias (Raffel et al., 2020)
# ------------------------------------------------------------------------------------------------


def _check_buckets(num_buckets, max_distance, bidirectional: bool) -> None:
    positive_int(num_buckets, "num_buckets", minimum=2)
    positive_int(max_distance, "max_distance")
    if bidirectional and num_buckets % 2:
        raise ValueError(
            f"num_buckets must be even when bidirectional (half for keys on the left, half for "
            f"keys on the right), got {num_buckets}"
        )
    per_side = num_buckets // 2 if bidirectional else num_buckets
    if per_side < 2:
        raise ValueError(
            f"num_buckets={num_buckets} leaves {per_side} bucket per direction; need at least 2 "
            f"(one exact, one logarithmic)"
        )
    max_exact = per_side // 2
    if max_distance <= max_exact:
        raise ValueError(
            f"max_distance must exceed the {max_exact} distances that get a bucket each "
            f"(num_buckets={num_buckets}, bidirectional={bidirectional}), got {max_distance}"
        )


def relative_position_bucket(
    relative_position: torch.Tensor,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """T5's bucket of each relative position ``j - i`` (key position minus query position).

    Small distances get a bucket each; larger ones share buckets whose width grows
    logarithmically up to ``max_distance``; everything farther falls into the last bucket. With
    ``bidirectional=True`` (the encoder) the first half of the buckets is for keys at or to the
    left of the query (``j - i <= 0``) and the second half for keys to its right; with
    ``bidirectional=False`` (the decoder, which never sees the right) every key to the right
    shares bucket 0 with the query itself. The arithmetic, float32 logarithms included, is the
    reference implementation's (Mesh TensorFlow, reproduced in Hugging Face ``transformers``), so
    the same positions land in the same buckets.

    Args:
        relative_position: integer tensor of any shape, ``j - i``.
        bidirectional: whether keys to the right get their own buckets.
        num_buckets: number of buckets (T5: 32).
        max_distance: distances from this one on share the last bucket of their side (T5: 128).

    Returns:
        A long tensor of bucket ids in ``[0, num_buckets)``, the shape of ``relative_position``.

    See the T5 chapter, "Relative position bias".
    """
    if (
        not isinstance(relative_position, torch.Tensor)
        or relative_position.is_floating_point()
        or relative_position.dtype == torch.bool
    ):
        raise TypeError(
            "relative_position must be an integer tensor of distances j - i, got "
            f"{getattr(relative_position, 'dtype', type(relative_position).__name__)}"
        )
    _check_buckets(num_buckets, max_distance, bidirectional)
    relative_position = relative_position.long()
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets  # right half
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # keys to the right count as distance 0
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # Distances max_exact .. max_distance share num_buckets - max_exact logarithmic buckets.
    log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
    if_large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    if_large = if_large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, if_large)


class RelativePositionBias(nn.Module):
    """A learned scalar per head for each bucket of relative positions, added to the scores.

    Args:
        num_heads: H.
        bidirectional: True for an encoder's self-attention, False for a decoder's.
        num_buckets: number of buckets (T5: 32).
        max_distance: where the buckets stop growing (T5: 128).

    Attributes:
        embedding: ``nn.Embedding(num_buckets, H)``, the learned table.

    See the T5 chapter, "Relative position bias".
    """

    def __init__(
        self,
        num_heads: int,
        *,
        bidirectional: bool,
        num_buckets: int = 32,
        max_distance: int = 128,
    ) -> None:
        super().__init__()
        positive_int(num_heads, "num_heads", "RelativePositionBias")
        _check_buckets(num_buckets, max_distance, bidirectional)
        self.num_heads = num_heads
        self.bidirectional = bidirectional
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)  # (buckets, H)

    def buckets(self, relative_position: torch.Tensor) -> torch.Tensor:
        """:func:`relative_position_bucket` with this module's settings."""
        return relative_position_bucket(
            relative_position,
            bidirectional=self.bidirectional,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )

    def by_distance(self, relative_position: torch.Tensor) -> torch.Tensor:
        """The bias of each head at the given distances ``j - i``: ``(K,) -> (H, K)``."""
        return self.embedding(self.buckets(relative_position)).T  # (H, K)

    def forward(self, L: int, S: int | None = None) -> torch.Tensor:
        """The bias for ``L`` queries and ``S`` keys (default ``S = L``).

        Returns:
            A float tensor ``(1, H, L, S)``: entry ``[0, h, i, j]`` is head ``h``'s learned value
            for the bucket of ``j - i``; it broadcasts over the batch.
        """
        S = L if S is None else S
        positive_int(L, "L", "RelativePositionBias", minimum=0)
        positive_int(S, "S", "RelativePositionBias", minimum=0)
        device = self.embedding.weight.device
        i = torch.arange(L, device=device)[:, None]  # (L, 1) query positions
        j = torch.arange(S, device=device)[None, :]  # (1, S) key positions
        bias = self.embedding(self.buckets(j - i))  # (L, S, H)
        return bias.permute(2, 0, 1)[None]  # (1, H, L, S)

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, bidirectional={self.bidirectional}, "
            f"num_buckets={self.num_buckets}, max_distance={self.max_distance}"
        )
