/**
 * Embeddings of the bundled model (integration tier) and the `tokenize` and
 * `similarity` scripts run as a user runs them: subprocesses with scoped
 * permissions and no network. References are computed here from the ONNX file
 * (`tensorValues` of the stored embedding initializer), ONNX Runtime's logits
 * and the tokenizer itself, in float64.
 */
import { assert, assertAlmostEquals, assertEquals, assertLess, assertStringIncludes } from "@std/assert";
import { PreTrainedTokenizer } from "@huggingface/transformers";
import { join } from "node:path";
import { contextualEmbeddings, neighboursInVocabulary, tokenEmbeddings } from "../lib/embed.ts";
import { loadModel } from "../lib/load.ts";
import { readOnnx, tensorValues } from "../lib/onnx.ts";
import type { Tensor } from "../lib/types.ts";
import { TINY_GPT2, tinyModelDir, wordPieceTokenizerFiles } from "./_fixtures.ts";

const model = await loadModel(undefined, { tokenizerOnly: true });
const arch = model.arch!;

/** The stored `[vocab, d_model]` token embedding, straight from the ONNX initializer (GPT-2 stores it untransposed). */
async function storedEmbedding(): Promise<Tensor> {
  const onnx = await readOnnx(model.onnxPath);
  const name = onnx.initializers.map((t) => t.name).find((n) => /wte\.weight$|embed_tokens\.weight$/.test(n));
  assert(name, "the ONNX file has a token embedding initializer");
  const { data, dims } = tensorValues(onnx, name);
  assertEquals(dims, [arch.vocabSize, arch.dModel]);
  return { data: Float32Array.from(data as Float32Array), dims };
}
const W = await storedEmbedding();
const d = arch.dModel;
const rowOf = (id: number): number[] => Array.from(W.data.subarray(id * d, (id + 1) * d));
const encode = (text: string): number[] => Array.from(model.tokenizer.encode(text, { add_special_tokens: false }));
const idToToken = new Map([...model.tokenizer.get_vocab()].map(([token, id]) => [id, token]));

function cosine64(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

function mean64(ids: number[]): number[] {
  const out = new Array(d).fill(0);
  for (const id of ids) rowOf(id).forEach((v, k) => out[k] += v / ids.length);
  return out;
}

Deno.test("tokenEmbeddings() of the bundled model are the rows of its ONNX token embedding initializer", async () => {
  const words = ["table", "chair", "astronaut", "moon"];
  const r = await tokenEmbeddings(model, words);
  assertEquals(r.vectors.dims, [4, d]);
  words.forEach((w, i) => {
    const ids = encode(` ${w}`);
    assertEquals(r.words[i].ids, ids, w);
    assertEquals(r.words[i].averaged, ids.length > 1);
    const want = mean64(ids);
    for (let k = 0; k < d; k++) assertAlmostEquals(r.vectors.data[i * d + k], want[k], 1e-6, `${w}[${k}]`);
  });
});

Deno.test("contextualEmbeddings() of the bundled model at the last token reproduce ONNX Runtime's logits through the tied head", async () => {
  const full = await loadModel();
  try {
    const text = "The king and the queen sat at the table";
    const out = await full.model!(full.tokenizer(text));
    const [, pos, vocab] = out.logits.dims as number[];
    const ort = (out.logits.data as Float32Array).subarray((pos - 1) * vocab, pos * vocab);
    const { vectors, source } = await contextualEmbeddings(model, [text], { pool: "last" });
    assertEquals(source, "norm_f.normalized");
    // logits = norm_f(h) · Eᵀ, in float64 here; ONNX Runtime sums in float32 (tolerance 1e-3 on logits of order 1-10).
    let worst = 0;
    for (let v = 0; v < vocab; v++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += vectors.data[k] * W.data[v * d + k];
      worst = Math.max(worst, Math.abs(s - ort[v]));
    }
    assertLess(worst, 1e-3, `largest logit difference ${worst}`);
  } finally {
    await full.dispose();
  }
});

Deno.test("neighboursInVocabulary() on the bundled model matches a float64 scan of all its rows", async () => {
  for (const word of ["king", "Monday"]) {
    const r = await neighboursInVocabulary(model, word, { k: 8 });
    const ids = encode(` ${word}`);
    const q = mean64(ids);
    const scores: { id: number; s: number }[] = [];
    for (let v = 0; v < arch.vocabSize; v++) {
      if (ids.includes(v) || rowOf(v).every((x) => x === 0)) continue;
      scores.push({ id: v, s: cosine64(q, rowOf(v)) });
    }
    scores.sort((a, b) => b.s - a.s || a.id - b.id);
    // Ties closer than float32 rounding may swap; compare scores by rank and the ids where scores differ clearly.
    r.neighbours.forEach((n, i) => {
      assertAlmostEquals(n.score, scores[i].s, 1e-5, `${word} #${i}`);
      if (
        i + 1 < scores.length && scores[i].s - scores[i + 1].s > 1e-5 &&
        (i === 0 || scores[i - 1].s - scores[i].s > 1e-5)
      ) {
        assertEquals(n.id, scores[i].id, `${word} #${i}`);
      }
      assertEquals(n.piece, model.tokenizer.decode([n.id]));
    });
  }
});

// ---------------------------------------------------------------------------
// Scripts as subprocesses
// ---------------------------------------------------------------------------

const tmp = await Deno.makeTempDir({ prefix: "paramscope-embed-scripts-" });
globalThis.addEventListener("unload", () => Deno.removeSync(tmp, { recursive: true }));

/** Runs a script with read, env and ffi (transformers.js loads a native addon on import) and writes only to `tmp`. */
async function run(script: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      "--allow-env",
      "--allow-ffi",
      `--allow-write=${tmp}`,
      new URL(`../scripts/${script}`, import.meta.url).pathname,
      ...args,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}

Deno.test("tokenize script prints the ids the tokenizer gives, as JSON, a table and an HTML chip page", async () => {
  const text = "The cat sat. 日本 x = f(1)";
  const json = await run("tokenize.ts", ["--text", text, "--json"]);
  assertEquals(json.code, 0, json.err);
  const r = JSON.parse(json.out);
  assertEquals(r.ids, Array.from(model.tokenizer.encode(text)));
  assertEquals(r.text, text);
  assertEquals(r.pieces.join(""), text, "byte-level pieces concatenate to the text");
  assertEquals(r.offsets.length, r.ids.length);

  const html = join(tmp, "tokens.html");
  const table = await run("tokenize.ts", ["--text", text, "--html", html]);
  assertEquals(table.code, 0, table.err);
  assertEquals(table.out.split("\n").filter((l) => /^\d+ +\d+ +"/.test(l)).length, r.ids.length, "one row per token");
  assertStringIncludes(table.out, `${r.ids.length} tokens`);
  const page = await Deno.readTextFile(html);
  assertEquals((page.match(/<span title="#/g) ?? []).length, r.ids.length, "one chip per token");
});

Deno.test("tokenize script rejects empty or missing text and unknown flags with exit code 2", async () => {
  for (
    const [args, message] of [
      [["--text", ""], "--text is empty"],
      [[], "--text is required"],
      [["--text", "hi", "--bogus"], "bogus"],
      [["--text", "hi", "--model", join(tmp, "no-such-model")], "cannot load"],
    ] as [string[], string][]
  ) {
    const r = await run("tokenize.ts", args);
    assertEquals(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assertStringIncludes(r.err, message);
  }
});

Deno.test("similarity script prints the cosine matrix of the words' embedding rows as JSON", async () => {
  const words = ["table", "chair", "astronaut", "moon"];
  const r = await run("similarity.ts", ["--words", words.join(","), "--json"]);
  assertEquals(r.code, 0, r.err);
  const out = JSON.parse(r.out);
  assertEquals(out.words, words);
  assertEquals(out.source, "embed.tokens");
  assertEquals(out.tokens, words.map((w) => encode(` ${w}`).map((id) => idToToken.get(id))));
  const vectors = words.map((w) => mean64(encode(` ${w}`)));
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      assertAlmostEquals(out.matrix[i][j], i === j ? 1 : cosine64(vectors[i], vectors[j]), 2e-6, `${i},${j}`);
    }
  }
});

Deno.test("similarity script with --layer compares hidden states and writes a heatmap and PCA page", async () => {
  const words = ["king", "queen", "man", "woman"];
  const html = join(tmp, "similarity.html");
  const r = await run("similarity.ts", ["--words", words.join(","), "--layer", "1", "--json", "--out", html]);
  assertEquals(r.code, 0, r.err);
  const out = JSON.parse(r.out);
  assertEquals(out.source, "blocks.1.resid_post");
  const ctx = await contextualEmbeddings(model, words.map((w) => ` ${w}`), { layer: 1 });
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      const a = ctx.vectors.data.subarray(i * d, (i + 1) * d), b = ctx.vectors.data.subarray(j * d, (j + 1) * d);
      assertAlmostEquals(out.matrix[i][j], i === j ? 1 : cosine64(a, b), 2e-6);
    }
  }
  const last = await run("similarity.ts", ["--words", "king,queen", "--layer=-1", "--json"]);
  assertEquals(JSON.parse(last.out).source, "norm_f.normalized");
  const page = await Deno.readTextFile(html);
  assertEquals((page.match(/class="ps-plot"/g) ?? []).length, 2, "two figures");
  assertStringIncludes(page, '"type":"heatmap"');
  assertStringIncludes(page, '"type":"scatter"');
  assert(!/<script[^>]+src=["']https?:/.test(page), "the page loads nothing from the network");
  // --map umap draws the seeded UMAP map instead; the same seed draws the same page.
  const pages: string[] = [];
  for (const i of [0, 1]) {
    const file = join(tmp, `umap${i}.html`);
    const u = await run("similarity.ts", ["--words", words.join(","), "--map", "umap", "--seed", "3", "--out", file]);
    assertEquals(u.code, 0, u.err);
    pages.push(await Deno.readTextFile(file));
  }
  assertStringIncludes(pages[0], "UMAP 1");
  const points = (p: string) => p.match(/"type":"scatter","mode":"markers\+text","x":\[[^\]]+\],"y":\[[^\]]+\]/)?.[0];
  assert(points(pages[0]), "the page has the map's points");
  assertEquals(points(pages[0]), points(pages[1]));
});

Deno.test("similarity script rejects one word, an empty word, a layer out of range and an unrepresentable word with exit code 2", async () => {
  // A model folder whose tokenizer is WordPiece, so that an unknown word becomes [UNK].
  const { dir } = await tinyModelDir(TINY_GPT2, { seed: 3 });
  try {
    await writeWordPieceTokenizer(dir);
    for (
      const [args, message] of [
        [["--words", "table"], "at least two"],
        [["--words", "table,,chair"], "has an empty word"],
        [["--words", "table, ,chair"], "has an empty word"],
        [["--words", "table,chair", "--layer", String(arch.nLayer)], `layer ${arch.nLayer} is out of range`],
        [["--words", "table,chair", `--layer=-${arch.nLayer + 1}`], "out of range"],
        [["--words", "table,chair", "--layer", "one"], "--layer must be an integer"],
        [["--words", "table,chair,moon", "--map", "tsne"], '--map must be "pca" or "umap"'],
        [["--words", "table,chair,moon", "--map", "umap", "--seed", "1.5"], "--seed must be an integer"],
        [["--words", "table,chair", "--map", "umap"], "--map umap needs at least three words"],
        [["--model", dir, "--words", "bank,zebra"], 'word 1 ("zebra") is not representable'],
      ] as [string[], string][]
    ) {
      const r = await run("similarity.ts", args);
      assertEquals(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assertStringIncludes(r.err, message, args.join(" "));
    }
    const ok = await run("similarity.ts", ["--model", dir, "--words", "bank,river", "--json"]);
    assertEquals(ok.code, 0, ok.err);
    assertEquals(JSON.parse(ok.out).leadingSpace, false, "WordPiece gets no leading space");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Replaces a model folder's tokenizer with a small WordPiece (BERT-style) one whose ids fit the fixture's vocabulary. */
async function writeWordPieceTokenizer(dir: string): Promise<void> {
  const words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "river", "bank", "money", "table", "chair"];
  const { json, config } = wordPieceTokenizerFiles(words);
  // Check the files are a tokenizer transformers.js accepts before a script reads them.
  assertEquals(new PreTrainedTokenizer(json, config).encode("bank", { add_special_tokens: false }), [6]);
  await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(json));
  await Deno.writeTextFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
}
