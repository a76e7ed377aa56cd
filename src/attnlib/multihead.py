"""Multi-head attention, batch-first, with readable projections (chapter 5).

:class:`MultiHeadAttention` is :class:`torch.nn.MultiheadAttention` written out: four linear maps
and one call to :func:`attnlib.scaled_dot_product_attention`. It differs from PyTorch's module in
three deliberate ways, all for teaching:

- masks follow attnlib's polarity everywhere: boolean True = **may attend** (PyTorch's
  ``nn.MultiheadAttention`` uses True = *ignore*; convert with :mod:`attnlib.masks`);
- the weights come back per head, ``(N, H, L, S)``, never averaged over heads;
- the query, key and value projections are three :class:`~torch.nn.Linear` layers, not one packed
  ``in_proj_weight``, so each can be printed and inspected.

:meth:`MultiHeadAttention.from_torch` copies a PyTorch module's weights; with copied weights both
give the same output to float32 rounding (tests/test_multihead.py).

Shape legend: N batch, H heads, L query length, S key length, E size per head, D model size
(D = H * E).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import scaled_dot_product_attention
from .masks import causal_mask

__all__ = ["MultiHeadAttention", "merge_masks"]


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def merge_masks(
    attn_mask: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
    is_causal: bool,
    *,
    N: int,
    L: int,
    S: int,
    device: torch.device,
) -> torch.Tensor | None:
    """Merge a causal flag, an ``attn_mask`` and a ``key_padding_mask`` into one mask.

    Boolean masks (True = may attend) are ANDed; if any mask is floating, boolean ones become
    ``0`` / ``-inf`` and everything is added.

    Args:
        attn_mask: boolean or floating, broadcastable to ``(N, H, L, S)``; or None.
        key_padding_mask: ``(N, S)`` boolean, True = a real token that may be attended; or None.
        is_causal: also forbid keys after the query (top-left aligned, as in PyTorch).

    Returns:
        A mask broadcastable to ``(N, H, L, S)``, or None when there is nothing to mask.
    """
    parts: list[torch.Tensor] = []
    if attn_mask is not None:
        if not isinstance(attn_mask, torch.Tensor):
            raise TypeError(f"attn_mask must be a torch.Tensor, got {type(attn_mask).__name__}")
        if attn_mask.dtype != torch.bool and not attn_mask.is_floating_point():
            raise TypeError(
                f"attn_mask must be boolean (True = may attend) or floating (added to the "
                f"scores), got dtype {attn_mask.dtype}"
            )
        parts.append(attn_mask)
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, torch.Tensor) or key_padding_mask.dtype != torch.bool:
            raise TypeError(
                "key_padding_mask must be a boolean tensor (N, S) with True = a real token that "
                "may be attended (attnlib's polarity; convert PyTorch's with "
                "attnlib.masks.from_key_padding_mask), got "
                f"{getattr(key_padding_mask, 'dtype', type(key_padding_mask).__name__)}"
            )
        if tuple(key_padding_mask.shape) != (N, S):
            raise ValueError(
                f"key_padding_mask must have shape (N, S) = {(N, S)}, got "
                f"{_shape(key_padding_mask)}"
            )
        parts.append(key_padding_mask[:, None, None, :])  # (N, 1, 1, S)
    if is_causal:
        parts.append(causal_mask(L, S, device=device))  # (L, S)
    if not parts:
        return None
    if all(p.dtype == torch.bool for p in parts):
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return out
    out = None
    for p in parts:
        if p.dtype == torch.bool:
            p = torch.zeros(p.shape, device=p.device).masked_fill(~p, float("-inf"))
        out = p if out is None else out + p
    return out


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

    See chapter 5, "Multi-head attention".
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
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"embed_dim and num_heads must be positive, got embed_dim={embed_dim}, "
                f"num_heads={num_heads}"
            )
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads}): each head "
                f"gets embed_dim // num_heads dimensions"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        factory = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(self.kdim, embed_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(self.vdim, embed_dim, bias=bias, **factory)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, L, D) -> (N, H, L, E)``: give each head its own slice of the features."""
        N, L, _ = x.shape
        x = x.view(N, L, self.num_heads, self.head_dim)  # (N, L, H, E)
        return x.transpose(1, 2)  # (N, H, L, E)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H, L, E) -> (N, L, D)``: concatenate the heads' outputs again."""
        N, H, L, E = x.shape
        return x.transpose(1, 2).reshape(N, L, H * E)  # (N, L, D)

    def _check(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
        for name, t, dim in (
            ("query", query, self.embed_dim),
            ("key", key, self.kdim),
            ("value", value, self.vdim),
        ):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() != 3 or t.size(-1) != dim:
                raise ValueError(
                    f"{name} must have shape (N, length, {dim}) (batch-first), got {_shape(t)}"
                )
        if not (query.size(0) == key.size(0) == value.size(0)):
            raise ValueError(
                f"query, key and value must share the batch size N, got query {_shape(query)}, "
                f"key {_shape(key)}, value {_shape(value)}"
            )
        if key.size(1) != value.size(1):
            raise ValueError(
                f"key and value must have the same length S, got key {_shape(key)} and value "
                f"{_shape(value)}"
            )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = True,
        scale: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` to ``key``/``value`` with every head.

        Args:
            query: ``(N, L, D)``.
            key: ``(N, S, kdim)``.
            value: ``(N, S, vdim)``.
            attn_mask: boolean (True = may attend) or floating (added to the scores), broadcastable
                to ``(N, H, L, S)``; e.g. ``(L, S)`` for every sequence and head.
            key_padding_mask: ``(N, S)`` boolean, True = a real token (may be attended).
            is_causal: forbid keys after each query; combines with the other masks.
            need_weights: also return the attention weights.
            scale: multiplies the scores; default ``1 / sqrt(E)``.

        Returns:
            ``(output, weights)``: output ``(N, L, D)``; weights ``(N, H, L, S)`` per head
            (before dropout), or None when ``need_weights`` is False.
        """
        self._check(query, key, value)
        N, L, S = query.size(0), query.size(1), key.size(1)
        if isinstance(attn_mask, torch.Tensor) and attn_mask.shape == (N * self.num_heads, L, S):
            attn_mask = attn_mask.view(N, self.num_heads, L, S)  # PyTorch's (N*H, L, S) layout
        mask = merge_masks(
            attn_mask, key_padding_mask, is_causal, N=N, L=L, S=S, device=query.device
        )
        q = self.split_heads(self.q_proj(query))  # (N, H, L, E)
        k = self.split_heads(self.k_proj(key))  # (N, H, S, E)
        v = self.split_heads(self.v_proj(value))  # (N, H, S, E)
        try:
            out, weights = scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                scale=scale,
            )  # (N, H, L, E), (N, H, L, S)
        except ValueError as err:
            if mask is not None and "attn_mask" in str(err):
                raise ValueError(
                    f"attn_mask of shape {_shape(mask)} does not broadcast to (N, H, L, S) = "
                    f"{(N, self.num_heads, L, S)}"
                ) from None
            raise
        output = self.out_proj(self.merge_heads(out))  # (N, L, D)
        return output, (weights if need_weights else None)

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of a ``torch.nn.MultiheadAttention`` with its weights.

        The packed ``in_proj_weight`` (3D, D) is split into ``q_proj``, ``k_proj`` and ``v_proj``.
        Pass it masks in attnlib's polarity (True = may attend).
        """
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(
                f"module must be a torch.nn.MultiheadAttention, got {type(module).__name__}"
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
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, head_dim={self.head_dim}, "
            f"dropout={self.dropout}"
        )
