"""attnlib.widgets._pack: the weights the in-page models receive, packed and read back."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

from attnlib.widgets._pack import pack_tensors, quantize_rows, unpack_tensors


def test_float32_tensors_come_back_exactly_and_aligned():
    g = torch.Generator().manual_seed(0)
    tensors = {"w": torch.randn(3, 5, generator=g), "b": torch.randn(3, generator=g),
               "half": torch.randn(7, generator=g).to(torch.float16)}
    manifest, blob = pack_tensors(tensors)
    back = unpack_tensors(manifest, blob)
    for name, t in tensors.items():
        assert np.array_equal(back[name], t.float().numpy()), name
    assert [e["offset"] for e in manifest] == [0, 60, 72]
    assert len(base64.b64decode(blob)) == 4 * (15 + 3 + 7)


def test_int8_rows_are_within_half_a_step_and_padded_to_four_bytes():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 3, generator=g) * torch.tensor([[1.0], [10.0], [0.01], [0.0], [3.0]])
    manifest, blob = pack_tensors({"w": w, "after": torch.ones(2)}, int8={"w"})
    entry = manifest[0]
    assert entry["dtype"] == "int8" and entry["offset"] == 0
    assert entry["scales"] == 16  # 15 int8 bytes, padded to 16
    back = unpack_tensors(manifest, blob)
    step = w.abs().amax(dim=1, keepdim=True).numpy() / 127
    assert (np.abs(back["w"] - w.numpy()) <= step / 2 + 1e-7).all()
    assert (back["w"][3] == 0).all(), "a row of zeros decodes to zeros"
    assert np.array_equal(back["after"], np.ones(2, np.float32))


def test_quantize_rows_keeps_each_rows_largest_value():
    q, scales = quantize_rows(np.array([[0.5, -1.0], [2.0, 1.0]], np.float32))
    assert q.tolist() == [[64, -127], [127, 64]]
    assert np.allclose(scales, [1 / 127, 2 / 127])


@pytest.mark.parametrize(("tensors", "int8", "message"), [
    ({"x": torch.tensor(1.0)}, (), "scalar"),
    ({"x": torch.tensor([1.0, float("nan")])}, (), "NaN or inf"),
    ({"x": torch.ones(2)}, ("y",), "not among"),
])
def test_bad_input_names_the_tensor(tensors, int8, message):
    with pytest.raises(ValueError, match=message):
        pack_tensors(tensors, int8=int8)
