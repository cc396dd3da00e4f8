/**
 * Turning a model's next-token logits into a choice: softmax, entropy, the
 * usual logits processors (repetition penalty, temperature, top-k, top-p,
 * min-p) and a seeded sampler. Every transform is a pure function that
 * returns the transformed logits, the resulting probabilities and which tokens
 * survived, so a notebook can plot the distribution before and after each
 * step.
 *
 * {@linkcode chooseToken} applies the processors in one fixed order:
 *
 * 1. repetition penalty (HF/CTRL: a seen token's positive logit is divided by the penalty, a negative one multiplied)
 * 2. temperature (`0` means greedy: a one-hot distribution on the argmax)
 * 3. top-k (the `k` most likely tokens)
 * 4. top-p / nucleus (the smallest set whose probability is at least `p`)
 * 5. min-p (tokens at least `minP` times as likely as the most likely one)
 * 6. a draw from what is left, with the injected PRNG
 *
 * Each filter renormalises over what the previous one kept and always keeps
 * the most likely remaining token, so no combination of settings can leave an
 * empty set. Ties are broken by the lowest token id, everywhere. Temperature
 * `0` means greedy decoding whatever the other filters say (they cannot
 * remove the argmax, so they are validated and then have no effect, and no
 * random number is drawn). There is no separate "sampling on/off" switch
 * that could make a temperature silently do nothing.
 *
 * Arithmetic is float64 inside; results are returned as `Float32Array`s.
 * Masked logits (`-Infinity`) are allowed and get probability 0; `NaN` and
 * `+Infinity` are rejected.
 *
 * @example
 * ```ts
 * import { chooseToken } from "./sample.ts";
 * import { createPrng } from "./prng.ts";
 * const logits = new Float32Array([2, 1, 0.5, -1]);
 * const prng = createPrng(0);
 * const pick = chooseToken(logits, { temperature: 0.8, topP: 0.9, prng });
 * console.log(pick.id, pick.prob);
 * ```
 *
 * @module
 */
import type { Prng } from "./prng.ts";
import { softmax64, topIndices } from "./_rank.ts";

/** Logits over the vocabulary, `[vocab]`. Plain arrays are accepted for convenience. */
export type Logits = Float32Array | Float64Array | readonly number[];

/**
 * A distribution over the vocabulary after one transform.
 *
 * @example
 * ```ts
 * import { topK, type Distribution } from "./sample.ts";
 * const d: Distribution = topK(new Float32Array([3, 1, 2]), 2);
 * console.log(Array.from(d.kept), d.keptMass.toFixed(3)); // [1, 0, 1] "0.910"
 * ```
 */
export interface Distribution {
  /** Logits after the transform, `[vocab]`; removed tokens are `-Infinity`. */
  logits: Float32Array;
  /** `softmax(logits)`, `[vocab]`; removed tokens are `0`. */
  probs: Float32Array;
  /** `1` where the token survives the transform, `[vocab]`. */
  kept: Uint8Array;
  /** Number of surviving tokens (at least 1). */
  keptCount: number;
  /** Probability mass of the surviving tokens under the transform's input distribution (1 if nothing was removed). */
  keptMass: number;
}

/** Name of one step of {@linkcode samplingDistribution}, in the order they run. */
export type SamplingStepName = "repetitionPenalty" | "temperature" | "topK" | "topP" | "minP";

/**
 * One applied step of the sampling pipeline.
 *
 * @example
 * ```ts
 * import { samplingDistribution } from "./sample.ts";
 * const { steps } = samplingDistribution(new Float32Array([1, 2, 3]), { temperature: 0.5 });
 * console.log(steps[0].name, steps[0].value); // "temperature" 0.5
 * ```
 */
export interface SamplingStep extends Distribution {
  /** Which processor this is. */
  name: SamplingStepName;
  /** Its parameter (penalty, temperature, k, p or min-p). */
  value: number;
}

/**
 * Sampling settings. Every field is optional; the defaults disable the corresponding step.
 *
 * @example
 * ```ts
 * import type { SampleOptions } from "./sample.ts";
 * import { createPrng } from "./prng.ts";
 * const opts: SampleOptions = { temperature: 0.7, topK: 50, topP: 0.95, prng: createPrng(1) };
 * console.log(opts.topK);
 * ```
 */
export interface SampleOptions {
  /**
   * Divides the logits. Default `1` (unchanged). `0` means greedy (argmax), whatever the
   * other filters say. Must be finite and `>= 0`.
   */
  temperature?: number;
  /** Keep the `topK` most likely tokens (ties: lowest id). Integer `>= 1`; omit to disable. `k >= vocab` keeps all. */
  topK?: number;
  /** Nucleus: keep the smallest most-likely-first set with mass `>= topP`. In `(0, 1]`; default `1` (disabled). */
  topP?: number;
  /** Keep tokens with `p >= minP · max p`. In `[0, 1]`; default `0` (disabled). */
  minP?: number;
  /** HF/CTRL repetition penalty for the ids in `previousIds`. Finite, `> 0`; default `1` (disabled). */
  repetitionPenalty?: number;
  /** Token ids already in the context, penalised by `repetitionPenalty`. Default: none. */
  previousIds?: ArrayLike<number>;
  /** Random source for the draw; required unless `temperature` is `0`. See `createPrng` in `prng.ts`. */
  prng?: Prng;
}

/**
 * The distribution {@linkcode chooseToken} would draw from, with every applied step.
 *
 * @example
 * ```ts
 * import { samplingDistribution, type SamplingDistribution } from "./sample.ts";
 * const d: SamplingDistribution = samplingDistribution(new Float32Array([1, 2, 3]), { topK: 2 });
 * console.log(d.final.keptCount); // 2
 * ```
 */
export interface SamplingDistribution {
  /** The model's own distribution: `softmax(logits)`, nothing removed. */
  input: Distribution;
  /** The steps that were active (non-default settings), in pipeline order. */
  steps: SamplingStep[];
  /** The distribution sampled from: the last step's, or `input` if no step was active. */
  final: Distribution;
  /** `true` when `temperature` is `0`: the choice is the argmax and no random number is used. */
  greedy: boolean;
}

/**
 * One chosen token.
 *
 * @example
 * ```ts
 * import { chooseToken, type TokenChoice } from "./sample.ts";
 * const c: TokenChoice = chooseToken(new Float32Array([0, 3, 1]), { temperature: 0 });
 * console.log(c.id, c.greedy); // 1 true
 * ```
 */
export interface TokenChoice {
  /** The chosen token id. */
  id: number;
  /** Its probability in the final (filtered, renormalised) distribution. */
  prob: number;
  /** Its probability under the model's untouched distribution `softmax(logits)`. */
  modelProb: number;
  /** Natural log of `modelProb` (computed stably, finite even when `modelProb` underflows). */
  logprob: number;
  /** Number of tokens the draw was made from. */
  keptCount: number;
  /** Whether this was a greedy (temperature 0) choice. */
  greedy: boolean;
}

/**
 * Options of {@linkcode entropy}.
 *
 * @example
 * ```ts
 * import type { EntropyOptions } from "./sample.ts";
 * const o: EntropyOptions = { unit: "bits" };
 * console.log(o.unit);
 * ```
 */
export interface EntropyOptions {
  /** `"nats"` (natural log, default) or `"bits"` (log base 2). */
  unit?: "nats" | "bits";
}

/**
 * Options of {@linkcode repetitionPenalty}.
 *
 * @example
 * ```ts
 * import type { RepetitionPenaltyOptions } from "./sample.ts";
 * const o: RepetitionPenaltyOptions = { penalty: 1.3, previousIds: [5, 9] };
 * console.log(o.penalty);
 * ```
 */
export interface RepetitionPenaltyOptions {
  /** Finite and `> 0`; `1` leaves the logits unchanged, `> 1` discourages repeats. */
  penalty: number;
  /** Ids whose logits are penalised (each once, however often it repeats). */
  previousIds: ArrayLike<number>;
}

// ---------------------------------------------------------------------------
// validation

function checkLogits(logits: Logits): Float64Array {
  if (logits === null || typeof logits !== "object" || typeof logits.length !== "number") {
    throw new TypeError(`logits must be a Float32Array (one value per vocabulary entry), got ${String(logits)}`);
  }
  const n = logits.length;
  if (n === 0) throw new RangeError("logits is empty; pass one logit per vocabulary entry");
  // The typed-array constructor copies natively (from() goes through the iterator protocol).
  const x = new Float64Array(logits as ArrayLike<number>);
  let finite = 0;
  for (let i = 0; i < n; i++) {
    const v = x[i];
    if (Number.isNaN(v)) throw new RangeError(`logits[${i}] is NaN; logits must be finite or -Infinity (masked)`);
    if (v === Infinity) throw new RangeError(`logits[${i}] is +Infinity; logits must be finite or -Infinity (masked)`);
    if (v !== -Infinity) finite++;
  }
  if (finite === 0) throw new RangeError("every logit is -Infinity (all masked): no token can be chosen");
  return x;
}

function checkTemperature(t: number): void {
  if (typeof t !== "number" || !Number.isFinite(t) || t < 0) {
    throw new RangeError(`temperature must be a finite number >= 0 (0 means greedy), got ${String(t)}`);
  }
}

function checkTopK(k: number): void {
  if (typeof k !== "number" || !Number.isInteger(k) || k < 1) {
    throw new RangeError(`topK must be an integer >= 1, got ${String(k)}; omit it to disable top-k filtering`);
  }
}

function checkTopP(p: number): void {
  if (typeof p !== "number" || !(p > 0 && p <= 1)) {
    throw new RangeError(`topP must be in (0, 1], got ${String(p)}; pass 1 (or omit it) to disable nucleus filtering`);
  }
}

function checkMinP(m: number): void {
  if (typeof m !== "number" || !(m >= 0 && m <= 1)) {
    throw new RangeError(`minP must be in [0, 1], got ${String(m)}; pass 0 (or omit it) to disable min-p filtering`);
  }
}

function checkPenalty(r: number): void {
  if (typeof r !== "number" || !Number.isFinite(r) || r <= 0) {
    throw new RangeError(`repetitionPenalty must be a finite number > 0 (1 disables it), got ${String(r)}`);
  }
}

function checkIds(ids: ArrayLike<number>, vocab: number): void {
  if (ids === null || typeof ids !== "object" || typeof ids.length !== "number") {
    throw new TypeError(`previousIds must be an array of token ids, got ${String(ids)}`);
  }
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new RangeError(`previousIds[${i}] = ${String(id)} is not a token id in [0, ${vocab})`);
    }
  }
}

// ---------------------------------------------------------------------------
// float64 kernels; `x` is `[vocab]` logits with -Infinity for removed tokens

function maxOf(x: Float64Array): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > m) m = x[i];
  return m;
}

/** Index of the largest value, lowest index on ties. */
function argmax(x: Float64Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Finite entries' indices ordered by value descending, then index ascending. */
function ranked(x: Float64Array): Uint32Array {
  let n = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== -Infinity) n++;
  const idx = new Uint32Array(n);
  for (let i = 0, j = 0; i < x.length; i++) if (x[i] !== -Infinity) idx[j++] = i;
  return idx.sort((a, b) => (x[b] - x[a]) || (a - b));
}

function countFinite(x: Float64Array): number {
  let n = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== -Infinity) n++;
  return n;
}

/** Copy of `x` keeping only `keep` (others -Infinity). */
function keepOnly(x: Float64Array, keep: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length).fill(-Infinity);
  for (let j = 0; j < keep.length; j++) out[keep[j]] = x[keep[j]];
  return out;
}

function penalize(x: Float64Array, ids: ArrayLike<number>, penalty: number): Float64Array {
  const out = new Float64Array(x);
  const seen = new Set<number>();
  for (let j = 0; j < ids.length; j++) {
    const id = ids[j];
    if (seen.has(id)) continue;
    seen.add(id);
    const v = x[id];
    out[id] = v > 0 ? v / penalty : v * penalty;
  }
  return out;
}

function temper(x: Float64Array, t: number): Float64Array {
  if (t === 0) return keepOnly(x, [argmax(x)]);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] / t;
  return out;
}

function filterTopK(x: Float64Array, k: number): Float64Array {
  if (k >= countFinite(x)) return new Float64Array(x);
  return keepOnly(x, topIndices(x, k));
}

function filterTopP(x: Float64Array, p: number): Float64Array {
  if (p === 1) return new Float64Array(x);
  const probs = softmax64(x);
  // Sorting the whole vocabulary dominates the cost, so first bucket tokens by how far their
  // logit is below the maximum (quarter-nat buckets), find the bucket where the mass from the top
  // reaches p, and sort only the tokens down to that bucket. The nucleus is a ranked prefix, so
  // it lies inside that set; the walk below is then exactly the one over the full sorted order.
  const m = maxOf(x);
  const buckets = 256;
  const mass = new Float64Array(buckets);
  const bucketOf = (v: number): number => Math.min(buckets - 1, Math.floor((m - v) * 4));
  for (let i = 0; i < x.length; i++) if (x[i] !== -Infinity) mass[bucketOf(x[i])] += probs[i];
  let last = buckets - 1;
  for (let b = 0, cum = 0; b < buckets; b++) {
    cum += mass[b];
    if (cum >= p) {
      last = b;
      break;
    }
  }
  const candidates: number[] = [];
  for (let i = 0; i < x.length; i++) if (x[i] !== -Infinity && bucketOf(x[i]) <= last) candidates.push(i);
  const nucleus = (order: ArrayLike<number>): number[] | null => {
    let cum = 0;
    for (let n = 0; n < order.length; n++) {
      cum += probs[order[n]];
      if (cum >= p) return Array.from({ length: n + 1 }, (_, j) => order[j]);
    }
    return null;
  };
  const byRank = (a: number, b: number): number => (x[b] - x[a]) || (a - b);
  // Rounding can leave the candidates' sequential sum a hair below p: then use the full order,
  // where the last token is always reached.
  const keep = nucleus(candidates.sort(byRank)) ?? nucleus(ranked(x)) ?? Array.from(ranked(x));
  return keepOnly(x, keep);
}

function filterMinP(x: Float64Array, m: number): Float64Array {
  if (m === 0) return new Float64Array(x);
  const probs = softmax64(x);
  const threshold = m * probs[argmax(x)];
  const out = new Float64Array(x);
  for (let i = 0; i < x.length; i++) if (probs[i] < threshold) out[i] = -Infinity;
  return out;
}

function toDistribution(before: Float64Array, after: Float64Array): Distribution {
  const pin = softmax64(before);
  const pout = softmax64(after);
  const kept = new Uint8Array(after.length);
  let keptCount = 0, keptMass = 0;
  for (let i = 0; i < after.length; i++) {
    if (after[i] !== -Infinity) {
      kept[i] = 1;
      keptCount++;
      keptMass += pin[i];
    }
  }
  return {
    logits: new Float32Array(after),
    probs: new Float32Array(pout),
    kept,
    keptCount,
    keptMass: Math.min(1, keptMass),
  };
}

interface Pipeline {
  input: Float64Array;
  final: Float64Array;
  greedy: boolean;
  steps: { name: SamplingStepName; value: number; before: Float64Array; after: Float64Array }[];
}

function runPipeline(logits: Logits, options: SampleOptions): Pipeline {
  const input = checkLogits(logits);
  const {
    temperature = 1,
    topK,
    topP = 1,
    minP = 0,
    repetitionPenalty: penalty = 1,
    previousIds = [],
  } = options ?? {};
  checkTemperature(temperature);
  if (topK !== undefined) checkTopK(topK);
  checkTopP(topP);
  checkMinP(minP);
  checkPenalty(penalty);
  checkIds(previousIds, input.length);

  const steps: Pipeline["steps"] = [];
  let x = input;
  const apply = (name: SamplingStepName, value: number, f: (v: Float64Array) => Float64Array): void => {
    const next = f(x);
    steps.push({ name, value, before: x, after: next });
    x = next;
  };
  if (penalty !== 1 && previousIds.length > 0) {
    apply("repetitionPenalty", penalty, (v) => penalize(v, previousIds, penalty));
  }
  if (temperature !== 1) apply("temperature", temperature, (v) => temper(v, temperature));
  if (topK !== undefined) apply("topK", topK, (v) => filterTopK(v, topK));
  if (topP !== 1) apply("topP", topP, (v) => filterTopP(v, topP));
  if (minP !== 0) apply("minP", minP, (v) => filterMinP(v, minP));
  return { input, final: x, greedy: temperature === 0, steps };
}

// ---------------------------------------------------------------------------
// public API

/**
 * Softmax over the vocabulary, max-subtracted for stability; `-Infinity` logits get 0.
 *
 * @param logits `[vocab]`, finite or `-Infinity`; not all `-Infinity`
 * @returns probabilities `[vocab]` summing to 1
 * @example
 * ```ts
 * import { softmax } from "./sample.ts";
 * const p = softmax(new Float32Array([0, Math.log(3)]));
 * console.log(p[0].toFixed(2), p[1].toFixed(2)); // "0.25" "0.75"
 * ```
 */
export function softmax(logits: Logits): Float32Array {
  return new Float32Array(softmax64(checkLogits(logits)));
}

/**
 * Log-softmax, `x - logsumexp(x)`, computed without forming the probabilities (finite even
 * where the probability underflows); `-Infinity` logits stay `-Infinity`.
 *
 * @param logits `[vocab]`, finite or `-Infinity`; not all `-Infinity`
 * @returns log-probabilities `[vocab]` (natural log)
 * @example
 * ```ts
 * import { logSoftmax } from "./sample.ts";
 * const lp = logSoftmax(new Float32Array([0, 0]));
 * console.log(lp[0].toFixed(4)); // "-0.6931"
 * ```
 */
export function logSoftmax(logits: Logits): Float32Array {
  const x = checkLogits(logits);
  const lse = logSumExp(x);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] - lse;
  return out;
}

function logSumExp(x: Float64Array): number {
  const m = maxOf(x);
  let z = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== -Infinity) z += Math.exp(x[i] - m);
  return m + Math.log(z);
}

/**
 * Shannon entropy of `softmax(logits)`: `H = -Σ p·log p` (masked tokens contribute 0).
 * Ranges from 0 (one certain token) to `log(vocab)` (uniform).
 *
 * @param logits `[vocab]`, finite or `-Infinity`; not all `-Infinity`
 * @param options `unit`: `"nats"` (default) or `"bits"`
 * @returns the entropy, `>= 0`
 * @example
 * ```ts
 * import { entropy } from "./sample.ts";
 * console.log(entropy(new Float32Array([1, 1, 1, 1]), { unit: "bits" })); // 2
 * ```
 */
export function entropy(logits: Logits, options: EntropyOptions = {}): number {
  const { unit = "nats" } = options;
  if (unit !== "nats" && unit !== "bits") {
    throw new RangeError(`entropy unit must be "nats" or "bits", got ${String(unit)}`);
  }
  const x = checkLogits(logits);
  const m = maxOf(x);
  // H = log Z - Σ p·(x - m), with Z = Σ exp(x - m): no log of a tiny probability.
  let z = 0, s = 0;
  for (let i = 0; i < x.length; i++) {
    if (x[i] === -Infinity) continue;
    const e = Math.exp(x[i] - m);
    z += e;
    s += e * (x[i] - m);
  }
  const h = Math.max(0, Math.log(z) - s / z);
  return unit === "bits" ? h / Math.LN2 : h;
}

/**
 * Divides the logits by `temperature`. Temperature `0` is greedy: the result is one-hot on the
 * argmax (lowest id on ties), with no division by zero.
 *
 * @param logits `[vocab]`
 * @param temperature finite, `>= 0`; `< 1` sharpens, `> 1` flattens, `0` is argmax
 * @returns the tempered distribution (`keptMass` is the argmax's probability when greedy, else 1)
 * @example
 * ```ts
 * import { applyTemperature } from "./sample.ts";
 * const d = applyTemperature(new Float32Array([1, 2, 2]), 0);
 * console.log(Array.from(d.probs)); // [0, 1, 0]
 * ```
 */
export function applyTemperature(logits: Logits, temperature: number): Distribution {
  checkTemperature(temperature);
  const x = checkLogits(logits);
  return toDistribution(x, temper(x, temperature));
}

/**
 * Keeps the `k` most likely tokens (ties broken by the lowest id, so exactly `min(k, finite)` survive).
 *
 * @param logits `[vocab]`
 * @param k integer `>= 1`; `k >= vocab` keeps everything
 * @returns the filtered distribution, renormalised
 * @example
 * ```ts
 * import { topK } from "./sample.ts";
 * console.log(Array.from(topK(new Float32Array([1, 3, 2, 3]), 2).kept)); // [0, 1, 0, 1]
 * ```
 */
export function topK(logits: Logits, k: number): Distribution {
  checkTopK(k);
  const x = checkLogits(logits);
  return toDistribution(x, filterTopK(x, k));
}

/**
 * Nucleus filtering: sorts tokens by probability (descending, lowest id first on ties) and keeps
 * the shortest prefix whose mass is `>= p`; the most likely token is always kept. `p = 1` keeps
 * every unmasked token.
 *
 * @param logits `[vocab]`
 * @param p in `(0, 1]`
 * @returns the filtered distribution, renormalised; `keptMass >= p`
 * @example
 * ```ts
 * import { topP } from "./sample.ts";
 * const d = topP(new Float32Array([Math.log(0.5), Math.log(0.3), Math.log(0.2)]), 0.7);
 * console.log(d.keptCount); // 2
 * ```
 */
export function topP(logits: Logits, p: number): Distribution {
  checkTopP(p);
  const x = checkLogits(logits);
  return toDistribution(x, filterTopP(x, p));
}

/**
 * Min-p filtering: keeps tokens whose probability is at least `m` times the largest probability
 * (so the most likely token always survives; `m = 1` keeps only the tokens tied for the maximum).
 *
 * @param logits `[vocab]`
 * @param m in `[0, 1]`; `0` keeps everything
 * @returns the filtered distribution, renormalised
 * @example
 * ```ts
 * import { minP } from "./sample.ts";
 * const d = minP(new Float32Array([Math.log(0.6), Math.log(0.3), Math.log(0.1)]), 0.25);
 * console.log(Array.from(d.kept)); // [1, 1, 0]
 * ```
 */
export function minP(logits: Logits, m: number): Distribution {
  checkMinP(m);
  const x = checkLogits(logits);
  return toDistribution(x, filterMinP(x, m));
}

/**
 * Repetition penalty with HF/CTRL semantics: for every distinct id in `previousIds`, a positive
 * logit is divided by `penalty` and a negative one multiplied by it (zero stays zero), so a
 * penalty `> 1` always makes a seen token less likely.
 *
 * @param logits `[vocab]`
 * @param options `penalty` (finite, `> 0`) and `previousIds` (ids in `[0, vocab)`)
 * @returns the penalised distribution (nothing is removed: `keptMass` is 1)
 * @example
 * ```ts
 * import { repetitionPenalty } from "./sample.ts";
 * const d = repetitionPenalty(new Float32Array([2, -2, 1]), { penalty: 2, previousIds: [0, 1] });
 * console.log(Array.from(d.logits)); // [1, -4, 1]
 * ```
 */
export function repetitionPenalty(logits: Logits, options: RepetitionPenaltyOptions): Distribution {
  const { penalty, previousIds } = options ?? ({} as RepetitionPenaltyOptions);
  checkPenalty(penalty);
  const x = checkLogits(logits);
  checkIds(previousIds, x.length);
  return toDistribution(x, penalize(x, previousIds, penalty));
}

/**
 * Runs the sampling pipeline (repetition penalty → temperature → top-k → top-p → min-p) and
 * returns every applied step, for plotting what each one did. Validates every option.
 *
 * @param logits `[vocab]`
 * @param options sampling settings; `prng` is not needed here
 * @returns the input distribution, the applied steps and the final distribution
 * @example
 * ```ts
 * import { samplingDistribution } from "./sample.ts";
 * const d = samplingDistribution(new Float32Array([3, 2, 1, 0]), { temperature: 0.7, topK: 3, topP: 0.9 });
 * console.log(d.steps.map((s) => `${s.name}: kept ${s.keptCount}`));
 * ```
 */
export function samplingDistribution(logits: Logits, options: SampleOptions = {}): SamplingDistribution {
  const run = runPipeline(logits, options);
  const input = toDistribution(run.input, run.input);
  const steps = run.steps.map((s) => ({ name: s.name, value: s.value, ...toDistribution(s.before, s.after) }));
  return { input, steps, final: steps.length > 0 ? steps[steps.length - 1] : input, greedy: run.greedy };
}

/**
 * Chooses the next token: runs the pipeline (repetition penalty → temperature → top-k → top-p →
 * min-p), then draws one id from what is left with `options.prng` (one `prng.next()` call per
 * draw; the kept tokens are walked in id order). Temperature `0` returns the argmax (lowest id
 * on ties) without touching the PRNG. A generation loop calls it once per step with the ids
 * produced so far as `previousIds`.
 *
 * @param logits `[vocab]` next-token logits
 * @param options sampling settings; `prng` is required unless `temperature` is `0`
 * @returns the id with its final and model probabilities
 * @example
 * ```ts
 * import { chooseToken } from "./sample.ts";
 * import { createPrng } from "./prng.ts";
 * const prng = createPrng(42);
 * const ids: number[] = [];
 * for (let step = 0; step < 3; step++) {
 *   const logits = new Float32Array([1, 1.5, 0.2, 0.9]);
 *   ids.push(chooseToken(logits, { temperature: 1, topK: 3, repetitionPenalty: 1.2, previousIds: ids, prng }).id);
 * }
 * console.log(ids);
 * ```
 */
export function chooseToken(logits: Logits, options: SampleOptions = {}): TokenChoice {
  const run = runPipeline(logits, options);
  const x = run.final;
  // Unnormalised weights of the final distribution, computed once for the draw and for `prob`.
  const m = maxOf(x);
  const w = new Float64Array(x.length);
  let total = 0, keptCount = 0;
  for (let i = 0; i < x.length; i++) {
    if (x[i] === -Infinity) continue;
    w[i] = Math.exp(x[i] - m);
    total += w[i];
    keptCount++;
  }
  let id: number;
  if (run.greedy) {
    id = argmax(x);
  } else {
    const prng = options.prng;
    if (!prng || typeof prng.next !== "function") {
      throw new TypeError(
        "chooseToken: options.prng is required when temperature > 0 (pass createPrng(seed)); " +
          "use temperature: 0 for greedy decoding",
      );
    }
    id = draw(w, total, prng);
  }
  const logprob = run.input[id] - logSumExp(run.input);
  return { id, prob: w[id] / total, modelProb: Math.exp(logprob), logprob, keptCount, greedy: run.greedy };
}

/**
 * Like {@linkcode chooseToken} but returns only the id.
 *
 * @param logits `[vocab]` next-token logits
 * @param options sampling settings; `prng` is required unless `temperature` is `0`
 * @returns the chosen token id
 * @example
 * ```ts
 * import { sampleToken } from "./sample.ts";
 * console.log(sampleToken(new Float32Array([0.1, 0.3, 0.2]), { temperature: 0 })); // 1
 * ```
 */
export function sampleToken(logits: Logits, options: SampleOptions = {}): number {
  return chooseToken(logits, options).id;
}

/**
 * Inverse-CDF draw over unnormalised weights `w` (0 for removed tokens) summing to `total`,
 * walking ids in ascending order; one `prng.next()` per draw.
 */
function draw(w: Float64Array, total: number, prng: Prng): number {
  const u = prng.next() * total;
  let cum = 0, last = -1;
  for (let i = 0; i < w.length; i++) {
    if (w[i] === 0) continue;
    cum += w[i];
    last = i;
    if (u < cum) return i;
  }
  // Only reachable through rounding when u is within an ulp of total: the last token with weight.
  return last;
}
