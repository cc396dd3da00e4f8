/**
 * The encoder (BERT) path of contextualEmbeddings() and wordInContext() on a
 * real encoder ONNX model: a tiny BERT written by tests/_bert_fixture.ts
 * (Optimum layout, the real all-MiniLM-L6-v2 WordPiece tokenizer), loaded with
 * loadModel() and run by transformers.js / ONNX Runtime. Also listParameters(),
 * readParameter() and countModel() on that folder.
 *
 * Independent reference: a float64 Hugging Face `BertModel` forward written
 * below from the formulas (plain loops over the fixture's PyTorch-layout
 * weights, erf from its series), pooled as documented: mean over the tokens
 * from the text (without [CLS] and [SEP]), `cls` = position 0, `last` = the
 * last token from the text. Tolerance: 1e-4 absolute (ONNX Runtime computes in
 * float32; the observed gap is printed and is ~1e-6).
 *
 * Reads ../shared/fixtures; every test that needs it is ignored, with the
 * reason printed, when that folder is absent.
 */
import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertGreater,
  assertLess,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { countAnalytic, countModel, type HfConfig } from "../lib/count.ts";
import { contextualEmbeddings, type Pooling, wordInContext } from "../lib/embed.ts";
import { loadModel, type Model } from "../lib/load.ts";
import type { Tensor } from "../lib/types.ts";
import { listParameters, readParameter } from "../lib/weights.ts";
import { BERT_TOKENIZER_DIR, bertTokenizerAvailable, type TinyBert, writeTinyBert } from "./_bert_fixture.ts";

const TOL = 1e-4;
const available = bertTokenizerAvailable();
if (!available) {
  console.warn(
    `ignored: encoder (BERT) tests, because ${BERT_TOKENIZER_DIR.pathname} is absent (no shared/ beside this clone)`,
  );
}

// ---------------------------------------------------------------------------------------------
// Independent float64 reference: Hugging Face BertModel, from the formulas
// ---------------------------------------------------------------------------------------------

/**
 * erf in float64 from `erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))`: every term is
 * positive, so there is no cancellation; |x| > 6 is ±1 to float64 precision.
 */
function erf(x: number): number {
  if (Math.abs(x) > 6) return Math.sign(x);
  let term = x, sum = x;
  for (let n = 1; Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}

/** `x` is `[pos, in]`, `w` PyTorch `[out, in]`, `b` `[out]`: returns `x · wᵀ + b`, `[pos, out]`. */
function linear(x: Float64Array, pos: number, w: Tensor, b: Tensor): Float64Array {
  const [out, inDim] = w.dims;
  const y = new Float64Array(pos * out);
  for (let p = 0; p < pos; p++) {
    for (let o = 0; o < out; o++) {
      let s = b.data[o];
      for (let i = 0; i < inDim; i++) s += x[p * inDim + i] * w.data[o * inDim + i];
      y[p * out + o] = s;
    }
  }
  return y;
}

/** LayerNorm over the last axis of `[pos, d]` (biased variance, eps inside the root). */
function layerNorm(x: Float64Array, pos: number, gain: Tensor, bias: Tensor, eps: number): Float64Array {
  const d = gain.dims[0];
  const y = new Float64Array(pos * d);
  for (let p = 0; p < pos; p++) {
    let mean = 0, v = 0;
    for (let k = 0; k < d; k++) mean += x[p * d + k] / d;
    for (let k = 0; k < d; k++) v += (x[p * d + k] - mean) ** 2 / d;
    const inv = 1 / Math.sqrt(v + eps);
    for (let k = 0; k < d; k++) y[p * d + k] = (x[p * d + k] - mean) * inv * gain.data[k] + bias.data[k];
  }
  return y;
}

/**
 * `last_hidden_state` `[pos, d_model]` of one sequence, as Hugging Face `BertModel` computes it.
 * `mask[j] = 0` hides key `j` from every query (additive `(1 − mask)·float32_min` before the softmax).
 */
function bertReference(
  bert: TinyBert,
  ids: readonly number[],
  typeIds: readonly number[] = ids.map(() => 0),
  mask: readonly number[] = ids.map(() => 1),
): Float64Array {
  const c = bert.config, W = (n: string) => bert.params.get(n)!;
  const d = c.hidden_size as number, nHead = c.num_attention_heads as number, dMlp = c.intermediate_size as number;
  const eps = c.layer_norm_eps as number, dh = d / nHead, S = ids.length;
  const we = W("embeddings.word_embeddings.weight"), pe = W("embeddings.position_embeddings.weight");
  const te = W("embeddings.token_type_embeddings.weight");
  let h: Float64Array = new Float64Array(S * d);
  for (let p = 0; p < S; p++) {
    for (let k = 0; k < d; k++) {
      h[p * d + k] = we.data[ids[p] * d + k] + te.data[typeIds[p] * d + k] + pe.data[p * d + k];
    }
  }
  h = layerNorm(h, S, W("embeddings.LayerNorm.weight"), W("embeddings.LayerNorm.bias"), eps);
  const minF32 = -3.4028234663852886e38;
  for (let l = 0; l < (c.num_hidden_layers as number); l++) {
    const t = `encoder.layer.${l}`;
    const lin = (x: Float64Array, m: string) => linear(x, S, W(`${t}.${m}.weight`), W(`${t}.${m}.bias`));
    const q = lin(h, "attention.self.query"), k = lin(h, "attention.self.key"), v = lin(h, "attention.self.value");
    const ctx = new Float64Array(S * d);
    for (let hd = 0; hd < nHead; hd++) {
      for (let i = 0; i < S; i++) {
        const scores = new Float64Array(S);
        let max = -Infinity;
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let e = 0; e < dh; e++) s += q[i * d + hd * dh + e] * k[j * d + hd * dh + e];
          scores[j] = s / Math.sqrt(dh) + (1 - mask[j]) * minF32;
          max = Math.max(max, scores[j]);
        }
        let z = 0;
        for (let j = 0; j < S; j++) z += scores[j] = Math.exp(scores[j] - max);
        for (let j = 0; j < S; j++) {
          for (let e = 0; e < dh; e++) ctx[i * d + hd * dh + e] += (scores[j] / z) * v[j * d + hd * dh + e];
        }
      }
    }
    const a = lin(ctx, "attention.output.dense");
    for (let i = 0; i < S * d; i++) a[i] += h[i];
    h = layerNorm(a, S, W(`${t}.attention.output.LayerNorm.weight`), W(`${t}.attention.output.LayerNorm.bias`), eps);
    const pre = lin(h, "intermediate.dense");
    for (let i = 0; i < S * dMlp; i++) pre[i] = 0.5 * pre[i] * (1 + erf(pre[i] / Math.SQRT2));
    const m = linear(pre, S, W(`${t}.output.dense.weight`), W(`${t}.output.dense.bias`));
    for (let i = 0; i < S * d; i++) m[i] += h[i];
    h = layerNorm(m, S, W(`${t}.output.LayerNorm.weight`), W(`${t}.output.LayerNorm.bias`), eps);
  }
  return h;
}

/** Mean of rows `positions` of a `[pos, d]` float64 matrix. */
function meanOfRows(h: Float64Array, d: number, positions: readonly number[]): Float64Array {
  const out = new Float64Array(d);
  for (const p of positions) for (let k = 0; k < d; k++) out[k] += h[p * d + k] / positions.length;
  return out;
}

/** Largest |a − b| over two equal-length vectors. */
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assertEquals(a.length, b.length, "lengths differ");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("reference erf() matches tabulated values to 1e-15", () => {
  // Abramowitz & Stegun table 7.1 / high-precision values.
  const table: [number, number][] = [
    [0, 0],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3.5, 0.9999992569016276],
  ];
  for (const [x, v] of table) {
    assertAlmostEquals(erf(x), v, 1e-15, `erf(${x})`);
    assertAlmostEquals(erf(-x), -v, 1e-15, `erf(${-x})`);
  }
});

// ---------------------------------------------------------------------------------------------
// Fixtures: the Optimum-style export (no pooler) and a BertModel checkpoint with its pooler
// ---------------------------------------------------------------------------------------------

const cleanup: (() => Promise<void>)[] = [];
const fixtures = new Map<string, Promise<{ bert: TinyBert; model: Model }>>();
const tempDirs: string[] = [];

function fixture(key: "plain" | "pooler"): Promise<{ bert: TinyBert; model: Model }> {
  let f = fixtures.get(key);
  if (!f) {
    f = (async () => {
      const dir = await Deno.makeTempDir({ prefix: `paramscope-bert-${key}-` });
      tempDirs.push(dir);
      cleanup.push(() => Deno.remove(dir, { recursive: true }));
      const bert = await writeTinyBert(dir, { seed: key === "plain" ? 11 : 12, pooler: key === "pooler" });
      const model = await loadModel(dir);
      cleanup.push(() => model.dispose());
      return { bert, model };
    })();
    fixtures.set(key, f);
  }
  return f;
}
// If the cleanup test is filtered out, still remove the folders.
globalThis.addEventListener("unload", () => {
  for (const dir of tempDirs) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // already removed by the cleanup test
    }
  }
});

type Call = (inputs: unknown) => Promise<Record<string, { data: Float32Array; dims: number[] }>>;
type BatchTokenizer = (
  text: string[],
  options: { text_pair: string[]; padding: boolean },
) => Record<string, { data: BigInt64Array; dims: number[] }>;

const SENTENCES = ["The river bank was flooded.", "Tokenization is unbelievably fun!", "Hi"];
const VOCAB = available
  ? JSON.parse(Deno.readTextFileSync(new URL("tokenizer.json", BERT_TOKENIZER_DIR))).model.vocab as Record<
    string,
    number
  >
  : {};

// ---------------------------------------------------------------------------------------------
// The fixture itself is Hugging Face BertModel
// ---------------------------------------------------------------------------------------------

Deno.test({
  name: "tiny BERT fixture: a padded batch of sentence pairs through transformers.js matches the float64 reference",
  ignore: !available,
  async fn() {
    const { bert, model } = await fixture("plain");
    assertEquals(model.arch, undefined, "an encoder has no decoder arch");
    assertEquals(model.model?.constructor.name, "BertModel");
    const tok = model.tokenizer as unknown as BatchTokenizer;
    const inputs = tok(["The bank.", "She took the money to the bank by the river."], {
      text_pair: ["Yes", "Then she went home."],
      padding: true,
    });
    const [B, S] = inputs.input_ids.dims;
    const ids = Array.from(inputs.input_ids.data, Number);
    const types = Array.from(inputs.token_type_ids.data, Number);
    const mask = Array.from(inputs.attention_mask.data, Number);
    assert(types.includes(1) && mask.includes(0), "the batch has second segments and padding");
    const out = await (model.model as unknown as Call)(inputs);
    const h = out.last_hidden_state;
    const d = bert.config.hidden_size as number;
    assertEquals(h.dims, [B, S, d]);
    let worst = 0, maskIgnored = 0;
    for (let b = 0; b < B; b++) {
      const row = (a: number[]) => a.slice(b * S, (b + 1) * S);
      const ref = bertReference(bert, row(ids), row(types), row(mask));
      // Every position, padding included: padded queries still attend to the unmasked keys.
      const got = h.data.subarray(b * S * d, (b + 1) * S * d);
      worst = Math.max(worst, maxAbsDiff(got, ref));
      if (row(mask).includes(0)) maskIgnored = maxAbsDiff(got, bertReference(bert, row(ids), row(types)));
    }
    console.log(`  fixture vs reference (padded pair batch ${B}×${S}): max |Δ| = ${worst.toExponential(2)}`);
    assertLess(worst, TOL);
    assertGreater(maskIgnored, 100 * TOL, "the comparison would notice a reference that ignores the mask");
  },
});

// ---------------------------------------------------------------------------------------------
// contextualEmbeddings() and wordInContext() on the encoder
// ---------------------------------------------------------------------------------------------

Deno.test({
  name: "contextualEmbeddings() on a real encoder: mean, cls, last and normalize match the float64 reference",
  ignore: !available,
  async fn() {
    const { bert, model } = await fixture("plain");
    const d = bert.config.hidden_size as number;
    const refs = SENTENCES.map((s) => {
      const ids = model.tokenizer.encode(s);
      assertEquals(ids[0], VOCAB["[CLS]"], `${s}: [CLS] first`);
      assertEquals(ids[ids.length - 1], VOCAB["[SEP]"], `${s}: [SEP] last`);
      return { ids, h: bertReference(bert, ids) };
    });
    const expectedPositions: Record<Pooling, (n: number) => number[]> = {
      mean: (n) => Array.from({ length: n - 2 }, (_, i) => i + 1),
      cls: () => [0],
      last: (n) => [n - 2],
    };
    const report: string[] = [];
    const cases: { pool: Pooling; normalize: boolean }[] = [
      { pool: "mean", normalize: false },
      { pool: "cls", normalize: false },
      { pool: "last", normalize: false },
      { pool: "mean", normalize: true },
    ];
    for (const { pool, normalize } of cases) {
      const r = await contextualEmbeddings(model, SENTENCES, { pool, normalize });
      assertEquals(r.source, "last_hidden_state");
      assertEquals(r.layer, (bert.config.num_hidden_layers as number) - 1);
      assertEquals(r.pool, pool);
      assertEquals(r.normalized, normalize);
      assertEquals(r.vectors.dims, [SENTENCES.length, d]);
      let worst = 0;
      refs.forEach(({ ids, h }, i) => {
        const s = r.sentences[i];
        assertEquals(s.ids, ids, `sentence ${i} ids`);
        assertEquals(s.addedBos, true);
        assertEquals(s.positions, expectedPositions[pool](ids.length), `${pool}: positions of sentence ${i}`);
        const want = meanOfRows(h, d, expectedPositions[pool](ids.length));
        if (normalize) {
          const norm = Math.hypot(...want);
          for (let k = 0; k < d; k++) want[k] /= norm;
        }
        const got = r.vectors.data.subarray(i * d, (i + 1) * d);
        if (normalize) assertAlmostEquals(Math.hypot(...got), 1, 1e-6);
        worst = Math.max(worst, maxAbsDiff(got, want));
      });
      report.push(`${pool}${normalize ? "+normalize" : ""} ${worst.toExponential(2)}`);
      assertLess(worst, TOL, `${pool}${normalize ? " normalized" : ""}: max |Δ| ${worst}`);
    }
    console.log(`  contextualEmbeddings vs reference, max |Δ|: ${report.join(", ")}`);
    // The three poolings are different vectors (a mix-up of positions would make two agree).
    const [mean, cls, last] = await Promise.all(
      (["mean", "cls", "last"] as const).map((pool) => contextualEmbeddings(model, [SENTENCES[0]], { pool })),
    );
    assertGreater(maxAbsDiff(mean.vectors.data, cls.vectors.data), 100 * TOL);
    assertGreater(maxAbsDiff(mean.vectors.data, last.vectors.data), 100 * TOL);
    assertGreater(maxAbsDiff(cls.vectors.data, last.vectors.data), 100 * TOL);
  },
});

Deno.test({
  name: "wordInContext() on a real encoder: the word's tokens' states from last_hidden_state",
  ignore: !available,
  async fn() {
    const { bert, model } = await fixture("plain");
    const d = bert.config.hidden_size as number;
    const sentence = "She took the money to the bank.";
    const ids = model.tokenizer.encode(sentence);
    const at = ids.indexOf(VOCAB["bank"]);
    assert(at > 0, "bank is one token");
    const w = await wordInContext(model, sentence, "bank");
    assertEquals(w.tokens, ["bank"]);
    assertLess(maxAbsDiff(w.vector, meanOfRows(bertReference(bert, ids), d, [at])), TOL);
  },
});

Deno.test({
  name: "contextualEmbeddings() on an encoder accepts only the last layer; tokenizerOnly gives a TypeError",
  ignore: !available,
  async fn() {
    const { bert, model } = await fixture("plain");
    const nLayer = bert.config.num_hidden_layers as number;
    const base = await contextualEmbeddings(model, ["A dog ran."]);
    for (const layer of [-1, nLayer - 1]) {
      const r = await contextualEmbeddings(model, ["A dog ran."], { layer });
      assertEquals(r.layer, nLayer - 1);
      assertEquals(r.vectors.data, base.vectors.data, `layer ${layer} is the last layer`);
    }
    for (const layer of [0, -2]) {
      await assertRejects(
        () => contextualEmbeddings(model, ["A dog ran."], { layer }),
        RangeError,
        `layer ${layer} is not available for this bert encoder: transformers.js returns only last_hidden_state`,
      );
    }
    await assertRejects(
      () => contextualEmbeddings(model, ["A dog ran."], { layer: nLayer }),
      RangeError,
      "out of range",
    );
    await assertRejects(() => wordInContext(model, "A dog ran.", "dog", { layer: 0 }), RangeError, "last_hidden_state");
    const tokenizerOnly = await loadModel(bert.dir, { tokenizerOnly: true });
    try {
      assertEquals(tokenizerOnly.model, null);
      await assertRejects(
        () => contextualEmbeddings(tokenizerOnly, ["A dog ran."], { pool: "cls" }),
        TypeError,
        "load it without tokenizerOnly",
      );
      await assertRejects(() => wordInContext(tokenizerOnly, "A dog ran.", "dog"), TypeError, "tokenizerOnly");
    } finally {
      await tokenizerOnly.dispose();
    }
  },
});

Deno.test({
  name: "contextualEmbeddings() on an encoder rejects a sentence longer than max_position_embeddings with a RangeError",
  ignore: !available,
  async fn() {
    // Documented (@throws RangeError: "a sentence longer than the context"), and what the decoder path does.
    // Fails until lib/embed.ts hiddenStates() checks max_position_embeddings before calling the encoder:
    // without the check ONNX Runtime throws a plain Error from the position-embedding Add.
    const { bert, model } = await fixture("plain");
    const maxPos = bert.config.max_position_embeddings as number;
    const long = "word ".repeat(maxPos); // maxPos + 2 tokens with [CLS] and [SEP]
    const fits = "word ".repeat(maxPos - 2); // exactly maxPos tokens
    const ok = await contextualEmbeddings(model, [fits]);
    assertEquals(ok.sentences[0].ids.length, maxPos);
    await assertRejects(() => contextualEmbeddings(model, [long]), RangeError, String(maxPos));
  },
});

// ---------------------------------------------------------------------------------------------
// listParameters(), readParameter() and countModel() on the encoder folder
// ---------------------------------------------------------------------------------------------

/** The readable names lib/weights.ts documents for BERT, in the fixture's file order. */
function expectedNames(nLayer: number, pooler: boolean): string[] {
  const names = ["embed.tokens", "embed.token_types", "embed.positions", "embed.norm.gain", "embed.norm.bias"];
  for (let i = 0; i < nLayer; i++) {
    const b = `blocks.${i}`;
    for (const m of ["q", "k", "v", "o"]) names.push(`${b}.attn.${m}.weight`, `${b}.attn.${m}.bias`);
    names.push(`${b}.ln1.gain`, `${b}.ln1.bias`, `${b}.mlp.in.weight`, `${b}.mlp.in.bias`);
    names.push(`${b}.mlp.out.weight`, `${b}.mlp.out.bias`, `${b}.ln2.gain`, `${b}.ln2.bias`);
  }
  if (pooler) names.push("pooler.weight", "pooler.bias");
  return names;
}

/** PyTorch name of each readable name (the inverse of lib/weights.ts's BERT rules, written out). */
function torchName(readable: string): string {
  const fixed: Record<string, string> = {
    "embed.tokens": "embeddings.word_embeddings.weight",
    "embed.positions": "embeddings.position_embeddings.weight",
    "embed.token_types": "embeddings.token_type_embeddings.weight",
    "embed.norm.gain": "embeddings.LayerNorm.weight",
    "embed.norm.bias": "embeddings.LayerNorm.bias",
    "pooler.weight": "pooler.dense.weight",
    "pooler.bias": "pooler.dense.bias",
  };
  if (fixed[readable]) return fixed[readable];
  const m = /^blocks\.(\d+)\.(.+)\.(weight|bias|gain)$/.exec(readable)!;
  const module: Record<string, string> = {
    "attn.q": "attention.self.query",
    "attn.k": "attention.self.key",
    "attn.v": "attention.self.value",
    "attn.o": "attention.output.dense",
    ln1: "attention.output.LayerNorm",
    "mlp.in": "intermediate.dense",
    "mlp.out": "output.dense",
    ln2: "output.LayerNorm",
  };
  return `encoder.layer.${m[1]}.${module[m[2]]}.${m[3] === "bias" ? "bias" : "weight"}`;
}

/** `[rows, cols]` → `[cols, rows]`. */
function transposed(t: Tensor): Float32Array {
  const [r, c] = t.dims, out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return out;
}

for (const key of ["plain", "pooler"] as const) {
  Deno.test({
    name: `listParameters()/readParameter() name every tensor of a BERT export (${key}) and read its exact values`,
    ignore: !available,
    async fn() {
      const { bert } = await fixture(key);
      const nLayer = bert.config.num_hidden_layers as number;
      const list = await listParameters(bert.dir);
      assertEquals(list.params.map((p) => p.name), expectedNames(nLayer, key === "pooler"));
      assertEquals(list.tied, []);
      // Every learned tensor of the file is a parameter; everything excluded is a constant.
      assertEquals(
        list.params.map((p) => bert.storedNames[p.storedName]).sort(),
        [...bert.params.keys()].sort(),
      );
      for (const x of list.excluded) assert(!(x.name in bert.storedNames), `${x.name} wrongly excluded: ${x.reason}`);
      assert(list.excluded.some((x) => x.name === "embeddings.position_ids" && /int64/.test(x.reason)));
      const d = bert.config.hidden_size as number, dMlp = bert.config.intermediate_size as number;
      for (const p of list.params) {
        const torch = bert.params.get(torchName(p.name))!;
        assertEquals(bert.storedNames[p.storedName], torchName(p.name), `${p.name} is ${p.storedName}`);
        assertEquals(p.resolvedBy, "scope", p.name);
        assertEquals(p.layer, /^blocks\./.test(p.name) ? Number(p.name.split(".")[1]) : undefined, p.name);
        const linearWeight = torch.dims.length === 2 && !p.name.startsWith("embed.");
        // Canonical [in, out]: PyTorch's Linear [out, in] transposed; the pooler's Gemm(transB) stores [out, in].
        assertEquals(p.shape, linearWeight ? [torch.dims[1], torch.dims[0]] : torch.dims, p.name);
        assertEquals(p.transposed, p.name === "pooler.weight", `${p.name} transposed`);
        const value = await readParameter(list, p.name);
        assertEquals(value.dims, p.shape);
        assertEquals(value.data, linearWeight ? transposed(torch) : torch.data, `${p.name} values`);
      }
      const get = (n: string) => list.params.find((p) => p.name === n)!;
      assertEquals(get("blocks.0.mlp.in.weight").dims, ["d_model", "d_mlp"]);
      assertEquals(get("blocks.0.mlp.in.weight").shape, [d, dMlp]);
      assertEquals(get("embed.token_types").dims, ["type_vocab", "d_model"]);
      assertEquals(get("blocks.1.ln2.gain").component, "norm");
      assertEquals(get("blocks.1.ln2.gain").kind, "gain");
      assertEquals(get("blocks.1.attn.k.bias").component, "attention");
      if (key === "pooler") assertEquals(get("pooler.weight").component, "other");
    },
  });
}

/** Analytic terms with `{i}` expanded per block: readable name → elements. */
function expandTerms(config: HfConfig, pooler: boolean): Map<string, number> {
  const r = countAnalytic(config, { pooler });
  const layers = config.num_hidden_layers as number;
  const out = new Map<string, number>();
  for (const t of r.analytic!.terms) {
    if (t.per === "model") out.set(t.name, t.elements);
    else for (let i = 0; i < layers; i++) out.set(t.name.replace("{i}", String(i)), t.elements / layers);
  }
  return out;
}

Deno.test({
  name: "countModel() of a BERT export: the exact count equals the analytic BertModel count, tensor by tensor",
  ignore: !available,
  async fn() {
    for (const key of ["plain", "pooler"] as const) {
      const { bert } = await fixture(key);
      const config = bert.config as HfConfig;
      const exact = await countModel(bert.dir);
      const pooler = key === "pooler";
      assertEquals(exact.family, "bert");
      const byName = new Map(exact.tensors!.map((t) => [t.name, t.elements]));
      assertEquals(byName, expandTerms(config, pooler), `${key}: tensor by tensor`);
      assertEquals(exact.total, countAnalytic(config, { pooler }).total, key);
      let sum = 0;
      for (const t of bert.params.values()) sum += t.data.length;
      assertEquals(exact.total, sum, `${key}: every fixture weight counted once`);
      // The analytic count follows the file: with the pooler when it is there, without it otherwise
      // (Optimum's feature-extraction exports drop it).
      assertEquals(exact.total, exact.analytic!.value, `${key}: exact equals analytic`);
      assertEquals(exact.tied, []);
    }
  },
});

Deno.test({
  name: "tiny BERT fixture with pooler: pooler_output = tanh(W·h[CLS] + b) of the reference",
  ignore: !available,
  async fn() {
    const { bert, model } = await fixture("pooler");
    const d = bert.config.hidden_size as number;
    const ids = model.tokenizer.encode("The river bank was flooded.");
    const out = await (model.model as unknown as Call)(model.tokenizer("The river bank was flooded."));
    assertEquals(out.pooler_output.dims, [1, d]);
    const h = bertReference(bert, ids);
    const w = bert.params.get("pooler.dense.weight")!, b = bert.params.get("pooler.dense.bias")!;
    const want = Array.from(linear(h.subarray(0, d), 1, w, b), Math.tanh);
    assertLess(maxAbsDiff(out.pooler_output.data, want), TOL);
    // contextualEmbeddings reads last_hidden_state, not pooler_output.
    const r = await contextualEmbeddings(model, ["The river bank was flooded."], { pool: "cls" });
    assertLess(maxAbsDiff(r.vectors.data, h.subarray(0, d)), TOL);
    assertStringIncludes(r.source, "last_hidden_state");
  },
});

Deno.test({
  name: "(cleanup: dispose the encoder models, remove the temporary folders)",
  ignore: !available,
  async fn() {
    for (const f of cleanup.reverse()) await f();
    cleanup.length = 0;
  },
});
