/**
 * Careless text input: empty strings, lone UTF-16 surrogates, control characters, mixed scripts and
 * inputs longer than the context, through tokenize, the reference forward pass, embeddings,
 * sampling, the ONNX Runtime path, nextToken and generate. Each case ends in a result that is
 * checked against an independent reference or in a typed error that names the fix.
 */
import { assert, assertEquals, assertGreater, assertRejects, assertStringIncludes, assertThrows } from "@std/assert";
import { contextualEmbeddings, cosineSimilarity, stackRows, tokenEmbeddings, wordInContext } from "../lib/embed.ts";
import { forward } from "../lib/forward.ts";
import { generate, generateText, nextToken } from "../lib/generate.ts";
import { loadModel, type Model } from "../lib/load.ts";
import { chooseToken, softmax } from "../lib/sample.ts";
import { detokenize, tokenize } from "../lib/tokenize.ts";
import { loadParams } from "../lib/weights.ts";
import type { ParamMap } from "../lib/types.ts";

let shared: Promise<{ model: Model; params: ParamMap }> | undefined;
/** The bundled model with its ONNX Runtime session, and its parameters for the reference forward pass. */
function bundled(): Promise<{ model: Model; params: ParamMap }> {
  shared ??= (async () => {
    const model = await loadModel(undefined, { offline: true });
    return { model, params: await loadParams(model) };
  })();
  return shared;
}

/** Lone surrogates replaced by U+FFFD, written independently of lib/tokenize.ts (a regex, not a scan). */
const replaceLone = (s: string) =>
  s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
// deno-lint-ignore no-control-regex -- the C0/C1 control characters are what this pattern is for
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g;
const LONG = "The king and the queen sat at the table in the hall. ".repeat(400);

Deno.test("tokenize() refuses empty and non-string text with a typed error naming the fix", async () => {
  const { model } = await bundled();
  assertThrows(() => tokenize(model, ""), RangeError, "text is empty");
  for (const bad of [null, undefined, 42, ["a"]]) {
    assertThrows(() => tokenize(model, bad as unknown as string), TypeError, "text must be a string");
  }
});

Deno.test("tokenize() replaces lone surrogates by U+FFFD at the same indices and says so", async () => {
  const { model } = await bundled();
  for (const text of ["a\ud800b", "\udc00start", "end\ud83d", "pair 🚀 then lone \ude80 and \ud83d\ud83d"]) {
    const r = tokenize(model, text);
    const want = replaceLone(text);
    assertEquals(r.text, want);
    assertEquals(r.text.length, text.length);
    assert(r.warnings.some((w) => w.includes("surrogate")), JSON.stringify(r.warnings));
    assertEquals(r.ids, model.tokenizer.encode(want));
    assertEquals(r.pieces.join(""), want);
  }
  assertEquals(tokenize(model, "no surrogates 🚀").warnings, []);
});

Deno.test("tokenize() keeps control characters, counts them in a warning, and round-trips them", async () => {
  const { model } = await bundled();
  const text = "bell\u0007 null\u0000 escape\u001b[31m red\u001b[0m del\u007f c1\u0085 tab\tnew\nline\r";
  const r = tokenize(model, text);
  const count = text.match(CONTROL)!.length;
  const warning = r.warnings.find((w) => w.includes("control character"));
  assert(warning, JSON.stringify(r.warnings));
  assertStringIncludes(warning, `${count} control characters`);
  assertEquals(r.pieces.join(""), text);
  assertEquals(detokenize(model, r.ids), text);
});

Deno.test("tokenize() handles mixed scripts, combining marks and emoji sequences with exact offsets", async () => {
  const { model } = await bundled();
  const text = "Hello 世界 مرحبا שלום Привет नमस्ते e\u0301 👩‍👩‍👧 🇫🇷 \u200b x";
  const r = tokenize(model, text);
  assertEquals(r.pieces.join(""), text);
  assertEquals(detokenize(model, r.ids), text);
  assertEquals(r.ids, model.tokenizer.encode(text));
  let end = 0;
  for (const [i, [s, e]] of r.offsets.entries()) {
    assert(s >= end - (e === s ? e - s : 0) && e >= s && e <= text.length, `offset ${i}: [${s}, ${e})`);
    if (e > s) assertEquals(text.slice(s, e), r.pieces[i]);
    end = e;
  }
  assertEquals(end, text.length);
  assertEquals(r.counts.chars, [...text].length);
});

Deno.test("tokenize() returns every token of an input far longer than the context, without truncating it", async () => {
  const { model } = await bundled();
  const r = tokenize(model, LONG);
  assertEquals(r.ids.length, model.tokenizer.encode(LONG).length);
  assertGreater(r.ids.length, model.arch!.maxPositions * 10);
  assertEquals(r.pieces.join(""), LONG);
});

Deno.test("forward() names the context length for a sequence longer than the context, and runs a window of it", async () => {
  const { model, params } = await bundled();
  const arch = model.arch!;
  const ids = model.tokenizer.encode(LONG);
  const e = assertThrows(() => forward(arch, params, ids), RangeError);
  assertStringIncludes(e.message, `context of ${arch.maxPositions}`);
  assertStringIncludes(e.message, `at most ${arch.maxPositions} tokens`);
  // The window the message asks for: the last maxPositions tokens.
  const window = ids.slice(-arch.maxPositions);
  const out = forward(arch, params, window, { present: false });
  assertEquals(out.logits.dims, [arch.maxPositions, arch.vocabSize]);
  assert(out.logits.data.every(Number.isFinite));
  // Continuing past the end with a KV cache is refused the same way.
  const first = forward(arch, params, window.slice(0, arch.maxPositions - 1));
  assertThrows(() => forward(arch, params, [window[0], window[1]], { past: first.present }), RangeError, "context");
});

Deno.test("forward() refuses empty, fractional, NaN and out-of-vocabulary ids by type", async () => {
  const { model, params } = await bundled();
  const arch = model.arch!;
  assertThrows(() => forward(arch, params, []), RangeError, "ids is empty");
  assertThrows(() => forward(arch, params, [1.5]), TypeError, "integers");
  assertThrows(() => forward(arch, params, [NaN]), TypeError, "integers");
  assertThrows(() => forward(arch, params, [arch.vocabSize]), RangeError, "outside the vocabulary");
  assertThrows(() => forward(arch, params, [-1]), RangeError, "outside the vocabulary");
});

Deno.test("the ONNX Runtime path rejects a sequence longer than the context instead of crashing", async () => {
  const { model } = await bundled();
  const inputs = model.tokenizer(LONG);
  const seq = (inputs.input_ids.dims as number[])[1];
  assertGreater(seq, model.arch!.maxPositions);
  // transformers.js neither truncates nor windows: ONNX Runtime's position Gather fails, as an Error.
  const quiet = console.error;
  console.error = () => {};
  try {
    await assertRejects(() => model.model!(inputs), Error);
  } finally {
    console.error = quiet;
  }
});

Deno.test("nextToken() and generate() handle careless prompts: empty, surrogates, longer than the context", async () => {
  const { model } = await bundled();
  await assertRejects(() => nextToken(model, ""), RangeError, "empty");
  await assertRejects(() => nextToken(model, LONG), RangeError, "context");
  const lone = await nextToken(model, "a lone \ud800 surrogate", { topK: 3 });
  assertEquals(lone.text, replaceLone("a lone \ud800 surrogate"));
  assertEquals(lone.top.length, 3);
  assertThrows(() => generate(model, LONG, { maxTokens: 4 }), RangeError);
  const truncated = await generateText(model, LONG, { maxTokens: 4, temperature: 0, overflow: "truncate" });
  assert(truncated.warnings.some((w) => /truncat|dropped/i.test(w)), JSON.stringify(truncated.warnings));
  assertEquals(truncated.ids.length <= model.arch!.maxPositions, true);
});

Deno.test("embeddings refuse empty, mismatched and non-finite input with the fix in the message", async () => {
  const { model, params } = await bundled();
  assertThrows(() => cosineSimilarity(new Float32Array([1, 2]), new Float32Array([1, 2, 3])), RangeError, "must match");
  assertThrows(() => cosineSimilarity(new Float32Array([NaN, 1]), new Float32Array([1, 1])), RangeError, "NaN");
  assertThrows(() => cosineSimilarity(new Float32Array(2), new Float32Array([1, 1])), RangeError, "zeroVectors");
  assert(Number.isNaN(cosineSimilarity(new Float32Array(2), new Float32Array([1, 1]), { zeroVectors: "nan" })));
  assertThrows(() => stackRows([]), RangeError, "non-empty");
  await assertRejects(() => tokenEmbeddings(model, [""]), RangeError);
  const skipped = await tokenEmbeddings(model, ["table", "  ", "chair"], { unrepresentable: "skip" });
  assertEquals(skipped.words.map((w) => w.word), ["table", "chair"]);
  assertEquals(skipped.skipped.map((s) => s.index), [1]);
  await assertRejects(() => contextualEmbeddings(model, [""], { params }), RangeError, "empty");
  await assertRejects(() => contextualEmbeddings(model, [LONG], { params }), RangeError, "context");
  await assertRejects(() => wordInContext(model, "The bank of the river.", "money", { params }), RangeError);
  const lone = await contextualEmbeddings(model, ["odd \udc00 text"], { params });
  assert(lone.vectors.data.every(Number.isFinite));
});

Deno.test("sampling refuses empty, NaN and fully masked logits by type", () => {
  assertThrows(() => chooseToken([]), RangeError, "empty");
  assertThrows(() => chooseToken([NaN, 1]), RangeError, "NaN");
  assertThrows(() => chooseToken([-Infinity, -Infinity]), RangeError, "-Infinity");
  assertThrows(() => softmax([1, Infinity]), RangeError);
});

Deno.test("release the shared model", async () => {
  if (shared) await (await shared).model.dispose();
});
