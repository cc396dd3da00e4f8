import { assert, assertEquals, assertLess, assertNotEquals, assertRejects, assertThrows } from "@std/assert";
import {
  decaysWeight,
  evaluate,
  formatProgress,
  gpt2LossAndGrad,
  initGpt2Params,
  learningRateAt,
  loadCheckpoint,
  saveCheckpoint,
  train,
  type TrainOptions,
} from "../lib/train.ts";
import type { Gpt2Config, ParamMap } from "../lib/types.ts";
import { forward } from "../lib/forward.ts";
import { createPrng } from "../lib/prng.ts";

const tiny: Gpt2Config = {
  family: "gpt2",
  vocabSize: 7,
  maxPositions: 8,
  dModel: 16,
  nLayer: 2,
  nHead: 2,
  dMlp: 64,
  normEps: 1e-5,
};

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** A stream with some structure (so loss curves move) but not trivially periodic. */
function corpus(n: number, vocab: number, seed: number): Int32Array {
  const u = lcg(seed);
  const d = new Int32Array(n);
  for (let i = 1; i < n; i++) d[i] = u() < 0.7 ? (d[i - 1] + 1) % vocab : Math.floor(u() * vocab);
  return d;
}

function flat(params: ParamMap): Float32Array[] {
  return [...params.values()].map((t) => t.data);
}

const base: TrainOptions = { steps: 12, batchSize: 4, seqLen: 8, lr: 3e-3, warmup: 3, seed: 5 };

Deno.test("initGpt2Params() follows GPT-2 init: std 0.02, residual projections scaled, biases 0, gains 1", () => {
  const config: Gpt2Config = { ...tiny, vocabSize: 512, dModel: 64, nLayer: 3, dMlp: 256, nHead: 4 };
  const p = initGpt2Params(config, lcg(1));
  const std = (a: Float32Array) => {
    let s = 0, s2 = 0;
    for (const v of a) {
      s += v;
      s2 += v * v;
    }
    return Math.sqrt(s2 / a.length - (s / a.length) ** 2);
  };
  // sample std of n normals has relative standard error 1/√(2n) (< 1% here); allow 5%
  const near = (got: number, want: number, what: string) =>
    assertLess(Math.abs(got / want - 1), 0.05, `${what}: std ${got}, want ${want}`);
  near(std(p.get("embed.tokens")!.data), 0.02, "embed.tokens");
  near(std(p.get("blocks.1.attn.qkv.weight")!.data), 0.02, "qkv");
  near(std(p.get("blocks.1.mlp.in.weight")!.data), 0.02, "mlp.in");
  near(std(p.get("blocks.2.attn.o.weight")!.data), 0.02 / Math.sqrt(6), "attn.o");
  near(std(p.get("blocks.0.mlp.out.weight")!.data), 0.02 / Math.sqrt(6), "mlp.out");
  for (const [name, t] of p) {
    if (name.endsWith(".bias")) assert(t.data.every((v) => v === 0), name);
    if (name.endsWith(".gain")) assert(t.data.every((v) => v === 1), name);
  }
  assertEquals(p.get("blocks.0.attn.qkv.weight")!.dims, [64, 192]);
  assertEquals(p.get("embed.positions")!.dims, [8, 64]);
  assertEquals(flat(initGpt2Params(config, lcg(1))), flat(p), "same prng seed, same weights");
});

Deno.test("loss at initialisation is close to ln(vocab)", () => {
  const config: Gpt2Config = { ...tiny, vocabSize: 64, maxPositions: 16 };
  const p = initGpt2Params(config, lcg(9));
  const data = corpus(200, 64, 2);
  // logits at init are ~N(0, σ²) with σ ≈ 0.02·‖h‖·… ≪ 1, so the loss is ln V + O(σ²)
  const r = evaluate(config, p, data, 16);
  assertLess(Math.abs(r.loss - Math.log(64)), 0.05, `loss ${r.loss} vs ln 64 = ${Math.log(64)}`);
  assertLess(Math.abs(r.perplexity - Math.exp(r.loss)), 1e-9);
  assertEquals(r.tokens, Math.floor(199 / 16) * 16);
});

Deno.test("evaluate() averages the per-window losses of gpt2LossAndGrad()", () => {
  const p = initGpt2Params(tiny, lcg(3));
  const data = corpus(41, tiny.vocabSize, 4);
  const r = evaluate(tiny, p, data, 8, { batchSize: 3 });
  let sum = 0;
  for (let w = 0; w < 5; w++) {
    sum += gpt2LossAndGrad(tiny, p, data.slice(w * 8, w * 8 + 8), data.slice(w * 8 + 1, w * 8 + 9)).loss;
  }
  assertLess(Math.abs(r.loss - sum / 5), 1e-6);
  assertEquals(r.tokens, 40);
});

Deno.test("train() drives the loss near 0 on a tiny repeating sequence", async () => {
  const data = new Int32Array(400).map((_, i) => [0, 3, 1, 4, 1, 5][i % 6]);
  // "1" is followed by 4 or 5, so the first positions of a window are ambiguous; later ones are not
  const { history } = await train(tiny, data, {
    steps: 250,
    batchSize: 8,
    seqLen: 8,
    lr: 1e-2,
    warmup: 10,
    weightDecay: 0,
  });
  assertLess(Math.abs(history[0].loss - Math.log(tiny.vocabSize)), 0.1, "starts near ln V");
  const end = history.slice(-10).reduce((a, h) => a + h.loss, 0) / 10;
  assertLess(end, 0.15, `final loss ${end}`);
});

Deno.test("train() with the same seed gives a bit-identical loss curve; another seed differs", async () => {
  const data = corpus(500, tiny.vocabSize, 1);
  const a = await train(tiny, data, base);
  const b = await train(tiny, data, base);
  const c = await train(tiny, data, { ...base, seed: 6 });
  assertEquals(a.history.map((h) => h.loss), b.history.map((h) => h.loss));
  assertEquals(a.history.map((h) => h.gradNorm), b.history.map((h) => h.gradNorm));
  assertEquals(flat(a.params), flat(b.params));
  assertNotEquals(a.history.map((h) => h.loss), c.history.map((h) => h.loss));
});

Deno.test("train() with workers 2 reproduces workers 1 bit for bit", async () => {
  const data = corpus(500, tiny.vocabSize, 1);
  const one = await train(tiny, data, { ...base, batchSize: 5, workers: 1 });
  const two = await train(tiny, data, { ...base, batchSize: 5, workers: 2 });
  assertEquals(two.history.map((h) => h.loss), one.history.map((h) => h.loss));
  assertEquals(flat(two.params), flat(one.params));
});

Deno.test("train() resumed from a checkpoint reproduces the uninterrupted run exactly", async () => {
  const data = corpus(500, tiny.vocabSize, 1);
  const evalData = corpus(100, tiny.vocabSize, 8);
  const opts: TrainOptions = { ...base, evalData, evalEvery: 4, checkpointEvery: 5 };
  const full = await train(tiny, data, opts);
  const dir = await Deno.makeTempDir();
  try {
    const checkpointPath = `${dir}/run.ckpt`;
    const stop = new AbortController();
    const first = await train(tiny, data, {
      ...opts,
      checkpointPath,
      signal: stop.signal,
      onStep: (i) => {
        if (i.step === 7) stop.abort();
      },
    });
    assertEquals(first.step, 7);
    assertEquals((await loadCheckpoint(checkpointPath)).step, 7);
    const resumed = await train(tiny, data, { ...opts, checkpointPath, resume: true });
    assertEquals(resumed.step, 12);
    assertEquals(resumed.history.map((h) => h.loss), full.history.map((h) => h.loss));
    assertEquals(resumed.evals, full.evals);
    assertEquals(flat(resumed.params), flat(full.params));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("saveCheckpoint() and loadCheckpoint() round-trip; another config is refused naming the field", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/c.ckpt`;
    const params = initGpt2Params(tiny, lcg(2));
    const n = flat(params).reduce((a, t) => a + t.length, 0);
    const adamM = new Float32Array(n).map((_, i) => i * 1e-3), adamV = new Float32Array(n).map((_, i) => i * 1e-6);
    await saveCheckpoint(path, {
      config: tiny,
      step: 3,
      params,
      adamM,
      adamV,
      rngState: 1234,
      batchSize: 4,
      seqLen: 8,
      history: [],
      evals: [],
    });
    const ck = await loadCheckpoint(path);
    assertEquals(ck.config, tiny);
    assertEquals(ck.step, 3);
    assertEquals(ck.rngState, 1234);
    assertEquals(flat(ck.params), flat(params));
    assertEquals(ck.adamM, adamM);
    assertEquals(ck.adamV, adamV);
    const data = corpus(200, tiny.vocabSize, 1);
    const e = await assertRejects(
      () => train({ ...tiny, dModel: 32 }, data, { ...base, checkpointPath: path, resume: true }),
      RangeError,
    );
    assert(e.message.includes("dModel") && e.message.includes("16") && e.message.includes("32"), e.message);
    await Deno.writeTextFile(`${dir}/bad.ckpt`, "not a checkpoint");
    await assertRejects(() => loadCheckpoint(`${dir}/bad.ckpt`), TypeError, "not a paramscope checkpoint");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AdamW weight decay changes matrices and embeddings but not biases or gains", async () => {
  const data = corpus(200, tiny.vocabSize, 1);
  // After one step the gradients are those of the shared initial weights, so any difference comes from decay.
  const opts: TrainOptions = { ...base, steps: 1, warmup: 0, lr: 1e-2 };
  const off = await train(tiny, data, { ...opts, weightDecay: 0 });
  const on = await train(tiny, data, { ...opts, weightDecay: 0.5 });
  for (const [name, t] of on.params) {
    const same = t.data.every((v, i) => v === off.params.get(name)!.data[i]);
    if (name.endsWith(".bias") || name.endsWith(".gain")) assert(same, `${name} must not be decayed`);
    else assert(!same, `${name} must be decayed`);
    assertEquals(decaysWeight(name), !(name.endsWith(".bias") || name.endsWith(".gain")));
  }
});

Deno.test("learningRateAt() warms up linearly then follows a cosine down to minLr", () => {
  const s = { lr: 1e-3, warmup: 10, minLr: 1e-4, steps: 111 };
  assertLess(Math.abs(learningRateAt(0, s) - 1e-4), 1e-15);
  assertLess(Math.abs(learningRateAt(4, s) - 5e-4), 1e-15);
  assertLess(Math.abs(learningRateAt(10, s) - 1e-3), 1e-15);
  assertLess(Math.abs(learningRateAt(60, s) - 5.5e-4), 1e-12, "halfway: (lr + minLr) / 2");
  assertLess(Math.abs(learningRateAt(110, s) - 1e-4), 1e-15, "last step: minLr");
  for (let i = 11; i < 111; i++) assert(learningRateAt(i, s) <= learningRateAt(i - 1, s));
});

Deno.test("formatProgress() shows step, loss, tokens/s and time left", () => {
  const line = formatProgress(
    { step: 450, loss: 3.21412, lr: 1e-3, gradNorm: 1, tokensPerSec: 12345, elapsedMs: 60000, etaMs: 252000 },
    1000,
  );
  assert(line.includes(" 450/1000"), line);
  assert(line.includes("loss 3.2141"), line);
  assert(line.includes("12.3k tok/s"), line);
  assert(line.includes("4m12s"), line);
  assert(line.startsWith("[#########-----------]"), line);
  assert(!line.includes("\n"));
});

Deno.test("train() reports onStep progress with lr, gradNorm, throughput and ETA", async () => {
  const seen: number[] = [];
  const data = corpus(200, tiny.vocabSize, 1);
  const r = await train(tiny, data, {
    ...base,
    steps: 5,
    warmup: 2,
    clip: 0.5,
    onStep: (i) => {
      seen.push(i.step);
      assert(i.tokensPerSec > 0 && i.elapsedMs > 0 && i.etaMs >= 0 && i.gradNorm > 0);
      // default minLr is lr / 10
      const want = learningRateAt(i.step - 1, { lr: 3e-3, warmup: 2, minLr: 3e-4, steps: 5 });
      assertLess(Math.abs(i.lr - want), 1e-15);
    },
  });
  assertEquals(seen, [1, 2, 3, 4, 5]);
  assertEquals(r.history.length, 5);
});

Deno.test("train() rejects bad learning rates, empty data and too-long sequences with RangeErrors", async () => {
  const data = corpus(100, tiny.vocabSize, 1);
  for (const lr of [NaN, 0, -1e-3, Infinity]) {
    await assertRejects(() => train(tiny, data, { ...base, lr }), RangeError, "lr must be");
  }
  await assertRejects(() => train(tiny, new Int32Array(0), base), RangeError, "data is empty");
  await assertRejects(() => train(tiny, data, { ...base, seqLen: 9 }), RangeError, "maxPositions 8");
  await assertRejects(() => train(tiny, new Int32Array(8), base), RangeError, "seqLen + 1");
  await assertRejects(
    () => train(tiny, new Int32Array([0, 1, 99, 2, 3, 4, 5, 6, 1, 2]), base),
    RangeError,
    "[2] is 99",
  );
  await assertRejects(
    () => train(tiny, data, { ...base, workers: 3 as unknown as 1 }),
    RangeError,
    "workers must be 1 or 2",
  );
  await assertRejects(() => train({ ...tiny, nHead: 3 }, data, base), RangeError, "divisible");
  assertThrows(() => evaluate(tiny, initGpt2Params(tiny, lcg(1)), data, 9), RangeError, "maxPositions");
  assertThrows(() => initGpt2Params(tiny, 5 as unknown as () => number), TypeError);
});

Deno.test("trained parameters follow the lib/types.ts contract: lib/forward.ts gives the same loss", async () => {
  const data = corpus(300, tiny.vocabSize, 1);
  const { params } = await train(tiny, data, { ...base, steps: 20 });
  const window = data.slice(0, 9);
  const { logits } = forward(tiny, params, window.slice(0, 8));
  let loss = 0;
  for (let t = 0; t < 8; t++) {
    const row = Array.from(logits.data.subarray(t * tiny.vocabSize, (t + 1) * tiny.vocabSize));
    const mx = Math.max(...row);
    loss += mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0)) - row[window[t + 1]];
  }
  const ours = evaluate(tiny, params, window, 8).loss;
  assertLess(Math.abs(ours - loss / 8), 1e-5, `train's loss ${ours} vs forward() ${loss / 8}`);
});

Deno.test("initGpt2Params() accepts a createPrng() generator and is repeatable with it", () => {
  const a = initGpt2Params(tiny, createPrng(11));
  const b = initGpt2Params(tiny, createPrng(11));
  const c = initGpt2Params(tiny, createPrng(12));
  assertEquals(flat(a), flat(b));
  assertNotEquals(flat(a)[0], flat(c)[0]);
});
