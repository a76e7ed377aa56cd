// The arithmetic of the in-page models: the same operations as attnlib's PyTorch modules,
// written out in plain JavaScript over Float32Array, short enough to read beside the Python.
// A widget that runs a model (live_bert, live_dates, live_gpt) gets this file joined after
// _base.js and before its view (attnlib.widgets._frontend.LIBRARIES).
//
// Layouts follow PyTorch: a matrix is row-major; a Linear weight is (out_features, in_features),
// so y = x W^T + b; a batch of vectors is (rows, features); heads split the feature axis, head h
// owning columns h*headSize ... (h+1)*headSize - 1, as attnlib.MultiHeadAttention's view does.
// Numbers are float32 in storage and float64 while a dot product accumulates (JavaScript's own
// arithmetic), so the page agrees with PyTorch's float32 to about 1e-6 per operation.

// ---------------------------------------------------------------------------------------------
// Weights: attnlib.widgets._pack.pack_tensors() sends named tensors as one base64 blob and a
// manifest [{name, shape, dtype, offset, scales}]; dtype "float32", or "int8" with one float32
// scale per row (the row's largest |value| / 127) stored at byte `scales`.

/** The bytes of a base64 string. */
export function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The size of a tensor of this shape (the product of its dimensions). */
export function numel(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The named tensors of a packed blob, each {shape, data: Float32Array}; int8 tensors are
 * dequantised here (value * its row's scale), so every model below sees float32.
 */
export function unpackTensors(manifest, bytes) {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const tensors = {};
  for (const { name, shape, dtype, offset, scales } of manifest) {
    const size = numel(shape);
    let data;
    if (dtype === "float32") {
      data = new Float32Array(buffer, offset, size).slice();
    } else if (dtype === "int8") {
      const cols = shape[shape.length - 1];
      const rows = size / cols;
      const q = new Int8Array(buffer, offset, size);
      const s = new Float32Array(buffer, scales, rows);
      data = new Float32Array(size);
      for (let r = 0; r < rows; r++) {
        const scale = s[r];
        for (let c = r * cols, end = c + cols; c < end; c++) data[c] = q[c] * scale;
      }
    } else {
      throw new Error(`unpackTensors: tensor ${name} has dtype ${dtype}; expected float32 or int8`);
    }
    tensors[name] = { shape, data };
  }
  return tensors;
}

// ---------------------------------------------------------------------------------------------
// Layers. Each takes its input as (rows, features) in one Float32Array and returns a new one.

/** nn.Embedding: the rows of `table` (vocab, size) for each id. */
export function embed(table, size, ids) {
  const out = new Float32Array(ids.length * size);
  ids.forEach((id, i) => out.set(table.subarray(id * size, (id + 1) * size), i * size));
  return out;
}

/** nn.Linear: x (rows, inF) times weight (outF, inF) transposed, plus bias (outF) if given. */
export function linear(x, rows, weight, bias, outF, inF) {
  const out = new Float32Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    const xo = r * inF;
    for (let o = 0; o < outF; o++) {
      const wo = o * inF;
      // Four running sums let the engine pipeline the multiplications.
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
      for (; i + 3 < inF; i += 4) {
        s0 += x[xo + i] * weight[wo + i];
        s1 += x[xo + i + 1] * weight[wo + i + 1];
        s2 += x[xo + i + 2] * weight[wo + i + 2];
        s3 += x[xo + i + 3] * weight[wo + i + 3];
      }
      for (; i < inF; i++) s0 += x[xo + i] * weight[wo + i];
      out[r * outF + o] = s0 + s1 + s2 + s3 + (bias ? bias[o] : 0);
    }
  }
  return out;
}

/** Element-wise a + b (equal lengths): a residual connection. */
export function add(a, b) {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

/** nn.LayerNorm over the last axis (size): (x - mean) / sqrt(var + eps) * gamma + beta. */
export function layerNorm(x, rows, size, gamma, beta, eps = 1e-5) {
  const out = new Float32Array(rows * size);
  for (let r = 0; r < rows; r++) {
    const o = r * size;
    let mean = 0;
    for (let i = 0; i < size; i++) mean += x[o + i];
    mean /= size;
    let variance = 0; // the biased variance, as PyTorch's LayerNorm uses
    for (let i = 0; i < size; i++) variance += (x[o + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(variance / size + eps);
    for (let i = 0; i < size; i++) {
      out[o + i] = (x[o + i] - mean) * inv * (gamma ? gamma[i] : 1) + (beta ? beta[i] : 0);
    }
  }
  return out;
}

/** The error function, to 1.2e-7 (Numerical Recipes' erfc by Chebyshev fitting). */
export function erf(x) {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const tau = t * Math.exp(
    -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - tau : tau - 1;
}

/** nn.GELU() (the exact form, x * Phi(x), PyTorch's default and BERT's), element-wise. */
export function gelu(x) {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 0.5 * x[i] * (1 + erf(x[i] / Math.SQRT2));
  return out;
}

/** The logistic sigmoid of one number. */
export function sigmoid(v) {
  return 1 / (1 + Math.exp(-v));
}

// ---------------------------------------------------------------------------------------------
// Attention: attnlib.scaled_dot_product_attention, head by head.

/**
 * Multi-head scaled dot-product attention. q (lq, heads*headSize), k and v (lk, heads*headSize)
 * as the projections give them; allowed(i, j) says whether query i may attend to key j (true =
 * may attend, PyTorch's boolean convention; omit it to allow every key). Returns {output
 * (lq, heads*headSize), weights (heads, lq, lk)}: softmax(q k^T / sqrt(headSize)) v per head;
 * a query with no allowed key gets zero weights and a zero output, never NaN.
 */
export function multiHeadAttention(q, k, v, lq, lk, heads, headSize, allowed = null) {
  const width = heads * headSize;
  const scale = 1 / Math.sqrt(headSize);
  const output = new Float32Array(lq * width);
  const weights = new Float32Array(heads * lq * lk);
  const scores = new Array(lk);
  const row = new Array(lk);
  for (let h = 0; h < heads; h++) {
    const c = h * headSize;
    for (let i = 0; i < lq; i++) {
      for (let j = 0; j < lk; j++) {
        if (allowed && !allowed(i, j)) {
          scores[j] = -Infinity;
          continue;
        }
        let s = 0;
        for (let e = 0; e < headSize; e++) s += q[i * width + c + e] * k[j * width + c + e];
        scores[j] = s * scale;
      }
      softmaxRow(scores, row);
      const w = (h * lq + i) * lk;
      for (let j = 0; j < lk; j++) {
        weights[w + j] = row[j];
        if (row[j] === 0) continue;
        for (let e = 0; e < headSize; e++) output[i * width + c + e] += row[j] * v[j * width + c + e];
      }
    }
  }
  return { output, weights };
}

// ---------------------------------------------------------------------------------------------
// Recurrence: nn.GRUCell, the gates in PyTorch's order (reset, update, new).

/**
 * One step of nn.GRUCell: x (inF), h (hidden); weightIH (3*hidden, inF), weightHH
 * (3*hidden, hidden), biasIH and biasHH (3*hidden). Returns the new state (hidden):
 * r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
 * n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
 */
export function gruCell(x, h, weightIH, weightHH, biasIH, biasHH, inF, hidden) {
  const gi = linear(x, 1, weightIH, biasIH, 3 * hidden, inF);
  const gh = linear(h, 1, weightHH, biasHH, 3 * hidden, hidden);
  const out = new Float32Array(hidden);
  for (let i = 0; i < hidden; i++) {
    const r = sigmoid(gi[i] + gh[i]);
    const z = sigmoid(gi[hidden + i] + gh[hidden + i]);
    const n = Math.tanh(gi[2 * hidden + i] + r * gh[2 * hidden + i]);
    out[i] = (1 - z) * n + z * h[i];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Attention with a float mask (appended for live_gpt's ALiBi, usable by any model).

/**
 * Multi-head scaled dot-product attention with a float mask, PyTorch's floating attn_mask:
 * bias(h, i, j) is added to head h's scaled score of query i for key j, and -Infinity forbids
 * the key (ALiBi's distance penalties with the causal mask are such a bias). q (lq,
 * heads*headSize), k and v (lk, heads*headSize). Returns {output (lq, heads*headSize), weights
 * (heads, lq, lk)}; a query whose every key is forbidden gets zero weights and a zero output.
 */
export function multiHeadAttentionBiased(q, k, v, lq, lk, heads, headSize, bias) {
  const width = heads * headSize;
  const scale = 1 / Math.sqrt(headSize);
  const output = new Float32Array(lq * width);
  const weights = new Float32Array(heads * lq * lk);
  const scores = new Float64Array(lk);
  const row = new Float64Array(lk);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < lq; i++) {
      const qi = i * width + h * headSize;
      for (let j = 0; j < lk; j++) {
        const b = bias(h, i, j);
        if (b === -Infinity) {
          scores[j] = b; // forbidden: no dot product needed
          continue;
        }
        const kj = j * width + h * headSize;
        let s = 0;
        for (let e = 0; e < headSize; e++) s += q[qi + e] * k[kj + e];
        scores[j] = s * scale + b; // (q . k) / sqrt(E) + bias, as attnlib's SDPA adds a float mask
      }
      weights.set(softmaxRow(scores, row), (h * lq + i) * lk);
      for (let j = 0; j < lk; j++) {
        const w = row[j];
        if (w === 0) continue;
        const vj = j * width + h * headSize;
        for (let e = 0; e < headSize; e++) output[qi + e] += w * v[vj + e];
      }
    }
  }
  return { output, weights };
}
