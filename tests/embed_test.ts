import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertGreater,
  assertLess,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { PreTrainedTokenizer } from "@huggingface/transformers";
import {
  contextualEmbeddings,
  type ContextualEmbeddingsOptions,
  cosineSimilarity,
  cosineSimilarityMatrix,
  embeddingMap,
  type EmbeddingModel,
  nearestNeighbours,
  neighboursInVocabulary,
  normalizeRows,
  pca,
  type Pooling,
  stackRows,
  tokenEmbeddings,
  wordInContext,
} from "../lib/embed.ts";
import { forward } from "../lib/forward.ts";
import { loadModel, type Model } from "../lib/load.ts";
import { createPrng } from "../lib/prng.ts";
import type { Tensor } from "../lib/types.ts";
import { umap } from "../lib/umap.ts";
import { TINY_GPT2, tinyModelDir, wordPieceTokenizerFiles } from "./_fixtures.ts";

function randomTensor(n: number, d: number, seed: number): Tensor {
  const prng = createPrng(seed);
  return { data: Float32Array.from({ length: n * d }, () => prng.normal()), dims: [n, d] };
}

/** Independent reference: cosine of rows i and j of raw data, all in float64. */
function refCosine(t: Tensor, i: number, j: number): number {
  const d = t.dims[1];
  let dot = 0, a = 0, b = 0;
  for (let k = 0; k < d; k++) {
    const x = t.data[i * d + k], y = t.data[j * d + k];
    dot += x * y;
    a += x * x;
    b += y * y;
  }
  return dot / Math.sqrt(a * b);
}

/** Independent reference: every row's float64 cosine to q, fully sorted. */
function refNeighbours(q: Float32Array, t: Tensor, k: number, exclude: number[] = []): { i: number; s: number }[] {
  const [n, d] = t.dims;
  let qq = 0;
  for (const v of q) qq += v * v;
  const all: { i: number; s: number }[] = [];
  for (let i = 0; i < n; i++) {
    if (exclude.includes(i)) continue;
    let dot = 0, rr = 0;
    for (let j = 0; j < d; j++) {
      dot += q[j] * t.data[i * d + j];
      rr += t.data[i * d + j] ** 2;
    }
    if (rr > 0) all.push({ i, s: dot / Math.sqrt(qq * rr) });
  }
  return all.sort((a, b) => b.s - a.s || a.i - b.i).slice(0, k);
}

const SIZES: [number, number][] = [[1, 1], [2, 3], [5, 7], [37, 33], [130, 50]];

for (const kernel of ["wasm", "js"] as const) {
  Deno.test(`cosineSimilarityMatrix() with the ${kernel} kernel matches a float64 reference within 1e-5`, () => {
    for (const [n, d] of SIZES) {
      const t = randomTensor(n, d, n * 100 + d);
      const sim = cosineSimilarityMatrix(t, { kernel });
      assertEquals(sim.dims, [n, n]);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          const want = i === j ? 1 : refCosine(t, i, j);
          assertAlmostEquals(sim.data[i * n + j], want, 1e-5, `[${n}×${d}] (${i}, ${j})`);
          assertEquals(sim.data[i * n + j], sim.data[j * n + i], "symmetric");
        }
      }
    }
  });
}

Deno.test("cosineSimilarityMatrix() crosses cache blocks correctly on wide vectors", () => {
  // d = 4096 makes a row 16 KB, so the kernel walks several column blocks.
  const t = randomTensor(150, 4096, 9);
  const sim = cosineSimilarityMatrix(t);
  for (const [i, j] of [[0, 1], [63, 64], [64, 65], [127, 128], [149, 0], [149, 148], [100, 37]]) {
    assertAlmostEquals(sim.data[i * 150 + j], refCosine(t, i, j), 1e-5, `(${i}, ${j})`);
  }
});

Deno.test("cosineSimilarityMatrix() has an exact unit diagonal and stays within [-1, 1]", () => {
  // Parallel and anti-parallel rows: cos = ±1 up to rounding, clamped.
  const v = [0.1, 0.7, -0.3, 1e-3, 5];
  const t: Tensor = { data: Float32Array.from([...v, ...v.map((x) => 3 * x), ...v.map((x) => -7 * x)]), dims: [3, 5] };
  for (const kernel of ["wasm", "js"] as const) {
    const sim = cosineSimilarityMatrix(t, { kernel });
    for (let i = 0; i < 3; i++) assertEquals(sim.data[i * 4], 1);
    for (const x of sim.data) assert(x >= -1 && x <= 1, `${x} out of range`);
    assertAlmostEquals(sim.data[1], 1, 1e-6);
    assertAlmostEquals(sim.data[2], -1, 1e-6);
  }
});

Deno.test("cosineSimilarityMatrix() of one vector is [[1]]", () => {
  assertEquals(cosineSimilarityMatrix({ data: new Float32Array([3, 4]), dims: [1, 2] }).data, new Float32Array([1]));
});

Deno.test("cosineSimilarityMatrix() rejects a zero vector by default, or marks it NaN on request", () => {
  const t: Tensor = { data: Float32Array.from([1, 0, 0, 0, 1, 1]), dims: [3, 2] };
  assertThrows(() => cosineSimilarityMatrix(t), RangeError, "row 1 is all zeros");
  const sim = cosineSimilarityMatrix(t, { zeroVectors: "nan" });
  for (let j = 0; j < 3; j++) {
    assert(Number.isNaN(sim.data[3 + j]) && Number.isNaN(sim.data[j * 3 + 1]), `row/col 1 at ${j}`);
  }
  assertEquals(sim.data[0], 1);
  assertAlmostEquals(sim.data[2], Math.SQRT1_2, 1e-6);
});

Deno.test("cosineSimilarityMatrix() rejects malformed tensors and options with typed errors", () => {
  assertThrows(() => cosineSimilarityMatrix({ data: new Float32Array(4), dims: [4] }), RangeError, "2-D");
  assertThrows(() => cosineSimilarityMatrix({ data: new Float32Array(5), dims: [2, 2] }), RangeError, "need 4");
  assertThrows(() => cosineSimilarityMatrix({ data: new Float32Array(0), dims: [0, 3] }), RangeError, "at least one");
  assertThrows(() => cosineSimilarityMatrix({ data: [1, 2], dims: [1, 2] } as unknown as Tensor), TypeError);
  assertThrows(() => cosineSimilarityMatrix({ data: Float32Array.from([1, NaN]), dims: [1, 2] }), RangeError, "NaN");
  const ok: Tensor = { data: new Float32Array([1, 2]), dims: [1, 2] };
  assertThrows(() => cosineSimilarityMatrix(ok, { kernel: "gpu" as "js" }), RangeError, "kernel");
  assertThrows(() => cosineSimilarityMatrix(ok, { zeroVectors: "skip" as "nan" }), RangeError, "zeroVectors");
});

Deno.test("cosineSimilarity() of two vectors matches the float64 formula", () => {
  const t = randomTensor(2, 64, 4);
  const a = t.data.subarray(0, 64), b = t.data.subarray(64);
  assertAlmostEquals(cosineSimilarity(a, b), refCosine(t, 0, 1), 1e-12);
  assertEquals(cosineSimilarity(new Float32Array([1, 0]), new Float32Array([0, 2])), 0);
  assertThrows(() => cosineSimilarity(new Float32Array(2), new Float32Array(3)), RangeError, "2 and 3 dims");
  assertThrows(
    () => cosineSimilarity(new Float32Array(2), new Float32Array([1, 1])),
    RangeError,
    "vector a is all zeros",
  );
  assert(Number.isNaN(cosineSimilarity(new Float32Array(2), new Float32Array([1, 1]), { zeroVectors: "nan" })));
  assertThrows(() => cosineSimilarity([1] as unknown as Float32Array, new Float32Array(1)), TypeError);
});

Deno.test("normalizeRows() returns unit rows and the original norms", () => {
  const t = randomTensor(9, 13, 2);
  const index = normalizeRows(t);
  assertEquals(index.dims, [9, 13]);
  for (let i = 0; i < 9; i++) {
    let nn = 0, on = 0;
    for (let k = 0; k < 13; k++) {
      nn += index.data[i * 13 + k] ** 2;
      on += t.data[i * 13 + k] ** 2;
    }
    assertAlmostEquals(nn, 1, 1e-6);
    assertAlmostEquals(index.norms[i], Math.sqrt(on), 1e-5 * Math.sqrt(on));
  }
  assertThrows(() => normalizeRows({ data: new Float32Array(4), dims: [2, 2] }), RangeError, "row 0 is all zeros");
  assertEquals(
    normalizeRows({ data: Float32Array.from([0, 0, 0, 2]), dims: [2, 2] }, { zeroVectors: "nan" }).zeroRows,
    [0],
  );
});

Deno.test("nearestNeighbours() on a small matrix matches a full float64 sort", () => {
  const t = randomTensor(200, 16, 7);
  const index = normalizeRows(t);
  for (const qi of [0, 17, 199]) {
    const q = t.data.slice(qi * 16, qi * 16 + 16);
    for (const [k, exclude] of [[1, []], [5, [qi]], [200, []]] as [number, number[]][]) {
      const got = nearestNeighbours(q, index, { k, exclude });
      const want = refNeighbours(q, t, k, exclude);
      assertEquals(Array.from(got.indices), want.map((w) => w.i), `query ${qi}, k ${k}`);
      want.forEach((w, r) => assertAlmostEquals(got.scores[r], w.s, 1e-6));
    }
    // A plain tensor gives the same answer as an index.
    assertEquals(nearestNeighbours(q, t, { k: 5 }), nearestNeighbours(q, index, { k: 5 }));
  }
});

Deno.test("nearestNeighbours() with a large index (int8 pre-pass) returns exactly the direct scan's neighbours", () => {
  // 3000×256 = 768k values: normalizeRows() builds the int8 copy; a plain tensor is scanned directly.
  const [n, d] = [3000, 256];
  const t = randomTensor(n, d, 21);
  const prng = createPrng(22);
  // Adversarial near-ties: rows 100..399 are the query plus tiny noise; 2990..2999 exact copies of row 2000.
  const q = t.data.slice(5 * d, 6 * d);
  for (let i = 100; i < 400; i++) for (let j = 0; j < d; j++) t.data[i * d + j] = q[j] + 1e-4 * prng.normal();
  for (let i = 2990; i < 3000; i++) t.data.copyWithin(i * d, 2000 * d, 2001 * d);
  const index = normalizeRows(t);
  for (const k of [1, 10, 50, 400]) {
    const fast = nearestNeighbours(q, index, { k, exclude: [5] });
    const direct = nearestNeighbours(q, t, { k, exclude: [5] });
    assertEquals(Array.from(fast.indices), Array.from(direct.indices), `k ${k}`);
    assertEquals(Array.from(fast.scores), Array.from(direct.scores), `k ${k}`);
    // And both agree with the float64 reference up to float32 rounding.
    const want = refNeighbours(q, t, k, [5]);
    want.forEach((w, r) => assertAlmostEquals(fast.scores[r], w.s, 2e-6));
  }
  // Exact duplicates tie: lower index first.
  const dup = nearestNeighbours(t.data.slice(2000 * d, 2001 * d), index, { k: 11 });
  assertEquals(Array.from(dup.indices), [2000, ...Array.from({ length: 10 }, (_, i) => 2990 + i)]);
  // Well-separated queries: same set as the float64 reference.
  for (const qi of [0, 1234, 2500]) {
    const qq = t.data.slice(qi * d, qi * d + d);
    const got = nearestNeighbours(qq, index, { k: 10 });
    assertEquals(Array.from(got.indices), refNeighbours(qq, t, 10).map((w) => w.i));
  }
});

Deno.test("nearestNeighbours() never returns zero rows of a 'nan' index", () => {
  const t: Tensor = { data: Float32Array.from([0, 0, 1, 0, 0, 1, 0, 0]), dims: [4, 2] };
  const got = nearestNeighbours(new Float32Array([1, 1]), t, { k: 4, zeroVectors: "nan" });
  assertEquals(Array.from(got.indices), [1, 2]);
  assertThrows(() => nearestNeighbours(new Float32Array([1, 1]), t), RangeError, "row 0 is all zeros");
});

Deno.test("nearestNeighbours() rejects bad queries and options with typed errors", () => {
  const index = normalizeRows(randomTensor(10, 4, 3));
  assertThrows(
    () => nearestNeighbours(new Float32Array(3), index),
    RangeError,
    "query has 3 dims but the matrix rows have 4",
  );
  assertThrows(() => nearestNeighbours(new Float32Array(4), index), RangeError, "query is all zeros");
  assertThrows(() => nearestNeighbours(Float32Array.from([1, NaN, 0, 0]), index), RangeError, "NaN");
  assertThrows(() => nearestNeighbours([1, 0, 0, 0] as unknown as Float32Array, index), TypeError);
  const q = new Float32Array([1, 0, 0, 0]);
  assertThrows(() => nearestNeighbours(q, index, { k: 0 }), RangeError, "k must be");
  assertThrows(() => nearestNeighbours(q, index, { k: 1.5 }), RangeError, "k must be");
  assertThrows(() => nearestNeighbours(q, index, { exclude: [10] }), RangeError, "exclude holds 10");
});

Deno.test("stackRows() stacks equal-length vectors and names a mismatched one", () => {
  const t = stackRows([new Float32Array([1, 2]), new Float32Array([3, 4]), new Float32Array([5, 6])]);
  assertEquals(t, { data: Float32Array.from([1, 2, 3, 4, 5, 6]), dims: [3, 2] });
  assertThrows(() => stackRows([new Float32Array(2), new Float32Array(3)]), RangeError, "vector 1 has 3 dims");
  assertThrows(() => stackRows([]), RangeError, "non-empty");
  assertThrows(() => stackRows([[1, 2] as unknown as Float32Array]), TypeError);
});

/** Independent reference: top eigenpairs of the sample covariance by power iteration with deflation (float64). */
function refPca(t: Tensor, c: number): { axes: Float64Array[]; variances: number[] } {
  const [n, d] = t.dims;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mean[k] += t.data[i * d + k] / n;
  const cov = Array.from({ length: d }, () => new Float64Array(d));
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < d; b++) cov[a][b] += (t.data[i * d + a] - mean[a]) * (t.data[i * d + b] - mean[b]) / (n - 1);
    }
  }
  const axes: Float64Array[] = [], variances: number[] = [];
  for (let p = 0; p < c; p++) {
    let v = Float64Array.from({ length: d }, (_, k) => 1 + k * 0.01);
    let lambda = 0;
    for (let it = 0; it < 3000; it++) {
      const w = new Float64Array(d);
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) w[a] += cov[a][b] * v[b];
      lambda = Math.hypot(...w);
      v = w.map((x) => x / lambda);
    }
    axes.push(v);
    variances.push(lambda);
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) cov[a][b] -= lambda * v[a] * v[b];
  }
  return { axes, variances };
}

function planeData(n: number, d: number, seed: number): Tensor {
  // Points on a tilted plane (spread 5 along u, 2 along v) plus small noise, off the origin.
  const prng = createPrng(seed);
  const u = Float64Array.from({ length: d }, (_, k) => Math.sin(k + 1));
  const v = Float64Array.from({ length: d }, (_, k) => Math.cos(3 * k + 2));
  const un = Math.hypot(...u);
  u.forEach((x, k) => (u[k] = x / un));
  const dot = u.reduce((s, x, k) => s + x * v[k], 0);
  v.forEach((x, k) => (v[k] = x - dot * u[k]));
  const vn = Math.hypot(...v);
  v.forEach((x, k) => (v[k] = x / vn));
  const data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const a = 5 * prng.normal(), b = 2 * prng.normal();
    for (let k = 0; k < d; k++) data[i * d + k] = 3 + a * u[k] + b * v[k] + 0.01 * prng.normal();
  }
  return { data, dims: [n, d] };
}

for (const [n, d, path] of [[12, 40, "Gram (n < d)"], [80, 6, "covariance (n > d)"]] as const) {
  Deno.test(`pca() via the ${path} matches power iteration on the covariance`, () => {
    const t = planeData(n, d, n + d);
    const got = pca(t);
    const ref = refPca(t, 2);
    assertEquals(got.points.dims, [n, 2]);
    assertEquals(got.components.dims, [2, d]);
    for (let p = 0; p < 2; p++) {
      const axis = got.components.data.subarray(p * d, (p + 1) * d);
      const cos = axis.reduce((s, x, k) => s + x * ref.axes[p][k], 0);
      assertAlmostEquals(Math.abs(cos), 1, 1e-5, `axis ${p}`);
      assertAlmostEquals(got.explainedVariance[p], ref.variances[p], 1e-6 * ref.variances[p]);
      // Sign convention: the largest-magnitude entry is positive.
      const big = axis.reduce((b, x, k) => (Math.abs(x) > Math.abs(axis[b]) ? k : b), 0);
      assertGreater(axis[big], 0);
    }
    assertGreater(got.explainedVarianceRatio[0], got.explainedVarianceRatio[1]);
    assertGreater(got.explainedVarianceRatio[0] + got.explainedVarianceRatio[1], 0.999);
    // Points are the centred rows projected on the axes, and their variance is the explained variance.
    for (let p = 0; p < 2; p++) {
      let ss = 0;
      for (let i = 0; i < n; i++) {
        let proj = 0;
        for (let k = 0; k < d; k++) proj += (t.data[i * d + k] - got.mean[k]) * got.components.data[p * d + k];
        assertAlmostEquals(got.points.data[i * 2 + p], proj, 1e-3);
        ss += got.points.data[i * 2 + p] ** 2;
      }
      assertAlmostEquals(ss / (n - 1), got.explainedVariance[p], 1e-4 * got.explainedVariance[p]);
    }
  });
}

Deno.test("pca() gives zero axes, not NaN, for directions the data does not span", () => {
  const two = pca({ data: Float32Array.from([0, 0, 0, 1, 2, 3]), dims: [2, 3] });
  assertGreater(two.explainedVariance[0], 0);
  assertEquals(two.explainedVariance[1], 0);
  assertEquals(Array.from(two.points.data.filter((_, i) => i % 2 === 1)), [0, 0]);
  const same = pca({ data: Float32Array.from([1, 2, 1, 2, 1, 2]), dims: [3, 2] });
  assertEquals(Array.from(same.points.data), [0, 0, 0, 0, 0, 0]);
  assertEquals(Array.from(same.explainedVarianceRatio), [0, 0]);
});

Deno.test("pca() rejects one vector, bad component counts and NaN", () => {
  assertThrows(() => pca({ data: new Float32Array([1, 2]), dims: [1, 2] }), RangeError, "at least 2 vectors");
  const t = randomTensor(4, 3, 1);
  assertThrows(() => pca(t, { components: 0 }), RangeError, "components");
  assertThrows(() => pca(t, { components: 4 }), RangeError, "min(n, d) = 3");
  assertThrows(() => pca({ data: Float32Array.from([1, NaN, 2, 3]), dims: [2, 2] }), RangeError, "NaN");
  assertEquals(pca(t, { components: 3 }).points.dims, [4, 3]);
});

// ---------------------------------------------------------------------------
// Model level, on a tiny exported GPT-2 (seeded random weights, byte-level tokenizer with no merges)
// and a small WordPiece tokenizer built here. References: the parameters the fixture exported and
// the reference forward pass's activation cache, combined in float64.
// ---------------------------------------------------------------------------

const tiny = await tinyModelDir(TINY_GPT2, { seed: 7 });
const tinyModel = await loadModel(tiny.dir, { tokenizerOnly: true });
globalThis.addEventListener("unload", () => Deno.removeSync(tiny.dir, { recursive: true }));
const E = tiny.params.get("embed.tokens")!; // [257, 32]
const D = TINY_GPT2.dModel;

function row(t: Tensor, i: number): number[] {
  const d = t.dims[1];
  return Array.from(t.data.subarray(i * d, (i + 1) * d));
}

function meanOf(rows: number[][]): number[] {
  return rows[0].map((_, k) => rows.reduce((s, r) => s + r[k], 0) / rows.length);
}

function assertVecClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, msg = ""): void {
  assertEquals(actual.length, expected.length, `${msg} length`);
  for (let i = 0; i < actual.length; i++) assertAlmostEquals(actual[i], expected[i], tol, `${msg} [${i}]`);
}

function encode(text: string): number[] {
  return Array.from(tinyModel.tokenizer.encode(text, { add_special_tokens: false }));
}

Deno.test("tokenEmbeddings() gives a token id's exact row and a multi-token word the float64 mean of its rows", async () => {
  const r = await tokenEmbeddings(tinyModel, [104, "ab", 256]);
  assertEquals(r.vectors.dims, [3, D]);
  assertEquals(Array.from(r.vectors.data.subarray(0, D)), row(E, 104));
  const ids = encode(" ab"); // byte-level: Ġ, a, b
  assertEquals(ids.length, 3);
  assertEquals(r.words[1].ids, ids);
  assertEquals(r.words[1].tokens, ["Ġ", "a", "b"]);
  assertEquals(r.words[1].averaged, true);
  assertEquals(r.words[0].averaged, false);
  assertVecClose(r.vectors.data.subarray(D, 2 * D), meanOf(ids.map((i) => row(E, i))), 1e-6, "mean of ' ab'");
  assertEquals(Array.from(r.vectors.data.subarray(2 * D)), row(E, 256));
  assertEquals(r.words[2].word, "<|endoftext|>");
  assertEquals(r.skipped, []);
});

Deno.test("tokenEmbeddings() prepends a space for byte-level BPE by default, and not with leadingSpace: false", async () => {
  const spaced = await tokenEmbeddings(tinyModel, ["ab", " cd"]);
  assertEquals(spaced.leadingSpace, true);
  assertEquals(spaced.words.map((w) => w.text), [" ab", " cd"], "a word already starting with a space is kept");
  const bare = await tokenEmbeddings(tinyModel, ["ab"], { leadingSpace: false });
  assertEquals(bare.leadingSpace, false);
  assertEquals(bare.words[0].ids, encode("ab"));
  assertVecClose(bare.vectors.data, meanOf(encode("ab").map((i) => row(E, i))), 1e-6);
});

Deno.test("tokenEmbeddings() rejects an unrepresentable word by default and skips it with a warning on request", async () => {
  await assertRejects(() => tokenEmbeddings(tinyModel, ["ab", ""]), RangeError, 'word 1 ("") is not representable');
  await assertRejects(() => tokenEmbeddings(tinyModel, ["  "]), RangeError, "only whitespace");
  const r = await tokenEmbeddings(tinyModel, ["", "ab", " "], { unrepresentable: "skip" });
  assertEquals(r.vectors.dims, [1, D]);
  assertEquals(r.words.map((w) => [w.index, w.word]), [[1, "ab"]]);
  assertEquals(r.skipped.map((s) => s.index), [0, 2]);
  assertEquals(r.warnings.length, 2);
  assertStringIncludes(r.warnings[0], "skipped word 0");
  await assertRejects(
    () => tokenEmbeddings(tinyModel, ["", " "], { unrepresentable: "skip" }),
    RangeError,
    "no word is representable",
  );
});

Deno.test("tokenEmbeddings() rejects ids outside the vocabulary, non-words, an empty list and bad options", async () => {
  await assertRejects(() => tokenEmbeddings(tinyModel, [257]), RangeError, "token id 257");
  await assertRejects(() => tokenEmbeddings(tinyModel, [1.5]), RangeError, "not an integer");
  await assertRejects(() => tokenEmbeddings(tinyModel, [null as unknown as string]), TypeError, "word 0");
  await assertRejects(() => tokenEmbeddings(tinyModel, []), RangeError, "non-empty array");
  await assertRejects(
    () => tokenEmbeddings(tinyModel, ["a"], { unrepresentable: "drop" as "skip" }),
    RangeError,
    'unrepresentable must be "throw" or "skip"',
  );
  await assertRejects(() => tokenEmbeddings({} as EmbeddingModel, ["a"]), TypeError, "loaded model");
});

Deno.test("contextualEmbeddings() pools the reference forward's activations: mean and last text token, any layer", async () => {
  const sentences = ["a bank", "money in the bank!"];
  const cases: [ContextualEmbeddingsOptions, string][] = [
    [{}, "norm_f.normalized"],
    [{ layer: 1 }, "norm_f.normalized"],
    [{ layer: -1, finalNorm: false }, "blocks.1.resid_post"],
    [{ layer: 0 }, "blocks.0.resid_post"],
    [{ layer: -2, pool: "last" }, "blocks.0.resid_post"],
    [{ pool: "last" }, "norm_f.normalized"],
  ];
  for (const [options, source] of cases) {
    const r = await contextualEmbeddings(tinyModel, sentences, { ...options, params: tiny.params });
    assertEquals(r.source, source, JSON.stringify(options));
    assertEquals(r.vectors.dims, [2, D]);
    sentences.forEach((s, i) => {
      const ids = encode(s);
      const { cache } = forward(TINY_GPT2, tiny.params, ids, { cache: true });
      const states = cache!.get(source)!;
      const pos = options.pool === "last" ? [ids.length - 1] : ids.map((_, p) => p);
      assertEquals(r.sentences[i].positions, pos);
      assertVecClose(
        row(r.vectors, i),
        meanOf(pos.map((p) => row(states, p))),
        1e-5,
        `${s} ${JSON.stringify(options)}`,
      );
    });
  }
});

Deno.test("contextualEmbeddings() of the last layer at the last token, times the tied embedding matrix, are the next-token logits", async () => {
  const text = "the cat sat";
  const r = await contextualEmbeddings(tinyModel, [text], { pool: "last" }); // parameters read from the ONNX file
  const h = row(r.vectors, 0);
  const { logits } = forward(TINY_GPT2, tiny.params, encode(text), { logits: "last" });
  const want = Array.from({ length: TINY_GPT2.vocabSize }, (_, v) => row(E, v).reduce((s, e, k) => s + e * h[k], 0));
  assertVecClose(logits.data, want, 1e-4, "logits");
});

Deno.test("contextualEmbeddings() with normalize: true returns unit rows in the same directions", async () => {
  const raw = await contextualEmbeddings(tinyModel, ["one", "two words"], { params: tiny.params });
  const unit = await contextualEmbeddings(tinyModel, ["one", "two words"], { params: tiny.params, normalize: true });
  assertEquals(unit.normalized, true);
  for (let i = 0; i < 2; i++) {
    const u = row(unit.vectors, i), v = row(raw.vectors, i);
    assertAlmostEquals(Math.hypot(...u), 1, 1e-6);
    const n = Math.hypot(...v);
    assertVecClose(u, v.map((x) => x / n), 1e-6);
  }
});

Deno.test("contextualEmbeddings() rejects a layer out of range, empty sentences and 'cls' pooling on a decoder", async () => {
  for (const layer of [2, -3, 0.5]) {
    await assertRejects(
      () => contextualEmbeddings(tinyModel, ["ab"], { layer, params: tiny.params }),
      RangeError,
      `layer ${layer} is out of range: the model has 2 blocks`,
    );
  }
  await assertRejects(() => contextualEmbeddings(tinyModel, ["ab", " "]), RangeError, "sentence 1 is empty");
  await assertRejects(() => contextualEmbeddings(tinyModel, []), RangeError, "non-empty array");
  await assertRejects(() => contextualEmbeddings(tinyModel, ["ab"], { pool: "cls" }), RangeError, "causal decoder");
  await assertRejects(
    () => contextualEmbeddings(tinyModel, ["ab"], { pool: "max" as Pooling }),
    RangeError,
    'pool must be "mean", "last" or "cls"',
  );
  await assertRejects(
    () => contextualEmbeddings(tinyModel, ["x".repeat(TINY_GPT2.maxPositions + 1)], { params: tiny.params }),
    RangeError,
    "exceed the context",
  );
});

Deno.test("wordInContext() averages the states of the tokens covering the word, found by character offsets", async () => {
  const sentence = "a bank, the bank.";
  for (const [occurrence, start] of [[0, 2], [1, 12]]) {
    const r = await wordInContext(tinyModel, sentence, "bank", { occurrence, params: tiny.params, layer: 0 });
    assertEquals(r.span, [start, start + 4]);
    // The byte tokenizer has one token per byte: the word's tokens sit at its character positions.
    assertEquals(r.positions, [start, start + 1, start + 2, start + 3]);
    assertEquals(r.tokens, ["b", "a", "n", "k"]);
    assertEquals(r.averaged, true);
    const { cache } = forward(TINY_GPT2, tiny.params, encode(sentence), { cache: true });
    const states = cache!.get("blocks.0.resid_post")!;
    assertVecClose(r.vector, meanOf(r.positions.map((p) => row(states, p))), 1e-5);
  }
  // Chinese has no spaces between words: the word's bytes are its tokens, zero-width ones included.
  const zh = await wordInContext(tinyModel, "我去日本", "日本", { params: tiny.params });
  assertEquals(zh.span, [2, 4]);
  assertEquals(zh.positions, [6, 7, 8, 9, 10, 11]);
});

Deno.test("wordInContext() gives one word two vectors in two sentences, where its static embedding is one row", async () => {
  const a = await wordInContext(tinyModel, "the bank of the river", "bank", { params: tiny.params });
  const b = await wordInContext(tinyModel, "money in a bank", "bank", { params: tiny.params });
  const s = await tokenEmbeddings(tinyModel, ["bank", "bank"]);
  assertEquals(row(s.vectors, 0), row(s.vectors, 1));
  assertLess(cosineSimilarity(a.vector, b.vector), 0.999999);
});

Deno.test("wordInContext() rejects a word that is absent, only part of a word, or missing that often", async () => {
  const s = "the banks of the river";
  await assertRejects(() => wordInContext(tinyModel, s, "bank"), RangeError, "does not occur as a whole word");
  await assertRejects(() => wordInContext(tinyModel, s, "moon"), RangeError, "does not occur as a whole word");
  await assertRejects(() => wordInContext(tinyModel, s, "river", { occurrence: 1 }), RangeError, "occurs 1 time(s)");
  await assertRejects(() => wordInContext(tinyModel, s, ""), RangeError, "word must be a non-empty string");
  await assertRejects(() => wordInContext(tinyModel, "", "a"), RangeError, "sentence must be a non-empty string");
  await assertRejects(() => wordInContext(tinyModel, s, "river", { layer: 5 }), RangeError, "out of range");
});

Deno.test("neighboursInVocabulary() matches a float64 scan of the whole vocabulary, without the word's own token", async () => {
  const r = await neighboursInVocabulary(tinyModel, "q", { k: 6, leadingSpace: false });
  const [id] = encode("q");
  assertEquals(r.word.ids, [id]);
  const want = refNeighbours(Float32Array.from(row(E, id)), E, 6, [id]);
  assertEquals(r.neighbours.map((n) => n.id), want.map((w) => w.i));
  r.neighbours.forEach((n, i) => assertAlmostEquals(n.score, want[i].s, 1e-5));
  assertEquals(r.neighbours[0].piece, tinyModel.tokenizer.decode([r.neighbours[0].id]));
  // A multi-token word queries with the mean of its rows and excludes all of its tokens.
  const multi = await neighboursInVocabulary(tinyModel, "xyz", { k: 4 });
  const ids = encode(" xyz");
  const wantMulti = refNeighbours(Float32Array.from(meanOf(ids.map((i) => row(E, i)))), E, 4, ids);
  assertEquals(multi.neighbours.map((n) => n.id), wantMulti.map((w) => w.i));
  await assertRejects(
    () => neighboursInVocabulary(tinyModel, "q", { k: 0 }),
    RangeError,
    "k must be a positive integer",
  );
  await assertRejects(() => neighboursInVocabulary(tinyModel, ""), RangeError, "not representable");
});

Deno.test("embeddingMap() draws one labelled trace per group at the PCA coordinates of the words' vectors", async () => {
  const groups = { first: ["ab", "cd", "ef"], second: ["xy", "z"] };
  const fig = await embeddingMap(tinyModel, groups);
  assertEquals(fig.data.map((t) => t.name), ["first", "second"]);
  assertEquals(fig.data.map((t) => t.text), [groups.first, groups.second]);
  const { points } = pca((await tokenEmbeddings(tinyModel, [...groups.first, ...groups.second])).vectors);
  const xs = [...(fig.data[0].x as number[]), ...(fig.data[1].x as number[])];
  const ys = [...(fig.data[0].y as number[]), ...(fig.data[1].y as number[])];
  xs.forEach((x, i) => assertAlmostEquals(x, points.data[2 * i], 1e-6));
  ys.forEach((y, i) => assertAlmostEquals(y, points.data[2 * i + 1], 1e-6));
  assertStringIncludes(JSON.stringify(fig.layout), "PC1 (");
  const ctx = await embeddingMap(tinyModel, groups, { layer: 0, params: tiny.params });
  assertStringIncludes(JSON.stringify(ctx.layout), "blocks.0.resid_post");
  await assertRejects(() => embeddingMap(tinyModel, { one: ["ab"] }), RangeError, "at least 2 words");
  await assertRejects(() => embeddingMap(tinyModel, { a: ["ab", "cd"], empty: [] }), RangeError, '"empty"');
  await assertRejects(() => embeddingMap(tinyModel, ["ab", "cd"] as unknown as Record<string, string[]>), TypeError);
});

Deno.test("embeddingMap() with projection umap draws the seeded UMAP points of the words' vectors", async () => {
  const groups = { first: ["ab", "cd", "ef"], second: ["xy", "z"] };
  const fig = await embeddingMap(tinyModel, groups, { projection: "umap", seed: 4, neighbours: 3 });
  const { points } = umap((await tokenEmbeddings(tinyModel, [...groups.first, ...groups.second])).vectors, {
    seed: 4,
    neighbours: 3,
  });
  const xs = [...(fig.data[0].x as number[]), ...(fig.data[1].x as number[])];
  const ys = [...(fig.data[0].y as number[]), ...(fig.data[1].y as number[])];
  // scatter() writes the shortest decimal that reads back as the same float32
  assertEquals(xs.map(Math.fround), Array.from({ length: 5 }, (_, i) => points.data[2 * i]));
  assertEquals(ys.map(Math.fround), Array.from({ length: 5 }, (_, i) => points.data[2 * i + 1]));
  assertStringIncludes(JSON.stringify(fig.layout), "UMAP 1");
  await assertRejects(
    () => embeddingMap(tinyModel, { a: ["ab", "cd"] }, { projection: "umap" }),
    RangeError,
    "at least 3",
  );
  await assertRejects(
    () => embeddingMap(tinyModel, groups, { projection: "tsne" as "umap" }),
    RangeError,
    'projection must be "pca" or "umap"',
  );
});

/** A small WordPiece (BERT-style) tokenizer: lower-cases, inserts [CLS] … [SEP], unknown words become [UNK]. */
function wordPieceTokenizer(): Model["tokenizer"] {
  const words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "river", "bank", "money", "sat", "on", "a", "##s", "table"];
  const { json, config } = wordPieceTokenizerFiles(words);
  return new PreTrainedTokenizer(json, config);
}

const wordPiece = wordPieceTokenizer();
const wpMatrix = randomTensor(13, 4, 11);

Deno.test("tokenEmbeddings() with WordPiece: no leading space, '##' pieces averaged, an [UNK] word rejected or skipped", async () => {
  const model: EmbeddingModel = { tokenizer: wordPiece, config: { model_type: "bert" }, onnxPath: "" };
  const r = await tokenEmbeddings(model, ["tables", "bank"], { matrix: wpMatrix });
  assertEquals(r.leadingSpace, false);
  assertEquals(r.words[0].tokens, ["table", "##s"]);
  assertVecClose(row(r.vectors, 0), meanOf([row(wpMatrix, 12), row(wpMatrix, 11)]), 1e-6);
  assertEquals(row(r.vectors, 1), row(wpMatrix, 6));
  await assertRejects(
    () => tokenEmbeddings(model, ["bank", "zebra"], { matrix: wpMatrix }),
    RangeError,
    'word 1 ("zebra") is not representable: it tokenizes to the unknown token "[UNK]"',
  );
  const skipped = await tokenEmbeddings(model, ["zebra", "bank", "\u0007"], {
    matrix: wpMatrix,
    unrepresentable: "skip",
  });
  assertEquals(skipped.words.map((w) => w.word), ["bank"]);
  assertEquals(skipped.skipped.map((s) => s.word), ["zebra", "\u0007"]);
  assertStringIncludes(skipped.skipped[1].reason, "no token at all");
});

/**
 * A stand-in for a transformers.js encoder call: last_hidden_state[p, k] = 10·id + p + k/100, so the
 * pooling arithmetic can be checked exactly (the real call runs in tests/embed_encoder_test.ts).
 */
function fakeEncoder(width: number): Model["model"] {
  const call = (inputs: { input_ids: { data: ArrayLike<bigint | number> } }) => {
    const ids = Array.from(inputs.input_ids.data, Number);
    const data = new Float32Array(ids.length * width);
    ids.forEach((id, p) => {
      for (let k = 0; k < width; k++) data[p * width + k] = 10 * id + p + k / 100;
    });
    return Promise.resolve({ last_hidden_state: { data, dims: [1, ids.length, width] } });
  };
  return call as unknown as Model["model"];
}

Deno.test("contextualEmbeddings() of an encoder pool transformers.js last_hidden_state: cls, mean and last", async () => {
  const model: EmbeddingModel = {
    tokenizer: wordPiece,
    config: { model_type: "bert", num_hidden_layers: 2 },
    onnxPath: "",
    model: fakeEncoder(3),
  };
  const ids = [2, 4, 5, 6, 3]; // [CLS] the river bank [SEP]
  const expected = (p: number) => [0, 1, 2].map((k) => 10 * ids[p] + p + k / 100);
  const cls = await contextualEmbeddings(model, ["The river bank"], { pool: "cls" });
  assertEquals(cls.source, "last_hidden_state");
  assertEquals(cls.sentences[0].ids, ids);
  assertEquals(cls.sentences[0].positions, [0]);
  assertVecClose(row(cls.vectors, 0), expected(0), 1e-5);
  const mean = await contextualEmbeddings(model, ["The river bank"], { layer: -1 });
  assertEquals(mean.sentences[0].positions, [1, 2, 3], "[CLS] and [SEP] are left out of the mean");
  assertVecClose(row(mean.vectors, 0), meanOf([1, 2, 3].map(expected)), 1e-5);
  const last = await contextualEmbeddings(model, ["The river bank"], { pool: "last", layer: 1 });
  assertVecClose(row(last.vectors, 0), expected(3), 1e-5);
  const w = await wordInContext(model, "money on the bank", "bank");
  assertEquals(w.tokens, ["bank"]);
  await assertRejects(() => contextualEmbeddings(model, ["a"], { layer: 0 }), RangeError, "only last_hidden_state");
  await assertRejects(() => contextualEmbeddings(model, ["a"], { layer: 2 }), RangeError, "out of range");
  await assertRejects(
    () => contextualEmbeddings({ ...model, model: null }, ["a"]),
    TypeError,
    "load it without tokenizerOnly",
  );
});
