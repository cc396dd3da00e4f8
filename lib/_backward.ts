/**
 * Hand-written backward pass for the GPT-2 family, llm.c style: one flat
 * `Float32Array` of parameters, one of gradients, flat activation buffers with
 * their shapes in comments, and a backward kernel for every forward step.
 * Private to `lib/train.ts` and `lib/_train_worker.ts`.
 *
 * Dims: `B` batch, `T` pos, `C` d_model, `NH` head, `hs` d_head, `F` d_mlp,
 * `V` vocab, `L` layer, `N = B·T` rows.
 *
 * @module
 */
import { geluTanh, layerNorm, matmul, matmulTransposed } from "./_kernels.ts";
import type { Gpt2Config } from "./types.ts";

/** Position of one named tensor inside the flat parameter buffer. */
export interface ParamSlot {
  /** Readable name (`blocks.0.attn.qkv.weight`). */
  name: string;
  /** Shape, `[in, out]` for matrices. */
  dims: number[];
  /** First element in the flat buffer. */
  offset: number;
  /** Element count. */
  size: number;
}

/** Offsets of one block's tensors in the flat buffer. */
export interface BlockOffsets {
  ln1g: number;
  ln1b: number;
  qkvw: number;
  qkvb: number;
  ow: number;
  ob: number;
  ln2g: number;
  ln2b: number;
  inw: number;
  inb: number;
  outw: number;
  outb: number;
}

/** Every parameter's slot, in a fixed order, plus direct offsets for the kernels. */
export interface ParamLayout {
  /** Slots in buffer order. */
  slots: ParamSlot[];
  /** Total element count. */
  total: number;
  /** Offset of `embed.tokens` `[V, C]`. */
  wte: number;
  /** Offset of `embed.positions` `[P, C]`. */
  wpe: number;
  /** Per-block offsets. */
  blocks: BlockOffsets[];
  /** Offset of `norm_f.gain`. */
  lnfg: number;
  /** Offset of `norm_f.bias`. */
  lnfb: number;
}

/**
 * The GPT-2 parameter names and `[in, out]` shapes of `lib/types.ts`, packed in one buffer.
 *
 * @param c architecture
 * @returns slots in buffer order and direct offsets
 */
export function gpt2Layout(c: Gpt2Config): ParamLayout {
  const C = c.dModel, F = c.dMlp;
  const slots: ParamSlot[] = [];
  let total = 0;
  const add = (name: string, dims: number[]): number => {
    const size = dims.reduce((a, b) => a * b, 1);
    slots.push({ name, dims, offset: total, size });
    total += size;
    return total - size;
  };
  const wte = add("embed.tokens", [c.vocabSize, C]);
  const wpe = add("embed.positions", [c.maxPositions, C]);
  const blocks: BlockOffsets[] = [];
  for (let l = 0; l < c.nLayer; l++) {
    const p = `blocks.${l}.`;
    blocks.push({
      ln1g: add(p + "ln1.gain", [C]),
      ln1b: add(p + "ln1.bias", [C]),
      qkvw: add(p + "attn.qkv.weight", [C, 3 * C]),
      qkvb: add(p + "attn.qkv.bias", [3 * C]),
      ow: add(p + "attn.o.weight", [C, C]),
      ob: add(p + "attn.o.bias", [C]),
      ln2g: add(p + "ln2.gain", [C]),
      ln2b: add(p + "ln2.bias", [C]),
      inw: add(p + "mlp.in.weight", [C, F]),
      inb: add(p + "mlp.in.bias", [F]),
      outw: add(p + "mlp.out.weight", [F, C]),
      outb: add(p + "mlp.out.bias", [C]),
    });
  }
  const lnfg = add("norm_f.gain", [C]);
  const lnfb = add("norm_f.bias", [C]);
  return { slots, total, wte, wpe, blocks, lnfg, lnfb };
}

/** Saved activations of one layer for `N = B·T` rows. */
interface LayerActs {
  ln1: Float32Array; // (N,C)
  ln1Mean: Float32Array; // (N)
  ln1Rstd: Float32Array; // (N)
  qkv: Float32Array; // (N,3C)
  att: Float32Array; // (B,NH,T,T) softmax probabilities, zero above the diagonal
  atty: Float32Array; // (N,C) attention output before the projection
  res2: Float32Array; // (N,C) residual after attention
  ln2: Float32Array; // (N,C)
  ln2Mean: Float32Array; // (N)
  ln2Rstd: Float32Array; // (N)
  fch: Float32Array; // (N,F) pre-GELU
  fchGelu: Float32Array; // (N,F)
  res3: Float32Array; // (N,C) residual after the MLP
}

/** Activations and backward scratch for a fixed `(B, T)`; reused step after step. */
export interface Gpt2Acts {
  B: number;
  T: number;
  encoded: Float32Array; // (N,C)
  layers: LayerActs[];
  lnf: Float32Array; // (N,C)
  lnfMean: Float32Array; // (N)
  lnfRstd: Float32Array; // (N)
  probs: Float32Array; // (N,V) logits, then probabilities, then dlogits
  // backward scratch
  dres: Float32Array; // (N,C) gradient of the residual stream
  dln: Float32Array; // (N,C)
  dqkv: Float32Array; // (N,3C)
  dfch: Float32Array; // (N,F)
  dpre: Float32Array; // (T)
  scratch: Float32Array; // transposed copies for the backward matmuls
}

/**
 * Allocates activation buffers for `B` sequences of length `T`.
 *
 * @param c architecture
 * @param B batch
 * @param T sequence length
 * @returns buffers
 */
export function allocActs(c: Gpt2Config, B: number, T: number): Gpt2Acts {
  const N = B * T, C = c.dModel, F = c.dMlp, NH = c.nHead;
  const f = (n: number) => new Float32Array(n);
  const layers: LayerActs[] = [];
  for (let l = 0; l < c.nLayer; l++) {
    layers.push({
      ln1: f(N * C),
      ln1Mean: f(N),
      ln1Rstd: f(N),
      qkv: f(N * 3 * C),
      att: f(B * NH * T * T),
      atty: f(N * C),
      res2: f(N * C),
      ln2: f(N * C),
      ln2Mean: f(N),
      ln2Rstd: f(N),
      fch: f(N * F),
      fchGelu: f(N * F),
      res3: f(N * C),
    });
  }
  return {
    B,
    T,
    encoded: f(N * C),
    layers,
    lnf: f(N * C),
    lnfMean: f(N),
    lnfRstd: f(N),
    probs: f(N * c.vocabSize),
    dres: f(N * C),
    dln: f(N * C),
    dqkv: f(N * 3 * C),
    dfch: f(N * F),
    dpre: f(T),
    scratch: f(Math.max(N * c.vocabSize, N * F, 3 * C * C, C * F)),
  };
}

/**
 * Causal multi-head attention forward.
 * `qkv (B,T,3C)` → `out (B,T,C)`, saving `att (B,NH,T,T)` probabilities.
 */
function attentionForward(
  out: Float32Array,
  att: Float32Array,
  qkv: Float32Array,
  B: number,
  T: number,
  C: number,
  NH: number,
): void {
  const hs = C / NH, C3 = 3 * C;
  const scale = 1 / Math.sqrt(hs);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const qBase = (b * T + t) * C3;
      const oBase = (b * T + t) * C;
      for (let h = 0; h < NH; h++) {
        const q = qBase + h * hs;
        const a = ((b * NH + h) * T + t) * T;
        let max = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          const k = (b * T + t2) * C3 + C + h * hs;
          let s = 0;
          for (let i = 0; i < hs; i++) s += qkv[q + i] * qkv[k + i];
          s *= scale;
          att[a + t2] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const e = Math.exp(att[a + t2] - max);
          att[a + t2] = e;
          sum += e;
        }
        const inv = 1 / sum;
        for (let t2 = 0; t2 <= t; t2++) att[a + t2] *= inv;
        for (let t2 = t + 1; t2 < T; t2++) att[a + t2] = 0;
        const o = oBase + h * hs;
        for (let i = 0; i < hs; i++) out[o + i] = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const v = (b * T + t2) * C3 + 2 * C + h * hs;
          const p = att[a + t2];
          for (let i = 0; i < hs; i++) out[o + i] += p * qkv[v + i];
        }
      }
    }
  }
}

/**
 * Causal attention backward: `dout (B,T,C)` → `dqkv (B,T,3C)` (overwritten).
 * `dpre (T)` is scratch.
 */
function attentionBackward(
  dqkv: Float32Array,
  dpre: Float32Array,
  dout: Float32Array,
  qkv: Float32Array,
  att: Float32Array,
  B: number,
  T: number,
  C: number,
  NH: number,
): void {
  const hs = C / NH, C3 = 3 * C;
  const scale = 1 / Math.sqrt(hs);
  dqkv.fill(0, 0, B * T * C3);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const qBase = (b * T + t) * C3;
      const oBase = (b * T + t) * C;
      for (let h = 0; h < NH; h++) {
        const q = qBase + h * hs;
        const o = oBase + h * hs;
        const a = ((b * NH + h) * T + t) * T;
        // out = Σ att·v: datt[t2] = dout·v[t2], dv[t2] += att[t2]·dout
        let dot = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const v = (b * T + t2) * C3 + 2 * C + h * hs;
          const p = att[a + t2];
          let s = 0;
          for (let i = 0; i < hs; i++) {
            const g = dout[o + i];
            s += g * qkv[v + i];
            dqkv[v + i] += p * g;
          }
          dpre[t2] = s;
          dot += p * s;
        }
        // softmax: dpre = att·(datt − Σ att·datt), then the 1/√hs scale
        for (let t2 = 0; t2 <= t; t2++) {
          const g = att[a + t2] * (dpre[t2] - dot) * scale;
          const k = (b * T + t2) * C3 + C + h * hs;
          for (let i = 0; i < hs; i++) {
            dqkv[q + i] += g * qkv[k + i];
            dqkv[k + i] += g * qkv[q + i];
          }
        }
      }
    }
  }
}

/**
 * Transpose `inp (rows, cols)` into `out (cols, rows)`, in 32×32 tiles so both sides stay in cache.
 */
export function transpose(out: Float32Array, inp: Float32Array, rows: number, cols: number): void {
  const TB = 32;
  for (let r0 = 0; r0 < rows; r0 += TB) {
    const r1 = Math.min(rows, r0 + TB);
    for (let c0 = 0; c0 < cols; c0 += TB) {
      const c1 = Math.min(cols, c0 + TB);
      for (let r = r0; r < r1; r++) {
        const ib = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = inp[ib + c];
      }
    }
  }
}

/**
 * Linear layer backward for `out = inp·W + b` with `inp (N,I)`, `W (I,O)`, all three results overwritten:
 * `dinp = dout·Wᵀ` (skipped when null), `dW = inpᵀ·dout`, `db = Σ_rows dout` (skipped when null).
 * Both products run through the forward `matmul` kernel on transposed copies held in
 * `scratch` (at least `max(I·O, I·N)` floats), so a faster forward kernel speeds up the backward too.
 */
export function matmulBackward(
  dinp: Float32Array | null,
  dW: Float32Array,
  db: Float32Array | null,
  dout: Float32Array,
  inp: Float32Array,
  W: Float32Array,
  N: number,
  I: number,
  O: number,
  scratch: Float32Array,
): void {
  if (dinp) {
    transpose(scratch, W, I, O); // Wᵀ (O,I)
    matmul(dinp, dout, scratch, null, N, O, I);
  }
  transpose(scratch, inp, N, I); // inpᵀ (I,N)
  matmul(dW, scratch, dout, null, I, N, O);
  if (db) {
    db.fill(0, 0, O);
    for (let r = 0; r < N; r++) {
      const g = r * O;
      for (let j = 0; j < O; j++) db[j] += dout[g + j];
    }
  }
}

/**
 * LayerNorm backward: `dinp += ∂L/∂x` for `out = norm(x)·gain + bias`, accumulating `dgain`, `dbias`.
 * `inp (N,C)`, `mean (N)`, `rstd (N)` are the forward's saved values.
 */
export function layerNormBackward(
  dinp: Float32Array,
  dparams: Float32Array,
  gOff: number,
  bOff: number,
  dout: Float32Array,
  inp: Float32Array,
  params: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  N: number,
  C: number,
): void {
  for (let r = 0; r < N; r++) {
    const base = r * C;
    const m = mean[r], s = rstd[r];
    let dnormMean = 0, dnormNormMean = 0;
    for (let i = 0; i < C; i++) {
      const norm = (inp[base + i] - m) * s;
      const dnorm = params[gOff + i] * dout[base + i];
      dnormMean += dnorm;
      dnormNormMean += dnorm * norm;
    }
    dnormMean /= C;
    dnormNormMean /= C;
    for (let i = 0; i < C; i++) {
      const norm = (inp[base + i] - m) * s;
      const g = dout[base + i];
      const dnorm = params[gOff + i] * g;
      dparams[bOff + i] += g;
      dparams[gOff + i] += norm * g;
      dinp[base + i] += (dnorm - dnormMean - norm * dnormNormMean) * s;
    }
  }
}

const GELU_K = Math.sqrt(2 / Math.PI);

/** GELU tanh backward in place: `d (n)` ← `d · gelu'(x)`. */
export function geluTanhBackward(d: Float32Array, x: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = x[i];
    const u = GELU_K * (v + 0.044715 * v * v * v);
    const th = Math.tanh(u);
    const du = GELU_K * (1 + 3 * 0.044715 * v * v);
    d[i] *= 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * du;
  }
}

function view(p: Float32Array, off: number, n: number): Float32Array {
  return p.subarray(off, off + n);
}

/**
 * Forward pass saving activations; returns the summed (not averaged)
 * cross-entropy over the `B·T` positions and leaves probabilities in `acts.probs`.
 *
 * @param c architecture
 * @param lay parameter layout
 * @param params flat parameters
 * @param acts activation buffers for `(B, T)`
 * @param inputs token ids `(B,T)`
 * @param targets next-token ids `(B,T)`
 * @returns Σ −log p(target) in float64
 */
export function gpt2Forward(
  c: Gpt2Config,
  lay: ParamLayout,
  params: Float32Array,
  acts: Gpt2Acts,
  inputs: Int32Array,
  targets: Int32Array,
): number {
  const { B, T } = acts;
  const N = B * T, C = c.dModel, F = c.dMlp, V = c.vocabSize, NH = c.nHead, eps = c.normEps;
  const enc = acts.encoded;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const r = (b * T + t) * C;
      const tk = lay.wte + inputs[b * T + t] * C, ps = lay.wpe + t * C;
      for (let i = 0; i < C; i++) enc[r + i] = params[tk + i] + params[ps + i];
    }
  }
  let res = enc;
  for (let l = 0; l < c.nLayer; l++) {
    const o = lay.blocks[l], a = acts.layers[l];
    layerNorm(a.ln1, res, view(params, o.ln1g, C), view(params, o.ln1b, C), N, C, eps, a.ln1Mean, a.ln1Rstd);
    matmul(a.qkv, a.ln1, view(params, o.qkvw, C * 3 * C), view(params, o.qkvb, 3 * C), N, C, 3 * C);
    attentionForward(a.atty, a.att, a.qkv, B, T, C, NH);
    matmul(a.res2, a.atty, view(params, o.ow, C * C), view(params, o.ob, C), N, C, C);
    for (let i = 0; i < N * C; i++) a.res2[i] += res[i];
    layerNorm(a.ln2, a.res2, view(params, o.ln2g, C), view(params, o.ln2b, C), N, C, eps, a.ln2Mean, a.ln2Rstd);
    matmul(a.fch, a.ln2, view(params, o.inw, C * F), view(params, o.inb, F), N, C, F);
    geluTanh(a.fchGelu, a.fch, N * F);
    matmul(a.res3, a.fchGelu, view(params, o.outw, F * C), view(params, o.outb, C), N, F, C);
    for (let i = 0; i < N * C; i++) a.res3[i] += a.res2[i];
    res = a.res3;
  }
  layerNorm(acts.lnf, res, view(params, lay.lnfg, C), view(params, lay.lnfb, C), N, C, eps, acts.lnfMean, acts.lnfRstd);
  const probs = acts.probs;
  matmulTransposed(probs, acts.lnf, view(params, lay.wte, V * C), null, N, C, V);
  let loss = 0;
  for (let r = 0; r < N; r++) {
    const base = r * V;
    let max = -Infinity;
    for (let j = 0; j < V; j++) if (probs[base + j] > max) max = probs[base + j];
    const zt = probs[base + targets[r]];
    let sum = 0;
    for (let j = 0; j < V; j++) {
      const e = Math.exp(probs[base + j] - max);
      probs[base + j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = 0; j < V; j++) probs[base + j] *= inv;
    // −log p = log Σ exp(z − max) − (z_target − max), from the float64 sum (no underflow to log 0)
    loss += Math.log(sum) - (zt - max);
  }
  return loss;
}

/**
 * Backward pass after {@linkcode gpt2Forward}: writes `scale · ∂(Σ loss)/∂params` into `grads`
 * (every tensor is written; callers need not zero it). `scale` is `1 / (total positions)` so shards sum to the mean's gradient.
 *
 * @param c architecture
 * @param lay parameter layout
 * @param params flat parameters
 * @param grads flat gradients (accumulated)
 * @param acts buffers filled by the forward pass
 * @param inputs token ids `(B,T)`
 * @param targets next-token ids `(B,T)`
 * @param scale loss scale
 */
export function gpt2Backward(
  c: Gpt2Config,
  lay: ParamLayout,
  params: Float32Array,
  grads: Float32Array,
  acts: Gpt2Acts,
  inputs: Int32Array,
  targets: Int32Array,
  scale: number,
): void {
  const { B, T } = acts;
  const N = B * T, C = c.dModel, F = c.dMlp, V = c.vocabSize, NH = c.nHead;
  const dl = acts.probs; // (N,V) becomes dlogits = (p − onehot)·scale
  for (let r = 0; r < N; r++) {
    const base = r * V;
    for (let j = 0; j < V; j++) dl[base + j] *= scale;
    dl[base + targets[r]] -= scale;
  }
  // tied head: logits = lnf·wteᵀ → dlnf = dlogits·wte, dwte = dlogitsᵀ·lnf (written first; the
  // token embedding's gradient is added at the end)
  const dln = acts.dln, lnf = acts.lnf, sc = acts.scratch;
  matmul(dln, dl, view(params, lay.wte, V * C), null, N, V, C);
  transpose(sc, dl, N, V); // (V,N)
  matmul(view(grads, lay.wte, V * C), sc, lnf, null, V, N, C);
  const dres = acts.dres;
  dres.fill(0);
  const last = c.nLayer > 0 ? acts.layers[c.nLayer - 1].res3 : acts.encoded;
  layerNormBackward(dres, grads, lay.lnfg, lay.lnfb, dln, last, params, acts.lnfMean, acts.lnfRstd, N, C);
  for (let l = c.nLayer - 1; l >= 0; l--) {
    const o = lay.blocks[l], a = acts.layers[l];
    const resIn = l === 0 ? acts.encoded : acts.layers[l - 1].res3;
    // MLP: res3 = res2 + gelu(ln2·Win + bin)·Wout + bout
    matmulBackward(
      acts.dfch,
      view(grads, o.outw, F * C),
      view(grads, o.outb, C),
      dres,
      a.fchGelu,
      view(params, o.outw, F * C),
      N,
      F,
      C,
      sc,
    );
    geluTanhBackward(acts.dfch, a.fch, N * F);
    matmulBackward(
      dln,
      view(grads, o.inw, C * F),
      view(grads, o.inb, F),
      acts.dfch,
      a.ln2,
      view(params, o.inw, C * F),
      N,
      C,
      F,
      sc,
    );
    layerNormBackward(dres, grads, o.ln2g, o.ln2b, dln, a.res2, params, a.ln2Mean, a.ln2Rstd, N, C);
    // attention: res2 = resIn + attn(ln1·Wqkv + bqkv)·Wo + bo
    matmulBackward(
      dln,
      view(grads, o.ow, C * C),
      view(grads, o.ob, C),
      dres,
      a.atty,
      view(params, o.ow, C * C),
      N,
      C,
      C,
      sc,
    );
    attentionBackward(acts.dqkv, acts.dpre, dln, a.qkv, a.att, B, T, C, NH);
    matmulBackward(
      dln,
      view(grads, o.qkvw, C * 3 * C),
      view(grads, o.qkvb, 3 * C),
      acts.dqkv,
      a.ln1,
      view(params, o.qkvw, C * 3 * C),
      N,
      C,
      3 * C,
      sc,
    );
    layerNormBackward(dres, grads, o.ln1g, o.ln1b, dln, resIn, params, a.ln1Mean, a.ln1Rstd, N, C);
  }
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const r = (b * T + t) * C;
      const tk = lay.wte + inputs[b * T + t] * C, ps = lay.wpe + t * C;
      for (let i = 0; i < C; i++) {
        grads[tk + i] += dres[r + i];
        grads[ps + i] += dres[r + i];
      }
    }
  }
}
