/**
 * Embeddings as vectors: cosine similarity, nearest neighbours and 2-D
 * projections (PCA) over rows of `Float32Array` tensors, and the embeddings of
 * a loaded model they are usually applied to.
 *
 * Model level (a `Model` from `load.ts`; `tokenizerOnly` is enough for decoders):
 * - {@linkcode tokenEmbeddings}: static rows of the input embedding matrix
 *   `embed.tokens` for words or token ids (multi-token words averaged);
 * - {@linkcode contextualEmbeddings}, {@linkcode wordInContext}: hidden states
 *   of a sentence at a chosen block (reference forward pass for GPT-2/LLaMA,
 *   transformers.js `last_hidden_state` for encoders), pooled per sentence or
 *   taken at one word;
 * - {@linkcode neighboursInVocabulary}: the nearest tokens of the whole vocabulary;
 * - {@linkcode embeddingMap}: a PCA scatter of word groups.
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
import { forward } from "./forward.ts";
import type { Model } from "./load.ts";
import { type Figure, scatter } from "./plot.ts";
import { tokenize, type TokenizeResult } from "./tokenize.ts";
import type { ArchConfig, ParamMap, Tensor } from "./types.ts";
import { umap } from "./umap.ts";
import { loadParams, readParameter } from "./weights.ts";
import {
  compileWasm,
  f32Store,
  forLoop,
  get,
  hsum,
  i32,
  i32Store,
  OP,
  set,
  SIMD,
  tee,
  v128Load,
  wasmModule,
} from "./_wasm.ts";

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
// Embeddings of a model: token rows, contextual states, vocabulary neighbours, maps
// ---------------------------------------------------------------------------

/**
 * What the model-level functions below read from a model. The {@linkcode Model}
 * handle from `load.ts` satisfies it (with or without `tokenizerOnly`).
 *
 * @example
 * ```ts
 * import type { EmbeddingModel } from "./embed.ts";
 * import { loadModel } from "./load.ts";
 * const model: EmbeddingModel = await loadModel(undefined, { tokenizerOnly: true });
 * console.log(model.arch?.dModel);
 * ```
 */
export interface EmbeddingModel {
  /** transformers.js tokenizer. */
  tokenizer: Model["tokenizer"];
  /** `config.json` as parsed. */
  config: Record<string, unknown>;
  /** The decoder architecture (GPT-2 or LLaMA family); absent for encoders such as BERT. */
  arch?: ArchConfig;
  /** transformers.js model; only encoder contextual embeddings need it (`null` with `tokenizerOnly`). */
  model?: Model["model"];
  /** The ONNX file whose initializers hold the weights. */
  onnxPath: string;
}

/**
 * What to do with a word the vocabulary cannot represent (see {@linkcode tokenEmbeddings}).
 *
 * @example
 * ```ts
 * import type { UnrepresentablePolicy } from "./embed.ts";
 * const p: UnrepresentablePolicy = "skip";
 * console.log(p);
 * ```
 */
export type UnrepresentablePolicy = "throw" | "skip";

/**
 * Options for {@linkcode tokenEmbeddings}.
 *
 * @example
 * ```ts
 * import type { TokenEmbeddingsOptions } from "./embed.ts";
 * const o: TokenEmbeddingsOptions = { leadingSpace: false, unrepresentable: "skip" };
 * console.log(o.leadingSpace);
 * ```
 */
export interface TokenEmbeddingsOptions {
  /**
   * Prepend a space to each word (`"table"` → `" table"`) before tokenizing, so that it is
   * looked up as the token a word gets in the middle of a sentence. Default: `true` for
   * byte-level BPE tokenizers (GPT-2 style, whose vocabulary spells the space as `Ġ`), where
   * `" table"` and `"table"` are different tokens and the spaced one is the ordinary word;
   * `false` otherwise (WordPiece ignores spaces; SentencePiece/Metaspace adds its own `▁`).
   * A word that already starts with whitespace is left as it is.
   */
  leadingSpace?: boolean;
  /**
   * A word the vocabulary cannot represent: an empty or whitespace-only string, text that
   * tokenizes to nothing, or text that tokenizes to the unknown token (WordPiece `[UNK]`).
   * `"throw"` (default): a `RangeError` naming the word. `"skip"`: leave it out of `vectors`
   * and `words`, and list it in `skipped` and `warnings`. If every word is skipped it throws.
   */
  unrepresentable?: UnrepresentablePolicy;
  /** The `[vocab, d_model]` input embedding matrix. Default: `embed.tokens` read from `model.onnxPath`, once per model object. */
  matrix?: Tensor;
}

/**
 * One word of a {@linkcode TokenEmbeddingsResult}.
 *
 * @example
 * ```ts
 * import type { EmbeddedWord } from "./embed.ts";
 * const w: EmbeddedWord = { index: 0, word: "astronaut", text: " astronaut", ids: [7105, 1680], tokens: ["Ġastron", "aut"], averaged: true };
 * console.log(w.averaged);
 * ```
 */
export interface EmbeddedWord {
  /** Position of the word in the input list. */
  index: number;
  /** The word as given (for a token id: its decoded text). */
  word: string;
  /** The text that was tokenized (the word, with the leading space when one was added). */
  text: string;
  /** Token ids of `text`, without special tokens. */
  ids: number[];
  /** Token strings as the vocabulary spells them (`"Ġtable"`). */
  tokens: string[];
  /** Whether the word took several tokens and its vector is their mean. */
  averaged: boolean;
}

/**
 * Result of {@linkcode tokenEmbeddings}.
 *
 * @example
 * ```ts
 * import type { TokenEmbeddingsResult } from "./embed.ts";
 * function rows(r: TokenEmbeddingsResult): number { return r.vectors.dims[0]; }
 * console.log(typeof rows);
 * ```
 */
export interface TokenEmbeddingsResult {
  /** `[words, d_model]`: one row of the input embedding matrix per word (the mean of its rows if it took several). */
  vectors: Tensor;
  /** One entry per row of `vectors`, in input order. */
  words: EmbeddedWord[];
  /** Whether a leading space was added to words that did not start with whitespace. */
  leadingSpace: boolean;
  /** Words left out under `unrepresentable: "skip"`, with why. */
  skipped: { index: number; word: string; reason: string }[];
  /** Skipped words and tokenizer remarks (e.g. a special token typed in a word). */
  warnings: string[];
}

/**
 * Rows of a model's input embedding matrix (`embed.tokens`, `[vocab, d_model]`)
 * for words or token ids: the static, context-free vectors a forward pass
 * starts from. A word that splits into several tokens gets the mean of their
 * rows (accumulated in float64), and its entry says `averaged: true`. A number
 * is a token id and gives exactly that row.
 *
 * Byte-level BPE (GPT-2) has two tokens for most words, `"table"` (start of
 * text) and `" table"` (inside a sentence); by default a space is prepended
 * for such tokenizers, see {@linkcode TokenEmbeddingsOptions.leadingSpace}.
 * A word the vocabulary cannot represent throws by default, or is skipped and
 * reported, see {@linkcode TokenEmbeddingsOptions.unrepresentable}.
 *
 * @param model a loaded model (`loadModel(id, { tokenizerOnly: true })` is enough)
 * @param words words (strings) or token ids (integers)
 * @param options leading-space convention, unrepresentable-word policy, a preloaded matrix
 * @returns `[n, d_model]` vectors and, per word, its ids, tokens and whether it was averaged
 * @throws {RangeError} for an unrepresentable word (by default), an id outside the vocabulary, an empty list
 * @throws {TypeError} for a word that is neither a string nor a number
 * @example
 * ```ts
 * import { tokenEmbeddings } from "./embed.ts";
 * import { loadModel } from "./load.ts";
 * const model = await loadModel(undefined, { tokenizerOnly: true });
 * const { vectors, words } = await tokenEmbeddings(model, ["table", "astronaut"]);
 * console.log(vectors.dims, words.map((w) => [w.tokens, w.averaged])); // [2, d_model] ...
 * ```
 */
export async function tokenEmbeddings(
  model: EmbeddingModel,
  words: readonly (string | number)[],
  options: TokenEmbeddingsOptions = {},
): Promise<TokenEmbeddingsResult> {
  const who = "tokenEmbeddings()";
  checkModel(model, who);
  if (!Array.isArray(words) || words.length === 0) {
    throw new RangeError(`${who}: words must be a non-empty array of words or token ids`);
  }
  const policy = options.unrepresentable ?? "throw";
  if (policy !== "throw" && policy !== "skip") {
    throw new RangeError(`${who}: unrepresentable must be "throw" or "skip", got ${JSON.stringify(policy)}`);
  }
  const info = tokenizerInfo(model.tokenizer);
  const leadingSpace = resolveLeadingSpace(options.leadingSpace, info, who);
  const matrix = options.matrix ?? await embeddingMatrixOf(model);
  const [vocab, d] = matrixDims(matrix, who, "the embedding matrix");
  const out: EmbeddedWord[] = [];
  const skipped: TokenEmbeddingsResult["skipped"] = [];
  const warnings: string[] = [];
  words.forEach((w, index) => {
    if (typeof w === "number") {
      if (!Number.isInteger(w) || w < 0 || w >= vocab) {
        throw new RangeError(`${who}: token id ${w} (word ${index}) is not an integer in [0, ${vocab})`);
      }
      const piece = decodeOne(model.tokenizer, w);
      out.push({ index, word: piece, text: piece, ids: [w], tokens: [info.idToToken[w] ?? piece], averaged: false });
      return;
    }
    if (typeof w !== "string") {
      throw new TypeError(`${who}: word ${index} must be a string or a token id, got ${typeof w}`);
    }
    const found = lookUpWord(model.tokenizer, info, w, leadingSpace);
    if ("reason" in found) {
      if (policy === "throw") {
        throw new RangeError(
          `${who}: word ${index} (${JSON.stringify(w)}) is not representable: ${found.reason}; ` +
            `remove it, or pass { unrepresentable: "skip" } to leave it out with a warning`,
        );
      }
      skipped.push({ index, word: w, reason: found.reason });
      warnings.push(`skipped word ${index} (${JSON.stringify(w)}): ${found.reason}`);
      return;
    }
    for (const warning of found.warnings) warnings.push(`word ${index} (${JSON.stringify(w)}): ${warning}`);
    for (const id of found.ids) {
      if (id >= vocab) {
        throw new RangeError(
          `${who}: word ${JSON.stringify(w)} has token id ${id}, but the embedding matrix has only ${vocab} rows; ` +
            `the tokenizer and the matrix belong to different models`,
        );
      }
    }
    out.push({
      index,
      word: w,
      text: found.text,
      ids: found.ids,
      tokens: found.tokens,
      averaged: found.ids.length > 1,
    });
  });
  if (out.length === 0) {
    throw new RangeError(
      `${who}: no word is representable by the vocabulary (${skipped.map((s) => s.reason).join("; ")})`,
    );
  }
  const data = new Float32Array(out.length * d);
  const acc = new Float64Array(d);
  out.forEach((w, row) => {
    acc.fill(0);
    for (const id of w.ids) for (let k = 0; k < d; k++) acc[k] += matrix.data[id * d + k];
    for (let k = 0; k < d; k++) data[row * d + k] = acc[k] / w.ids.length;
  });
  return { vectors: { data, dims: [out.length, d] }, words: out, leadingSpace, skipped, warnings };
}

/**
 * How {@linkcode contextualEmbeddings} pools a sentence's token states into one vector.
 *
 * @example
 * ```ts
 * import type { Pooling } from "./embed.ts";
 * const p: Pooling = "last";
 * console.log(p);
 * ```
 */
export type Pooling = "mean" | "last" | "cls";

/**
 * Options for {@linkcode contextualEmbeddings} and {@linkcode wordInContext}: which activation to read.
 *
 * @example
 * ```ts
 * import type { HiddenStateOptions } from "./embed.ts";
 * const o: HiddenStateOptions = { layer: -1, finalNorm: false }; // the raw residual stream after the last block
 * console.log(o.layer);
 * ```
 */
export interface HiddenStateOptions {
  /**
   * Which block's output: an integer in `[0, nLayer)`, or negative from the end (`-1` is the
   * last block). Default: the last block. Decoders (reference forward) return
   * `blocks.{layer}.resid_post`, the residual stream after block `layer` (Hugging Face
   * `hidden_states[layer + 1]`), except that for the last block the final norm is applied
   * (`norm_f.normalized`, which is Hugging Face's `last_hidden_state` and what the head reads),
   * unless `finalNorm: false`. Encoders return transformers.js `last_hidden_state` and
   * accept only the last layer.
   */
  layer?: number;
  /** For the last decoder block: apply the final norm (default `true`); `false` gives the raw residual stream. */
  finalNorm?: boolean;
  /** Decoder parameters, as `loadParams(model)` gives them. Default: loaded from `model.onnxPath` once per model object. */
  params?: ParamMap;
}

/**
 * Options for {@linkcode contextualEmbeddings}.
 *
 * @example
 * ```ts
 * import type { ContextualEmbeddingsOptions } from "./embed.ts";
 * const o: ContextualEmbeddingsOptions = { layer: 1, pool: "mean", normalize: true };
 * console.log(o.pool);
 * ```
 */
export interface ContextualEmbeddingsOptions extends HiddenStateOptions {
  /**
   * `"mean"` (default): mean over the tokens that come from the text (special tokens the
   * tokenizer inserts, BOS/`[CLS]`/`[SEP]`, are left out). `"last"`: the last token from the text
   * (in a causal decoder the only one that has seen the whole sentence). `"cls"`: the inserted
   * first token (`[CLS]`) of an encoder; decoders reject it, since their first position sees only itself.
   */
  pool?: Pooling;
  /** Scale each pooled vector to unit length. Default `false`. */
  normalize?: boolean;
}

/**
 * One sentence of a {@linkcode ContextualEmbeddingsResult}.
 *
 * @example
 * ```ts
 * import type { EmbeddedSentence } from "./embed.ts";
 * const s: EmbeddedSentence = { sentence: "A dog ran.", ids: [32, 4067, 2287, 13], tokens: ["A", "Ġdog", "Ġran", "."], positions: [0, 1, 2, 3], addedBos: false };
 * console.log(s.positions.length);
 * ```
 */
export interface EmbeddedSentence {
  /** The sentence as given. */
  sentence: string;
  /** Token ids the model read (special tokens the tokenizer inserts included). */
  ids: number[];
  /** Token strings. */
  tokens: string[];
  /** Positions (indices into `ids`) whose states were pooled. */
  positions: number[];
  /** Whether the tokenizer inserted a BOS/`[CLS]` token at the start (it shifts every position). */
  addedBos: boolean;
}

/**
 * Result of {@linkcode contextualEmbeddings}.
 *
 * @example
 * ```ts
 * import type { ContextualEmbeddingsResult } from "./embed.ts";
 * function describe(r: ContextualEmbeddingsResult): string { return `${r.pool} of ${r.source}`; }
 * console.log(typeof describe);
 * ```
 */
export interface ContextualEmbeddingsResult {
  /** `[sentences, d_model]` pooled hidden states, one row per sentence. */
  vectors: Tensor;
  /** Per sentence: tokens and the pooled positions. */
  sentences: EmbeddedSentence[];
  /** The block index used, in `[0, nLayer)`. */
  layer: number;
  /** The activation read: `"norm_f.normalized"`, `"blocks.{k}.resid_post"` or `"last_hidden_state"` (encoders). */
  source: string;
  /** The pooling applied. */
  pool: Pooling;
  /** Whether rows were scaled to unit length. */
  normalized: boolean;
  /** Tokenizer remarks, per sentence. */
  warnings: string[];
}

/**
 * Contextual embeddings: the hidden states a model computes for each sentence,
 * pooled to one vector per sentence. Unlike {@linkcode tokenEmbeddings}, the
 * same word gets a different vector in a different sentence.
 *
 * Decoders (GPT-2 and LLaMA families, `model.arch` set) run the readable
 * reference forward pass (`loadParams` + `forward(..., { cache: true })`) and
 * read the activation named in {@linkcode HiddenStateOptions.layer}; this works
 * with a `tokenizerOnly` model. Encoders (BERT style, no `model.arch`) run the
 * transformers.js model and read `last_hidden_state` (`[1, pos, hidden]`), so
 * they need a model loaded without `tokenizerOnly` (tested against a float64
 * BERT written from the formulas, on a BERT export made by the tests, in
 * `tests/embed_encoder_test.ts`).
 *
 * @param model a loaded model
 * @param sentences one or more non-empty texts
 * @param options layer, pooling, normalisation, preloaded parameters
 * @returns `[sentences, d_model]` vectors, the positions pooled and what activation they came from
 * @throws {RangeError} for an empty sentence, a layer out of range, `pool: "cls"` on a decoder or
 *   on a sequence without an inserted first token, a sentence longer than the context
 * @throws {TypeError} for an encoder loaded with `tokenizerOnly`
 * @example
 * ```ts
 * import { contextualEmbeddings, cosineSimilarityMatrix } from "./embed.ts";
 * import { loadModel } from "./load.ts";
 * const model = await loadModel(undefined, { tokenizerOnly: true });
 * const { vectors, source } = await contextualEmbeddings(model, ["The cat sat.", "A dog ran."], { pool: "mean" });
 * console.log(vectors.dims, source, cosineSimilarityMatrix(vectors).data[1]); // [2, d_model] "norm_f.normalized" ...
 * ```
 */
export async function contextualEmbeddings(
  model: EmbeddingModel,
  sentences: readonly string[],
  options: ContextualEmbeddingsOptions = {},
): Promise<ContextualEmbeddingsResult> {
  const who = "contextualEmbeddings()";
  checkModel(model, who);
  if (!Array.isArray(sentences) || sentences.length === 0) {
    throw new RangeError(`${who}: sentences must be a non-empty array of strings`);
  }
  const pool = options.pool ?? "mean";
  if (pool !== "mean" && pool !== "last" && pool !== "cls") {
    throw new RangeError(`${who}: pool must be "mean", "last" or "cls", got ${JSON.stringify(pool)}`);
  }
  if (pool === "cls" && model.arch) {
    throw new RangeError(
      `${who}: pool "cls" reads the first position, which in a causal decoder (${model.arch.family}) has seen ` +
        `only itself, so every sentence would get the same vector; use "mean" or "last"`,
    );
  }
  const normalize = options.normalize ?? false;
  const rows: Float32Array[] = [];
  const out: EmbeddedSentence[] = [];
  const warnings: string[] = [];
  let layer = 0, source = "";
  for (const [i, sentence] of sentences.entries()) {
    if (typeof sentence !== "string") {
      throw new TypeError(`${who}: sentence ${i} must be a string, got ${typeof sentence}`);
    }
    if (sentence.trim().length === 0) {
      throw new RangeError(`${who}: sentence ${i} is empty; give each sentence at least one visible character`);
    }
    const h = await hiddenStates(model, sentence, options, who);
    layer = h.layer;
    source = h.source;
    for (const w of h.tok.warnings) warnings.push(`sentence ${i}: ${w}`);
    const text = h.tok.inserted.flatMap((ins, p) => (ins ? [] : [p]));
    let positions: number[];
    if (pool === "cls") {
      if (!h.tok.addedBos) {
        throw new RangeError(
          `${who}: pool "cls" needs a tokenizer that inserts a [CLS]/BOS token first, and this one did not ` +
            `for sentence ${i}; use "mean" or "last"`,
        );
      }
      positions = [0];
    } else if (text.length === 0) {
      throw new RangeError(`${who}: sentence ${i} (${JSON.stringify(sentence)}) has no token from its text`);
    } else positions = pool === "last" ? [text[text.length - 1]] : text;
    const v = meanRows(h.states, positions);
    if (normalize) scaleToUnit(v, `${who}: sentence ${i}`);
    rows.push(v);
    out.push({ sentence, ids: h.tok.ids, tokens: h.tok.tokens, positions, addedBos: h.tok.addedBos });
  }
  return { vectors: stackRows(rows), sentences: out, layer, source, pool, normalized: normalize, warnings };
}

/**
 * Options for {@linkcode wordInContext}.
 *
 * @example
 * ```ts
 * import type { WordInContextOptions } from "./embed.ts";
 * const o: WordInContextOptions = { occurrence: 1, layer: 0 };
 * console.log(o.occurrence);
 * ```
 */
export interface WordInContextOptions extends HiddenStateOptions {
  /** Which whole-word occurrence of the word in the sentence, counting from 0. Default 0. */
  occurrence?: number;
}

/**
 * Result of {@linkcode wordInContext}.
 *
 * @example
 * ```ts
 * import type { WordInContextResult } from "./embed.ts";
 * function where(r: WordInContextResult): string { return `${r.word} at ${r.span} → tokens ${r.tokens}`; }
 * console.log(typeof where);
 * ```
 */
export interface WordInContextResult {
  /** `[d_model]`: the hidden state of the word's token, or the mean over its tokens. */
  vector: Float32Array;
  /** The word as given. */
  word: string;
  /** `[start, end)` UTF-16 offsets of the occurrence in the sentence. */
  span: [number, number];
  /** Positions (indices into the sentence's ids) whose states were averaged. */
  positions: number[];
  /** Their token ids. */
  ids: number[];
  /** Their token strings. */
  tokens: string[];
  /** Whether the word took several tokens and its vector is their mean. */
  averaged: boolean;
  /** The block index used, in `[0, nLayer)`. */
  layer: number;
  /** The activation read, as in {@linkcode ContextualEmbeddingsResult.source}. */
  source: string;
}

/**
 * The contextual vector of one word inside a sentence: the hidden state (at
 * `layer`, see {@linkcode HiddenStateOptions.layer}) of the token(s) covering
 * a whole-word occurrence of it, averaged if there are several. Compare the
 * same word in two sentences (`"bank"` of a river and of money): its static
 * embedding ({@linkcode tokenEmbeddings}) is one row for both, its contextual
 * vectors differ.
 *
 * Tokens are matched through character offsets: every token from the text
 * that overlaps the word belongs to it (so `" bank"`, whose offsets include the
 * space before the word, does).
 *
 * @param model a loaded model
 * @param sentence the sentence
 * @param word a word occurring in it as a whole word (case-sensitive)
 * @param options layer, which occurrence, preloaded parameters
 * @returns the vector, the word's span, positions and tokens
 * @throws {RangeError} when the word does not occur as a whole word (or not that often), or for a bad layer
 * @example
 * ```ts
 * import { cosineSimilarity, wordInContext } from "./embed.ts";
 * import { loadModel } from "./load.ts";
 * const model = await loadModel(undefined, { tokenizerOnly: true });
 * const river = await wordInContext(model, "We sat on the bank of the river.", "bank");
 * const money = await wordInContext(model, "She took the money to the bank.", "bank");
 * console.log(river.tokens, cosineSimilarity(river.vector, money.vector)); // a cosine below 1
 * ```
 */
export async function wordInContext(
  model: EmbeddingModel,
  sentence: string,
  word: string,
  options: WordInContextOptions = {},
): Promise<WordInContextResult> {
  const who = "wordInContext()";
  checkModel(model, who);
  if (typeof sentence !== "string" || sentence.trim().length === 0) {
    throw new RangeError(`${who}: sentence must be a non-empty string`);
  }
  if (typeof word !== "string" || word.trim().length === 0) {
    throw new RangeError(`${who}: word must be a non-empty string`);
  }
  const occurrence = options.occurrence ?? 0;
  if (!Number.isInteger(occurrence) || occurrence < 0) {
    throw new RangeError(`${who}: occurrence must be an integer >= 0, got ${occurrence}`);
  }
  const spans = wholeWordSpans(sentence, word);
  if (spans.length <= occurrence) {
    throw new RangeError(
      spans.length === 0
        ? `${who}: ${JSON.stringify(word)} does not occur as a whole word in ${JSON.stringify(sentence)}`
        : `${who}: ${JSON.stringify(word)} occurs ${spans.length} time(s) in the sentence, so occurrence ` +
          `${occurrence} does not exist; use 0 to ${spans.length - 1}`,
    );
  }
  const span = spans[occurrence];
  const h = await hiddenStates(model, sentence, options, who);
  const positions: number[] = [];
  h.tok.offsets.forEach(([s, e], p) => {
    if (h.tok.inserted[p]) return;
    const overlaps = e > s ? s < span[1] && e > span[0] : s >= span[0] && s < span[1];
    if (overlaps) positions.push(p);
  });
  if (positions.length === 0) {
    throw new RangeError(`${who}: no token of the sentence covers ${JSON.stringify(word)} (the tokenizer dropped it)`);
  }
  return {
    vector: meanRows(h.states, positions),
    word,
    span,
    positions,
    ids: positions.map((p) => h.tok.ids[p]),
    tokens: positions.map((p) => h.tok.tokens[p]),
    averaged: positions.length > 1,
    layer: h.layer,
    source: h.source,
  };
}

/**
 * Options for {@linkcode neighboursInVocabulary}.
 *
 * @example
 * ```ts
 * import type { NeighboursInVocabularyOptions } from "./embed.ts";
 * const o: NeighboursInVocabularyOptions = { k: 5 };
 * console.log(o.k);
 * ```
 */
export interface NeighboursInVocabularyOptions {
  /** How many neighbours. Default 10. */
  k?: number;
  /** Leading-space convention for the query word, as {@linkcode TokenEmbeddingsOptions.leadingSpace}. */
  leadingSpace?: boolean;
  /** The `[vocab, d_model]` input embedding matrix. Default: read from the model once per model object. */
  matrix?: Tensor;
}

/**
 * One neighbour in a {@linkcode NeighboursInVocabularyResult}.
 *
 * @example
 * ```ts
 * import type { VocabularyNeighbour } from "./embed.ts";
 * const n: VocabularyNeighbour = { id: 2886, token: "Ġchair", piece: " chair", score: 0.42 };
 * console.log(n.piece);
 * ```
 */
export interface VocabularyNeighbour {
  /** Token id. */
  id: number;
  /** Token string as the vocabulary spells it (`"Ġchair"`). */
  token: string;
  /** Its decoded text (`" chair"`). */
  piece: string;
  /** Cosine similarity of its embedding row to the query word's vector. */
  score: number;
}

/**
 * Result of {@linkcode neighboursInVocabulary}.
 *
 * @example
 * ```ts
 * import type { NeighboursInVocabularyResult } from "./embed.ts";
 * function best(r: NeighboursInVocabularyResult): string { return r.neighbours[0]?.piece ?? ""; }
 * console.log(typeof best);
 * ```
 */
export interface NeighboursInVocabularyResult {
  /** The query word, its tokens and whether its vector is a mean of several rows. */
  word: EmbeddedWord;
  /** The `k` most similar vocabulary entries, best first (the word's own tokens excluded). */
  neighbours: VocabularyNeighbour[];
}

/**
 * The tokens whose input embeddings are most cosine-similar to a word's, over
 * the whole vocabulary, excluding the word's own token(s). A multi-token word
 * is queried with the mean of its rows. The normalised vocabulary index is
 * built once per model object (or per `matrix` passed). All-zero rows (unused
 * tokens) are never returned.
 *
 * @param model a loaded model
 * @param word the query word
 * @param options `k`, leading-space convention, a preloaded matrix
 * @returns the word's tokens and its `k` nearest vocabulary entries with cosine scores
 * @throws {RangeError} for a word the vocabulary cannot represent, or a bad `k`
 * @example
 * ```ts
 * import { neighboursInVocabulary } from "./embed.ts";
 * import { loadModel } from "./load.ts";
 * const model = await loadModel(undefined, { tokenizerOnly: true });
 * const { neighbours } = await neighboursInVocabulary(model, "king", { k: 5 });
 * console.log(neighbours.map((n) => `${n.piece} ${n.score.toFixed(2)}`));
 * ```
 */
export async function neighboursInVocabulary(
  model: EmbeddingModel,
  word: string,
  options: NeighboursInVocabularyOptions = {},
): Promise<NeighboursInVocabularyResult> {
  const who = "neighboursInVocabulary()";
  const k = options.k ?? 10;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`${who}: k must be a positive integer, got ${k}`);
  if (typeof word !== "string") throw new TypeError(`${who}: word must be a string, got ${typeof word}`);
  const matrix = options.matrix ?? await embeddingMatrixOf(model);
  const { vectors, words } = await tokenEmbeddings(model, [word], { leadingSpace: options.leadingSpace, matrix });
  let index = indexCache.get(matrix);
  if (!index) {
    index = normalizeRows(matrix, { zeroVectors: "nan" });
    indexCache.set(matrix, index);
  }
  const { indices, scores } = nearestNeighbours(vectors.data, index, { k, exclude: words[0].ids });
  const info = tokenizerInfo(model.tokenizer);
  const neighbours = Array.from(indices, (id, i) => ({
    id,
    token: info.idToToken[id] ?? "",
    piece: decodeOne(model.tokenizer, id),
    score: scores[i],
  }));
  return { word: words[0], neighbours };
}

/**
 * Options for {@linkcode embeddingMap}.
 *
 * @example
 * ```ts
 * import type { EmbeddingMapOptions } from "./embed.ts";
 * const o: EmbeddingMapOptions = { layer: 2, title: "after block 2" };
 * console.log(o.layer);
 * ```
 */
export interface EmbeddingMapOptions {
  /**
   * Map contextual vectors instead of static ones: each word is run through the model on its
   * own (with the leading-space convention) and mean-pooled at this block, as
   * {@linkcode contextualEmbeddings}. Default: the static input embeddings.
   */
  layer?: number;
  /** Leading-space convention, as {@linkcode TokenEmbeddingsOptions.leadingSpace}. */
  leadingSpace?: boolean;
  /** Unrepresentable words, as {@linkcode TokenEmbeddingsOptions.unrepresentable}. Default `"throw"`. */
  unrepresentable?: UnrepresentablePolicy;
  /**
   * How to flatten the vectors to 2-D: `"pca"` (default; straight directions of most variance,
   * distances comparable) or `"umap"` ({@linkcode umap} with cosine distances: keeps each word's
   * neighbours near it, but distances between groups mean little).
   */
  projection?: "pca" | "umap";
  /** UMAP's seed (same seed, same map). Default 0. Ignored by PCA, which has no randomness. */
  seed?: number;
  /** UMAP's neighbours per word. Default `min(15, words - 1)`. */
  neighbours?: number;
  /** Figure title. Default: says which vectors are drawn. */
  title?: string;
  /** Figure height in pixels. Default 500. */
  height?: number;
  /** The `[vocab, d_model]` input embedding matrix. Default: read from the model once per model object. */
  matrix?: Tensor;
  /** Decoder parameters for `layer`. Default: loaded once per model object. */
  params?: ParamMap;
}

/**
 * A 2-D map of word groups: their vectors (static input embeddings, or
 * contextual ones with `layer`) projected on the first two principal
 * components ({@linkcode pca} over all the words together), or laid out by
 * UMAP with `projection: "umap"`, drawn as a {@linkcode scatter} with one
 * colour per group and each point labelled with its word. For PCA, axis titles
 * give the share of variance each component explains, and words close on the
 * map are close in those two directions only; the cosine matrix
 * ({@linkcode cosineSimilarityMatrix}) measures all of them.
 *
 * @param model a loaded model
 * @param groups group name → words, e.g. `{ days: ["Monday", "Tuesday"], colours: ["red", "blue"] }`
 * @param options contextual layer, leading-space convention, title
 * @returns the scatter figure (displays itself in Jupyter; `writeHtml()` from scripts)
 * @throws {RangeError} for fewer than two words in all (three for UMAP), an empty group, an
 *   unrepresentable word, or an unknown projection
 * @example
 * ```ts
 * import { embeddingMap } from "./embed.ts";
 * import { loadModel } from "./load.ts";
 * const model = await loadModel(undefined, { tokenizerOnly: true });
 * const fig = await embeddingMap(model, { furniture: ["table", "chair"], space: ["astronaut", "moon"] });
 * console.log(fig.data.length); // 2 traces, one per group
 * ```
 */
export async function embeddingMap(
  model: EmbeddingModel,
  groups: Readonly<Record<string, readonly string[]>>,
  options: EmbeddingMapOptions = {},
): Promise<Figure> {
  const who = "embeddingMap()";
  const projection = options.projection ?? "pca";
  if (projection !== "pca" && projection !== "umap") {
    throw new RangeError(`${who}: projection must be "pca" or "umap", got ${JSON.stringify(projection)}`);
  }
  if (groups === null || typeof groups !== "object" || Array.isArray(groups)) {
    throw new TypeError(`${who}: groups must be an object of group name → array of words`);
  }
  const words: string[] = [];
  const groupOf: string[] = [];
  for (const [name, list] of Object.entries(groups)) {
    if (!Array.isArray(list) || list.length === 0) {
      throw new RangeError(`${who}: group ${JSON.stringify(name)} must be a non-empty array of words`);
    }
    for (const w of list) {
      words.push(w);
      groupOf.push(name);
    }
  }
  if (words.length < 2) {
    throw new RangeError(`${who}: needs at least 2 words in all to draw a map, got ${words.length}`);
  }
  const st = await tokenEmbeddings(model, words, {
    leadingSpace: options.leadingSpace,
    unrepresentable: options.unrepresentable,
    matrix: options.matrix,
  });
  if (st.words.length < 2) {
    throw new RangeError(`${who}: only ${st.words.length} word is representable; a map needs at least 2`);
  }
  let vectors = st.vectors, what = "input embeddings";
  if (options.layer !== undefined) {
    const ctx = await contextualEmbeddings(model, st.words.map((w) => w.text), {
      layer: options.layer,
      params: options.params,
    });
    vectors = ctx.vectors;
    what = `${ctx.source}, each word on its own`;
  }
  const labels = st.words.map((w) => w.word), groupsOf = st.words.map((w) => groupOf[w.index]);
  const height = options.height ?? 500;
  if (projection === "umap") {
    if (st.words.length < 3) {
      throw new RangeError(`${who}: UMAP needs at least 3 representable words, got ${st.words.length}; use PCA`);
    }
    const { points, neighbours } = umap(vectors, { seed: options.seed, neighbours: options.neighbours });
    return scatter(points, {
      labels,
      groups: groupsOf,
      title: options.title ?? `Words laid out by UMAP (${what}; ${neighbours} neighbours, cosine)`,
      xTitle: "UMAP 1 (no units)",
      yTitle: "UMAP 2 (no units)",
      height,
    });
  }
  const { points, explainedVarianceRatio: r } = pca(vectors);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return scatter(points, {
    labels,
    groups: groupsOf,
    title: options.title ?? `Words on the first two principal components (${what})`,
    xTitle: `PC1 (${pct(r[0])} of the variance)`,
    yTitle: `PC2 (${pct(r[1])} of the variance)`,
    height,
  });
}

// Model-level caches, keyed by the model object (or matrix) so that they go with it.
const matrixCache = new WeakMap<object, Promise<Tensor>>();
const paramsCache = new WeakMap<object, Promise<ParamMap>>();
const indexCache = new WeakMap<Tensor, NormalizedRows>();

function checkModel(model: EmbeddingModel, who: string): void {
  if (model === null || typeof model !== "object" || !model.tokenizer || typeof model.tokenizer.encode !== "function") {
    throw new TypeError(`${who}: model must be a loaded model (the handle loadModel() returns), with a tokenizer`);
  }
}

/** `embed.tokens` `[vocab, d_model]`, read once per model object. */
function embeddingMatrixOf(model: EmbeddingModel): Promise<Tensor> {
  checkModel(model, "embedding matrix");
  let p = matrixCache.get(model);
  if (!p) {
    p = readParameter(model.onnxPath, "embed.tokens", { config: model.config });
    p.catch(() => matrixCache.delete(model));
    matrixCache.set(model, p);
  }
  return p;
}

/** Every decoder parameter, loaded once per model object. */
function paramsOf(model: EmbeddingModel): Promise<ParamMap> {
  let p = paramsCache.get(model);
  if (!p) {
    p = loadParams(model.onnxPath, { config: model.config });
    p.catch(() => paramsCache.delete(model));
    paramsCache.set(model, p);
  }
  return p;
}

interface TokenizerInfo {
  idToToken: string[];
  byteLevel: boolean;
  unkId: number | undefined;
  unkToken: string | undefined;
}
const tokenizerInfoCache = new WeakMap<object, TokenizerInfo>();

function tokenizerInfo(tokenizer: EmbeddingModel["tokenizer"]): TokenizerInfo {
  let info = tokenizerInfoCache.get(tokenizer);
  if (!info) {
    const idToToken: string[] = [];
    const vocab = tokenizer.get_vocab() as Map<string, number>;
    for (const [token, id] of vocab) idToToken[id] = token;
    const unk = tokenizer.unk_token_id;
    const unkId = typeof unk === "number" ? unk : undefined;
    // Byte-level BPE has a token for every byte; the space byte is spelled "Ġ" (U+0120).
    info = {
      idToToken,
      byteLevel: vocab.has("\u0120"),
      unkId,
      unkToken: unkId === undefined ? undefined : idToToken[unkId],
    };
    tokenizerInfoCache.set(tokenizer, info);
  }
  return info;
}

function resolveLeadingSpace(option: boolean | undefined, info: TokenizerInfo, who: string): boolean {
  if (option === undefined) return info.byteLevel;
  if (typeof option !== "boolean") {
    throw new TypeError(`${who}: leadingSpace must be true or false, got ${String(option)}`);
  }
  return option;
}

function decodeOne(tokenizer: EmbeddingModel["tokenizer"], id: number): string {
  return tokenizer.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
}

/** Tokenizes one word (no special tokens added), or says why the vocabulary cannot represent it. */
function lookUpWord(
  tokenizer: EmbeddingModel["tokenizer"],
  info: TokenizerInfo,
  word: string,
  leadingSpace: boolean,
): { text: string; ids: number[]; tokens: string[]; warnings: string[] } | { reason: string } {
  if (word.trim().length === 0) {
    return { reason: word.length === 0 ? "it is empty" : "it is only whitespace" };
  }
  const text = leadingSpace && !/^\s/.test(word) ? ` ${word}` : word;
  if (tokenizer.encode(text, { add_special_tokens: false }).length === 0) {
    return { reason: "it tokenizes to no token at all (the tokenizer drops its characters)" };
  }
  const r = tokenize(tokenizer, text, { addSpecialTokens: false });
  if (info.unkId !== undefined && r.ids.includes(info.unkId) && !(info.unkToken && text.includes(info.unkToken))) {
    return {
      reason: `it tokenizes to the unknown token ${
        JSON.stringify(info.unkToken ?? "")
      }, which stands for any unseen text`,
    };
  }
  return { text, ids: r.ids, tokens: r.tokens, warnings: r.warnings };
}

/** Hidden states `[pos, d_model]` of one text at the requested layer, with its tokenization. */
async function hiddenStates(
  model: EmbeddingModel,
  text: string,
  options: HiddenStateOptions,
  who: string,
): Promise<{ states: Tensor; tok: TokenizeResult; layer: number; source: string }> {
  const tok = tokenize(model.tokenizer, text);
  const finalNorm = options.finalNorm ?? true;
  if (typeof finalNorm !== "boolean") {
    throw new TypeError(`${who}: finalNorm must be true or false, got ${String(finalNorm)}`);
  }
  if (model.arch) {
    const nLayer = model.arch.nLayer;
    const layer = resolveLayer(options.layer, nLayer, who);
    const params = options.params ?? await paramsOf(model);
    const { cache } = forward(model.arch, params, tok.ids, { cache: true, present: false, logits: "last" });
    const source = layer === nLayer - 1 && finalNorm ? "norm_f.normalized" : `blocks.${layer}.resid_post`;
    return { states: cache!.get(source)!, tok, layer, source };
  }
  const call = model.model as unknown as ((inputs: unknown) => Promise<Record<string, unknown>>) | null | undefined;
  const modelType = String(model.config?.model_type ?? "unknown");
  if (typeof call !== "function") {
    throw new TypeError(
      `${who}: this ${modelType} model is not a GPT-2/LLaMA decoder, so its hidden states come from transformers.js; ` +
        `load it without tokenizerOnly (loadModel(id)) so that model.model can run`,
    );
  }
  const nLayer = Number(model.config?.num_hidden_layers ?? model.config?.n_layer ?? NaN);
  const layer = Number.isInteger(nLayer) && nLayer > 0 ? resolveLayer(options.layer, nLayer, who) : -1;
  if (options.layer !== undefined && layer !== nLayer - 1) {
    throw new RangeError(
      `${who}: layer ${options.layer} is not available for this ${modelType} encoder: transformers.js returns only ` +
        `last_hidden_state; leave layer out for the last layer`,
    );
  }
  // Positions: RoBERTa-style models start at pad_token_id + 1, so 2 of their table's rows are never used.
  const maxPos = Number(model.config?.max_position_embeddings ?? NaN) -
    (/roberta|camembert/.test(modelType) ? Number(model.config?.pad_token_id ?? 1) + 1 : 0);
  if (Number.isInteger(maxPos) && maxPos > 0 && tok.ids.length > maxPos) {
    throw new RangeError(
      `${who}: the text has ${tok.ids.length} tokens but this ${modelType} encoder has ${maxPos} positions ` +
        `(max_position_embeddings); shorten it to at most ${maxPos} tokens, special tokens included`,
    );
  }
  const inputs = (model.tokenizer as unknown as (t: string) => unknown)(text);
  const out = await call(inputs);
  const h = out?.last_hidden_state as { data?: unknown; dims?: unknown } | undefined;
  if (!h || !(h.data instanceof Float32Array) || !Array.isArray(h.dims) || h.dims.length !== 3) {
    throw new TypeError(`${who}: the ${modelType} model returned no float32 last_hidden_state [1, pos, hidden]`);
  }
  const [, pos, width] = h.dims as number[];
  if (pos !== tok.ids.length) {
    throw new RangeError(
      `${who}: last_hidden_state has ${pos} positions but the text has ${tok.ids.length} tokens; they must agree`,
    );
  }
  return { states: { data: h.data, dims: [pos, width] }, tok, layer, source: "last_hidden_state" };
}

function resolveLayer(layer: number | undefined, nLayer: number, who: string): number {
  if (layer === undefined) return nLayer - 1;
  if (typeof layer !== "number" || !Number.isInteger(layer) || layer < -nLayer || layer >= nLayer) {
    throw new RangeError(
      `${who}: layer ${String(layer)} is out of range: the model has ${nLayer} blocks, so layer must be an ` +
        `integer in [0, ${nLayer - 1}] (or -${nLayer} to -1 counting from the end)`,
    );
  }
  return layer < 0 ? nLayer + layer : layer;
}

/** Mean of the given rows of `[pos, d]` states, in float64. */
function meanRows(states: Tensor, positions: readonly number[]): Float32Array {
  const d = states.dims[1];
  const acc = new Float64Array(d);
  for (const p of positions) for (let k = 0; k < d; k++) acc[k] += states.data[p * d + k];
  return Float32Array.from(acc, (v) => v / positions.length);
}

function scaleToUnit(v: Float32Array, what: string): void {
  let s = 0;
  for (const x of v) s += x * x;
  if (!(s > 0) || !Number.isFinite(s)) throw new RangeError(`${what}: the pooled vector has no length to normalise`);
  const inv = 1 / Math.sqrt(s);
  for (let k = 0; k < v.length; k++) v[k] *= inv;
}

/** `[start, end)` spans where `word` occurs with no letter or digit right before or after it. */
function wholeWordSpans(sentence: string, word: string): [number, number][] {
  const spans: [number, number][] = [];
  // Letters of scripts written without spaces between words (Chinese, Japanese, Thai) need no boundary.
  const wordChar = (c: string) =>
    /[\p{L}\p{N}\p{M}_]/u.test(c) && !/[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}]/u.test(c);
  const chars = [...word];
  const first = chars[0], last = chars[chars.length - 1];
  for (let at = sentence.indexOf(word); at >= 0; at = sentence.indexOf(word, at + 1)) {
    const before = [...sentence.slice(Math.max(0, at - 2), at)].pop() ?? "";
    const after = [...sentence.slice(at + word.length, at + word.length + 2)][0] ?? "";
    const edgeOk = (c: string, inner: string) => c === "" || !wordChar(c) || !wordChar(inner);
    if (edgeOk(before, first) && edgeOk(after, last)) spans.push([at, at + word.length]);
  }
  return spans;
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
// WebAssembly SIMD kernels, encoded in the binary format with lib/_wasm.ts (no toolchain).
// ---------------------------------------------------------------------------

let gramModuleCache: WebAssembly.Module | null | undefined;
let dotqModuleCache: WebAssembly.Module | null | undefined;

/** The compiled Gram kernel, or null when the runtime lacks WebAssembly SIMD. Built once. */
function simdGramModule(): WebAssembly.Module | null {
  if (gramModuleCache === undefined) gramModuleCache = compileWasm(gramWasmBytes);
  return gramModuleCache;
}

/** The compiled int8 scan kernel, or null without WebAssembly SIMD. Built once. */
function simdDotqModule(): WebAssembly.Module | null {
  if (dotqModuleCache === undefined) dotqModuleCache = compileWasm(dotqWasmBytes);
  return dotqModuleCache;
}

// Instruction helpers from lib/_wasm.ts under the short names the kernels below use.
const { I32_ADD: ADD, I32_MUL: MUL } = OP;
const V128_LOAD = v128Load(); // align 16 (a hint), offset 0
const { V128_ZERO, F32X4_ADD, F32X4_MUL, I32X4_ADD, I32X4_DOT_I16X8_S } = SIMD;
const { I16X8_EXTEND_LOW_I8X16_S, I16X8_EXTEND_HIGH_I8X16_S } = SIMD;

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
  const body = forLoop(i, get(i0), get(i1), 4, iBody);
  return wasmModule([{ name: "gram", params: 8, i32Locals: 10, v128Locals: 11, body }]);
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
  const body = forLoop(i, i32(0), get(nPad), 4, iBody);
  return wasmModule([{ name: "dotq", params: 5, i32Locals: 7, v128Locals: 7, body }]);
}
