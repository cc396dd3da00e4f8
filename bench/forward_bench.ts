/**
 * Speed of the reference forward pass on a GPT-2-shaped model (d_model 128, 4 layers, 4 heads,
 * d_mlp 512, vocab 4096, 64 tokens, seeded random weights), and of its matmul kernel against a
 * naive i-j-k loop measured in the same run.
 *
 * Engines are listed in `ENGINES`; each one is timed on the same ids and its logits are compared
 * with the reference's (max |diff|), so a second engine (ONNX Runtime) slots in beside it by
 * adding one `BenchEngine` entry.
 *
 * Run: `deno run bench/forward_bench.ts` (flags: `--tiny` for a seconds-long CI setting, `--json`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { expectedParamShapes, forward, type KeyValue } from "../lib/forward.ts";
import { matmul, matmulTransposed } from "../lib/_kernels.ts";
import { createPrng } from "../lib/prng.ts";
import type { Gpt2Config, ParamMap } from "../lib/types.ts";

/** One way of running the model, timed on the same ids as the others. */
export interface BenchEngine {
  /** Label in the table. */
  name: string;
  /** Logits `[pos, vocab]` of the whole sequence in one call (prefill). */
  prefill(ids: number[]): Float32Array | Promise<Float32Array>;
  /** Runs `ids[0]` and then every further id one at a time through the KV cache; returns the last logits. */
  decode?(ids: number[]): Float32Array | Promise<Float32Array>;
}

interface Setting {
  config: Gpt2Config;
  tokens: number;
  minMs: number;
}

const FULL: Setting = {
  config: {
    family: "gpt2",
    vocabSize: 4096,
    maxPositions: 128,
    dModel: 128,
    nLayer: 4,
    nHead: 4,
    dMlp: 512,
    normEps: 1e-5,
  },
  tokens: 64,
  minMs: 1500,
};

const TINY: Setting = {
  config: {
    family: "gpt2",
    vocabSize: 256,
    maxPositions: 16,
    dModel: 32,
    nLayer: 1,
    nHead: 2,
    dMlp: 64,
    normEps: 1e-5,
  },
  tokens: 8,
  minMs: 50,
};

/** Seeded GPT-2-style initialisation: N(0, 0.02) matrices, unit gains, zero biases. */
function randomParams(config: Gpt2Config, seed: number): ParamMap {
  const prng = createPrng(seed);
  const params: ParamMap = new Map();
  for (const [name, dims] of expectedParamShapes(config)) {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    if (name.endsWith(".gain")) data.fill(1);
    else if (!name.endsWith(".bias")) { for (let i = 0; i < data.length; i++) data[i] = prng.normal(0, 0.02); }
    params.set(name, { data, dims });
  }
  return params;
}

/** The reference TypeScript forward as a bench engine. */
function referenceEngine(config: Gpt2Config, params: ParamMap): BenchEngine {
  return {
    name: "reference (TypeScript)",
    prefill: (ids) => forward(config, params, ids, { present: false }).logits.data,
    decode: (ids) => {
      let past: KeyValue[] | undefined;
      let logits: Float32Array = new Float32Array(0);
      for (const id of ids) {
        const r = forward(config, params, [id], { past, logits: "last" });
        past = r.present;
        logits = r.logits.data;
      }
      return logits;
    },
  };
}

/**
 * Fastest milliseconds per call of `fn` over at least `minMs` of runs, after a warm-up (so the JIT has
 * optimised it). The minimum, not the median: on a shared machine other processes only ever add time.
 */
async function timeMs(fn: () => unknown, minMs: number): Promise<number> {
  const warm = performance.now();
  for (let i = 0; i < 20 || performance.now() - warm < Math.min(minMs / 4, 200); i++) await fn();
  const times: number[] = [];
  const start = performance.now();
  while (performance.now() - start < minMs || times.length < 3) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return Math.min(...times);
}

/**
 * Textbook i-j-k product, one dot product per output: the baseline for the kernels. `w` is
 * `[K, N]`, or `[N, K]` when `transposed` (then the inner loop reads it contiguously).
 */
function naiveMatmul(
  out: Float32Array,
  inp: Float32Array,
  w: Float32Array,
  rows: number,
  K: number,
  N: number,
  transposed: boolean,
) {
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      if (transposed) { for (let k = 0; k < K; k++) s += inp[i * K + k] * w[j * K + k]; }
      else for (let k = 0; k < K; k++) s += inp[i * K + k] * w[k * N + j];
      out[i * N + j] = s;
    }
  }
}

/** Multiply-adds ×2 of one forward over `n` tokens (projections, attention, head). */
function forwardFlops(c: Gpt2Config, n: number): number {
  const D = c.dModel, F = c.dMlp;
  const perLayer = 2 * n * D * 3 * D + 2 * n * D * D + 2 * 2 * n * D * F + 2 * 2 * D * ((n * (n + 1)) / 2);
  return c.nLayer * perLayer + 2 * n * D * c.vocabSize;
}

interface Row {
  what: string;
  engine: string;
  ms: number;
  rate: string;
  ratio: string;
  note: string;
}

/**
 * Runs the benchmark and returns the table rows.
 *
 * @param setting model shape, token count and minimum time per measurement
 * @param extra engines to time beside the reference (e.g. ONNX Runtime)
 * @returns one row per measurement
 */
export async function runForwardBench(setting: Setting, extra: BenchEngine[] = []): Promise<Row[]> {
  const { config, tokens, minMs } = setting;
  const params = randomParams(config, 0);
  const prng = createPrng(1);
  const ids = Array.from({ length: tokens }, () => prng.nextInt(config.vocabSize));
  const rows: Row[] = [];

  // Kernel: register-blocked matmul vs naive i-j-k on the model's own shapes.
  const D = config.dModel, F = config.dMlp, V = config.vocabSize, n = tokens;
  const shapes: [string, number, number, number, boolean][] = [
    ["qkv  [pos,d]·[d,3d]", n, D, 3 * D, false],
    ["mlp.in  [pos,d]·[d,d_mlp]", n, D, F, false],
    ["mlp.out [pos,d_mlp]·[d_mlp,d]", n, F, D, false],
    ["head [pos,d]·[vocab,d]ᵀ", n, D, V, true],
    ["decode [1,d]·[d,d_mlp]", 1, D, F, false],
  ];
  for (const [label, R, K, N, transposed] of shapes) {
    const inp = Float32Array.from({ length: R * K }, () => prng.normal());
    const w = Float32Array.from({ length: K * N }, () => prng.normal());
    const out = new Float32Array(R * N);
    const flop = 2 * R * K * N;
    const naive = await timeMs(() => naiveMatmul(out, inp, w, R, K, N, transposed), minMs / 3);
    const fast = await timeMs(
      () => transposed ? matmulTransposed(out, inp, w, null, R, K, N) : matmul(out, inp, w, null, R, K, N),
      minMs / 3,
    );
    const gf = (ms: number) => `${(flop / ms / 1e6).toFixed(2)} GFLOP/s`;
    rows.push({ what: `matmul ${label}`, engine: "naive i-j-k", ms: naive, rate: gf(naive), ratio: "1.00×", note: "" });
    rows.push({
      what: `matmul ${label}`,
      engine: transposed ? "matmulTransposed 4×4" : "matmul 4×4",
      ms: fast,
      rate: gf(fast),
      ratio: `${(naive / fast).toFixed(2)}×`,
      note: "",
    });
  }

  // Whole model: prefill and token-by-token decode per engine, ratios against the reference.
  const engines = [referenceEngine(config, params), ...extra];
  const refLogits = await engines[0].prefill(ids);
  const refLast = refLogits.subarray((tokens - 1) * V);
  const base: Record<string, number> = {};
  for (const engine of engines) {
    const logits = await engine.prefill(ids);
    const diff = maxAbsDiff(logits, refLogits);
    const ms = await timeMs(() => engine.prefill(ids), minMs);
    base.prefill ??= ms;
    const gflops = (forwardFlops(config, tokens) / ms / 1e6).toFixed(2);
    rows.push({
      what: `prefill ${tokens} tokens`,
      engine: engine.name,
      ms,
      rate: `${((tokens / ms) * 1000).toFixed(0)} tok/s, ${gflops} GFLOP/s`,
      ratio: `${(base.prefill / ms).toFixed(2)}×`,
      note: `max|Δlogits| ${diff.toExponential(1)}`,
    });
    if (engine.decode) {
      const last = await engine.decode(ids);
      const msDecode = await timeMs(() => engine.decode!(ids), minMs);
      base.decode ??= msDecode;
      rows.push({
        what: `decode ${tokens} tokens (KV cache)`,
        engine: engine.name,
        ms: msDecode,
        rate: `${((tokens / msDecode) * 1000).toFixed(0)} tok/s`,
        ratio: `${(base.decode / msDecode).toFixed(2)}×`,
        note: `last-token max|Δ| vs prefill ${maxAbsDiff(last, refLast).toExponential(1)}`,
      });
    }
  }
  return rows;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return NaN;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { tiny: { type: "boolean", default: false }, json: { type: "boolean", default: false } },
  });
  const setting = values.tiny ? TINY : FULL;
  const rows = await runForwardBench(setting);
  if (values.json) console.log(JSON.stringify({ config: setting.config, tokens: setting.tokens, rows }, null, 2));
  else {
    const c = setting.config;
    console.log(
      `GPT-2 shape: d_model ${c.dModel}, ${c.nLayer} layers, ${c.nHead} heads, d_mlp ${c.dMlp}, vocab ${c.vocabSize}; ` +
        `${setting.tokens} tokens; best of runs; ratio vs the first row of each group`,
    );
    const w = [38, 24, 9, 36, 7];
    console.log(
      ["what", "engine", "ms", "rate", "ratio"].map((h, i) => h.padEnd(w[i])).join(" ") + " note",
    );
    for (const r of rows) {
      console.log(
        [r.what, r.engine, r.ms.toFixed(3), r.rate, r.ratio].map((v, i) => String(v).padEnd(w[i])).join(" ") + " " +
          r.note,
      );
    }
  }
}
