/**
 * Training GPT-2 family models in TypeScript: GPT-2 initialisation, a
 * hand-written backward pass (see `lib/_backward.ts`), AdamW with warmup and a
 * cosine schedule, global gradient-norm clipping, checkpoints that resume
 * bit-exactly, and optional data-parallel gradients on a second core.
 *
 * Parameters use the names and `[in, out]` layouts of {@linkcode ParamMap} in
 * `lib/types.ts`, so `lib/forward.ts` and `lib/export.ts` read them unchanged.
 *
 * @module
 */
import { allocActs, gpt2Backward, gpt2Forward, gpt2Layout, type ParamLayout } from "./_backward.ts";
import { writeFileAtomic } from "./_fs.ts";
import type { Gpt2Config, ParamMap } from "./types.ts";

// ---------------------------------------------------------------------------
// configuration checks

function checkConfig(config: Gpt2Config): void {
  if (!config || config.family !== "gpt2") {
    throw new TypeError(`config.family must be "gpt2", got ${JSON.stringify(config?.family)}; pass a Gpt2Config`);
  }
  for (const k of ["vocabSize", "maxPositions", "dModel", "nLayer", "nHead", "dMlp"] as const) {
    const v = config[k];
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`config.${k} must be a positive integer, got ${v}`);
  }
  if (config.dModel % config.nHead !== 0) {
    throw new RangeError(
      `config.dModel (${config.dModel}) must be divisible by config.nHead (${config.nHead}); pick nHead dividing dModel`,
    );
  }
  if (!(config.normEps > 0)) throw new RangeError(`config.normEps must be > 0, got ${config.normEps}`);
}

const CONFIG_FIELDS = ["family", "vocabSize", "maxPositions", "dModel", "nLayer", "nHead", "dMlp", "normEps"] as const;

// ---------------------------------------------------------------------------
// parameters

/**
 * Whether AdamW applies weight decay to a parameter: yes for matrices (names ending in `.weight`)
 * and embeddings (`embed.*`), no for biases and LayerNorm gains (GPT-2 / nanoGPT rule: decay every
 * tensor with 2 or more dims).
 *
 * @param name readable parameter name
 * @returns true when the tensor is decayed
 * @example
 * ```ts
 * import { assert } from "@std/assert";
 * import { decaysWeight } from "./train.ts";
 * assert(decaysWeight("blocks.0.attn.qkv.weight") && decaysWeight("embed.tokens"));
 * assert(!decaysWeight("blocks.0.ln1.gain") && !decaysWeight("blocks.0.mlp.in.bias"));
 * ```
 */
export function decaysWeight(name: string): boolean {
  return name.endsWith(".weight") || name.startsWith("embed.");
}

/**
 * GPT-2 initialisation: every matrix and embedding drawn from N(0, 0.02²), the residual projections
 * (`attn.o.weight`, `mlp.out.weight`) from N(0, (0.02/√(2·nLayer))²), biases 0, LayerNorm gains 1.
 * Normals come from a Box–Muller transform over the injected uniform generator, drawn in buffer
 * order (embeddings, then blocks in order, then `norm_f`), so a seeded `prng` gives identical weights.
 *
 * @param config GPT-2 architecture
 * @param prng uniform generator on [0, 1): a function, or an object with `next()` such as `createPrng(seed)`
 * @returns the parameters under their readable names, all views into one contiguous buffer
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { initGpt2Params } from "./train.ts";
 * let s = 1;
 * const prng = () => ((s = (s * 16807) % 2147483647) / 2147483647);
 * const params = initGpt2Params(
 *   { family: "gpt2", vocabSize: 11, maxPositions: 8, dModel: 8, nLayer: 1, nHead: 2, dMlp: 32, normEps: 1e-5 },
 *   prng,
 * );
 * assertEquals(params.get("blocks.0.ln1.gain")!.data[0], 1);
 * assertEquals(params.get("blocks.0.attn.qkv.weight")!.dims, [8, 24]);
 * ```
 */
export function initGpt2Params(config: Gpt2Config, prng: (() => number) | { next(): number }): ParamMap {
  checkConfig(config);
  const uniform = typeof prng === "function" ? prng : typeof prng?.next === "function" ? () => prng.next() : null;
  if (!uniform) {
    throw new TypeError(
      "prng must be a function returning numbers in [0, 1) or an object with next(), e.g. createPrng(0)",
    );
  }
  const lay = gpt2Layout(config);
  const flat = new Float32Array(lay.total);
  fillInit(flat, lay, config, uniform);
  return flatToMap(flat, lay);
}

function fillInit(flat: Float32Array, lay: ParamLayout, config: Gpt2Config, prng: () => number): void {
  let spare: number | null = null;
  const normal = (): number => {
    if (spare !== null) {
      const z = spare;
      spare = null;
      return z;
    }
    const u1 = 1 - prng(); // (0, 1]: log never sees 0
    const u2 = prng();
    const r = Math.sqrt(-2 * Math.log(u1));
    spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  };
  const residualStd = 0.02 / Math.sqrt(2 * config.nLayer);
  for (const s of lay.slots) {
    const part = flat.subarray(s.offset, s.offset + s.size);
    if (s.name.endsWith(".gain")) part.fill(1);
    else if (s.name.endsWith(".bias")) part.fill(0);
    else {
      const std = s.name.endsWith("attn.o.weight") || s.name.endsWith("mlp.out.weight") ? residualStd : 0.02;
      for (let i = 0; i < s.size; i++) part[i] = normal() * std;
    }
  }
}

function flatToMap(flat: Float32Array, lay: ParamLayout): ParamMap {
  const m: ParamMap = new Map();
  for (const s of lay.slots) m.set(s.name, { data: flat.subarray(s.offset, s.offset + s.size), dims: s.dims });
  return m;
}

function mapToFlat(params: ParamMap, lay: ParamLayout, out: Float32Array): void {
  for (const s of lay.slots) {
    const t = params.get(s.name);
    if (!t) throw new RangeError(`params is missing "${s.name}" (dims [${s.dims}]); initialise with initGpt2Params()`);
    if (t.data.length !== s.size) {
      throw new RangeError(
        `params "${s.name}" has ${t.data.length} values (dims [${t.dims}]), expected dims [${s.dims}] for this config`,
      );
    }
    out.set(t.data, s.offset);
  }
}

// ---------------------------------------------------------------------------
// loss and gradient

function checkTokens(name: string, data: Int32Array, vocab: number): void {
  if (!(data instanceof Int32Array)) throw new TypeError(`${name} must be an Int32Array of token ids`);
  for (let i = 0; i < data.length; i++) {
    const t = data[i];
    if (t < 0 || t >= vocab) {
      throw new RangeError(
        `${name}[${i}] is ${t}, outside the vocabulary [0, ${vocab}); re-tokenize or grow vocabSize`,
      );
    }
  }
}

function checkSeqLen(seqLen: number, config: Gpt2Config): void {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`seqLen must be a positive integer, got ${seqLen}`);
  if (seqLen > config.maxPositions) {
    throw new RangeError(
      `seqLen ${seqLen} exceeds config.maxPositions ${config.maxPositions}; use seqLen <= ${config.maxPositions}`,
    );
  }
}

/** Options of {@linkcode gpt2LossAndGrad}. */
export interface LossAndGradOptions {
  /** Sequences in `inputs` (`batch`). Default 1. */
  batch?: number;
}

/** Result of {@linkcode gpt2LossAndGrad}. */
export interface LossAndGradResult {
  /** Mean cross-entropy over all `batch·pos` positions (nats). */
  loss: number;
  /** ∂loss/∂param under the same names and dims as the parameters. */
  grads: ParamMap;
}

/**
 * Mean next-token cross-entropy of a batch and its gradient for every parameter
 * (forward with saved activations, then the hand-written backward pass).
 *
 * @param config GPT-2 architecture
 * @param params parameters (names and dims of `lib/types.ts`)
 * @param inputs token ids `[batch, pos]`, flat
 * @param targets next-token ids `[batch, pos]`, flat
 * @param options batch size (default 1)
 * @returns mean loss and gradients
 * @example
 * ```ts
 * import { assertAlmostEquals, assertEquals } from "@std/assert";
 * import { gpt2LossAndGrad, initGpt2Params } from "./train.ts";
 * const config = { family: "gpt2", vocabSize: 11, maxPositions: 8, dModel: 8, nLayer: 1, nHead: 2, dMlp: 32, normEps: 1e-5 } as const;
 * let s = 7;
 * const params = initGpt2Params(config, () => ((s = (s * 16807) % 2147483647) / 2147483647));
 * const { loss, grads } = gpt2LossAndGrad(config, params, new Int32Array([1, 2, 3]), new Int32Array([2, 3, 4]));
 * assertAlmostEquals(loss, Math.log(11), 0.05); // near-uniform predictions at init
 * assertEquals(grads.get("embed.tokens")!.dims, [11, 8]);
 * ```
 */
export function gpt2LossAndGrad(
  config: Gpt2Config,
  params: ParamMap,
  inputs: Int32Array,
  targets: Int32Array,
  options: LossAndGradOptions = {},
): LossAndGradResult {
  checkConfig(config);
  const B = options.batch ?? 1;
  if (!Number.isInteger(B) || B < 1) throw new RangeError(`batch must be a positive integer, got ${B}`);
  if (inputs.length !== targets.length || inputs.length % B !== 0 || inputs.length === 0) {
    throw new RangeError(
      `inputs (${inputs.length}) and targets (${targets.length}) must have the same non-zero length, divisible by batch ${B}`,
    );
  }
  const T = inputs.length / B;
  checkSeqLen(T, config);
  checkTokens("inputs", inputs, config.vocabSize);
  checkTokens("targets", targets, config.vocabSize);
  const lay = gpt2Layout(config);
  const flat = new Float32Array(lay.total);
  mapToFlat(params, lay, flat);
  const grads = new Float32Array(lay.total);
  const acts = allocActs(config, B, T);
  const sum = gpt2Forward(config, lay, flat, acts, inputs, targets);
  gpt2Backward(config, lay, flat, grads, acts, inputs, targets, 1 / (B * T));
  return { loss: sum / (B * T), grads: flatToMap(grads, lay) };
}

// ---------------------------------------------------------------------------
// evaluation

/** Options of {@linkcode evaluate}. */
export interface EvaluateOptions {
  /** Windows run together. Default 8. */
  batchSize?: number;
  /** Stop after this many predicted tokens. Default: all of `data`. */
  maxTokens?: number;
}

/** Result of {@linkcode evaluate}. */
export interface EvaluateResult {
  /** Mean next-token cross-entropy (nats). */
  loss: number;
  /** `exp(loss)`. */
  perplexity: number;
  /** Number of predicted tokens. */
  tokens: number;
}

/**
 * Mean next-token loss and perplexity over non-overlapping windows of `seqLen + 1` tokens
 * (window `w` predicts `data[w·seqLen + 1 .. (w+1)·seqLen]`).
 *
 * @param config GPT-2 architecture
 * @param params parameters
 * @param data token ids, at least `seqLen + 1`
 * @param seqLen window length (≤ `config.maxPositions`)
 * @param options batch size and token cap
 * @returns mean loss, perplexity and token count
 * @example
 * ```ts
 * import { assertAlmostEquals, assertEquals } from "@std/assert";
 * import { evaluate, initGpt2Params } from "./train.ts";
 * const config = { family: "gpt2", vocabSize: 11, maxPositions: 8, dModel: 8, nLayer: 1, nHead: 2, dMlp: 32, normEps: 1e-5 } as const;
 * let s = 3;
 * const params = initGpt2Params(config, () => ((s = (s * 16807) % 2147483647) / 2147483647));
 * const r = evaluate(config, params, new Int32Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), 4);
 * assertEquals(r.tokens, 8);
 * assertAlmostEquals(r.perplexity, 11, 0.5);
 * ```
 */
export function evaluate(
  config: Gpt2Config,
  params: ParamMap,
  data: Int32Array,
  seqLen: number,
  options: EvaluateOptions = {},
): EvaluateResult {
  checkConfig(config);
  checkSeqLen(seqLen, config);
  if (!(data instanceof Int32Array)) throw new TypeError("data must be an Int32Array of token ids");
  if (data.length < seqLen + 1) {
    throw new RangeError(`data has ${data.length} tokens; evaluation needs at least seqLen + 1 = ${seqLen + 1}`);
  }
  checkTokens("data", data, config.vocabSize);
  const bs = options.batchSize ?? 8;
  if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`batchSize must be a positive integer, got ${bs}`);
  const lay = gpt2Layout(config);
  const flat = new Float32Array(lay.total);
  mapToFlat(params, lay, flat);
  let windows = Math.floor((data.length - 1) / seqLen);
  if (options.maxTokens !== undefined) {
    if (!(options.maxTokens >= seqLen)) throw new RangeError(`maxTokens must be >= seqLen, got ${options.maxTokens}`);
    windows = Math.min(windows, Math.floor(options.maxTokens / seqLen));
  }
  return evalFlat(config, lay, flat, data, seqLen, windows, bs);
}

function evalFlat(
  config: Gpt2Config,
  lay: ParamLayout,
  flat: Float32Array,
  data: Int32Array,
  T: number,
  windows: number,
  bs: number,
): EvaluateResult {
  let acts = allocActs(config, Math.min(bs, windows), T);
  let sum = 0;
  for (let w0 = 0; w0 < windows; w0 += bs) {
    const B = Math.min(bs, windows - w0);
    if (B !== acts.B) acts = allocActs(config, B, T);
    const inputs = new Int32Array(B * T), targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const start = (w0 + b) * T;
      inputs.set(data.subarray(start, start + T), b * T);
      targets.set(data.subarray(start + 1, start + T + 1), b * T);
    }
    sum += gpt2Forward(config, lay, flat, acts, inputs, targets);
  }
  const tokens = windows * T;
  const loss = sum / tokens;
  return { loss, perplexity: Math.exp(loss), tokens };
}

// ---------------------------------------------------------------------------
// schedule, PRNG

/** Schedule fields read by {@linkcode learningRateAt}. */
export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Linear warmup steps. */
  warmup: number;
  /** Final learning rate at the end of the cosine. */
  minLr: number;
  /** Total steps. */
  steps: number;
}

/**
 * Learning rate for 0-based `step`: linear warmup to `lr` over `warmup` steps
 * (`lr·(step+1)/warmup`), then cosine decay from `lr` to `minLr` at the last step.
 *
 * @param step 0-based step
 * @param s schedule
 * @returns the learning rate
 * @example
 * ```ts
 * import { assertAlmostEquals } from "@std/assert";
 * import { learningRateAt } from "./train.ts";
 * const s = { lr: 1e-3, warmup: 10, minLr: 1e-4, steps: 100 };
 * assertAlmostEquals(learningRateAt(9, s), 1e-3, 1e-12); // end of warmup: peak
 * assertAlmostEquals(learningRateAt(99, s), 1e-4, 1e-12); // last step: minLr
 * ```
 */
export function learningRateAt(step: number, s: ScheduleOptions): number {
  if (step < s.warmup) return (s.lr * (step + 1)) / s.warmup;
  const span = Math.max(1, s.steps - 1 - s.warmup);
  const progress = Math.min(1, (step - s.warmup) / span);
  return s.minLr + 0.5 * (s.lr - s.minLr) * (1 + Math.cos(Math.PI * progress));
}

/** mulberry32: a 32-bit state we can store in a checkpoint. */
function mulberry32(state: { s: number }): () => number {
  return () => {
    state.s = (state.s + 0x6D2B79F5) | 0;
    let t = state.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// checkpoints

/** Everything needed to resume training exactly. */
export interface Checkpoint {
  /** Architecture. */
  config: Gpt2Config;
  /** Completed optimiser steps. */
  step: number;
  /** Parameters. */
  params: ParamMap;
  /** AdamW first moments, flat in parameter order. */
  adamM: Float32Array;
  /** AdamW second moments, flat in parameter order. */
  adamV: Float32Array;
  /** State of the batch-sampling generator. */
  rngState: number;
  /** Batch size the run used. */
  batchSize: number;
  /** Sequence length the run used. */
  seqLen: number;
  /** Loss history so far. */
  history: TrainStepRecord[];
  /** Evaluations so far. */
  evals: EvalRecord[];
}

const MAGIC = "PSCKPT01";

/**
 * Writes a checkpoint as one binary file, atomically: 8-byte magic `PSCKPT01`, a little-endian
 * uint32 header length, a JSON header (config, step, RNG state, history, parameter names and dims),
 * zero padding to a multiple of 4 bytes, then float32 parameters, Adam `m`, Adam `v`.
 *
 * @param path destination file
 * @param ckpt state to save
 * @returns when the file is in place
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { initGpt2Params, loadCheckpoint, saveCheckpoint } from "./train.ts";
 * const config = { family: "gpt2", vocabSize: 11, maxPositions: 8, dModel: 8, nLayer: 1, nHead: 2, dMlp: 32, normEps: 1e-5 } as const;
 * const params = initGpt2Params(config, () => 0.5);
 * const n = [...params.values()].reduce((a, t) => a + t.data.length, 0);
 * const path = await Deno.makeTempFile();
 * await saveCheckpoint(path, {
 *   config, step: 0, params, adamM: new Float32Array(n), adamV: new Float32Array(n),
 *   rngState: 1, batchSize: 8, seqLen: 8, history: [], evals: [],
 * });
 * assertEquals((await loadCheckpoint(path)).params.get("embed.tokens"), params.get("embed.tokens"));
 * await Deno.remove(path);
 * ```
 */
export async function saveCheckpoint(path: string, ckpt: Checkpoint): Promise<void> {
  checkConfig(ckpt.config);
  const lay = gpt2Layout(ckpt.config);
  if (ckpt.adamM.length !== lay.total || ckpt.adamV.length !== lay.total) {
    throw new RangeError(`adamM/adamV must have ${lay.total} values (one per parameter)`);
  }
  const header = JSON.stringify({
    config: ckpt.config,
    step: ckpt.step,
    rngState: ckpt.rngState,
    batchSize: ckpt.batchSize,
    seqLen: ckpt.seqLen,
    history: ckpt.history,
    evals: ckpt.evals,
    params: lay.slots.map((s) => ({ name: s.name, dims: s.dims })),
  });
  const hb = new TextEncoder().encode(header);
  const start = Math.ceil((12 + hb.length) / 4) * 4;
  const bytes = new Uint8Array(start + 3 * 4 * lay.total);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(bytes.buffer).setUint32(8, hb.length, true);
  bytes.set(hb, 12);
  const f = new Float32Array(bytes.buffer, start, 3 * lay.total);
  mapToFlat(ckpt.params, lay, f.subarray(0, lay.total));
  f.set(ckpt.adamM, lay.total);
  f.set(ckpt.adamV, 2 * lay.total);
  await writeFileAtomic(path, bytes);
}

/**
 * Reads a checkpoint written by {@linkcode saveCheckpoint} (or by `train` with `checkpointPath`).
 *
 * @param path checkpoint file
 * @returns the saved state
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { loadCheckpoint, train } from "./train.ts";
 * const config = { family: "gpt2", vocabSize: 5, maxPositions: 8, dModel: 8, nLayer: 1, nHead: 2, dMlp: 32, normEps: 1e-5 } as const;
 * const checkpointPath = await Deno.makeTempFile();
 * await train(config, new Int32Array(50).map((_, i) => i % 5), { steps: 3, batchSize: 2, seqLen: 8, checkpointPath });
 * const ck = await loadCheckpoint(checkpointPath);
 * assertEquals(ck.step, 3);
 * assertEquals(ck.history.length, 3);
 * await Deno.remove(checkpointPath);
 * ```
 */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const bytes = await Deno.readFile(path);
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw new TypeError(`${path} is not a paramscope checkpoint (missing "${MAGIC}" magic)`);
  }
  const hlen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  const h = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + hlen)));
  const config = h.config as Gpt2Config;
  checkConfig(config);
  const lay = gpt2Layout(config);
  const start = Math.ceil((12 + hlen) / 4) * 4;
  if (bytes.length !== start + 12 * lay.total) {
    throw new RangeError(`${path} is truncated: expected ${start + 12 * lay.total} bytes, found ${bytes.length}`);
  }
  const f = new Float32Array(bytes.slice(start).buffer);
  return {
    config,
    step: h.step,
    params: flatToMap(f.slice(0, lay.total), lay),
    adamM: f.slice(lay.total, 2 * lay.total),
    adamV: f.slice(2 * lay.total),
    rngState: h.rngState,
    batchSize: h.batchSize,
    seqLen: h.seqLen,
    history: h.history,
    evals: h.evals,
  };
}

// ---------------------------------------------------------------------------
// training loop

/** Progress of one optimiser step, passed to `onStep` and kept in the history. */
export interface TrainStepRecord {
  /** Completed steps (1-based). */
  step: number;
  /** Mean training loss of this step's batch (nats). */
  loss: number;
  /** Learning rate used for this step. */
  lr: number;
  /** Global gradient L2 norm before clipping. */
  gradNorm: number;
  /** Training tokens per second, averaged since this call of `train` started. */
  tokensPerSec: number;
  /** Milliseconds since this call of `train` started. */
  elapsedMs: number;
  /** Estimated milliseconds to the last step. */
  etaMs: number;
  /** Held-out loss, when an evaluation ran at this step. */
  evalLoss?: number;
}

/** One evaluation on `evalData`. */
export interface EvalRecord {
  /** Completed steps when it ran. */
  step: number;
  /** Mean held-out loss (nats). */
  loss: number;
  /** `exp(loss)`. */
  perplexity: number;
}

/** Options of {@linkcode train}. Every field has a default. */
export interface TrainOptions {
  /** Optimiser steps. Default 1000. */
  steps?: number;
  /** Sequences per step (`batch`). Default 8. */
  batchSize?: number;
  /** Tokens per sequence (`pos`, ≤ `maxPositions`). Default `min(128, maxPositions)`. */
  seqLen?: number;
  /** Peak learning rate (> 0). Default 1e-3. */
  lr?: number;
  /** Linear warmup steps. Default `min(100, floor(steps/10))`. */
  warmup?: number;
  /** Learning rate at the end of the cosine. Default `lr / 10`. */
  minLr?: number;
  /** AdamW decoupled weight decay, applied only where {@linkcode decaysWeight} is true. Default 0.1. */
  weightDecay?: number;
  /** AdamW β1. Default 0.9. */
  beta1?: number;
  /** AdamW β2. Default 0.95. */
  beta2?: number;
  /** AdamW ε. Default 1e-8. */
  eps?: number;
  /** Clip the global gradient norm to this value; 0 disables. Default 1. */
  clip?: number;
  /** Seed for initialisation and batch sampling. Default 0. */
  seed?: number;
  /** Start from these parameters instead of {@linkcode initGpt2Params}. */
  initParams?: ParamMap;
  /** Evaluate on `evalData` every this many steps (and at the last step). Default 100. */
  evalEvery?: number;
  /** Held-out tokens for evaluation. Default: none. */
  evalData?: Int32Array;
  /** Cap on tokens per evaluation. Default 16384. */
  evalTokens?: number;
  /** Write a checkpoint here every `checkpointEvery` steps and at the end. Default: none. */
  checkpointPath?: string;
  /** Steps between checkpoints. Default 100. */
  checkpointEvery?: number;
  /** Resume from `checkpointPath` when that file exists. Default false. */
  resume?: boolean;
  /**
   * Threads computing gradients: 1 (this thread) or 2 (this thread plus one Web Worker sharing parameters
   * through `SharedArrayBuffer`). The batch is always split into the same two shards whose gradients are
   * summed in a fixed order, so both settings give bit-identical results. Default 2 when
   * `navigator.hardwareConcurrency >= 2`, else 1 (2 threads measured ≈ 2× faster in `bench/train_bench.ts`).
   */
  workers?: 1 | 2;
  /** Called after every step; may return a promise (awaited). */
  onStep?: (info: TrainStepRecord) => void | Promise<void>;
  /** Stops after the current step when aborted (a checkpoint is written if `checkpointPath` is set). */
  signal?: AbortSignal;
}

/** Result of {@linkcode train}. */
export interface TrainResult {
  /** Trained parameters (names and dims of `lib/types.ts`). */
  params: ParamMap;
  /** One record per step, including steps before a resume. */
  history: TrainStepRecord[];
  /** Evaluations, including those before a resume. */
  evals: EvalRecord[];
  /** Completed steps. */
  step: number;
}

interface Shard {
  B: number;
  firstSeq: number;
}

interface WorkerLink {
  worker: Worker;
  call(starts: Int32Array): Promise<number>;
}

function startWorker(
  config: Gpt2Config,
  params: Float32Array,
  grads: Float32Array,
  data: Int32Array,
  B: number,
  T: number,
  scale: number,
): Promise<WorkerLink> {
  const worker = new Worker(new URL("./_train_worker.ts", import.meta.url), { type: "module" });
  let pending: { resolve: (v: number) => void; reject: (e: Error) => void } | null = null;
  let ready: (() => void) | null = null;
  let failed: ((e: Error) => void) | null = null;
  worker.onmessage = (e: MessageEvent) => {
    const m = e.data as { type: string; loss?: number; message?: string };
    if (m.type === "ready") ready?.();
    else if (m.type === "done") pending?.resolve(m.loss!);
    else if (m.type === "error") {
      const err = new Error(`training worker failed: ${m.message}`);
      if (pending) pending.reject(err);
      else failed?.(err);
    }
  };
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    const err = new Error(`training worker failed: ${e.message}`);
    if (pending) pending.reject(err);
    else failed?.(err);
  };
  return new Promise((resolve, reject) => {
    ready = () =>
      resolve({
        worker,
        call(starts: Int32Array): Promise<number> {
          return new Promise((res, rej) => {
            pending = {
              resolve: (v) => {
                pending = null;
                res(v);
              },
              reject: (e) => {
                pending = null;
                rej(e);
              },
            };
            worker.postMessage({ type: "step", starts });
          });
        },
      });
    failed = (e) => {
      worker.terminate();
      reject(e);
    };
    worker.postMessage({ type: "init", config, params, grads, data, B, T, scale });
  });
}

function checkOptions(config: Gpt2Config, data: Int32Array, o: TrainOptions) {
  const steps = o.steps ?? 1000;
  const batchSize = o.batchSize ?? 8;
  const seqLen = o.seqLen ?? Math.min(128, config.maxPositions);
  const lr = o.lr ?? 1e-3;
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  };
  int("steps", steps, 1);
  int("batchSize", batchSize, 1);
  checkSeqLen(seqLen, config);
  if (!(lr > 0) || !Number.isFinite(lr)) {
    throw new RangeError(`lr must be a finite number > 0, got ${lr}; try 1e-3 for small models`);
  }
  const warmup = o.warmup ?? Math.min(100, Math.floor(steps / 10));
  int("warmup", warmup, 0);
  const minLr = o.minLr ?? lr / 10;
  if (!(minLr >= 0 && minLr <= lr)) throw new RangeError(`minLr must be in [0, lr = ${lr}], got ${minLr}`);
  const weightDecay = o.weightDecay ?? 0.1;
  if (!(weightDecay >= 0)) throw new RangeError(`weightDecay must be >= 0, got ${weightDecay}`);
  const beta1 = o.beta1 ?? 0.9, beta2 = o.beta2 ?? 0.95, eps = o.eps ?? 1e-8;
  if (!(beta1 >= 0 && beta1 < 1)) throw new RangeError(`beta1 must be in [0, 1), got ${beta1}`);
  if (!(beta2 >= 0 && beta2 < 1)) throw new RangeError(`beta2 must be in [0, 1), got ${beta2}`);
  if (!(eps > 0)) throw new RangeError(`eps must be > 0, got ${eps}`);
  const clip = o.clip ?? 1;
  if (!(clip >= 0)) throw new RangeError(`clip must be >= 0 (0 disables clipping), got ${clip}`);
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  const evalEvery = o.evalEvery ?? 100;
  int("evalEvery", evalEvery, 1);
  const checkpointEvery = o.checkpointEvery ?? 100;
  int("checkpointEvery", checkpointEvery, 1);
  const workers = o.workers ?? ((globalThis.navigator?.hardwareConcurrency ?? 1) >= 2 ? 2 : 1);
  if (workers !== 1 && workers !== 2) throw new RangeError(`workers must be 1 or 2, got ${workers}`);
  if (!(data instanceof Int32Array)) throw new TypeError("data must be an Int32Array of token ids");
  if (data.length === 0) throw new RangeError("data is empty; pass the tokenized training corpus");
  if (data.length < seqLen + 1) {
    throw new RangeError(`data has ${data.length} tokens; training needs at least seqLen + 1 = ${seqLen + 1}`);
  }
  checkTokens("data", data, config.vocabSize);
  if (o.evalData !== undefined) {
    if (!(o.evalData instanceof Int32Array)) throw new TypeError("evalData must be an Int32Array of token ids");
    if (o.evalData.length < seqLen + 1) {
      throw new RangeError(`evalData has ${o.evalData.length} tokens; it needs at least seqLen + 1 = ${seqLen + 1}`);
    }
    checkTokens("evalData", o.evalData, config.vocabSize);
  }
  const evalTokens = o.evalTokens ?? 16384;
  if (!(evalTokens >= seqLen)) throw new RangeError(`evalTokens must be >= seqLen (${seqLen}), got ${evalTokens}`);
  return {
    steps,
    batchSize,
    seqLen,
    lr,
    warmup,
    minLr,
    weightDecay,
    beta1,
    beta2,
    eps,
    clip,
    seed,
    evalEvery,
    checkpointEvery,
    workers,
    evalTokens,
  };
}

function compareCheckpoint(ck: Checkpoint, config: Gpt2Config, batchSize: number, seqLen: number, path: string) {
  for (const k of CONFIG_FIELDS) {
    if (ck.config[k] !== config[k]) {
      throw new RangeError(
        `checkpoint ${path} was trained with config.${k} = ${ck.config[k]}, but this run has ${k} = ${
          config[k]
        }; use the checkpoint's configuration or another checkpointPath`,
      );
    }
  }
  if (ck.batchSize !== batchSize) {
    throw new RangeError(
      `checkpoint ${path} used batchSize ${ck.batchSize}, this run has ${batchSize}; they must match`,
    );
  }
  if (ck.seqLen !== seqLen) {
    throw new RangeError(`checkpoint ${path} used seqLen ${ck.seqLen}, this run has ${seqLen}; they must match`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Trains a GPT-2 family model on a token stream with AdamW.
 *
 * Each step samples `batchSize` windows of `seqLen + 1` tokens at uniformly random offsets (seeded
 * generator), computes the mean cross-entropy gradient, clips its global norm to `clip`, and applies
 * AdamW (decoupled weight decay on matrices and embeddings only, see {@linkcode decaysWeight}) at the
 * warmup + cosine learning rate of {@linkcode learningRateAt}. The same seed and options give a
 * bit-identical loss curve; resuming from a checkpoint continues that curve exactly.
 *
 * @param config GPT-2 architecture
 * @param data training token ids
 * @param options steps, batch, schedule, evaluation, checkpoints, threads; see {@linkcode TrainOptions}
 * @returns trained parameters and the loss history
 * @example
 * ```ts
 * import { assertLess } from "@std/assert";
 * import { train } from "./train.ts";
 * const config = { family: "gpt2", vocabSize: 5, maxPositions: 8, dModel: 16, nLayer: 1, nHead: 2, dMlp: 64, normEps: 1e-5 } as const;
 * const data = new Int32Array(200).map((_, i) => i % 5);
 * const { history } = await train(config, data, { steps: 60, batchSize: 4, seqLen: 8, lr: 1e-2, warmup: 5 });
 * assertLess(history.at(-1)!.loss, history[0].loss / 4);
 * ```
 */
export async function train(config: Gpt2Config, data: Int32Array, options: TrainOptions = {}): Promise<TrainResult> {
  checkConfig(config);
  const o = checkOptions(config, data, options);
  const lay = gpt2Layout(config);
  const B = o.batchSize, T = o.seqLen, N = lay.total;
  const useWorker = o.workers === 2 && B >= 2;
  const share = (n: number) => useWorker ? new Float32Array(new SharedArrayBuffer(4 * n)) : new Float32Array(n);
  const params = share(N);
  const adamM = new Float32Array(N), adamV = new Float32Array(N);
  const rng = { s: (o.seed ^ 0x5bd1e995) | 0 };
  let step = 0;
  let history: TrainStepRecord[] = [];
  let evals: EvalRecord[] = [];
  const path = options.checkpointPath;
  if (options.resume && path && await exists(path)) {
    const ck = await loadCheckpoint(path);
    compareCheckpoint(ck, config, B, T, path);
    mapToFlat(ck.params, lay, params);
    adamM.set(ck.adamM);
    adamV.set(ck.adamV);
    rng.s = ck.rngState;
    step = ck.step;
    history = ck.history;
    evals = ck.evals;
  } else if (options.initParams) {
    mapToFlat(options.initParams, lay, params);
  } else {
    fillInit(params, lay, config, mulberry32({ s: o.seed | 0 }));
  }
  const nextUniform = mulberry32(rng);

  // Two fixed shards (when B ≥ 2) whatever the thread count, so workers 1 and 2 agree bit for bit.
  const shards: Shard[] = B >= 2
    ? [{ B: Math.ceil(B / 2), firstSeq: 0 }, { B: Math.floor(B / 2), firstSeq: Math.ceil(B / 2) }]
    : [{ B, firstSeq: 0 }];
  const scale = 1 / (B * T);
  const grads = shards.map((_, i) => (i === 1 ? share(N) : new Float32Array(N)));
  const acts = allocActs(config, shards[0].B, T);
  const acts1 = shards.length > 1 && shards[1].B !== shards[0].B && !useWorker
    ? allocActs(config, shards[1].B, T)
    : acts;
  const inputs = new Int32Array(shards[0].B * T), targets = new Int32Array(shards[0].B * T);
  let link: WorkerLink | null = null;
  if (useWorker) {
    const shared = new Int32Array(new SharedArrayBuffer(4 * data.length));
    shared.set(data);
    link = await startWorker(config, params, grads[1], shared, shards[1].B, T, scale);
  }
  const decay = new Float32Array(N);
  for (const s of lay.slots) if (decaysWeight(s.name)) decay.fill(1, s.offset, s.offset + s.size);

  let savedStep = step;
  const save = async () => {
    await saveCheckpoint(path!, {
      config,
      step,
      params: flatToMap(params, lay),
      adamM,
      adamV,
      rngState: rng.s,
      batchSize: B,
      seqLen: T,
      history,
      evals,
    });
    savedStep = step;
  };
  const t0 = performance.now();
  const firstStep = step;
  try {
    while (step < o.steps) {
      if (options.signal?.aborted) break;
      const starts = new Int32Array(B);
      for (let b = 0; b < B; b++) starts[b] = Math.floor(nextUniform() * (data.length - T));
      const runShard = (k: number, a: typeof acts): number => {
        const sh = shards[k];
        const n = sh.B * T;
        const inp = inputs.subarray(0, n), tgt = targets.subarray(0, n);
        for (let b = 0; b < sh.B; b++) {
          const s0 = starts[sh.firstSeq + b];
          inp.set(data.subarray(s0, s0 + T), b * T);
          tgt.set(data.subarray(s0 + 1, s0 + T + 1), b * T);
        }
        grads[k].fill(0);
        const loss = gpt2Forward(config, lay, params, a, inp, tgt);
        gpt2Backward(config, lay, params, grads[k], a, inp, tgt, scale);
        return loss;
      };
      let lossSum: number;
      if (link) {
        const pending = link.call(starts.slice(shards[1].firstSeq));
        const l0 = runShard(0, acts);
        lossSum = l0 + await pending;
      } else {
        lossSum = runShard(0, acts);
        if (shards.length > 1) lossSum += runShard(1, acts1);
        await new Promise((r) => setTimeout(r, 0)); // let timers, UI and abort signals run
      }
      const g = grads[0];
      if (shards.length > 1) {
        const g1 = grads[1];
        for (let i = 0; i < N; i++) g[i] += g1[i];
      }
      let sq = 0;
      for (let i = 0; i < N; i++) sq += g[i] * g[i];
      const gradNorm = Math.sqrt(sq);
      const clipScale = o.clip > 0 && gradNorm > o.clip ? o.clip / gradNorm : 1;
      const lr = learningRateAt(step, o);
      step++;
      const bc1 = 1 - Math.pow(o.beta1, step), bc2 = 1 - Math.pow(o.beta2, step);
      const b1 = o.beta1, b2 = o.beta2, wd = o.weightDecay, eps = o.eps;
      for (let i = 0; i < N; i++) {
        const gi = g[i] * clipScale;
        const m = (adamM[i] = b1 * adamM[i] + (1 - b1) * gi);
        const v = (adamV[i] = b2 * adamV[i] + (1 - b2) * gi * gi);
        params[i] -= lr * (m / bc1 / (Math.sqrt(v / bc2) + eps) + wd * decay[i] * params[i]);
      }
      const elapsedMs = performance.now() - t0;
      const done = step - firstStep;
      const rec: TrainStepRecord = {
        step,
        loss: lossSum / (B * T),
        lr,
        gradNorm,
        tokensPerSec: (done * B * T) / (elapsedMs / 1000),
        elapsedMs,
        etaMs: (elapsedMs / done) * (o.steps - step),
      };
      if (options.evalData && (step % o.evalEvery === 0 || step === o.steps)) {
        const windows = Math.min(Math.floor((options.evalData.length - 1) / T), Math.floor(o.evalTokens / T));
        const r = evalFlat(config, lay, params, options.evalData, T, windows, 8);
        rec.evalLoss = r.loss;
        evals.push({ step, loss: r.loss, perplexity: r.perplexity });
      }
      history.push(rec);
      if (path && (step % o.checkpointEvery === 0 || step === o.steps)) await save();
      if (options.onStep) await options.onStep(rec);
    }
    if (path && savedStep !== step) await save(); // stopped by the signal
  } finally {
    link?.worker.terminate();
  }
  return { params: flatToMap(params.slice(), lay), history, evals, step };
}

// ---------------------------------------------------------------------------
// progress display

function fmtTime(ms: number): string {
  if (!Number.isFinite(ms)) return "--";
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(r).padStart(2, "0")}s` : `${r}s`;
}

/**
 * One-line terminal progress bar for a training step, meant for `\r` redrawing:
 * `[#########-----------]  450/1000  loss 3.2141  12.3k tok/s  left 4m12s`.
 *
 * @param info the record passed to `onStep`
 * @param totalSteps steps of the run
 * @returns the line (no newline)
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { formatProgress } from "./train.ts";
 * const line = formatProgress(
 *   { step: 5, loss: 2.5, lr: 1e-3, gradNorm: 1, tokensPerSec: 1500, elapsedMs: 1000, etaMs: 1000 },
 *   10,
 * );
 * assertEquals(line, "[##########----------]   5/10  loss 2.5000  1.5k tok/s  left 1s");
 * ```
 */
export function formatProgress(info: TrainStepRecord, totalSteps: number): string {
  const width = 20;
  const frac = totalSteps > 0 ? Math.min(1, Math.max(0, info.step / totalSteps)) : 0;
  const fill = Math.round(frac * width);
  const bar = "#".repeat(fill) + "-".repeat(width - fill);
  const tps = info.tokensPerSec >= 1000 ? `${(info.tokensPerSec / 1000).toFixed(1)}k` : info.tokensPerSec.toFixed(0);
  const steps = `${String(info.step).padStart(String(totalSteps).length)}/${totalSteps}`;
  const ev = info.evalLoss !== undefined ? `  eval ${info.evalLoss.toFixed(4)}` : "";
  return `[${bar}]  ${steps}  loss ${info.loss.toFixed(4)}${ev}  ${tps} tok/s  left ${fmtTime(info.etaMs)}`;
}
