r"""Linear attention, and the same model run as a recurrent network (Katharopoulos et al. 2020).

Softmax attention weighs value ``j`` for query ``i`` by ``exp(q_i . k_j)``. Linear attention
replaces that similarity by a product of feature maps, ``phi(q_i) . phi(k_j)`` with a positive
``phi`` (here ``elu(x) + 1``), so that the sums can be regrouped:

.. math:: o_i = \frac{\sum_j \phi(q_i)^\top \phi(k_j)\, v_j^\top}{\sum_j \phi(q_i)^\top \phi(k_j)}
              = \frac{\phi(q_i)^\top \big(\sum_j \phi(k_j) v_j^\top\big)}
                     {\phi(q_i)^\top \big(\sum_j \phi(k_j)\big)}

The bracketed sums do not depend on ``i``: computing them once costs ``O(S E Ev)`` instead of the
``O(L S)`` weights. With a causal mask the sums run over ``j <= i`` only, and they can be carried
from one position to the next: a state ``(E, Ev)`` matrix and an ``(E,)`` normaliser, updated by
one outer product per token, which is exactly a recurrent network with a constant-size state.

* :func:`linear_attention`: the parallel form, for training (all positions at once);
* :func:`linear_attention_recurrent`: the recurrent form, one position at a time, returning the
  final state too, for generation.

Both compute the same numbers. See the chapter "The cost of attention and how to cut it".

Shapes as in book/notation.md: N batch, H heads, L queries, S keys, E query/key size, Ev value
size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attention import check_attention_inputs

__all__ = ["elu_feature_map", "linear_attention", "linear_attention_recurrent"]


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """``elu(x) + 1``: Katharopoulos et al.'s feature map, positive everywhere, so every
    similarity ``phi(q) . phi(k)`` is positive and the normaliser is never zero."""
    return F.elu(x) + 1.0


def linear_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    is_causal: bool = False,
) -> torch.Tensor:
    """Linear attention computed for all positions at once.

    Args:
        query: ``(N, ..., L, E)``.
        key: ``(N, ..., S, E)``.
        value: ``(N, ..., S, Ev)``.
        is_causal: query ``i`` sees keys ``j <= i`` (top-left aligned, as in PyTorch); then the
            sums become running sums over the positions (``cumsum``), still without the
            ``(L, S)`` weights.

    Returns:
        ``(N, ..., L, Ev)``.

    Raises:
        TypeError, ValueError: for inputs that are not floating-point tensors or whose shapes do
            not fit together (the message names the argument and the shapes).
    """
    check_attention_inputs(query, key, value, None, 0.0, is_causal, where="linear_attention")
    L, S = query.size(-2), key.size(-2)
    if S == 0:  # no key to attend to: zeros, not 0 / 0
        lead = torch.broadcast_shapes(query.shape[:-2], value.shape[:-2])
        return value.new_zeros(*lead, L, value.size(-1))
    phi_q, phi_k = elu_feature_map(query), elu_feature_map(key)  # (..., L, E), (..., S, E)
    if not is_causal:
        kv = phi_k.transpose(-2, -1) @ value  # (..., E, Ev): sum_j phi(k_j) v_j^T
        z = phi_k.sum(dim=-2)  # (..., E): sum_j phi(k_j)
        return (phi_q @ kv) / (phi_q @ z[..., None])  # (..., L, Ev)
    n = min(L, S)  # keys after the last query are never seen
    kv = torch.cumsum(phi_k[..., :n, :, None] * value[..., :n, None, :], dim=-3)  # (..., n, E, Ev)
    z = torch.cumsum(phi_k[..., :n, :], dim=-2)  # (..., n, E)
    last = torch.arange(L, device=query.device).clamp(max=n - 1)  # (L,) the last key each sees
    kv, z = kv[..., last, :, :], z[..., last, :]  # (..., L, E, Ev), (..., L, E)
    num = (phi_q[..., None, :] @ kv)[..., 0, :]  # (..., L, Ev)
    den = (phi_q * z).sum(dim=-1, keepdim=True)  # (..., L, 1)
    return num / den  # (..., L, Ev)


def linear_attention_recurrent(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Causal linear attention run as a recurrent network: one position at a time.

    The state after position ``t`` is ``(kv_t, z_t)`` with ``kv_t = kv_{t-1} + phi(k_t) v_t^T``
    and ``z_t = z_{t-1} + phi(k_t)``; the output is ``phi(q_t)^T kv_t / phi(q_t)^T z_t``. The state
    has the same size after ten tokens as after ten thousand, where a KV cache grows by one key
    and one value per token.

    Args:
        query: ``(N, ..., L, E)``.
        key: ``(N, ..., L, E)``: one key per query (self-attention).
        value: ``(N, ..., L, Ev)``.
        state: ``(kv, z)`` of shapes ``(N, ..., E, Ev)`` and ``(N, ..., E)`` from an earlier call
            (continue a sequence), or ``None`` to start from zeros.

    Returns:
        ``(output, state)``: ``output`` ``(N, ..., L, Ev)`` equals
        ``linear_attention(query, key, value, is_causal=True)``; ``state`` is ``(kv, z)`` after
        the last position.
    """
    where = "linear_attention_recurrent"
    check_attention_inputs(query, key, value, None, 0.0, True, where=where)
    if query.size(-2) != key.size(-2):
        raise ValueError(
            f"{where}: query {tuple(query.shape)} and key {tuple(key.shape)} must have the same "
            "length: the recurrence reads one key and one value per query"
        )
    phi_q, phi_k = elu_feature_map(query), elu_feature_map(key)
    lead, E, Ev = phi_k.shape[:-2], phi_k.size(-1), value.size(-1)
    if state is None:
        kv = phi_k.new_zeros(*lead, E, Ev)  # (..., E, Ev)
        z = phi_k.new_zeros(*lead, E)  # (..., E)
    else:
        kv, z = state
        if kv.shape != (*lead, E, Ev) or z.shape != (*lead, E):
            raise ValueError(
                f"{where}: state must be (kv {(*lead, E, Ev)}, z {(*lead, E)}), got "
                f"({tuple(kv.shape)}, {tuple(z.shape)})"
            )
    outputs = []
    for t in range(query.size(-2)):
        kv = kv + phi_k[..., t, :, None] * value[..., t, None, :]  # (..., E, Ev)
        z = z + phi_k[..., t, :]  # (..., E)
        q_t = phi_q[..., t, :]  # (..., E)
        num = (q_t[..., None, :] @ kv)[..., 0, :]  # (..., Ev)
        outputs.append(num / (q_t * z).sum(dim=-1, keepdim=True))  # (..., Ev)
    out = torch.stack(outputs, dim=-2) if outputs else value.new_zeros(*lead, 0, Ev)
    return out, (kv, z)
