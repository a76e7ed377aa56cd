"""Which input tokens did a prediction depend on? Four answers, and how to test them.

A heatmap of attention weights is tempting to read as an explanation. This module computes that
reading and three others for the same prediction, so a chapter can compare them:

- **raw attention** (:func:`attention_maps`, :func:`raw_attention`): the weights of one layer,
  per head or averaged over heads;
- **attention rollout** (:func:`attention_rollout`, Abnar & Zuidema 2020): every layer's
  head-averaged weights, with the identity added for the residual connection, multiplied through
  the layers;
- **gradient saliency** (:func:`gradient_saliency`): gradient x input on the token embeddings,
  one norm per token;
- **occlusion** (:func:`occlusion`): hide one token from attention and see how much the
  prediction moves, an *intervention* rather than a reading of the model's internals.

And two tools that work on heads instead of tokens: :func:`ablate_heads` (a context manager that
zeroes chosen heads) and :func:`head_importance` (Michel et al. 2019: how strongly the prediction
reacts to turning each head down, from one backward pass). :func:`ablate_heads` and
:func:`scale_heads` also work on the Llama decoder (:class:`attnlib.models.llama.LlamaDecoder`),
whose attention calls its output projection ``o_proj`` instead of ``out_proj``.

The model is any encoder shaped like :class:`attnlib.models.bert.BertEncoder`: it has
``.embeddings`` (a module mapping ids to ``(N, L, D)``), ``.layers`` (modules whose ``.self_attn``
is an :class:`attnlib.MultiHeadAttention`), and ``model(input_ids, attention_mask)`` returns an
object with ``.attentions`` (one ``(N, H, L, L)`` tensor per layer). A *target* is a function
``target(output, attention_mask) -> (N,)`` that reads the prediction to explain from that output,
e.g. a linear probe on mean-pooled hidden states.

Shape legend (see book/notation.md): N batch, H heads, L query length, S key length, E size per
head, D model size; ``layers`` is the number of encoder layers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from ._checks import shape

__all__ = [
    "Target",
    "attention_maps",
    "raw_attention",
    "attention_rollout",
    "pooled_scores",
    "gradient_saliency",
    "occlusion",
    "ablate_heads",
    "scale_heads",
    "head_importance",
    "rank_correlation",
]

#: ``target(output, attention_mask) -> (N,)``: the prediction to explain, one number per sequence.
Target = Callable[[object, torch.Tensor], torch.Tensor]


# --- checks -------------------------------------------------------------------------------------


def _check_ids(input_ids, attention_mask, fn: str) -> torch.Tensor:
    """Validate ``input_ids`` (N, L) long and return a boolean ``attention_mask`` (N, L)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        raise ValueError(
            f"{fn}: input_ids must be a (N, L) tensor of token ids, got {shape(input_ids)}"
        )
    if attention_mask is None:
        return torch.ones(input_ids.shape, dtype=torch.bool, device=input_ids.device)
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"{fn}: attention_mask must have the shape of input_ids {shape(input_ids)} "
            f"(True = a real token), got {shape(attention_mask)}"
        )
    return attention_mask.bool()


def _layers(model: nn.Module, fn: str) -> nn.ModuleList:
    layers = getattr(model, "layers", None)
    if layers is None or not all(hasattr(layer, "self_attn") for layer in layers):
        raise TypeError(
            f"{fn}: model must have .layers, a list of layers each with .self_attn (an "
            f"attnlib.MultiHeadAttention, or the Llama decoder's GroupedQueryAttention), got "
            f"{type(model).__name__}"
        )
    return layers


def _stack(attentions, fn: str, *, name: str = "attentions") -> torch.Tensor:
    """A ``(layers, N, H, L, S)`` tensor from a stacked tensor or a sequence of per-layer ones."""
    if isinstance(attentions, torch.Tensor):
        stacked = attentions
    elif isinstance(attentions, Sequence) and len(attentions) > 0:
        if not all(isinstance(a, torch.Tensor) for a in attentions):
            raise TypeError(f"{fn}: {name} must hold tensors, one (N, H, L, S) per layer")
        shapes = {tuple(a.shape) for a in attentions}
        if len(shapes) != 1:
            raise ValueError(f"{fn}: every layer's {name} must have the same shape, got {shapes}")
        stacked = torch.stack(tuple(attentions))  # (layers, N, H, L, S)
    else:
        raise TypeError(
            f"{fn}: {name} must be a tensor (layers, N, H, L, S) or a non-empty sequence of "
            f"(N, H, L, S) tensors, got {type(attentions).__name__}"
        )
    if stacked.dim() != 5:
        raise ValueError(
            f"{fn}: {name} must have shape (layers, N, H, L, S) (or be a sequence of "
            f"(N, H, L, S) tensors), got {shape(stacked)}"
        )
    return stacked


# --- reading the attention weights ----------------------------------------------------------------


@torch.no_grad()
def attention_maps(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Every layer's attention weights for a batch, stacked.

    Args:
        model: an encoder whose output has ``.attentions`` (see the module docstring).
        input_ids: ``(N, L)`` token ids.
        attention_mask: ``(N, L)``, True = a real token (default: all real).

    Returns:
        ``(layers, N, H, L, L)``: layer ``l``, sequence ``n``, head ``h``, query ``i``, key ``j``.
    """
    mask = _check_ids(input_ids, attention_mask, "attention_maps")
    out = model(input_ids, mask)
    attentions = getattr(out, "attentions", None)
    if not attentions:
        raise ValueError(
            "attention_maps: the model's output has no .attentions; call a model that returns "
            "its attention weights (BertEncoder does unless need_weights=False)"
        )
    return _stack(attentions, "attention_maps")


def raw_attention(attentions, layer: int = -1, head: int | None = None) -> torch.Tensor:
    """One layer's attention weights: one head, or the average over heads.

    Args:
        attentions: ``(layers, N, H, L, S)``, or a sequence of ``(N, H, L, S)`` tensors.
        layer: which layer (negative counts from the last; default the last).
        head: which head; None averages the H heads.

    Returns:
        ``(N, L, S)``; each row still sums to 1.
    """
    a = _stack(attentions, "raw_attention")
    n_layers, _, n_heads = a.shape[:3]
    if not isinstance(layer, int) or not -n_layers <= layer < n_layers:
        raise ValueError(
            f"raw_attention: layer must be an int in [-{n_layers}, {n_layers}), got {layer!r}"
        )
    if head is not None and (not isinstance(head, int) or not 0 <= head < n_heads):
        raise ValueError(
            f"raw_attention: head must be None or an int in [0, {n_heads}), got {head!r}"
        )
    w = a[layer]  # (N, H, L, S)
    return w.mean(dim=1) if head is None else w[:, head]  # (N, L, S)


def attention_rollout(
    attentions,
    *,
    residual: float = 0.5,
    head_fusion: str = "mean",
    cumulative: bool = False,
) -> torch.Tensor:
    r"""Attention rollout (Abnar & Zuidema, 2020): follow attention back through every layer.

    Each layer's weights are fused over heads, mixed with the identity for the residual
    connection and renormalised, :math:`\hat A_l = \mathrm{rownorm}((1 - r) A_l + r I)`, then
    multiplied through the layers, later layers on the left:
    :math:`R_l = \hat A_l \hat A_{l-1} \cdots \hat A_1`. Row ``i`` of :math:`R_l` says how much
    of position ``i``'s vector after layer ``l`` can be traced to each input position, *if* the
    only mixing between positions were attention and the residual path, each passing
    information linearly and in proportion to its weight. That is the method's assumption, not a
    fact about the network.

    Args:
        attentions: ``(layers, N, H, L, L)``, or a sequence of ``(N, H, L, L)`` tensors (first
            layer first).
        residual: r, the weight of the identity; 0.5 is the paper's choice, 0 multiplies the raw
            weights.
        head_fusion: ``"mean"`` (the paper's), ``"max"`` or ``"min"`` over heads.
        cumulative: also return the rollout after every layer, not only after the last.

    Returns:
        ``(N, L, L)`` after the last layer, or ``(layers, N, L, L)`` with ``cumulative=True``
        (entry ``l`` is the rollout through layers ``0..l``). Every row sums to 1.

    See the chapter "Attention is not explanation".
    """
    a = _stack(attentions, "attention_rollout")
    if a.size(-1) != a.size(-2):
        raise ValueError(
            f"attention_rollout: self-attention weights must be square (L == S), got {shape(a)}"
        )
    number = isinstance(residual, (int, float)) and not isinstance(residual, bool)
    if not number or not 0 <= residual <= 1:
        raise ValueError(
            f"attention_rollout: residual must be a number in [0, 1], got {residual!r}"
        )
    fusions = {
        "mean": lambda w: w.mean(dim=2),
        "max": lambda w: w.amax(dim=2),
        "min": lambda w: w.amin(dim=2),
    }
    if head_fusion not in fusions:
        raise ValueError(
            f"attention_rollout: head_fusion must be 'mean', 'max' or 'min', got {head_fusion!r}"
        )
    fused = fusions[head_fusion](a.double())  # (layers, N, L, L)
    L = fused.size(-1)
    eye = torch.eye(L, dtype=fused.dtype, device=fused.device)  # (L, L)
    mixed = (1 - residual) * fused + residual * eye  # (layers, N, L, L)
    mixed = mixed / mixed.sum(dim=-1, keepdim=True)  # (layers, N, L, L), rows sum to 1
    rollout = mixed[0]  # (N, L, L)
    steps = [rollout]
    for layer in range(1, mixed.size(0)):
        rollout = mixed[layer] @ rollout  # (N, L, L)
        steps.append(rollout)
    result = torch.stack(steps) if cumulative else rollout  # (layers, N, L, L) or (N, L, L)
    return result.to(a.dtype)


def pooled_scores(
    weights: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    pooling: str = "mean",
) -> torch.Tensor:
    """One score per token from an ``(N, L, S)`` matrix, as seen by the model's read-out.

    A sentence prediction reads one vector. With ``pooling="cls"`` it is the first position's, so
    the row of query 0 says where it looked. With ``pooling="mean"`` (sentence-transformers,
    MiniLM) it is the average of the real positions' vectors, so the matching summary is the
    average of their rows: how much attention each key *receives* from the pooled positions.

    Args:
        weights: ``(N, L, S)``, e.g. from :func:`raw_attention` or :func:`attention_rollout`.
        attention_mask: ``(N, L)``, True = a real token (used by ``"mean"``; default all real).
        pooling: ``"mean"`` or ``"cls"``.

    Returns:
        ``(N, S)``; each row sums to 1 when the rows of ``weights`` do.
    """
    if not isinstance(weights, torch.Tensor) or weights.dim() != 3:
        raise ValueError(
            f"pooled_scores: weights must be a (N, L, S) tensor, got {shape(weights)}"
        )
    if pooling == "cls":
        return weights[:, 0]  # (N, S)
    if pooling != "mean":
        raise ValueError(f"pooled_scores: pooling must be 'mean' or 'cls', got {pooling!r}")
    N, L, _ = weights.shape
    if attention_mask is None:
        return weights.mean(dim=1)  # (N, S)
    if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != (N, L):
        raise ValueError(
            f"pooled_scores: attention_mask must have shape (N, L) = {(N, L)}, got "
            f"{shape(attention_mask)}"
        )
    m = attention_mask.to(weights.dtype)[..., None]  # (N, L, 1)
    return (weights * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # (N, S)


# --- gradients and interventions ------------------------------------------------------------------


def _target_values(target: Target, out, mask: torch.Tensor, fn: str) -> torch.Tensor:
    if not callable(target):
        raise TypeError(
            f"{fn}: target must be a function target(output, attention_mask) -> (N,), got "
            f"{type(target).__name__}"
        )
    y = target(out, mask)
    N = mask.size(0)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (N,):
        raise ValueError(
            f"{fn}: target must return one number per sequence, shape (N,) = ({N},), got "
            f"{shape(y)}"
        )
    return y


def gradient_saliency(
    model: nn.Module,
    input_ids: torch.Tensor,
    target: Target,
    attention_mask: torch.Tensor | None = None,
    *,
    times_input: bool = True,
) -> torch.Tensor:
    r"""Gradient x input on the token embeddings: one saliency norm per token.

    A forward hook on ``model.embeddings`` swaps its output ``x`` (N, L, D) for a leaf tensor,
    the target's gradient with respect to it is taken, and each token gets
    :math:`\lVert \partial y / \partial x_i \odot x_i \rVert` (or the gradient's norm alone with
    ``times_input=False``). The model's parameters get no ``.grad``. The sequences of a batch
    are independent, so one backward pass of the summed target gives every sequence's gradient.

    Args:
        model: an encoder with ``.embeddings`` (see the module docstring).
        input_ids: ``(N, L)`` token ids.
        target: ``target(output, attention_mask) -> (N,)``, the prediction to explain.
        attention_mask: ``(N, L)``, True = a real token (default all real).
        times_input: multiply the gradient by the embedding (gradient x input) before the norm.

    Returns:
        ``(N, L)``, non-negative; 0 at padded positions.

    See the chapter "Attention is not explanation".
    """
    fn = "gradient_saliency"
    mask = _check_ids(input_ids, attention_mask, fn)
    embeddings = getattr(model, "embeddings", None)
    if not isinstance(embeddings, nn.Module):
        raise TypeError(f"{fn}: model must have .embeddings, a module ids -> (N, L, D)")
    store: dict[str, torch.Tensor] = {}

    def hook(module, args, output):
        leaf = output.detach().requires_grad_(True)  # (N, L, D), the input we differentiate by
        store["x"] = leaf
        return leaf

    handle = embeddings.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            out = model(input_ids, mask)
            y = _target_values(target, out, mask, fn)  # (N,)
            (grad,) = torch.autograd.grad(y.sum(), store["x"])  # (N, L, D)
    finally:
        handle.remove()
    x = store["x"].detach()
    contribution = grad * x if times_input else grad  # (N, L, D)
    return contribution.norm(dim=-1) * mask  # (N, L)


@torch.no_grad()
def occlusion(
    model: nn.Module,
    input_ids: torch.Tensor,
    target: Target,
    attention_mask: torch.Tensor | None = None,
    *,
    positions: Iterable[int] | None = None,
) -> torch.Tensor:
    """How much the prediction drops when one token is hidden: ``target(full) - target(hidden)``.

    A token is hidden by setting its ``attention_mask`` entry to False: no position can attend to
    it and a mean-pooling target no longer averages it in, while every other token keeps its
    position. Each hidden token costs one forward pass (done as one batch per sequence).

    Args:
        model: an encoder (see the module docstring).
        input_ids: ``(N, L)`` token ids.
        target: ``target(output, attention_mask) -> (N,)``.
        attention_mask: ``(N, L)``, True = a real token (default all real).
        positions: which positions to hide (default every real one); the others score 0.

    Returns:
        ``(N, L)``: positive where hiding the token lowers the target, negative where it raises
        it; 0 at positions not hidden.
    """
    fn = "occlusion"
    mask = _check_ids(input_ids, attention_mask, fn)
    N, L = input_ids.shape
    wanted = list(range(L)) if positions is None else [int(p) for p in positions]
    bad = [p for p in wanted if not 0 <= p < L]
    if bad:
        raise ValueError(f"{fn}: positions must lie in [0, {L}), got {bad}")
    base = _target_values(target, model(input_ids, mask), mask, fn)  # (N,)
    scores = torch.zeros(N, L, dtype=base.dtype, device=base.device)  # (N, L)
    for n in range(N):
        hide = [p for p in wanted if mask[n, p]]
        if not hide:
            continue
        masks = mask[n].repeat(len(hide), 1)  # (len(hide), L)
        masks[torch.arange(len(hide)), torch.tensor(hide)] = False
        ids = input_ids[n].repeat(len(hide), 1)  # (len(hide), L)
        y = _target_values(target, model(ids, masks), masks, fn)  # (len(hide),)
        scores[n, hide] = base[n] - y
    return scores


# --- heads ---------------------------------------------------------------------------------------


def _head_geometry(layer: nn.Module) -> tuple[int, int]:
    attn = layer.self_attn
    return int(attn.num_heads), int(attn.head_dim)


def _output_projection(layer: nn.Module, fn: str) -> nn.Module:
    """The linear layer that receives the heads' outputs side by side, ``(N, L, H*E)``.

    ``out_proj`` in :class:`attnlib.MultiHeadAttention`, ``o_proj`` in the Llama decoder's
    :class:`attnlib.models.llama.GroupedQueryAttention` (Hugging Face's name).
    """
    attn = layer.self_attn
    for name in ("out_proj", "o_proj"):
        if isinstance(getattr(attn, name, None), nn.Module):
            return getattr(attn, name)
    raise TypeError(
        f"{fn}: a layer's .self_attn must have an output projection .out_proj or .o_proj, "
        f"got {type(attn).__name__}"
    )


@contextlib.contextmanager
def ablate_heads(model: nn.Module, heads: Iterable[tuple[int, int]]) -> Iterator[None]:
    """Zero chosen heads' outputs inside the ``with`` block; everything is restored on exit.

    For each layer with a chosen head, a forward pre-hook on ``layer.self_attn.out_proj`` (or
    ``o_proj``, the Llama decoder's name) receives the concatenated head outputs ``(N, L, H*E)``
    and returns a copy with head ``h``'s slice ``[h*E : (h+1)*E]`` set to zero, exactly as if that
    head had produced nothing. The residual connection and the other heads are untouched.

    Args:
        model: an encoder with ``.layers`` (see the module docstring), or a
            :class:`attnlib.models.llama.LlamaDecoder`.
        heads: ``(layer, head)`` pairs, e.g. ``[(0, 2), (3, 1)]``; repeats are harmless.

    Example::

        with ablate_heads(model, [(5, 9)]):
            out = model(ids, mask)   # layer 5's head 9 silenced

    See the chapter "Attention is not explanation".
    """
    fn = "ablate_heads"
    layers = _layers(model, fn)
    chosen: dict[int, set[int]] = {}
    for pair in heads:
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in pair)
        ):
            raise ValueError(f"{fn}: heads must be (layer, head) pairs of ints, got {pair!r}")
        layer, head = pair
        if not 0 <= layer < len(layers):
            raise ValueError(f"{fn}: layer {layer} does not exist; the model has {len(layers)}")
        H, _ = _head_geometry(layers[layer])
        if not 0 <= head < H:
            raise ValueError(f"{fn}: head {head} does not exist; layer {layer} has {H} heads")
        chosen.setdefault(layer, set()).add(head)

    def make_hook(silenced: list[int], H: int, E: int):
        def hook(module, args):
            (x, *rest) = args  # x: (N, L, H*E), the heads' outputs side by side
            x = x.view(*x.shape[:-1], H, E).clone()  # (N, L, H, E)
            x[..., silenced, :] = 0.0
            return (x.flatten(-2), *rest)  # (N, L, H*E)

        return hook

    handles = []
    try:
        for layer, silenced in sorted(chosen.items()):
            H, E = _head_geometry(layers[layer])
            out_proj = _output_projection(layers[layer], fn)
            handles.append(out_proj.register_forward_pre_hook(make_hook(sorted(silenced), H, E)))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def scale_heads(model: nn.Module, gates: torch.Tensor) -> Iterator[None]:
    """Multiply every head's output by a gate inside the ``with`` block (1 = unchanged).

    Gates that require grad turn head importance into a gradient (:func:`head_importance`).

    Args:
        model: an encoder with ``.layers``.
        gates: ``(layers, H)`` (the same for every sequence) or ``(layers, N, H)`` (one gate per
            sequence and head).
    """
    fn = "scale_heads"
    layers = _layers(model, fn)
    H, E = _head_geometry(layers[0])
    if not isinstance(gates, torch.Tensor) or gates.dim() not in (2, 3):
        raise ValueError(
            f"{fn}: gates must be a tensor (layers, H) or (layers, N, H), got {shape(gates)}"
        )
    if gates.size(0) != len(layers) or gates.size(-1) != H:
        raise ValueError(
            f"{fn}: gates must have shape (layers, H) = {(len(layers), H)} or (layers, N, H), "
            f"got {shape(gates)}"
        )

    def make_hook(gate: torch.Tensor):
        def hook(module, args):
            (x, *rest) = args  # (N, L, H*E)
            N = x.size(0)
            g = gate.view(1, 1, H, 1) if gate.dim() == 1 else gate.view(N, 1, H, 1)
            y = x.view(*x.shape[:-1], H, E) * g.to(x.dtype)  # (N, L, H, E)
            return (y.flatten(-2), *rest)  # (N, L, H*E)

        return hook

    handles = []
    try:
        for i, layer in enumerate(layers):
            out_proj = _output_projection(layer, fn)
            handles.append(out_proj.register_forward_pre_hook(make_hook(gates[i])))
        yield
    finally:
        for handle in handles:
            handle.remove()


def head_importance(
    model: nn.Module,
    input_ids: torch.Tensor,
    target: Target,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Each head's importance for the target, by gradient (Michel et al., 2019).

    Every head's output is multiplied by a gate :math:`\xi_h = 1` (:func:`scale_heads`); the
    importance of head h is :math:`\frac{1}{N}\sum_n |\partial y_n / \partial \xi_h|`, a
    first-order estimate of how much the prediction changes when the head is removed. One
    forward and one backward pass give all heads for all sequences (one gate per sequence).

    Args:
        model: an encoder with ``.layers``.
        input_ids: ``(N, L)`` token ids.
        target: ``target(output, attention_mask) -> (N,)``.
        attention_mask: ``(N, L)``, True = a real token.

    Returns:
        ``(layers, H)``, non-negative.
    """
    fn = "head_importance"
    mask = _check_ids(input_ids, attention_mask, fn)
    layers = _layers(model, fn)
    H, _ = _head_geometry(layers[0])
    N = input_ids.size(0)
    param = next(model.parameters())
    gates = torch.ones(
        len(layers), N, H, device=param.device, dtype=param.dtype, requires_grad=True
    )  # (layers, N, H)
    with torch.enable_grad(), scale_heads(model, gates):
        y = _target_values(target, model(input_ids, mask), mask, fn)  # (N,)
        (grad,) = torch.autograd.grad(y.sum(), gates)  # (layers, N, H)
    return grad.abs().mean(dim=1)  # (layers, H)


# --- comparing scores ----------------------------------------------------------------------------


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 along the last dimension; tied values share their average rank."""
    below = (x[..., None, :] < x[..., :, None]).sum(-1)  # (..., n): how many are smaller
    equal = (x[..., None, :] == x[..., :, None]).sum(-1)  # (..., n): itself included
    return below.double() + (equal.double() - 1) / 2  # (..., n)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation along the last dimension (ties get their average rank).

    Args:
        a: ``(..., n)`` scores.
        b: ``(..., n)`` scores for the same n items.

    Returns:
        ``(...)`` correlations in [-1, 1] (in ``a``'s floating dtype); NaN where one side is
        constant.
    """
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError("rank_correlation: a and b must be tensors")
    if a.shape != b.shape or a.dim() == 0 or a.size(-1) < 2:
        raise ValueError(
            f"rank_correlation: a and b must have the same shape (..., n) with n >= 2, got "
            f"{shape(a)} and {shape(b)}"
        )
    ra = _ranks(a.detach())  # (..., n)
    rb = _ranks(b.detach())  # (..., n)
    ra = ra - ra.mean(dim=-1, keepdim=True)
    rb = rb - rb.mean(dim=-1, keepdim=True)
    rho = (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1))  # (...)
    return rho.to(a.dtype if a.is_floating_point() else torch.get_default_dtype())
