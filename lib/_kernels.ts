/**
 * Plain `Float32Array` kernels shared by the reference forward pass and
 * training. Every buffer is row-major; shapes are given in the comments with
 * named dims. No kernel allocates per element; none allocates at all unless
 * its doc says so.
 *
 * Matrix products ({@linkcode matmul}, {@linkcode matmulTransposed}) run in one
 * of two engines, chosen by size only, so the same call always takes the same
 * path and gives the same bits:
 *
 * - WebAssembly SIMD, for weights of at least {@linkcode SIMD_MIN_WEIGHTS}
 *   elements: operands are copied into the module's memory (a weight pinned
 *   with {@linkcode pinWeight} stays there, packed, and is not copied again),
 *   the input is packed into 6-row slabs, and a 6 × 8 tile of `f32x4` accumulators walks
 *   cache-sized blocks ({@linkcode createSimdMatmul}); 6–8× the JavaScript
 *   kernel on one thread (`bench/forward_bench.ts`). Each output is a float32
 *   sum taken in order over the inner dimension, with fused multiply-add where
 *   the runtime has relaxed SIMD (ONNX Runtime's MLAS sums in float32 too);
 *   its error is at most `(inDim + 2)·2⁻²⁴·(Σₖ|inp·w| + |bias|)`.
 *   The engine's memory (one per thread) only grows, to what the largest
 *   product needed: its input twice (raw and packed) and its output, plus for
 *   `matmul` its weight and one packed 512-column block of it, for
 *   `matmulTransposed` two 512-column blocks of its weight.
 * - JavaScript, for smaller weights and runtimes without WebAssembly SIMD: a
 *   4 × 4 register tile summed in float64 locals and rounded to float32 once
 *   ({@linkcode matmulJs}, {@linkcode matmulTransposedJs}).
 *
 * An output depends only on its input row, its weight column and the weight's
 * shape: never on timing, thread count, or the number and values of the other
 * rows in the call.
 *
 * @module
 */
import {
  type Code,
  compileWasm,
  f32Load,
  f32Store,
  forLoop,
  get,
  i32,
  ifElse,
  OP,
  set,
  SIMD,
  v128Load,
  v128Load32Splat,
  v128Store,
  type WasmFunction,
  wasmModule,
} from "./_wasm.ts";
import { vecApply } from "./_vecmath.ts";

/** Output columns per tile of the JavaScript matrix products (128 columns × d_model 768 × 4 bytes ≈ 384 KiB at most). */
const COLUMN_TILE = 128;

/**
 * Products whose weight has fewer elements than this (`inDim · outDim`) run in JavaScript: below
 * it, copying and packing the weight into WebAssembly memory costs more than SIMD saves on one
 * row (measured crossover: a 32 × 32 weight is already 1.4× faster in SIMD for one row; with 16
 * rows, 4.6×). The row count plays no part, so a row's outputs are the same bits whether it is
 * computed alone (decoding with a KV cache) or with the whole sequence.
 *
 * @example
 * ```ts
 * import { SIMD_MIN_WEIGHTS } from "./_kernels.ts";
 * const useSimd = (inDim: number, outDim: number) => inDim * outDim >= SIMD_MIN_WEIGHTS;
 * console.log(useSimd(128, 512), useSimd(8, 8)); // true false
 * ```
 */
export const SIMD_MIN_WEIGHTS = 1024;

/** Throws unless `v` is a non-negative integer. */
function checkDim(fn: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${fn}(): ${name} must be a non-negative integer, got ${v}`);
}

/** Throws unless `a` is a `Float32Array` of at least `n` elements. */
function checkArray(fn: string, name: string, a: Float32Array, n: number): void {
  if (!(a instanceof Float32Array)) throw new TypeError(`${fn}(): ${name} must be a Float32Array, got ${typeof a}`);
  if (a.length < n) {
    throw new RangeError(`${fn}(): ${name} has ${a.length} elements but the shape needs ${n}; pass a larger array`);
  }
}

/** Checks a matrix product's arguments: O(1) and allocation-free (the kernels themselves trust them). */
function checkProduct(
  fn: string,
  weightName: string,
  out: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  bias: Float32Array | null,
  rows: number,
  inDim: number,
  outDim: number,
): void {
  checkDim(fn, "rows", rows);
  checkDim(fn, "inDim", inDim);
  checkDim(fn, "outDim", outDim);
  checkArray(fn, "out", out, rows * outDim);
  checkArray(fn, "inp", inp, rows * inDim);
  checkArray(fn, weightName, weight, inDim * outDim);
  if (bias !== null) checkArray(fn, "bias", bias, outDim);
}

/**
 * Linear layer: `out[rows, outDim] = inp[rows, inDim] · weight[inDim, outDim] + bias[outDim]`.
 * `out` must not overlap `inp` or `weight`. Any argument may be a `subarray` view into a larger
 * buffer (only its first elements are read, and only the first `rows·outDim` of `out` written).
 * Large products run in WebAssembly SIMD with float32 sums, small ones in JavaScript (module doc);
 * the SIMD path allocates a few typed-array views per call and grows its WebAssembly memory when needed.
 *
 * @param out destination `[rows, outDim]` (overwritten)
 * @param inp input `[rows, inDim]`
 * @param weight matrix `[inDim, outDim]`
 * @param bias `[outDim]` or `null`
 * @param rows number of rows (e.g. `pos`)
 * @param inDim input width
 * @param outDim output width
 * @returns nothing; the result is written to `out`
 * @throws {RangeError} when a dimension is not a non-negative integer or an array is shorter than the shape needs
 * @throws {TypeError} when an array is not a `Float32Array`
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
  checkProduct("matmul", "weight", out, inp, weight, bias, rows, inDim, outDim);
  if (
    inDim * outDim < SIMD_MIN_WEIGHTS || !defaultSimd()?.run(out, inp, weight, bias, rows, inDim, outDim, false)
  ) {
    matmulJs(out, inp, weight, bias, rows, inDim, outDim);
  }
}

/**
 * Linear layer against a transposed matrix:
 * `out[rows, outDim] = inp[rows, inDim] · weightTᵀ + bias`, where `weightT` is `[outDim, inDim]`
 * (e.g. a tied head reading the `[vocab, d_model]` embedding matrix). `out` must not overlap the
 * inputs; views and the choice of engine are as for {@linkcode matmul}.
 *
 * @param out destination `[rows, outDim]` (overwritten)
 * @param inp input `[rows, inDim]`
 * @param weightT matrix `[outDim, inDim]`
 * @param bias `[outDim]` or `null`
 * @param rows number of rows
 * @param inDim input width
 * @param outDim output width
 * @returns nothing; the result is written to `out`
 * @throws {RangeError} when a dimension is not a non-negative integer or an array is shorter than the shape needs
 * @throws {TypeError} when an array is not a `Float32Array`
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
  checkProduct("matmulTransposed", "weightT", out, inp, weightT, bias, rows, inDim, outDim);
  if (
    inDim * outDim < SIMD_MIN_WEIGHTS || !defaultSimd()?.run(out, inp, weightT, bias, rows, inDim, outDim, true)
  ) {
    matmulTransposedJs(out, inp, weightT, bias, rows, inDim, outDim);
  }
}

/**
 * {@linkcode matmul} in plain JavaScript at any size: the fallback without WebAssembly SIMD and
 * the reference the SIMD engine is tested against. A 4 × 4 tile of outputs is summed in float64
 * locals over the whole inner dimension and stored once, so each loaded weight is used four
 * times and the sums are rounded to float32 only once; column tiles of 128 keep a slab of the
 * weight in cache. No argument checks.
 *
 * @param out destination `[rows, outDim]` (overwritten)
 * @param inp input `[rows, inDim]`
 * @param weight matrix `[inDim, outDim]`
 * @param bias `[outDim]` or `null`
 * @param rows number of rows
 * @param inDim input width
 * @param outDim output width
 * @returns nothing; the result is written to `out`
 * @example
 * ```ts
 * import { matmulJs } from "./_kernels.ts";
 * const out = new Float32Array(2);
 * matmulJs(out, new Float32Array([1, 2]), new Float32Array([1, 0, 0, 1]), new Float32Array([10, 20]), 1, 2, 2);
 * console.log(out); // Float32Array [11, 22]
 * ```
 */
export function matmulJs(
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

/** Columns `jStart .. jStop` of {@linkcode matmulJs}. */
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
 * {@linkcode matmulTransposed} in plain JavaScript at any size (fallback and test reference, as
 * {@linkcode matmulJs}): `out[rows, outDim] = inp[rows, inDim] · weightTᵀ + bias` with `weightT`
 * `[outDim, inDim]`. No argument checks.
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
 * import { matmulTransposedJs } from "./_kernels.ts";
 * const out = new Float32Array(3);
 * matmulTransposedJs(out, new Float32Array([1, 2]), new Float32Array([1, 0, 0, 1, 1, 1]), null, 1, 2, 3);
 * console.log(out); // Float32Array [1, 2, 3]
 * ```
 */
export function matmulTransposedJs(
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

/** Columns `jStart .. jStop` of {@linkcode matmulTransposedJs}. */
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

// ---------------------------------------------------------------------------
// WebAssembly SIMD matrix products, assembled from bytes by lib/_wasm.ts.
//
// Layout in the engine's memory (all addresses in bytes, regions 16-byte aligned):
//   input  packed into slabs of up to 6 rows, each slab k-major: [slab][k][row in slab]
//   weight packed 512 columns at a time into panels of 8 columns, each k-major: [panel][k][8]
//   out    [rows][Np], Np = outDim rounded up to 16 (padding columns are computed and dropped)
// Packing makes every load in the inner loop sequential: a tile reads its rows' inputs for
// one k from one address and its 8 weights from the next 32 bytes of a panel.
// ---------------------------------------------------------------------------

/** Rows of the main register tile: 6 rows × 8 columns = 12 `f32x4` accumulators (+ 2 weights + 1 input = 15 registers). */
const TILE_ROWS = 6;
/** Columns of a weight panel (two `f32x4`). */
const PANEL = 8;
/** Output columns are padded to a multiple of this (the 1-row tile is two panels wide). */
const COLUMN_PAD = 16;
/** Inner-dimension block: a 6-row slab of packed input (6 KiB) stays in L1 while it meets every column tile. */
const K_BLOCK = 256;
/** Column block: `K_BLOCK × N_BLOCK` packed weights (512 KiB) stay in L2 while every row slab passes over them. */
const N_BLOCK = 512;
/** Largest WebAssembly memory the engine grows to (bytes); bigger products run in JavaScript. */
const SIMD_MAX_BYTES = 2 ** 31;

/**
 * A WebAssembly SIMD engine for the matrix products, with its own memory (one per thread:
 * every Web Worker that imports this module builds its own on first use).
 */
export interface SimdMatmul {
  /** True when multiply-adds are fused (relaxed SIMD `f32x4.relaxed_madd`), false for `f32x4.mul` + `f32x4.add`. */
  readonly fused: boolean;
  /**
   * Computes {@linkcode matmul} (or {@linkcode matmulTransposed} when `transposed`) for operands
   * already checked. Returns false, writing nothing, when they would need more than 2 GiB of
   * WebAssembly memory or the memory cannot grow.
   */
  run(
    out: Float32Array,
    inp: Float32Array,
    weight: Float32Array,
    bias: Float32Array | null,
    rows: number,
    inDim: number,
    outDim: number,
    transposed: boolean,
  ): boolean;
  /** Bytes of WebAssembly memory held (it only grows: it keeps room for the largest product seen). */
  memoryBytes(): number;
  /**
   * Keeps a packed copy of `weight` (as `run` would pack it for `inDim × outDim`, `transposed`) in
   * this engine's memory for good, so later `run`s with this same array object and shape skip
   * copying and packing it: what a decoding step, one row at a time, spends most of its time on.
   * Same bits either way. The caller promises never to change `weight` afterwards (the copy
   * would go stale) and should pin only arrays nobody else holds. Returns false, pinning nothing,
   * without room within `budgetBytes` of pinned data in all (or 2 GiB of memory).
   */
  pin(weight: Float32Array, inDim: number, outDim: number, transposed: boolean, budgetBytes: number): boolean;
  /** Bytes held by pinned weights. */
  pinnedBytes(): number;
}

/** `tileM(a, aStride, w, panelBytes, o, oStride, bias, rows, j0, j1, kBytes, flags)`, see {@linkcode tileKernel}. */
type TileFn = (
  a: number,
  aStride: number,
  w: number,
  panelBytes: number,
  o: number,
  oStride: number,
  bias: number,
  rows: number,
  j0: number,
  j1: number,
  kBytes: number,
  flags: number,
) => void;
/** `packM(src, srcStride, dst, rows, kBytes)`, see {@linkcode packRowsKernel}. */
type PackFn = (src: number, srcStride: number, dst: number, rows: number, kBytes: number) => void;
/** `panels(src, srcStride, dst, n, kBytes)` and `panelsT(…)`, see {@linkcode panelKernel}. */
type PanelFn = (src: number, srcStride: number, dst: number, n: number, kBytes: number) => void;

/** Tile flag: start from the partial sums in `out` (a later inner-dimension block) instead of zero. */
const ACCUMULATE = 1;
/** Tile flag: add the bias once the last inner-dimension block is summed. */
const ADD_BIAS = 2;

const { I32_ADD: ADD, I32_MUL: MUL, I32_AND: AND, I32_SHR_U: SHR_U } = OP;

/**
 * The register tile for `m` rows × `4·vecs` columns (`vecs` 2 or 4: one or two panels).
 *
 * ```
 * tileM(a, aStride, w, panelBytes, o, oStride, bias, rows, j0, j1, kBytes, flags):
 *   for r in [0, rows) step m:             ; slab of rows r.. at a + r·aStride, [k][m]
 *     for jb in [j0, j1) step 16·vecs:     ; out columns jb/4 ..; panel jb/32 at w + (jb/32)·panelBytes
 *       acc[i][v] = flags & ACCUMULATE ? out[r+i][jb + 16v] : 0
 *       for k in the block:  acc[i][v] += splat(A[r+i][k]) · W[k][jb + 16v]
 *       if flags & ADD_BIAS: acc[i][v] += bias[jb + 16v]
 *       out[r+i][jb + 16v] = acc[i][v]
 * ```
 *
 * Every output is one f32 lane summed in order over k, so its value does not depend on the
 * tile, the block sizes or which rows share its call.
 */
function tileKernel(m: number, vecs: number, fused: boolean): WasmFunction {
  const [a, aStride, w, panelBytes, o, oStride, bias, rows, j0, j1, kBytes, flags] = Array.from(
    { length: 12 },
    (_, i) => i,
  );
  const [r, jb, pa, paEnd, pw, pw2, po, paRow, poRow] = [12, 13, 14, 15, 16, 17, 18, 19, 20];
  const firstV128 = 21;
  const acc = Array.from({ length: m }, (_, i) => Array.from({ length: vecs }, (_, v) => firstV128 + i * vecs + v));
  const wv = Array.from({ length: vecs }, (_, v) => firstV128 + m * vecs + v);
  const x = firstV128 + m * vecs + vecs;
  // vector v of the tile: panel v >> 1 (pw or pw2), half v & 1
  const wAddr = (v: number): Code => get(v < 2 ? pw : pw2);
  const madd = (t: number, wl: number): Code =>
    fused
      ? [...get(x), ...get(wl), ...get(t), ...SIMD.F32X4_RELAXED_MADD, ...set(t)]
      : [...get(t), ...get(x), ...get(wl), ...SIMD.F32X4_MUL, ...SIMD.F32X4_ADD, ...set(t)];
  const rowAddr = (i: number): Code => i === 0 ? get(po) : [...get(po), ...get(oStride), ...i32(i), MUL, ADD];
  // deno-fmt-ignore
  const kBody: Code = [
    ...wv.flatMap((wl, v) => [...wAddr(v), ...v128Load(16 * (v & 1)), ...set(wl)]),
    ...acc.flatMap((row, i) => [...get(pa), ...v128Load32Splat(4 * i), ...set(x), ...row.flatMap((t, v) => madd(t, wv[v]))]),
    ...get(pw), ...i32(4 * PANEL), ADD, ...set(pw),
    ...(vecs > 2 ? [...get(pw2), ...i32(4 * PANEL), ADD, ...set(pw2)] : []),
  ];
  // deno-fmt-ignore
  const jBody: Code = [
    ...get(poRow), ...get(jb), ADD, ...set(po),
    ...ifElse([...get(flags), ...i32(ACCUMULATE), AND],
      acc.flatMap((row, i) => row.flatMap((t, v) => [...rowAddr(i), ...v128Load(16 * v), ...set(t)])),
      acc.flatMap((row) => row.flatMap((t) => [...SIMD.V128_ZERO, ...set(t)]))),
    ...get(w), ...get(jb), ...i32(5), SHR_U, ...get(panelBytes), MUL, ADD, ...set(pw),
    ...(vecs > 2 ? [...get(pw), ...get(panelBytes), ADD, ...set(pw2)] : []),
    ...get(paRow), ...get(kBytes), ...i32(m), MUL, ADD, ...set(paEnd),
    ...forLoop(pa, get(paRow), get(paEnd), 4 * m, kBody),
    ...ifElse([...get(flags), ...i32(ADD_BIAS), AND], [
      ...wv.flatMap((wl, v) => [...get(bias), ...get(jb), ADD, ...v128Load(16 * v), ...set(wl)]),
      ...acc.flatMap((row) => row.flatMap((t, v) => [...get(t), ...get(wv[v]), ...SIMD.F32X4_ADD, ...set(t)])),
    ]),
    ...acc.flatMap((row, i) => row.flatMap((t, v) => [...rowAddr(i), ...get(t), ...v128Store(16 * v)])),
  ];
  // deno-fmt-ignore
  const rBody: Code = [
    ...get(a), ...get(r), ...get(aStride), MUL, ADD, ...set(paRow),
    ...get(o), ...get(r), ...get(oStride), MUL, ADD, ...set(poRow),
    ...forLoop(jb, get(j0), get(j1), 16 * vecs, jBody),
  ];
  const body = forLoop(r, i32(0), get(rows), m, rBody);
  return { name: `tile${m}`, params: 12, i32Locals: 9, v128Locals: m * vecs + vecs + 1, body };
}

/**
 * Packs `rows` input rows (a multiple of `m`; row stride `srcStride`, `kBytes` bytes used) into
 * slabs of `m` rows stored k-major, `[slab][k][m]`.
 *
 * ```
 * packM(src, srcStride, dst, rows, kBytes):
 *   for rb in [0, rows) step m: for k in [0, kBytes) step 4: for i in [0, m): *dst++ = src[rb+i][k]
 * ```
 */
function packRowsKernel(m: number): WasmFunction {
  const [src, srcStride, dst, rows, kBytes] = [0, 1, 2, 3, 4];
  const [rb, k, pd] = [5, 6, 7];
  const p = Array.from({ length: m }, (_, i) => 8 + i);
  // deno-fmt-ignore
  const body: Code = [
    ...get(dst), ...set(pd),
    ...forLoop(rb, i32(0), get(rows), m, [
      ...get(src), ...get(rb), ...get(srcStride), MUL, ADD, ...set(p[0]),
      ...p.slice(1).flatMap((pi, i) => [...get(p[i]), ...get(srcStride), ADD, ...set(pi)]),
      ...forLoop(k, i32(0), get(kBytes), 4, [
        ...p.flatMap((pi, i) => [...get(pd), ...get(pi), ...get(k), ADD, ...f32Load(), ...f32Store(4 * i)]),
        ...get(pd), ...i32(4 * m), ADD, ...set(pd),
      ]),
    ]),
  ];
  return { name: `pack${m}`, params: 5, i32Locals: 3 + m, v128Locals: 0, body };
}

/**
 * Packs a weight into panels of 8 columns, `[panel][k][8]`, for `n` columns (a multiple of 8).
 *
 * - `panels(src, srcStride, dst, n, kBytes)`: from `W [k][n]` (row stride `srcStride`); the last
 *   panel may read up to 32 bytes past a row (the caller leaves zeros there).
 * - `panelsT(src, srcStride, dst, n, kBytes)`: from `Wᵀ [n][k]` (row stride `srcStride`), a
 *   transpose of 8 rows × 4 k at a time (two 4 × 4 transposes by `i8x16.shuffle`), then one k
 *   at a time for the last `k mod 4`.
 */
function panelKernel(transposed: boolean): WasmFunction {
  const [src, srcStride, dst, n, kBytes] = [0, 1, 2, 3, 4];
  const [jb, k, pd, ps, k4] = [5, 6, 7, 8, 9];
  const p = Array.from({ length: PANEL }, (_, i) => 10 + i);
  const row = Array.from({ length: PANEL }, (_, i) => 10 + PANEL + i); // v128 locals
  const t = Array.from({ length: 4 }, (_, i) => 10 + 2 * PANEL + i);
  // 4 × 4 transpose of rows[h·4 .. h·4+3] (4 consecutive k each) into 4 vectors, one per k, stored
  // at pd + 32·k + 16·h: [r0[k], r1[k], r2[k], r3[k]].
  const transpose4 = (h: number): Code => {
    const [r0, r1, r2, r3] = row.slice(4 * h, 4 * h + 4);
    // deno-fmt-ignore
    return [
      ...shuffle(r0, r1, [0, 4, 1, 5]), ...set(t[0]), ...shuffle(r2, r3, [0, 4, 1, 5]), ...set(t[1]),
      ...shuffle(r0, r1, [2, 6, 3, 7]), ...set(t[2]), ...shuffle(r2, r3, [2, 6, 3, 7]), ...set(t[3]),
      ...get(pd), ...shuffle(t[0], t[1], [0, 1, 4, 5]), ...v128Store(16 * h),
      ...get(pd), ...shuffle(t[0], t[1], [2, 3, 6, 7]), ...v128Store(32 + 16 * h),
      ...get(pd), ...shuffle(t[2], t[3], [0, 1, 4, 5]), ...v128Store(64 + 16 * h),
      ...get(pd), ...shuffle(t[2], t[3], [2, 3, 6, 7]), ...v128Store(96 + 16 * h),
    ];
  };
  // deno-fmt-ignore
  const body: Code = transposed
    ? [
      ...get(kBytes), ...i32(-16), OP.I32_AND, ...set(k4),
      ...forLoop(jb, i32(0), get(n), PANEL, [
        ...get(src), ...get(jb), ...get(srcStride), MUL, ADD, ...set(p[0]),
        ...p.slice(1).flatMap((pi, i) => [...get(p[i]), ...get(srcStride), ADD, ...set(pi)]),
        ...get(dst), ...get(jb), ...get(kBytes), MUL, ADD, ...set(pd),
        ...forLoop(k, i32(0), get(k4), 16, [
          ...p.flatMap((pi, i) => [...get(pi), ...get(k), ADD, ...v128Load(), ...set(row[i])]),
          ...transpose4(0), ...transpose4(1),
          ...get(pd), ...i32(16 * PANEL), ADD, ...set(pd),
        ]),
        ...forLoop(k, get(k4), get(kBytes), 4, [
          ...p.flatMap((pi, i) => [...get(pd), ...get(pi), ...get(k), ADD, ...f32Load(), ...f32Store(4 * i)]),
          ...get(pd), ...i32(4 * PANEL), ADD, ...set(pd),
        ]),
      ]),
    ]
    : forLoop(jb, i32(0), get(n), PANEL, [
      ...get(src), ...get(jb), ...i32(4), MUL, ADD, ...set(ps),
      ...get(dst), ...get(jb), ...get(kBytes), MUL, ADD, ...set(pd),
      ...forLoop(k, i32(0), get(kBytes), 4, [
        ...get(pd), ...get(ps), ...v128Load(0), ...v128Store(0),
        ...get(pd), ...get(ps), ...v128Load(16), ...v128Store(16),
        ...get(pd), ...i32(4 * PANEL), ADD, ...set(pd),
        ...get(ps), ...get(srcStride), ADD, ...set(ps),
      ]),
    ]);
  const name = transposed ? "panelsT" : "panels";
  return { name, params: 5, i32Locals: 5 + PANEL, v128Locals: PANEL + 4, body };
}

/** `i8x16.shuffle` of v128 locals `a`, `b` picking float lanes (0–3 from `a`, 4–7 from `b`). */
function shuffle(a: number, b: number, lanes: number[]): Code {
  return [
    ...get(a),
    ...get(b),
    ...SIMD.I8X16_SHUFFLE,
    ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]),
  ];
}

/** The module: `tile1` … `tile6` (the 1-row tile is 16 columns wide, the others 8), `pack1` … `pack6`, `panels`, `panelsT`. */
function matmulModuleBytes(fused: boolean): Uint8Array<ArrayBuffer> {
  const ms = Array.from({ length: TILE_ROWS }, (_, i) => i + 1);
  return wasmModule([
    ...ms.map((m) => tileKernel(m, m === 1 ? 4 : 2, fused)),
    ...ms.map(packRowsKernel),
    panelKernel(false),
    panelKernel(true),
  ]);
}

const moduleCache = new Map<boolean, WebAssembly.Module | null>();

/**
 * Builds a WebAssembly SIMD engine for the matrix products (synchronously, so it works in Web
 * Workers and callers stay synchronous). {@linkcode matmul} uses one `createSimdMatmul()` per
 * thread; tests build both variants to check them against JavaScript.
 *
 * @param fused `true`: fused multiply-add (relaxed SIMD); `false`: separate multiply and add;
 *   omitted (default): fused where the runtime has relaxed SIMD, else separate
 * @returns the engine, or `null` when the runtime lacks WebAssembly SIMD (or relaxed SIMD, if `fused` is `true`)
 * @example
 * ```ts
 * import { createSimdMatmul } from "./_kernels.ts";
 * const simd = createSimdMatmul();
 * const out = new Float32Array(2);
 * // [1, 2] · [[1, 0], [0, 1]] + [10, 20]
 * const w = new Float32Array([1, 0, 0, 1]);
 * const done = simd?.run(out, new Float32Array([1, 2]), w, new Float32Array([10, 20]), 1, 2, 2, false);
 * console.log(done, out); // true Float32Array [11, 22]
 * ```
 */
export function createSimdMatmul(fused?: boolean): SimdMatmul | null {
  if (fused === undefined) return createSimdMatmul(true) ?? createSimdMatmul(false);
  let module = moduleCache.get(fused);
  if (module === undefined) {
    module = compileWasm(() => matmulModuleBytes(fused));
    moduleCache.set(fused, module);
  }
  if (!module) return null;
  const memory = new WebAssembly.Memory({ initial: 1, maximum: SIMD_MAX_BYTES / 65536 });
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const tiles = Array.from({ length: TILE_ROWS }, (_, i) => exports[`tile${i + 1}`] as TileFn);
  const packs = Array.from({ length: TILE_ROWS }, (_, i) => exports[`pack${i + 1}`] as PackFn);
  const panels = exports.panels as PanelFn, panelsT = exports.panelsT as PanelFn;
  let heap = new Float32Array(memory.buffer);
  const up4 = (n: number) => Math.ceil(n / 4) * 4; // floats, so every region starts 16-byte aligned
  // Pinned weights sit at the bottom of memory, [0, base) in floats; every call's scratch starts at `base`.
  let base = 0;
  const pins = new WeakMap<Float32Array, { at: number; inDim: number; outDim: number; transposed: boolean }>();

  /** Grows memory to `end` bytes; false when it cannot. */
  function reserve(end: number): boolean {
    if (end > SIMD_MAX_BYTES) return false;
    if (end > memory.buffer.byteLength) {
      try {
        memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
      } catch {
        return false;
      }
    }
    if (heap.buffer !== memory.buffer) heap = new Float32Array(memory.buffer);
    return true;
  }

  /**
   * Packs output columns `j0 .. j0+n` of `weight` into panels at `dst` (`K·n` floats). A transposed
   * weight is copied in block by block through the scratch at `sc`; a plain one must already be
   * staged there whole ({@linkcode stageWeight}). A pinned copy holds every block, block `j0` at
   * `pin + j0·K`; `run` otherwise packs one block at a time into its `wo` region.
   */
  function packBlock(
    weight: Float32Array,
    K: number,
    N: number,
    transposed: boolean,
    j0: number,
    n: number,
    sc: number,
    dst: number,
  ) {
    const h = heap;
    if (transposed) {
      const real = Math.min(N, j0 + n) - j0; // rows of Wᵀ in this block; the rest become zero columns
      h.set(weight.subarray(j0 * K, (j0 + real) * K), sc);
      h.fill(0, sc + real * K, sc + n * K);
      panelsT(sc * 4, K * 4, dst * 4, n, K * 4);
    } else panels((sc + j0) * 4, N * 4, dst * 4, n, K * 4);
  }

  /** Copies a non-transposed weight to `sc` with the zero slack `panels` may read past its last row. */
  function stageWeight(weight: Float32Array, K: number, N: number, sc: number) {
    heap.set(weight.subarray(0, K * N), sc);
    heap.fill(0, sc + K * N, sc + K * N + COLUMN_PAD);
  }

  function pin(weight: Float32Array, inDim: number, outDim: number, transposed: boolean, budgetBytes: number) {
    const K = inDim, N = outDim;
    if (pins.has(weight) || K === 0 || N === 0 || weight.length < K * N) return pins.has(weight);
    const Np = Math.ceil(N / COLUMN_PAD) * COLUMN_PAD, size = up4(Np * K);
    if ((base + size) * 4 > budgetBytes) return false;
    const sc = base + size, scSize = transposed ? Math.min(Np, N_BLOCK) * K : K * N + COLUMN_PAD;
    if (!reserve((sc + scSize) * 4)) return false;
    if (!transposed) stageWeight(weight, K, N, sc);
    for (let j0 = 0; j0 < Np; j0 += N_BLOCK) {
      packBlock(weight, K, N, transposed, j0, Math.min(Np, j0 + N_BLOCK) - j0, sc, base + j0 * K);
    }
    pins.set(weight, { at: base, inDim: K, outDim: N, transposed });
    base += size;
    return true;
  }

  function run(
    out: Float32Array,
    inp: Float32Array,
    weight: Float32Array,
    bias: Float32Array | null,
    rows: number,
    inDim: number,
    outDim: number,
    transposed: boolean,
  ): boolean {
    const R = rows, K = inDim, N = outDim;
    if (R === 0 || N === 0) return true;
    const pinned = pins.get(weight);
    const packed = pinned && pinned.inDim === K && pinned.outDim === N && pinned.transposed === transposed
      ? pinned.at
      : -1;
    const Np = Math.ceil(N / COLUMN_PAD) * COLUMN_PAD, chunk = Math.min(Np, N_BLOCK);
    const full = R - (R % TILE_ROWS), rest = R - full;
    // Regions (floats), from `base`: scratch (the raw input; then the raw weight with 16 zeros of
    // slack, or for Wᵀ one block of its rows at a time), packed input [R·K], one block of packed
    // weight [K·chunk], bias [Np], out [R·Np]. A pinned weight needs no scratch or block of its own.
    const sc = base, ap = sc + up4(Math.max(R * K, packed >= 0 ? 0 : transposed ? chunk * K : K * N + COLUMN_PAD));
    const wo = ap + up4(R * K), bo = wo + (packed >= 0 ? 0 : K * chunk), oo = bo + Np, end = (oo + R * Np) * 4;
    if (!reserve(end)) return false;
    const h = heap;
    h.set(inp.subarray(0, R * K), sc);
    if (full) packs[TILE_ROWS - 1](sc * 4, K * 4, ap * 4, full, K * 4);
    if (rest) packs[rest - 1]((sc + full * K) * 4, K * 4, (ap + full * K) * 4, rest, K * 4);
    if (!transposed && packed < 0) stageWeight(weight, K, N, sc);
    if (bias) h.set(bias.subarray(0, N), bo);
    for (let j0 = 0; j0 < Np; j0 += N_BLOCK) {
      const n = Math.min(Np, j0 + N_BLOCK) - j0;
      const block = packed >= 0 ? packed + j0 * K : wo;
      if (packed < 0) packBlock(weight, K, N, transposed, j0, n, sc, wo);
      // Tiles see this block's columns as 0 .. n: out and bias are offset by j0.
      const o = (oo + j0) * 4, b = (bo + j0) * 4;
      for (let k0 = 0; k0 < K || k0 === 0; k0 += K_BLOCK) {
        const k1 = Math.min(K, k0 + K_BLOCK);
        const flags = (k0 > 0 ? ACCUMULATE : 0) | (k1 === K && bias ? ADD_BIAS : 0);
        const w = (block + k0 * PANEL) * 4, kBytes = (k1 - k0) * 4;
        if (full) {
          tiles[TILE_ROWS - 1](
            (ap + k0 * TILE_ROWS) * 4,
            K * 4,
            w,
            K * PANEL * 4,
            o,
            Np * 4,
            b,
            full,
            0,
            n * 4,
            kBytes,
            flags,
          );
        }
        if (rest) {
          const a = (ap + full * K + k0 * rest) * 4;
          tiles[rest - 1](a, K * 4, w, K * PANEL * 4, o + full * Np * 4, Np * 4, b, rest, 0, n * 4, kBytes, flags);
        }
      }
    }
    if (Np === N) out.set(h.subarray(oo, oo + R * N));
    else for (let r = 0; r < R; r++) out.set(h.subarray(oo + r * Np, oo + r * Np + N), r * N);
    return true;
  }

  return { fused, run, pin, pinnedBytes: () => base * 4, memoryBytes: () => memory.buffer.byteLength };
}

let simdEngine: SimdMatmul | null | undefined;

/** This thread's engine, built on first use; `null` without WebAssembly SIMD. */
function defaultSimd(): SimdMatmul | null {
  if (simdEngine === undefined) simdEngine = createSimdMatmul();
  return simdEngine;
}

/**
 * Pins a weight in this thread's SIMD engine ({@linkcode SimdMatmul.pin}) so that later
 * {@linkcode matmul} (or {@linkcode matmulTransposed} when `transposed`) calls with this same array
 * and shape skip copying and packing it; the results are the same bits. Only for arrays that will
 * never change and that nobody else holds: the reference engine pins its own private copy of a
 * model's weights. Weights too small for the SIMD path are not pinned.
 *
 * @param weight `[inDim, outDim]` (or `[outDim, inDim]` when `transposed`)
 * @param inDim input width
 * @param outDim output width
 * @param transposed as for {@linkcode matmulTransposed}
 * @param budgetBytes most bytes of pinned weights this thread may hold in all
 * @returns whether the weight is now pinned
 * @example
 * ```ts
 * import { matmul, pinWeight } from "./_kernels.ts";
 * const w = new Float32Array(64 * 64).map((_, i) => (i % 7) - 3), x = new Float32Array(64).fill(1);
 * const before = new Float32Array(64), after = new Float32Array(64);
 * matmul(before, x, w, null, 1, 64, 64);
 * console.log(pinWeight(w, 64, 64, false, 2 ** 20)); // true (where WebAssembly SIMD runs)
 * matmul(after, x, w, null, 1, 64, 64);
 * console.log(after.every((v, i) => v === before[i])); // true
 * ```
 */
export function pinWeight(
  weight: Float32Array,
  inDim: number,
  outDim: number,
  transposed: boolean,
  budgetBytes: number,
): boolean {
  if (inDim * outDim < SIMD_MIN_WEIGHTS) return false;
  return defaultSimd()?.pin(weight, inDim, outDim, transposed, budgetBytes) ?? false;
}

/**
 * Bytes of pinned weights this thread holds ({@linkcode pinWeight}).
 *
 * @returns the bytes (0 without WebAssembly SIMD)
 * @example
 * ```ts
 * import { pinnedBytes } from "./_kernels.ts";
 * console.log(pinnedBytes() >= 0); // true
 * ```
 */
export function pinnedBytes(): number {
  return defaultSimd()?.pinnedBytes() ?? 0;
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

/** `-2·√(2/π)`: GELU's `0.5·(1 + tanh(u))` is the logistic `1 / (1 + exp(-2u))`. */
const GELU_NEG_2K = -2 * Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh form (GPT-2's `gelu_new`): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, computed as
 * `x / (1 + exp(-2·√(2/π)·(x + 0.044715·x³)))` (the same function, one `exp` instead of a `tanh`;
 * it saturates to `x` and `-0` in the tails). Runs in WebAssembly SIMD with a float32 `exp`
 * accurate to 1 ulp (`_vecmath.ts`), or in JavaScript with `Math.exp` where SIMD is missing.
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
  if (vecApply("gelu", out, inp, n)) return;
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    out[i] = x / (1 + Math.exp(GELU_NEG_2K * (x + 0.044715 * x * x * x)));
  }
}

/**
 * SiLU (swish): `x·σ(x)`, computed as `x / (1 + exp(-x))`, in WebAssembly SIMD where available
 * (as {@linkcode geluTanh}). `out` may be `inp`.
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
  if (vecApply("silu", out, inp, n)) return;
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    out[i] = x / (1 + Math.exp(-x));
  }
}

/** Scratch for {@linkcode softmaxCausal}: the shifted, scaled scores of every visible entry, then their exps. */
let softmaxScratch = new Float32Array(0);

/**
 * Causal softmax of attention scores in place: row `r` of `x [rows, cols]` becomes
 * `softmax(scale · x[r, 0 .. v))` over its first `v = min(cols, visible + r)` entries, and the
 * entries after them become `0` (the keys a query may not see). Max-subtracted for stability;
 * the exps run in WebAssembly SIMD where available (float32, 1 ulp; `_vecmath.ts`) and the sums in
 * float64. The first visible entry of every row must be finite. Allocates only when a call needs
 * more scratch than any call before it.
 *
 * @param x scores `[rows, cols]` (e.g. `[pos, key]` for one head), overwritten by the pattern
 * @param rows number of rows (queries)
 * @param cols row width (keys)
 * @param visible entries visible to row 0 (e.g. `past_pos + 1`); each later row sees one more
 * @param scale factor applied before the softmax (e.g. `1/√d_head`), positive
 * @returns nothing; the result is written to `x`
 * @example
 * ```ts
 * import { softmaxCausal } from "./_kernels.ts";
 * // two queries over two keys: the first sees only key 0
 * const x = new Float32Array([5, 9, 0, Math.log(3)]);
 * softmaxCausal(x, 2, 2, 1, 1);
 * console.log(x); // ≈ Float32Array [1, 0, 0.25, 0.75]
 * ```
 */
export function softmaxCausal(x: Float32Array, rows: number, cols: number, visible: number, scale: number): void {
  let total = 0;
  for (let r = 0; r < rows; r++) total += Math.min(cols, visible + r);
  if (softmaxScratch.length < total) softmaxScratch = new Float32Array(Math.max(total, 2 * softmaxScratch.length));
  const e = softmaxScratch;
  for (let r = 0, at = 0; r < rows; r++) {
    const b = r * cols, v = Math.min(cols, visible + r);
    let max = -Infinity;
    for (let j = 0; j < v; j++) if (x[b + j] > max) max = x[b + j];
    for (let j = 0; j < v; j++) e[at + j] = (x[b + j] - max) * scale;
    at += v;
  }
  if (!vecApply("exp", e, e, total)) { for (let i = 0; i < total; i++) e[i] = Math.exp(e[i]); }
  for (let r = 0, at = 0; r < rows; r++) {
    const b = r * cols, v = Math.min(cols, visible + r);
    let sum = 0;
    for (let j = 0; j < v; j++) sum += e[at + j];
    const inv = 1 / sum;
    for (let j = 0; j < v; j++) x[b + j] = e[at + j] * inv;
    x.fill(0, b + v, b + cols);
    at += v;
  }
}
