import { assert, assertAlmostEquals, assertEquals, assertLess, assertNotEquals, assertThrows } from "@std/assert";
import { createPrng } from "../lib/prng.ts";

// An independent BigInt transcription of splitmix32 seeding + xoshiro128**: every
// operation is done on unbounded integers and reduced modulo 2^32 explicitly.
const M = (1n << 32n) - 1n;
const mul = (a: bigint, b: bigint): bigint => (a * b) & M;
const rotl = (x: bigint, k: bigint): bigint => ((x << k) | (x >> (32n - k))) & M;
function fmix(h: bigint): bigint {
  h = mul(h ^ (h >> 16n), 0x85ebca6bn);
  h = mul(h ^ (h >> 13n), 0xc2b2ae35n);
  return h ^ (h >> 16n);
}
function referenceStream(seed: bigint, count: number): bigint[] {
  const two32 = 1n << 32n;
  const lo = ((seed % two32) + two32) % two32;
  // floor division for negative seeds
  const q = seed >= 0n ? seed / two32 : -((-seed + two32 - 1n) / two32);
  const hi = ((q % two32) + two32) % two32;
  let w = lo ^ fmix(hi);
  const s: bigint[] = [];
  for (let i = 0; i < 4; i++) {
    w = (w + 0x9e3779b9n) & M;
    s.push(fmix(w));
  }
  return xoshiro128StarStar(s, count);
}
function xoshiro128StarStar(s: bigint[], count: number): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < count; i++) {
    out.push(mul(rotl(mul(s[1], 5n), 7n), 9n));
    const t = (s[1] << 9n) & M;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11n);
  }
  return out;
}

Deno.test("the BigInt reference reproduces the published xoshiro128** outputs for state {1, 2, 3, 4}", () => {
  // First outputs of the authors' C reference (xoshiro128starstar.c) from s = {1, 2, 3, 4}.
  assertEquals(xoshiro128StarStar([1n, 2n, 3n, 4n], 5), [11520n, 0n, 5927040n, 70819200n, 2031721883n]);
});

Deno.test("createPrng() matches a BigInt reference of splitmix32 + xoshiro128** for many seeds", () => {
  for (const seed of [0, 1, 42, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 1_700_000_000_123, -1, -123456789, 2 ** 53 - 1]) {
    const rng = createPrng(seed);
    const ref = referenceStream(BigInt(seed), 64);
    const got = ref.map(() => BigInt(rng.nextUint32()));
    assertEquals(got, ref, `seed ${seed}`);
  }
});

Deno.test("next() is nextUint32() / 2^32 and stays in [0, 1)", () => {
  const a = createPrng(5), b = createPrng(5);
  for (let i = 0; i < 10_000; i++) {
    const u = a.next();
    assertEquals(u, b.nextUint32() / 2 ** 32);
    assert(u >= 0 && u < 1);
  }
});

Deno.test("the same seed gives the same stream and different seeds differ", () => {
  const a = createPrng(123), b = createPrng(123), c = createPrng(124);
  const xa = Array.from({ length: 100 }, () => a.next());
  const xb = Array.from({ length: 100 }, () => b.next());
  const xc = Array.from({ length: 100 }, () => c.next());
  assertEquals(xa, xb);
  assertNotEquals(xa, xc);
  assertEquals(a.seed, 123);
});

Deno.test("next() is roughly uniform: chi-square over 100 bins below the 0.999 quantile", () => {
  const rng = createPrng(99);
  const bins = 100, n = 200_000;
  const counts = new Float64Array(bins);
  for (let i = 0; i < n; i++) counts[Math.floor(rng.next() * bins)]++;
  const e = n / bins;
  let chi2 = 0;
  for (const c of counts) chi2 += (c - e) ** 2 / e;
  // 99 degrees of freedom: the 0.999 quantile is 148.2 (tables).
  assertLess(chi2, 148.2);
});

Deno.test("nextUint32() bits are balanced: each of the 32 bits is set about half the time", () => {
  const rng = createPrng(7);
  const n = 50_000;
  const ones = new Float64Array(32);
  for (let i = 0; i < n; i++) {
    const x = rng.nextUint32();
    for (let b = 0; b < 32; b++) ones[b] += (x >>> b) & 1;
  }
  // Binomial sd = sqrt(n)/2 ≈ 112; allow 5 sd.
  for (let b = 0; b < 32; b++) assertLess(Math.abs(ones[b] - n / 2), 5 * Math.sqrt(n) / 2, `bit ${b}`);
});

Deno.test("nextInt(n) covers [0, n) evenly and rejects bad n", () => {
  const rng = createPrng(11);
  const n = 6, draws = 60_000;
  const counts = new Float64Array(n);
  for (let i = 0; i < draws; i++) {
    const k = rng.nextInt(n);
    assert(Number.isInteger(k) && k >= 0 && k < n);
    counts[k]++;
  }
  let chi2 = 0;
  for (const c of counts) chi2 += (c - draws / n) ** 2 / (draws / n);
  assertLess(chi2, 20.5); // 5 dof, 0.999 quantile
  assertEquals(rng.nextInt(1), 0);
  for (const bad of [0, -1, 1.5, NaN, 2 ** 32 + 1]) {
    assertThrows(() => rng.nextInt(bad), RangeError, "n must be an integer in [1, 2^32]");
  }
});

Deno.test("normal() has mean and standard deviation close to the requested ones", () => {
  const rng = createPrng(3);
  const n = 100_000;
  let s = 0, ss = 0;
  for (let i = 0; i < n; i++) {
    const x = rng.normal(2, 0.5);
    s += x;
    ss += x * x;
  }
  const mean = s / n;
  const sd = Math.sqrt(ss / n - mean * mean);
  assertAlmostEquals(mean, 2, 0.01); // sd of the mean: 0.5/sqrt(n) ≈ 0.0016
  assertAlmostEquals(sd, 0.5, 0.01);
  assertThrows(() => rng.normal(0, -1), RangeError, "std finite and >= 0");
  assertThrows(() => rng.normal(NaN, 1), RangeError, "mean must be finite");
});

Deno.test("clone() continues with the same numbers without disturbing the original", () => {
  const a = createPrng(77);
  a.next();
  a.normal(); // leaves a cached spare deviate
  const b = a.clone();
  assertEquals(b.normal(), a.normal());
  for (let i = 0; i < 20; i++) assertEquals(b.nextUint32(), a.nextUint32());
});

Deno.test("createPrng() rejects seeds that are not safe integers", () => {
  for (const bad of [NaN, 1.5, Infinity, -Infinity, 2 ** 53, "1" as unknown as number]) {
    assertThrows(() => createPrng(bad), RangeError, "seed must be a safe integer");
  }
});
