/**
 * Training throughput of lib/train.ts beside a plain matrix-multiply baseline measured in the same run.
 *
 * Model: d_model 128, 4 layers, 4 heads, vocab 4096, seqLen 64 (override with flags). FLOPs counted:
 * 6·(matmul parameters incl. the tied head)·tokens for forward + backward, plus causal attention
 * (QKᵀ and A·V: 4·d_model·(T+1)/2 per token per layer forward, 3× that for forward + backward).
 * Baseline: a naive i-k-j float32 matrix multiply on 256×256 on one thread.
 *
 * Run: `deno run -A bench/train_bench.ts [--steps 6] [--batch 16] [--seq 64] [--d 128] [--layers 4]`
 * @module
 */
import { parseArgs } from "node:util";
import { matmul } from "../lib/_kernels.ts";
import { train } from "../lib/train.ts";
import type { Gpt2Config } from "../lib/types.ts";

const { values } = parseArgs({
  options: {
    steps: { type: "string", default: "6" },
    batch: { type: "string", default: "16" },
    seq: { type: "string", default: "64" },
    d: { type: "string", default: "128" },
    layers: { type: "string", default: "4" },
    heads: { type: "string", default: "4" },
    vocab: { type: "string", default: "4096" },
    json: { type: "boolean", default: false },
  },
});
const steps = Number(values.steps), B = Number(values.batch), T = Number(values.seq);
const C = Number(values.d), L = Number(values.layers), V = Number(values.vocab);
const config: Gpt2Config = {
  family: "gpt2",
  vocabSize: V,
  maxPositions: Math.max(T, 128),
  dModel: C,
  nLayer: L,
  nHead: Number(values.heads),
  dMlp: 4 * C,
  normEps: 1e-5,
};

function naiveGflops(n: number, reps: number): number {
  const a = new Float32Array(n * n).map((_, i) => ((i * 7) % 13) / 13);
  const b = new Float32Array(n * n).map((_, i) => ((i * 5) % 11) / 11);
  const c = new Float32Array(n * n);
  const run = () => {
    c.fill(0);
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < n; k++) {
        const x = a[i * n + k];
        for (let j = 0; j < n; j++) c[i * n + j] += x * b[k * n + j];
      }
    }
  };
  for (let i = 0; i < 3; i++) run();
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    run();
    best = Math.min(best, performance.now() - t);
  }
  return (2 * n ** 3) / (best * 1e6);
}

function kernelGflops(n: number, reps: number): number {
  const a = new Float32Array(n * n).map((_, i) => ((i * 7) % 13) / 13);
  const b = new Float32Array(n * n).map((_, i) => ((i * 5) % 11) / 11);
  const c = new Float32Array(n * n);
  for (let i = 0; i < 3; i++) matmul(c, a, b, null, n, n, n);
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    matmul(c, a, b, null, n, n, n);
    best = Math.min(best, performance.now() - t);
  }
  return (2 * n ** 3) / (best * 1e6);
}

const matmulParams = L * (C * 3 * C + C * C + 2 * C * 4 * C) + V * C;
const flopsPerToken = 6 * matmulParams + 3 * L * 4 * C * ((T + 1) / 2);
const data = new Int32Array(100_000).map((_, i) => (i * 7919 + (i >> 3)) % V);

async function trainRate(workers: 1 | 2): Promise<{ tokPerSec: number; gflops: number }> {
  // the first 2 steps (JIT warmup, worker start) are excluded; the best of the rest is reported
  const r = await train(config, data, { steps: steps + 2, batchSize: B, seqLen: T, workers, warmup: 1 });
  const e = r.history.map((h) => h.elapsedMs);
  let best = Infinity;
  for (let i = 2; i < e.length; i++) best = Math.min(best, e[i] - e[i - 1]);
  const tokPerSec = (B * T) / (best / 1000);
  return { tokPerSec, gflops: (tokPerSec * flopsPerToken) / 1e9 };
}

const base = naiveGflops(256, 8);
const kern = kernelGflops(256, 8);
const w1 = await trainRate(1);
const w2 = await trainRate(2);
const rows = [
  { what: "naive i-k-j matmul 256×256, 1 thread (baseline)", tokPerSec: NaN, gflops: base },
  { what: "lib/_kernels matmul 256×256, 1 thread", tokPerSec: NaN, gflops: kern },
  { what: `train workers 1 (B ${B}, T ${T})`, ...w1 },
  { what: `train workers 2 (B ${B}, T ${T})`, ...w2 },
];
if (values.json) {
  console.log(JSON.stringify({ config, flopsPerToken, rows }, null, 2));
} else {
  console.log(
    `model d_model ${C}, ${L} layers, ${config.nHead} heads, vocab ${V}, T ${T}, batch ${B}; ` +
      `${(flopsPerToken / 1e6).toFixed(2)} MFLOP per training token`,
  );
  console.log("| run | tokens/s | GFLOP/s | × baseline |");
  console.log("|---|---:|---:|---:|");
  for (const r of rows) {
    const tps = Number.isNaN(r.tokPerSec) ? "" : r.tokPerSec.toFixed(0);
    console.log(`| ${r.what} | ${tps} | ${r.gflops.toFixed(2)} | ${(r.gflops / base).toFixed(2)} |`);
  }
}
