"""Export all-MiniLM-L6-v2 (attnlib's BertEncoder with the package's weights) to ONNX, with
every layer's attention weights as graph outputs, for the onnxruntime-web comparison.

Run in a venv of its own that has ``onnx`` and ``onnxscript`` (and ``onnxruntime`` for the
int8 file and the check); see benchmarks/inpage/README.md. Never part of the course's
requirements.

    python benchmarks/inpage/export_minilm_onnx.py OUT_DIR

Writes OUT_DIR/minilm.onnx (float32) and OUT_DIR/minilm.int8.onnx (weight-only int8: every
large weight stored as int8 with one float32 scale per row, turned back into float32 by a
DequantizeLinear node, so the arithmetic stays float32 as in the hand-written page model), and
prints the sizes and the largest difference from PyTorch on a 16-token sentence (hidden state
and attention weights), run by onnxruntime in Python. (onnxruntime's own quantize_dynamic,
which also quantises the activations, was tried: attention weights off by 0.3.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from attnlib.weights.minilm import load_minilm

SIXTEEN = "The quick brown fox jumps over the lazy dog near the river bank."


class WithAttentions(torch.nn.Module):
    """input_ids (1, L) -> last hidden state (1, L, D) and six attentions (1, H, L, L)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        out = self.model(input_ids, need_weights=True)
        return (out.last_hidden_state, *out.attentions)


BLOCK = 32  # numbers per int8 scale, along a row of PyTorch's weight (as the page model does)


def weight_only_int8(source: Path, target: Path) -> None:
    """What the hand-written page model quantises, the same way: the word embeddings and every
    Linear weight become int8 with one float32 scale per block of 32 numbers along a row of
    PyTorch's tensor (symmetric: the block's max |w| / 127), turned back into float32 by a
    blocked DequantizeLinear (opset 21); positions, LayerNorms and biases stay float32. The
    exported MatMul holds W^T, so its blocks run down the columns (axis 0)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    axis_of = {}  # initializer name -> the axis its blocks run along
    for node in graph.node:
        if node.op_type == "Gather" and "word" in node.input[0]:
            axis_of[node.input[0]] = 1
        if node.op_type == "MatMul" and len(node.input) == 2:
            axis_of[node.input[1]] = 0
    kept, nodes = [], []
    for init in graph.initializer:
        w = numpy_helper.to_array(init)
        if init.name not in axis_of or w.ndim != 2:
            kept.append(init)
            continue
        axis = axis_of[init.name]
        v = w if axis == 1 else w.T  # blocks along the last axis of v
        blocks = v.reshape(v.shape[0], -1, BLOCK)
        scale = np.abs(blocks).max(axis=2) / 127  # (rows, blocks)
        scale[scale == 0] = 1
        q = np.clip(np.round(blocks / scale[:, :, None]), -127, 127).astype(np.int8)
        q = q.reshape(v.shape)
        if axis == 0:
            q, scale = q.T, scale.T
        q, scale = np.ascontiguousarray(q), np.ascontiguousarray(scale.astype(np.float32))
        kept += [
            numpy_helper.from_array(q, init.name + "_int8"),
            numpy_helper.from_array(scale, init.name + "_scale"),
            numpy_helper.from_array(np.zeros(scale.shape, np.int8), init.name + "_zero"),
        ]
        inputs = [init.name + "_int8", init.name + "_scale", init.name + "_zero"]
        nodes.append(helper.make_node("DequantizeLinear", inputs, [init.name], axis=axis,
                                      block_size=BLOCK))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, 21)  # blocked DequantizeLinear
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_minilm()
    wrapper = WithAttentions(model).eval()
    ids = torch.tensor([tokenizer.encode(SIXTEEN).ids])
    assert ids.shape[1] == 16, ids.shape
    names = ["last_hidden_state"] + [f"attention_{k}" for k in range(6)]
    fp32 = out_dir / "minilm.onnx"
    length = torch.export.Dim("length", min=2, max=512)
    program = torch.onnx.export(
        wrapper,
        (ids,),
        dynamo=True,
        input_names=["input_ids"],
        output_names=names,
        dynamic_shapes={"input_ids": {1: length}},
        opset_version=18,
        external_data=False,
    )
    program.save(str(fp32), external_data=False)
    int8 = out_dir / "minilm.int8.onnx"
    weight_only_int8(fp32, int8)

    import onnxruntime as ort

    with torch.no_grad():
        want = [t.numpy() for t in wrapper(ids)]
    for path in (fp32, int8):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(names, {"input_ids": ids.numpy()})
        hidden = float(np.abs(got[0] - want[0]).max())
        weights = max(float(np.abs(g - w).max()) for g, w in zip(got[1:], want[1:], strict=True))
        size = path.stat().st_size / 1e6
        print(f"{path.name}: {size:.1f} MB; onnxruntime (Python, CPU) vs PyTorch on 16 tokens: "
              f"hidden {hidden:.1e}, attention weights {weights:.1e}")
    np.save(out_dir / "sixteen_ids.npy", ids.numpy())
    np.savez(out_dir / "sixteen_want.npz", *want)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/minilm-onnx"))
