import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertGreaterOrEqual,
  assertLess,
  assertNotEquals,
  assertThrows,
} from "@std/assert";
import {
  applyTemperature,
  chooseToken,
  entropy,
  logSoftmax,
  minP,
  repetitionPenalty,
  sampleToken,
  samplingDistribution,
  softmax,
  topK,
  topP,
} from "../lib/sample.ts";
import { createPrng } from "../lib/prng.ts";

// ---------------------------------------------------------------------------
// An independent float64 reference, written the obvious way: arrays of numbers,
// objects sorted with Array.prototype.sort, no shared helpers with lib/sample.ts.

function refSoftmax(x: number[]): number[] {
  const finite = x.filter((v) => v !== -Infinity);
  const m = Math.max(...finite);
  const e = x.map((v) => (v === -Infinity ? 0 : Math.exp(v - m)));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

function byRank(x: number[]): number[] {
  return x.map((v, id) => ({ v, id })).filter((o) => o.v !== -Infinity)
    .sort((a, b) => b.v - a.v || a.id - b.id).map((o) => o.id);
}

function mask(x: number[], keep: Set<number>): number[] {
  return x.map((v, i) => (keep.has(i) ? v : -Infinity));
}

interface RefOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  penalty?: number;
  previous?: number[];
}

/** Final distribution after penalty → temperature → top-k → top-p → min-p. */
function refPipeline(logits: number[], o: RefOptions): number[] {
  let x = logits.slice();
  if (o.penalty !== undefined) {
    for (const id of new Set(o.previous ?? [])) x[id] = x[id] > 0 ? x[id] / o.penalty : x[id] * o.penalty;
  }
  const t = o.temperature ?? 1;
  if (t === 0) x = mask(x, new Set([byRank(x)[0]]));
  else x = x.map((v) => v / t);
  if (o.topK !== undefined) x = mask(x, new Set(byRank(x).slice(0, o.topK)));
  if (o.topP !== undefined && o.topP < 1) {
    const p = refSoftmax(x);
    const keep = new Set<number>();
    let cum = 0;
    for (const id of byRank(x)) {
      keep.add(id);
      cum += p[id];
      if (cum >= o.topP) break;
    }
    x = mask(x, keep);
  }
  if (o.minP !== undefined && o.minP > 0) {
    const p = refSoftmax(x);
    const pmax = Math.max(...p);
    x = x.map((v, i) => (p[i] >= o.minP! * pmax ? v : -Infinity));
  }
  return refSoftmax(x);
}

function randomLogits(seed: number, n: number, scale = 3): Float32Array {
  const rng = createPrng(seed);
  return Float32Array.from({ length: n }, () => rng.normal(0, scale));
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, msg = ""): void {
  assertEquals(actual.length, expected.length, `${msg} length`);
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] === -Infinity) assertEquals(actual[i], -Infinity, `${msg} [${i}]`);
    else assertAlmostEquals(actual[i], expected[i], tol, `${msg} [${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Upper 0.999 quantile of chi-square with `df` degrees of freedom (Wilson–Hilferty). */
function chi2Critical(df: number): number {
  const z = 3.0902;
  return df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
}

// ---------------------------------------------------------------------------

Deno.test("softmax() sums to one and matches a float64 reference", () => {
  for (const seed of [1, 2, 3]) {
    const x = randomLogits(seed, 257);
    const p = softmax(x);
    const ref = refSoftmax(Array.from(x));
    assertClose(p, ref, 1e-7);
    assertAlmostEquals(p.reduce((a, b) => a + b, 0), 1, 1e-5);
  }
});

Deno.test("softmax() is stable for huge logits and gives masked logits probability 0", () => {
  const p = softmax(new Float32Array([1000, 999, -Infinity]));
  assertAlmostEquals(p[0], 1 / (1 + Math.exp(-1)), 1e-7);
  assertAlmostEquals(p[1], Math.exp(-1) / (1 + Math.exp(-1)), 1e-7);
  assertEquals(p[2], 0);
  assertClose(softmax([0, Math.log(3)]), [0.25, 0.75], 1e-7, "plain array input");
});

Deno.test("logSoftmax() equals log of the reference softmax and stays finite where probabilities underflow", () => {
  const x = randomLogits(4, 100);
  const ref = refSoftmax(Array.from(x)).map(Math.log);
  assertClose(logSoftmax(x), ref, 1e-5);
  const lp = logSoftmax(new Float32Array([0, -2000, -Infinity]));
  assertAlmostEquals(lp[0], 0, 1e-12);
  assertAlmostEquals(lp[1], -2000, 1e-3);
  assertEquals(lp[2], -Infinity);
});

Deno.test("entropy() matches -Σ p log p, is log(n) for uniform logits and converts to bits", () => {
  const x = randomLogits(5, 50, 2);
  const p = refSoftmax(Array.from(x));
  const ref = -p.reduce((a, q) => a + (q > 0 ? q * Math.log(q) : 0), 0);
  assertAlmostEquals(entropy(x), ref, 1e-9);
  assertAlmostEquals(entropy(x, { unit: "bits" }), ref / Math.LN2, 1e-9);
  assertAlmostEquals(entropy(new Float32Array(8)), Math.log(8), 1e-12);
  assertAlmostEquals(entropy(new Float32Array([0, 0, -Infinity, -Infinity]), { unit: "bits" }), 1, 1e-12);
  assertAlmostEquals(entropy(new Float32Array([0, -1e4])), 0, 1e-12);
  assertThrows(() => entropy(x, { unit: "dits" as "bits" }), RangeError, `"nats" or "bits"`);
});

Deno.test("applyTemperature() divides the logits; temperature 0 is one-hot on the lowest-id argmax", () => {
  const x = new Float32Array([1, 3, -2, 3]);
  const d = applyTemperature(x, 0.5);
  assertClose(d.logits, [2, 6, -4, 6], 1e-6);
  assertClose(d.probs, refSoftmax([2, 6, -4, 6]), 1e-7);
  assertEquals(d.keptCount, 4);
  assertEquals(d.keptMass, 1);
  const g = applyTemperature(x, 0);
  assertEquals(Array.from(g.probs), [0, 1, 0, 0]);
  assertEquals(Array.from(g.kept), [0, 1, 0, 0]);
  assertEquals(g.logits[1], 3);
  assertEquals(g.logits[3], -Infinity);
  assertAlmostEquals(g.keptMass, refSoftmax([1, 3, -2, 3])[1], 1e-9);
});

Deno.test("topK() keeps exactly k tokens, breaking ties by the lowest id", () => {
  const x = new Float32Array([1, 3, 2, 3, 2, 0]);
  assertEquals(Array.from(topK(x, 1).kept), [0, 1, 0, 0, 0, 0]);
  assertEquals(Array.from(topK(x, 3).kept), [0, 1, 1, 1, 0, 0]);
  assertEquals(topK(x, 6).keptCount, 6);
  assertEquals(topK(x, 100).keptCount, 6);
  const y = randomLogits(6, 1000);
  for (const k of [1, 7, 50, 999]) {
    const d = topK(y, k);
    const keep = new Set(byRank(Array.from(y)).slice(0, k));
    const ref = refSoftmax(mask(Array.from(y), keep));
    assertEquals(d.keptCount, k);
    assertClose(d.probs, ref, 1e-7, `k=${k}`);
    const mass = refSoftmax(Array.from(y)).reduce((a, q, i) => a + (keep.has(i) ? q : 0), 0);
    assertAlmostEquals(d.keptMass, mass, 1e-9);
  }
});

Deno.test("topP() keeps the smallest most-likely-first set with mass >= p and always the top token", () => {
  const x = [0.5, 0.3, 0.15, 0.05].map(Math.log);
  assertEquals(Array.from(topP(x, 0.5).kept), [1, 0, 0, 0]);
  assertEquals(Array.from(topP(x, 0.7).kept), [1, 1, 0, 0]);
  assertEquals(Array.from(topP(x, 0.81).kept), [1, 1, 1, 0]);
  assertEquals(Array.from(topP(x, 1e-9).kept), [1, 0, 0, 0]);
  assertEquals(topP(x, 1).keptCount, 4);
  const y = randomLogits(7, 500, 2);
  for (const p of [0.1, 0.5, 0.9, 0.99]) {
    const d = topP(y, p);
    const ref = refPipeline(Array.from(y), { topP: p });
    assertClose(d.probs, ref, 1e-7, `p=${p}`);
    assertGreaterOrEqual(d.keptMass, p - 1e-12);
  }
});

Deno.test("minP() keeps tokens at least minP times as likely as the top one", () => {
  const x = [0.6, 0.3, 0.1].map(Math.log);
  assertEquals(Array.from(minP(x, 0.25).kept), [1, 1, 0]);
  assertEquals(Array.from(minP(x, 0.6).kept), [1, 0, 0]);
  assertEquals(minP(x, 0).keptCount, 3);
  assertEquals(Array.from(minP([2, 2, 1], 1).kept), [1, 1, 0]);
  const y = randomLogits(8, 300);
  assertClose(minP(y, 0.05).probs, refPipeline(Array.from(y), { minP: 0.05 }), 1e-7);
});

Deno.test("repetitionPenalty() divides positive and multiplies negative logits of seen ids, once each", () => {
  const x = new Float32Array([2, -2, 1, 0, 4]);
  const d = repetitionPenalty(x, { penalty: 2, previousIds: [0, 1, 1, 3, 0] });
  assertEquals(Array.from(d.logits), [1, -4, 1, 0, 4]);
  assertClose(d.probs, refSoftmax([1, -4, 1, 0, 4]), 1e-7);
  assertEquals(d.keptCount, 5);
  const boost = repetitionPenalty(x, { penalty: 0.5, previousIds: [4] });
  assertEquals(boost.logits[4], 8);
  assertEquals(Array.from(repetitionPenalty(x, { penalty: 1.5, previousIds: [] }).logits), Array.from(x));
});

Deno.test("samplingDistribution() applies the active steps in the documented order and matches the reference", () => {
  const x = randomLogits(9, 400);
  const previous = [3, 17, 3, 250];
  const o = { temperature: 0.7, topK: 40, topP: 0.8, minP: 0.02, repetitionPenalty: 1.3, previousIds: previous };
  const d = samplingDistribution(x, o);
  assertEquals(d.steps.map((s) => s.name), ["repetitionPenalty", "temperature", "topK", "topP", "minP"]);
  assertEquals(d.steps.map((s) => s.value), [1.3, 0.7, 40, 0.8, 0.02]);
  const ref = refPipeline(Array.from(x), { ...o, penalty: 1.3, previous });
  assertClose(d.final.probs, ref, 1e-6);
  assertEquals(d.final, d.steps[4]);
  assertClose(d.input.probs, refSoftmax(Array.from(x)), 1e-7);
  assertEquals(d.greedy, false);
  const none = samplingDistribution(x);
  assertEquals(none.steps.length, 0);
  assertEquals(none.final, none.input);
});

Deno.test("no combination of top-k, top-p and min-p leaves an empty set; the top token always survives", () => {
  const rng = createPrng(10);
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + rng.nextInt(60);
    const x = randomLogits(1000 + trial, n, 1 + 10 * rng.next());
    if (trial % 3 === 0) x[rng.nextInt(n)] = -Infinity;
    const anyFinite = x.some((v) => v !== -Infinity);
    if (!anyFinite) continue;
    const o = {
      temperature: rng.next() * 3,
      topK: 1 + rng.nextInt(n + 2),
      topP: 1e-6 + rng.next() * (1 - 1e-6),
      minP: rng.next(),
    };
    const d = samplingDistribution(x, o);
    assert(d.final.keptCount >= 1, JSON.stringify(o));
    const top = byRank(Array.from(x))[0];
    assertEquals(d.final.kept[top], 1, `top token ${top} removed with ${JSON.stringify(o)}`);
    assertAlmostEquals(d.final.probs.reduce((a, b) => a + b, 0), 1, 1e-5);
  }
});

Deno.test("chooseToken() frequencies over 20k seeded draws match the filtered probabilities (chi-square)", () => {
  const x = randomLogits(11, 30, 1.5);
  const o = { temperature: 0.9, topK: 12, topP: 0.9, repetitionPenalty: 1.2, previousIds: [0, 1, 2] };
  const ref = refPipeline(Array.from(x), { ...o, penalty: 1.2, previous: o.previousIds });
  const prng = createPrng(12);
  const n = 20_000;
  const counts = new Float64Array(x.length);
  for (let i = 0; i < n; i++) counts[chooseToken(x, { ...o, prng }).id]++;
  let chi2 = 0, df = -1, tv = 0;
  for (let i = 0; i < x.length; i++) {
    tv += Math.abs(counts[i] / n - ref[i]) / 2;
    if (ref[i] === 0) {
      assertEquals(counts[i], 0, `filtered token ${i} was drawn`);
      continue;
    }
    chi2 += (counts[i] - n * ref[i]) ** 2 / (n * ref[i]);
    df++;
  }
  assertLess(chi2, chi2Critical(df));
  assertLess(tv, 0.02);
});

Deno.test("chooseToken() with the same seed gives the same tokens; another seed gives others", () => {
  const x = randomLogits(13, 100, 1);
  const run = (seed: number): number[] => {
    const prng = createPrng(seed);
    const ids: number[] = [];
    for (let i = 0; i < 50; i++) {
      ids.push(sampleToken(x, { topP: 0.95, repetitionPenalty: 1.1, previousIds: ids, prng }));
    }
    return ids;
  };
  assertEquals(run(5), run(5));
  assertNotEquals(run(5), run(6));
});

Deno.test("chooseToken() at temperature 0 is greedy whatever the filters, needs no PRNG and draws nothing", () => {
  const x = new Float32Array([0.5, 2, 2, -1]);
  const prng = createPrng(1);
  const twin = prng.clone();
  const c = chooseToken(x, { temperature: 0, topK: 3, topP: 0.1, minP: 0.9, prng });
  assertEquals(c.id, 1);
  assertEquals(c.greedy, true);
  assertEquals(c.prob, 1);
  assertEquals(c.keptCount, 1);
  assertEquals(prng.next(), twin.next());
  assertEquals(sampleToken(x, { temperature: 0 }), 1);
  // The repetition penalty still applies before the argmax.
  assertEquals(sampleToken(x, { temperature: 0, repetitionPenalty: 2, previousIds: [1] }), 2);
});

Deno.test("chooseToken() reports the model log-probability of the chosen token", () => {
  const x = randomLogits(14, 64);
  const c = chooseToken(x, { temperature: 0.5, topK: 5, prng: createPrng(2) });
  const p = refSoftmax(Array.from(x));
  assertAlmostEquals(c.modelProb, p[c.id], 1e-12);
  assertAlmostEquals(c.logprob, Math.log(p[c.id]), 1e-9);
  assertAlmostEquals(c.prob, refPipeline(Array.from(x), { temperature: 0.5, topK: 5 })[c.id], 1e-12);
  assertEquals(c.keptCount, 5);
  const tiny = chooseToken(new Float32Array([0, -1000]), { temperature: 1e6, prng: createPrng(3) });
  assert(Number.isFinite(tiny.logprob));
});

Deno.test("chooseToken() without a PRNG at temperature > 0 throws a TypeError naming the fix", () => {
  assertThrows(() => chooseToken(new Float32Array([1, 2])), TypeError, "options.prng is required");
  assertThrows(() => chooseToken(new Float32Array([1, 2]), { temperature: 0.7 }), TypeError, "createPrng(seed)");
});

Deno.test("invalid parameters throw a RangeError naming the value and the valid range", () => {
  const x = new Float32Array([1, 2, 3]);
  const cases: [() => unknown, string][] = [
    [() => chooseToken(x, { temperature: -1 }), "temperature must be a finite number >= 0 (0 means greedy), got -1"],
    [() => chooseToken(x, { temperature: NaN }), "temperature must be a finite number >= 0 (0 means greedy), got NaN"],
    [() => applyTemperature(x, Infinity), "got Infinity"],
    [() => chooseToken(x, { topP: 0 }), "topP must be in (0, 1], got 0"],
    [() => topP(x, 1.5), "topP must be in (0, 1], got 1.5"],
    [() => topP(x, NaN), "topP must be in (0, 1], got NaN"],
    [() => chooseToken(x, { topK: 0 }), "topK must be an integer >= 1, got 0"],
    [() => topK(x, 2.5), "topK must be an integer >= 1, got 2.5"],
    [() => topK(x, -3), "got -3"],
    [() => chooseToken(x, { minP: -0.1 }), "minP must be in [0, 1], got -0.1"],
    [() => minP(x, 1.1), "minP must be in [0, 1], got 1.1"],
    [() => minP(x, NaN), "got NaN"],
    [
      () => chooseToken(x, { repetitionPenalty: 0 }),
      "repetitionPenalty must be a finite number > 0 (1 disables it), got 0",
    ],
    [() => repetitionPenalty(x, { penalty: -1, previousIds: [] }), "got -1"],
    [() => repetitionPenalty(x, { penalty: NaN, previousIds: [] }), "got NaN"],
    [() => softmax(new Float32Array([1, NaN])), "logits[1] is NaN"],
    [() => chooseToken(new Float32Array([Infinity, 1]), { temperature: 0 }), "logits[0] is +Infinity"],
    [() => softmax(new Float32Array([-Infinity, -Infinity])), "every logit is -Infinity"],
    [() => softmax(new Float32Array(0)), "logits is empty"],
    [() => entropy([]), "logits is empty"],
    [() => chooseToken(x, { temperature: 0, previousIds: [5] }), "previousIds[0] = 5 is not a token id in [0, 3)"],
    [() => chooseToken(x, { temperature: 0, previousIds: [0, 1.5] }), "previousIds[1] = 1.5"],
  ];
  for (const [fn, text] of cases) assertThrows(fn, RangeError, text);
});

Deno.test("topP() agrees with the full-sort reference on a large vocabulary and on very spread logits", () => {
  const big = randomLogits(15, 20_000, 2);
  for (const p of [0.3, 0.9, 0.999]) assertClose(topP(big, p).probs, refPipeline(Array.from(big), { topP: p }), 1e-7);
  const spread = Float32Array.from({ length: 500 }, (_, i) => -i * 0.9);
  for (const p of [0.5, 0.99, 1 - 1e-12]) {
    assertClose(topP(spread, p).probs, refPipeline(Array.from(spread), { topP: p }), 1e-7, `p=${p}`);
  }
});

Deno.test("the transforms leave their input untouched", () => {
  const x = new Float32Array([1, 2, 3, -1]);
  const copy = x.slice();
  applyTemperature(x, 0.5);
  topK(x, 2);
  topP(x, 0.5);
  minP(x, 0.5);
  repetitionPenalty(x, { penalty: 2, previousIds: [0, 1] });
  chooseToken(x, { temperature: 0.3, topK: 2, repetitionPenalty: 2, previousIds: [2], prng: createPrng(0) });
  assertEquals(x, copy);
});
