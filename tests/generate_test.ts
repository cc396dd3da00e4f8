/**
 * nextToken(), generate() and the incremental text stream, on the bundled
 * model and the kit's own tiny exports; and scripts/forward.ts and
 * scripts/generate.ts run as a user runs them (subprocesses, no network).
 *
 * Independent references: a float64 softmax/entropy over reference-forward
 * logits; transformers.js's own generate() for greedy decoding; a loop that
 * recomputes the whole sequence without a KV cache for sampled decoding; the
 * tokenizer's decode of all ids for streamed text.
 */
import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertGreater,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { join } from "node:path";
import { createSimdMatmul, pinnedBytes } from "../lib/_kernels.ts";
import { createEngine } from "../lib/engine.ts";
import { forward } from "../lib/forward.ts";
import {
  createTextStream,
  generate,
  type GenerateOptions,
  type GenerateResult,
  generateText,
  nextToken,
} from "../lib/generate.ts";
import { loadModel, type Model } from "../lib/load.ts";
import { createPrng } from "../lib/prng.ts";
import { chooseToken } from "../lib/sample.ts";
import { loadParams } from "../lib/weights.ts";
import { TINY_GPT2, TINY_LLAMA, tinyModelDir } from "./_fixtures.ts";

// ---------------------------------------------------------------------------------------------
// Fixtures: the bundled model, a LLaMA export, and the same export with a BOS-adding tokenizer
// ---------------------------------------------------------------------------------------------

const cleanup: (() => Promise<void>)[] = [];
const models = new Map<string, Promise<Model>>();

function cached(key: string, make: () => Promise<Model>): Promise<Model> {
  let m = models.get(key);
  if (!m) {
    m = make().then((model) => {
      cleanup.push(() => model.dispose());
      return model;
    });
    models.set(key, m);
  }
  return m;
}

const bundled = () => cached("bundled", () => loadModel());

async function exportDir(config: typeof TINY_GPT2 | typeof TINY_LLAMA, anonymize = false): Promise<string> {
  const { dir } = await tinyModelDir(config, { anonymize });
  cleanup.push(() => Deno.remove(dir, { recursive: true }));
  return dir;
}

const llama = () => cached("llama", async () => loadModel(await exportDir(TINY_LLAMA)));

/** The LLaMA export with a tokenizer whose post-processor puts `<|endoftext|>` (id 256) first, as LLaMA's adds `<s>`. */
const llamaBos = () =>
  cached("llama-bos", async () => {
    const dir = await exportDir(TINY_LLAMA);
    const path = join(dir, "tokenizer.json");
    const json = JSON.parse(await Deno.readTextFile(path));
    json.post_processor = {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<|endoftext|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<|endoftext|>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<|endoftext|>": { id: "<|endoftext|>", ids: [256], tokens: ["<|endoftext|>"] } },
    };
    await Deno.writeTextFile(path, JSON.stringify(json));
    return loadModel(dir);
  });

/** Greedy continuation by transformers.js's own generate() on the tokenizer's encoding of `prompt`. */
async function hfGreedy(m: Model, prompt: string, maxNewTokens: number): Promise<{ prompt: number[]; ids: number[] }> {
  const inputs = m.tokenizer(prompt);
  const n = inputs.input_ids.dims[1];
  const out = await m.model!.generate({ ...inputs, max_new_tokens: maxNewTokens, do_sample: false });
  const all = (out as unknown as { tolist(): bigint[][] }).tolist()[0].map(Number);
  return { prompt: all.slice(0, n), ids: all.slice(n) };
}

async function collect(
  it: AsyncGenerator<unknown, GenerateResult>,
): Promise<{ items: unknown[]; result: GenerateResult }> {
  const items: unknown[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) return { items, result: r.value };
    items.push(r.value);
  }
}

function softmax64(x: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  const p = new Float64Array(x.length);
  let z = 0;
  for (let i = 0; i < x.length; i++) z += p[i] = Math.exp(x[i] - m);
  for (let i = 0; i < x.length; i++) p[i] /= z;
  return p;
}

// ---------------------------------------------------------------------------------------------
// The reference engine's pinned weights
// ---------------------------------------------------------------------------------------------

for (const [label, make] of [["bundled GPT-2", bundled], ["LLaMA export", llama]] as const) {
  Deno.test(`the reference engine on ${label} (weights pinned in WebAssembly memory) gives forward()'s exact bits on a separate copy`, async () => {
    const m = await make();
    const engine = await createEngine(m, { engine: "reference" });
    if (createSimdMatmul()) assertGreater(pinnedBytes(), 0, "the engine pinned the model's weights");
    const copy = await loadParams(m); // a fresh copy, never pinned
    const arch = m.arch!;
    const ids = Array.from({ length: 9 }, (_, i) => (i * 37 + 5) % arch.vocabSize);
    const full = await engine.run(ids);
    assertEquals(full.logits.data, forward(arch, copy, ids).logits.data, "a whole prompt");
    // Decoding one token at a time over the KV cache, as generate() does.
    let past = (await engine.run(ids.slice(0, 5))).present;
    let pastCopy = forward(arch, copy, ids.slice(0, 5)).present!;
    for (let i = 5; i < ids.length; i++) {
      const step = await engine.run([ids[i]], { past });
      const want = forward(arch, copy, [ids[i]], { past: pastCopy });
      assertEquals(step.logits.data, want.logits.data, `step ${i}`);
      [past, pastCopy] = [step.present, want.present!];
    }
  });
}

// ---------------------------------------------------------------------------------------------
// nextToken
// ---------------------------------------------------------------------------------------------

Deno.test("nextToken() lists the most likely tokens with softmax probabilities and the entropy in nats and bits", async () => {
  const m = await bundled();
  const text = "The cat sat on the";
  const r = await nextToken(m, text, { topK: 7 });
  assertEquals(r.ids, m.tokenizer.encode(text));
  assertEquals(r.addedBos, false); // GPT-2 adds no BOS
  assertEquals(r.tokens.length, r.ids.length);
  assertEquals(r.engine, "onnx");
  assertEquals(r.top.length, 7);
  // Independent: the reference forward pass over the file's weights, softmax and entropy in float64.
  const params = await loadParams(m);
  const logits = forward(m.arch!, params, r.ids, { logits: "last" }).logits.data;
  const p = softmax64(logits);
  const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);
  assertEquals(r.top.map((t) => t.id), order.slice(0, 7));
  for (const t of r.top) {
    assertAlmostEquals(t.prob, p[t.id], 1e-6);
    assertAlmostEquals(t.logit, logits[t.id], 1e-4);
    assertEquals(t.text, m.tokenizer.decode([t.id]));
    assertEquals(m.tokenizer.get_vocab().get(t.token), t.id);
  }
  let h = 0;
  for (const q of p) if (q > 0) h -= q * Math.log(q);
  assertAlmostEquals(r.entropy.nats, h, 1e-4);
  assertAlmostEquals(r.entropy.bits, h / Math.LN2, 1e-4);
  assertEquals(r.logits.length, m.arch!.vocabSize);
});

Deno.test("nextToken() gives the same top tokens on the reference and ONNX engines, default topK 10", async () => {
  const m = await llama();
  const a = await nextToken(m, "Hello, world", { engine: "reference" });
  const b = await nextToken(m, "Hello, world", { engine: "onnx" });
  assertEquals(a.engine, "reference");
  assertEquals(a.top.length, 10);
  assertEquals(a.top.map((t) => t.id), b.top.map((t) => t.id));
  a.top.forEach((t, i) => assertAlmostEquals(t.logit, b.top[i].logit, 1e-4));
});

Deno.test("nextToken() reports the BOS a LLaMA-style tokenizer adds", async () => {
  const m = await llamaBos();
  const r = await nextToken(m, "Hi", { topK: 2 });
  assertEquals(r.addedBos, true);
  assertEquals(r.ids[0], 256);
  assertEquals(r.ids.length, 3);
  const plain = await nextToken(await llama(), "Hi", { topK: 2 });
  assertEquals(plain.addedBos, false);
  assertEquals(plain.ids, r.ids.slice(1));
});

Deno.test("nextToken() rejects a bad topK, an unknown engine, empty text and text beyond the context with a RangeError", async () => {
  const m = await bundled();
  for (const topK of [0, -1, 1.5, NaN]) {
    const err = await nextToken(m, "x", { topK }).catch((e) => e);
    assert(err instanceof RangeError && err.message.includes("topK"), String(err));
  }
  // deno-lint-ignore no-explicit-any
  const bad = await nextToken(m, "x", { engine: "gpu" as any }).catch((e) => e);
  assert(bad instanceof RangeError && bad.message.includes('"reference" or "onnx"'), String(bad));
  const empty = await nextToken(m, "").catch((e) => e);
  assert(empty instanceof RangeError, String(empty));
  const tiny = await llama();
  const long = await nextToken(tiny, "x".repeat(tiny.arch!.maxPositions + 1)).catch((e) => e);
  assert(long instanceof RangeError && long.message.includes(`context holds ${tiny.arch!.maxPositions}`), String(long));
});

// ---------------------------------------------------------------------------------------------
// generate: greedy parity with transformers.js
// ---------------------------------------------------------------------------------------------

for (
  const [label, get] of [["the bundled model", bundled], ["the LLaMA export", llama], [
    "the LLaMA export with a BOS",
    llamaBos,
  ]] as const
) {
  Deno.test(`generate() at temperature 0 produces exactly transformers.js's greedy tokens on ${label}`, async () => {
    const m = await get();
    const prompt = "The fox"; // 7 bytes + 20 tokens fit the tiny exports' context of 32
    const n = 20;
    const hf = await hfGreedy(m, prompt, n);
    for (const engine of ["onnx", "reference"] as const) {
      // Default EOS ids (the model's generation config), as transformers.js uses.
      const r = await generateText(m, prompt, { temperature: 0, maxTokens: n, engine });
      assertEquals(r.promptIds, hf.prompt, `${engine}: prompt ids`);
      assertEquals(r.ids, hf.ids, `${engine}: generated ids`);
      assertEquals(r.addedBos, label.includes("BOS"));
      assertEquals(r.engine, engine);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// generate: sampling
// ---------------------------------------------------------------------------------------------

Deno.test("generate() with the same seed gives the same tokens, and another seed other tokens", async () => {
  const m = await bundled();
  const opts: GenerateOptions = { temperature: 1.2, maxTokens: 12, seed: 7 };
  const a = await generateText(m, "Once upon a time", opts);
  const b = await generateText(m, "Once upon a time", opts);
  const c = await generateText(m, "Once upon a time", { ...opts, seed: 8 });
  assertEquals(a.ids, b.ids);
  assertEquals(a.text, b.text);
  assert(a.ids.join() !== c.ids.join(), "seeds 7 and 8 gave the same 12 tokens");
  const viaPrng = await generateText(m, "Once upon a time", { ...opts, seed: undefined, prng: createPrng(7) });
  assertEquals(viaPrng.ids, a.ids);
});

Deno.test("generate() over the KV cache samples what a loop recomputing every position without a cache samples", async () => {
  for (const get of [bundled, llama]) {
    const m = await get();
    const opts = { temperature: 0.9, topK: 40, topP: 0.95, minP: 0.01, repetitionPenalty: 1.3 };
    for (const engine of ["onnx", "reference"] as const) {
      const r = await generateText(m, "It was a dark", { ...opts, seed: 3, maxTokens: 10, engine, eosTokenIds: [] });
      // Independent loop: the whole sequence through the reference forward each step, no past.
      const params = await loadParams(m);
      const prng = createPrng(3);
      const seq = [...r.promptIds];
      const ids: number[] = [];
      for (let i = 0; i < 10; i++) {
        const logits = forward(m.arch!, params, seq, { logits: "last", present: false }).logits.data;
        const id = chooseToken(logits, { ...opts, previousIds: seq, prng }).id;
        seq.push(id);
        ids.push(id);
      }
      assertEquals(r.ids, ids, `${m.id} ${engine}`);
    }
  }
});

Deno.test("generate() streams tokens whose texts join to the result's text and to the decoding of the ids", async () => {
  const m = await bundled();
  const { items, result } = await collect(
    generate(m, "In the beginning", { temperature: 1, seed: 1, maxTokens: 16, eosTokenIds: [] }),
  );
  const tokens = items as {
    index: number;
    id: number;
    text: string;
    prob: number;
    modelProb: number;
    logprob: number;
  }[];
  assertEquals(tokens.map((t) => t.index), Array.from({ length: 16 }, (_, i) => i));
  assertEquals(tokens.map((t) => t.id), result.ids);
  assertEquals(tokens.map((t) => t.text).join(""), result.text);
  assertEquals(result.text, m.tokenizer.decode(result.ids));
  assertEquals(result.finishReason, "length");
  assertEquals(result.tokens.length, 16);
  for (const t of tokens) {
    assert(t.prob > 0 && t.prob <= 1);
    assertAlmostEquals(Math.log(t.modelProb), t.logprob, 1e-9);
  }
});

Deno.test("generate() at temperature 0 reports each token's log-probability as chooseToken() computes it", async () => {
  for (const get of [bundled, llama]) {
    const m = await get();
    const r = await generateText(m, "Probabilities", {
      temperature: 0,
      maxTokens: 6,
      engine: "reference",
      eosTokenIds: [],
    });
    const params = await loadParams(m);
    const seq = [...r.promptIds];
    for (const t of r.tokens) {
      const logits = forward(m.arch!, params, seq, { logits: "last", present: false }).logits.data;
      const want = chooseToken(logits, { temperature: 0 });
      assertEquals(t.id, want.id);
      assertEquals(t.prob, 1);
      assertAlmostEquals(t.logprob, want.logprob, 1e-5);
      assertAlmostEquals(t.modelProb, want.modelProb, 1e-6);
      seq.push(t.id);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// generate: stopping
// ---------------------------------------------------------------------------------------------

Deno.test("generate() stops on an EOS id, keeps it as the last id and spells no text for it", async () => {
  const m = await llama();
  const greedy = await generateText(m, "abc", { temperature: 0, maxTokens: 12, eosTokenIds: [] });
  const at = 4;
  const eos = greedy.ids[at];
  const first = greedy.ids.indexOf(eos);
  const r = await generateText(m, "abc", { temperature: 0, maxTokens: 12, eosTokenIds: [eos] });
  assertEquals(r.ids, greedy.ids.slice(0, first + 1));
  assertEquals(r.finishReason, "eos");
  assertEquals(r.tokens[r.tokens.length - 1].finishReason, "eos");
  assertEquals(r.text, m.tokenizer.decode(greedy.ids.slice(0, first)));
});

Deno.test("generate() stops at a stop string spanning two tokens, cuts it off and never streams it", async () => {
  const m = await bundled();
  const opts: GenerateOptions = { temperature: 1, seed: 11, maxTokens: 24, eosTokenIds: [] };
  const full = await generateText(m, "The weather today", opts);
  // A stop string made of the last 2 characters of token 4 and the first 2 of token 5.
  const boundary = full.tokens.slice(0, 5).map((t) => t.text).join("").length;
  const stop = full.text.slice(boundary - 2, boundary + 2);
  assertEquals(stop.length, 4);
  const expected = full.text.slice(0, full.text.indexOf(stop));
  const { items, result } = await collect(generate(m, "The weather today", { ...opts, stop: ["zzzz-never", stop] }));
  assertEquals(result.finishReason, "stop");
  assertEquals(result.text, expected);
  const texts = (items as { text: string }[]).map((t) => t.text);
  assertEquals(texts.join(""), expected);
  assert(texts.every((t) => !t.includes(stop)));
  assertEquals(result.ids, full.ids.slice(0, result.ids.length));
  assertEquals((items[items.length - 1] as { finishReason?: string }).finishReason, "stop");
});

Deno.test("generate() makes exactly maxTokens tokens, none for 0", async () => {
  const m = await bundled();
  const r = await generateText(m, "One", { temperature: 0, maxTokens: 5, eosTokenIds: [] });
  assertEquals(r.ids.length, 5);
  assertEquals(r.finishReason, "length");
  const none = await generateText(m, "One", { maxTokens: 0 });
  assertEquals(none.ids, []);
  assertEquals(none.text, "");
});

Deno.test("generate() refuses a prompt that fills the context, or truncates it from the left and says so", async () => {
  const m = await llama();
  const C = m.arch!.maxPositions;
  const long = Array.from({ length: C + 5 }, (_, i) => 40 + (i % 50));
  const err = assertThrows(() => generate(m, long, { maxTokens: 4 }), RangeError);
  assertStringIncludes(err.message, `context holds ${C}`);
  assertStringIncludes(err.message, 'overflow: "truncate"');
  const r = await generateText(m, long, { temperature: 0, maxTokens: 4, overflow: "truncate", eosTokenIds: [] });
  assertEquals(r.promptIds, long.slice(long.length - (C - 4)));
  assertEquals(r.truncated, 9);
  assertEquals(r.ids.length, 4);
  assertStringIncludes(r.warnings.join("\n"), "truncated");
  // Without truncation a prompt that leaves some room generates until the context is full.
  const near = await generateText(m, long.slice(0, C - 3), { temperature: 0, maxTokens: 10, eosTokenIds: [] });
  assertEquals(near.ids.length, 3);
  assertEquals(near.finishReason, "context");
});

Deno.test("generate() keeps the BOS when it truncates a prompt", async () => {
  const m = await llamaBos();
  const C = m.arch!.maxPositions;
  const text = "abcdefghij".repeat(4);
  const r = await generateText(m, text, { temperature: 0, maxTokens: 6, overflow: "truncate", eosTokenIds: [] });
  const ids = m.tokenizer.encode(text);
  assertEquals(r.promptIds.length, C - 6);
  assertEquals(r.promptIds[0], 256);
  assertEquals(r.promptIds.slice(1), ids.slice(ids.length - (C - 7)));
  assertStringIncludes(r.warnings.join("\n"), "BOS kept");
});

Deno.test("generate() rejects invalid options with a RangeError before running", async () => {
  const m = await bundled();
  const bad: [GenerateOptions, string][] = [
    [{ temperature: -1 }, "temperature"],
    [{ temperature: NaN }, "temperature"],
    [{ topK: 0 }, "topK"],
    [{ topP: 0 }, "topP"],
    [{ topP: 1.5 }, "topP"],
    [{ minP: -0.1 }, "minP"],
    [{ repetitionPenalty: 0 }, "repetitionPenalty"],
    [{ seed: 1.5 }, "seed"],
    [{ maxTokens: -1 }, "maxTokens"],
    [{ maxTokens: 2.5 }, "maxTokens"],
    [{ stop: "" }, "stop"],
    [{ eosTokenIds: [-1] }, "eosTokenIds"],
    // deno-lint-ignore no-explicit-any
    [{ engine: "gpu" as any }, "engine"],
    // deno-lint-ignore no-explicit-any
    [{ overflow: "wrap" as any }, "overflow"],
  ];
  for (const [options, word] of bad) {
    const e = assertThrows(() => generate(m, "x", options), RangeError, undefined, JSON.stringify(options));
    assertStringIncludes(e.message, word);
  }
  assertThrows(() => generate(m, [], {}), RangeError, "prompt is empty");
  assertThrows(() => generate(m, [m.arch!.vocabSize], {}), RangeError, "not a token id");
});

// ---------------------------------------------------------------------------------------------
// Incremental text
// ---------------------------------------------------------------------------------------------

Deno.test("createTextStream() never shows half a character when multi-byte characters span tokens", async () => {
  for (const get of [bundled, llama]) {
    const m = await get();
    const text = "naïve café → 日本語 🎉 ok";
    const ids = m.tokenizer.encode(text);
    const stream = createTextStream(m);
    const parts = ids.map((id) => stream.push(id));
    parts.push(stream.flush());
    assertEquals(parts.join(""), text);
    assert(parts.every((p) => !p.includes("\uFFFD")), JSON.stringify(parts));
    // The byte tokenizer splits 🎉 (4 bytes) into 4 tokens: three empty pieces, then the emoji.
    if (m === await llama()) assertGreater(parts.filter((p) => p === "").length, 6);
  }
});

Deno.test("createTextStream() after a prompt context streams exactly the text the new ids add", async () => {
  const m = await bundled();
  const ids = m.tokenizer.encode("Hello big world, café");
  for (let k = 1; k < ids.length; k++) {
    // A context ending mid-character has no text of its own to continue: skip those splits.
    if (m.tokenizer.decode(ids.slice(0, k)).endsWith("\uFFFD")) continue;
    const stream = createTextStream(m, { context: ids.slice(0, k) });
    const streamed = ids.slice(k).map((id) => stream.push(id)).join("") + stream.flush();
    assertEquals(streamed, m.tokenizer.decode(ids).slice(m.tokenizer.decode(ids.slice(0, k)).length));
  }
});

// ---------------------------------------------------------------------------------------------
// Scripts, as subprocesses without network
// ---------------------------------------------------------------------------------------------

async function script(name: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      "--allow-env",
      "--allow-ffi",
      new URL(`../scripts/${name}`, import.meta.url).pathname,
      ...args,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}

Deno.test("scripts/forward.ts --json prints the next-token table of an anonymous-name export on both engines", async () => {
  const dir = await exportDir(TINY_GPT2, true);
  const m = await loadModel(dir);
  try {
    const want = await nextToken(m, "Hello there", { topK: 4 });
    for (const engine of ["reference", "onnx"]) {
      const r = await script("forward.ts", [
        "--model",
        dir,
        "--text",
        "Hello there",
        "--top",
        "4",
        "--engine",
        engine,
        "--json",
      ]);
      assertEquals(r.code, 0, r.err);
      const j = JSON.parse(r.out);
      assertEquals(j.ids, want.ids);
      assertEquals(j.tokens, want.tokens);
      assertEquals(j.addedBos, false);
      assertEquals(j.top.map((t: { id: number }) => t.id), want.top.map((t) => t.id));
      j.top.forEach((t: { prob: number; logit: number }, i: number) => {
        assertAlmostEquals(t.prob, want.top[i].prob, 1e-5);
        assertAlmostEquals(t.logit, want.top[i].logit, 1e-4);
      });
      assertAlmostEquals(j.entropy.nats, want.entropy.nats, 1e-4);
      assertAlmostEquals(j.entropy.bits, want.entropy.bits, 1e-4);
    }
  } finally {
    await m.dispose();
  }
});

Deno.test("scripts/generate.ts --json greedy output matches transformers.js on an anonymous-name LLaMA export, both engines", async () => {
  const dir = await exportDir(TINY_LLAMA, true);
  const m = await loadModel(dir);
  try {
    const hf = await hfGreedy(m, "Tiny llama", 8);
    for (const engine of ["reference", "onnx"]) {
      const r = await script("generate.ts", [
        "--model",
        dir,
        "--prompt",
        "Tiny llama",
        "--temperature",
        "0",
        "--max-tokens",
        "8",
        "--engine",
        engine,
        "--json",
      ]);
      assertEquals(r.code, 0, r.err);
      const j = JSON.parse(r.out);
      assertEquals(j.prompt_ids, hf.prompt);
      assertEquals(j.ids, hf.ids);
      assertEquals(j.text, m.tokenizer.decode(hf.ids.filter((id) => id !== 256)));
    }
  } finally {
    await m.dispose();
  }
});

Deno.test("scripts/generate.ts streams seeded text to stdout; the same seed prints the same text", async () => {
  const args = [
    "--prompt",
    "Once",
    "--temperature",
    "0.8",
    "--top-k",
    "20",
    "--top-p",
    "0.9",
    "--seed",
    "5",
    "--max-tokens",
    "6",
  ];
  const a = await script("generate.ts", args);
  const b = await script("generate.ts", args);
  assertEquals(a.code, 0, a.err);
  assert(a.out.startsWith("Once"), a.out);
  assertEquals(a.out, b.out);
  const j = JSON.parse((await script("generate.ts", [...args, "--json"])).out);
  assertEquals(a.out, "Once" + j.text + "\n");
  assert(j.ids.length === 6 || j.finish_reason === "eos", JSON.stringify(j));
});

Deno.test("scripts/forward.ts and scripts/generate.ts print usage for --help and exit 2 on bad flags", async () => {
  for (const name of ["forward.ts", "generate.ts"]) {
    const help = await script(name, ["--help"]);
    assertEquals(help.code, 0);
    assertStringIncludes(help.out, "usage:");
    const unknown = await script(name, ["--nope"]);
    assertEquals(unknown.code, 2);
  }
  const t = await script("generate.ts", ["--prompt", "x", "--temperature", "-1"]);
  assertEquals(t.code, 2);
  assertStringIncludes(t.err, "temperature");
  const e = await script("forward.ts", ["--text", "x", "--engine", "gpu"]);
  assertEquals(e.code, 2);
  assertStringIncludes(e.err, "engine");
});

Deno.test("(cleanup: dispose the shared models, remove the exported folders)", async () => {
  for (const f of cleanup.reverse()) await f();
});
