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

/**
 * nn.Linear: x (rows, inF) times weight (outF, inF) transposed, plus bias (outF) if given:
 * out[r][o] = x[r] . weight[o] + bias[o].
 */
export function linear(x, rows, weight, bias, outF, inF) {
  const out = new Float32Array(rows * outF);
  // One dot product, with four running sums so that the additions need not wait on each other.
  const dot = (r, o) => {
    const xo = r * inF, wo = o * inF;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
    for (; i + 3 < inF; i += 4) {
      s0 += x[xo + i] * weight[wo + i];
      s1 += x[xo + i + 1] * weight[wo + i + 1];
      s2 += x[xo + i + 2] * weight[wo + i + 2];
      s3 += x[xo + i + 3] * weight[wo + i + 3];
    }
    for (; i < inF; i++) s0 += x[xo + i] * weight[wo + i];
    return s0 + s1 + s2 + s3;
  };
  // The same sums, 4 rows x 3 outputs at a time: each number loaded from x or the weight serves
  // three or four products, and the twelve sums stay in registers (2.5x faster in V8 than one
  // dot product at a time, for a 16-token sentence through MiniLM's layers).
  const rows4 = rows - (rows % 4), outs3 = outF - (outF % 3);
  for (let o = 0; o < outs3; o += 3) {
    const wa = o * inF, wb = wa + inF, wc = wb + inF;
    for (let r = 0; r < rows4; r += 4) {
      const x0 = r * inF, x1 = x0 + inF, x2 = x1 + inF, x3 = x2 + inF;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (let i = 0; i < inF; i++) {
        const p0 = x[x0 + i], p1 = x[x1 + i], p2 = x[x2 + i], p3 = x[x3 + i];
        let w = weight[wa + i];
        a0 += p0 * w; a1 += p1 * w; a2 += p2 * w; a3 += p3 * w;
        w = weight[wb + i];
        b0 += p0 * w; b1 += p1 * w; b2 += p2 * w; b3 += p3 * w;
        w = weight[wc + i];
        c0 += p0 * w; c1 += p1 * w; c2 += p2 * w; c3 += p3 * w;
      }
      const sums = [[a0, b0, c0], [a1, b1, c1], [a2, b2, c2], [a3, b3, c3]];
      sums.forEach((abc, k) => out.set(abc, (r + k) * outF + o));
    }
  }
  for (let r = 0; r < rows; r++) {  // what the blocks left: the last rows, the last outputs
    for (let o = r < rows4 ? outs3 : 0; o < outF; o++) out[r * outF + o] = dot(r, o);
  }
  if (bias) for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) out[r * outF + o] += bias[o];
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
  // A boolean mask is the float mask 0 / -Infinity: a forbidden key scores -Infinity.
  const bias = allowed ? (h, i, j) => (allowed(i, j) ? 0 : -Infinity) : () => 0;
  return multiHeadAttentionBiased(q, k, v, lq, lk, heads, headSize, bias);
}

/**
 * Multi-head scaled dot-product attention with a float mask, PyTorch's floating attn_mask:
 * bias(h, i, j) is added to head h's scaled score of query i for key j, and -Infinity forbids
 * the key (ALiBi's distance penalties with the causal mask are such a bias; the GPT chapter's live
 * model uses it). q (lq,
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
