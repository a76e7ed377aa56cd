"""Model weights for the in-page models: named tensors packed into one base64 blob and a manifest.

The widgets that run a model in the browser (``_nn.js`` holds their arithmetic) receive their
weights as :func:`pack_tensors` makes them; ``unpackTensors`` in ``_nn.js`` reads them back.
Each tensor is stored little-endian and 4-byte aligned, either as float32 or, for the large
tables of a pretrained model, as int8 with one float32 scale per row (symmetric: the row's
largest absolute value maps to 127). :func:`unpack_tensors` is the same reading in Python, for
the tests and for measuring what int8 costs.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping

import numpy as np
import torch

__all__ = ["pack_tensors", "unpack_tensors", "quantize_rows"]


def _as_array(name: str, value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 0:
        raise ValueError(f"pack_tensors: tensor {name!r} is a scalar; pack tensors of rank >= 1")
    if not np.isfinite(arr).all():
        raise ValueError(f"pack_tensors: tensor {name!r} of shape {arr.shape} has NaN or inf")
    return arr


def quantize_rows(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row of the last axis: ``(q, scales)`` with ``arr ~ q * scales[:, None]``.

    A row of zeros gets scale 0 (and decodes to zeros).
    """
    rows = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1, arr.shape[-1])
    scales = np.abs(rows).max(axis=1) / 127.0
    safe = np.where(scales > 0, scales, 1.0)
    q = np.clip(np.rint(rows / safe[:, None]), -127, 127).astype(np.int8)
    return q.reshape(arr.shape), scales.astype(np.float32)


def pack_tensors(
    tensors: Mapping[str, torch.Tensor | np.ndarray], *, int8: Collection[str] = ()
) -> tuple[list[dict], str]:
    """Pack named tensors for a widget's state.

    Args:
        tensors: name -> tensor (any float dtype; stored as float32).
        int8: the names to store as int8 with a float32 scale per row (the last axis).

    Returns:
        ``(manifest, blob)``: a list of ``{"name", "shape", "dtype", "offset"[, "scales"]}``
        (offsets in bytes into the decoded blob) and the blob as base64 text.
    """
    unknown = sorted(set(int8) - set(tensors))
    if unknown:
        raise ValueError(f"pack_tensors: int8 names {unknown} are not among the tensors")
    chunks: list[bytes] = []
    size = 0
    manifest = []

    def put(data: bytes) -> int:
        nonlocal size
        offset = size
        pad = (-len(data)) % 4
        chunks.append(data + b"\0" * pad)
        size += len(data) + pad
        return offset

    for name, value in tensors.items():
        arr = _as_array(name, value)
        entry = {"name": name, "shape": list(arr.shape)}
        if name in int8:
            q, scales = quantize_rows(arr)
            entry.update(dtype="int8", offset=put(q.tobytes()))
            entry["scales"] = put(scales.astype("<f4").tobytes())
        else:
            entry.update(dtype="float32", offset=put(arr.astype("<f4").tobytes()))
        manifest.append(entry)
    return manifest, base64.b64encode(b"".join(chunks)).decode("ascii")


def unpack_tensors(manifest: list[dict], blob: str) -> dict[str, np.ndarray]:
    """The tensors :func:`pack_tensors` packed, as float32 arrays (int8 ones dequantised)."""
    raw = base64.b64decode(blob)
    out = {}
    for entry in manifest:
        shape = tuple(entry["shape"])
        n = int(np.prod(shape))
        if entry["dtype"] == "float32":
            out[entry["name"]] = np.frombuffer(raw, "<f4", n, entry["offset"]).reshape(shape).copy()
        else:
            q = np.frombuffer(raw, np.int8, n, entry["offset"]).reshape(-1, shape[-1])
            s = np.frombuffer(raw, "<f4", q.shape[0], entry["scales"])
            out[entry["name"]] = (q * s[:, None]).astype(np.float32).reshape(shape)
    return out
