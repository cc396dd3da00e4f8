/**
 * A small seeded pseudo-random number generator, so every random choice in
 * paramscope (sampling, initialisation, shuffles) is repeatable: the same seed
 * gives the same stream on every machine and every JavaScript engine, because
 * the state is four 32-bit integers updated with `Math.imul`, shifts and xors
 * only (no floating point until the final scaling).
 *
 * Algorithm: xoshiro128** (Blackman & Vigna, 2018), period 2¹²⁸ − 1, with its
 * state filled by splitmix32 (the murmur3 `fmix32` finaliser over a Weyl
 * sequence of step `0x9E3779B9`). Not for cryptography.
 *
 * @example
 * ```ts
 * import { createPrng } from "./prng.ts";
 * const a = createPrng(42), b = createPrng(42);
 * console.log(a.next() === b.next()); // true
 * ```
 *
 * @module
 */

/**
 * A seeded generator. Every method advances the same stream.
 *
 * @example
 * ```ts
 * import { createPrng, type Prng } from "./prng.ts";
 * const rng: Prng = createPrng(7);
 * const u = rng.next(); // in [0, 1)
 * const die = rng.nextInt(6) + 1; // 1..6
 * console.log(u >= 0 && u < 1, die >= 1 && die <= 6);
 * ```
 */
export interface Prng {
  /** The seed this generator was created with. */
  readonly seed: number;
  /** Next unsigned 32-bit integer, uniform on `[0, 2³²)`. */
  nextUint32(): number;
  /** Next float, uniform on `[0, 1)`: `nextUint32() / 2³²` (resolution 2⁻³²). */
  next(): number;
  /**
   * Next integer, uniform on `[0, n)` without modulo bias (rejection sampling).
   * `n` must be an integer in `[1, 2³²]`; anything else throws a `RangeError`.
   */
  nextInt(n: number): number;
  /**
   * Next normal deviate (Box–Muller; consumes two 32-bit draws per pair of deviates and
   * caches the second), `mean + std · z` with `z ~ N(0, 1)`. Defaults: `mean = 0`, `std = 1`.
   */
  normal(mean?: number, std?: number): number;
  /** An independent copy with the same state: both continue with the same numbers. */
  clone(): Prng;
}

const TWO_32 = 4294967296;

/** murmur3's 32-bit finaliser: a bijection on uint32 that mixes every bit. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

class Xoshiro128 implements Prng {
  readonly seed: number;
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;
  #spare: number | null = null;

  constructor(seed: number, s: readonly [number, number, number, number]) {
    this.seed = seed;
    [this.#s0, this.#s1, this.#s2, this.#s3] = s;
  }

  nextUint32(): number {
    const s1 = this.#s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return r;
  }

  next(): number {
    return this.nextUint32() / TWO_32;
  }

  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_32) {
      throw new RangeError(`nextInt(n): n must be an integer in [1, 2^32], got ${n}`);
    }
    // Accept only draws below the largest multiple of n, so every residue is equally likely.
    const limit = TWO_32 - (TWO_32 % n);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % n;
  }

  normal(mean = 0, std = 1): number {
    if (!Number.isFinite(mean) || !Number.isFinite(std) || std < 0) {
      throw new RangeError(`normal(mean, std): mean must be finite and std finite and >= 0, got ${mean}, ${std}`);
    }
    if (this.#spare !== null) {
      const z = this.#spare;
      this.#spare = null;
      return mean + std * z;
    }
    // 1 - u is in (0, 1], so the logarithm is finite.
    const u1 = 1 - this.next();
    const u2 = this.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.#spare = r * Math.sin(2 * Math.PI * u2);
    return mean + std * r * Math.cos(2 * Math.PI * u2);
  }

  clone(): Prng {
    const c = new Xoshiro128(this.seed, [this.#s0, this.#s1, this.#s2, this.#s3]);
    c.#spare = this.#spare;
    return c;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Creates a seeded xoshiro128** generator.
 *
 * The seed may be any safe integer (negative ones and `Date.now()`-sized ones
 * included). It is split into its low and high 32-bit halves (two's
 * complement), folded into one 32-bit word `lo ^ fmix32(hi)` (so seeds in
 * `[0, 2³²)` map to themselves), and that word seeds splitmix32, whose first
 * four outputs are the state.
 *
 * @param seed a safe integer; a non-integer, `NaN` or an unsafe integer throws a `RangeError`
 * @returns a generator; the same seed always yields the same sequence
 * @example
 * ```ts
 * import { createPrng } from "./prng.ts";
 * const rng = createPrng(2024);
 * const xs = [rng.next(), rng.next(), rng.next()];
 * const again = createPrng(2024);
 * console.log(xs.every((x) => x === again.next())); // true
 * ```
 */
export function createPrng(seed: number): Prng {
  if (typeof seed !== "number" || !Number.isSafeInteger(seed)) {
    throw new RangeError(
      `createPrng(seed): seed must be a safe integer (|seed| <= 2^53 - 1), got ${String(seed)}; ` +
        `round it, e.g. createPrng(Math.floor(x))`,
    );
  }
  const lo = seed >>> 0; // low 32 bits, two's complement for negatives
  const hi = Math.floor(seed / TWO_32) >>> 0;
  let weyl = (lo ^ fmix32(hi)) >>> 0;
  const draw = (): number => {
    weyl = (weyl + 0x9e3779b9) >>> 0;
    return fmix32(weyl);
  };
  // Four distinct Weyl values through a bijection: at most one state word is zero, never all four.
  return new Xoshiro128(seed, [draw(), draw(), draw(), draw()]);
}
