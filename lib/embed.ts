/**
 * Embeddings as vectors: cosine similarity, nearest neighbours and 2-D
 * projections (PCA) over rows of `Float32Array` tensors.
 *
 * Shapes: a set of vectors is a `[n, d]` tensor (e.g. `[words, d_model]`); a
 * vocabulary is `[vocab, d_model]`.
 *
 * Zero vectors: the cosine of a zero vector is undefined. By default every
 * function here throws a `RangeError` naming the row; with
 * `zeroVectors: "nan"` such rows get `NaN` similarities instead (and are never
 * returned as neighbours), which suits vocabularies with unused all-zero rows.
 *
 * Speed: {@linkcode cosineSimilarityMatrix} normalises rows once, then computes
 * only the lower triangle of the Gram matrix in cache-sized blocks with a small
 * WebAssembly SIMD kernel (4×2 rows per tile, `f32x4` lanes), falling back to a
 * register-blocked JavaScript kernel where WebAssembly SIMD is missing.
 * {@linkcode normalizeRows} builds a reusable index so each
 * {@linkcode nearestNeighbours} query is one pass over the vocabulary.
 * `bench/embed_bench.ts` measures both against naive loops.
 *
 * @example
 * ```ts
 * import { cosineSimilarityMatrix, nearestNeighbours, normalizeRows } from "./embed.ts";
 * const words = { data: new Float32Array([1, 0, 0.9, 0.1, 0, 1]), dims: [3, 2] };
 * const sim = cosineSimilarityMatrix(words); // [3, 3]
 * const index = normalizeRows(words);
 * const { indices } = nearestNeighbours(new Float32Array([1, 0.05]), index, { k: 2 });
 * console.log(sim.dims, Array.from(indices)); // [3, 3] [0, 1]
 * ```
 *
 * @module
 */
import { EigenvalueDecomposition, Matrix } from "ml-matrix";
import type { Tensor } from "./types.ts";

/** What to do with an all-zero vector, whose cosine is undefined. */
export type ZeroVectorPolicy = "throw" | "nan";

/** Options for {@linkcode cosineSimilarityMatrix}. */
export interface CosineSimilarityOptions {
  /** `"throw"` (default): a `RangeError` naming the zero row; `"nan"`: its row and column are `NaN`. */
  zeroVectors?: ZeroVectorPolicy;
  /**
   * Which kernel computes the Gram matrix: `"auto"` (default) uses WebAssembly SIMD when the
   * runtime has it, `"wasm"` requires it, `"js"` forces the plain JavaScript kernel.
   * Both agree with a float64 reference to ~1e-6.
   */
  kernel?: "auto" | "wasm" | "js";
}

/**
 * Cosine similarity of every pair of rows: `out[i, j] = vᵢ·vⱼ / (|vᵢ| |vⱼ|)`.
 * The diagonal is exactly 1 and values are clamped to `[-1, 1]`. Rows are
 * normalised once (norms in float64); the products accumulate in float32
 * lanes (WebAssembly) or float64 (JavaScript), about 1e-6 from a float64 reference.
 * A single vector gives `[[1]]`.
 *
 * @param vectors `[n, d]` tensor, one vector per row
 * @param options zero-vector policy and kernel choice
 * @returns `[n, n]` symmetric similarity matrix
 * @example
 * ```ts
 * import { cosineSimilarityMatrix } from "./embed.ts";
 * const sim = cosineSimilarityMatrix({ data: new Float32Array([1, 0, 1, 1, 0, 2]), dims: [3, 2] });
 * console.log(sim.data[1].toFixed(4)); // cos 45° = 0.7071
 * ```
 */
export function cosineSimilarityMatrix(vectors: Tensor, options: CosineSimilarityOptions = {}): Tensor {
  const [n, d] = matrixDims(vectors, "cosineSimilarityMatrix()", "vectors");
  const policy = zeroPolicy(options.zeroVectors, "cosineSimilarityMatrix()");
  const kernel = options.kernel ?? "auto";
  if (kernel !== "auto" && kernel !== "wasm" && kernel !== "js") {
    throw new RangeError(`cosineSimilarityMatrix(): kernel must be "auto", "wasm" or "js", got ${String(kernel)}`);
  }
  const { norms, zeroRows } = rowNorms(vectors.data, n, d, policy, "cosineSimilarityMatrix()");
  const module = kernel === "js" ? null : simdGramModule();
  if (kernel === "wasm" && !module) {
    throw new RangeError(`cosineSimilarityMatrix(): this runtime has no WebAssembly SIMD; use kernel: "auto" or "js"`);
  }
  const out = new Float32Array(n * n);
  // WebAssembly memory is 32-bit: very large inputs take the JavaScript kernel.
  const wasmBytes = Math.ceil(n / 4) * 4 * (Math.ceil(d / 4) * 4 + Math.ceil(n / 4) * 4) * 4;
  if (kernel === "wasm" && wasmBytes > 2 ** 31) {
    throw new RangeError(
      `cosineSimilarityMatrix(): ${n} rows need ${wasmBytes} bytes, over the 2 GiB WebAssembly limit; use kernel: "js"`,
    );
  }
  if (module && wasmBytes <= 2 ** 31) gramWasm(module, vectors.data, norms, n, d, out);
  else gramJs(vectors.data, norms, n, d, out);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  for (const z of zeroRows) {
    for (let j = 0; j < n; j++) out[z * n + j] = out[j * n + z] = NaN;
  }
  return { data: out, dims: [n, n] };
}

/** Options for {@linkcode cosineSimilarity}. */
export interface CosineOptions {
  /** `"throw"` (default) or `"nan"` when either vector is all zeros. */
  zeroVectors?: ZeroVectorPolicy;
}

/**
 * Cosine similarity of two vectors, accumulated in float64.
 *
 * @param a first vector `[d]`
 * @param b second vector `[d]`
 * @param options zero-vector policy
 * @returns `a·b / (|a| |b|)`, clamped to `[-1, 1]`
 * @example
 * ```ts
 * import { cosineSimilarity } from "./embed.ts";
 * console.log(cosineSimilarity(new Float32Array([1, 0]), new Float32Array([0, 3]))); // 0
 * ```
 */
export function cosineSimilarity(a: Float32Array, b: Float32Array, options: CosineOptions = {}): number {
  if (!(a instanceof Float32Array) || !(b instanceof Float32Array)) {
    throw new TypeError("cosineSimilarity(): both vectors must be Float32Arrays");
  }
  if (a.length !== b.length) {
    throw new RangeError(`cosineSimilarity(): vectors have ${a.length} and ${b.length} dims; they must match`);
  }
  const policy = zeroPolicy(options.zeroVectors, "cosineSimilarity()");
  let dot = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (!Number.isFinite(dot + aa + bb)) throw new RangeError("cosineSimilarity(): a vector has a NaN or infinite value");
  if (aa === 0 || bb === 0) {
    if (policy === "nan") return NaN;
    throw new RangeError(
      `cosineSimilarity(): vector ${aa === 0 ? "a" : "b"} is all zeros, so its cosine is undefined; ` +
        `pass { zeroVectors: "nan" } to get NaN instead`,
    );
  }
  return Math.max(-1, Math.min(1, dot / Math.sqrt(aa * bb)));
}

/**
 * Rows scaled to unit length, with their original norms: an index that
 * {@linkcode nearestNeighbours} reuses across queries. Treat it as read-only:
 * for indexes of 2¹⁸ values or more, an int8 copy of the rows (a quarter of the
 * bytes, for a bounded first pass) is built with it and cached per index object.
 */
export interface NormalizedRows extends Tensor {
  /** `[rows, d]` unit-length rows (all-zero rows stay zero). */
  data: Float32Array;
  /** `[rows, d]`. */
  dims: readonly [number, number];
  /** Original Euclidean norm of each row `[rows]`. */
  norms: Float32Array;
  /** Indices of all-zero rows (only with `zeroVectors: "nan"`; they are never neighbours). */
  zeroRows: readonly number[];
}

/** Options for {@linkcode normalizeRows}. */
export interface NormalizeRowsOptions {
  /** `"throw"` (default): a `RangeError` naming the zero row; `"nan"`: keep it, never ranked. */
  zeroVectors?: ZeroVectorPolicy;
}

/**
 * Normalises every row of a matrix once (norms in float64), for repeated
 * nearest-neighbour queries.
 *
 * @param matrix `[rows, d]` tensor (e.g. the `[vocab, d_model]` token embedding matrix)
 * @param options zero-vector policy
 * @returns the index: unit rows, original norms, zero rows
 * @example
 * ```ts
 * import { normalizeRows } from "./embed.ts";
 * const index = normalizeRows({ data: new Float32Array([3, 4, 0, 2]), dims: [2, 2] });
 * console.log(Array.from(index.data), Array.from(index.norms)); // [0.6, 0.8, 0, 1] [5, 2]
 * ```
 */
export function normalizeRows(matrix: Tensor, options: NormalizeRowsOptions = {}): NormalizedRows {
  const index = normalizeRowsOnly(matrix, options.zeroVectors);
  quantizedRowsOf(index); // pay for the int8 copy here, with the rest of the one-off cost
  return index;
}

function normalizeRowsOnly(matrix: Tensor, zeroVectors: ZeroVectorPolicy | undefined): NormalizedRows {
  const [n, d] = matrixDims(matrix, "normalizeRows()", "matrix");
  const policy = zeroPolicy(zeroVectors, "normalizeRows()");
  const { norms, zeroRows } = rowNorms(matrix.data, n, d, policy, "normalizeRows()");
  const x = matrix.data, data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const s = norms[i] > 0 ? 1 / norms[i] : 0;
    const b = i * d;
    for (let k = 0; k < d; k++) data[b + k] = x[b + k] * s;
  }
  return { data, dims: [n, d], norms: Float32Array.from(norms), zeroRows };
}

/** Options for {@linkcode nearestNeighbours}. */
export interface NearestNeighboursOptions {
  /** How many neighbours to return. Default 10 (fewer if the matrix has fewer rankable rows). */
  k?: number;
  /** Row indices never returned (e.g. the query word's own row). Default: none. */
  exclude?: Iterable<number>;
  /** Zero-row policy when `matrix` is a plain tensor (an index keeps its own). Default `"throw"`. */
  zeroVectors?: ZeroVectorPolicy;
}

/** Result of {@linkcode nearestNeighbours}. */
export interface NearestNeighboursResult {
  /** Row indices, most similar first (ties: lower index first). */
  indices: Int32Array;
  /** Cosine similarity of each returned row to the query. */
  scores: Float32Array;
}

/**
 * The `k` rows most cosine-similar to a query vector. Pass an index from
 * {@linkcode normalizeRows} to reuse the row norms across queries; a plain
 * tensor is normalised on each call. A zero query always throws (it has no
 * direction to compare).
 *
 * @param query vector `[d]`
 * @param matrix `[rows, d]` tensor or a {@linkcode NormalizedRows} index of it
 * @param options `k`, excluded rows, zero-row policy
 * @returns indices and scores, best first
 * @example
 * ```ts
 * import { nearestNeighbours, normalizeRows } from "./embed.ts";
 * const vocab = normalizeRows({ data: new Float32Array([1, 0, 0, 1, 1, 1]), dims: [3, 2] });
 * const { indices, scores } = nearestNeighbours(new Float32Array([1, 0.9]), vocab, { k: 2 });
 * console.log(Array.from(indices), scores[0] > 0.99); // [2, 0] true
 * ```
 */
export function nearestNeighbours(
  query: Float32Array,
  matrix: Tensor | NormalizedRows,
  options: NearestNeighboursOptions = {},
): NearestNeighboursResult {
  // A one-off index from a plain tensor is used once: skip its int8 copy.
  const index = isNormalizedRows(matrix) ? matrix : normalizeRowsOnly(matrix, options.zeroVectors);
  const [n, d] = index.dims;
  if (!(query instanceof Float32Array)) throw new TypeError("nearestNeighbours(): query must be a Float32Array");
  if (query.length !== d) {
    throw new RangeError(
      `nearestNeighbours(): query has ${query.length} dims but the matrix rows have ${d}; they must match`,
    );
  }
  const k = options.k ?? 10;
  if (!Number.isInteger(k) || k < 1) {
    throw new RangeError(`nearestNeighbours(): k must be a positive integer, got ${k}`);
  }
  let qq = 0;
  for (let i = 0; i < d; i++) qq += query[i] * query[i];
  if (!Number.isFinite(qq)) throw new RangeError("nearestNeighbours(): query has a NaN or infinite value");
  if (qq === 0) throw new RangeError("nearestNeighbours(): query is all zeros, so no row has a defined cosine to it");
  const q = new Float32Array(d);
  const qs = 1 / Math.sqrt(qq);
  for (let i = 0; i < d; i++) q[i] = query[i] * qs;

  const skip = new Uint8Array(n);
  for (const z of index.zeroRows) skip[z] = 1;
  for (const e of options.exclude ?? []) {
    if (!Number.isInteger(e) || e < 0 || e >= n) {
      throw new RangeError(`nearestNeighbours(): exclude holds ${e}, not a row index in [0, ${n})`);
    }
    skip[e] = 1;
  }
  const quant = index === matrix ? quantizedRowsOf(index) : null;
  if (quant) return scanQuantized(quant, index.data, q, n, d, skip, k);
  const scores = new Float32Array(n);
  dotRows(index.data, q, n, d, scores);
  return topK(scores, skip, k);
}

/** Options for {@linkcode stackRows}. */
export interface StackRowsOptions {
  /** Expected row length; default: the first vector's length. */
  dim?: number;
}

/**
 * Stacks vectors into one `[n, d]` tensor (the input of the other functions).
 *
 * @param vectors equal-length vectors
 * @param options expected length
 * @returns `[n, d]` tensor (a copy)
 * @example
 * ```ts
 * import { stackRows } from "./embed.ts";
 * const t = stackRows([new Float32Array([1, 2]), new Float32Array([3, 4])]);
 * console.log(t.dims); // [2, 2]
 * ```
 */
export function stackRows(vectors: readonly Float32Array[], options: StackRowsOptions = {}): Tensor {
  if (!Array.isArray(vectors) || vectors.length === 0) {
    throw new RangeError("stackRows(): needs a non-empty array of Float32Array vectors");
  }
  const d = options.dim ?? vectors[0].length;
  const data = new Float32Array(vectors.length * d);
  vectors.forEach((v, i) => {
    if (!(v instanceof Float32Array)) throw new TypeError(`stackRows(): vector ${i} is not a Float32Array`);
    if (v.length !== d) {
      throw new RangeError(`stackRows(): vector ${i} has ${v.length} dims but vector 0 has ${d}; all must match`);
    }
    data.set(v, i * d);
  });
  return { data, dims: [vectors.length, d] };
}

/** Options for {@linkcode pca}. */
export interface PcaOptions {
  /** Number of principal components. Default 2. At most `min(n, d)`. */
  components?: number;
}

/** Result of {@linkcode pca}. */
export interface PcaResult {
  /** `[n, components]` coordinates of each vector (centred data times the components). */
  points: Tensor;
  /** `[components, d]` unit principal axes, largest variance first; the largest-magnitude entry of each is positive. */
  components: Tensor;
  /** Variance along each component (`eigenvalue / (n - 1)`); 0 for axes the data does not span. */
  explainedVariance: Float64Array;
  /** Each component's share of the total variance. */
  explainedVarianceRatio: Float64Array;
  /** `[d]` mean vector subtracted before projecting. */
  mean: Float32Array;
}

/**
 * Principal component analysis, e.g. to draw word vectors in 2-D. Centres the
 * rows, then eigen-decomposes the smaller of the `d×d` covariance and the
 * `n×n` Gram matrix (same components, far cheaper for a few words in a wide
 * model) with ml-matrix's symmetric eigensolver, all in float64.
 *
 * @param vectors `[n, d]` tensor, at least 2 rows
 * @param options number of components
 * @returns projected points, axes and explained variance
 * @example
 * ```ts
 * import { pca } from "./embed.ts";
 * const { points, explainedVarianceRatio } = pca({ data: new Float32Array([0, 0, 1, 1, 2, 2.1, 3, 2.9]), dims: [4, 2] });
 * console.log(points.dims, explainedVarianceRatio[0] > 0.99); // [4, 2] true
 * ```
 */
export function pca(vectors: Tensor, options: PcaOptions = {}): PcaResult {
  const [n, d] = matrixDims(vectors, "pca()", "vectors");
  if (n < 2) throw new RangeError(`pca(): needs at least 2 vectors to have a variance, got ${n}`);
  const c = options.components ?? 2;
  if (!Number.isInteger(c) || c < 1 || c > Math.min(n, d)) {
    throw new RangeError(`pca(): components must be an integer in [1, min(n, d) = ${Math.min(n, d)}], got ${c}`);
  }
  const x = vectors.data;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mean[k] += x[i * d + k];
  for (let k = 0; k < d; k++) mean[k] /= n;
  // xc is the centred data [n, d], float64.
  const xc = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) {
      const v = x[i * d + k] - mean[k];
      if (!Number.isFinite(v)) throw new RangeError(`pca(): row ${i} has a NaN or infinite value`);
      xc[i * d + k] = v;
    }
  }
  const gram = n <= d;
  const m = gram ? n : d;
  // s is [m, m]: Gram xc·xcᵀ when n <= d, else the scatter matrix xcᵀ·xc.
  const s = new Matrix(m, m);
  if (gram) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        let acc = 0;
        const a = i * d, b = j * d;
        for (let k = 0; k < d; k++) acc += xc[a + k] * xc[b + k];
        s.set(i, j, acc);
        s.set(j, i, acc);
      }
    }
  } else {
    const acc = new Float64Array(d * d);
    for (let i = 0; i < n; i++) {
      const r = i * d;
      for (let a = 0; a < d; a++) {
        const va = xc[r + a];
        if (va === 0) continue;
        const o = a * d;
        for (let b = 0; b <= a; b++) acc[o + b] += va * xc[r + b];
      }
    }
    for (let a = 0; a < d; a++) {
      for (let b = 0; b <= a; b++) {
        s.set(a, b, acc[a * d + b]);
        s.set(b, a, acc[a * d + b]);
      }
    }
  }
  const eig = new EigenvalueDecomposition(s, { assumeSymmetric: true });
  const values = eig.realEigenvalues;
  const vecs = eig.eigenvectorMatrix;
  const order = values.map((_, i) => i).sort((a, b) => values[b] - values[a]);
  let total = 0;
  for (const v of values) total += Math.max(0, v);
  const tol = Math.max(1e-12, 1e-10 * Math.max(0, values[order[0]]));

  const components = new Float32Array(c * d);
  const points = new Float32Array(n * c);
  const explainedVariance = new Float64Array(c);
  const explainedVarianceRatio = new Float64Array(c);
  const axis = new Float64Array(d);
  for (let p = 0; p < c; p++) {
    const col = order[p];
    const lambda = values[col];
    if (!(lambda > tol)) continue; // the data spans fewer than c directions: axis and scores stay 0
    explainedVariance[p] = lambda / (n - 1);
    explainedVarianceRatio[p] = total > 0 ? lambda / total : 0;
    if (gram) {
      // u is a unit eigenvector of xc·xcᵀ; the axis is xcᵀu / √λ.
      const inv = 1 / Math.sqrt(lambda);
      axis.fill(0);
      for (let i = 0; i < n; i++) {
        const u = vecs.get(i, col);
        for (let k = 0; k < d; k++) axis[k] += xc[i * d + k] * u;
      }
      for (let k = 0; k < d; k++) axis[k] *= inv;
    } else {
      for (let k = 0; k < d; k++) axis[k] = vecs.get(k, col);
    }
    // Sign convention: the largest-magnitude entry is positive, so results are repeatable.
    let big = 0;
    for (let k = 1; k < d; k++) if (Math.abs(axis[k]) > Math.abs(axis[big])) big = k;
    const sign = axis[big] < 0 ? -1 : 1;
    for (let k = 0; k < d; k++) components[p * d + k] = axis[k] * sign;
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let k = 0; k < d; k++) acc += xc[i * d + k] * axis[k];
      points[i * c + p] = acc * sign;
    }
  }
  return {
    points: { data: points, dims: [n, c] },
    components: { data: components, dims: [c, d] },
    explainedVariance,
    explainedVarianceRatio,
    mean: Float32Array.from(mean),
  };
}

// ---------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------

function matrixDims(t: Tensor, who: string, name: string): [number, number] {
  if (!t || !(t.data instanceof Float32Array) || !Array.isArray(t.dims)) {
    throw new TypeError(`${who}: ${name} must be a Tensor { data: Float32Array, dims: [n, d] }`);
  }
  if (t.dims.length !== 2) {
    throw new RangeError(`${who}: ${name} must be 2-D [n, d], got dims [${t.dims.join(", ")}]`);
  }
  const [n, d] = t.dims;
  if (!Number.isInteger(n) || !Number.isInteger(d) || n < 1 || d < 1) {
    throw new RangeError(`${who}: ${name} needs at least one row and one column, got dims [${n}, ${d}]`);
  }
  if (t.data.length !== n * d) {
    throw new RangeError(`${who}: ${name} has ${t.data.length} values but dims [${n}, ${d}] need ${n * d}`);
  }
  return [n, d];
}

function zeroPolicy(p: ZeroVectorPolicy | undefined, who: string): ZeroVectorPolicy {
  const policy = p ?? "throw";
  if (policy !== "throw" && policy !== "nan") {
    throw new RangeError(`${who}: zeroVectors must be "throw" or "nan", got ${String(p)}`);
  }
  return policy;
}

/** Float64 norms of each row; zero rows throw or are listed, per the policy. */
function rowNorms(
  x: Float32Array,
  n: number,
  d: number,
  policy: ZeroVectorPolicy,
  who: string,
): { norms: Float64Array; zeroRows: number[] } {
  const norms = new Float64Array(n);
  const zeroRows: number[] = [];
  for (let i = 0; i < n; i++) {
    let s = 0;
    const b = i * d;
    for (let k = 0; k < d; k++) s += x[b + k] * x[b + k];
    if (!Number.isFinite(s)) throw new RangeError(`${who}: row ${i} has a NaN or infinite value`);
    if (s === 0) {
      if (policy === "throw") {
        throw new RangeError(
          `${who}: row ${i} is all zeros, so its cosine is undefined; remove it or pass { zeroVectors: "nan" }`,
        );
      }
      zeroRows.push(i);
    }
    norms[i] = Math.sqrt(s);
  }
  return { norms, zeroRows };
}

function isNormalizedRows(m: Tensor | NormalizedRows): m is NormalizedRows {
  return !!m && (m as NormalizedRows).norms instanceof Float32Array && Array.isArray((m as NormalizedRows).zeroRows) &&
    m.dims.length === 2 && m.data.length === m.dims[0] * m.dims[1];
}

/** scores[i] = rows[i]·q for rows [n, d]; four rows per pass so q is read once per four dot products. */
function dotRows(rows: Float32Array, q: Float32Array, n: number, d: number, scores: Float32Array): void {
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const b0 = i * d, b1 = b0 + d, b2 = b1 + d, b3 = b2 + d;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let k = 0; k < d; k++) {
      const v = q[k];
      s0 += rows[b0 + k] * v;
      s1 += rows[b1 + k] * v;
      s2 += rows[b2 + k] * v;
      s3 += rows[b3 + k] * v;
    }
    scores[i] = s0;
    scores[i + 1] = s1;
    scores[i + 2] = s2;
    scores[i + 3] = s3;
  }
  for (; i < n; i++) {
    let s = 0;
    const b = i * d;
    for (let k = 0; k < d; k++) s += rows[b + k] * q[k];
    scores[i] = s;
  }
}

/**
 * An int8 copy of an index's unit rows in WebAssembly memory. A query first
 * scans these 4× smaller rows with exact integer dot products, which bound
 * every row's true cosine within ±β (below), then re-scores in float64 only the
 * rows whose upper bound reaches the k-th best lower bound. The result is the
 * same top k as scanning every float32 row; the scan is memory-bound, so
 * reading a quarter of the bytes is what makes it fast.
 *
 * Rounding bound: row x = s_r·(a + e), query q = s_q·(b + f) with integer a, b
 * and |e|, |f| ≤ ½, so |x·q − s_r·s_q·(a·b)| ≤ s_r·s_q·(½‖a‖₁ + ½‖b‖₁ + d/4).
 */
interface QuantizedRows {
  dotq: (rows: number, nPad: number, rowBytes: number, q: number, out: number) => void;
  nPad: number;
  /** Row stride in bytes (d rounded up to 16). */
  d16: number;
  qPtr: number;
  outPtr: number;
  /** [d16] int8-valued query, in wasm memory. */
  query: Int16Array;
  /** [nPad] integer dot products, in wasm memory. */
  sums: Int32Array;
  /** [rows] scale s_r of each row. */
  scale: Float64Array;
  /** [rows] ‖a‖₁ of each quantised row. */
  l1: Float64Array;
}

/** Adding and subtracting 1.5·2⁵² rounds a float64 of magnitude < 2⁵¹ to the nearest integer (ties to even). */
const ROUND = 6755399441055744;

/** Indexes smaller than this many values are scanned directly (the int8 pass would not pay off). */
const QUANTIZE_MIN_VALUES = 1 << 18;
const quantizedCache = new WeakMap<NormalizedRows, QuantizedRows | null>();

/** The int8 copy of an index (built on first use, cached per index object), or null to scan float32 rows. */
function quantizedRowsOf(index: NormalizedRows): QuantizedRows | null {
  let quant = quantizedCache.get(index);
  if (quant === undefined) {
    quant = buildQuantizedRows(index);
    quantizedCache.set(index, quant);
  }
  return quant;
}

function buildQuantizedRows(index: NormalizedRows): QuantizedRows | null {
  const [n, d] = index.dims;
  // Integer sums stay exact below 2³¹: each int32 lane adds d/4 products of at most 127·127.
  if (n * d < QUANTIZE_MIN_VALUES || d > 65536) return null;
  const module = simdDotqModule();
  if (!module) return null;
  const nPad = Math.ceil(n / 4) * 4, d16 = Math.ceil(d / 16) * 16;
  const qPtr = nPad * d16, outPtr = qPtr + d16 * 2, bytes = outPtr + nPad * 4;
  if (bytes > 2 ** 31) return null;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
  const dotq = new WebAssembly.Instance(module, { env: { memory } }).exports.dotq as QuantizedRows["dotq"];
  const rows = new Int8Array(memory.buffer, 0, nPad * d16);
  const scale = new Float64Array(n), l1 = new Float64Array(n);
  const x = index.data;
  for (let i = 0; i < n; i++) {
    const b = i * d, o = i * d16;
    // Math.abs/Math.max compile branch-free; sign tests on random data mispredict and run 4× slower.
    let m = 0;
    for (let k = 0; k < d; k++) m = Math.max(m, Math.abs(x[b + k]));
    if (m === 0) continue;
    const inv = 127 / m;
    let sum = 0;
    for (let k = 0; k < d; k++) {
      const a = x[b + k] * inv + ROUND - ROUND;
      rows[o + k] = a;
      sum += Math.abs(a);
    }
    scale[i] = m / 127;
    l1[i] = sum;
  }
  return {
    dotq,
    nPad,
    d16,
    qPtr,
    outPtr,
    query: new Int16Array(memory.buffer, qPtr, d16),
    sums: new Int32Array(memory.buffer, outPtr, nPad),
    scale,
    l1,
  };
}

/**
 * The k best rows by exact float64-accumulated cosine (rounded to float32 for
 * ranking, as in the direct scan), using the int8 pass to rule most rows out.
 */
function scanQuantized(
  quant: QuantizedRows,
  rows: Float32Array,
  q: Float32Array,
  n: number,
  d: number,
  skip: Uint8Array,
  k: number,
): NearestNeighboursResult {
  let m = 0;
  for (let j = 0; j < d; j++) m = Math.max(m, Math.abs(q[j]));
  const sq = m / 127, inv = 127 / m;
  let qL1 = 0;
  quant.query.fill(0);
  for (let j = 0; j < d; j++) {
    const b = q[j] * inv + ROUND - ROUND;
    quant.query[j] = b;
    qL1 += Math.abs(b);
  }
  quant.dotq(0, quant.nPad, quant.d16, quant.qPtr, quant.outPtr);
  const { sums, scale, l1 } = quant;
  // Row i's cosine lies in approx ± beta, approx = s·sums[i], beta = s·(½·l1[i] + c) + slack, s = scale[i]·sq;
  // the 1e-6 slack covers float rounding and keeps float32 ties on the safe side.
  const c = 0.5 * qL1 + 0.25 * d;
  // Size-k min-heap of lower bounds: its root ends as the k-th best lower bound.
  const heap = new Float64Array(k);
  let size = 0;
  for (let i = 0; i < n; i++) {
    if (skip[i]) continue;
    const s = scale[i] * sq;
    const lower = s * (sums[i] - 0.5 * l1[i] - c) - 1e-6;
    if (size < k) {
      let ch = size++;
      heap[ch] = lower;
      while (ch > 0 && heap[(ch - 1) >> 1] > heap[ch]) {
        const p = (ch - 1) >> 1;
        [heap[p], heap[ch]] = [heap[ch], heap[p]];
        ch = p;
      }
    } else if (lower > heap[0]) {
      heap[0] = lower;
      for (let p = 0;;) {
        const l = 2 * p + 1, r = l + 1;
        let w = p;
        if (l < size && heap[l] < heap[w]) w = l;
        if (r < size && heap[r] < heap[w]) w = r;
        if (w === p) break;
        [heap[p], heap[w]] = [heap[w], heap[p]];
        p = w;
      }
    }
  }
  const threshold = size < k ? -Infinity : heap[0];
  const candidates: number[] = [], exact: number[] = [];
  const f32 = new Float32Array(1);
  for (let i = 0; i < n; i++) {
    if (skip[i]) continue;
    const s = scale[i] * sq;
    if (s * (sums[i] + 0.5 * l1[i] + c) + 1e-6 < threshold) continue;
    let dot = 0;
    const b = i * d;
    for (let j = 0; j < d; j++) dot += rows[b + j] * q[j];
    f32[0] = dot;
    candidates.push(i);
    exact.push(f32[0]);
  }
  const order = candidates.map((_, j) => j).sort((a, b) => exact[b] - exact[a] || candidates[a] - candidates[b]);
  const top = order.slice(0, k);
  return {
    indices: Int32Array.from(top, (j) => candidates[j]),
    scores: Float32Array.from(top, (j) => Math.max(-1, Math.min(1, exact[j]))),
  };
}

/** Better = higher score, then lower index. */
function better(sa: number, ia: number, sb: number, ib: number): boolean {
  return sa > sb || (sa === sb && ia < ib);
}

/** The k best unskipped scores via a size-k min-heap (O(n log k)), returned best first. */
function topK(scores: Float32Array, skip: Uint8Array, k: number): NearestNeighboursResult {
  const heapI = new Int32Array(k);
  const heapS = new Float64Array(k);
  let size = 0;
  const siftDown = (start: number) => {
    let p = start;
    for (;;) {
      const l = 2 * p + 1, r = l + 1;
      let w = p;
      if (l < size && better(heapS[w], heapI[w], heapS[l], heapI[l])) w = l;
      if (r < size && better(heapS[w], heapI[w], heapS[r], heapI[r])) w = r;
      if (w === p) return;
      [heapI[p], heapI[w]] = [heapI[w], heapI[p]];
      [heapS[p], heapS[w]] = [heapS[w], heapS[p]];
      p = w;
    }
  };
  for (let i = 0; i < scores.length; i++) {
    if (skip[i]) continue;
    const s = scores[i];
    if (s !== s) continue; // NaN
    if (size < k) {
      // Sift up: the root holds the worst kept entry.
      let c = size++;
      heapI[c] = i;
      heapS[c] = s;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!better(heapS[p], heapI[p], heapS[c], heapI[c])) break;
        [heapI[p], heapI[c]] = [heapI[c], heapI[p]];
        [heapS[p], heapS[c]] = [heapS[c], heapS[p]];
        c = p;
      }
    } else if (better(s, i, heapS[0], heapI[0])) {
      heapI[0] = i;
      heapS[0] = s;
      siftDown(0);
    }
  }
  const order = Array.from({ length: size }, (_, j) => j).sort((a, b) =>
    better(heapS[a], heapI[a], heapS[b], heapI[b]) ? -1 : 1
  );
  const indices = new Int32Array(size), out = new Float32Array(size);
  order.forEach((j, r) => {
    indices[r] = heapI[j];
    out[r] = Math.max(-1, Math.min(1, heapS[j]));
  });
  return { indices, scores: out };
}

/**
 * JavaScript Gram kernel: out[i, j] for j <= i of the row-normalised x, 4×4 register tiles
 * over a float64 copy (no per-load float32→float64 conversion), mirrored to the upper triangle.
 */
function gramJs(x: Float32Array, norms: Float64Array, n: number, d: number, out: Float32Array): void {
  const nPad = Math.ceil(n / 4) * 4;
  const a = new Float64Array(nPad * d); // a is [nPad, d], unit rows, zero padding rows
  for (let i = 0; i < n; i++) {
    const s = norms[i] > 0 ? 1 / norms[i] : 0;
    for (let k = 0; k < d; k++) a[i * d + k] = x[i * d + k] * s;
  }
  const put = (i: number, j: number, v: number) => {
    if (i < n && j <= i) out[i * n + j] = out[j * n + i] = v > 1 ? 1 : v < -1 ? -1 : v;
  };
  for (let i = 0; i < nPad; i += 4) {
    const i0 = i * d, i1 = i0 + d, i2 = i1 + d, i3 = i2 + d;
    for (let j = 0; j <= i; j += 4) {
      const j0 = j * d, j1 = j0 + d, j2 = j1 + d, j3 = j2 + d;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let k = 0; k < d; k++) {
        const b0 = a[j0 + k], b1 = a[j1 + k], b2 = a[j2 + k], b3 = a[j3 + k];
        let v = a[i0 + k];
        s00 += v * b0, s01 += v * b1, s02 += v * b2, s03 += v * b3;
        v = a[i1 + k];
        s10 += v * b0, s11 += v * b1, s12 += v * b2, s13 += v * b3;
        v = a[i2 + k];
        s20 += v * b0, s21 += v * b1, s22 += v * b2, s23 += v * b3;
        v = a[i3 + k];
        s30 += v * b0, s31 += v * b1, s32 += v * b2, s33 += v * b3;
      }
      put(i, j, s00), put(i, j + 1, s01), put(i, j + 2, s02), put(i, j + 3, s03);
      put(i + 1, j, s10), put(i + 1, j + 1, s11), put(i + 1, j + 2, s12), put(i + 1, j + 3, s13);
      put(i + 2, j, s20), put(i + 2, j + 1, s21), put(i + 2, j + 2, s22), put(i + 2, j + 3, s23);
      put(i + 3, j, s30), put(i + 3, j + 1, s31), put(i + 3, j + 2, s32), put(i + 3, j + 3, s33);
    }
  }
}

type GramFn = (
  base: number,
  nPad: number,
  rowBytes: number,
  out: number,
  i0: number,
  i1: number,
  j0: number,
  j1: number,
) => void;

/**
 * WebAssembly Gram kernel. Rows (unit length, padded to d4 = ⌈d/4⌉·4 floats and
 * nPad = ⌈n/4⌉·4 rows) go into linear memory; the kernel fills out[i, j] (nPad×nPad float32)
 * for tiles of 4 rows i × 2 rows j. JavaScript walks column blocks of ~1 MB of rows so
 * the j rows stay in L2 while every i tile below them streams past.
 */
function gramWasm(
  module: WebAssembly.Module,
  x: Float32Array,
  norms: Float64Array,
  n: number,
  d: number,
  out: Float32Array,
): void {
  const d4 = Math.ceil(d / 4) * 4, nPad = Math.ceil(n / 4) * 4;
  const rowBytes = d4 * 4;
  const outBase = nPad * rowBytes;
  const bytes = outBase + nPad * nPad * 4;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
  const gram = new WebAssembly.Instance(module, { env: { memory } }).exports.gram as GramFn;
  const rows = new Float32Array(memory.buffer, 0, nPad * d4);
  for (let i = 0; i < n; i++) {
    const s = norms[i] > 0 ? 1 / norms[i] : 0;
    for (let k = 0; k < d; k++) rows[i * d4 + k] = x[i * d + k] * s;
  }
  const block = Math.max(4, Math.floor((1 << 20) / rowBytes / 4) * 4);
  for (let jb = 0; jb < nPad; jb += block) {
    for (let i = jb; i < nPad; i += 4) gram(0, nPad, rowBytes, outBase, i, i + 4, jb, Math.min(jb + block, i + 4));
  }
  const g = new Float32Array(memory.buffer, outBase, nPad * nPad);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const v = g[i * nPad + j];
      out[i * n + j] = out[j * n + i] = v > 1 ? 1 : v < -1 ? -1 : v;
    }
  }
}

// ---------------------------------------------------------------------------
// WebAssembly SIMD kernels, encoded here in the binary format (no toolchain).
// ---------------------------------------------------------------------------

let gramModuleCache: WebAssembly.Module | null | undefined;
let dotqModuleCache: WebAssembly.Module | null | undefined;

/** The compiled Gram kernel, or null when the runtime lacks WebAssembly SIMD. Built once. */
function simdGramModule(): WebAssembly.Module | null {
  if (gramModuleCache === undefined) gramModuleCache = compile(gramWasmBytes);
  return gramModuleCache;
}

/** The compiled int8 scan kernel, or null without WebAssembly SIMD. Built once. */
function simdDotqModule(): WebAssembly.Module | null {
  if (dotqModuleCache === undefined) dotqModuleCache = compile(dotqWasmBytes);
  return dotqModuleCache;
}

function compile(build: () => Uint8Array<ArrayBuffer>): WebAssembly.Module | null {
  try {
    const bytes = build();
    return WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  } catch {
    return null;
  }
}

const uleb = (v: number): number[] => {
  const o: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v) b |= 0x80;
    o.push(b);
  } while (v);
  return o;
};
const sleb = (v: number): number[] => {
  const o: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return [...o, b];
    o.push(b | 0x80);
  }
};
const get = (l: number): number[] => [0x20, l];
const set = (l: number): number[] => [0x21, l];
const tee = (l: number): number[] => [0x22, l];
const i32 = (v: number): number[] => [0x41, ...sleb(v)];
const ADD = 0x6a, MUL = 0x6c, LT_U = 0x49, EQZ = 0x45, BR_IF = 0x0d, BR = 0x0c, END = 0x0b;
const V128_LOAD = [0xfd, 0x00, 0x04, 0x00]; // align 16 (a hint), offset 0
const V128_ZERO = [0xfd, 0x0c, ...new Array(16).fill(0)];
const F32X4_ADD = [0xfd, 0xe4, 0x01], F32X4_MUL = [0xfd, 0xe6, 0x01];
const I16X8_EXTEND_LOW_I8X16_S = [0xfd, 0x87, 0x01], I16X8_EXTEND_HIGH_I8X16_S = [0xfd, 0x88, 0x01];
const I32X4_DOT_I16X8_S = [0xfd, 0xba, 0x01], I32X4_ADD = [0xfd, 0xae, 0x01];
const F32_ADD = 0x92;
const f32Store = (offset: number): number[] => [0x38, 0x02, ...uleb(offset)];
const i32Store = (offset: number): number[] => [0x36, 0x02, ...uleb(offset)];
/** `for (v = from; v < to; v += step) body` as block/loop. */
// deno-fmt-ignore
const forLoop = (v: number, from: number[], to: number[], step: number, body: number[]): number[] => [
  ...from, ...set(v), 0x02, 0x40, 0x03, 0x40,
  ...get(v), ...to, LT_U, EQZ, BR_IF, 1,
  ...body,
  ...get(v), ...i32(step), ADD, ...set(v), BR, 0, END, END,
];
/** Sum of the four lanes of v128 local `a`: (lane0 + lane1) + (lane2 + lane3), as f32 or i32. */
const hsum = (a: number, float: boolean): number[] => {
  const lane = (l: number) => [...get(a), 0xfd, float ? 0x1f : 0x1b, l];
  const add = float ? F32_ADD : ADD;
  return [...lane(0), ...lane(1), add, ...lane(2), ...lane(3), add, add];
};

/** A module importing `env.memory` and exporting one function of `params` i32 parameters. */
function wasmModule(
  fn: string,
  params: number,
  i32Locals: number,
  v128Locals: number,
  body: number[],
): Uint8Array<ArrayBuffer> {
  const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
  const name = (s: string): number[] => [...uleb(s.length), ...new TextEncoder().encode(s)];
  const section = (id: number, content: number[]): number[] => [id, ...uleb(content.length), ...content];
  const code = [...vec([[i32Locals, 0x7f], [v128Locals, 0x7b]]), ...body, END];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // magic, version 1
    ...section(1, vec([[0x60, ...vec(new Array(params).fill([0x7f])), 0x00]])), // type: (params × i32) → ()
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, 0x01]])), // import memory, min 1 page
    ...section(3, vec([[0x00]])), // one function of type 0
    ...section(7, vec([[...name(fn), 0x00, 0x00]])), // export it
    ...section(10, vec([[...uleb(code.length), ...code]])),
  ]);
}

/**
 * The Gram kernel:
 *
 * ```
 * gram(base, nPad, rowBytes, out, i0, i1, j0, j1):
 *   for i in [i0, i1) step 4:            ; pi_r = base + (i+r)·rowBytes, r < 4
 *     for j in [j0, j1) step 2:          ; pj_c = base + (j+c)·rowBytes, c < 2
 *       acc[r][c] = f32x4(0)
 *       for k in [0, rowBytes) step 16:  acc[r][c] += load(pi_r + k) * load(pj_c + k)
 *       out[(i+r)·nPad + j+c] = (lane0 + lane1) + (lane2 + lane3) of acc[r][c]
 * ```
 */
function gramWasmBytes(): Uint8Array<ArrayBuffer> {
  // Locals: 8 i32 params, 10 i32 scratch, 11 v128.
  const [base, nPad, rowBytes, out, i0, i1, j0, j1] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [i, j, k, pi0, pi1, pi2, pi3, pj0, pj1, o] = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17];
  const acc = [[18, 19], [20, 21], [22, 23], [24, 25]];
  const [b0, b1, xr] = [26, 27, 28];
  // deno-fmt-ignore
  const kBody = [
    ...get(pj0), ...get(k), ADD, ...V128_LOAD, ...set(b0),
    ...get(pj1), ...get(k), ADD, ...V128_LOAD, ...set(b1),
    ...[pi0, pi1, pi2, pi3].flatMap((p, r) => [
      ...get(p), ...get(k), ADD, ...V128_LOAD, ...set(xr),
      ...[b0, b1].flatMap((b, c) => [...get(acc[r][c]), ...get(xr), ...get(b), ...F32X4_MUL, ...F32X4_ADD, ...set(acc[r][c])]),
    ]),
  ];
  // deno-fmt-ignore
  const jBody = [
    ...get(base), ...get(j), ...get(rowBytes), MUL, ADD, ...tee(pj0), ...get(rowBytes), ADD, ...set(pj1),
    ...acc.flat().flatMap((a) => [...V128_ZERO, ...set(a)]),
    ...forLoop(k, i32(0), get(rowBytes), 16, kBody),
    // o = out + (i·nPad + j)·4
    ...get(out), ...get(i), ...get(nPad), MUL, ...get(j), ADD, ...i32(4), MUL, ADD, ...set(o),
    ...acc.flatMap((pair, r) =>
      pair.flatMap((a, c) => [...get(o), ...get(nPad), ...i32(r * 4), MUL, ADD, ...hsum(a, true), ...f32Store(c * 4)])
    ),
  ];
  // deno-fmt-ignore
  const iBody = [
    ...get(base), ...get(i), ...get(rowBytes), MUL, ADD, ...tee(pi0),
    ...get(rowBytes), ADD, ...tee(pi1), ...get(rowBytes), ADD, ...tee(pi2), ...get(rowBytes), ADD, ...set(pi3),
    ...forLoop(j, get(j0), get(j1), 2, jBody),
  ];
  return wasmModule("gram", 8, 10, 11, forLoop(i, get(i0), get(i1), 4, iBody));
}

/**
 * The int8 scan kernel: exact integer dot products of int8 rows with an int16 query
 * (int8-valued), four rows per pass:
 *
 * ```
 * dotq(rows, nPad, rowBytes, q, out):
 *   for i in [0, nPad) step 4:           ; p_r = rows + (i+r)·rowBytes
 *     acc[r] = i32x4(0)
 *     for k in [0, rowBytes) step 16:    ; 16 int8 of each row against 16 int16 of q
 *       acc[r] += dot(extend_low(load(p_r + k)), load(q + 2k)) + dot(extend_high(...), load(q + 2k + 16))
 *     out[i + r] = (lane0 + lane1) + (lane2 + lane3) of acc[r]   (int32)
 * ```
 */
function dotqWasmBytes(): Uint8Array<ArrayBuffer> {
  const [rows, nPad, rowBytes, q, out] = [0, 1, 2, 3, 4];
  const [i, k, p0, p1, p2, p3, qk] = [5, 6, 7, 8, 9, 10, 11];
  const acc = [12, 13, 14, 15];
  const [qlo, qhi, x] = [16, 17, 18];
  // deno-fmt-ignore
  const kBody = [
    ...get(q), ...get(k), ...get(k), ADD, ADD, ...tee(qk), ...V128_LOAD, ...set(qlo),
    ...get(qk), ...i32(16), ADD, ...V128_LOAD, ...set(qhi),
    ...[p0, p1, p2, p3].flatMap((p, r) => [
      ...get(p), ...get(k), ADD, ...V128_LOAD, ...set(x),
      ...get(acc[r]),
      ...get(x), ...I16X8_EXTEND_LOW_I8X16_S, ...get(qlo), ...I32X4_DOT_I16X8_S, ...I32X4_ADD,
      ...get(x), ...I16X8_EXTEND_HIGH_I8X16_S, ...get(qhi), ...I32X4_DOT_I16X8_S, ...I32X4_ADD,
      ...set(acc[r]),
    ]),
  ];
  // deno-fmt-ignore
  const iBody = [
    ...get(rows), ...get(i), ...get(rowBytes), MUL, ADD, ...tee(p0),
    ...get(rowBytes), ADD, ...tee(p1), ...get(rowBytes), ADD, ...tee(p2), ...get(rowBytes), ADD, ...set(p3),
    ...acc.flatMap((a) => [...V128_ZERO, ...set(a)]),
    ...forLoop(k, i32(0), get(rowBytes), 16, kBody),
    ...acc.flatMap((a, r) => [...get(out), ...get(i), ...i32(4), MUL, ADD, ...hsum(a, false), ...i32Store(r * 4)]),
  ];
  return wasmModule("dotq", 5, 7, 7, forLoop(i, i32(0), get(nPad), 4, iBody));
}
