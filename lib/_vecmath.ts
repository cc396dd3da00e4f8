/**
 * Elementwise `exp`, GELU (tanh form) and SiLU in WebAssembly SIMD, four lanes at a time.
 *
 * V8's `Math.exp` costs about 9 ns per call on the machines we measure on, so the GELU of one
 * GPT-2 MLP (`pos × d_mlp` values) took longer than the matrix product before it. Here `exp` is
 * computed the way vector math libraries do: clamp, split `x = k·ln 2 + r` with `k` an integer and
 * `|r| ≤ ln 2 / 2` (Cody–Waite: `ln 2` in two parts, so `r` is exact to float32), a degree-7 Taylor
 * polynomial for `eʳ` (truncation error `(ln 2/2)⁸/8! ≈ 5·10⁻⁹`, below float32's `6·10⁻⁸`), and
 * `2ᵏ` built from its exponent bits. Measured against `Math.exp`: within 1.2 float32 ulps over
 * `[-87.33, 88.37]`. GELU and SiLU are `x / (1 + eᵗ)` with `t` computed in float32 first, so for
 * `x < 0` (large `t`) their relative error grows with `|t|`; absolute errors stay below `6·10⁻⁷`
 * on `[-12, 12]` (`tests/vecmath_test.ts`).
 *
 * Edges: `exp(x)` is `+∞` for `x > 88.37` (float32's largest finite value is `e^88.72`; the last
 * third of a unit is given up so that `2ᵏ` never needs exponent 128), `0` for `x < -87.33` (no
 * subnormals), and NaN for NaN. So `gelu(-10⁴) = -0`, `gelu(10⁴) = 10⁴`, as in the float64 formula.
 *
 * Lanes are independent: an element's result depends only on its value, never on the length of
 * the call or its neighbours. Values are processed through a fixed 256 KiB scratch memory in
 * chunks, so no call grows memory.
 *
 * @module
 */
import {
  type Code,
  compileWasm,
  forLoop,
  get,
  i32,
  OP,
  set,
  SIMD,
  v128Load,
  v128Store,
  type WasmFunction,
  wasmModule,
} from "./_wasm.ts";

/** The elementwise functions of this module. */
export type VecOp = "exp" | "gelu" | "silu";

/** Floats per chunk: the whole 4-page scratch memory. */
const CHUNK = 65536;

/** `x > EXP_HI` gives `+∞`: `EXP_HI·log₂e = 127.49`, so `k ≤ 127` and `2ᵏ` stays finite. */
const EXP_HI = 88.37;
/** `x < EXP_LO` gives `0`: `EXP_LO·log₂e = -125.99`, so `k ≥ -126`, the smallest normal exponent. */
const EXP_LO = -87.33;
/** `ln 2 = LN2_HI + LN2_LO`; `LN2_HI` has 9 significant bits, so `k·LN2_HI` is exact for `|k| < 2¹⁵`. */
const LN2_HI = 0.693359375;
const LN2_LO = Math.LN2 - 0.693359375;
/**
 * `1.5·2²³ + 127`: adding it to `|t| < 2²¹` rounds `t` to the nearest integer `k` (float32 has no
 * bits left for fractions there) and leaves `k + 127`, the biased exponent of `2ᵏ`, in the low
 * 9 bits of the sum (the `0.5·2²³` keeps the sum in one binade for negative `t` too).
 */
const SHIFTER = 1.5 * 2 ** 23 + 127;
/** `-2·√(2/π)`: GELU's `0.5·(1 + tanh(u))` is the logistic `1 / (1 + exp(-2u))`. */
const GELU_NEG_2K = -2 * Math.sqrt(2 / Math.PI);
/** Taylor coefficients `1/n!`, n = 7 … 0, for Horner's rule. */
const TAYLOR = [1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1];

// Prefixed SIMD opcodes beyond the shared set in _wasm.ts (WebAssembly core spec 2.0, SIMD).
const F32X4_SUB = [0xfd, 0xe5, 0x01];
const F32X4_DIV = [0xfd, 0xe7, 0x01];
const F32X4_MIN = [0xfd, 0xe8, 0x01];
const F32X4_MAX = [0xfd, 0xe9, 0x01];
const F32X4_LT = [0xfd, 0x43];
const F32X4_GT = [0xfd, 0x44];
const F32X4_NEG = [0xfd, 0xe1, 0x01];
const V128_ANDNOT = [0xfd, 0x4f];
const V128_BITSELECT = [0xfd, 0x52];
const I32X4_SHL = [0xfd, 0xab, 0x01];

/** `v128.const` of four equal f32 lanes. */
function f32x4(v: number): Code {
  const bytes = new Uint8Array(new Float32Array([v, v, v, v]).buffer);
  return [0xfd, 0x0c, ...bytes];
}

/**
 * The constants of the kernels, each held in a v128 local set once before the loop (a
 * `v128.const` inside the loop is rebuilt from immediates on every iteration by V8 on x86-64,
 * which made `exp` 1.4 times slower: 0.40 ms instead of 0.28 ms for 98,304 values).
 */
const CONSTANTS = {
  hi: f32x4(EXP_HI),
  lo: f32x4(EXP_LO),
  log2e: f32x4(Math.LOG2E),
  ln2Hi: f32x4(LN2_HI),
  ln2Lo: f32x4(LN2_LO),
  shifter: f32x4(SHIFTER),
  inf: f32x4(Infinity),
  one: f32x4(1),
  geluC: f32x4(0.044715),
  geluK: f32x4(GELU_NEG_2K),
  ...Object.fromEntries(TAYLOR.map((c, i) => [`c${i}`, f32x4(c)])),
} as Record<string, Code>;

/** v128 locals: the constants first (in CONSTANTS order), then the working vectors. */
function locals(first: number) {
  const names = Object.keys(CONSTANTS);
  const c = Object.fromEntries(names.map((n, i) => [n, first + i])) as Record<string, number>;
  const w = first + names.length;
  const init = names.flatMap((n) => [...CONSTANTS[n], ...set(c[n])]);
  return { c, init, x: w, y: w + 1, a: w + 2, k: w + 3, r: w + 4, t: w + 5, n: w + 6, count: names.length + 7 };
}

/**
 * Code computing `exp` of v128 local `x` into local `out`, using locals `a`, `k`, `r`, `n` as
 * scratch (`out` may be `a`, `k` or `r`, not `x` or `n`); `c` holds the constants' locals.
 */
function expVec(c: Record<string, number>, x: number, out: number, a: number, k: number, r: number, n: number): Code {
  // deno-fmt-ignore
  return [
    ...get(x), ...get(c.hi), ...F32X4_MIN, ...get(c.lo), ...F32X4_MAX, ...set(a),
    // n = a·log₂e + SHIFTER rounds to an integer: its low mantissa bits are k + 127; k = n - SHIFTER
    ...get(a), ...get(c.log2e), ...SIMD.F32X4_MUL, ...get(c.shifter), ...SIMD.F32X4_ADD, ...set(n),
    ...get(n), ...get(c.shifter), ...F32X4_SUB, ...set(k),
    ...get(a), ...get(k), ...get(c.ln2Hi), ...SIMD.F32X4_MUL, ...F32X4_SUB,
    ...get(k), ...get(c.ln2Lo), ...SIMD.F32X4_MUL, ...F32X4_SUB, ...set(r),
    // p = ((c0·r + c1)·r + …)·r + c7, left on the stack
    ...get(c.c0),
    ...TAYLOR.slice(1).flatMap((_, i) => [...get(r), ...SIMD.F32X4_MUL, ...get(c[`c${i + 1}`]), ...SIMD.F32X4_ADD]),
    // 2ᵏ: exponent bits (k + 127) << 23, the low bits of n moved up (the bits above them fall off)
    ...get(n), ...i32(23), ...I32X4_SHL,
    ...SIMD.F32X4_MUL, ...set(out),
    // x > HI → +∞ (NaN compares false and stays NaN); x < LO → 0
    ...get(c.inf), ...get(out), ...get(x), ...get(c.hi), ...F32X4_GT, ...V128_BITSELECT,
    ...get(x), ...get(c.lo), ...F32X4_LT, ...V128_ANDNOT, ...set(out),
  ];
}

/** `op(ptr, bytes)`: in place over `bytes` (a multiple of 16) bytes of floats at `ptr`. */
function elementwise(op: VecOp): WasmFunction {
  const [ptr, bytes, p] = [0, 1, 2];
  const { c, init, x, y, a, k, r, t, n, count } = locals(3);
  let body: Code;
  if (op === "exp") body = [...expVec(c, x, y, a, k, r, n), ...get(y)];
  else {
    // gelu: t = -2√(2/π)·x·(1 + 0.044715·x²); silu: t = -x. Then x / (1 + exp(t)).
    // deno-fmt-ignore
    const arg: Code = op === "gelu"
      ? [...get(x), ...get(x), ...SIMD.F32X4_MUL, ...get(c.geluC), ...SIMD.F32X4_MUL, ...get(c.one), ...SIMD.F32X4_ADD,
        ...get(x), ...SIMD.F32X4_MUL, ...get(c.geluK), ...SIMD.F32X4_MUL]
      : [...get(x), ...F32X4_NEG];
    // deno-fmt-ignore
    body = [
      ...arg, ...set(t), ...expVec(c, t, y, a, k, r, n),
      ...get(x), ...get(c.one), ...get(y), ...SIMD.F32X4_ADD, ...F32X4_DIV,
    ];
  }
  // deno-fmt-ignore
  const loop = forLoop(p, get(ptr), [...get(ptr), ...get(bytes), OP.I32_ADD], 16, [
    ...get(p), ...get(p), ...v128Load(), ...set(x), ...body, ...v128Store(),
  ]);
  return { name: op, params: 2, i32Locals: 1, v128Locals: count, body: [...init, ...loop] };
}

type Fn = (ptr: number, bytes: number) => void;
interface Engine {
  heap: Float32Array;
  fns: Record<VecOp, Fn>;
}

let engine: Engine | null | undefined;

function vecEngine(): Engine | null {
  if (engine !== undefined) return engine;
  const module = compileWasm(() => wasmModule((["exp", "gelu", "silu"] as const).map(elementwise)));
  if (!module) return (engine = null);
  const memory = new WebAssembly.Memory({ initial: (CHUNK * 4) / 65536, maximum: (CHUNK * 4) / 65536 });
  const e = new WebAssembly.Instance(module, { env: { memory } }).exports;
  engine = {
    heap: new Float32Array(memory.buffer),
    fns: { exp: e.exp as Fn, gelu: e.gelu as Fn, silu: e.silu as Fn },
  };
  return engine;
}

/**
 * Applies `op` to `inp[0 .. n)` into `out[0 .. n)` in WebAssembly SIMD (float32 arithmetic), or
 * returns `false`, touching nothing, where the runtime has no WebAssembly SIMD.
 * `out` may be `inp`; any other overlap is not allowed. No argument checks.
 *
 * - `"exp"`: `eˣ` (edges in the module doc)
 * - `"gelu"`: `x / (1 + exp(-2·√(2/π)·(x + 0.044715·x³)))`, GPT-2's `gelu_new`
 * - `"silu"`: `x / (1 + exp(-x))`
 *
 * @param op the function
 * @param out destination (at least `n` elements)
 * @param inp input (at least `n` elements)
 * @param n element count
 * @returns `true` when done, `false` without SIMD
 * @example
 * ```ts
 * import { vecApply } from "./_vecmath.ts";
 * const x = new Float32Array([0, 1, -1]);
 * if (vecApply("exp", x, x, 3)) console.log(x); // ≈ Float32Array [1, 2.7183, 0.3679]
 * ```
 */
export function vecApply(op: VecOp, out: Float32Array, inp: Float32Array, n: number): boolean {
  const e = vecEngine();
  if (!e) return false;
  const fn = e.fns[op], heap = e.heap;
  for (let start = 0; start < n; start += CHUNK) {
    const len = Math.min(CHUNK, n - start), padded = Math.ceil(len / 4) * 4;
    heap.set(inp.subarray(start, start + len));
    heap.fill(0, len, padded);
    fn(0, padded * 4);
    out.set(heap.subarray(0, len), start);
  }
  return true;
}
