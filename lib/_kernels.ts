/**
 * Plain `Float32Array` kernels shared by the reference forward pass and
 * training. Every buffer is row-major; shapes are given in the comments with
 * named dims. No kernel allocates per element; none allocates at all unless
 * its doc says so.
 *
 * The two matrix products are register-blocked: a 4×4 tile of outputs is
 * accumulated in local (float64) variables over the whole inner dimension and
 * stored once, so each loaded weight is used four times and nothing is stored
 * inside the inner loop. That is about three times faster in V8 than the
 * textbook loop (see `bench/forward_bench.ts`), and more accurate, because the
 * sums are rounded to float32 only once.
 *
 * @module
 */

/** Output columns per tile of the matrix products (128 columns × d_model 768 × 4 bytes ≈ 384 KiB at most). */
const COLUMN_TILE = 128;

/**
 * Linear layer: `out[rows, outDim] = inp[rows, inDim] · weight[inDim, outDim] + bias[outDim]`.
 * `out` must not overlap `inp` or `weight`.
 *
 * @param out destination `[rows, outDim]` (overwritten)
 * @param inp input `[rows, inDim]`
 * @param weight matrix `[inDim, outDim]`
 * @param bias `[outDim]` or `null`
 * @param rows number of rows (e.g. `pos`)
 * @param inDim input width
 * @param outDim output width
 * @returns nothing; the result is written to `out`
 * @example
 * ```ts
 * import { matmul } from "./_kernels.ts";
 * const out = new Float32Array(2);
 * // [1, 2] · [[1, 0], [0, 1]] + [10, 20]
 * matmul(out, new Float32Array([1, 2]), new Float32Array([1, 0, 0, 1]), new Float32Array([10, 20]), 1, 2, 2);
 * console.log(out); // Float32Array [11, 22]
 * ```
 */
export function matmul(
  out: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  bias: Float32Array | null,
  rows: number,
  inDim: number,
  outDim: number,
): void {
  const N = outDim, K = inDim;
  // Column tiles keep one slab of the weight in cache while every row block passes over it.
  for (let jt = 0; jt < N; jt += COLUMN_TILE) {
    const jStop = Math.min(N, jt + COLUMN_TILE);
    matmulTile(out, inp, weight, bias, rows, K, N, jt, jStop);
  }
}

/** Columns `jStart .. jStop` of {@linkcode matmul}. */
function matmulTile(
  out: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  bias: Float32Array | null,
  rows: number,
  K: number,
  N: number,
  jStart: number,
  jStop: number,
): void {
  const jEnd4 = jStop - ((jStop - jStart) % 4);
  let r = 0;
  // 4 rows × 4 columns at a time: the weight is read down 4 adjacent columns.
  for (; r + 4 <= rows; r += 4) {
    const i0 = r * K, i1 = i0 + K, i2 = i1 + K, i3 = i2 + K;
    for (let j = jStart; j < jEnd4; j += 4) {
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let k = 0, wb = j; k < K; k++, wb += N) {
        const w0 = weight[wb], w1 = weight[wb + 1], w2 = weight[wb + 2], w3 = weight[wb + 3];
        let a = inp[i0 + k];
        s00 += a * w0, s01 += a * w1, s02 += a * w2, s03 += a * w3;
        a = inp[i1 + k];
        s10 += a * w0, s11 += a * w1, s12 += a * w2, s13 += a * w3;
        a = inp[i2 + k];
        s20 += a * w0, s21 += a * w1, s22 += a * w2, s23 += a * w3;
        a = inp[i3 + k];
        s30 += a * w0, s31 += a * w1, s32 += a * w2, s33 += a * w3;
      }
      const b0 = bias ? bias[j] : 0, b1 = bias ? bias[j + 1] : 0;
      const b2 = bias ? bias[j + 2] : 0, b3 = bias ? bias[j + 3] : 0;
      let o = r * N + j;
      out[o] = s00 + b0, out[o + 1] = s01 + b1, out[o + 2] = s02 + b2, out[o + 3] = s03 + b3;
      o += N;
      out[o] = s10 + b0, out[o + 1] = s11 + b1, out[o + 2] = s12 + b2, out[o + 3] = s13 + b3;
      o += N;
      out[o] = s20 + b0, out[o + 1] = s21 + b1, out[o + 2] = s22 + b2, out[o + 3] = s23 + b3;
      o += N;
      out[o] = s30 + b0, out[o + 1] = s31 + b1, out[o + 2] = s32 + b2, out[o + 3] = s33 + b3;
    }
    for (let j = jEnd4; j < jStop; j++) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0, wb = j; k < K; k++, wb += N) {
        const w = weight[wb];
        s0 += inp[i0 + k] * w, s1 += inp[i1 + k] * w, s2 += inp[i2 + k] * w, s3 += inp[i3 + k] * w;
      }
      const b = bias ? bias[j] : 0, o = r * N + j;
      out[o] = s0 + b, out[o + N] = s1 + b, out[o + 2 * N] = s2 + b, out[o + 3 * N] = s3 + b;
    }
  }
  // Leftover rows (and single-row decoding steps): 1 row × 4 columns.
  for (; r < rows; r++) {
    const i0 = r * K;
    for (let j = jStart; j < jEnd4; j += 4) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0, wb = j; k < K; k++, wb += N) {
        const a = inp[i0 + k];
        s0 += a * weight[wb], s1 += a * weight[wb + 1], s2 += a * weight[wb + 2], s3 += a * weight[wb + 3];
      }
      const o = r * N + j;
      out[o] = s0 + (bias ? bias[j] : 0);
      out[o + 1] = s1 + (bias ? bias[j + 1] : 0);
      out[o + 2] = s2 + (bias ? bias[j + 2] : 0);
      out[o + 3] = s3 + (bias ? bias[j + 3] : 0);
    }
    for (let j = jEnd4; j < jStop; j++) {
      let s = 0;
      for (let k = 0, wb = j; k < K; k++, wb += N) s += inp[i0 + k] * weight[wb];
      out[r * N + j] = s + (bias ? bias[j] : 0);
    }
  }
}

/**
 * Linear layer against a transposed matrix:
 * `out[rows, outDim] = inp[rows, inDim] · weightTᵀ + bias`, where `weightT` is `[outDim, inDim]`
 * (e.g. a tied head reading the `[vocab, d_model]` embedding matrix). `out` must not overlap the inputs.
 *
 * @param out destination `[rows, outDim]` (overwritten)
 * @param inp input `[rows, inDim]`
 * @param weightT matrix `[outDim, inDim]`
 * @param bias `[outDim]` or `null`
 * @param rows number of rows
 * @param inDim input width
 * @param outDim output width
 * @returns nothing; the result is written to `out`
 * @example
 * ```ts
 * import { matmulTransposed } from "./_kernels.ts";
 * const out = new Float32Array(3);
 * // one row [1, 2] against three "embedding rows" [1, 0], [0, 1], [1, 1]
 * matmulTransposed(out, new Float32Array([1, 2]), new Float32Array([1, 0, 0, 1, 1, 1]), null, 1, 2, 3);
 * console.log(out); // Float32Array [1, 2, 3]
 * ```
 */
export function matmulTransposed(
  out: Float32Array,
  inp: Float32Array,
  weightT: Float32Array,
  bias: Float32Array | null,
  rows: number,
  inDim: number,
  outDim: number,
): void {
  const N = outDim, K = inDim;
  // Column tiles keep a slab of weightT rows in cache while every row block passes over it.
  for (let jt = 0; jt < N; jt += COLUMN_TILE) {
    const jStop = Math.min(N, jt + COLUMN_TILE);
    matmulTransposedTile(out, inp, weightT, bias, rows, K, N, jt, jStop);
  }
}

/** Columns `jStart .. jStop` of {@linkcode matmulTransposed}. */
function matmulTransposedTile(
  out: Float32Array,
  inp: Float32Array,
  weightT: Float32Array,
  bias: Float32Array | null,
  rows: number,
  K: number,
  N: number,
  jStart: number,
  jStop: number,
): void {
  const jEnd4 = jStop - ((jStop - jStart) % 4);
  let r = 0;
  // 4 rows × 4 columns: four rows of inp against four contiguous rows of weightT.
  for (; r + 4 <= rows; r += 4) {
    const i0 = r * K, i1 = i0 + K, i2 = i1 + K, i3 = i2 + K;
    for (let j = jStart; j < jEnd4; j += 4) {
      const w0 = j * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let k = 0; k < K; k++) {
        const x0 = weightT[w0 + k], x1 = weightT[w1 + k], x2 = weightT[w2 + k], x3 = weightT[w3 + k];
        let a = inp[i0 + k];
        s00 += a * x0, s01 += a * x1, s02 += a * x2, s03 += a * x3;
        a = inp[i1 + k];
        s10 += a * x0, s11 += a * x1, s12 += a * x2, s13 += a * x3;
        a = inp[i2 + k];
        s20 += a * x0, s21 += a * x1, s22 += a * x2, s23 += a * x3;
        a = inp[i3 + k];
        s30 += a * x0, s31 += a * x1, s32 += a * x2, s33 += a * x3;
      }
      const b0 = bias ? bias[j] : 0, b1 = bias ? bias[j + 1] : 0;
      const b2 = bias ? bias[j + 2] : 0, b3 = bias ? bias[j + 3] : 0;
      let o = r * N + j;
      out[o] = s00 + b0, out[o + 1] = s01 + b1, out[o + 2] = s02 + b2, out[o + 3] = s03 + b3;
      o += N;
      out[o] = s10 + b0, out[o + 1] = s11 + b1, out[o + 2] = s12 + b2, out[o + 3] = s13 + b3;
      o += N;
      out[o] = s20 + b0, out[o + 1] = s21 + b1, out[o + 2] = s22 + b2, out[o + 3] = s23 + b3;
      o += N;
      out[o] = s30 + b0, out[o + 1] = s31 + b1, out[o + 2] = s32 + b2, out[o + 3] = s33 + b3;
    }
    for (let j = jEnd4; j < jStop; j++) {
      const wb = j * K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < K; k++) {
        const x = weightT[wb + k];
        s0 += inp[i0 + k] * x, s1 += inp[i1 + k] * x, s2 += inp[i2 + k] * x, s3 += inp[i3 + k] * x;
      }
      const b = bias ? bias[j] : 0, o = r * N + j;
      out[o] = s0 + b, out[o + N] = s1 + b, out[o + 2 * N] = s2 + b, out[o + 3 * N] = s3 + b;
    }
  }
  // Leftover rows (and single-row decoding steps): 1 row × 4 columns.
  for (; r < rows; r++) {
    const ib = r * K;
    for (let j = jStart; j < jEnd4; j += 4) {
      const w0 = j * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < K; k++) {
        const a = inp[ib + k];
        s0 += a * weightT[w0 + k], s1 += a * weightT[w1 + k], s2 += a * weightT[w2 + k], s3 += a * weightT[w3 + k];
      }
      const o = r * N + j;
      out[o] = s0 + (bias ? bias[j] : 0);
      out[o + 1] = s1 + (bias ? bias[j + 1] : 0);
      out[o + 2] = s2 + (bias ? bias[j + 2] : 0);
      out[o + 3] = s3 + (bias ? bias[j + 3] : 0);
    }
    for (let j = jEnd4; j < jStop; j++) {
      const wb = j * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += inp[ib + k] * weightT[wb + k];
      out[r * N + j] = s + (bias ? bias[j] : 0);
    }
  }
}

/**
 * LayerNorm over the last dim: `out = (x - mean) / sqrt(var + eps) · gain + bias` (biased variance,
 * as `torch.nn.LayerNorm`). Optionally records each row's mean and reciprocal std (for a backward pass).
 * `out` may be `inp`.
 *
 * @param out destination `[rows, dim]`
 * @param inp input `[rows, dim]`
 * @param gain `[dim]`
 * @param bias `[dim]` or `null`
 * @param rows number of rows
 * @param dim normalised width
 * @param eps variance epsilon
 * @param mean optional `[rows]` output of row means
 * @param rstd optional `[rows]` output of `1/sqrt(var + eps)`
 * @returns nothing; the result is written to `out`
 * @example
 * ```ts
 * import { layerNorm } from "./_kernels.ts";
 * const out = new Float32Array(2);
 * layerNorm(out, new Float32Array([1, 3]), new Float32Array([1, 1]), null, 1, 2, 0);
 * console.log(out); // Float32Array [-1, 1]
 * ```
 */
export function layerNorm(
  out: Float32Array,
  inp: Float32Array,
  gain: Float32Array,
  bias: Float32Array | null,
  rows: number,
  dim: number,
  eps: number,
  mean?: Float32Array,
  rstd?: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const b = r * dim;
    let m = 0;
    for (let i = 0; i < dim; i++) m += inp[b + i];
    m /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) {
      const d = inp[b + i] - m;
      v += d * d;
    }
    v /= dim;
    const s = 1 / Math.sqrt(v + eps);
    if (bias) { for (let i = 0; i < dim; i++) out[b + i] = (inp[b + i] - m) * s * gain[i] + bias[i]; }
    else for (let i = 0; i < dim; i++) out[b + i] = (inp[b + i] - m) * s * gain[i];
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = s;
  }
}

/**
 * RMSNorm over the last dim: `out = x / sqrt(mean(x²) + eps) · gain` (LLaMA's `LlamaRMSNorm`).
 * `out` may be `inp`.
 *
 * @param out destination `[rows, dim]`
 * @param inp input `[rows, dim]`
 * @param gain `[dim]`
 * @param rows number of rows
 * @param dim normalised width
 * @param eps epsilon
 * @param rstd optional `[rows]` output of `1/sqrt(mean(x²) + eps)`
 * @returns nothing; the result is written to `out`
 * @example
 * ```ts
 * import { rmsNorm } from "./_kernels.ts";
 * const out = new Float32Array(2);
 * rmsNorm(out, new Float32Array([3, 4]), new Float32Array([1, 1]), 1, 2, 0);
 * console.log(out); // ≈ Float32Array [0.8485, 1.1314]
 * ```
 */
export function rmsNorm(
  out: Float32Array,
  inp: Float32Array,
  gain: Float32Array,
  rows: number,
  dim: number,
  eps: number,
  rstd?: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const b = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += inp[b + i] * inp[b + i];
    const s = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[b + i] = inp[b + i] * s * gain[i];
    if (rstd) rstd[r] = s;
  }
}

const GELU_K = Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh form (GPT-2's `gelu_new`): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
 * `out` may be `inp`.
 *
 * @param out destination `[n]`
 * @param inp input `[n]`
 * @param n element count
 * @returns nothing; the result is written to `out`
 * @example
 * ```ts
 * import { geluTanh } from "./_kernels.ts";
 * const x = new Float32Array([-1, 0, 1]);
 * geluTanh(x, x, 3);
 * console.log(x); // ≈ Float32Array [-0.1588, 0, 0.8412]
 * ```
 */
export function geluTanh(out: Float32Array, inp: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(GELU_K * (x + 0.044715 * x * x * x)));
  }
}

/**
 * SiLU (swish): `x·σ(x)`. `out` may be `inp`.
 *
 * @param out destination `[n]`
 * @param inp input `[n]`
 * @param n element count
 * @returns nothing; the result is written to `out`
 * @example
 * ```ts
 * import { silu } from "./_kernels.ts";
 * const x = new Float32Array([-1, 0, 1]);
 * silu(x, x, 3);
 * console.log(x); // ≈ Float32Array [-0.2689, 0, 0.7311]
 * ```
 */
export function silu(out: Float32Array, inp: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    out[i] = x / (1 + Math.exp(-x));
  }
}

/**
 * Softmax of `x[offset .. offset+n)` in place, max-subtracted for stability. At least one
 * element must be finite (a fully masked row has no softmax).
 *
 * @param x buffer
 * @param offset first element
 * @param n number of elements
 * @returns nothing; the result is written to `x`
 * @example
 * ```ts
 * import { softmaxInPlace } from "./_kernels.ts";
 * const x = new Float32Array([0, Math.log(3)]);
 * softmaxInPlace(x, 0, 2);
 * console.log(x); // ≈ Float32Array [0.25, 0.75]
 * ```
 */
export function softmaxInPlace(x: Float32Array, offset: number, n: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[offset + i] > max) max = x[offset + i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[offset + i] - max);
    x[offset + i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) x[offset + i] *= inv;
}
