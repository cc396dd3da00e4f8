/**
 * The reference forward pass (forward.ts over loadParams) against ONNX Runtime
 * running the exported graph (transformers.js), on the bundled model and on
 * the kit's own LLaMA and GPT-2 exports (readable and anonymous initializer
 * names): max |logit diff| <= 1e-4 in fp32, for 1 token, 7 tokens and the full
 * context, without a KV cache and continuing an ONNX-made cache.
 *
 * The measured differences are printed (`deno test` shows them under each test).
 */
import { assert, assertEquals, assertLessOrEqual, assertRejects } from "@std/assert";
import { createEngine, type Engine, pastLength } from "../lib/engine.ts";
import type { KeyValue } from "../lib/forward.ts";
import { loadModel, type Model } from "../lib/load.ts";
import { createPrng } from "../lib/prng.ts";
import type { Tensor } from "../lib/types.ts";
import { TINY_GPT2, TINY_LLAMA, tinyModelDir } from "./_fixtures.ts";

/** fp32 agreement bound on logits (and cached keys/values) between the two engines. */
const TOLERANCE = 1e-4;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assertEquals(a.length, b.length, "compared tensors differ in size");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxKvDiff(a: readonly KeyValue[], b: readonly KeyValue[]): number {
  assertEquals(a.length, b.length);
  let m = 0;
  a.forEach((kv, l) => {
    assertEquals(kv.key.dims, b[l].key.dims);
    m = Math.max(m, maxAbsDiff(kv.key.data, b[l].key.data), maxAbsDiff(kv.value.data, b[l].value.data));
  });
  return m;
}

function rows(t: Tensor, from: number, to: number): Float32Array {
  const vocab = t.dims[1];
  return t.data.subarray(from * vocab, to * vocab);
}

function randomIds(n: number, vocab: number, seed: number): number[] {
  const prng = createPrng(seed);
  return Array.from({ length: n }, () => prng.nextInt(vocab));
}

/** One measured comparison. */
interface Row {
  model: string;
  tokens: number;
  check: string;
  logits: number;
  kv: number;
}

/** Runs every comparison on one model and asserts the tolerance; returns the measured rows. */
async function checkParity(label: string, model: Model): Promise<Row[]> {
  const ref = await createEngine(model, { engine: "reference" });
  const ort = await createEngine(model, { engine: "onnx" });
  const { vocabSize, maxPositions } = model.arch!;
  const out: Row[] = [];
  const record = (tokens: number, check: string, logits: number, kv: number) => {
    out.push({ model: label, tokens, check, logits, kv });
    assertLessOrEqual(logits, TOLERANCE, `${label}, ${tokens} tokens, ${check}: max |logit diff| ${logits}`);
    assertLessOrEqual(kv, TOLERANCE, `${label}, ${tokens} tokens, ${check}: max |key/value diff| ${kv}`);
  };
  for (const n of [1, 7, maxPositions]) {
    const ids = randomIds(n, vocabSize, 1000 + n);
    // Whole sequence, no cache: every row of logits and every cached key/value.
    const a = await ref.run(ids), b = await ort.run(ids);
    assertEquals(a.logits.dims, [n, vocabSize]);
    assertEquals(b.logits.dims, [n, vocabSize]);
    record(n, "no cache", maxAbsDiff(a.logits.data, b.logits.data), maxKvDiff(a.present, b.present));
    if (n < 2) continue;
    // Prefix through ONNX Runtime, then both engines continue from its cache: one token, then (if room) three.
    for (const step of n >= 4 ? [1, 3] : [1]) {
      const prefix = await ort.run(ids.slice(0, n - step));
      assertEquals(pastLength(prefix.present), n - step);
      const x = await ref.run(ids.slice(n - step), { past: prefix.present });
      const y = await ort.run(ids.slice(n - step), { past: prefix.present });
      record(
        n,
        `ONNX prefix ${n - step} + ${step} with past`,
        maxAbsDiff(x.logits.data, y.logits.data),
        maxKvDiff(x.present, y.present),
      );
      // The cached step must agree with the same rows of the uncached run.
      const full = rows(b.logits, n - step, n);
      assertLessOrEqual(maxAbsDiff(y.logits.data, full), TOLERANCE, `${label}: ONNX cached vs uncached`);
      assertLessOrEqual(maxAbsDiff(x.logits.data, full), TOLERANCE, `${label}: reference cached vs ONNX uncached`);
    }
    // logits: "last" is the last row of "all" on both engines.
    const lastRef = await ref.run(ids, { logits: "last" }), lastOrt = await ort.run(ids, { logits: "last" });
    assertEquals(lastRef.logits.dims, [1, vocabSize]);
    assertEquals(Array.from(lastOrt.logits.data), Array.from(rows(b.logits, n - 1, n)));
    assertLessOrEqual(maxAbsDiff(lastRef.logits.data, lastOrt.logits.data), TOLERANCE);
  }
  for (const r of out) {
    console.log(
      `${r.model.padEnd(24)} ${String(r.tokens).padStart(4)} tokens  ${r.check.padEnd(32)} ` +
        `max|Δlogit| ${r.logits.toExponential(2)}  max|Δkv| ${r.kv.toExponential(2)}`,
    );
  }
  return out;
}

async function withModel(path: string | undefined, f: (m: Model) => Promise<void>): Promise<void> {
  const m = await loadModel(path);
  try {
    await f(m);
  } finally {
    await m.dispose();
  }
}

async function withExport(
  config: typeof TINY_GPT2 | typeof TINY_LLAMA,
  anonymize: boolean,
  f: (m: Model, names: Record<string, string>) => Promise<void>,
): Promise<void> {
  const { dir, names } = await tinyModelDir(config, { anonymize });
  try {
    await withModel(dir, (m) => f(m, names));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("reference and ONNX Runtime logits agree within 1e-4 on the bundled model (1, 7, full context; with and without past)", async () => {
  await withModel(undefined, async (m) => {
    const r = await checkParity("bundled gpt2", m);
    assert(r.some((x) => x.tokens === m.arch!.maxPositions));
  });
});

Deno.test("reference and ONNX Runtime logits agree within 1e-4 on the kit's LLaMA export (GQA, untied head)", async () => {
  await withExport(TINY_LLAMA, false, async (m) => {
    assertEquals(m.arch!.family, "llama");
    await checkParity("llama export", m);
  });
});

Deno.test("reference and ONNX Runtime logits agree within 1e-4 on a GPT-2 export with anonymous onnx::MatMul names", async () => {
  await withExport(TINY_GPT2, true, async (m, names) => {
    assert(Object.keys(names).some((n) => n.startsWith("onnx::")), "the export should use anonymous names");
    await checkParity("gpt2 export, anonymous", m);
  });
});

Deno.test("reference and ONNX Runtime logits agree within 1e-4 on a LLaMA export with anonymous names", async () => {
  await withExport(TINY_LLAMA, true, async (m) => {
    await checkParity("llama export, anonymous", m);
  });
});

Deno.test("a KV cache made by the reference engine continues in ONNX Runtime", async () => {
  await withExport(TINY_LLAMA, false, async (m) => {
    const ref = await createEngine(m, { engine: "reference" });
    const ort = await createEngine(m, { engine: "onnx" });
    const ids = randomIds(9, m.arch!.vocabSize, 7);
    const prefix = await ref.run(ids.slice(0, 6));
    const a = await ort.run(ids.slice(6), { past: prefix.present });
    const whole = await ort.run(ids);
    const d = maxAbsDiff(a.logits.data, rows(whole.logits, 6, 9));
    console.log(`reference prefix 6 + ONNX step 3 vs ONNX whole: max|Δlogit| ${d.toExponential(2)}`);
    assertLessOrEqual(d, TOLERANCE);
  });
});

Deno.test("both engines reject bad ids, a wrongly shaped past and positions beyond the context with the same RangeError", async () => {
  await withExport(TINY_GPT2, false, async (m) => {
    const engines: Engine[] = [
      await createEngine(m, { engine: "reference" }),
      await createEngine(m, { engine: "onnx" }),
    ];
    const { vocabSize, maxPositions } = m.arch!;
    const ok = await engines[1].run([1, 2, 3]);
    for (const e of engines) {
      await assertRejects(() => e.run([]), RangeError, "ids is empty");
      await assertRejects(() => e.run([vocabSize]), RangeError, `not a token id in [0, ${vocabSize})`);
      await assertRejects(() => e.run([1.5]), RangeError, "not a token id");
      await assertRejects(() => e.run(new Array(maxPositions + 1).fill(1)), RangeError, "exceed the context");
      await assertRejects(() => e.run([1], { past: ok.present.slice(1) }), RangeError, "one {key, value} per layer");
      const bad = ok.present.map((kv) => ({ key: { data: kv.key.data, dims: [1, 1, 3, 8] }, value: kv.value }));
      await assertRejects(() => e.run([1], { past: bad }), RangeError, "[batch, kv_head, past_pos, d_head]");
      await assertRejects(
        () => e.run(new Array(maxPositions - 2).fill(1), { past: ok.present }),
        RangeError,
        "exceed the context",
      );
      // deno-lint-ignore no-explicit-any
      await assertRejects(() => e.run([1], { logits: "first" as any }), RangeError, '"all" or "last"');
    }
  });
});

Deno.test("createEngine() rejects an unknown engine name and a model without an ONNX session", async () => {
  const tokOnly = await loadModel(undefined, { tokenizerOnly: true });
  // deno-lint-ignore no-explicit-any
  await assertRejects(() => createEngine(tokOnly, { engine: "tensorflow" as any }), RangeError, "reference, onnx");
  await assertRejects(() => createEngine(tokOnly, { engine: "onnx" }), TypeError, "no ONNX Runtime session");
  await assertRejects(
    () => createEngine({ ...tokOnly, arch: undefined }, { engine: "reference" }),
    TypeError,
    "not a GPT-2 or LLaMA-family",
  );
});

Deno.test("createEngine() returns the same engine for the same model and name", async () => {
  await withModel(undefined, async (m) => {
    assert(await createEngine(m, { engine: "reference" }) === await createEngine(m, { engine: "reference" }));
    assert(await createEngine(m) === await createEngine(m, { engine: "onnx" }));
  });
});
