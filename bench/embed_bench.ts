/**
 * Speed of the embedding math against naive loops measured in the same run:
 *
 * 1. Cosine-similarity matrix of 5,000 random vectors of dim 768 (5,000×5,000).
 *    The naive baseline is the textbook triple loop (for i, for j, for k:
 *    dot and both norms). It would take minutes on the full matrix, so it is
 *    timed on the first `--naiveRows` rows against all columns and scaled by
 *    `n / naiveRows` (stated in the table).
 * 2. Nearest neighbours of one word across a 50,000×768 vocabulary: naive =
 *    a cosine per row (dot and both norms) then a full sort; fast = a
 *    {@linkcode normalizeRows} index built once (its one-off cost is shown
 *    separately) and a top-k query over it.
 *
 * Everything runs on one thread (one core). Run:
 * `deno run -A bench/embed_bench.ts` (add `--json` for machine-readable output,
 * `--tiny` for a seconds-long smoke run).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { cosineSimilarityMatrix, nearestNeighbours, normalizeRows } from "../lib/embed.ts";
import { createPrng } from "../lib/prng.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    n: { type: "string" },
    d: { type: "string" },
    vocab: { type: "string" },
    naiveRows: { type: "string" },
    json: { type: "boolean", default: false },
    tiny: { type: "boolean", default: false },
  },
});
const tiny = flags.tiny;
const N = Number(flags.n ?? (tiny ? 400 : 5000));
const D = Number(flags.d ?? (tiny ? 64 : 768));
const VOCAB = Number(flags.vocab ?? (tiny ? 2000 : 50_000));
const NAIVE_ROWS = Math.min(N, Number(flags.naiveRows ?? (tiny ? 40 : 100)));
const QUERIES = tiny ? 3 : 5;
const K = 10;

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const prng = createPrng(seed);
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = prng.normal();
  return out;
}

function time(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Textbook cosine matrix rows [r0, r1) × all n columns: dot and both norms per pair. */
function naiveCosineRows(x: Float32Array, n: number, d: number, r0: number, r1: number, out: Float64Array): void {
  for (let i = r0; i < r1; i++) {
    for (let j = 0; j < n; j++) {
      let dot = 0, a = 0, b = 0;
      for (let k = 0; k < d; k++) {
        dot += x[i * d + k] * x[j * d + k];
        a += x[i * d + k] * x[i * d + k];
        b += x[j * d + k] * x[j * d + k];
      }
      out[(i - r0) * n + j] = dot / Math.sqrt(a * b);
    }
  }
}

/** Textbook nearest neighbours: cosine per row, full sort, first k. */
function naiveNeighbours(q: Float32Array, m: Float32Array, rows: number, d: number, k: number): number[] {
  const scored: { i: number; s: number }[] = [];
  for (let i = 0; i < rows; i++) {
    let dot = 0, a = 0, b = 0;
    for (let j = 0; j < d; j++) {
      dot += q[j] * m[i * d + j];
      a += q[j] * q[j];
      b += m[i * d + j] * m[i * d + j];
    }
    scored.push({ i, s: dot / Math.sqrt(a * b) });
  }
  scored.sort((x, y) => y.s - x.s || x.i - y.i);
  return scored.slice(0, k).map((e) => e.i);
}

// 1. Cosine-similarity matrix.
const vectors = randomMatrix(N, D, 1);
const tensor = { data: vectors, dims: [N, D] };
cosineSimilarityMatrix({ data: vectors.subarray(0, 64 * D), dims: [64, D] }); // compile the kernel once
const fastRuns = [0, 1].map(() => time(() => cosineSimilarityMatrix(tensor)));
const fastMs = Math.min(...fastRuns);
const jsMs = time(() => cosineSimilarityMatrix(tensor, { kernel: "js" }));
const naiveOut = new Float64Array(NAIVE_ROWS * N);
naiveCosineRows(vectors, N, D, 0, Math.min(4, NAIVE_ROWS), naiveOut); // warm up the JIT
const naivePartMs = time(() => naiveCosineRows(vectors, N, D, 0, NAIVE_ROWS, naiveOut));
const naiveMs = naivePartMs * (N / NAIVE_ROWS);
// Sanity: the fast matrix agrees with the naive rows.
const sim = cosineSimilarityMatrix(tensor);
let maxDiff = 0;
for (let i = 0; i < NAIVE_ROWS; i++) {
  for (let j = 0; j < N; j++) maxDiff = Math.max(maxDiff, Math.abs(sim.data[i * N + j] - naiveOut[i * N + j]));
}

// 2. Nearest neighbours over a vocabulary.
const vocab = randomMatrix(VOCAB, D, 2);
const vocabTensor = { data: vocab, dims: [VOCAB, D] };
let index = normalizeRows(vocabTensor);
const indexMs = time(() => (index = normalizeRows(vocabTensor)));
const queries = Array.from(
  { length: QUERIES },
  (_, q) => vocab.slice((q * 997 % VOCAB) * D, (q * 997 % VOCAB + 1) * D),
);
nearestNeighbours(queries[0], index, { k: K }); // warm up both
naiveNeighbours(queries[0], vocab, VOCAB, D, K);
const nnFast: number[] = [], nnNaive: number[] = [], nnNoIndex: number[] = [];
let agree = true;
for (const q of queries) {
  let fast: Int32Array = new Int32Array(0), slow: number[] = [];
  nnFast.push(time(() => (fast = nearestNeighbours(q, index, { k: K }).indices)));
  nnNaive.push(time(() => (slow = naiveNeighbours(q, vocab, VOCAB, D, K))));
  agree &&= Array.from(fast).join() === slow.join();
}
nnNoIndex.push(time(() => nearestNeighbours(queries[0], vocabTensor, { k: K })));
const nnFastMs = median(nnFast), nnNaiveMs = median(nnNaive);

const rows = [
  {
    case: `cosine matrix ${N}×${N} (d=${D})`,
    naiveMs,
    fastMs,
    ratio: naiveMs / fastMs,
    note: `naive timed on ${NAIVE_ROWS} rows × ${N} and scaled ×${(N / NAIVE_ROWS).toFixed(0)}; ` +
      `JS-only kernel ${jsMs.toFixed(0)} ms; max abs diff fast vs naive ${maxDiff.toExponential(1)}`,
  },
  {
    case: `nearest ${K} of 1 word in ${VOCAB}×${D}`,
    naiveMs: nnNaiveMs,
    fastMs: nnFastMs,
    ratio: nnNaiveMs / nnFastMs,
    note: `median of ${QUERIES} queries; index built once in ${indexMs.toFixed(0)} ms; ` +
      `without an index ${nnNoIndex[0].toFixed(0)} ms; same top-${K} as naive: ${agree}`,
  },
];
const under2s = fastMs < 2000;

if (flags.json) {
  console.log(JSON.stringify({ rows, cosineMatrixUnder2s: under2s, threads: 1 }, null, 2));
} else {
  console.log(`embed_bench (one thread, Deno ${Deno.version.deno}, V8 ${Deno.version.v8})\n`);
  console.log("| case | naive (ms) | fast (ms) | speed-up | goal ≥ 5× | notes |");
  console.log("|---|---:|---:|---:|:---:|---|");
  for (const r of rows) {
    console.log(
      `| ${r.case} | ${r.naiveMs.toFixed(0)} | ${r.fastMs.toFixed(1)} | ${r.ratio.toFixed(1)}× | ` +
        `${r.ratio >= 5 ? "yes" : "no"} | ${r.note} |`,
    );
  }
  console.log(`\n${N}×${N} cosine matrix in < 2 s on one core: ${under2s ? "yes" : "no"} (${fastMs.toFixed(0)} ms)`);
}
