/**
 * UMAP: a 2-D (or n-D) map of vectors that keeps each one's nearest neighbours
 * near it, for word embeddings whose groups PCA's two straight directions do
 * not separate. Runs the umap-js implementation (PAIR-code, the JavaScript port
 * of McInnes et al.'s UMAP) with the kit's seeded PRNG, so the same seed gives
 * the same map on every machine.
 *
 * Read a UMAP map differently from a PCA one: neighbours are meaningful, but
 * distances between clusters and cluster sizes are not, and axes have no units.
 *
 * @example
 * ```ts
 * import { umap } from "./umap.ts";
 * // two tight groups of 6 points in 3-D
 * const rows = Array.from({ length: 12 }, (_, i) => [i < 6 ? 1 : -1, (i % 6) * 0.01, 0.5]);
 * const { points } = umap({ data: new Float32Array(rows.flat()), dims: [12, 3] }, { neighbours: 5, seed: 1 });
 * console.log(points.dims); // [12, 2]
 * ```
 *
 * @module
 */
import { UMAP } from "umap-js";
import { createPrng } from "./prng.ts";
import type { Tensor } from "./types.ts";

/** Distance between input vectors. */
export type UmapMetric = "cosine" | "euclidean";

/**
 * Options for {@linkcode umap}.
 *
 * @example
 * ```ts
 * import type { UmapOptions } from "./umap.ts";
 * const o: UmapOptions = { neighbours: 10, minDist: 0.3, seed: 7 };
 * console.log(o.seed);
 * ```
 */
export interface UmapOptions {
  /** Output dimensions. Default 2. */
  components?: number;
  /**
   * Neighbours each point tries to keep close (UMAP's `n_neighbors`): small values keep local
   * detail, large ones the overall layout. Default `min(15, n - 1)`; at least 2, below `n`.
   */
  neighbours?: number;
  /** How tightly points may pack, in `[0, spread]` (UMAP's `min_dist`). Default 0.1. */
  minDist?: number;
  /** Scale of the embedded points (UMAP's `spread`). Default 1. */
  spread?: number;
  /** Input distance: `"cosine"` (default, as the similarity heatmaps) or `"euclidean"`. */
  metric?: UmapMetric;
  /** Optimisation epochs. Default: umap-js's choice (500 for fewer than 10,000 points). */
  epochs?: number;
  /** Seed of the PRNG that drives the neighbour search, initialisation and sampling. Default 0. */
  seed?: number;
}

/**
 * Result of {@linkcode umap}.
 *
 * @example
 * ```ts
 * import type { UmapResult } from "./umap.ts";
 * function first(r: UmapResult): number[] { return Array.from(r.points.data.subarray(0, 2)); }
 * console.log(typeof first);
 * ```
 */
export interface UmapResult {
  /** `[n, components]` coordinates (no units: only neighbourhoods are meaningful). */
  points: Tensor;
  /** The settings used, defaults filled in. */
  neighbours: number;
  /** The `minDist` used. */
  minDist: number;
  /** The metric used. */
  metric: UmapMetric;
  /** The seed used. */
  seed: number;
}

function cosineDistance(a: number[], b: number[]): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  // Zero vectors have no direction: treat them as orthogonal to everything.
  return na === 0 || nb === 0 ? 1 : 1 - dot / Math.sqrt(na * nb);
}

function euclideanDistance(a: number[], b: number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

/**
 * Embeds the rows of `vectors` with UMAP (umap-js), seeded. Same input, options and seed give the
 * same points, bit for bit; umap-js never calls `Math.random` when given a generator, as here.
 *
 * @param vectors `[n, d]` tensor with at least 3 rows of finite values
 * @param options components, neighbours, minDist, spread, metric, epochs, seed
 * @returns `[n, components]` points and the settings used
 * @throws {RangeError} for fewer than 3 rows, a NaN/infinite value, or an option out of range
 *   (the message gives the valid range)
 * @throws {TypeError} when `vectors` is not a `[n, d]` tensor of a Float32Array
 * @example
 * ```ts
 * import { umap } from "./umap.ts";
 * const data = new Float32Array(Array.from({ length: 40 }, (_, i) => Math.sin(i * 1.7)));
 * const a = umap({ data, dims: [10, 4] }, { seed: 3 }), b = umap({ data, dims: [10, 4] }, { seed: 3 });
 * console.log(a.points.data.every((v, i) => v === b.points.data[i])); // true
 * ```
 */
export function umap(vectors: Tensor, options: UmapOptions = {}): UmapResult {
  const who = "umap()";
  if (
    !vectors || !(vectors.data instanceof Float32Array) || !Array.isArray(vectors.dims) || vectors.dims.length !== 2
  ) {
    throw new TypeError(`${who}: vectors must be a [n, d] tensor { data: Float32Array, dims: [n, d] }`);
  }
  const [n, d] = vectors.dims;
  if (!Number.isInteger(n) || !Number.isInteger(d) || d < 1 || vectors.data.length !== n * d) {
    throw new TypeError(
      `${who}: vectors.dims ${JSON.stringify(vectors.dims)} do not match ${vectors.data.length} values`,
    );
  }
  if (n < 3) throw new RangeError(`${who}: needs at least 3 vectors to have neighbourhoods, got ${n}; use pca() for 2`);
  const components = options.components ?? 2;
  if (!Number.isInteger(components) || components < 1 || components >= n) {
    throw new RangeError(`${who}: components must be an integer in [1, ${n - 1}], got ${components}`);
  }
  const neighbours = options.neighbours ?? Math.min(15, n - 1);
  if (!Number.isInteger(neighbours) || neighbours < 2 || neighbours >= n) {
    throw new RangeError(
      `${who}: neighbours must be an integer in [2, ${n - 1}] (below the ${n} points), got ${neighbours}`,
    );
  }
  const spread = options.spread ?? 1;
  if (!(spread > 0) || !Number.isFinite(spread)) throw new RangeError(`${who}: spread must be > 0, got ${spread}`);
  const minDist = options.minDist ?? 0.1;
  if (!(minDist >= 0 && minDist <= spread)) {
    throw new RangeError(`${who}: minDist must be in [0, spread = ${spread}], got ${minDist}`);
  }
  const metric = options.metric ?? "cosine";
  if (metric !== "cosine" && metric !== "euclidean") {
    throw new RangeError(`${who}: metric must be "cosine" or "euclidean", got ${JSON.stringify(metric)}`);
  }
  const epochs = options.epochs;
  if (epochs !== undefined && (!Number.isInteger(epochs) || epochs < 1)) {
    throw new RangeError(`${who}: epochs must be a positive integer, got ${epochs}`);
  }
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new RangeError(`${who}: seed must be an integer, got ${seed}`);

  const rows: number[][] = [];
  for (let i = 0; i < n; i++) {
    const row = Array.from(vectors.data.subarray(i * d, (i + 1) * d));
    if (!row.every(Number.isFinite)) throw new RangeError(`${who}: row ${i} has a NaN or infinite value`);
    rows.push(row);
  }
  const prng = createPrng(seed);
  const model = new UMAP({
    nComponents: components,
    nNeighbors: neighbours,
    minDist,
    spread,
    nEpochs: epochs,
    random: () => prng.next(),
    distanceFn: metric === "cosine" ? cosineDistance : euclideanDistance,
  });
  const embedded = model.fit(rows);
  const data = new Float32Array(n * components);
  embedded.forEach((p, i) => data.set(p, i * components));
  return { points: { data, dims: [n, components] }, neighbours, minDist, metric, seed };
}
