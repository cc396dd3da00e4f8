/**
 * Unit tests of lib/_kernels.ts against naive float64 loops written here from the formulas.
 */
import { assert, assertAlmostEquals, assertEquals } from "@std/assert";
import { geluTanh, layerNorm, matmul, matmulTransposed, rmsNorm, silu, softmaxInPlace } from "../lib/_kernels.ts";

/** Seeded LCG (Numerical Recipes constants), uniform on [-1, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

function randomArray(n: number, rnd: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rnd();
  return a;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assertEquals(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** out[r][j] = Σ_k inp[r][k]·w[k][j] + b[j], in float64. */
function naiveMatmul(
  inp: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  rows: number,
  inDim: number,
  outDim: number,
): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < outDim; j++) {
      let s = b ? b[j] : 0;
      for (let k = 0; k < inDim; k++) s += inp[r * inDim + k] * w[k * outDim + j];
      out.push(s);
    }
  }
  return out;
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 16, 4],
  [3, 7, 5],
  [4, 8, 8],
  [5, 9, 13],
  [8, 16, 12],
  [9, 33, 70],
  [17, 64, 3],
  [6, 20, 261], // several column tiles, the last one ragged
  [5, 3, 130],
];

Deno.test("matmul() equals a float64 i-j-k product for every row/column remainder", () => {
  const rnd = lcg(1);
  for (const [rows, inDim, outDim] of SHAPES) {
    for (const withBias of [false, true]) {
      const inp = randomArray(rows * inDim, rnd), w = randomArray(inDim * outDim, rnd);
      const b = withBias ? randomArray(outDim, rnd) : null;
      const out = new Float32Array(rows * outDim).fill(99); // stale values must be overwritten
      matmul(out, inp, w, b, rows, inDim, outDim);
      const diff = maxAbsDiff(out, naiveMatmul(inp, w, b, rows, inDim, outDim));
      assert(diff < 1e-5, `[${rows}, ${inDim}]·[${inDim}, ${outDim}] bias=${withBias}: max diff ${diff}`);
    }
  }
});

Deno.test("matmulTransposed() equals a float64 product with the transposed matrix", () => {
  const rnd = lcg(2);
  for (const [rows, inDim, outDim] of SHAPES) {
    for (const withBias of [false, true]) {
      const inp = randomArray(rows * inDim, rnd), wT = randomArray(outDim * inDim, rnd);
      const b = withBias ? randomArray(outDim, rnd) : null;
      const w = new Float32Array(inDim * outDim);
      for (let j = 0; j < outDim; j++) for (let k = 0; k < inDim; k++) w[k * outDim + j] = wT[j * inDim + k];
      const out = new Float32Array(rows * outDim).fill(-7);
      matmulTransposed(out, inp, wT, b, rows, inDim, outDim);
      const diff = maxAbsDiff(out, naiveMatmul(inp, w, b, rows, inDim, outDim));
      assert(diff < 1e-5, `[${rows}, ${inDim}]·[${outDim}, ${inDim}]ᵀ bias=${withBias}: max diff ${diff}`);
    }
  }
});

Deno.test("matmul() works on subarray views and leaves the rest of out untouched", () => {
  const rnd = lcg(3);
  const rows = 5, inDim = 6, outDim = 7;
  const big = randomArray(1000, rnd);
  const inp = big.subarray(10, 10 + rows * inDim), w = big.subarray(100, 100 + inDim * outDim);
  const b = big.subarray(500, 500 + outDim);
  const outBuf = new Float32Array(rows * outDim + 8).fill(3);
  matmul(outBuf.subarray(4, 4 + rows * outDim), inp, w, b, rows, inDim, outDim);
  const diff = maxAbsDiff(outBuf.subarray(4, 4 + rows * outDim), naiveMatmul(inp, w, b, rows, inDim, outDim));
  assert(diff < 1e-5, `max diff ${diff}`);
  assertEquals([...outBuf.subarray(0, 4), ...outBuf.subarray(4 + rows * outDim)], [3, 3, 3, 3, 3, 3, 3, 3]);
});

Deno.test("matmul() propagates NaN from the weights even where the input is zero", () => {
  const out = new Float32Array(2);
  matmul(out, new Float32Array([0, 1]), new Float32Array([NaN, 1, 2, 3]), null, 1, 2, 2);
  assert(Number.isNaN(out[0]), "0·NaN must be NaN as in IEEE arithmetic");
  assertEquals(out[1], 3);
});

Deno.test("layerNorm() equals (x - mean)/sqrt(var + eps)·gain + bias and reports mean and rstd", () => {
  const rnd = lcg(4);
  const rows = 3, dim = 10, eps = 1e-5;
  const x = randomArray(rows * dim, rnd).map((v, i) => v * 3 + (i % 4));
  const gain = randomArray(dim, rnd), bias = randomArray(dim, rnd);
  const out = new Float32Array(rows * dim), mean = new Float32Array(rows), rstd = new Float32Array(rows);
  layerNorm(out, x, gain, bias, rows, dim, eps, mean, rstd);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.subarray(r * dim, (r + 1) * dim));
    const m = row.reduce((a, b) => a + b, 0) / dim;
    const v = row.reduce((a, b) => a + (b - m) ** 2, 0) / dim;
    assertAlmostEquals(mean[r], m, 1e-5);
    assertAlmostEquals(rstd[r], 1 / Math.sqrt(v + eps), 1e-5);
    for (let i = 0; i < dim; i++) {
      assertAlmostEquals(out[r * dim + i], ((row[i] - m) / Math.sqrt(v + eps)) * gain[i] + bias[i], 1e-5);
    }
  }
  // In place and without bias.
  const y = x.slice();
  layerNorm(y, y, gain, null, rows, dim, eps);
  for (let i = 0; i < y.length; i++) assertAlmostEquals(y[i], out[i] - bias[i % dim], 1e-5);
});

Deno.test("rmsNorm() equals x/sqrt(mean(x²) + eps)·gain and reports rstd", () => {
  const rnd = lcg(5);
  const rows = 4, dim = 6, eps = 1e-6;
  const x = randomArray(rows * dim, rnd), gain = randomArray(dim, rnd);
  const out = new Float32Array(rows * dim), rstd = new Float32Array(rows);
  rmsNorm(out, x, gain, rows, dim, eps, rstd);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
    const s = 1 / Math.sqrt(ss / dim + eps);
    assertAlmostEquals(rstd[r], s, 1e-5);
    for (let i = 0; i < dim; i++) assertAlmostEquals(out[r * dim + i], x[r * dim + i] * s * gain[i], 1e-5);
  }
});

Deno.test("geluTanh() equals the tanh formula and approaches x and 0 in the tails", () => {
  const xs = new Float32Array([-6, -2, -1, -0.5, 0, 0.3, 1, 2.5, 6]);
  const out = new Float32Array(xs.length);
  geluTanh(out, xs, xs.length);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    const want = 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    assertAlmostEquals(out[i], want, 1e-6);
  }
  // Published value: gelu_new(1) = 0.8411919906 (HF transformers NewGELUActivation).
  assertAlmostEquals(out[6], 0.8411919906, 1e-6);
  assertAlmostEquals(out[8], 6, 1e-6);
  assertAlmostEquals(out[0], 0, 1e-6);
});

Deno.test("silu() satisfies silu(x) - silu(-x) = x and silu(0) = 0", () => {
  const xs = new Float32Array([-5, -1, 0, 0.5, 3]);
  const pos = new Float32Array(xs.length), neg = new Float32Array(xs.length);
  silu(pos, xs, xs.length);
  silu(neg, xs.map((v) => -v), xs.length);
  for (let i = 0; i < xs.length; i++) {
    assertAlmostEquals(pos[i] - neg[i], xs[i], 1e-6);
    assertAlmostEquals(pos[i], xs[i] / (1 + Math.exp(-xs[i])), 1e-6);
  }
  assertEquals(pos[2], 0);
});

Deno.test("softmaxInPlace() sums to one, keeps order, survives large inputs and touches only its range", () => {
  const x = new Float32Array([9, 1000, 1001, 999, 9]);
  softmaxInPlace(x, 1, 3);
  assertEquals(x[0], 9);
  assertEquals(x[4], 9);
  const e = [Math.exp(-1), 1, Math.exp(-2)], z = e[0] + e[1] + e[2];
  for (let i = 0; i < 3; i++) assertAlmostEquals(x[1 + i], e[i] / z, 1e-6);
  assertAlmostEquals(x[1] + x[2] + x[3], 1, 1e-6);
  assert(x[2] > x[1] && x[1] > x[3]);
});
