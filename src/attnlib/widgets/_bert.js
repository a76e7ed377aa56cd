// BERT's forward pass in the page: attnlib.models.bert.BertEncoder, written out with _nn.js's
// operations, for all-MiniLM-L6-v2 (or any BERT whose tensors carry attnlib's names). Joined
// after _base.js, _nn.js and _wordpiece.js for the heads view's live mode.
//
// The tensors are those of BertEncoder.state_dict() (unpackTensors makes them): embeddings.word,
// embeddings.position, embeddings.token_type, embeddings.norm, and per layer l
// layers.l.self_attn.{q,k,v,out}_proj, layers.l.linear1, layers.l.linear2, layers.l.norm1,
// layers.l.norm2 (.weight and .bias each). One sentence at a time: x is (L, D) row-major.
// Only a tensor's numbers, in row-major order, are used, never its packed shape: the int8 ones
// travel as blocks of 32 (attnlib.widgets.heads.minilm_pack).

const BERT_EPS = 1e-12; // BertConfig.layer_norm_eps

/** The sizes of the BERT whose tensors these are: {layers, heads, dModel, ffn, positions}. */
export function bertSizes(tensors, heads = 12) {
  let layers = 0;
  while (tensors[`layers.${layers}.linear1.weight`]) layers += 1;
  const [positions, dModel] = tensors["embeddings.position.weight"].shape;
  const ffn = layers ? tensors["layers.0.linear1.bias"].shape[0] : 0; // int8 weights come in blocks
  return { layers, heads, dModel, ffn, positions };
}

/**
 * BertEmbeddings.forward for one sentence: word + position + token type 0, then LayerNorm.
 * ids: L token ids. Returns (L, D).
 */
export function bertEmbeddings(t, ids, sizes) {
  const D = sizes.dModel;
  const L = ids.length;
  if (L > sizes.positions) {
    throw new Error(`bertEmbeddings: ${L} tokens, but the model knows ${sizes.positions} positions`);
  }
  const word = embed(t["embeddings.word.weight"].data, D, ids);
  const position = t["embeddings.position.weight"].data.subarray(0, L * D); // positions 0..L-1
  const type0 = t["embeddings.token_type.weight"].data.subarray(0, D); // every token: sentence A
  const x = new Float32Array(L * D);
  for (let i = 0; i < L; i++) {
    for (let d = 0; d < D; d++) x[i * D + d] = word[i * D + d] + position[i * D + d] + type0[d];
  }
  const norm = "embeddings.norm";
  return layerNorm(x, L, D, t[`${norm}.weight`].data, t[`${norm}.bias`].data, BERT_EPS);
}

/**
 * The first half of a post-norm encoder layer (attnlib.TransformerEncoderLayer, norm_first=False):
 *   x <- LayerNorm1(x + OutProj(MultiHeadAttention(Q x, K x, V x))).
 * x is (L, D); tokenMask[j] is true for a real token (padding is hidden as a key). Returns
 * {x (L, D), weights (heads, L, L)}.
 */
export function bertSelfAttention(t, l, x, L, sizes, tokenMask = null) {
  const { dModel: D, heads } = sizes;
  const p = (name) => t[`layers.${l}.${name}`].data;
  const project = (name) => linear(x, L, p(`${name}.weight`), p(`${name}.bias`), D, D);
  const q = project("self_attn.q_proj");
  const k = project("self_attn.k_proj");
  const v = project("self_attn.v_proj");
  const allowed = tokenMask ? (i, j) => tokenMask[j] : null;
  const att = multiHeadAttention(q, k, v, L, L, heads, D / heads, allowed);
  const o = "self_attn.out_proj";
  const out = linear(att.output, L, p(`${o}.weight`), p(`${o}.bias`), D, D);
  const x1 = layerNorm(add(x, out), L, D, p("norm1.weight"), p("norm1.bias"), BERT_EPS);
  return { x: x1, weights: att.weights };
}

/** The second half: x <- LayerNorm2(x + Linear2(GELU(Linear1(x)))), x (L, D). */
export function bertFeedForward(t, l, x, L, sizes) {
  const { dModel: D, ffn } = sizes;
  const p = (name) => t[`layers.${l}.${name}`].data;
  const hidden = gelu(linear(x, L, p("linear1.weight"), p("linear1.bias"), ffn, D));
  const mlp = linear(hidden, L, p("linear2.weight"), p("linear2.bias"), D, ffn);
  return layerNorm(add(x, mlp), L, D, p("norm2.weight"), p("norm2.bias"), BERT_EPS);
}

/**
 * BertEncoder.forward for one sentence, a half-layer at a time with a pause after each, so that
 * typing, scrolling and clicking stay responsive while it runs. ids: L token ids; stop() is asked
 * before each step and, when it says true, the pass ends early with null (a newer input
 * replaced this one). Resolves to {hidden: 1 + layers arrays (L, D), attentions: layers arrays
 * (heads, L, L)}, as BertOutput's hidden_states and attentions.
 */
export function bertForward(t, ids, sizes, { tokenMask = null, stop = () => false } = {}) {
  const L = ids.length;
  return new Promise((resolve, reject) => {
    const hidden = [];
    const attentions = [];
    let x = null;
    const next = (step) => {
      try {
        if (stop()) return resolve(null);
        const l = Math.floor((step - 1) / 2); // step 0: the embeddings; then two per layer
        if (step === 0) hidden.push((x = bertEmbeddings(t, ids, sizes)));
        else if (step % 2 === 1) {
          const sa = bertSelfAttention(t, l, x, L, sizes, tokenMask);
          x = sa.x;
          attentions.push(sa.weights);
        } else hidden.push((x = bertFeedForward(t, l, x, L, sizes)));
        if (step === 2 * sizes.layers) return resolve({ hidden, attentions });
        bertPause(() => next(step + 1)); // the page handles its events between two steps
      } catch (err) {
        reject(err);
      }
    };
    bertPause(() => next(0));
  });
}

/**
 * Run fn as a new task, after the page has handled what is waiting (input, clicks, drawing): a
 * message posted to ourselves. setTimeout(fn, 0) would do the same but, nested, waits at least
 * 4 ms each time, about 50 ms over one pass's 13 pauses.
 */
function bertPause(fn) {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    channel.port1.close();
    fn();
  };
  channel.port2.postMessage(null);
}

/** The bytes of a message buffer (anywidget hands over a DataView or an ArrayBuffer). */
export function bufferBytes(buffer) {
  if (ArrayBuffer.isView(buffer)) {
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }
  return new Uint8Array(buffer);
}

/**
 * Every layer's attention as one flat array of thousandths in (layers, heads, L, L) order: the
 * layout HeadView's sentences use (attnlib.widgets._base.pack_thousandths), so the live pass
 * draws exactly as a stored sentence does.
 */
export function attentionThousandths(attentions) {
  const size = attentions.reduce((n, a) => n + a.length, 0);
  const out = new Int32Array(size);
  let at = 0;
  for (const a of attentions) {
    for (let i = 0; i < a.length; i++) out[at + i] = Math.round(a[i] * 1000);
    at += a.length;
  }
  return out;
}
