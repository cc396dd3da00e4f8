/**
 * Unit tests of lib/_stats.ts (the kernels behind tensorStats() and inspectWeights()): both the
 * WebAssembly SIMD and the JavaScript kernels against naive float64 loops and a naive search over
 * histogram edges written here from the definitions; file leases; and inspectWeights() on a path
 * (tensors summed in place in leased memory) against tensorStats() of the loaded parameters.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { join } from "node:path";
import {
  type FloatSource,
  hasWasmStats,
  type HistogramRequest,
  leaseFile,
  MAX_WASM_BINS,
  type StatsKernel,
  type TensorSums,
  tensorSums,
} from "../lib/_stats.ts";
import { bundledModelPath } from "../lib/load.ts";
import { DataType, makeModel, makeNode, makeTensor, makeValueInfo, writeOnnx } from "../lib/onnx.ts";
import { quantizeModel } from "../lib/quantize.ts";
import { type InspectResult, inspectWeights, listParameters, readParameter, tensorStats } from "../lib/weights.ts";
import { TINY_GPT2, tinyModelDir } from "./_fixtures.ts";

const KERNELS: StatsKernel[] = ["wasm", "js"];

/** Seeded LCG (Numerical Recipes constants), uniform on [-0.5, 0.5). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** Mean, population variance, l2, mean |x|, min, max over finite values; near-zero over all; in float64, two-pass. */
function naive(d: ArrayLike<number>, thr: number) {
  const xs = Array.from(d).filter((v) => Number.isFinite(v));
  const k = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / k;
  return {
    k,
    mean,
    variance: xs.reduce((a, b) => a + (b - mean) ** 2, 0) / k,
    l2: Math.sqrt(xs.reduce((a, b) => a + b * b, 0)),
    meanAbs: xs.reduce((a, b) => a + Math.abs(b), 0) / k,
    min: xs.reduce((a, b) => Math.min(a, b), Infinity),
    max: xs.reduce((a, b) => Math.max(a, b), -Infinity),
    nearZero: Array.from(d).filter((v) => Math.abs(v) <= thr).length,
    nonFinite: d.length - k,
  };
}

/** What tensorStats() derives from the sums. */
function derived(m: TensorSums) {
  const k = m.count - m.nonFinite;
  return {
    mean: m.shift + m.sum / k,
    variance: (m.sumSq - (m.sum * m.sum) / k) / k,
    l2: Math.sqrt(m.sumSq + 2 * m.shift * m.sum + k * m.shift * m.shift),
    meanAbs: m.sumAbs / k,
  };
}

function close(a: number, b: number, rel: number, what: string): void {
  const tol = rel * Math.max(1, Math.abs(b));
  assert(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tolerance ${tol})`);
}

function checkSums(m: TensorSums, d: Float32Array, thr: number, what: string): void {
  const r = naive(d, thr);
  assertEquals([m.count, m.nonFinite, m.nearZero], [d.length, r.nonFinite, r.nearZero], `${what}: counts`);
  if (r.k === 0) return;
  assert(
    Object.is(m.min, r.min) && Object.is(m.max, r.max),
    `${what}: min/max ${m.min}, ${m.max} vs ${r.min}, ${r.max}`,
  );
  const g = derived(m);
  close(g.mean, r.mean, 1e-12, `${what}: mean`);
  close(g.l2, r.l2, 1e-12, `${what}: l2`);
  close(g.meanAbs, r.meanAbs, 1e-12, `${what}: meanAbs`);
  const dv = Math.abs(g.variance - r.variance);
  assert(dv <= 1e-9 * r.variance + 1e-300, `${what}: variance ${g.variance} vs ${r.variance}`);
}

/** Bin of each value by searching half-open edges `lo + (hi − lo)·i/bins` (the last bin closed), as the docs define. */
function naiveHistogram(d: Float32Array, bins: number, lo: number, hi: number) {
  const edges: number[] = [];
  for (let i = 0; i <= bins; i++) edges.push(lo + (hi - lo) * (i / bins));
  edges[bins] = hi;
  const counts = new Array(bins).fill(0);
  let outside = 0;
  for (const v of d) {
    if (!Number.isFinite(v)) continue;
    if (v < lo || v > hi) {
      outside++;
      continue;
    }
    let b = 0;
    while (b < bins - 1 && !(v < edges[b + 1])) b++;
    counts[b]++;
  }
  return { counts, outside };
}

/** The same floats at byte offset 1, 2 or 3 of a buffer: how they sit in a protobuf file. */
function misaligned(d: Float32Array, offset: number): Uint8Array {
  const u = new Uint8Array(d.length * 4 + offset);
  u.set(new Uint8Array(d.buffer, d.byteOffset, d.length * 4), offset);
  return u.subarray(offset);
}

function data(n: number, seed: number, offset = 0, scale = 0.04): Float32Array {
  const rnd = lcg(seed);
  return new Float32Array(n).map(() => offset + scale * (rnd() + rnd() + rnd()));
}

Deno.test("hasWasmStats() is true in Deno (WebAssembly SIMD), so the wasm kernel tests below test it", () => {
  assert(hasWasmStats());
});

for (const kernel of KERNELS) {
  Deno.test(`tensorSums() with the ${kernel} kernel matches a naive float64 reference for every length 0..70`, () => {
    for (let n = 0; n <= 70; n++) {
      const d = data(n, n + 1);
      checkSums(tensorSums(d, 0.01, null, kernel), d, 0.01, `n=${n}`);
      checkSums(tensorSums(d, 0.01, { bins: 5 }, kernel), d, 0.01, `n=${n} with histogram`);
    }
  });

  Deno.test(`tensorSums() with the ${kernel} kernel stays accurate for offset data (gains near 1, values near 1000)`, () => {
    for (const offset of [1, 1000]) {
      const d = data(5003, 7, offset, 0.01);
      for (const hist of [null, { bins: 32 }, { bins: 8, range: [offset - 0.01, offset + 0.01] as const }]) {
        checkSums(tensorSums(d, 0.005, hist, kernel), d, 0.005, `offset ${offset}, hist ${JSON.stringify(hist)}`);
      }
    }
  });

  Deno.test(`tensorSums() with the ${kernel} kernel reads bytes at any alignment`, () => {
    const d = data(1029, 3);
    for (const offset of [0, 1, 2, 3]) {
      const m = tensorSums(misaligned(d, offset), 1e-3, { bins: 16 }, kernel);
      checkSums(m, d, 1e-3, `offset ${offset}`);
      assertEquals(Array.from(m.histogram!.counts), naiveHistogram(d, 16, m.min, m.max).counts);
    }
  });

  Deno.test(`tensorSums() with the ${kernel} kernel bins exactly like a naive search over the edges`, () => {
    const cases: { d: Float32Array; hist: HistogramRequest }[] = [
      { d: data(4099, 11), hist: { bins: 7 } },
      { d: data(4099, 12), hist: { bins: 32 } },
      { d: data(4099, 13), hist: { bins: 1 } },
      { d: data(4099, 14), hist: { bins: MAX_WASM_BINS } },
      { d: data(4099, 15), hist: { bins: MAX_WASM_BINS + 1 } },
      { d: data(4099, 16), hist: { bins: 10, range: [-0.01, 0.02] } },
      // Long enough (≥ 256·(bins + 1)² values) for the WebAssembly kernels to count pairs of bins.
      { d: data(300_007, 17), hist: { bins: 32 } },
      { d: data(20_011, 18), hist: { bins: 7 } },
      { d: new Float32Array(50_001).map((_, i) => i % 13), hist: { bins: 12 } },
      { d: data(40_003, 19), hist: { bins: 64 } },
      // Values on the edges themselves: integers 0..12 over bins of width 1, 2, 3 and 4, the top one included.
      { d: new Float32Array(1000).map((_, i) => i % 13), hist: { bins: 12 } },
      { d: new Float32Array(1000).map((_, i) => i % 13), hist: { bins: 6 } },
      { d: new Float32Array(1000).map((_, i) => i % 13), hist: { bins: 4 } },
      { d: new Float32Array(1000).map((_, i) => i % 13), hist: { bins: 3, range: [0, 12] } },
      { d: new Float32Array(1000).map((_, i) => i % 13), hist: { bins: 4, range: [2, 10] } },
      { d: new Float32Array([0, 1, 2, 3]), hist: { bins: 3 } },
    ];
    for (const { d, hist } of cases) {
      const m = tensorSums(d, 1e-3, hist, kernel);
      const [lo, hi] = hist.range ?? [m.min, m.max];
      const want = naiveHistogram(d, hist.bins, lo, hi);
      const label = `bins ${hist.bins}, range ${JSON.stringify(hist.range)}`;
      assertEquals([m.histogram!.lo, m.histogram!.hi], [lo, hi], label);
      assertEquals(Array.from(m.histogram!.counts), want.counts, label);
      assertEquals(m.histogram!.outside, want.outside, label);
    }
  });

  Deno.test(`tensorSums() with the ${kernel} kernel leaves NaN and ±Infinity out of every figure and counts them`, () => {
    const d = data(203, 5);
    for (const i of [0, 7, 100, 202]) d[i] = NaN;
    d[50] = Infinity;
    d[51] = -Infinity;
    for (const hist of [null, { bins: 9 }, { bins: 9, range: [-0.01, 0.01] as const }]) {
      const m = tensorSums(d, 1e-3, hist, kernel);
      checkSums(m, d, 1e-3, `hist ${JSON.stringify(hist)}`);
      if (hist !== null) {
        const [lo, hi] = hist.range ?? [m.min, m.max];
        const want = naiveHistogram(d, hist.bins, lo, hi);
        assertEquals([Array.from(m.histogram!.counts), m.histogram!.outside], [want.counts, want.outside]);
      }
    }
    const none = tensorSums(new Float32Array([NaN, Infinity]), 1e-3, { bins: 2 }, kernel);
    assertEquals([none.nonFinite, none.min, none.max, Array.from(none.histogram!.counts)], [2, Infinity, -Infinity, [
      0,
      0,
    ]]);
  });

  Deno.test(`tensorSums() with the ${kernel} kernel orders −0 before +0 as Math.min and Math.max do`, () => {
    const mixed = [0, -0, 0, 0, 0, 0, 0, 0, -0, 0];
    const cases = [mixed, mixed.map(() => -0), mixed.map(() => 0), [-0, 0, 0, 0, 0, 0, 0, 0, 0, 1]];
    for (const values of cases) {
      const d = new Float32Array(values);
      const m = tensorSums(d, 0, { bins: 2 }, kernel);
      assert(Object.is(m.min, Math.min(...d)) && Object.is(m.max, Math.max(...d)), `${values}: ${m.min}, ${m.max}`);
      const want = naiveHistogram(d, 2, m.histogram!.lo, m.histogram!.hi).counts;
      assertEquals([m.nearZero, Array.from(m.histogram!.counts)], [naive(d, 0).nearZero, want]);
    }
  });

  Deno.test(`tensorSums() with the ${kernel} kernel compares |x| ≤ t exactly, also for t between two floats`, () => {
    const f = Math.fround(0.1); // 0.100000001490116..., just above 0.1
    const d = new Float32Array([f, -f, 0.05, 1, f, f, f, f, -f, f, 0.2]);
    for (const thr of [0.1, f, 0.1000000014901161, 0]) {
      assertEquals(tensorSums(d, thr, null, kernel).nearZero, naive(d, thr).nearZero, `thr ${thr}`);
    }
  });

  Deno.test(`tensorSums() with the ${kernel} kernel handles constant tensors and the widest float32 range`, () => {
    const ones = new Float32Array(37).fill(1);
    const m = tensorSums(ones, 1e-3, { bins: 4 }, kernel);
    assertEquals([m.min, m.max, derived(m).variance, m.histogram!.lo, m.histogram!.hi], [1, 1, 0, 0.5, 1.5]);
    assertEquals(Array.from(m.histogram!.counts), [0, 0, 37, 0]);
    // Sums at 1e38 cannot keep the small values (nor can any float64 sum): check the exact figures only.
    const wide = new Float32Array([3.4e38, -3.4e38, 0, 1e-38, -1e-38, 1, 2, 3, 4]);
    const w = tensorSums(wide, 1e-3, { bins: 3 }, kernel);
    assertEquals([w.min, w.max, w.nearZero], [Math.fround(-3.4e38), Math.fround(3.4e38), 3]);
    assertEquals(Array.from(w.histogram!.counts), naiveHistogram(wide, 3, w.min, w.max).counts);
  });
}

Deno.test("tensorSums() rejects an unknown kernel with a RangeError naming it", () => {
  assertThrows(() => tensorSums(new Float32Array(4), 0, null, "gpu" as StatsKernel), RangeError, "kernel");
});

Deno.test("leaseFile() gives the file's bytes, one lease at a time, and tensorSums() reads them in place", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paramscope-stats-" });
  try {
    const d = data(10_001, 21);
    const path = join(dir, "floats.bin");
    const bytes = misaligned(d, 3); // the floats start at byte 3 of the file
    const file = new Uint8Array(bytes.length + 3);
    file.set(bytes, 3);
    await Deno.writeFile(path, file);
    const lease = leaseFile(path);
    assert(lease !== null);
    try {
      assertEquals(lease.bytes, file);
      assertEquals(leaseFile(path), null, "a second lease while one is out");
      const inPlace: FloatSource = lease.bytes.subarray(3);
      const m = tensorSums(inPlace, 1e-3, { bins: 32 }, "wasm");
      const copy = tensorSums(d, 1e-3, { bins: 32 }, "js");
      checkSums(m, d, 1e-3, "leased");
      assertEquals(Array.from(m.histogram!.counts), Array.from(copy.histogram!.counts));
    } finally {
      lease.release();
    }
    const again = leaseFile(path);
    assert(again !== null, "released leases can be taken again");
    again.release();
    assertThrows(() => leaseFile(join(dir, "missing.bin")), Deno.errors.NotFound);
    const after = leaseFile(path);
    assert(after !== null, "a failed lease does not keep the memory");
    after.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Each row's statistics against tensorStats() of the parameter read on its own (a fresh array, copied in). */
async function checkRows(path: string, results: InspectResult[]): Promise<void> {
  const list = await listParameters(path);
  assert(list.params.length > 0, `${path} lists no parameters`);
  for (const r of results) assertEquals(r.rows.map((row) => row.name), list.params.map((p) => p.name), path);
  for (const [i, row] of results[0].rows.entries()) {
    const t = await readParameter(list, row.name, { layout: "stored" });
    const want = tensorStats(t, { bins: 16 });
    for (const got of results.map((r) => r.rows[i].stats)) {
      assertEquals([got.count, got.min, got.max, got.nearZero, got.histogram], [
        want.count,
        want.min,
        want.max,
        want.nearZero,
        want.histogram,
      ], row.name);
      for (const k of ["mean", "std", "l2", "meanAbs"] as const) close(got[k], want[k], 1e-12, `${row.name} ${k}`);
    }
  }
}

Deno.test("inspectWeights() of a path (tensors summed in leased memory) equals tensorStats() of each parameter", async () => {
  const path = join(bundledModelPath(), "onnx", "model.onnx");
  const list = await listParameters(path);
  await checkRows(path, [await inspectWeights(path, { bins: 16 }), await inspectWeights(list, { bins: 16 })]);
  // The lease ended with the call: a second inspection can take it again.
  const lease = leaseFile(path);
  assert(lease !== null);
  lease.release();
});

Deno.test("inspectWeights() of fp16, bfloat16, q8, int8 and q4 files (dequantized into kernel memory) equals tensorStats()", async () => {
  const { dir } = await tinyModelDir(TINY_GPT2);
  try {
    await quantizeModel(dir, { dtypes: ["fp16", "q8", "int8", "q4"], blockSize: 16 });
    for (const file of ["model_fp16.onnx", "model_quantized.onnx", "model_int8.onnx", "model_q4.onnx"]) {
      const path = join(dir, "onnx", file);
      await checkRows(path, [await inspectWeights(path, { bins: 16 })]);
    }
    // bfloat16, 37 values (not a multiple of the kernels' 8), read by a Mul as a gain.
    const g = new Uint16Array(37).map((_, i) => 0x3f80 + 7 * i);
    const proto = makeModel({
      name: "bf16",
      nodes: [makeNode("Mul", ["x", "g"], ["y"], {}, "mul")],
      initializers: [makeTensor("g", [37], g, DataType.BFLOAT16)],
      inputs: [makeValueInfo("x", DataType.BFLOAT16, ["n", 37])],
      outputs: [makeValueInfo("y", DataType.BFLOAT16, ["n", 37])],
      opset: 21,
    });
    const path = join(dir, "bf16.onnx");
    await writeOnnx(proto, path);
    await checkRows(path, [await inspectWeights(path, { bins: 16 })]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
