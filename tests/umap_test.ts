/**
 * Unit tests of lib/umap.ts: seeded UMAP over synthetic clusters, checked by what UMAP promises
 * (neighbourhoods kept), by repeatability, and by its errors.
 */
import { assert, assertEquals, assertGreaterOrEqual, assertNotEquals, assertThrows } from "@std/assert";
import { createPrng } from "../lib/prng.ts";
import type { Tensor } from "../lib/types.ts";
import { umap } from "../lib/umap.ts";

/** `k` Gaussian clusters of `perCluster` points in `d` dims; point `i` is in cluster `i % k`. */
function clusters(k: number, perCluster: number, d: number, spread: number, seed: number): Tensor {
  const p = createPrng(seed);
  const centres = Array.from({ length: k }, () => Array.from({ length: d }, () => p.normal(0, 1)));
  const n = k * perCluster, data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) data[i * d + j] = centres[i % k][j] + p.normal(0, spread);
  return { data, dims: [n, d] };
}

/** Share of points whose nearest other point (Euclidean, in `points`) is in the same cluster. */
function sameClusterNeighbourShare(points: Tensor, k: number): number {
  const [n, c] = points.dims, x = points.data;
  let same = 0;
  for (let i = 0; i < n; i++) {
    let best = -1, bestD = Infinity;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let dd = 0;
      for (let t = 0; t < c; t++) dd += (x[i * c + t] - x[j * c + t]) ** 2;
      if (dd < bestD) [best, bestD] = [j, dd];
    }
    if (best % k === i % k) same++;
  }
  return same / n;
}

Deno.test("umap() keeps well-separated clusters apart: every point's nearest neighbour is in its own cluster", () => {
  const input = clusters(3, 20, 50, 0.3, 5);
  // The input itself passes this check; a map that scrambled neighbourhoods would not.
  assertEquals(sameClusterNeighbourShare(input, 3), 1);
  for (const metric of ["cosine", "euclidean"] as const) {
    const { points } = umap(input, { seed: 1, metric });
    assertEquals(points.dims, [60, 2]);
    assert(points.data.every(Number.isFinite));
    assertEquals(sameClusterNeighbourShare(points, 3), 1, metric);
  }
});

Deno.test("umap() with 3 components, few neighbours and small inputs", () => {
  const input = clusters(2, 6, 8, 0.1, 2);
  const three = umap(input, { components: 3, neighbours: 4, seed: 2 });
  assertEquals(three.points.dims, [12, 3]);
  assertGreaterOrEqual(sameClusterNeighbourShare(three.points, 2), 11 / 12);
  assertEquals(three.neighbours, 4);
  const tiny = umap({ data: input.data.subarray(0, 3 * 8), dims: [3, 8] });
  assertEquals(tiny.points.dims, [3, 2]);
  assertEquals(tiny.neighbours, 2, "default neighbours is min(15, n - 1)");
  assert(tiny.points.data.every(Number.isFinite));
});

Deno.test("umap() is repeatable: the same seed gives the same bits, another seed other points, and Math.random is never called", () => {
  const input = clusters(3, 8, 16, 0.3, 9);
  const random = Math.random;
  Math.random = () => {
    throw new Error("Math.random was called");
  };
  try {
    const a = umap(input, { seed: 11 }), b = umap(input, { seed: 11 }), c = umap(input, { seed: 12 });
    assertEquals(a.points.data, b.points.data);
    assertNotEquals(Array.from(a.points.data), Array.from(c.points.data));
  } finally {
    Math.random = random;
  }
});

Deno.test("umap() rejects too few rows, bad values and options out of range with messages that say the range", () => {
  const input = clusters(2, 5, 4, 0.1, 1);
  const nan = { data: input.data.slice(), dims: input.dims };
  nan.data[7] = NaN;
  const cases: [() => unknown, ErrorConstructor, string][] = [
    [() => umap({ data: new Float32Array(8), dims: [2, 4] }), RangeError, "at least 3 vectors"],
    [() => umap(nan), RangeError, "row 1 has a NaN"],
    [() => umap(input, { neighbours: 1 }), RangeError, "neighbours must be an integer in [2, 9]"],
    [() => umap(input, { neighbours: 10 }), RangeError, "neighbours must be an integer in [2, 9]"],
    [() => umap(input, { components: 0 }), RangeError, "components must be an integer in [1, 9]"],
    [() => umap(input, { minDist: 2 }), RangeError, "minDist must be in [0, spread = 1]"],
    [() => umap(input, { spread: 0 }), RangeError, "spread must be > 0"],
    [() => umap(input, { metric: "manhattan" as "cosine" }), RangeError, 'metric must be "cosine" or "euclidean"'],
    [() => umap(input, { epochs: 0 }), RangeError, "epochs must be a positive integer"],
    [() => umap(input, { seed: 0.5 }), RangeError, "seed must be an integer"],
    [() => umap({ data: new Float32Array(10), dims: [3, 4] }), TypeError, "do not match 10 values"],
    [() => umap({ data: [1, 2, 3] as unknown as Float32Array, dims: [3, 1] }), TypeError, "[n, d] tensor"],
  ];
  for (const [f, type, message] of cases) assertThrows(f, type, message);
});
