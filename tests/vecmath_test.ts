/**
 * Unit tests of lib/_vecmath.ts (WebAssembly SIMD exp, GELU and SiLU) against `Math.exp` and
 * the float64 formulas, measured in float32 ulps of the true value.
 */
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import { vecApply } from "../lib/_vecmath.ts";

/** One float32 ulp at the magnitude of `v` (the spacing of float32 numbers there). */
function ulp(v: number): number {
  const a = Math.abs(Math.fround(v));
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

function apply(op: "exp" | "gelu" | "silu", xs: ArrayLike<number>): Float32Array {
  const x = Float32Array.from(xs), out = new Float32Array(x.length);
  assert(vecApply(op, out, x, x.length), "this runtime has WebAssembly SIMD");
  return out;
}

/** A dense grid over [lo, hi) as float32 values. */
function grid(lo: number, hi: number, step: number): number[] {
  const xs: number[] = [];
  for (let v = lo; v < hi; v += step) xs.push(Math.fround(v));
  return xs;
}

Deno.test("vecApply('exp') is within 2 ulp of Math.exp from -87.33 to 88.37", () => {
  const xs = grid(-87.33, 88.37, 0.000731);
  const out = apply("exp", xs);
  let worst = 0;
  for (let i = 0; i < xs.length; i++) {
    const want = Math.exp(xs[i]);
    worst = Math.max(worst, Math.abs(out[i] - want) / ulp(want));
  }
  assertLessOrEqual(worst, 2, `worst error ${worst} ulp`);
});

Deno.test("vecApply('exp') overflows to +∞, underflows to 0 and keeps NaN", () => {
  const out = apply("exp", [88.5, 1e30, Infinity, -87.5, -1e30, -Infinity, NaN, 0, -0]);
  assertEquals(Array.from(out), [Infinity, Infinity, Infinity, 0, 0, 0, NaN, 1, 1]);
});

Deno.test("vecApply('gelu') and ('silu') are within 4 ulp of the float64 formulas, plus exp's condition", () => {
  const xs = grid(-12, 12, 0.00117);
  const gelu = apply("gelu", xs), silu = apply("silu", xs);
  let worstGelu = 0, worstSilu = 0;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    // Both are x / (1 + eᵗ); GELU's 0.5·x·(1 + tanh(u)) in this logistic form, since in float64
    // 1 + tanh(u) cancels to 0 for u < -19.
    const tGelu = -2 * Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3), tSilu = -x;
    const g = x / (1 + Math.exp(tGelu)), s = x / (1 + Math.exp(tSilu));
    // t is computed in float32 (GELU: 5 roundings, SiLU: none) before the exp, which multiplies
    // its relative error by |t| (exp's condition number). This matters only for x < 0, where the
    // result is small: over this grid the largest absolute error there is 5·10⁻⁸.
    const allowed = (v: number, t: number, roundings: number) =>
      4 * ulp(v) + Math.abs(v) * Math.abs(t) * roundings * 2 ** -24;
    // Results below 1e-36 may flush to ∓0 (exp overflows to ∞ from 88.37, not 88.72).
    if (Math.abs(g) > 1e-36) worstGelu = Math.max(worstGelu, Math.abs(gelu[i] - g) / allowed(g, tGelu, 5));
    worstSilu = Math.max(worstSilu, Math.abs(silu[i] - s) / allowed(s, tSilu, 0));
  }
  assertLessOrEqual(worstGelu, 1, `gelu error ${worstGelu} of the allowed`);
  assertLessOrEqual(worstSilu, 1, `silu error ${worstSilu} of the allowed`);
});

Deno.test("vecApply('gelu') saturates to x and -0 in the tails, keeps the sign of zero and NaN", () => {
  assertEquals(Array.from(apply("gelu", [-1e4, -100, 100, 1e4, -0, 0, NaN])), [-0, -0, 100, 1e4, -0, 0, NaN]);
  assertEquals(Array.from(apply("silu", [-1e4, 1e4, -0, NaN])), [-0, 1e4, -0, NaN]);
});

Deno.test("vecApply() gives each element the same bits whatever the length, offset and chunking of the call", () => {
  let s = 7;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 20 - 10;
  // Longer than one 65,536-float chunk, and not a multiple of 4.
  const x = Float32Array.from({ length: 65536 + 4099 }, rnd);
  for (const op of ["exp", "gelu", "silu"] as const) {
    const whole = apply(op, x);
    for (const [start, len] of [[0, 1], [3, 5], [65530, 11], [x.length - 3, 3]]) {
      const part = apply(op, x.subarray(start, start + len));
      assertEquals(Array.from(part), Array.from(whole.subarray(start, start + len)), `${op} at ${start}+${len}`);
    }
    // in place
    const y = x.slice();
    assert(vecApply(op, y, y, y.length));
    assertEquals(y, whole);
  }
});

Deno.test("vecApply() writes only the first n elements of out", () => {
  const out = new Float32Array([9, 9, 9, 9, 9, 9]);
  assert(vecApply("exp", out, new Float32Array([0, 0, 0, 0, 0, 0]), 5));
  assertEquals(Array.from(out), [1, 1, 1, 1, 1, 9]);
});
