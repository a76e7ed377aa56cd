"""Multi-head attention, batch-first, with readable projections (see "Multi-head attention").

:class:`MultiHeadAttention` is :class:`torch.nn.MultiheadAttention` written out: four linear maps
and one call to :func:`attnlib.scaled_dot_product_attention`. It differs from PyTorch's module in
four deliberate ways, all for teaching:

- its own masks say their polarity in their names: ``attend_mask`` (boolean True = **may
  attend**) and ``token_mask`` (``(N, S)``, True = **a real token**). PyTorch's names
  ``attn_mask`` and ``key_padding_mask`` are accepted too and mean what they mean in PyTorch
  (boolean True = *masked out* / *padding*), so a call copied from PyTorch gives PyTorch's output;
- the weights come back per head, ``(N, H, L, S)``, never averaged over heads;
- the query, key and value projections are three :class:`~torch.nn.Linear` layers, not one packed
  ``in_proj_weight``, so each can be printed and inspected;
- ``num_kv_heads`` below ``num_heads`` gives grouped-query attention (Llama's), which PyTorch's
  module does not have.

:meth:`MultiHeadAttention.from_torch` copies a PyTorch module's weights; with copied weights both
give the same output to float32 rounding (tests/test_multihead.py).

Shape legend: N batch, H heads, H_kv key/value heads, L query length, S key length, E size per
head, D model size (D = H * E).
"""

from __future__ import annotations

import torch
from torch import nn

from . import _checks
from ._checks import shape
from .attention import scaled_dot_product_attention
from .masks import causal_mask, combine, from_key_padding_mask, from_mha_attn_mask

__all__ = ["MultiHeadAttention", "merge_masks", "refuse_both_names"]


def merge_masks(
    attend_mask: torch.Tensor | None,
    token_mask: torch.Tensor | None,
    is_causal: bool,
    *,
    N: int,
    L: int,
    S: int,
    device: torch.device,
    where: str = "merge_masks",
) -> torch.Tensor | None:
    """Merge a causal flag, an ``attend_mask`` and a ``token_mask`` into one mask.

    Boolean masks (True = may attend) are ANDed; if any mask is floating, boolean ones become
    ``0`` / ``-inf`` and everything is added (:func:`attnlib.masks.combine`).

    Args:
        attend_mask: boolean (True = may attend) or floating, broadcastable to ``(N, H, L, S)``;
            or None.
        token_mask: ``(N, S)`` boolean, True = a real token that may be attended; or None.
        is_causal: also forbid keys after the query (top-left aligned, as in PyTorch).

    Returns:
        A mask broadcastable to ``(N, H, L, S)``, or None when there is nothing to mask.
    """
    parts: list[torch.Tensor] = []
    if attend_mask is not None:
        heads = attend_mask.size(-3) if attend_mask.dim() >= 3 else 1  # H is not known here
        _checks.broadcastable_mask(attend_mask, (N, heads, L, S), "attend_mask", where)
        parts.append(attend_mask)
    if token_mask is not None:
        _checks.tensor(token_mask, "token_mask", where)
        if token_mask.dtype != torch.bool:
            raise TypeError(
                f"{where}: token_mask must be a boolean tensor (N, S) with True = a real token "
                f"that may be attended, got dtype {token_mask.dtype}; PyTorch's key_padding_mask "
                f"(True = padding) goes in as key_padding_mask, or ~key_padding_mask as token_mask"
            )
        if tuple(token_mask.shape) != (N, S):
            raise ValueError(
                f"{where}: token_mask must have shape (N, S) = {(N, S)}, got {shape(token_mask)}"
            )
        parts.append(token_mask[:, None, None, :])  # (N, 1, 1, S)
    if is_causal:
        parts.append(causal_mask(L, S, device=device))  # (L, S)
    return combine(*parts) if parts else None


def refuse_both_names(
    ours: tuple[str, torch.Tensor | None],
    theirs: tuple[str, torch.Tensor | None],
    convert: str,
    where: str,
) -> None:
    """A ``TypeError`` if one mask came under both attnlib's name and PyTorch's.

    The two names of a mask have opposite polarities, so there is no sensible way to read both.

    Args:
        ours: ``(name, mask)`` under attnlib's name, e.g. ``("attend_mask", m)``.
        theirs: ``(name, mask)`` under PyTorch's name, e.g. ``("attn_mask", None)``.
        convert: the :mod:`attnlib.masks` function that turns PyTorch's mask into ours.
        where: the function, for the message.
    """
    (our_name, our_mask), (their_name, their_mask) = ours, theirs
    if our_mask is not None and their_mask is not None:
        raise TypeError(
            f"{where}: got both {our_name} (attnlib's polarity: True = may attend / a real "
            f"token) and {their_name} (PyTorch's polarity: True = masked out / padding); pass "
            f"one. To use both, convert {their_name} with attnlib.masks.{convert}(...) and "
            f"combine the two with attnlib.masks.combine(...)"
        )


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention: H scaled dot-product attentions side by side on slices of D.

    .. math:: \mathrm{MultiHead}(Q, K, V) = \mathrm{Concat}(\mathrm{head}_1, \dots,
              \mathrm{head}_H)\, W^O, \quad \mathrm{head}_h = \mathrm{Attention}(Q W_h^Q,
              K W_h^K, V W_h^V)

    Args:
        embed_dim: D, the model size (the query's last dimension and the output's).
        num_heads: H; must divide ``embed_dim``. Each head works in E = D / H dimensions.
        dropout: dropout on the attention weights, in training mode only.
        bias: whether the four projections have biases.
        kdim: the key's last dimension (default D).
        vdim: the value's last dimension (default D).
        num_kv_heads: H_kv, the number of key/value heads (default H). Fewer than H is
            grouped-query attention: ``k_proj`` and ``v_proj`` produce ``H_kv * E`` features and
            each key/value head serves ``H / H_kv`` query heads; 1 is multi-query attention.
        qk_norm: normalise each head's queries and keys with RMSNorm (PyTorch's
            :class:`~torch.nn.RMSNorm` over the E features, with a learned gain shared by the
            heads) before the scores, as ViT-22B, OLMo 2 and Qwen3 do: it bounds how far the
            scores can grow in training. ``False`` (the default) is PyTorch's module.

    See the chapter "Multi-head attention"; QK-norm is in "Self-attention and scaled dot-product
    attention".
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        num_kv_heads: int | None = None,
        qk_norm: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        where = "MultiHeadAttention"
        _checks.positive_int(embed_dim, "embed_dim", where)
        _checks.positive_int(num_heads, "num_heads", where)
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        _checks.positive_int(num_kv_heads, "num_kv_heads", where)
        if embed_dim % num_heads:
            raise ValueError(
                f"{where}: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads}): "
                f"each head gets embed_dim // num_heads dimensions"
            )
        if num_heads % num_kv_heads:
            raise ValueError(
                f"{where}: num_kv_heads ({num_kv_heads}) must divide num_heads ({num_heads}): "
                f"each key/value head serves num_heads // num_kv_heads query heads"
            )
        if not isinstance(qk_norm, bool):
            raise TypeError(f"{where}: qk_norm must be True or False, got {qk_norm!r}")
        self.dropout = _checks.probability(dropout, "dropout", where)
        factory = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else _checks.positive_int(kdim, "kdim", where)
        self.vdim = embed_dim if vdim is None else _checks.positive_int(vdim, "vdim", where)
        kv_dim = num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(self.kdim, kv_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(self.vdim, kv_dim, bias=bias, **factory)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.qk_norm = qk_norm
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6, **factory) if qk_norm else None
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6, **factory) if qk_norm else None

    def split_heads(self, x: torch.Tensor, num_heads: int | None = None) -> torch.Tensor:
        """``(N, L, H * E) -> (N, H, L, E)``: give each head its own slice of the features.

        ``num_heads`` defaults to H; pass ``self.num_kv_heads`` for projected keys and values.
        """
        N, L, _ = x.shape
        H = self.num_heads if num_heads is None else num_heads
        x = x.view(N, L, H, self.head_dim)  # (N, L, H, E)
        return x.transpose(1, 2)  # (N, H, L, E)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H, L, E) -> (N, L, D)``: concatenate the heads' outputs again."""
        N, H, L, E = x.shape
        return x.transpose(1, 2).reshape(N, L, H * E)  # (N, L, D)

    def queries_and_keys(
        self, query: torch.Tensor, key: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-head queries and keys whose dot products are the scores: projected, split
        into heads and, with ``qk_norm``, rescaled to root-mean-square 1 times a learned gain.

        Args:
            query: ``(N, L, D)``.
            key: ``(N, S, kdim)``.

        Returns:
            ``(q, k)``: ``(N, H, L, E)`` and ``(N, H_kv, S, E)``; ``forward`` scores them with
            ``q @ k.T * scale``.
        """
        q = self.split_heads(self.q_proj(query))  # (N, H, L, E)
        k = self.split_heads(self.k_proj(key), self.num_kv_heads)  # (N, H_kv, S, E)
        if self.qk_norm:  # each query and key vector rescaled to root-mean-square 1, times a gain
            q, k = self.q_norm(q), self.k_norm(k)
        return q, k

    def _check(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
        where = "MultiHeadAttention"
        for name, t, dim in (
            ("query", query, self.embed_dim),
            ("key", key, self.kdim),
            ("value", value, self.vdim),
        ):
            _checks.tensor(t, name, where)
            if t.dim() != 3 or t.size(-1) != dim:
                raise ValueError(
                    f"{where}: {name} must have shape (N, length, {dim}) (batch-first), got "
                    f"{shape(t)}"
                )
        if not (query.size(0) == key.size(0) == value.size(0)):
            raise ValueError(
                f"{where}: query, key and value must share the batch size N, got query "
                f"{shape(query)}, key {shape(key)}, value {shape(value)}"
            )
        if key.size(1) != value.size(1):
            raise ValueError(
                f"{where}: key and value must have the same length S, got key {shape(key)} and "
                f"value {shape(value)}"
            )

    def _attend_mask(self, attend_mask, token_mask, attn_mask, key_padding_mask, N, L, S):
        """One ``attend_mask`` from attnlib's and PyTorch's names (PyTorch's converted here)."""
        where = "MultiHeadAttention"
        H = self.num_heads
        refuse_both_names(("attend_mask", attend_mask), ("attn_mask", attn_mask),
                          "from_mha_attn_mask", where)
        refuse_both_names(("token_mask", token_mask), ("key_padding_mask", key_padding_mask),
                          "from_key_padding_mask", where)
        if attn_mask is not None:  # PyTorch's name: True = not allowed, (L, S) or (N*H, L, S)
            _checks.tensor(attn_mask, "attn_mask", where)
            if tuple(attn_mask.shape) not in ((L, S), (N * H, L, S)):
                raise ValueError(
                    f"{where}: attn_mask (PyTorch's polarity) must be (L, S) = {(L, S)} or "
                    f"(N*H, L, S) = {(N * H, L, S)}, as in nn.MultiheadAttention; got "
                    f"{shape(attn_mask)}. attnlib's attend_mask takes any shape that broadcasts "
                    f"to (N, H, L, S)"
                )
            attend_mask = from_mha_attn_mask(attn_mask)  # True = may attend
            if attend_mask.dim() == 3:
                attend_mask = attend_mask.view(N, H, L, S)  # PyTorch's (N*H, L, S) layout
        if key_padding_mask is not None:  # PyTorch's name: True = padding, (N, S)
            _checks.tensor(key_padding_mask, "key_padding_mask", where)
            if tuple(key_padding_mask.shape) != (N, S):
                raise ValueError(
                    f"{where}: key_padding_mask (PyTorch's polarity: True = padding) must have "
                    f"shape (N, S) = {(N, S)}, got {shape(key_padding_mask)}"
                )
            padding = from_key_padding_mask(key_padding_mask)  # (N, 1, 1, S), True = may attend
            attend_mask = padding if attend_mask is None else combine(attend_mask, padding)
        if attend_mask is not None:
            try:
                _checks.broadcastable_mask(
                    attend_mask, (N, H, L, S), "attend_mask", where, target_text="(N, H, L, S)"
                )
            except ValueError as err:
                if tuple(attend_mask.shape) == (N * H, L, S):  # PyTorch's layout, attnlib's name
                    raise ValueError(
                        f"{err}; for PyTorch's (N*H, L, S) layout use attend_mask.view(N, H, L, S)"
                    ) from None
                raise
        return attend_mask

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        attend_mask: torch.Tensor | None = None,
        token_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = True,
        scale: float | None = None,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` to ``key``/``value`` with every head.

        attnlib's masks (True = may attend; True = a real token) and PyTorch's (True = masked
        out; True = padding) have different names, so a mask always means what its name says.
        Give each kind of mask under one name, not both.

        Args:
            query: ``(N, L, D)``.
            key: ``(N, S, kdim)``.
            value: ``(N, S, vdim)``.
            attend_mask: boolean (True = may attend) or floating (added to the scores),
                broadcastable to ``(N, H, L, S)``; e.g. ``(L, S)`` for every sequence and head.
            token_mask: ``(N, S)`` boolean, True = a real token (may be attended).
            is_causal: forbid keys after each query; combines with the other masks.
            need_weights: also return the attention weights.
            scale: multiplies the scores; default ``1 / sqrt(E)``.
            attn_mask: PyTorch's name and meaning (``nn.MultiheadAttention``): boolean True =
                *not* allowed, or floating (added); ``(L, S)`` or ``(N * H, L, S)``.
            key_padding_mask: PyTorch's name and meaning: ``(N, S)`` boolean, True = *padding*,
                or floating (added).

        Returns:
            ``(output, weights)``: output ``(N, L, D)``; weights ``(N, H, L, S)`` per head
            (before dropout), or None when ``need_weights`` is False.
        """
        self._check(query, key, value)
        N, L, S = query.size(0), query.size(1), key.size(1)
        attend_mask = self._attend_mask(
            attend_mask, token_mask, attn_mask, key_padding_mask, N, L, S
        )
        mask = merge_masks(
            attend_mask, token_mask, is_causal, N=N, L=L, S=S, device=query.device,
            where="MultiHeadAttention",
        )
        q, k = self.queries_and_keys(query, key)  # (N, H, L, E), (N, H_kv, S, E)
        v = self.split_heads(self.v_proj(value), self.num_kv_heads)  # (N, H_kv, S, E)
        out, weights = scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            scale=scale, enable_gqa=self.num_kv_heads != self.num_heads,
        )  # (N, H, L, E), (N, H, L, S)
        output = self.out_proj(self.merge_heads(out))  # (N, L, D)
        return output, (weights if need_weights else None)

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of a ``torch.nn.MultiheadAttention`` with its weights.

        The packed ``in_proj_weight`` (3D, D) is split into ``q_proj``, ``k_proj`` and ``v_proj``.
        Masks work as with PyTorch's module under PyTorch's names (``attn_mask``,
        ``key_padding_mask``: True = masked out), and under attnlib's (``attend_mask``,
        ``token_mask``: True = may attend).
        """
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(
                f"from_torch: module must be a torch.nn.MultiheadAttention, got "
                f"{type(module).__name__}"
            )
        if module.bias_k is not None or module.add_zero_attn:
            raise ValueError("from_torch: add_bias_kv and add_zero_attn are not supported")
        if not module.batch_first:
            raise ValueError(
                "from_torch: the module must be batch_first=True (attnlib is batch-first)"
            )
        bias = module.in_proj_bias is not None
        p = next(module.parameters())
        new = cls(
            module.embed_dim, module.num_heads, dropout=module.dropout, bias=bias,
            kdim=module.kdim, vdim=module.vdim, device=p.device, dtype=p.dtype,
        )
        D = module.embed_dim
        with torch.no_grad():
            if module._qkv_same_embed_dim:
                wq, wk, wv = module.in_proj_weight.split(D, dim=0)  # 3 x (D, D)
            else:
                wq, wk, wv = module.q_proj_weight, module.k_proj_weight, module.v_proj_weight
            for proj, w in ((new.q_proj, wq), (new.k_proj, wk), (new.v_proj, wv)):
                proj.weight.copy_(w)
            if bias:
                for proj, b in zip(
                    (new.q_proj, new.k_proj, new.v_proj), module.in_proj_bias.split(D), strict=True
                ):
                    proj.bias.copy_(b)
            new.out_proj.load_state_dict(module.out_proj.state_dict())
        return new.train(module.training)

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"num_kv_heads={self.num_kv_heads}, head_dim={self.head_dim}, dropout={self.dropout}"
            + (", qk_norm=True" if self.qk_norm else "")
        )
