/**
 * Private kernels for `tensorStats()` and `inspectWeights()` in lib/weights.ts:
 * Σ(x − shift), Σ(x − shift)², Σ|x|, min, max, the count of |x| ≤ t, and a
 * histogram, over float32 values, as WebAssembly SIMD kernels (built here
 * from bytes, no toolchain) with plain JavaScript kernels as the reference and
 * the fallback.
 *
 * Both give the figures of the float64 definitions:
 * - sums accumulate in float64 (WebAssembly: two `f64x2` accumulators, four
 *   partial sums, per figure, added at the end); min, max and |x| ≤ t are
 *   exact in float32;
 * - value x goes to bin `min(floor((x − lo) · scale), bins − 1)`, computed in
 *   float64 as the JavaScript loop does, so histogram counts agree exactly.
 *
 * WebAssembly passes: with a histogram over the data's own range, one pass for
 * min and max, then one fused pass for the sums and the bin counts, summing
 * about `shift = min` so `x − lo` is shared (long tensors count pairs of bins,
 * one counter bump per two values); otherwise a single fused pass.
 * The kernels read their own linear memory: values elsewhere are copied in
 * (one `memcpy`), but a file read with {@linkcode leaseFile} already lives in
 * kernel memory, so its float32 tensors are summed in place, at any alignment.
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
  tee,
  uleb,
  v128Load,
  v128Load32Splat,
  v128Store,
  type WasmFunction,
  wasmModule,
} from "./_wasm.ts";

/**
 * Which implementation runs: `"auto"` (WebAssembly SIMD when the runtime has it), `"wasm"` or `"js"`.
 *
 * @example
 * ```ts
 * import type { StatsKernel } from "./_stats.ts";
 * const k: StatsKernel = "js";
 * console.log(k);
 * ```
 */
export type StatsKernel = "auto" | "wasm" | "js";

/**
 * Float32 values: a Float32Array, or the little-endian bytes of one at any alignment.
 *
 * @example
 * ```ts
 * import type { FloatSource } from "./_stats.ts";
 * const bytes: FloatSource = new Uint8Array(new Float32Array([1, 2]).buffer);
 * console.log(bytes.byteLength); // 8
 * ```
 */
export type FloatSource = Float32Array | Uint8Array;

/**
 * What to bin: `bins` ≥ 1 bins over `range`, or over the finite values' min and max.
 *
 * @example
 * ```ts
 * import type { HistogramRequest } from "./_stats.ts";
 * const h: HistogramRequest = { bins: 16, range: [-1, 1] };
 * console.log(h.bins);
 * ```
 */
export interface HistogramRequest {
  /** Number of bins. */
  bins: number;
  /** Explicit `[lo, hi]` (finite, hi > lo): values outside are counted apart. Default: `[min, max]`. */
  range?: readonly [number, number];
}

/**
 * Raw sums over a tensor, from {@linkcode tensorSums}. Sums are of `c = x − shift` over
 * the finite values x; with no finite value, min is Infinity and max −Infinity.
 *
 * @example
 * ```ts
 * import { tensorSums, type TensorSums } from "./_stats.ts";
 * const s: TensorSums = tensorSums(new Float32Array([3, 4]), 0, null);
 * console.log(s.shift + s.sum / s.count); // 3.5, the mean
 * ```
 */
export interface TensorSums {
  /** Values (finite and not). */
  count: number;
  /** The offset subtracted before summing squares (keeps the variance of offset data, e.g. gains near 1, accurate). */
  shift: number;
  /** Σ c over finite values. */
  sum: number;
  /** Σ c² over finite values. */
  sumSq: number;
  /** Σ |x| over finite values. */
  sumAbs: number;
  /** Smallest finite value. */
  min: number;
  /** Largest finite value. */
  max: number;
  /** Values with |x| ≤ the threshold. */
  nearZero: number;
  /** NaN and ±Infinity values. */
  nonFinite: number;
  /** The histogram, when one was asked for. */
  histogram?: {
    /** Lower edge used. */
    lo: number;
    /** Upper edge used. */
    hi: number;
    /** Count per bin. */
    counts: Float64Array;
    /** Finite values outside `[lo, hi]` (only with an explicit range). */
    outside: number;
  };
}

/** Up to this many bins, the kernels count pairs of values (a 2·(bins + 1)² counter table, 33 KiB at most). */
const PAIR_MAX_BINS = 63;

/**
 * Bins up to this many are counted by the WebAssembly kernels (4 lane counters per bin, 64 KiB); more use JavaScript.
 *
 * @example
 * ```ts
 * import { MAX_WASM_BINS } from "./_stats.ts";
 * console.log(MAX_WASM_BINS); // 4096
 * ```
 */
export const MAX_WASM_BINS = 4096;

// ---------------------------------------------------------------------------
// Entry points

/**
 * The sums behind `tensorStats()`: Σc, Σc², Σ|x| in float64, min, max, the
 * near-zero and non-finite counts, and optionally histogram counts. NaN and
 * ±Infinity are left out of every figure but their count.
 *
 * @param src the values (`[n]` floats, or `4n` little-endian bytes)
 * @param thr near-zero threshold (|x| ≤ thr; ≥ 0)
 * @param hist bins and range, or null for no histogram
 * @param kernel implementation; `"wasm"` throws a RangeError when the runtime has no WebAssembly SIMD
 * @returns the sums
 * @throws {RangeError} for an unknown kernel, or `"wasm"` without WebAssembly SIMD
 *
 * @example
 * ```ts
 * import { tensorSums } from "./_stats.ts";
 * const s = tensorSums(new Float32Array([1, 2, 3, 4]), 0, { bins: 2 });
 * console.log(s.shift + s.sum / s.count, s.min, s.max, Array.from(s.histogram!.counts)); // 2.5 1 4 [2, 2]
 * ```
 */
export function tensorSums(
  src: FloatSource,
  thr: number,
  hist: HistogramRequest | null,
  kernel: StatsKernel = "auto",
): TensorSums {
  const w = pick(kernel);
  const n = src instanceof Float32Array ? src.length : src.byteLength >> 2;
  if (w !== null && (hist === null || hist.bins <= MAX_WASM_BINS) && HEADER + n * 4 + 16 <= MAX_MEMORY) {
    let out: TensorSums | undefined;
    try {
      out = sumsWasm(w, src, thr, hist);
    } catch (e) {
      // Memory that cannot grow (or any trap) leaves the JavaScript kernels, which need no extra memory.
      if (kernel === "wasm" || !(e instanceof RangeError || e instanceof WebAssembly.RuntimeError)) throw e;
    }
    // Do not keep a large scratch memory alive for the rest of the process.
    if (scratch !== undefined && scratch.memory.buffer.byteLength > KEEP) scratch = undefined;
    if (out !== undefined) return out;
  }
  return sumsJs(asFloats(src), thr, hist);
}

/**
 * A Float32Array of `n` values in the kernels' own memory, for a caller about to
 * fill a tensor anyway (e.g. dequantizing it): {@linkcode tensorSums} then reads it
 * without a copy. Valid until the next call into this module; null without
 * WebAssembly SIMD or when `n` does not fit.
 *
 * @param n number of floats
 * @returns a view to fill, or null
 *
 * @example
 * ```ts
 * import { stageFloats, tensorSums } from "./_stats.ts";
 * const d = stageFloats(3);
 * if (d !== null) {
 *   d.set([1, 2, 3]);
 *   console.log(tensorSums(d, 0, null).max); // 3
 * }
 * ```
 */
export function stageFloats(n: number): Float32Array | null {
  const w = kernels();
  if (w === null || HEADER + n * 4 + 16 > MAX_MEMORY) return null;
  grow(w, n * 4);
  return new Float32Array(w.memory.buffer, HEADER, n);
}

/**
 * Kernel memory holding a file's bytes, from {@linkcode leaseFile}.
 *
 * @example
 * ```ts
 * import { type FileLease, leaseFile } from "./_stats.ts";
 * const lease: FileLease | null = leaseFile("models/paramscope-gpt2-tiny/config.json");
 * lease?.release();
 * ```
 */
export interface FileLease {
  /** The file's bytes (a view of kernel memory): valid until {@linkcode FileLease.release}. */
  bytes: Uint8Array;
  /** Gives the memory back; the bytes must not be used afterwards. */
  release(): void;
}

/**
 * Reads a file into kernel memory that is reused from call to call (no fresh
 * allocation to fault in, no copy per tensor): {@linkcode tensorSums} reads
 * float32 tensors that are views of these bytes where they lie, at any
 * alignment. One lease at a time; null when one is out, without WebAssembly
 * SIMD, or for a file over 1 GiB (the caller then reads it as usual). Memory
 * over 64 MiB is dropped on release rather than kept for the next call.
 *
 * @param path a file
 * @returns the lease, or null
 * @throws Deno's errors for a missing or unreadable file
 *
 * @example
 * ```ts
 * import { leaseFile } from "./_stats.ts";
 * const lease = leaseFile("models/paramscope-gpt2-tiny/config.json");
 * if (lease !== null) {
 *   console.log(JSON.parse(new TextDecoder().decode(lease.bytes)).model_type); // "gpt2"
 *   lease.release();
 * }
 * ```
 */
export function leaseFile(path: string): FileLease | null {
  if (leased || compiled() === null) return null;
  leased = true;
  let ok = false;
  try {
    // Synchronous: the statistics that follow block the event loop far longer than this read, and an
    // asynchronous read costs a thread-pool round trip per call.
    const file = Deno.openSync(path, { read: true });
    try {
      const size = file.statSync().size;
      if (size > LEASE_MAX) return null;
      const w = arena ?? (arena = instantiate(pagesFor(size)));
      grow(w, size);
      const bytes = new Uint8Array(w.memory.buffer, HEADER, size);
      let got = 0;
      while (got < size) {
        const k = file.readSync(bytes.subarray(got));
        if (k === null || k === 0) break;
        got += k;
      }
      ok = true;
      return {
        bytes: bytes.subarray(0, got),
        release: () => {
          if (w.memory.buffer.byteLength > KEEP) arena = undefined;
          leased = false;
        },
      };
    } finally {
      file.close();
    }
  } finally {
    if (!ok) leased = false;
  }
}

/**
 * Whether the WebAssembly SIMD kernels run in this runtime.
 *
 * @returns true when they compiled
 *
 * @example
 * ```ts
 * import { hasWasmStats } from "./_stats.ts";
 * console.log(hasWasmStats()); // true in Deno
 * ```
 */
export function hasWasmStats(): boolean {
  return kernels() !== null;
}

// ---------------------------------------------------------------------------
// JavaScript kernels (the reference and the fallback)

function asFloats(src: FloatSource): Float32Array {
  if (src instanceof Float32Array) return src;
  const n = src.byteLength >> 2;
  if (src.byteOffset % 4 === 0) return new Float32Array(src.buffer, src.byteOffset, n);
  const copy = new Uint8Array(n * 4);
  copy.set(src.subarray(0, n * 4));
  return new Float32Array(copy.buffer);
}

function firstFinite(d: Float32Array): number {
  for (let i = 0; i < d.length; i++) if (d[i] - d[i] === 0) return d[i];
  return 0;
}

function sumsJs(d: Float32Array, thr: number, hist: HistogramRequest | null): TensorSums {
  const shift = firstFinite(d);
  let m = momentsJs(d, shift, thr);
  // A NaN or ±Infinity poisons the branch-free sums: redo the pass leaving them out.
  if (!Number.isFinite(m.sum + m.sumSq + m.min + m.max) && d.length > 0) m = momentsSkipping(d, shift, thr);
  if (hist !== null) m.histogram = histogramJs(d, hist, m);
  return m;
}

/**
 * Branch-free: Math.min/max and a conditional add compile to selects (data-dependent
 * branches made this loop several times slower); two partial sums per figure shorten
 * the add chains.
 */
function momentsJs(d: Float32Array, shift: number, thr: number): TensorSums {
  let s0 = 0, s1 = 0, q0 = 0, q1 = 0, a0 = 0, a1 = 0, mn = Infinity, mx = -Infinity, nz = 0;
  const n = d.length;
  const n2 = n & ~1;
  for (let i = 0; i < n2; i += 2) {
    const v = d[i], u = d[i + 1];
    const c = v - shift, e = u - shift;
    s0 += c;
    s1 += e;
    q0 += c * c;
    q1 += e * e;
    const a = Math.abs(v), b = Math.abs(u);
    a0 += a;
    a1 += b;
    nz += (a <= thr ? 1 : 0) + (b <= thr ? 1 : 0);
    mn = Math.min(mn, v, u);
    mx = Math.max(mx, v, u);
  }
  if (n2 < n) {
    const v = d[n2];
    const c = v - shift, a = Math.abs(v);
    s0 += c;
    q0 += c * c;
    a0 += a;
    nz += a <= thr ? 1 : 0;
    mn = Math.min(mn, v);
    mx = Math.max(mx, v);
  }
  return {
    count: n,
    shift,
    sum: s0 + s1,
    sumSq: q0 + q1,
    sumAbs: a0 + a1,
    min: mn,
    max: mx,
    nearZero: nz,
    nonFinite: 0,
  };
}

/** The same sums, leaving out NaN and ±Infinity and counting them. */
function momentsSkipping(d: Float32Array, shift: number, thr: number): TensorSums {
  let s = 0, s2 = 0, sa = 0, mn = Infinity, mx = -Infinity, nz = 0, bad = 0;
  const n = d.length;
  for (let i = 0; i < n; i++) {
    const v = d[i];
    if (!Number.isFinite(v)) {
      bad++;
      continue;
    }
    const c = v - shift;
    s += c;
    s2 += c * c;
    const a = Math.abs(v);
    sa += a;
    nz += a <= thr ? 1 : 0;
    mn = Math.min(mn, v);
    mx = Math.max(mx, v);
  }
  return { count: n, shift, sum: s, sumSq: s2, sumAbs: sa, min: mn, max: mx, nearZero: nz, nonFinite: bad };
}

/** The histogram's edges: the explicit range, else [min, max] of the finite values (±0.5 when they are equal). */
function histRange(hist: HistogramRequest, mn: number, mx: number): [number, number] {
  if (hist.range) return [hist.range[0], hist.range[1]];
  if (!(mn <= mx)) return [-0.5, 0.5]; // no finite value
  return mx > mn ? [mn, mx] : [mn - 0.5, mn + 0.5];
}

function histogramJs(d: Float32Array, hist: HistogramRequest, m: TensorSums): NonNullable<TensorSums["histogram"]> {
  const bins = hist.bins;
  const [lo, hi] = histRange(hist, m.min, m.max);
  const counts = new Float64Array(bins);
  const scale = bins / (hi - lo);
  const last = bins - 1;
  let outside = 0;
  const n = d.length;
  if (hist.range === undefined && m.nonFinite === 0) {
    // Every value lies in [lo, hi]: no range test, only the clamp for x = hi.
    for (let i = 0; i < n; i++) {
      const b = ((d[i] - lo) * scale) | 0;
      counts[b > last ? last : b]++;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = d[i];
      if (v >= lo && v <= hi) {
        const b = ((v - lo) * scale) | 0;
        counts[b > last ? last : b]++;
      } else if (Number.isFinite(v)) outside++;
    }
  }
  return { lo, hi, counts, outside };
}

// ---------------------------------------------------------------------------
// WebAssembly drivers

/**
 * Linear memory: results at OUT (and the kernels' float parameters at OUT + PARAMS); at COUNTS, 4 lane counters (i32) for each of bins + 2 slots (the bins, then
 * values landing exactly on the top edge, then values failing the range test); the data from HEADER.
 */
const OUT = 0;
const COUNTS = 256;
const HEADER = 128 * 1024;
const PAGE = 65536;
const MAX_MEMORY = 2 ** 32;

/** (p, end, out) → () over float32 data at [p, end), the other parameters at out + PARAMS; see kernelBody. */
type KernelFn = (p: number, end: number, out: number) => void;

/** Byte offsets of the kernels' float parameters from out + PARAMS: f64 shift, lo, scale, hi, slot0, fail, f32 thr. */
const PARAMS = 160;
const P_SHIFT = 0, P_LO = 8, P_SCALE = 16, P_HI = 24, P_SLOT0 = 32, P_FAIL = 40, P_THR = 48;

interface Wasm {
  memory: WebAssembly.Memory;
  /** min and max only. */
  minmax: KernelFn;
  /** min, max and the sums. */
  moments: KernelFn;
  /** The sums and bin counts with shift = lo, every value assumed in [lo, hi]. */
  fusedShifted: KernelFn;
  /** The same, counting pairs of bins (one counter bump per two values). */
  fusedPairs: KernelFn;
  /** min, max, the sums about `shift`, and bin counts of values in [lo, hi] (others to bin `last + 1`). */
  fusedRange: KernelFn;
}

let moduleCache: WebAssembly.Module | null | undefined;
/** The instance for values copied in (its memory grows as needed). */
let scratch: Wasm | undefined;
/** The instance whose memory holds leased files, and whether a lease is out. */
let arena: Wasm | undefined;
let leased = false;
const LEASE_MAX = 2 ** 30;
/** Memory above this size is let go after use rather than kept for the next call. */
const KEEP = 64 * 2 ** 20;

function compiled(): WebAssembly.Module | null {
  if (moduleCache === undefined) moduleCache = compileWasm(statsWasmBytes);
  return moduleCache;
}

function instantiate(pages: number): Wasm {
  const memory = new WebAssembly.Memory({ initial: pages });
  const e = new WebAssembly.Instance(compiled()!, { env: { memory } }).exports;
  return {
    memory,
    minmax: e.minmax as KernelFn,
    moments: e.moments as KernelFn,
    fusedShifted: e.fusedShifted as KernelFn,
    fusedPairs: e.fusedPairs as KernelFn,
    fusedRange: e.fusedRange as KernelFn,
  };
}

function pagesFor(bytes: number): number {
  return Math.ceil((HEADER + bytes + 16) / PAGE);
}

function kernels(): Wasm | null {
  if (scratch === undefined) {
    if (compiled() === null) return null;
    try {
      scratch = instantiate(pagesFor(PAGE));
    } catch {
      moduleCache = null;
      return null;
    }
  }
  return scratch;
}

function pick(kernel: StatsKernel): Wasm | null {
  if (kernel === "js") return null;
  if (kernel !== "auto" && kernel !== "wasm") {
    throw new RangeError(`tensorStats(): kernel must be "auto", "wasm" or "js", got ${String(kernel)}`);
  }
  const w = kernels();
  if (kernel === "wasm" && w === null) {
    throw new RangeError(`tensorStats(): this runtime has no WebAssembly SIMD; use kernel "auto" or "js"`);
  }
  return w;
}

/** Grows an instance's memory to hold `bytes` from HEADER. */
function grow(w: Wasm, bytes: number): void {
  const need = HEADER + bytes + 16;
  const have = w.memory.buffer.byteLength;
  if (need > MAX_MEMORY) throw new RangeError(`${bytes} bytes exceed the 4 GiB WebAssembly memory`);
  if (need > have) w.memory.grow(Math.ceil((need - have) / PAGE));
}

/** The instance and address to read `src` at: in place in a leased file, else copied to the scratch memory. */
function place(w: Wasm, src: FloatSource, n: number): { k: Wasm; p: number } {
  if (leased && arena !== undefined && src.buffer === arena.memory.buffer) return { k: arena, p: src.byteOffset };
  if (src.buffer === w.memory.buffer && src.byteOffset === HEADER) return { k: w, p: HEADER }; // staged
  grow(w, n * 4);
  const bytes = src instanceof Float32Array ? new Uint8Array(src.buffer, src.byteOffset, n * 4) : src;
  new Uint8Array(w.memory.buffer, HEADER, n * 4).set(bytes.subarray(0, n * 4));
  return { k: w, p: HEADER };
}

function sumsWasm(w: Wasm, src: FloatSource, thr: number, hist: HistogramRequest | null): TensorSums {
  const n = src instanceof Float32Array ? src.length : src.byteLength >> 2;
  const { k, p } = place(w, src, n);
  const buf = k.memory.buffer;
  const view = new DataView(buf);
  const at = (i: number) => view.getFloat32(p + 4 * i, true);
  // The kernels take 8 values per step; the last n mod 8 are summed here.
  const nMain = n & ~7, end = p + nMain * 4;
  // |x| ≤ thr for a float32 x is |x| ≤ the largest float32 not above thr.
  let t32 = Math.fround(thr);
  if (t32 > thr) t32 = nextDown32(t32);
  let first = 0;
  for (let i = 0; i < n; i++) {
    const v = at(i);
    if (v - v === 0) {
      first = v;
      break;
    }
  }

  let shift = first, lo = 0, hi = 0, scale = 0, mode: "moments" | "shifted" | "pairs" | "range" = "moments";
  let mn = Infinity, mx = -Infinity;
  const bins = hist === null ? 0 : hist.bins;
  if (hist !== null) {
    if (hist.range === undefined) {
      k.minmax(p, end, OUT);
      [mn, mx] = readMinMax(buf);
      for (let i = nMain; i < n; i++) {
        const v = at(i);
        if (v - v === 0) mn = Math.min(mn, v), mx = Math.max(mx, v);
      }
    }
    [lo, hi] = histRange(hist, mn, mx);
    scale = bins / (hi - lo);
    mode = hist.range === undefined && mx > mn && Number.isFinite(mx - mn) ? "shifted" : "range";
    // Counting pairs of bins halves the counter bumps; its (bins + 1)² counters must stay small and pay off.
    if (mode === "shifted" && bins <= PAIR_MAX_BINS && n >= 256 * (bins + 1) ** 2) mode = "pairs";
    if (mode !== "range") shift = lo;
  }
  const pairs = mode === "pairs";
  const lanes = new Int32Array(buf, COUNTS, pairs ? 2 * (bins + 1) ** 2 : (bins + 2) * 4);
  if (hist !== null) lanes.fill(0);
  const run = mode === "moments"
    ? k.moments
    : mode === "shifted"
    ? k.fusedShifted
    : pairs
    ? k.fusedPairs
    : k.fusedRange;
  const params = new DataView(buf, OUT + PARAMS, 64);
  params.setFloat64(P_SHIFT, shift, true);
  params.setFloat64(P_LO, lo, true);
  params.setFloat64(P_SCALE, scale, true);
  params.setFloat64(P_HI, hi, true);
  // Slot b's lane l counter sits at COUNTS + 16b + 4l: as a float, 2^48 + that address / 16 (see kernelBody);
  // with pairs, index i's at COUNTS + 8i + 4l, 2^49 + that address / 8.
  params.setFloat64(P_SLOT0, pairs ? 2 ** 49 + COUNTS / 8 : 2 ** 48 + COUNTS / 16, true);
  params.setFloat64(P_FAIL, bins + 1, true);
  params.setFloat32(P_THR, t32, true);
  run(p, end, OUT);

  const f64 = new Float64Array(buf, OUT, 12);
  let s = (f64[0] + f64[1]) + (f64[2] + f64[3]);
  let s2 = (f64[4] + f64[5]) + (f64[6] + f64[7]);
  let sa = (f64[8] + f64[9]) + (f64[10] + f64[11]);
  const nzLanes = new Int32Array(buf, OUT + 128, 4);
  let nz = nzLanes[0] + nzLanes[1] + nzLanes[2] + nzLanes[3];
  const known = mode === "shifted" || pairs; // min and max came from the first pass
  if (!known) [mn, mx] = readMinMax(buf);
  for (let i = nMain; i < n; i++) {
    const v = at(i);
    const c = v - shift, a = Math.abs(v);
    s += c;
    s2 += c * c;
    sa += a;
    nz += a <= thr ? 1 : 0;
    if (!known) mn = Math.min(mn, v), mx = Math.max(mx, v);
  }
  if (!Number.isFinite(s + s2 + mn + mx) && n > 0) {
    // NaN or ±Infinity: the JavaScript kernels leave them out.
    return sumsJs(asFloats(src instanceof Float32Array ? src : new Uint8Array(buf, p, n * 4)), thr, hist);
  }
  if (mn === 0 || mx === 0) {
    // f32x4.pmin/pmax keep whichever zero came first; Math.min/max order −0 before +0. Look at the bits:
    // min is −0 if any −0 is there, max is +0 if any +0 is (a scan only for tensors whose min or max is 0).
    const bits = p % 4 === 0
      ? new Uint32Array(buf, p, n)
      : new Uint32Array(new Uint8Array(buf, p, n * 4).slice().buffer);
    let neg = mn !== 0, pos = mx !== 0;
    for (let i = 0; i < n && !(neg && pos); i++) {
      const u = bits[i];
      if (u === 0x80000000) neg = true;
      else if (u === 0) pos = true;
    }
    if (mn === 0) mn = neg ? -0 : 0;
    if (mx === 0) mx = pos ? 0 : -0;
  }
  const out: TensorSums = {
    count: n,
    shift,
    sum: s,
    sumSq: s2,
    sumAbs: sa,
    min: mn,
    max: mx,
    nearZero: nz,
    nonFinite: 0,
  };
  if (hist !== null) {
    const last = bins - 1;
    const counts = new Float64Array(bins + 2); // the bins, the top edge, failures of the range test
    if (pairs) {
      // Counter i·(bins + 1) + j counted a value in slot i and one in slot j.
      const w = bins + 1;
      for (let i = 0; i < w; i++) {
        for (let j = 0; j < w; j++) {
          const c = lanes[2 * (i * w + j)] + lanes[2 * (i * w + j) + 1];
          counts[i] += c;
          counts[j] += c;
        }
      }
    } else {
      for (let b = 0; b < bins + 2; b++) {
        counts[b] = lanes[4 * b] + lanes[4 * b + 1] + lanes[4 * b + 2] + lanes[4 * b + 3];
      }
    }
    counts[last] += counts[bins];
    let failed = counts[bins + 1];
    for (let i = nMain; i < n; i++) {
      const v = at(i);
      if (known || (v >= lo && v <= hi)) {
        const b = ((v - lo) * scale) | 0;
        counts[b > last ? last : b]++;
      } else failed++;
    }
    out.histogram = { lo, hi, counts: counts.subarray(0, bins), outside: hist.range === undefined ? 0 : failed };
  }
  return out;
}

function readMinMax(buf: ArrayBufferLike): [number, number] {
  const f = new Float32Array(buf, OUT + 96, 8);
  return [Math.min(f[0], f[1], f[2], f[3]), Math.max(f[4], f[5], f[6], f[7])];
}

const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/** The next float32 toward −∞ of a positive float32 (thresholds are ≥ 0). */
function nextDown32(v: number): number {
  F32_SCRATCH[0] = v;
  U32_SCRATCH[0] -= 1;
  return F32_SCRATCH[0];
}

// ---------------------------------------------------------------------------
// The WebAssembly module, encoded in the binary format with lib/_wasm.ts.

/** A SIMD instruction not in lib/_wasm.ts's table: prefix 0xfd and the opcode as unsigned LEB128. */
const simd = (op: number): Code => [0xfd, ...uleb(op)];
const I32_LOAD = [0x28, 0x02, 0x00], I32_STORE = [0x36, 0x02, 0x00];
/** `v128.load64_splat`: one f64 at a constant offset, in both lanes. */
const load64Splat = (offset: number): Code => [...simd(0x0a), 3, ...uleb(offset)];
const v128Const = (bytes: number[]): Code => [...simd(0x0c), ...bytes];
const shuffle = (lanes: number[]): Code => [...simd(0x0d), ...lanes];
const i32x4Extract = (l: number): Code => [...SIMD.I32X4_EXTRACT_LANE, l];
const F32X4_LE = simd(0x45), F64X2_LE = simd(0x4b), F64X2_GE = simd(0x4c);
const V128_AND = simd(0x4e), V128_BITSELECT = simd(0x52);
const F64X2_PROMOTE_LOW_F32X4 = simd(0x5f);
const I32X4_SUB = simd(0xb1);
const F32X4_ABS = simd(0xe0), F32X4_PMIN = simd(0xea), F32X4_PMAX = simd(0xeb);
const F64X2_ABS = simd(0xec), F64X2_ADD = simd(0xf0), F64X2_SUB = simd(0xf1), F64X2_MUL = simd(0xf2);
const F64X2_FLOOR = simd(0x75);
/** Upper two float32 lanes moved down, so promote_low reaches them. */
const HIGH_HALF = shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
const f32x4Const = (v: number) => v128Const([...new Uint8Array(new Float32Array([v, v, v, v]).buffer)]);
const f64x2Const = (a: number, b: number) => v128Const([...new Uint8Array(new Float64Array([a, b]).buffer)]);

/** What one kernel computes. */
interface KernelSpec {
  /** f32x4 pmin/pmax of the values. */
  minmax: boolean;
  /** Σc, Σc², Σ|x| (f64x2) and the near-zero count (i32x4). */
  sums: boolean;
  /** Bin counts: none; `shifted` (bin from c, shift = lo, no range test); `range` (bin from x − lo, tested). */
  hist: "none" | "shifted" | "pairs" | "range";
}

/**
 * One kernel over float32 data at [p, end), 8 values (two v128) per step:
 *
 * ```
 * kernel(p, end, out):   (shift, lo, scale, hi, slot0, fail: f64 and thr: f32 read from out + PARAMS)
 *   per 4 values v (f32x4):
 *     mn = pmin(mn, v); mx = pmax(mx, v)                                  [minmax]
 *     nz -= (|v| ≤ thr); x = f64(v) as two f64x2 halves; c = x − shift    [sums]
 *     s += c; q += c·c; sa += |x|
 *     per half: a = floor((x − lo) · scale) + slot0 + lane/4              [hist; c · scale when shift = lo]
 *       range: a = slot0 + fail + lane/4 unless lo ≤ x ≤ hi (NaN fails too)
 *       the low 32 bits of a are a counter's address: counter += 1
 *   out: s, q, sa as 2 × f64x2 each at 0..96 (low, high halves), mn, mx (f32x4) at 96, 112, nz (i32x4) at 128
 * ```
 *
 * The address trick: `slot0 = 2^48 + COUNTS/16`. Between 2^48 and 2^49 a float64 steps by 1/16,
 * so for an integer b the mantissa of `b + slot0 + lane/4` is `16·(b + COUNTS/16 + lane/4)`: its low
 * 32 bits are `COUNTS + 16b + 4·lane`, the counter of bin b in that lane, with no float-to-int
 * conversion, clamp or shift. A value at the top edge has b = bins (a slot merged into the last bin
 * afterwards); a counter per lane keeps the four increments of a vector apart.
 */
function kernelBody(spec: KernelSpec): Code {
  const [p, end, out] = [0, 1, 2];
  const addr = 3;
  const [v, xl, xh, cl, ch, s0, s1, q0, q1, a0, a1, mn, mx, nz] = Array.from({ length: 14 }, (_, i) => 4 + i);
  const [shiftv, thrv, lov, hiv, scv, slotLo, slotHi, failLo, failHi] = Array.from({ length: 9 }, (_, i) => 18 + i);
  const addTo = (acc: number, value: Code, op: Code = F64X2_ADD) => [...get(acc), ...value, ...op, ...set(acc)];
  const half = (x: number, c: number, s: number, q: number, a: number, high: boolean) => [
    ...get(v),
    ...(high ? [...get(v), ...HIGH_HALF] : []),
    ...F64X2_PROMOTE_LOW_F32X4,
    ...tee(x),
    ...get(shiftv),
    ...F64X2_SUB,
    ...tee(c),
    ...get(s),
    ...F64X2_ADD,
    ...set(s),
    ...addTo(q, [...get(c), ...get(c), ...F64X2_MUL]),
    ...addTo(a, [...get(x), ...F64X2_ABS]),
  ];
  const inRange = (
    x: number,
  ) => [...get(x), ...get(lov), ...F64X2_GE, ...get(x), ...get(hiv), ...F64X2_LE, ...V128_AND];
  const increment = (a: Code, lane: number) => [
    ...a,
    ...i32x4Extract(lane),
    ...tee(addr),
    ...get(addr),
    ...I32_LOAD,
    ...i32(1),
    OP.I32_ADD,
    ...I32_STORE,
  ];
  /** The two counters of one f64x2 half, bumped. */
  const count = (x: number, c: number, slots: number, fails: number) => {
    const a = [
      ...(spec.hist === "shifted" ? get(c) : [...get(x), ...get(lov), ...F64X2_SUB]),
      ...get(scv),
      ...F64X2_MUL,
      ...F64X2_FLOOR,
      ...get(slots),
      ...F64X2_ADD,
      ...(spec.hist === "range" ? [...get(fails), ...inRange(x), ...V128_BITSELECT] : []),
      ...set(cl), // c is no longer needed: reuse its local for the addresses
    ];
    return [...a, ...increment(get(cl), 0), ...increment(get(cl), 2)];
  };
  /** Pairs: bins bl (lanes 0, 1, in cl) and bh (lanes 2, 3) make one counter index bl·(bins + 1) + bh per lane. */
  const countPairs = [
    ...get(cl),
    ...get(failLo), // bins + 1
    ...F64X2_MUL,
    ...get(ch),
    ...get(scv),
    ...F64X2_MUL,
    ...F64X2_FLOOR,
    ...F64X2_ADD,
    ...get(slotLo),
    ...F64X2_ADD,
    ...set(cl),
    ...increment(get(cl), 0),
    ...increment(get(cl), 2),
  ];
  const step = (offset: number): Code => [
    ...get(p),
    ...v128Load(offset),
    ...set(v),
    ...(spec.minmax ? [...addTo(mn, get(v), F32X4_PMIN), ...addTo(mx, get(v), F32X4_PMAX)] : []),
    ...(spec.sums
      ? [
        ...addTo(nz, [...get(v), ...F32X4_ABS, ...get(thrv), ...F32X4_LE], I32X4_SUB),
        ...half(xl, cl, s0, q0, a0, false),
        ...(spec.hist === "shifted" || spec.hist === "range" ? count(xl, cl, slotLo, failLo) : []),
        ...(spec.hist === "pairs" ? [...get(cl), ...get(scv), ...F64X2_MUL, ...F64X2_FLOOR, ...set(cl)] : []),
        ...half(xh, ch, s1, q1, a1, true),
        ...(spec.hist === "shifted" || spec.hist === "range" ? count(xh, ch, slotHi, failHi) : []),
        ...(spec.hist === "pairs" ? countPairs : []),
      ]
      : []),
  ];
  const store = (local: number, offset: number) => [...get(out), ...get(local), ...v128Store(offset)];
  const param = (offset: number, local: number) => [...get(out), ...load64Splat(PARAMS + offset), ...set(local)];
  // deno-fmt-ignore
  return [
    ...param(P_SHIFT, shiftv), ...param(P_LO, lov), ...param(P_SCALE, scv), ...param(P_HI, hiv),
    ...get(out), ...v128Load32Splat(PARAMS + P_THR), ...set(thrv),
    ...(spec.hist === "pairs"
      ? [
        // Lane l's counter of pair index i at COUNTS + 8i + 4l: 2^49 + COUNTS/8 + i + l/2 (a float64 steps by 1/8 there).
        ...get(out), ...load64Splat(PARAMS + P_SLOT0), ...f64x2Const(0, 0.5), ...F64X2_ADD, ...set(slotLo),
        ...get(out), ...load64Splat(PARAMS + P_FAIL), ...set(failLo),
      ]
      : [
        ...get(out), ...load64Splat(PARAMS + P_SLOT0), ...f64x2Const(0, 0.25), ...F64X2_ADD, ...set(slotLo),
        ...get(out), ...load64Splat(PARAMS + P_SLOT0), ...f64x2Const(0.5, 0.75), ...F64X2_ADD, ...set(slotHi),
        ...get(slotLo), ...get(out), ...load64Splat(PARAMS + P_FAIL), ...F64X2_ADD, ...set(failLo),
        ...get(slotHi), ...get(out), ...load64Splat(PARAMS + P_FAIL), ...F64X2_ADD, ...set(failHi),
      ]),
    ...f32x4Const(Infinity), ...set(mn),
    ...f32x4Const(-Infinity), ...set(mx),
    ...forLoop(p, get(p), get(end), 32, [...step(0), ...step(16)]),
    ...(spec.sums
      ? [...store(s0, 0), ...store(s1, 16), ...store(q0, 32), ...store(q1, 48), ...store(a0, 64), ...store(a1, 80),
        ...store(nz, 128)]
      : []),
    ...(spec.minmax ? [...store(mn, 96), ...store(mx, 112)] : []),
  ];
}

function statsWasmBytes(): Uint8Array<ArrayBuffer> {
  const fn = (name: string, spec: KernelSpec): WasmFunction => ({
    name,
    params: 3,
    i32Locals: 1,
    v128Locals: 23,
    body: kernelBody(spec),
  });
  return wasmModule([
    fn("minmax", { minmax: true, sums: false, hist: "none" }),
    fn("moments", { minmax: true, sums: true, hist: "none" }),
    fn("fusedShifted", { minmax: false, sums: true, hist: "shifted" }),
    fn("fusedPairs", { minmax: false, sums: true, hist: "pairs" }),
    fn("fusedRange", { minmax: true, sums: true, hist: "range" }),
  ]);
}
