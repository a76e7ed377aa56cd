"""The Transformer block: attention, residual connections, LayerNorm and an MLP (chapter 7).

:class:`TransformerEncoderLayer` and :class:`TransformerDecoderLayer` have the arguments and the
arithmetic of PyTorch's layers of the same names (batch-first), built on
:class:`attnlib.MultiHeadAttention`, so every step can be read and the attention weights can come
back. Two orders exist:

- **post-norm** (``norm_first=False``, the 2017 paper's): ``x = norm(x + sublayer(x))``;
- **pre-norm** (``norm_first=True``, most models today): ``x = x + sublayer(norm(x))``.

Masks follow attnlib's polarity: boolean True = may attend, floating = added to the scores;
key padding masks are ``(N, S)`` booleans with True = a real token. ``from_torch`` copies a PyTorch
layer's weights; in eval mode both give the same output to float32 rounding
(tests/test_transformer.py).

Shape legend: N batch, L target length, S source length, D model size, H heads.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .multihead import MultiHeadAttention

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


def _check_sequence(name: str, x: torch.Tensor, d_model: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.size(-1) != d_model:
        raise ValueError(
            f"{name} must have shape (N, length, d_model={d_model}) (batch-first), got "
            f"{tuple(x.shape)}"
        )


class _Block(nn.Module):
    """What both layers share: PyTorch's constructor arguments, the attention sublayers, the MLP,
    the norms and dropouts (one of each per sublayer), and :meth:`from_torch`.

    A subclass names its attention sublayers in ``_ATTENTIONS`` and the PyTorch layer it mirrors in
    ``_TORCH``.
    """

    _ATTENTIONS: tuple[str, ...] = ("self_attn",)
    _TORCH: type[nn.Module] = nn.Module

    def __init__(
        self,
        d_model: int,
        nhead: int,
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
        factory = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.norm_first = norm_first
        def attention() -> MultiHeadAttention:
            return MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias, **factory)

        self.self_attn = attention()
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **factory)
        for i in range(1, self._n_norms() + 1):  # one norm and one dropout per sublayer
            norm = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
            setattr(self, f"norm{i}", norm)
            setattr(self, f"dropout{i}", nn.Dropout(dropout))
        self.activation = _activation(activation)
        # Further attention sublayers come last, so a seed gives the weights it always gave.
        for name in self._ATTENTIONS[1:]:
            setattr(self, name, attention())

    @classmethod
    def _n_norms(cls) -> int:
        return len(cls._ATTENTIONS) + 1  # the attention sublayers and the MLP

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.activation(self.linear1(x)))  # (N, L, dim_feedforward)
        return self.linear2(h)  # (N, L, D)

    @classmethod
    def from_torch(cls, module: nn.Module):
        """A copy of the PyTorch layer this class mirrors (batch_first=True), with its weights."""
        if not isinstance(module, cls._TORCH):
            raise TypeError(
                f"module must be a torch.nn.{cls._TORCH.__name__}, got {type(module).__name__}"
            )
        if not module.self_attn.batch_first:
            raise ValueError(
                "from_torch: the layer must be batch_first=True (attnlib is batch-first)"
            )
        p = next(module.parameters())
        new = cls(
            d_model=module.linear1.in_features,
            nhead=module.self_attn.num_heads,
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
            for name in cls._ATTENTIONS:
                setattr(new, name, MultiHeadAttention.from_torch(getattr(module, name)))
            names = ["linear1", "linear2"] + [f"norm{i}" for i in range(1, cls._n_norms() + 1)]
            for name in names:
                getattr(new, name).load_state_dict(getattr(module, name).state_dict())
        return new.train(module.training)


class TransformerEncoderLayer(_Block):
    r"""Self-attention and an MLP, each wrapped in a residual connection and a LayerNorm.

    Post-norm (``norm_first=False``):
    :math:`x \leftarrow \mathrm{LN}(x + \mathrm{SA}(x))`, then
    :math:`x \leftarrow \mathrm{LN}(x + \mathrm{MLP}(x))`. Pre-norm moves each LN inside the
    residual branch: :math:`x \leftarrow x + \mathrm{SA}(\mathrm{LN}(x))`.

    Args:
        d_model: D, the model size.
        nhead: H, the number of heads (must divide D).
        dim_feedforward: the MLP's hidden size.
        dropout: dropout on attention weights, sublayer outputs and the MLP's hidden layer.
        activation: ``"relu"``, ``"gelu"`` or a callable, in the MLP.
        layer_norm_eps: LayerNorm's epsilon.
        norm_first: pre-norm if True, post-norm (the paper's order) if False.
        bias: biases in the linear layers and LayerNorms.

    See chapter 7, "Positions and the Transformer block".
    """

    _TORCH = nn.TransformerEncoderLayer

    def _sa_block(self, x, mask, key_padding_mask, is_causal):
        out, weights = self.self_attn(
            x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask, is_causal=is_causal
        )  # (N, L, D), (N, H, L, L)
        return self.dropout1(out), weights

    def forward(
        self,
        src: torch.Tensor,
        *,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """One encoder layer.

        Args:
            src: ``(N, L, D)``.
            src_mask: boolean (True = may attend) or floating, broadcastable to ``(N, H, L, L)``.
            src_key_padding_mask: ``(N, L)`` boolean, True = a real token.
            is_causal: forbid attending to later positions (a decoder-only model's layer).
            need_weights: also return the self-attention weights ``(N, H, L, L)``.

        Returns:
            ``(N, L, D)``, or ``(output, weights)`` when ``need_weights``.
        """
        _check_sequence("src", src, self.d_model)
        x = src
        if self.norm_first:
            sa, weights = self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + sa
            x = x + self.dropout2(self._ff_block(self.norm2(x)))
        else:
            sa, weights = self._sa_block(x, src_mask, src_key_padding_mask, is_causal)
            x = self.norm1(x + sa)
            x = self.norm2(x + self.dropout2(self._ff_block(x)))
        return (x, weights) if need_weights else x


class TransformerDecoderLayer(_Block):
    r"""Masked self-attention, cross-attention to the encoder's memory, and an MLP.

    Each of the three sublayers sits in a residual connection with a LayerNorm, after it
    (post-norm, the paper's order) or before it (``norm_first=True``).

    Args: as :class:`TransformerEncoderLayer`.

    See chapter 7, "Positions and the Transformer block".
    """

    _ATTENTIONS = ("self_attn", "multihead_attn")
    _TORCH = nn.TransformerDecoderLayer

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        *,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        tgt_is_causal: bool = False,
        need_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One decoder layer.

        Args:
            tgt: ``(N, L, D)``, the decoder's input.
            memory: ``(N, S, D)``, the encoder's output.
            tgt_mask: mask for self-attention, broadcastable to ``(N, H, L, L)``.
            memory_mask: mask for cross-attention, broadcastable to ``(N, H, L, S)``.
            tgt_key_padding_mask: ``(N, L)`` boolean, True = a real target token.
            memory_key_padding_mask: ``(N, S)`` boolean, True = a real source token.
            tgt_is_causal: apply a causal mask in self-attention (combines with ``tgt_mask``).
            need_weights: also return ``(self_weights (N, H, L, L), cross_weights (N, H, L, S))``.

        Returns:
            ``(N, L, D)``, or ``(output, (self_weights, cross_weights))`` when ``need_weights``.
        """
        _check_sequence("tgt", tgt, self.d_model)
        _check_sequence("memory", memory, self.d_model)
        if memory.size(0) != tgt.size(0):
            raise ValueError(
                f"tgt and memory must share the batch size N, got tgt {tuple(tgt.shape)} and "
                f"memory {tuple(memory.shape)}"
            )

        def sa(x):
            out, w = self.self_attn(
                x, x, x, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask,
                is_causal=tgt_is_causal,
            )  # (N, L, D), (N, H, L, L)
            return self.dropout1(out), w

        def ca(x):
            out, w = self.multihead_attn(
                x, memory, memory, attn_mask=memory_mask,
                key_padding_mask=memory_key_padding_mask,
            )  # (N, L, D), (N, H, L, S)
            return self.dropout2(out), w

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
