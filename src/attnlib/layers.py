"""The Transformer block: attention, residual connections, LayerNorm and an MLP.

:class:`TransformerEncoderLayer` and :class:`TransformerDecoderLayer` have the arguments and the
arithmetic of PyTorch's layers of the same names (batch-first), built on
:class:`attnlib.MultiHeadAttention`, so every step can be read and the attention weights can come
back. Two orders exist:

- **post-norm** (``norm_first=False``, the 2017 paper's): ``x = norm(x + sublayer(x))``;
- **pre-norm** (``norm_first=True``, most models today): ``x = x + sublayer(norm(x))``.

Masks say their polarity in their names. attnlib's: ``src_attend_mask`` / ``tgt_attend_mask`` /
``memory_attend_mask`` (boolean True = may attend, or floating = added to the scores) and
``src_token_mask`` / ``tgt_token_mask`` / ``memory_token_mask`` (``(N, S)`` boolean, True = a real
token). PyTorch's names (``src_mask``, ``src_key_padding_mask``, ``tgt_mask``, ``memory_mask``,
``tgt_key_padding_mask``, ``memory_key_padding_mask``) are accepted too and mean what they mean in
PyTorch (boolean True = masked out / padding), so a call copied from PyTorch gives PyTorch's
output. ``from_torch`` copies a PyTorch layer's weights; in eval mode both give the same output to
float32 rounding (tests/test_layers.py).

:class:`RMSNorm`, the norm of T5 and Llama, lives here too.

Shape legend: N batch, L target length, S source length, D model size, H heads, F FFN width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from ._checks import shape
from .multihead import MultiHeadAttention, refuse_both_names

__all__ = ["RMSNorm", "TransformerEncoderLayer", "TransformerDecoderLayer"]

Activation = str | Callable[[torch.Tensor], torch.Tensor]


class RMSNorm(nn.Module):
    r"""Root-mean-square normalisation: :math:`x / \sqrt{\mathrm{mean}(x^2) + \epsilon} \cdot g`.

    Unlike LayerNorm it neither subtracts the mean nor adds a bias: it only rescales each vector
    to unit root-mean-square, then multiplies by a learned gain ``g`` (Zhang & Sennrich, 2019).
    T5 and Llama normalise this way, before each sublayer.

    Args:
        d_model: D, the size of the vectors (the last dimension).
        eps: added under the square root (T5 uses 1e-6, SmolLM2 1e-5).

    The arithmetic is Hugging Face's (float32, ``rsqrt``, cast back, then the gain), so a loaded
    checkpoint gives its reference outputs.
    """

    def __init__(
        self,
        d_model: int,
        eps: float = 1e-6,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))  # (D,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., D)`` -> ``(..., D)``, computed in float32."""
        x32 = x.float()
        rms = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return self.weight * (x32 * rms).to(x.dtype)  # (..., D)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"


def _activation(activation: Activation) -> Callable[[torch.Tensor], torch.Tensor]:
    if callable(activation):
        return activation
    table = {"relu": F.relu, "gelu": F.gelu}
    if activation not in table:
        raise ValueError(f"activation must be 'relu', 'gelu' or a callable, got {activation!r}")
    return table[activation]


def _check_sequence(name: str, x: torch.Tensor, d_model: int, where: str) -> None:
    _checks.tensor(x, name, where)
    if x.dim() != 3 or x.size(-1) != d_model:
        raise ValueError(
            f"{where}: {name} must have shape (N, length, d_model={d_model}) (batch-first), got "
            f"{shape(x)}"
        )


def _masks(where: str, prefix: str, attend, token, torch_mask, torch_padding) -> dict:
    """MultiHeadAttention's mask arguments from a layer's, refusing both names of one mask."""
    refuse_both_names((f"{prefix}_attend_mask", attend), (f"{prefix}_mask", torch_mask),
                      "from_mha_attn_mask", where)
    refuse_both_names((f"{prefix}_token_mask", token),
                      (f"{prefix}_key_padding_mask", torch_padding), "from_key_padding_mask", where)
    return {
        "attend_mask": attend,
        "token_mask": token,
        "attn_mask": torch_mask,  # PyTorch's polarity, converted by MultiHeadAttention
        "key_padding_mask": torch_padding,
    }


class _Layer(nn.Module):
    """What both layers share: PyTorch's constructor arguments, the self-attention sublayer, the
    MLP, the norms and dropouts, and :meth:`from_torch`. With ``_CROSS_ATTENTION`` (the decoder)
    a third sublayer: ``multihead_attn``, with ``norm3`` and ``dropout3``."""

    _TORCH: type[nn.Module] = nn.Module
    _CROSS_ATTENTION = False

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Activation = "relu",
        layer_norm_eps: float = 1e-5,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        _checks.positive_int(d_model, "d_model", where)
        _checks.positive_int(dim_feedforward, "dim_feedforward", where)
        _checks.probability(dropout, "dropout", where)
        factory = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.num_heads = num_heads
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=bias,
                                            **factory)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **factory)  # D -> F
        self.dropout = nn.Dropout(dropout)  # on the MLP's hidden layer
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **factory)  # F -> D
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = nn.Dropout(dropout)  # on the first sublayer's output
        self.dropout2 = nn.Dropout(dropout)  # on the second sublayer's output
        self.activation = _activation(activation)
        if self._CROSS_ATTENTION:  # the decoder's third sublayer
            self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
            self.dropout3 = nn.Dropout(dropout)  # on the MLP sublayer's output
            # Created last, so a seed gives the weights it always gave.
            self.multihead_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout,
                                                     bias=bias, **factory)

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.activation(self.linear1(x)))  # (N, L, F)
        return self.linear2(h)  # (N, L, D)

    @classmethod
    def from_torch(cls, module: nn.Module):
        """A copy of the PyTorch layer this class mirrors (batch_first=True), with its weights."""
        if not isinstance(module, cls._TORCH):
            raise TypeError(
                f"from_torch: module must be a torch.nn.{cls._TORCH.__name__}, got "
                f"{type(module).__name__}"
            )
        if not module.self_attn.batch_first:
            raise ValueError(
                "from_torch: the layer must be batch_first=True (attnlib is batch-first)"
            )
        p = next(module.parameters())
        new = cls(
            d_model=module.linear1.in_features,
            num_heads=module.self_attn.num_heads,
            dim_feedforward=module.linear1.out_features,
            dropout=module.dropout.p,
            activation=module.activation,
            layer_norm_eps=module.norm1.eps,
            norm_first=module.norm_first,
            bias=module.linear1.bias is not None,
            device=p.device,
            dtype=p.dtype,
        )
        with torch.no_grad():
            new._copy_from(module)
        return new.train(module.training)

    def _copy_from(self, module: nn.Module) -> None:
        self.self_attn = MultiHeadAttention.from_torch(module.self_attn)
        for mine, theirs in (
            (self.linear1, module.linear1),
            (self.linear2, module.linear2),
            (self.norm1, module.norm1),
            (self.norm2, module.norm2),
        ):
            mine.load_state_dict(theirs.state_dict())


class TransformerEncoderLayer(_Layer):
    r"""Self-attention and an MLP, each wrapped in a residual connection and a LayerNorm.

    Post-norm (``norm_first=False``):
    :math:`x \leftarrow \mathrm{LN}(x + \mathrm{SA}(x))`, then
    :math:`x \leftarrow \mathrm{LN}(x + \mathrm{MLP}(x))`. Pre-norm moves each LN inside the
    residual branch: :math:`x \leftarrow x + \mathrm{SA}(\mathrm{LN}(x))`.

    Submodules (PyTorch's names): ``self_attn``, ``linear1``, ``dropout``, ``linear2``,
    ``norm1``, ``norm2``, ``dropout1``, ``dropout2``.

    Args:
        d_model: D, the model size.
        num_heads: H, the number of heads (must divide D); PyTorch calls it ``nhead``.
        dim_feedforward: F, the MLP's hidden size.
        dropout: dropout on attention weights, sublayer outputs and the MLP's hidden layer.
        activation: ``"relu"``, ``"gelu"`` or a callable, in the MLP.
        layer_norm_eps: LayerNorm's epsilon.
        norm_first: pre-norm if True, post-norm (the paper's order) if False.
        bias: biases in the linear layers and LayerNorms.

    See the chapter "Positions and the Transformer block".
    """

    _TORCH = nn.TransformerEncoderLayer

    def _sa_block(self, x: torch.Tensor, masks: dict, is_causal: bool):
        out, weights = self.self_attn(x, x, x, is_causal=is_causal, **masks)  # (N, L, D)
        return self.dropout1(out), weights  # (N, L, D), (N, H, L, L)

    def forward(
        self,
        src: torch.Tensor,
        *,
        src_attend_mask: torch.Tensor | None = None,
        src_token_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """One encoder layer.

        Args:
            src: ``(N, L, D)``.
            src_attend_mask: boolean (True = may attend) or floating (added to the scores),
                broadcastable to ``(N, H, L, L)``.
            src_token_mask: ``(N, L)`` boolean, True = a real token.
            is_causal: forbid attending to later positions (a decoder-only model's layer);
                combines with the masks.
            need_weights: also return the self-attention weights ``(N, H, L, L)``.
            src_mask: PyTorch's name and meaning: boolean True = *not* allowed, or floating;
                ``(L, L)`` or ``(N * H, L, L)``. Not together with ``src_attend_mask``.
            src_key_padding_mask: PyTorch's name and meaning: ``(N, L)``, True = *padding*. Not
                together with ``src_token_mask``.

        Returns:
            ``(N, L, D)``, or ``(output, weights)`` when ``need_weights``.
        """
        where = "TransformerEncoderLayer"
        _check_sequence("src", src, self.d_model, where)
        masks = _masks(where, "src", src_attend_mask, src_token_mask, src_mask,
                       src_key_padding_mask)
        x = src
        if self.norm_first:
            sa, weights = self._sa_block(self.norm1(x), masks, is_causal)
            x = x + sa
            x = x + self.dropout2(self._ff_block(self.norm2(x)))
        else:
            sa, weights = self._sa_block(x, masks, is_causal)
            x = self.norm1(x + sa)
            x = self.norm2(x + self.dropout2(self._ff_block(x)))
        return (x, weights) if need_weights else x


class TransformerDecoderLayer(_Layer):
    r"""Masked self-attention, cross-attention to the encoder's memory, and an MLP.

    Each of the three sublayers sits in a residual connection with a LayerNorm, after it
    (post-norm, the paper's order) or before it (``norm_first=True``).

    Submodules (PyTorch's names): ``self_attn``, ``multihead_attn`` (the cross-attention),
    ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``, ``norm3``, ``dropout1``,
    ``dropout2``, ``dropout3``.

    Args: as :class:`TransformerEncoderLayer`.

    See the chapter "Positions and the Transformer block".
    """

    _TORCH = nn.TransformerDecoderLayer
    _CROSS_ATTENTION = True

    def _copy_from(self, module: nn.Module) -> None:
        super()._copy_from(module)
        self.multihead_attn = MultiHeadAttention.from_torch(module.multihead_attn)
        self.norm3.load_state_dict(module.norm3.state_dict())

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        *,
        tgt_attend_mask: torch.Tensor | None = None,
        memory_attend_mask: torch.Tensor | None = None,
        tgt_token_mask: torch.Tensor | None = None,
        memory_token_mask: torch.Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
        need_weights: bool = False,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One decoder layer.

        Args:
            tgt: ``(N, L, D)``, the decoder's input.
            memory: ``(N, S, D)``, the encoder's output.
            tgt_attend_mask: self-attention mask, boolean (True = may attend) or floating,
                broadcastable to ``(N, H, L, L)``.
            memory_attend_mask: cross-attention mask, broadcastable to ``(N, H, L, S)``.
            tgt_token_mask: ``(N, L)`` boolean, True = a real target token.
            memory_token_mask: ``(N, S)`` boolean, True = a real source token.
            tgt_is_causal: apply a causal mask in self-attention (combines with the masks).
            memory_is_causal: apply a causal mask (top-left aligned) in cross-attention.
            need_weights: also return ``(self_weights (N, H, L, L), cross_weights (N, H, L, S))``.
            tgt_mask, memory_mask: PyTorch's names and meaning: boolean True = *not* allowed, or
                floating; ``(L, L)`` / ``(L, S)`` or with ``N * H`` in front.
            tgt_key_padding_mask, memory_key_padding_mask: PyTorch's names and meaning:
                ``(N, L)`` / ``(N, S)``, True = *padding*.

        Returns:
            ``(N, L, D)``, or ``(output, (self_weights, cross_weights))`` when ``need_weights``.
        """
        where = "TransformerDecoderLayer"
        _check_sequence("tgt", tgt, self.d_model, where)
        _check_sequence("memory", memory, self.d_model, where)
        if memory.size(0) != tgt.size(0):
            raise ValueError(
                f"{where}: tgt and memory must share the batch size N, got tgt {shape(tgt)} and "
                f"memory {shape(memory)}"
            )
        self_masks = _masks(where, "tgt", tgt_attend_mask, tgt_token_mask, tgt_mask,
                            tgt_key_padding_mask)
        cross_masks = _masks(where, "memory", memory_attend_mask, memory_token_mask, memory_mask,
                             memory_key_padding_mask)

        def sa(x):
            out, w = self.self_attn(x, x, x, is_causal=tgt_is_causal, **self_masks)
            return self.dropout1(out), w  # (N, L, D), (N, H, L, L)

        def ca(x):
            out, w = self.multihead_attn(x, memory, memory, is_causal=memory_is_causal,
                                         **cross_masks)
            return self.dropout2(out), w  # (N, L, D), (N, H, L, S)

        x = tgt
        if self.norm_first:
            h, self_w = sa(self.norm1(x))
            x = x + h
            h, cross_w = ca(self.norm2(x))
            x = x + h
            x = x + self.dropout3(self._ff_block(self.norm3(x)))
        else:
            h, self_w = sa(x)
            x = self.norm1(x + h)
            h, cross_w = ca(x)
            x = self.norm2(x + h)
            x = self.norm3(x + self.dropout3(self._ff_block(x)))
        return (x, (self_w, cross_w)) if need_weights else x
