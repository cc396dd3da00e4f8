/**
 * The readable reference forward pass for the GPT-2 and LLaMA families, with a
 * KV cache for incremental decoding, a TransformerLens-style activation cache,
 * and the views built on it (attention patterns, residual norms, logit lens).
 *
 * It follows Hugging Face `transformers` semantics exactly, so its logits can
 * be held against ONNX Runtime running the exported graph:
 * - GPT-2: `h = wte[ids] + wpe[positions]`; per block `h += attn(ln_1(h))`, `h += mlp(ln_2(h))`
 *   with attention scaled by `1/√d_head` under a causal mask and `mlp = c_proj(gelu_new(c_fc(x)))`;
 *   finally `logits = ln_f(h) · wteᵀ`.
 * - LLaMA: `h = embed[ids]`; per block `h += attn(rms_1(h))`, `h += mlp(rms_2(h))` with rotary
 *   positions on q and k (the `rotate_half` convention: dims `i` and `i + d_head/2` form a pair,
 *   `inv_freq_i = θ^(-2i/d_head)`), grouped-query attention (query head `h` reads key/value head
 *   `⌊h / (head/kv_head)⌋`) and `mlp = down(silu(gate(x)) ⊙ up(x))`; finally
 *   `logits = norm(h) · head` (or `· embedᵀ` when tied). No biases. Plain rotary only: `rope_scaling`
 *   variants (LLaMA 3.1 "llama3", YaRN, ...) are not applied.
 *
 * Everything is batch 1. Buffers are preallocated once per call and every step
 * writes into them; nothing is allocated per element, and without `cache: true`
 * no intermediate outlives its step.
 *
 * @example
 * ```ts
 * import { expectedParamShapes, forward } from "./forward.ts";
 * import type { Gpt2Config, ParamMap } from "./types.ts";
 *
 * const config: Gpt2Config = {
 *   family: "gpt2", vocabSize: 5, maxPositions: 4, dModel: 4, nLayer: 1, nHead: 2, dMlp: 8, normEps: 1e-5,
 * };
 * const params: ParamMap = new Map();
 * for (const [name, dims] of expectedParamShapes(config)) {
 *   const n = dims.reduce((a, b) => a * b, 1);
 *   const data = new Float32Array(n).map((_, i) => name.endsWith("gain") ? 1 : Math.sin(i + name.length));
 *   params.set(name, { data, dims });
 * }
 * const { logits } = forward(config, params, [1, 2, 3]);
 * console.log(logits.dims); // [3, 5]
 * ```
 *
 * @module
 */
import { geluTanh, layerNorm, matmul, matmulTransposed, rmsNorm, silu, softmaxCausal } from "./_kernels.ts";
import { softmax64, topIndices } from "./_rank.ts";
import type { ArchConfig, ParamMap, Tensor } from "./types.ts";

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/**
 * One layer's keys and values, each `[batch=1, kv_head, pos, d_head]`: the layout of ONNX
 * `past_key_values.N.key|value` and `present.N.key|value` for batch 1. Keys are stored after
 * rotary (LLaMA), as Hugging Face caches them.
 *
 * @example
 * ```ts
 * import type { KeyValue } from "./forward.ts";
 * const kv: KeyValue = {
 *   key: { data: new Float32Array(2 * 3 * 4), dims: [1, 2, 3, 4] },
 *   value: { data: new Float32Array(2 * 3 * 4), dims: [1, 2, 3, 4] },
 * };
 * console.log(kv.key.dims[2]); // 3 cached positions
 * ```
 */
export interface KeyValue {
  /** Keys `[1, kv_head, pos, d_head]`. */
  key: Tensor;
  /** Values `[1, kv_head, pos, d_head]`. */
  value: Tensor;
}

/**
 * Activations kept by `forward(..., { cache: true })`, under TransformerLens-style dotted names.
 * See {@linkcode ForwardOptions.cache} for the list of names and shapes.
 *
 * @example
 * ```ts
 * import type { ActivationCache } from "./forward.ts";
 * const cache: ActivationCache = new Map();
 * console.log(cache.has("blocks.0.attn.pattern")); // false
 * ```
 */
export type ActivationCache = Map<string, Tensor>;

/**
 * Options of {@linkcode forward}.
 *
 * @example
 * ```ts
 * import type { ForwardOptions } from "./forward.ts";
 * const opts: ForwardOptions = { cache: true, logits: "last" };
 * console.log(opts.cache);
 * ```
 */
export interface ForwardOptions {
  /**
   * Keys and values of earlier positions, one entry per layer, each `[1, kv_head, past_pos, d_head]`
   * (a `[kv_head, past_pos, d_head]` tensor is accepted too): usually the `present` of the previous
   * call. The new tokens attend to them and to themselves. Default: none (`past_pos = 0`).
   */
  past?: readonly KeyValue[];
  /**
   * Absolute position of the first token of `ids` (GPT-2 position embedding row, LLaMA rotary
   * angle). Default: `past_pos`, i.e. the tokens continue right after the cached ones.
   */
  positionOffset?: number;
  /**
   * Keep intermediates under dotted names (default `false`: nothing extra is kept). With
   * `pos` the new tokens and `key = past_pos + pos`:
   * - `embed` `[pos, d_model]` (token embedding rows), `pos_embed` `[pos, d_model]` (GPT-2 only)
   * - `blocks.{i}.resid_pre`, `blocks.{i}.ln1.normalized` `[pos, d_model]` (after gain and bias)
   * - `blocks.{i}.attn.q` `[head, pos, d_head]`; `blocks.{i}.attn.k|v` `[kv_head, pos, d_head]`
   *   (the new positions only, before rotary); LLaMA also `blocks.{i}.attn.rot_q|rot_k` (after rotary)
   * - `blocks.{i}.attn.scores` `[head, pos, key]` (scaled by `1/√d_head`, masked entries `-Infinity`),
   *   `blocks.{i}.attn.pattern` `[head, pos, key]` (softmax of the scores; masked entries 0)
   * - `blocks.{i}.attn.z` `[pos, head·d_head]` (heads' weighted values, before the output projection)
   * - `blocks.{i}.attn.out`, `blocks.{i}.resid_mid`, `blocks.{i}.ln2.normalized` `[pos, d_model]`
   * - `blocks.{i}.mlp.pre` `[pos, d_mlp]`: GPT-2 `x·W_in + b` before GELU; LLaMA `x·W_gate` before SiLU
   * - `blocks.{i}.mlp.pre_linear` `[pos, d_mlp]`: LLaMA only, `x·W_in` (the "up" projection)
   * - `blocks.{i}.mlp.post` `[pos, d_mlp]` (input of the output projection)
   * - `blocks.{i}.mlp.out`, `blocks.{i}.resid_post` `[pos, d_model]`
   * - `norm_f.normalized` `[pos, d_model]`
   */
  cache?: boolean;
  /** Return `present` (every layer's keys and values, past and new). Default `true`. */
  present?: boolean;
  /**
   * Which rows of logits to compute: `"all"` (default) gives `[pos, vocab]`; `"last"` gives
   * `[1, vocab]` for the last token only, which is all a sampler needs and skips most of the head.
   */
  logits?: "all" | "last";
}

/**
 * What {@linkcode forward} returns.
 *
 * @example
 * ```ts
 * import type { ForwardResult } from "./forward.ts";
 * function lastRow(r: ForwardResult): Float32Array {
 *   const [pos, vocab] = r.logits.dims;
 *   return r.logits.data.subarray((pos - 1) * vocab);
 * }
 * console.log(typeof lastRow);
 * ```
 */
export interface ForwardResult {
  /** Next-token logits `[pos, vocab]` (`[1, vocab]` with `logits: "last"`). */
  logits: Tensor;
  /** Per layer keys and values `[1, kv_head, past_pos + pos, d_head]`, unless `present: false`. */
  present?: KeyValue[];
  /** The activation cache, when `cache: true`. */
  cache?: ActivationCache;
}

// ---------------------------------------------------------------------------------------------
// Shapes and validation
// ---------------------------------------------------------------------------------------------

/** Sizes derived from a config, named after the dims vocabulary. */
interface Sizes {
  vocab: number;
  dModel: number;
  nHead: number;
  nKvHead: number;
  dHead: number;
  dMlp: number;
  nLayer: number;
}

function sizesOf(config: ArchConfig): Sizes {
  const { vocabSize: vocab, dModel, nHead, dMlp, nLayer } = config;
  if (config.family === "gpt2") return { vocab, dModel, nHead, nKvHead: nHead, dHead: dModel / nHead, dMlp, nLayer };
  return { vocab, dModel, nHead, nKvHead: config.nKvHead, dHead: config.dHead, dMlp, nLayer };
}

function checkConfig(config: ArchConfig): void {
  if (config === null || typeof config !== "object") {
    throw new TypeError(`config must be a Gpt2Config or LlamaConfig object, got ${String(config)}`);
  }
  const family = (config as { family?: unknown }).family;
  if (family !== "gpt2" && family !== "llama") {
    throw new TypeError(`config.family is ${JSON.stringify(family)}; expected "gpt2" or "llama"`);
  }
  const ints: string[] = ["vocabSize", "maxPositions", "dModel", "nLayer", "nHead", "dMlp"];
  if (config.family === "llama") ints.push("nKvHead", "dHead");
  const rec = config as unknown as Record<string, unknown>;
  for (const key of ints) {
    const v = rec[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      throw new RangeError(`config.${key} is ${String(v)}; it must be a positive integer`);
    }
  }
  if (typeof config.normEps !== "number" || !(config.normEps >= 0) || !Number.isFinite(config.normEps)) {
    throw new RangeError(`config.normEps is ${String(config.normEps)}; it must be a finite number >= 0`);
  }
  if (config.family === "gpt2") {
    if (config.dModel % config.nHead !== 0) {
      throw new RangeError(
        `config.dModel (${config.dModel}) is not divisible by config.nHead (${config.nHead}); GPT-2 needs d_head = dModel / nHead`,
      );
    }
  } else {
    if (config.nHead % config.nKvHead !== 0) {
      throw new RangeError(
        `config.nHead (${config.nHead}) is not a multiple of config.nKvHead (${config.nKvHead}); grouped-query attention shares each key/value head among nHead / nKvHead query heads`,
      );
    }
    if (config.dHead % 2 !== 0) {
      throw new RangeError(`config.dHead is ${config.dHead}; rotary positions need an even head width`);
    }
    if (typeof config.ropeTheta !== "number" || !(config.ropeTheta > 0) || !Number.isFinite(config.ropeTheta)) {
      throw new RangeError(`config.ropeTheta is ${String(config.ropeTheta)}; it must be a finite number > 0`);
    }
  }
}

/**
 * The parameter names and shapes the reference forward reads for `config` (the contract of
 * `ParamMap` in `types.ts`): GPT-2 gets `embed.positions`, biases and a tied head; LLaMA gets
 * separate q/k/v, the SwiGLU gate and, unless `tieWordEmbeddings`, `head.weight`.
 *
 * @param config the architecture
 * @returns readable name → dims, in model order (embeddings, blocks, final norm, head)
 * @example
 * ```ts
 * import { expectedParamShapes } from "./forward.ts";
 * const shapes = expectedParamShapes({
 *   family: "gpt2", vocabSize: 10, maxPositions: 8, dModel: 4, nLayer: 1, nHead: 2, dMlp: 16, normEps: 1e-5,
 * });
 * console.log(shapes.get("blocks.0.attn.qkv.weight")); // [4, 12]
 * ```
 */
export function expectedParamShapes(config: ArchConfig): Map<string, number[]> {
  checkConfig(config);
  const s = sizesOf(config);
  const D = s.dModel, F = s.dMlp;
  const m = new Map<string, number[]>();
  m.set("embed.tokens", [s.vocab, D]);
  if (config.family === "gpt2") {
    m.set("embed.positions", [config.maxPositions, D]);
    for (let i = 0; i < s.nLayer; i++) {
      const b = `blocks.${i}`;
      m.set(`${b}.ln1.gain`, [D]).set(`${b}.ln1.bias`, [D]);
      m.set(`${b}.attn.qkv.weight`, [D, 3 * D]).set(`${b}.attn.qkv.bias`, [3 * D]);
      m.set(`${b}.attn.o.weight`, [D, D]).set(`${b}.attn.o.bias`, [D]);
      m.set(`${b}.ln2.gain`, [D]).set(`${b}.ln2.bias`, [D]);
      m.set(`${b}.mlp.in.weight`, [D, F]).set(`${b}.mlp.in.bias`, [F]);
      m.set(`${b}.mlp.out.weight`, [F, D]).set(`${b}.mlp.out.bias`, [D]);
    }
    m.set("norm_f.gain", [D]).set("norm_f.bias", [D]);
  } else {
    const Q = s.nHead * s.dHead, KV = s.nKvHead * s.dHead;
    for (let i = 0; i < s.nLayer; i++) {
      const b = `blocks.${i}`;
      m.set(`${b}.ln1.gain`, [D]);
      m.set(`${b}.attn.q.weight`, [D, Q]).set(`${b}.attn.k.weight`, [D, KV]).set(`${b}.attn.v.weight`, [D, KV]);
      m.set(`${b}.attn.o.weight`, [Q, D]);
      m.set(`${b}.ln2.gain`, [D]);
      m.set(`${b}.mlp.gate.weight`, [D, F]).set(`${b}.mlp.in.weight`, [D, F]).set(`${b}.mlp.out.weight`, [F, D]);
    }
    m.set("norm_f.gain", [D]);
    if (!config.tieWordEmbeddings) m.set("head.weight", [D, s.vocab]);
  }
  return m;
}

function shapeText(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/** Throws unless `params` holds every expected name with the expected dims and a matching Float32Array. */
function checkParams(config: ArchConfig, params: ParamMap): void {
  if (!(params instanceof Map)) {
    throw new TypeError(
      `params must be a ParamMap (Map<string, Tensor>), got ${Object.prototype.toString.call(params)}`,
    );
  }
  const expected = expectedParamShapes(config);
  const missing = [...expected.keys()].filter((name) => !params.has(name));
  if (missing.length > 0) {
    const shown = missing.slice(0, 8).join(", ") + (missing.length > 8 ? `, and ${missing.length - 8} more` : "");
    throw new TypeError(
      `params is missing ${missing.length} tensor(s) the ${config.family} forward needs: ${shown}; ` +
        `see expectedParamShapes(config) for the full list of names and shapes`,
    );
  }
  for (const [name, dims] of expected) {
    const t = params.get(name)!;
    if (!t || !(t.data instanceof Float32Array)) {
      throw new TypeError(`params "${name}" must be a Tensor whose data is a Float32Array`);
    }
    const same = t.dims.length === dims.length && t.dims.every((d, i) => d === dims[i]);
    if (!same) {
      throw new RangeError(
        `params "${name}" has shape ${shapeText(t.dims)} but this config needs ${shapeText(dims)}; ` +
          `check the config (dModel, nHead, dMlp, vocabSize, ...) against the weights`,
      );
    }
    const n = dims.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) {
      throw new RangeError(`params "${name}" has ${t.data.length} values but its dims ${shapeText(dims)} need ${n}`);
    }
  }
}

function checkIds(ids: readonly number[] | Int32Array, vocab: number): void {
  if (!Array.isArray(ids) && !(ids instanceof Int32Array)) {
    throw new TypeError(
      `ids must be a number[] or Int32Array of token ids, got ${Object.prototype.toString.call(ids)}`,
    );
  }
  if (ids.length === 0) throw new RangeError("ids is empty; pass at least one token id");
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (typeof t !== "number" || !Number.isInteger(t)) {
      throw new TypeError(`ids[${i}] is ${String(t)}; token ids must be integers`);
    }
    if (t < 0 || t >= vocab) {
      throw new RangeError(
        `ids[${i}] is ${t}, outside the vocabulary [0, ${vocab}); check the tokenizer matches the model`,
      );
    }
  }
}

/** Validates `past` and returns `past_pos` (0 without past). */
function checkPast(past: readonly KeyValue[] | undefined, s: Sizes): number {
  if (past === undefined) return 0;
  if (!Array.isArray(past) || past.length !== s.nLayer) {
    const got = Array.isArray(past) ? past.length : typeof past;
    throw new RangeError(`options.past must have one {key, value} entry per layer (${s.nLayer}), got ${got}`);
  }
  let pastLen = -1;
  for (let l = 0; l < past.length; l++) {
    for (const which of ["key", "value"] as const) {
      const t = past[l]?.[which];
      if (!t || !(t.data instanceof Float32Array) || !Array.isArray(t.dims)) {
        throw new TypeError(`options.past[${l}].${which} must be a Tensor with Float32Array data`);
      }
      const d = t.dims.length === 4 && t.dims[0] === 1 ? t.dims.slice(1) : t.dims;
      if (d.length !== 3 || d[0] !== s.nKvHead || d[2] !== s.dHead) {
        const got = shapeText(t.dims), want = `[1, ${s.nKvHead}, past_pos, ${s.dHead}]`;
        throw new RangeError(
          `options.past[${l}].${which} has shape ${got}; expected ${want} ([batch, kv_head, past_pos, d_head])`,
        );
      }
      if (pastLen === -1) pastLen = d[1];
      if (d[1] !== pastLen) {
        const got = d[1];
        throw new RangeError(
          `options.past[${l}].${which} holds ${got} positions but options.past[0].key holds ${pastLen}; ` +
            "every layer must cache the same positions",
        );
      }
      if (t.data.length !== s.nKvHead * pastLen * s.dHead) {
        throw new RangeError(`options.past[${l}].${which} has ${t.data.length} values for dims ${shapeText(t.dims)}`);
      }
    }
  }
  return pastLen;
}

// ---------------------------------------------------------------------------------------------
// Workspace: every buffer one call needs, allocated once
// ---------------------------------------------------------------------------------------------

/** Buffers for one call. `pos` = new tokens, `key` = past_pos + pos. */
interface Workspace {
  n: number; // pos
  pastLen: number; // past_pos
  total: number; // key
  offset: number; // absolute position of ids[0]
  resid: Float32Array; // [pos, d_model] the residual stream
  normed: Float32Array; // [pos, d_model] output of the current norm
  qkv: Float32Array; // [pos, 3·d_model] GPT-2 fused projection
  qRows: Float32Array; // [pos, head·d_head] LLaMA q projection
  kRows: Float32Array; // [pos, kv_head·d_head] LLaMA k projection
  vRows: Float32Array; // [pos, kv_head·d_head] LLaMA v projection
  q: Float32Array; // [head, pos, d_head]
  z: Float32Array; // [pos, head·d_head]
  proj: Float32Array; // [pos, d_model] attention or MLP output
  hidden: Float32Array; // [pos, d_mlp]
  gate: Float32Array; // [pos, d_mlp] LLaMA gate
  scores: Float32Array; // [query block, key] one head's scores, then its pattern
  zBlock: Float32Array; // [query block, d_head] its weighted sums of values
  cos: Float64Array; // [pos, d_head/2] rotary cosines (LLaMA)
  sin: Float64Array; // [pos, d_head/2] rotary sines (LLaMA)
  sharedK: Float32Array | null; // [kv_head, key, d_head] reused across layers when present is off
  sharedV: Float32Array | null;
  /** Keeps a copy of `data` under `name` (or `data` itself when `owned`: freshly allocated for the cache). */
  record: ((name: string, data: Float32Array, dims: number[], owned?: boolean) => void) | null;
}

/** Queries per attention product: the scores buffer holds at most this many rows of keys. */
const QUERY_BLOCK = 128;

function makeWorkspace(config: ArchConfig, s: Sizes, n: number, pastLen: number, offset: number, keepPresent: boolean) {
  const total = pastLen + n;
  const gpt2 = config.family === "gpt2";
  const half = s.dHead / 2;
  const ws: Workspace = {
    n,
    pastLen,
    total,
    offset,
    resid: new Float32Array(n * s.dModel),
    normed: new Float32Array(n * s.dModel),
    qkv: new Float32Array(gpt2 ? n * 3 * s.dModel : 0),
    qRows: new Float32Array(gpt2 ? 0 : n * s.nHead * s.dHead),
    kRows: new Float32Array(gpt2 ? 0 : n * s.nKvHead * s.dHead),
    vRows: new Float32Array(gpt2 ? 0 : n * s.nKvHead * s.dHead),
    q: new Float32Array(s.nHead * n * s.dHead),
    z: new Float32Array(n * s.nHead * s.dHead),
    proj: new Float32Array(n * s.dModel),
    hidden: new Float32Array(n * s.dMlp),
    gate: new Float32Array(gpt2 ? 0 : n * s.dMlp),
    scores: new Float32Array(Math.min(n, QUERY_BLOCK) * total),
    zBlock: new Float32Array(Math.min(n, QUERY_BLOCK) * s.dHead),
    cos: new Float64Array(gpt2 ? 0 : n * half),
    sin: new Float64Array(gpt2 ? 0 : n * half),
    sharedK: keepPresent ? null : new Float32Array(s.nKvHead * total * s.dHead),
    sharedV: keepPresent ? null : new Float32Array(s.nKvHead * total * s.dHead),
    record: null,
  };
  if (config.family === "llama") {
    // HF computes inv_freq and the angles in float32; fround mirrors that so long contexts agree too.
    for (let i = 0; i < half; i++) {
      const invFreq = Math.fround(1 / Math.pow(config.ropeTheta, (2 * i) / s.dHead));
      for (let p = 0; p < n; p++) {
        const angle = Math.fround((offset + p) * invFreq);
        ws.cos[p * half + i] = Math.cos(angle);
        ws.sin[p * half + i] = Math.sin(angle);
      }
    }
  }
  return ws;
}

function weight(params: ParamMap, name: string): Float32Array {
  return params.get(name)!.data;
}

// ---------------------------------------------------------------------------------------------
// The steps, top to bottom
// ---------------------------------------------------------------------------------------------

/**
 * Embedding: `resid[pos, d_model] = embed.tokens[ids]` (+ `embed.positions[offset + pos]` for GPT-2).
 */
function embed(config: ArchConfig, params: ParamMap, ids: readonly number[] | Int32Array, ws: Workspace): void {
  const D = config.dModel, n = ws.n;
  const tokens = weight(params, "embed.tokens"); // [vocab, d_model]
  for (let p = 0; p < n; p++) ws.resid.set(tokens.subarray(ids[p] * D, ids[p] * D + D), p * D);
  ws.record?.("embed", ws.resid, [n, D]);
  if (config.family === "gpt2") {
    const positions = weight(params, "embed.positions"); // [pos, d_model]
    const rows = positions.subarray(ws.offset * D, (ws.offset + n) * D);
    ws.record?.("pos_embed", rows, [n, D]);
    for (let i = 0; i < n * D; i++) ws.resid[i] += rows[i];
  }
}

/** The family's norm of `inp [pos, d_model]` into `out`: LayerNorm (GPT-2) or RMSNorm (LLaMA). */
function norm(config: ArchConfig, params: ParamMap, prefix: string, out: Float32Array, inp: Float32Array, n: number) {
  const gain = weight(params, `${prefix}.gain`);
  if (config.family === "gpt2") {
    layerNorm(out, inp, gain, weight(params, `${prefix}.bias`), n, config.dModel, config.normEps);
  } else rmsNorm(out, inp, gain, n, config.dModel, config.normEps);
}

/**
 * Copies head-interleaved rows into head-major order:
 * `dst[h, posBase + p, :] = src[p, srcOffset + h·d_head : ... + d_head]` for `p < n`,
 * with `src` rows `srcStride` wide and `dst` holding `dstPos` positions per head.
 */
function splitHeads(
  dst: Float32Array,
  dstPos: number,
  posBase: number,
  src: Float32Array,
  srcStride: number,
  srcOffset: number,
  n: number,
  heads: number,
  dHead: number,
): void {
  for (let h = 0; h < heads; h++) {
    for (let p = 0; p < n; p++) {
      const from = p * srcStride + srcOffset + h * dHead;
      dst.set(src.subarray(from, from + dHead), (h * dstPos + posBase + p) * dHead);
    }
  }
}

/**
 * Rotary position embedding in place on `x [heads, xPos, d_head]`, rows `posBase .. posBase+n`,
 * row `posBase + p` rotated by the angles of new token `p` (HF `rotate_half`: `x·cos + rotate_half(x)·sin`).
 */
function rotary(
  x: Float32Array,
  heads: number,
  xPos: number,
  posBase: number,
  n: number,
  dHead: number,
  ws: Workspace,
) {
  const half = dHead / 2;
  for (let h = 0; h < heads; h++) {
    for (let p = 0; p < n; p++) {
      const b = (h * xPos + posBase + p) * dHead, c = p * half;
      for (let i = 0; i < half; i++) {
        const x1 = x[b + i], x2 = x[b + i + half];
        const cos = ws.cos[c + i], sin = ws.sin[c + i];
        x[b + i] = x1 * cos - x2 * sin;
        x[b + i + half] = x2 * cos + x1 * sin;
      }
    }
  }
}

/**
 * Causal self-attention of `ws.normed [pos, d_model]` into `ws.proj [pos, d_model]`.
 * Writes this layer's keys and values `[kv_head, key, d_head]` (past rows first) into `keys`/`values`.
 */
function attention(
  config: ArchConfig,
  params: ParamMap,
  layer: number,
  s: Sizes,
  ws: Workspace,
  past: KeyValue | undefined,
  keys: Float32Array,
  values: Float32Array,
): void {
  const b = `blocks.${layer}`;
  const { n, pastLen, total } = ws;
  const { dModel: D, nHead: H, nKvHead: KVH, dHead: dh } = s;
  if (past) {
    // Past rows [kv_head, past_pos, d_head] go first in each head's block of `key` rows.
    for (let h = 0; h < KVH; h++) {
      keys.set(past.key.data.subarray(h * pastLen * dh, (h + 1) * pastLen * dh), h * total * dh);
      values.set(past.value.data.subarray(h * pastLen * dh, (h + 1) * pastLen * dh), h * total * dh);
    }
  }

  // Projections: q [head, pos, d_head]; new k, v rows at past_pos.. of [kv_head, key, d_head].
  if (config.family === "gpt2") {
    matmul(
      ws.qkv,
      ws.normed,
      weight(params, `${b}.attn.qkv.weight`),
      weight(params, `${b}.attn.qkv.bias`),
      n,
      D,
      3 * D,
    );
    splitHeads(ws.q, n, 0, ws.qkv, 3 * D, 0, n, H, dh);
    splitHeads(keys, total, pastLen, ws.qkv, 3 * D, D, n, KVH, dh);
    splitHeads(values, total, pastLen, ws.qkv, 3 * D, 2 * D, n, KVH, dh);
  } else {
    matmul(ws.qRows, ws.normed, weight(params, `${b}.attn.q.weight`), null, n, D, H * dh);
    matmul(ws.kRows, ws.normed, weight(params, `${b}.attn.k.weight`), null, n, D, KVH * dh);
    matmul(ws.vRows, ws.normed, weight(params, `${b}.attn.v.weight`), null, n, D, KVH * dh);
    splitHeads(ws.q, n, 0, ws.qRows, H * dh, 0, n, H, dh);
    splitHeads(keys, total, pastLen, ws.kRows, KVH * dh, 0, n, KVH, dh);
    splitHeads(values, total, pastLen, ws.vRows, KVH * dh, 0, n, KVH, dh);
  }
  if (ws.record) {
    ws.record(`${b}.attn.q`, ws.q, [H, n, dh]);
    ws.record(`${b}.attn.k`, newRows(keys, KVH, total, pastLen, n, dh), [KVH, n, dh], true);
    ws.record(`${b}.attn.v`, newRows(values, KVH, total, pastLen, n, dh), [KVH, n, dh], true);
  }
  if (config.family === "llama") {
    rotary(ws.q, H, n, 0, n, dh, ws);
    rotary(keys, KVH, total, pastLen, n, dh, ws);
    if (ws.record) {
      ws.record(`${b}.attn.rot_q`, ws.q, [H, n, dh]);
      ws.record(`${b}.attn.rot_k`, newRows(keys, KVH, total, pastLen, n, dh), [KVH, n, dh], true);
    }
  }

  // Per query head, in blocks of up to QUERY_BLOCK queries: scores = q·kᵀ over the keys the block's
  // last query may see [rows, kv], causal softmax of scores/√d_head (later keys get pattern 0),
  // z = pattern·v [rows, d_head]. Blocks keep the scores buffer small on long contexts and skip
  // most of the masked keys.
  const scale = 1 / Math.sqrt(dh);
  const group = H / KVH; // query heads per key/value head
  const allScores = ws.record ? new Float32Array(H * n * total) : null; // [head, pos, key]
  const pattern = ws.record ? new Float32Array(H * n * total) : null; // [head, pos, key]
  const { scores, zBlock, z } = ws;
  for (let h = 0; h < H; h++) {
    const kvh = Math.floor(h / group);
    const hk = keys.subarray(kvh * total * dh, (kvh + 1) * total * dh);
    const hv = values.subarray(kvh * total * dh, (kvh + 1) * total * dh);
    for (let i0 = 0; i0 < n; i0 += QUERY_BLOCK) {
      const rows = Math.min(QUERY_BLOCK, n - i0), kv = pastLen + i0 + rows;
      matmulTransposed(scores, ws.q.subarray((h * n + i0) * dh, (h * n + i0 + rows) * dh), hk, null, rows, dh, kv);
      if (allScores) {
        for (let r = 0; r < rows; r++) {
          const at = (h * n + i0 + r) * total, visible = pastLen + i0 + r + 1; // keys 0 .. past_pos + i
          for (let j = 0; j < total; j++) allScores[at + j] = j < visible ? scores[r * kv + j] * scale : -Infinity;
        }
      }
      softmaxCausal(scores, rows, kv, pastLen + i0 + 1, scale);
      if (pattern) {
        for (let r = 0; r < rows; r++) pattern.set(scores.subarray(r * kv, (r + 1) * kv), (h * n + i0 + r) * total);
      }
      matmul(zBlock, scores, hv, null, rows, kv, dh);
      // z is [pos, head·d_head]: heads side by side, as HF merge_heads
      for (let r = 0; r < rows; r++) z.set(zBlock.subarray(r * dh, (r + 1) * dh), (i0 + r) * H * dh + h * dh);
    }
  }
  if (ws.record) {
    ws.record(`${b}.attn.scores`, allScores!, [H, n, total], true);
    ws.record(`${b}.attn.pattern`, pattern!, [H, n, total], true);
    ws.record(`${b}.attn.z`, z, [n, H * dh]);
  }

  // Output projection back to the residual width.
  const oBias = config.family === "gpt2" ? weight(params, `${b}.attn.o.bias`) : null;
  matmul(ws.proj, z, weight(params, `${b}.attn.o.weight`), oBias, n, H * dh, D);
}

/** Rows `pastLen ..` of `[heads, total, d_head]` as a new `[heads, n, d_head]` array (for the cache). */
function newRows(x: Float32Array, heads: number, total: number, pastLen: number, n: number, dh: number): Float32Array {
  const out = new Float32Array(heads * n * dh);
  for (let h = 0; h < heads; h++) {
    out.set(x.subarray((h * total + pastLen) * dh, (h * total + pastLen + n) * dh), h * n * dh);
  }
  return out;
}

/**
 * MLP of `ws.normed [pos, d_model]` into `ws.proj [pos, d_model]`:
 * GPT-2 `gelu_tanh(x·W_in + b_in)·W_out + b_out`; LLaMA `(silu(x·W_gate) ⊙ (x·W_in))·W_out`.
 */
function mlp(config: ArchConfig, params: ParamMap, layer: number, s: Sizes, ws: Workspace): void {
  const b = `blocks.${layer}`;
  const { n } = ws;
  const { dModel: D, dMlp: F } = s;
  const { hidden } = ws;
  if (config.family === "gpt2") {
    matmul(hidden, ws.normed, weight(params, `${b}.mlp.in.weight`), weight(params, `${b}.mlp.in.bias`), n, D, F);
    ws.record?.(`${b}.mlp.pre`, hidden, [n, F]);
    geluTanh(hidden, hidden, n * F);
  } else {
    const { gate } = ws;
    matmul(gate, ws.normed, weight(params, `${b}.mlp.gate.weight`), null, n, D, F);
    matmul(hidden, ws.normed, weight(params, `${b}.mlp.in.weight`), null, n, D, F);
    ws.record?.(`${b}.mlp.pre`, gate, [n, F]);
    ws.record?.(`${b}.mlp.pre_linear`, hidden, [n, F]);
    silu(gate, gate, n * F);
    for (let i = 0; i < n * F; i++) hidden[i] *= gate[i];
  }
  ws.record?.(`${b}.mlp.post`, hidden, [n, F]);
  const outBias = config.family === "gpt2" ? weight(params, `${b}.mlp.out.bias`) : null;
  matmul(ws.proj, hidden, weight(params, `${b}.mlp.out.weight`), outBias, n, F, D);
}

/** One pre-norm block on `ws.resid [pos, d_model]`: `resid += attn(norm1(resid)); resid += mlp(norm2(resid))`. */
function block(
  config: ArchConfig,
  params: ParamMap,
  layer: number,
  s: Sizes,
  ws: Workspace,
  past: KeyValue | undefined,
  keys: Float32Array,
  values: Float32Array,
): void {
  const b = `blocks.${layer}`;
  const { n } = ws, D = s.dModel, dims = [n, D];
  const { resid, normed, proj } = ws;
  ws.record?.(`${b}.resid_pre`, resid, dims);
  norm(config, params, `${b}.ln1`, normed, resid, n);
  ws.record?.(`${b}.ln1.normalized`, normed, dims);
  attention(config, params, layer, s, ws, past, keys, values);
  ws.record?.(`${b}.attn.out`, proj, dims);
  for (let i = 0; i < n * D; i++) resid[i] += proj[i];
  ws.record?.(`${b}.resid_mid`, resid, dims);
  norm(config, params, `${b}.ln2`, normed, resid, n);
  ws.record?.(`${b}.ln2.normalized`, normed, dims);
  mlp(config, params, layer, s, ws);
  ws.record?.(`${b}.mlp.out`, proj, dims);
  for (let i = 0; i < n * D; i++) resid[i] += proj[i];
  ws.record?.(`${b}.resid_post`, resid, dims);
}

/**
 * Head: `logits[rows, vocab] = x[rows, d_model] · embed.tokensᵀ` (tied) or `· head.weight` (untied LLaMA).
 */
function unembed(config: ArchConfig, params: ParamMap, out: Float32Array, x: Float32Array, rows: number): void {
  const V = config.vocabSize, D = config.dModel;
  if (config.family === "llama" && !config.tieWordEmbeddings) {
    matmul(out, x, weight(params, "head.weight"), null, rows, D, V);
  } else matmulTransposed(out, x, weight(params, "embed.tokens"), null, rows, D, V);
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/**
 * Runs the reference forward pass on one sequence (batch 1) and returns next-token logits,
 * optionally continuing from a KV cache and optionally keeping every intermediate activation.
 *
 * Tolerance: agrees with a float64 implementation of the same math to about `1e-5` absolute on
 * logits of order 1 (float32 storage; float32 sums in the matrix products, attention included,
 * and in `exp`; float64 sums in the norms and softmax; see `tests/forward_test.ts`).
 *
 * @param config the architecture (`Gpt2Config` or `LlamaConfig`)
 * @param params learned tensors under the names of {@linkcode expectedParamShapes}
 * @param ids token ids of the new positions, each in `[0, vocabSize)`
 * @param options KV cache, position offset, activation cache, which logits; see {@linkcode ForwardOptions}
 * @returns logits `[pos, vocab]`, `present` keys/values and, with `cache: true`, the activation cache
 * @throws {TypeError} on a missing parameter (the message lists the names), a non-integer id or a bad config type
 * @throws {RangeError} on an id outside the vocabulary, more positions than `maxPositions`, a wrongly shaped tensor
 * @example
 * ```ts
 * import { expectedParamShapes, forward } from "./forward.ts";
 * import type { LlamaConfig, ParamMap } from "./types.ts";
 *
 * const config: LlamaConfig = {
 *   family: "llama", vocabSize: 6, maxPositions: 8, dModel: 4, nLayer: 1, nHead: 2, nKvHead: 1, dHead: 2,
 *   dMlp: 8, normEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true,
 * };
 * const params: ParamMap = new Map();
 * for (const [name, dims] of expectedParamShapes(config)) {
 *   const data = new Float32Array(dims.reduce((a, b) => a * b, 1)).map((_, i) => Math.cos(i * 0.7 + name.length));
 *   params.set(name, { data, dims });
 * }
 * // Whole prompt, then one more token from the KV cache:
 * const first = forward(config, params, [1, 2, 3]);
 * const next = forward(config, params, [4], { past: first.present });
 * console.log(next.logits.dims, next.present![0].key.dims); // [1, 6] [1, 1, 4, 2]
 * ```
 */
export function forward(
  config: ArchConfig,
  params: ParamMap,
  ids: readonly number[] | Int32Array,
  options: ForwardOptions = {},
): ForwardResult {
  checkConfig(config);
  checkParams(config, params);
  const s = sizesOf(config);
  checkIds(ids, s.vocab);
  const pastLen = checkPast(options.past, s);
  const offset = options.positionOffset ?? pastLen;
  if (!Number.isInteger(offset) || offset < 0) {
    throw new RangeError(`options.positionOffset is ${String(offset)}; it must be an integer >= 0`);
  }
  const n = ids.length;
  if (offset + n > config.maxPositions) {
    throw new RangeError(
      `positions ${offset}..${offset + n - 1} exceed the context of ${config.maxPositions} (maxPositions); ` +
        `shorten the input to at most ${Math.max(0, config.maxPositions - offset)} tokens`,
    );
  }
  const whichLogits = options.logits ?? "all";
  if (whichLogits !== "all" && whichLogits !== "last") {
    throw new TypeError(`options.logits is ${JSON.stringify(whichLogits)}; expected "all" or "last"`);
  }
  const keepPresent = options.present ?? true;
  const ws = makeWorkspace(config, s, n, pastLen, offset, keepPresent);
  const cache: ActivationCache | undefined = options.cache ? new Map() : undefined;
  if (cache) {
    ws.record = (name, data, dims, owned = false) => {
      const size = dims.reduce((a, b) => a * b, 1);
      // Copy unless owned: the workspace buffers are overwritten by later steps.
      cache.set(name, { data: owned ? data : data.slice(0, size), dims: [...dims] });
    };
  }

  embed(config, params, ids, ws);
  const present: KeyValue[] = [];
  const kvSize = s.nKvHead * ws.total * s.dHead;
  const kvDims = (): number[] => [1, s.nKvHead, ws.total, s.dHead];
  for (let layer = 0; layer < s.nLayer; layer++) {
    const keys = keepPresent ? new Float32Array(kvSize) : ws.sharedK!;
    const values = keepPresent ? new Float32Array(kvSize) : ws.sharedV!;
    block(config, params, layer, s, ws, options.past?.[layer], keys, values);
    if (keepPresent) present.push({ key: { data: keys, dims: kvDims() }, value: { data: values, dims: kvDims() } });
  }
  norm(config, params, "norm_f", ws.normed, ws.resid, n);
  ws.record?.("norm_f.normalized", ws.normed, [n, s.dModel]);

  const rows = whichLogits === "last" ? 1 : n;
  const logits = new Float32Array(rows * s.vocab);
  unembed(config, params, logits, ws.normed.subarray((n - rows) * s.dModel), rows);

  const result: ForwardResult = { logits: { data: logits, dims: [rows, s.vocab] } };
  if (keepPresent) result.present = present;
  if (cache) result.cache = cache;
  return result;
}

// ---------------------------------------------------------------------------------------------
// Views of the activation cache
// ---------------------------------------------------------------------------------------------

function cached(cache: ActivationCache, name: string): Tensor {
  if (!(cache instanceof Map)) {
    throw new TypeError(`cache must be the Map returned by forward(..., { cache: true }).cache`);
  }
  const t = cache.get(name);
  if (!t) {
    throw new RangeError(
      `the activation cache has no "${name}"; run forward(config, params, ids, { cache: true }) and pass its cache`,
    );
  }
  return t;
}

/**
 * The attention pattern of one layer: softmax weights `[head, query, key]`; each row sums to 1 and
 * is 0 right of the diagonal (causal).
 *
 * @param cache the activation cache from `forward(..., { cache: true })`
 * @param layer block index, `0 <= layer < nLayer`
 * @returns the cached `blocks.{layer}.attn.pattern` tensor `[head, pos, key]` (shared, not copied)
 * @throws {RangeError} if the cache has no pattern for `layer`
 * @example
 * ```ts
 * import { attentionPatterns } from "./forward.ts";
 * const cache = new Map([["blocks.0.attn.pattern", { data: new Float32Array([1, 0, 0.5, 0.5]), dims: [1, 2, 2] }]]);
 * console.log(attentionPatterns(cache, 0).dims); // [1, 2, 2]
 * ```
 */
export function attentionPatterns(cache: ActivationCache, layer: number): Tensor {
  if (!Number.isInteger(layer) || layer < 0) {
    throw new RangeError(`layer is ${String(layer)}; it must be an integer >= 0`);
  }
  return cached(cache, `blocks.${layer}.attn.pattern`);
}

/**
 * What {@linkcode residualNorms} returns.
 *
 * @example
 * ```ts
 * import type { ResidualNormsResult } from "./forward.ts";
 * const r: ResidualNormsResult = { names: ["blocks.0.resid_pre"], norms: { data: new Float32Array(3), dims: [1, 3] } };
 * console.log(r.names.length);
 * ```
 */
export interface ResidualNormsResult {
  /** Which stream each row measures: `blocks.0.resid_pre`, then `blocks.{i}.resid_post` for every layer. */
  names: string[];
  /** L2 norms `[layer + 1, pos]`: row 0 is the embeddings, row `k + 1` is after block `k`. */
  norms: Tensor;
}

/**
 * L2 norm of the residual stream per layer and position: how large the stream grows through the blocks.
 *
 * @param cache the activation cache from `forward(..., { cache: true })`
 * @returns names and norms `[layer + 1, pos]` (row 0: before block 0; row `k + 1`: after block `k`)
 * @throws {RangeError} if the cache lacks `blocks.0.resid_pre`
 * @example
 * ```ts
 * import { residualNorms } from "./forward.ts";
 * const t = (v: number[]) => ({ data: new Float32Array(v), dims: [1, 2] });
 * const cache = new Map([["blocks.0.resid_pre", t([3, 4])], ["blocks.0.resid_post", t([6, 8])]]);
 * console.log(residualNorms(cache).norms.data); // Float32Array [5, 10]
 * ```
 */
export function residualNorms(cache: ActivationCache): ResidualNormsResult {
  const first = cached(cache, "blocks.0.resid_pre");
  const names = ["blocks.0.resid_pre"];
  for (let i = 0; cache.has(`blocks.${i}.resid_post`); i++) names.push(`blocks.${i}.resid_post`);
  const [n, D] = first.dims;
  const norms = new Float32Array(names.length * n);
  names.forEach((name, r) => {
    const x = cached(cache, name).data;
    for (let p = 0; p < n; p++) {
      let ss = 0;
      for (let d = 0; d < D; d++) ss += x[p * D + d] * x[p * D + d];
      norms[r * n + p] = Math.sqrt(ss);
    }
  });
  return { names, norms: { data: norms, dims: [names.length, n] } };
}

/**
 * Options of {@linkcode logitLens}.
 *
 * @example
 * ```ts
 * import type { LogitLensOptions } from "./forward.ts";
 * const o: LogitLensOptions = { position: 0, topK: 3 };
 * console.log(o.topK);
 * ```
 */
export interface LogitLensOptions {
  /** Row of the cached call to read (`0 <= position < pos`). Default: the last. */
  position?: number;
  /** How many top tokens to list per layer. Default `5`. */
  topK?: number;
}

/**
 * One layer of a {@linkcode LogitLensResult}.
 *
 * @example
 * ```ts
 * import type { LogitLensLayer } from "./forward.ts";
 * const l: LogitLensLayer = {
 *   name: "blocks.0.resid_post", top: [{ id: 3, prob: 0.9 }], predictionProb: 0.9, predictionRank: 1,
 *   logits: new Float32Array(4),
 * };
 * console.log(l.top[0].id);
 * ```
 */
export interface LogitLensLayer {
  /** The residual stream read: `blocks.0.resid_pre` or `blocks.{k}.resid_post`. */
  name: string;
  /** The `topK` most likely tokens, most likely first (ties: lower id first). */
  top: { id: number; prob: number }[];
  /** Probability this layer gives to the model's eventual prediction. */
  predictionProb: number;
  /** Rank of the eventual prediction at this layer (1 = top). */
  predictionRank: number;
  /** Logits `[vocab]` of `head(norm_f(stream))`. */
  logits: Float32Array;
}

/**
 * What {@linkcode logitLens} returns.
 *
 * @example
 * ```ts
 * import type { LogitLensResult } from "./forward.ts";
 * function summary(r: LogitLensResult): string {
 *   return r.layers.map((l) => `${l.name}: ${l.predictionProb.toFixed(2)}`).join("\n");
 * }
 * console.log(typeof summary);
 * ```
 */
export interface LogitLensResult {
  /** The row that was read. */
  position: number;
  /** The eventual prediction: the argmax of the real final logits at `position`. */
  prediction: number;
  /** One entry per stream: before block 0, then after each block (the last equals the real logits). */
  layers: LogitLensLayer[];
}

/**
 * Logit lens: applies the final norm and the head to the residual stream after every block (and
 * before the first), showing what the model "would predict" at each depth. The last entry equals
 * the real logits.
 *
 * @param config the architecture the cache came from
 * @param params the same parameters (`norm_f.*`, `embed.tokens` or `head.weight` are read)
 * @param cache the activation cache from `forward(..., { cache: true })`
 * @param options position and `topK`; see {@linkcode LogitLensOptions}
 * @returns the eventual prediction and, per stream, its top tokens and the prediction's probability and rank
 * @throws {RangeError} on a position outside the cached rows, a bad `topK` or a cache without `resid_post`s
 * @example
 * ```ts
 * import { expectedParamShapes, forward, logitLens } from "./forward.ts";
 * import type { Gpt2Config, ParamMap } from "./types.ts";
 *
 * const config: Gpt2Config = {
 *   family: "gpt2", vocabSize: 7, maxPositions: 4, dModel: 4, nLayer: 2, nHead: 1, dMlp: 8, normEps: 1e-5,
 * };
 * const params: ParamMap = new Map();
 * for (const [name, dims] of expectedParamShapes(config)) {
 *   const data = new Float32Array(dims.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i * 1.3 + name.length));
 *   params.set(name, { data, dims });
 * }
 * const { cache } = forward(config, params, [1, 2], { cache: true });
 * const lens = logitLens(config, params, cache!, { topK: 2 });
 * console.log(lens.layers.map((l) => l.predictionRank)); // the last is 1
 * ```
 */
export function logitLens(
  config: ArchConfig,
  params: ParamMap,
  cache: ActivationCache,
  options: LogitLensOptions = {},
): LogitLensResult {
  checkConfig(config);
  const s = sizesOf(config);
  const names = ["blocks.0.resid_pre"];
  for (let i = 0; i < s.nLayer; i++) names.push(`blocks.${i}.resid_post`);
  const streams = names.map((name) => cached(cache, name));
  const [n, D] = streams[0].dims;
  if (D !== s.dModel) {
    throw new RangeError(`the cache's residual width is ${D} but config.dModel is ${s.dModel}; pass the same config`);
  }
  const position = options.position ?? n - 1;
  if (!Number.isInteger(position) || position < 0 || position >= n) {
    throw new RangeError(`options.position is ${String(position)}; the cache holds positions 0..${n - 1}`);
  }
  const topK = options.topK ?? 5;
  if (!Number.isInteger(topK) || topK < 1) throw new RangeError(`options.topK is ${String(topK)}; it must be >= 1`);
  for (const name of ["norm_f.gain", ...(config.family === "gpt2" ? ["norm_f.bias"] : [])]) {
    if (!params.has(name)) throw new TypeError(`params is missing "${name}", which the logit lens needs`);
  }
  const headName = config.family === "llama" && !config.tieWordEmbeddings ? "head.weight" : "embed.tokens";
  if (!params.has(headName)) throw new TypeError(`params is missing "${headName}", which the logit lens needs`);

  const normed = new Float32Array(D);
  const layerLogits = streams.map((t) => {
    norm(config, params, "norm_f", normed, t.data.subarray(position * D, (position + 1) * D), 1);
    const logits = new Float32Array(s.vocab);
    unembed(config, params, logits, normed, 1);
    return logits;
  });
  const final = layerLogits[layerLogits.length - 1];
  let prediction = 0;
  for (let v = 1; v < s.vocab; v++) if (final[v] > final[prediction]) prediction = v;

  const layers = layerLogits.map((logits, k): LogitLensLayer => {
    const probs = softmax64(logits);
    const top = topIndices(probs, Math.min(topK, s.vocab)).map((id) => ({ id, prob: probs[id] }));
    let rank = 1;
    for (let v = 0; v < s.vocab; v++) {
      if (probs[v] > probs[prediction] || (probs[v] === probs[prediction] && v < prediction)) rank++;
    }
    return { name: names[k], top, predictionProb: probs[prediction], predictionRank: rank, logits };
  });
  return { position, prediction, layers };
}
