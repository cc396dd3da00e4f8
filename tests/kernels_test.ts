/**
 * Unit tests of lib/_kernels.ts against naive loops written here from the formulas: float64
 * products (with the float32 summation error bound), and float32 in-order sums emulated with
 * Math.fround for the bit-exact checks of the WebAssembly SIMD engine; and of the small
 * WebAssembly assembler it is built with (lib/_wasm.ts).
 */
import { assert, assertAlmostEquals, assertEquals, assertGreater, assertThrows } from "@std/assert";
import {
  createSimdMatmul,
  geluTanh,
  layerNorm,
  matmul,
  matmulJs,
  matmulTransposed,
  matmulTransposedJs,
  rmsNorm,
  silu,
  SIMD_MIN_WEIGHTS,
  softmaxCausal,
} from "../lib/_kernels.ts";
import { compileWasm, get, i32, i32Store, sleb, uleb, wasmModule } from "../lib/_wasm.ts";

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

/** A weight `[inDim, outDim]` from its transpose `[outDim, inDim]`. */
function untranspose(wT: Float32Array, inDim: number, outDim: number): Float32Array {
  const w = new Float32Array(inDim * outDim);
  for (let j = 0; j < outDim; j++) for (let k = 0; k < inDim; k++) w[k * outDim + j] = wT[j * inDim + k];
  return w;
}

/**
 * out[r][j] = Σ_k inp[r][k]·w[k][j] + b[j] in float64, with `scale[r][j] = Σ_k |inp·w| + |b|`, the
 * size the float32 rounding error is measured against.
 */
function naiveMatmul(
  inp: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  rows: number,
  inDim: number,
  outDim: number,
): { value: Float64Array; scale: Float64Array } {
  const value = new Float64Array(rows * outDim), scale = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < outDim; j++) {
      let s = b ? b[j] : 0, a = b ? Math.abs(b[j]) : 0;
      for (let k = 0; k < inDim; k++) {
        const p = inp[r * inDim + k] * w[k * outDim + j];
        s += p;
        a += Math.abs(p);
      }
      value[r * outDim + j] = s;
      scale[r * outDim + j] = a;
    }
  }
  return { value, scale };
}

/**
 * Float32 sums taken in order over k, each step rounded to float32 (`fused`: one rounding of
 * `s + a·w`; otherwise the product is rounded first), bias added last: what every SIMD lane
 * computes for one output.
 */
function float32InOrder(
  inp: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  rows: number,
  inDim: number,
  outDim: number,
  fused: boolean,
): Float32Array {
  const out = new Float32Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < outDim; j++) {
      let s = 0;
      for (let k = 0; k < inDim; k++) {
        const a = inp[r * inDim + k], x = w[k * outDim + j];
        s = fused ? fusedMultiplyAdd32(a, x, s) : Math.fround(s + Math.fround(a * x));
      }
      out[r * outDim + j] = b ? Math.fround(s + b[j]) : s;
    }
  }
  return out;
}

/**
 * `fround(a·x + s)` rounded once (as an FMA does) for float32 `a`, `x`, `s`: the product is exact
 * in float64, and the float64 sum is corrected where rounding it to float64 made a float32 tie.
 */
function fusedMultiplyAdd32(a: number, x: number, s: number): number {
  const p = a * x, hi = p + s;
  const bb = hi - p, lo = (p - (hi - bb)) + (s - bb); // TwoSum: hi + lo = p + s exactly
  const r = Math.fround(hi), d = hi - r;
  if (lo === 0 || d === 0) return r;
  const other = r + 2 * d; // hi is a tie iff it lies halfway between r and another float32
  if (Math.fround(other) !== other) return r;
  return Math.sign(lo) === Math.sign(d) ? Math.fround(other) : r;
}

function assertWithinBound(
  out: Float32Array,
  ref: { value: Float64Array; scale: Float64Array },
  inDim: number,
  what: string,
): void {
  assertEquals(out.length, ref.value.length);
  // float32 sums in order: |error| ≤ (inDim + 2)·2⁻²⁴·(Σ|inp·w| + |b|) (the engines' stated bound)
  for (let i = 0; i < out.length; i++) {
    const err = Math.abs(out[i] - ref.value[i]), bound = (inDim + 2) * 2 ** -24 * ref.scale[i];
    assert(err <= bound, `${what}: element ${i} is ${out[i]}, float64 ${ref.value[i]}, error ${err} > bound ${bound}`);
  }
}

/** [rows, inDim, outDim]; the JavaScript engine's remainders, then SIMD tiles, blocks and paddings. */
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 16, 4],
  [3, 7, 5],
  [4, 8, 8],
  [5, 9, 13],
  [8, 16, 12],
  [9, 33, 70],
  [17, 64, 3],
  [6, 20, 261], // JavaScript: several column tiles, the last one ragged
  [5, 3, 130],
  [1, 32, 32], // the smallest weight that takes the SIMD engine
  [2, 33, 40], // columns padded to 48, one 2-row tile
  [5, 64, 17],
  [6, 17, 100], // one full 6-row slab
  [7, 300, 70], // inner dimension over one 256 block; one row left over
  [13, 257, 33],
  [12, 5, 1030], // over two 512-column blocks, ragged
  [64, 128, 96],
  [3, 520, 530],
  [20, 1, 2048],
];

Deno.test("matmul() is within the float32 summation bound of a float64 product for every shape, bias or not", () => {
  const rnd = lcg(1);
  for (const [rows, inDim, outDim] of SHAPES) {
    for (const withBias of [false, true]) {
      const inp = randomArray(rows * inDim, rnd), w = randomArray(inDim * outDim, rnd);
      const b = withBias ? randomArray(outDim, rnd) : null;
      const out = new Float32Array(rows * outDim).fill(99); // stale values must be overwritten
      matmul(out, inp, w, b, rows, inDim, outDim);
      assertWithinBound(out, naiveMatmul(inp, w, b, rows, inDim, outDim), inDim, `[${rows}, ${inDim}, ${outDim}] ${b}`);
    }
  }
});

Deno.test("matmulTransposed() is within the float32 summation bound of a float64 product with the transpose", () => {
  const rnd = lcg(2);
  for (const [rows, inDim, outDim] of SHAPES) {
    for (const withBias of [false, true]) {
      const inp = randomArray(rows * inDim, rnd), wT = randomArray(outDim * inDim, rnd);
      const b = withBias ? randomArray(outDim, rnd) : null;
      const out = new Float32Array(rows * outDim).fill(-7);
      matmulTransposed(out, inp, wT, b, rows, inDim, outDim);
      const ref = naiveMatmul(inp, untranspose(wT, inDim, outDim), b, rows, inDim, outDim);
      assertWithinBound(out, ref, inDim, `[${rows}, ${inDim}]·[${outDim}, ${inDim}]ᵀ bias=${withBias}`);
    }
  }
});

Deno.test("matmulJs() and matmulTransposedJs() round a float64 sum once", () => {
  const rnd = lcg(12);
  for (const [rows, inDim, outDim] of SHAPES) {
    const inp = randomArray(rows * inDim, rnd), wT = randomArray(outDim * inDim, rnd), b = randomArray(outDim, rnd);
    const w = untranspose(wT, inDim, outDim);
    const ref = naiveMatmul(inp, w, b, rows, inDim, outDim).value;
    const a = new Float32Array(rows * outDim), t = new Float32Array(rows * outDim);
    matmulJs(a, inp, w, b, rows, inDim, outDim);
    matmulTransposedJs(t, inp, wT, b, rows, inDim, outDim);
    for (let i = 0; i < ref.length; i++) {
      // a float64 sum differs from the exact one by far less than float32's half ulp
      assert(Math.abs(a[i] - ref[i]) <= 2 ** -24 * Math.abs(ref[i]) * 1.001, `matmulJs element ${i}`);
      assert(Math.abs(t[i] - ref[i]) <= 2 ** -24 * Math.abs(ref[i]) * 1.001, `matmulTransposedJs element ${i}`);
    }
  }
});

Deno.test("the SIMD engine equals float32 in-order sums bit for bit, unfused and fused", () => {
  const rnd = lcg(13);
  const plain = createSimdMatmul(false), fused = createSimdMatmul(true);
  assert(plain && fused, "Deno has WebAssembly SIMD and relaxed SIMD");
  assertEquals([plain.fused, fused.fused, createSimdMatmul()?.fused], [false, true, true]);
  for (const [rows, inDim, outDim] of SHAPES) {
    for (const transposed of [false, true]) {
      const inp = randomArray(rows * inDim, rnd), wT = randomArray(outDim * inDim, rnd), b = randomArray(outDim, rnd);
      const w = untranspose(wT, inDim, outDim);
      const operand = transposed ? wT : w, label = `[${rows}, ${inDim}, ${outDim}] transposed=${transposed}`;
      const out = new Float32Array(rows * outDim);
      assert(plain.run(out, inp, operand, b, rows, inDim, outDim, transposed));
      assertEquals(out, float32InOrder(inp, w, b, rows, inDim, outDim, false), `unfused ${label}`);
      // relaxed_madd may or may not fuse (V8 fuses where the CPU has FMA); either way, the whole product agrees
      assert(fused.run(out, inp, operand, b, rows, inDim, outDim, transposed));
      const wantFused = float32InOrder(inp, w, b, rows, inDim, outDim, true);
      const wantUnfused = float32InOrder(inp, w, b, rows, inDim, outDim, false);
      assert(
        out.every((v, i) => Object.is(v, wantFused[i])) || out.every((v, i) => Object.is(v, wantUnfused[i])),
        `relaxed ${label}`,
      );
    }
  }
});

Deno.test("fusedMultiplyAdd32() (the test's FMA emulation) rounds once, unlike product-then-sum", () => {
  // (1 + 2⁻¹²)² = 1 + 2⁻¹¹ + 2⁻²⁴: rounding the product first loses the 2⁻²⁴, one rounding keeps it
  const a = 1 + 2 ** -12, s = -(1 + 2 ** -11);
  assertEquals(fusedMultiplyAdd32(a, a, s), 2 ** -24);
  assertEquals(Math.fround(s + Math.fround(a * a)), 0);
  // (1 + 2⁻¹⁸)(64 − 2⁻¹²) + 2³⁰ + 128 = 2³⁰ + 192 − 2⁻³⁰, just under a float32 tie: the float64 sum rounds
  // onto the tie (then to even, 2³⁰ + 256); one rounding gives 2³⁰ + 128
  const [x, y, z] = [1 + 2 ** -18, 64 - 2 ** -12, 2 ** 30 + 128];
  assertEquals([Math.fround(x), Math.fround(y), Math.fround(z)], [x, y, z]);
  assertEquals(fusedMultiplyAdd32(x, y, z), 2 ** 30 + 128);
  assertEquals(Math.fround(x * y + z), 2 ** 30 + 256);
});

Deno.test("matmul() gives each row the same bits whether it is computed alone or with the other rows", () => {
  const rnd = lcg(14);
  for (const [rows, inDim, outDim] of [[13, 96, 288], [7, 40, 50], [9, 8, 8]] as const) {
    for (const transposed of [false, true]) {
      const inp = randomArray(rows * inDim, rnd), w = randomArray(inDim * outDim, rnd), b = randomArray(outDim, rnd);
      const all = new Float32Array(rows * outDim), one = new Float32Array(outDim);
      (transposed ? matmulTransposed : matmul)(all, inp, w, b, rows, inDim, outDim);
      for (let r = 0; r < rows; r++) {
        (transposed ? matmulTransposed : matmul)(one, inp.subarray(r * inDim), w, b, 1, inDim, outDim);
        assertEquals(one, all.subarray(r * outDim, (r + 1) * outDim), `row ${r} of [${rows}, ${inDim}, ${outDim}]`);
      }
    }
  }
});

Deno.test("matmul() works on unaligned subarray views and leaves the rest of out untouched", () => {
  const rnd = lcg(3);
  for (const [rows, inDim, outDim] of [[5, 6, 7], [7, 33, 50], [13, 64, 96]] as const) {
    for (const transposed of [false, true]) {
      const big = randomArray(20000, rnd);
      const inp = big.subarray(3, 3 + rows * inDim), w = big.subarray(9001, 9001 + inDim * outDim);
      const b = big.subarray(17001, 17001 + outDim);
      const outBuf = new Float32Array(rows * outDim + 9).fill(3);
      const out = outBuf.subarray(5, 5 + rows * outDim);
      (transposed ? matmulTransposed : matmul)(out, inp, w, b, rows, inDim, outDim);
      const ref = naiveMatmul(inp, transposed ? untranspose(w, inDim, outDim) : w, b, rows, inDim, outDim);
      assertWithinBound(out, ref, inDim, `views [${rows}, ${inDim}, ${outDim}] transposed=${transposed}`);
      assertEquals([...outBuf.subarray(0, 5), ...outBuf.subarray(5 + rows * outDim)], new Array(9).fill(3));
    }
  }
});

Deno.test("matmul() reads only the first rows·inDim inputs of a longer array", () => {
  const rnd = lcg(15);
  const rows = 6, inDim = 40, outDim = 48;
  const inp = randomArray(rows * inDim, rnd), w = randomArray(inDim * outDim, rnd);
  const longer = new Float32Array(rows * inDim + 100).fill(NaN);
  longer.set(inp);
  const a = new Float32Array(rows * outDim), b = new Float32Array(rows * outDim);
  matmul(a, inp, w, null, rows, inDim, outDim);
  matmul(b, longer, w, null, rows, inDim, outDim);
  assertEquals(b, a);
});

Deno.test("matmul() propagates NaN from the weights even where the input is zero", () => {
  const out = new Float32Array(2);
  matmul(out, new Float32Array([0, 1]), new Float32Array([NaN, 1, 2, 3]), null, 1, 2, 2);
  assert(Number.isNaN(out[0]), "0·NaN must be NaN as in IEEE arithmetic");
  assertEquals(out[1], 3);
  // the same in the SIMD engine: one NaN weight poisons its column only
  const rows = 7, inDim = 40, outDim = 50;
  const w = new Float32Array(inDim * outDim).fill(0.5);
  w[3 * outDim + 11] = NaN;
  const big = new Float32Array(rows * outDim);
  matmul(big, new Float32Array(rows * inDim), w, null, rows, inDim, outDim);
  for (let i = 0; i < big.length; i++) assertEquals(Number.isNaN(big[i]), i % outDim === 11, `element ${i}`);
});

Deno.test("matmul() stays correct when a large product is followed by smaller ragged ones", () => {
  const rnd = lcg(16);
  const shapes: [number, number, number][] = [[70, 300, 600], [5, 33, 47], [1, 64, 17], [11, 257, 31], [2, 32, 32]];
  for (const [rows, inDim, outDim] of shapes) {
    for (const transposed of [false, true]) {
      const inp = randomArray(rows * inDim, rnd), w = randomArray(inDim * outDim, rnd);
      const out = new Float32Array(rows * outDim);
      (transposed ? matmulTransposed : matmul)(out, inp, w, null, rows, inDim, outDim);
      const ref = naiveMatmul(inp, transposed ? untranspose(w, inDim, outDim) : w, null, rows, inDim, outDim);
      assertWithinBound(out, ref, inDim, `[${rows}, ${inDim}, ${outDim}] transposed=${transposed}`);
    }
  }
});

Deno.test("matmul() and matmulTransposed() give the bias (or zeros) for an empty inner dimension", () => {
  const out = new Float32Array(6).fill(5);
  matmul(out, new Float32Array(0), new Float32Array(0), new Float32Array([1, 2, 3]), 2, 0, 3);
  assertEquals(Array.from(out), [1, 2, 3, 1, 2, 3]);
  matmulTransposed(out, new Float32Array(0), new Float32Array(0), null, 2, 0, 3);
  assertEquals(Array.from(out), [0, 0, 0, 0, 0, 0]);
  const simd = createSimdMatmul()!, wide = new Float32Array(2 * 40).fill(5), bias = new Float32Array(40).fill(-2);
  assert(simd.run(wide, new Float32Array(0), new Float32Array(0), bias, 2, 0, 40, false));
  assertEquals(Array.from(wide), new Array(80).fill(-2));
});

Deno.test("the SIMD engine declines a product over its 2 GiB memory and writes nothing", () => {
  const simd = createSimdMatmul()!;
  const out = new Float32Array(4).fill(1);
  // a [2¹⁶, 2¹⁴] weight alone is 4 GiB: run() must answer false before touching the (too short) arrays
  assertEquals(simd.run(out, new Float32Array(4), new Float32Array(4), null, 1, 1 << 16, 1 << 14, false), false);
  assertEquals(Array.from(out), [1, 1, 1, 1]);
  assert(simd.memoryBytes() < 2 ** 31);
});

Deno.test("matmul() takes the SIMD engine from SIMD_MIN_WEIGHTS weights on", () => {
  // The engines differ in rounding (float32 in-order sums vs one float64 rounding); inputs chosen so they
  // differ here show which one ran: the SIMD result equals the float32 emulation.
  const rnd = lcg(17);
  const side = Math.sqrt(SIMD_MIN_WEIGHTS);
  for (const [inDim, outDim, simd] of [[side, side, true], [side, side - 1, false]] as const) {
    const rows = 3, inp = randomArray(rows * inDim, rnd), w = randomArray(inDim * outDim, rnd);
    const out = new Float32Array(rows * outDim), js = new Float32Array(rows * outDim);
    matmul(out, inp, w, null, rows, inDim, outDim);
    matmulJs(js, inp, w, null, rows, inDim, outDim);
    const f32 = [true, false].map((fused) => float32InOrder(inp, w, null, rows, inDim, outDim, fused));
    const same = (a: Float32Array, b: Float32Array) => a.every((v, i) => Object.is(v, b[i]));
    assert(f32.every((f) => !same(f, js)), "the inputs must tell the engines apart");
    assert(simd ? f32.some((f) => same(out, f)) : same(out, js), `${inDim}×${outDim} weight: simd=${simd}`);
  }
});

Deno.test("matmul() in a Web Worker gives the same bits as on the main thread", async () => {
  const kernels = new URL("../lib/_kernels.ts", import.meta.url).href;
  const code = `import { matmul, matmulTransposed } from ${JSON.stringify(kernels)};
self.onmessage = (e) => {
  const { inp, w, rows, inDim, outDim } = e.data;
  const a = new Float32Array(rows * outDim), b = new Float32Array(rows * outDim);
  matmul(a, inp, w, null, rows, inDim, outDim);
  matmulTransposed(b, inp, w, null, rows, inDim, outDim);
  self.postMessage({ a, b });
};`;
  const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  try {
    const rnd = lcg(18);
    const rows = 19, inDim = 70, outDim = 90;
    const inp = randomArray(rows * inDim, rnd), w = randomArray(inDim * outDim, rnd);
    const got = await new Promise<{ a: Float32Array; b: Float32Array }>((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => reject(new Error(e.message));
      worker.postMessage({ inp, w, rows, inDim, outDim });
    });
    const a = new Float32Array(rows * outDim), b = new Float32Array(rows * outDim);
    matmul(a, inp, w, null, rows, inDim, outDim);
    matmulTransposed(b, inp, w, null, rows, inDim, outDim);
    assertEquals(got.a, a);
    assertEquals(got.b, b);
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
});

Deno.test("matmul() and matmulTransposed() reject bad shapes and arrays, naming them", () => {
  const f = (n: number) => new Float32Array(n);
  assertThrows(() => matmul(f(6), f(5), f(6), null, 2, 3, 3), RangeError, "inp has 5 elements but the shape needs 6");
  assertThrows(() => matmul(f(5), f(6), f(9), null, 2, 3, 3), RangeError, "out has 5 elements");
  assertThrows(() => matmul(f(6), f(6), f(8), null, 2, 3, 3), RangeError, "weight has 8 elements");
  assertThrows(() => matmulTransposed(f(6), f(6), f(8), null, 2, 3, 3), RangeError, "weightT has 8 elements");
  assertThrows(() => matmul(f(6), f(6), f(9), f(2), 2, 3, 3), RangeError, "bias has 2 elements");
  assertThrows(() => matmul(f(6), f(6), f(9), null, -1, 3, 3), RangeError, "rows must be a non-negative integer");
  assertThrows(() => matmul(f(6), f(6), f(9), null, 2, 1.5, 3), RangeError, "inDim must be a non-negative integer");
  assertThrows(() => matmulTransposed(f(6), f(6), f(9), null, 2, 3, NaN), RangeError, "outDim must be");
  const notFloat = new Float64Array(6) as unknown as Float32Array;
  assertThrows(() => matmul(f(6), notFloat, f(9), null, 2, 3, 3), TypeError, "inp must be a Float32Array");
});

Deno.test("uleb() and sleb() encode LEB128 as the published worked examples and at the byte boundaries", () => {
  // 624485 and -123456 are the worked examples of the Wikipedia article on LEB128
  assertEquals(uleb(624485), [0xe5, 0x8e, 0x26]);
  assertEquals(sleb(-123456), [0xc0, 0xbb, 0x78]);
  const unsigned: [number, number[]][] = [[0, [0]], [127, [0x7f]], [128, [0x80, 0x01]], [2 ** 32 - 1, [
    0xff,
    0xff,
    0xff,
    0xff,
    0x0f,
  ]]];
  for (const [v, bytes] of unsigned) assertEquals(uleb(v), bytes, `uleb(${v})`);
  const signed: [number, number[]][] = [[0, [0]], [63, [0x3f]], [64, [0xc0, 0x00]], [-1, [0x7f]], [-64, [0x40]], [-65, [
    0xbf,
    0x7f,
  ]]];
  for (const [v, bytes] of signed) assertEquals(sleb(v), bytes, `sleb(${v})`);
});

Deno.test("wasmModule() builds modules whose exports run; compileWasm() gives null for rejected bytes", () => {
  // put(p, v): memory[p] = v; add(p): memory[p] += 5 (as i32), two functions of different arity
  const put = { name: "put", params: 2, i32Locals: 0, v128Locals: 0, body: [...get(0), ...get(1), ...i32Store()] };
  // deno-fmt-ignore
  const addBody = [...get(0), ...get(0), 0x28, 2, 0, ...i32(5), 0x6a, ...i32Store()]; // i32.load, i32.add
  const add = { name: "add", params: 1, i32Locals: 0, v128Locals: 0, body: addBody };
  const module = compileWasm(() => wasmModule([put, add]));
  assert(module, "a valid module compiles");
  const memory = new WebAssembly.Memory({ initial: 1 });
  const ex = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, (...a: number[]) => void>;
  ex.put(8, -3);
  ex.add(8);
  assertEquals(new Int32Array(memory.buffer, 8, 1)[0], 2);
  assertEquals(compileWasm(() => new Uint8Array([0, 0x61, 0x73, 0x6d, 2, 0, 0, 0])), null); // unknown version
  assertEquals(
    compileWasm(() => {
      throw new Error("builder failed");
    }),
    null,
  );
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
  // far tails and special values: x, 0 (never NaN from ∞/∞ or ∞·0), the sign of zero, NaN
  const special = new Float32Array([-1e4, -100, 100, 1e4, -0, NaN]);
  geluTanh(special, special, special.length);
  assertEquals(Array.from(special), [-0, -0, 100, 1e4, -0, NaN]);
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

Deno.test("softmaxCausal() on one row sums to one, keeps order, survives large inputs and touches only its view", () => {
  const x = new Float32Array([9, 1000, 1001, 999, 9]);
  softmaxCausal(x.subarray(1, 4), 1, 3, 3, 1);
  assertEquals(x[0], 9);
  assertEquals(x[4], 9);
  const e = [Math.exp(-1), 1, Math.exp(-2)], z = e[0] + e[1] + e[2];
  for (let i = 0; i < 3; i++) assertAlmostEquals(x[1 + i], e[i] / z, 1e-6);
  assertAlmostEquals(x[1] + x[2] + x[3], 1, 1e-6);
  assert(x[2] > x[1] && x[1] > x[3]);
});

Deno.test("softmaxCausal() gives each row the scaled softmax of its visible keys and zeros after them", () => {
  const rnd = lcg(11);
  const rows = 5, cols = 9, visible = 3, scale = 0.37;
  const x = randomArray(rows * cols, () => rnd() * 30);
  const before = x.slice();
  softmaxCausal(x, rows, cols, visible, scale);
  for (let r = 0; r < rows; r++) {
    const v = Math.min(cols, visible + r), row = Array.from(before.subarray(r * cols, r * cols + v));
    const max = Math.max(...row), e = row.map((s) => Math.exp((s - max) * scale)), z = e.reduce((a, b) => a + b);
    for (let j = 0; j < cols; j++) {
      if (j < v) assertAlmostEquals(x[r * cols + j], e[j] / z, 1e-6);
      else assertEquals(x[r * cols + j], 0);
    }
  }
  // Masked scores may be anything, even NaN or -Infinity; a visible -Infinity gets probability 0.
  const y = new Float32Array([1, NaN, -Infinity, -Infinity, 2, NaN]);
  softmaxCausal(y, 2, 3, 1, 1);
  assertEquals(Array.from(y), [1, 0, 0, 0, 1, 0]);
  // A row sees at most every key.
  const wide = new Float32Array([0, 0, 0, 0]);
  softmaxCausal(wide, 1, 4, 10, 1);
  assertEquals(Array.from(wide), [0.25, 0.25, 0.25, 0.25]);
});

Deno.test("a pinned weight gives the same bits as copying it per call, for every shape, block and row count", () => {
  const rnd = lcg(21);
  const copying = createSimdMatmul()!, pinning = createSimdMatmul()!;
  // 600 columns: two 512-column blocks and padding to 16; 300 inputs: two 256-deep passes.
  const shapes: [number, number][] = [[96, 288], [384, 96], [96, 4096], [300, 600], [33, 47]];
  for (const [inDim, outDim] of shapes) {
    for (const transposed of [false, true]) {
      const w = randomArray(inDim * outDim, rnd), b = randomArray(outDim, rnd);
      assert(pinning.pin(w, inDim, outDim, transposed, 2 ** 30), `pin [${inDim}, ${outDim}] transposed=${transposed}`);
      assert(pinning.pin(w, inDim, outDim, transposed, 2 ** 30), "pinning again is a no-op that answers true");
      for (const rows of [1, 5, 6, 13]) {
        const inp = randomArray(rows * inDim, rnd);
        for (const bias of [null, b]) {
          const want = new Float32Array(rows * outDim), got = new Float32Array(rows * outDim);
          assert(copying.run(want, inp, w, bias, rows, inDim, outDim, transposed));
          assert(pinning.run(got, inp, w, bias, rows, inDim, outDim, transposed));
          assertEquals(got, want, `[${rows}, ${inDim}, ${outDim}] transposed=${transposed} bias=${!!bias}`);
        }
      }
      // The same array under another shape or orientation is not the pinned copy: it is copied as usual.
      const inp = randomArray(2 * outDim, rnd);
      const want = new Float32Array(2 * inDim), got = new Float32Array(2 * inDim);
      assert(copying.run(want, inp, w, null, 2, outDim, inDim, !transposed));
      assert(pinning.run(got, inp, w, null, 2, outDim, inDim, !transposed));
      assertEquals(got, want, `[${outDim}, ${inDim}] used the other way round`);
    }
  }
  assertGreater(pinning.pinnedBytes(), 0);
  assertEquals(copying.pinnedBytes(), 0);
});

Deno.test("pin() refuses what would pass its budget and pins nothing then", () => {
  const simd = createSimdMatmul()!;
  const a = new Float32Array(64 * 64), big = new Float32Array(512 * 512);
  assert(simd.pin(a, 64, 64, false, 64 * 64 * 4));
  const held = simd.pinnedBytes();
  assertEquals(held, 64 * 64 * 4);
  assertEquals(simd.pin(big, 512, 512, false, held + 512 * 512 * 4 - 1), false);
  assertEquals(simd.pinnedBytes(), held);
  assertEquals(simd.pin(new Float32Array(3), 64, 64, false, 2 ** 30), false, "an array shorter than its shape");
});
