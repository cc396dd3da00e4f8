import { assert, assertAlmostEquals, assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import { evaluate } from "mathjs";
import {
  BYTES_PER_ELEMENT,
  coarseEstimate,
  COMPONENTS,
  computeOptimalTokens,
  costFigures,
  countAnalytic,
  countModel,
  type CountResult,
  formatCount,
  forwardFlopsPerToken,
  type HfConfig,
  humanBytes,
  humanCount,
  KINDS,
  kvCacheBytesPerToken,
  kvCacheShape,
  nonEmbeddingCount,
  SUPPORTED_MODEL_TYPES,
  trainingFlops,
  weightBytes,
} from "../lib/count.ts";
import type { Gpt2Config, LlamaConfig } from "../lib/types.ts";
import { join } from "node:path";
import { bundledModelPath } from "../lib/load.ts";
import { DataType, makeModel, makeNode, makeTensor, makeValueInfo, readOnnx, writeOnnx } from "../lib/onnx.ts";
import { quantizeModel } from "../lib/quantize.ts";
import { TINY_GPT2, TINY_LLAMA, tinyModelDir } from "./_fixtures.ts";

// ---------------------------------------------------------------------------
// Independent references: the parameter count of each family written out
// directly from the architecture, with plain integer arithmetic (no formula
// strings, no mathjs). Every value stays below 2^53, so float64 is exact.

function refGpt2(c: { V: number; P: number; d: number; L: number; f: number; tied: boolean }): number {
  const { V, P, d, L, f } = c;
  const block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d);
  return V * d + P * d + L * block + 2 * d + (c.tied ? 0 : d * V);
}

function refBert(c: { V: number; P: number; T: number; d: number; L: number; f: number; pooler: boolean }): number {
  const { V, P, T, d, L, f } = c;
  const embeddings = V * d + P * d + T * d + 2 * d;
  const block = 4 * (d * d + d) + 2 * d + (d * f + f) + (f * d + d) + 2 * d;
  return embeddings + L * block + (c.pooler ? d * d + d : 0);
}

function refLlama(
  c: { V: number; d: number; L: number; H: number; Hkv: number; dh: number; f: number; tied: boolean },
  extra: { qkvBias?: boolean; experts?: number; router?: boolean } = {},
): number {
  const { V, d, L, H, Hkv, dh, f } = c;
  const q = d * H * dh, kv = 2 * d * Hkv * dh, o = H * dh * d;
  const bias = extra.qkvBias ? H * dh + 2 * Hkv * dh : 0;
  const experts = extra.experts ?? 1;
  const mlp = experts * 3 * d * f + (extra.router ? d * experts : 0);
  const block = d + q + kv + o + bias + d + mlp;
  return V * d + L * block + d + (c.tied ? 0 : d * V);
}

function sum(xs: Iterable<number>): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

const GPT2_SMALL: HfConfig = {
  model_type: "gpt2",
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
};
const BERT_BASE: HfConfig = {
  model_type: "bert",
  vocab_size: 30522,
  max_position_embeddings: 512,
  type_vocab_size: 2,
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
};
const LLAMA2_7B: HfConfig = {
  model_type: "llama",
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  tie_word_embeddings: false,
};
const MISTRAL_7B: HfConfig = {
  model_type: "mistral",
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
};
const MIXTRAL: HfConfig = { ...MISTRAL_7B, model_type: "mixtral", num_local_experts: 8, num_experts_per_tok: 2 };

// A small seeded generator (LCG) so the sweep below is repeatable.
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

Deno.test("countAnalytic() matches an integer reference for GPT-2, BERT, LLaMA, Qwen2 and Mixtral shapes", () => {
  const rnd = lcg(7);
  const pick = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  for (let trial = 0; trial < 40; trial++) {
    // Hq query heads in Hkv groups, each head dh wide.
    const dh = pick(1, 8) * 8, Hkv = pick(1, 4), Hq = Hkv * pick(1, 4);
    const d = dh * Hq, V = pick(10, 5000), L = pick(1, 12), P = pick(16, 2048), f = pick(1, 64) * 8;
    const tied = rnd() < 0.5;

    const g = countAnalytic({
      model_type: "gpt2",
      vocab_size: V,
      n_positions: P,
      n_embd: d,
      n_layer: L,
      n_head: Hq,
      n_inner: f,
      tie_word_embeddings: tied,
    });
    assertEquals(g.total, refGpt2({ V, P, d, L, f, tied }));

    const pooler = rnd() < 0.5;
    const b = countAnalytic({
      model_type: "bert",
      vocab_size: V,
      max_position_embeddings: P,
      type_vocab_size: 3,
      hidden_size: d,
      intermediate_size: f,
      num_hidden_layers: L,
      num_attention_heads: Hq,
    }, { pooler });
    assertEquals(b.total, refBert({ V, P, T: 3, d, L, f, pooler }));

    const llamaShape = {
      vocab_size: V,
      hidden_size: d,
      intermediate_size: f,
      num_hidden_layers: L,
      num_attention_heads: Hq,
      num_key_value_heads: Hkv,
      tie_word_embeddings: tied,
    };
    const dims = { V, d, L, H: Hq, Hkv, dh, f, tied };
    for (const mt of ["llama", "mistral"]) {
      assertEquals(countAnalytic({ model_type: mt, ...llamaShape }).total, refLlama(dims));
    }
    assertEquals(countAnalytic({ model_type: "qwen2", ...llamaShape }).total, refLlama(dims, { qkvBias: true }));
    const E = pick(2, 8);
    const m = countAnalytic({ model_type: "mixtral", ...llamaShape, num_local_experts: E, num_experts_per_tok: 2 });
    assertEquals(m.total, refLlama(dims, { experts: E, router: true }));
  }
});

Deno.test("countAnalytic() evaluates its formula with mathjs to the same integer as the terms and the reference", () => {
  const cases: [HfConfig, number][] = [
    [GPT2_SMALL, refGpt2({ V: 50257, P: 1024, d: 768, L: 12, f: 3072, tied: true })],
    [BERT_BASE, refBert({ V: 30522, P: 512, T: 2, d: 768, L: 12, f: 3072, pooler: true })],
    [LLAMA2_7B, refLlama({ V: 32000, d: 4096, L: 32, H: 32, Hkv: 32, dh: 128, f: 11008, tied: false })],
    [
      MIXTRAL,
      refLlama({ V: 32000, d: 4096, L: 32, H: 32, Hkv: 8, dh: 128, f: 14336, tied: false }, {
        experts: 8,
        router: true,
      }),
    ],
  ];
  for (const [cfg, want] of cases) {
    const r = countAnalytic(cfg);
    const a = r.analytic!;
    // Re-evaluate the returned formula text with the returned scope: the text alone reproduces the value.
    assertEquals(evaluate(a.formula, { ...a.scope }), want);
    assertEquals(a.value, want);
    assertEquals(r.total, want);
    assertEquals(sum(a.terms.map((t) => t.elements)), want);
    for (const t of a.terms) {
      const per = evaluate(t.formula, { ...a.scope }) as number;
      assertEquals(t.elements, per * (t.per === "block" ? a.scope.layer : 1), t.name);
    }
  }
});

Deno.test("countAnalytic() breaks the total down by every component and kind", () => {
  for (const cfg of [GPT2_SMALL, BERT_BASE, LLAMA2_7B, MIXTRAL]) {
    const r = countAnalytic(cfg);
    assertEquals(Object.keys(r.byComponent).sort(), [...COMPONENTS].sort());
    assertEquals(Object.keys(r.byKind).sort(), [...KINDS].sort());
    assertEquals(sum(Object.values(r.byComponent)), r.total);
    assertEquals(sum(Object.values(r.byKind)), r.total);
    assertEquals(r.excluded, []);
  }
  // GPT-2 small by hand: embeddings V·d + P·d; norms 2 LayerNorms per block + final, gain and bias each.
  const g = countAnalytic(GPT2_SMALL);
  assertEquals(g.byComponent.embedding, 50257 * 768 + 1024 * 768);
  assertEquals(g.byComponent.attention, 12 * (768 * 3 * 768 + 3 * 768 + 768 * 768 + 768));
  assertEquals(g.byComponent.mlp, 12 * (2 * 768 * 3072 + 3072 + 768));
  assertEquals(g.byComponent.norm, (12 * 2 + 1) * 2 * 768);
  assertEquals(g.byKind.gain, (12 * 2 + 1) * 768);
  assertEquals(g.byKind.bias, 12 * (3 * 768 + 768 + 2 * 768 + 3072 + 768) + 768);
  assertEquals(g.byComponent.head, 0);
  // LLaMA: RMSNorm has gains only and there are no biases.
  const l = countAnalytic(LLAMA2_7B);
  assertEquals(l.byKind.bias, 0);
  assertEquals(l.byKind.gain, (32 * 2 + 1) * 4096);
  assertEquals(l.byComponent.head, 32000 * 4096);
  // BERT's pooler is the only "other".
  assertEquals(countAnalytic(BERT_BASE).byComponent.other, 768 * 768 + 768);
});

Deno.test("countAnalytic() counts a tied head once and lists it in tied", () => {
  const untied = countAnalytic({ ...GPT2_SMALL, tie_word_embeddings: false });
  const tied = countAnalytic(GPT2_SMALL);
  assertEquals(tied.tied, ["head.weight"]);
  assertEquals(untied.tied, []);
  assertEquals(untied.total - tied.total, 50257 * 768);
  const l = countAnalytic({ ...LLAMA2_7B, tie_word_embeddings: true });
  assertEquals(l.tied, ["head.weight"]);
  assertEquals(countAnalytic(LLAMA2_7B).total - l.total, 32000 * 4096);
  // HF defaults: gpt2 ties unless told otherwise, the LLaMA family does not.
  const { tie_word_embeddings: _, ...noTie } = LLAMA2_7B;
  assertEquals(countAnalytic(noTie).tied, []);
});

Deno.test("countAnalytic() shrinks k and v under grouped-query attention", () => {
  const mha = countAnalytic({ ...MISTRAL_7B, num_key_value_heads: 32 });
  const gqa = countAnalytic(MISTRAL_7B);
  // k and v lose (32 − 8) heads of 128 columns each, in every one of 32 layers.
  assertEquals(mha.total - gqa.total, 32 * 2 * 4096 * (32 - 8) * 128);
  // LLaMA without num_key_value_heads means one key/value head per query head (HF's default).
  const { num_key_value_heads: _, ...noKv } = LLAMA2_7B;
  assertEquals(countAnalytic(noKv).total, countAnalytic(LLAMA2_7B).total);
});

Deno.test("countAnalytic() gives Qwen2 q/k/v biases and no other biases", () => {
  const q = countAnalytic({ ...MISTRAL_7B, model_type: "qwen2" });
  const m = countAnalytic(MISTRAL_7B);
  assertEquals(q.byKind.bias, 32 * (32 * 128 + 2 * 8 * 128));
  assertEquals(q.total - m.total, q.byKind.bias);
  const names = q.analytic!.terms.filter((t) => t.kind === "bias").map((t) => t.name);
  assertEquals(names, ["blocks.{i}.attn.q.bias", "blocks.{i}.attn.k.bias", "blocks.{i}.attn.v.bias"]);
});

Deno.test("countAnalytic() honours LLaMA's attention_bias and mlp_bias", () => {
  const base = countAnalytic(LLAMA2_7B).total;
  const d = 4096, L = 32, f = 11008;
  assertEquals(countAnalytic({ ...LLAMA2_7B, attention_bias: true }).total - base, L * 4 * d);
  assertEquals(countAnalytic({ ...LLAMA2_7B, mlp_bias: true }).total - base, L * (2 * f + d));
});

Deno.test("countAnalytic() uses head_dim when it is not hidden_size / num_attention_heads", () => {
  // Mistral NeMo's shape: hidden 5120 but 32 heads of 128.
  const cfg = { ...MISTRAL_7B, hidden_size: 5120, head_dim: 128, num_hidden_layers: 2, vocab_size: 1000 };
  const want = refLlama({ V: 1000, d: 5120, L: 2, H: 32, Hkv: 8, dh: 128, f: 14336, tied: false });
  const r = countAnalytic(cfg);
  assertEquals(r.total, want);
  assertEquals(r.analytic!.scope.d_head, 128);
  assertEquals(r.analytic!.symbols.d_head, "head_dim");
});

Deno.test("countAnalytic() reads n_inner, and null as absent", () => {
  const four = countAnalytic({ ...GPT2_SMALL, n_inner: null });
  assertEquals(four.total, countAnalytic(GPT2_SMALL).total);
  assertEquals(four.analytic!.scope.d_mlp, 4 * 768);
  const narrow = countAnalytic({ ...GPT2_SMALL, n_inner: 1000 });
  assertEquals(narrow.total, refGpt2({ V: 50257, P: 1024, d: 768, L: 12, f: 1000, tied: true }));
});

Deno.test("countAnalytic() counts BERT's pooler unless asked not to", () => {
  const withPooler = countAnalytic(BERT_BASE);
  const without = countAnalytic(BERT_BASE, { pooler: false });
  assertEquals(withPooler.total - without.total, 768 * 768 + 768);
  assertEquals(without.byComponent.other, 0);
  assertEquals(withPooler.tied, []);
});

Deno.test("countAnalytic() gives Mixtral's active parameters per token", () => {
  const r = countAnalytic(MIXTRAL);
  const d = 4096, f = 14336, L = 32;
  // The 6 experts a token skips in each layer are the only difference.
  assertEquals(r.total - r.active!, L * (8 - 2) * 3 * d * f);
  assertEquals(r.analytic!.active!.value, r.active);
  assertEquals(evaluate(r.analytic!.active!.formula, { ...r.analytic!.scope }), r.active);
  // Routing every token to every expert makes all parameters active.
  const all = countAnalytic({ ...MIXTRAL, num_experts_per_tok: 8 });
  assertEquals(all.active, all.total);
  // One expert per block is the dense model plus a d_model×1 router.
  const one = countAnalytic({ ...MIXTRAL, num_local_experts: 1, num_experts_per_tok: 1 });
  assertEquals(one.total, countAnalytic(MISTRAL_7B).total + L * d);
  assertEquals(one.active, one.total);
  // Dense models have no separate active figure.
  assertEquals(countAnalytic(MISTRAL_7B).active, undefined);
  const router = r.analytic!.terms.find((t) => t.name === "blocks.{i}.mlp.router.weight")!;
  assertEquals(router.elements, L * d * 8);
});

Deno.test("countAnalytic() accepts lib/types.ts ArchConfig and agrees with the HF config", () => {
  const g: Gpt2Config = {
    family: "gpt2",
    vocabSize: 50257,
    maxPositions: 1024,
    dModel: 768,
    nLayer: 12,
    nHead: 12,
    dMlp: 3072,
    normEps: 1e-5,
  };
  assertEquals(countAnalytic(g).total, countAnalytic(GPT2_SMALL).total);
  assertEquals(countAnalytic(g).family, "gpt");
  const l: LlamaConfig = {
    family: "llama",
    vocabSize: 32000,
    maxPositions: 4096,
    dModel: 4096,
    nLayer: 32,
    nHead: 32,
    nKvHead: 32,
    dHead: 128,
    dMlp: 11008,
    normEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
  };
  assertEquals(countAnalytic(l).total, countAnalytic(LLAMA2_7B).total);
  assertEquals(countAnalytic({ ...l, tieWordEmbeddings: true }).total, countAnalytic(l).total - 32000 * 4096);
});

Deno.test("countAnalytic() names the missing field and the model_type", () => {
  const required: Record<string, [HfConfig, string[]]> = {
    gpt2: [GPT2_SMALL, ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"]],
    bert: [BERT_BASE, [
      "vocab_size",
      "max_position_embeddings",
      "hidden_size",
      "intermediate_size",
      "num_hidden_layers",
      "num_attention_heads",
    ]],
    llama: [LLAMA2_7B, ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"]],
    mistral: [MISTRAL_7B, ["num_key_value_heads", "intermediate_size"]],
    qwen2: [{ ...MISTRAL_7B, model_type: "qwen2" }, ["num_key_value_heads", "hidden_size"]],
    mixtral: [MIXTRAL, ["num_local_experts", "num_experts_per_tok", "num_key_value_heads"]],
  };
  assertEquals(Object.keys(required).sort(), Object.keys(SUPPORTED_MODEL_TYPES).sort());
  for (const [mt, [cfg, fields]] of Object.entries(required)) {
    for (const field of fields) {
      const broken: Record<string, unknown> = { ...cfg };
      delete broken[field];
      const e = assertThrows(() => countAnalytic(broken as HfConfig), TypeError);
      assertStringIncludes(e.message, `"${field}"`);
      assertStringIncludes(e.message, `"${mt}"`);
      // null is absent too.
      assertThrows(() => countAnalytic({ ...cfg, [field]: null }), TypeError, field);
    }
  }
});

Deno.test("countAnalytic() lists the supported model types for an unknown one", () => {
  const e = assertThrows(() => countAnalytic({ ...LLAMA2_7B, model_type: "gemma" }), TypeError, "gemma");
  for (const mt of Object.keys(SUPPORTED_MODEL_TYPES)) assertStringIncludes(e.message, mt);
  assertThrows(() => countAnalytic({ ...LLAMA2_7B, model_type: "toString" }), TypeError, "unknown model_type");
  const { model_type: _, ...none } = LLAMA2_7B;
  assertThrows(() => countAnalytic(none as HfConfig), TypeError, "model_type");
  assertThrows(() => countAnalytic(null as unknown as HfConfig), TypeError, "config object");
  assertThrows(
    () => countAnalytic({ family: "t5" } as unknown as Gpt2Config),
    TypeError,
    "unknown ArchConfig family",
  );
});

Deno.test("countAnalytic() rejects sizes that are not positive integers or do not divide", () => {
  for (const bad of [0, -4, 1.5, "768", Number.NaN]) {
    const e = assertThrows(() => countAnalytic({ ...GPT2_SMALL, n_embd: bad as number }), RangeError, "n_embd");
    assertStringIncludes(e.message, "positive integer");
  }
  assertThrows(() => countAnalytic({ ...GPT2_SMALL, n_head: 7 }), RangeError, "not divisible");
  assertThrows(() => countAnalytic({ ...MISTRAL_7B, num_key_value_heads: 5 }), RangeError, "num_key_value_heads");
  assertThrows(() => countAnalytic({ ...MIXTRAL, num_experts_per_tok: 9 }), RangeError, "num_experts_per_tok");
  assertThrows(() => countAnalytic({ ...LLAMA2_7B, tie_word_embeddings: "no" as unknown as boolean }), TypeError);
  // A count past 2^53 would no longer be exact: refuse it rather than round.
  assertThrows(
    () => countAnalytic({ ...LLAMA2_7B, hidden_size: 2 ** 24, intermediate_size: 2 ** 24, num_hidden_layers: 2 ** 10 }),
    RangeError,
    "2^53",
  );
});

Deno.test("countAnalytic() records where each symbol came from and renders LaTeX", () => {
  const a = countAnalytic(GPT2_SMALL).analytic!;
  assertEquals(a.symbols.d_model, "n_embd");
  assertStringIncludes(a.symbols.d_mlp, "n_inner absent");
  assertStringIncludes(a.tex, "d_{\\mathrm{model}}");
  assert(!/\\cdot[a-z]/i.test(a.tex), "every \\cdot is separated from the symbol that follows");
  assertEquals(countAnalytic(MIXTRAL).analytic!.symbols.k_expert, "num_experts_per_tok");
});

Deno.test("nonEmbeddingCount() leaves out embedding tables and the head", () => {
  const g = countAnalytic(GPT2_SMALL);
  assertEquals(nonEmbeddingCount(g), g.total - 50257 * 768 - 1024 * 768);
  const l = countAnalytic(LLAMA2_7B);
  assertEquals(nonEmbeddingCount(l), l.total - 2 * 32000 * 4096);
});

Deno.test("coarseEstimate() is V·d + N·(12d² + 4d) and reports its distance from the exact count", () => {
  const cases: [HfConfig, number, number, number][] = [
    [GPT2_SMALL, 50257, 768, 12],
    [LLAMA2_7B, 32000, 4096, 32],
    [BERT_BASE, 30522, 768, 12],
    [MIXTRAL, 32000, 4096, 32],
  ];
  for (const [cfg, V, d, N] of cases) {
    const e = coarseEstimate(cfg);
    const want = V * d + N * (4 * d * d + 8 * d * d + 4 * d);
    assertEquals(e.value, want);
    const exact = countAnalytic(cfg).total;
    assertEquals(e.analytic, exact);
    assertAlmostEquals(e.relativeError, (want - exact) / exact, 1e-15);
    assertStringIncludes(e.tex, "^{2}");
  }
  // Close for GPT-2 (what the textbook formula describes), far off for a mixture of experts.
  assert(Math.abs(coarseEstimate(GPT2_SMALL).relativeError) < 0.01);
  assert(coarseEstimate(MIXTRAL).relativeError < -0.8);
});

Deno.test("weightBytes() stores 4, 2, 2, 1 and ½ bytes per parameter", () => {
  const n = 124439808;
  assertEquals(weightBytes(n, "fp32"), 4 * n);
  assertEquals(weightBytes(n, "fp16"), 2 * n);
  assertEquals(weightBytes(n, "bf16"), 2 * n);
  assertEquals(weightBytes(n, "int8"), n);
  assertEquals(weightBytes(n, "int4"), n / 2);
  assertEquals(weightBytes(7, "int4"), 4);
  assertEquals(BYTES_PER_ELEMENT.bf16, 2);
  assertThrows(() => weightBytes(n, "fp8" as "fp16"), TypeError, "fp8");
  assertThrows(() => weightBytes(-1, "fp16"), RangeError, "params");
  assertThrows(() => weightBytes(Number.POSITIVE_INFINITY, "fp16"), RangeError);
});

Deno.test("kvCacheBytesPerToken() is 2·layers·kv_heads·d_head·bytes (LLaMA 2: 0.5 MiB per token for 7B)", () => {
  // Widely quoted: LLaMA 2 7B needs 0.5 MiB of fp16 KV cache per token; GQA cuts 70B to 8 of 64 heads.
  assertEquals(kvCacheBytesPerToken(kvCacheShape(LLAMA2_7B)), 2 ** 19);
  const l70 = {
    ...LLAMA2_7B,
    hidden_size: 8192,
    num_hidden_layers: 80,
    num_attention_heads: 64,
    num_key_value_heads: 8,
  };
  assertEquals(kvCacheShape(l70), { layers: 80, kvHeads: 8, dHead: 128 });
  assertEquals(kvCacheBytesPerToken(kvCacheShape(l70)), 2 * 80 * 8 * 128 * 2);
  assertEquals(kvCacheBytesPerToken(kvCacheShape(GPT2_SMALL), { precision: "fp32" }), 2 * 12 * 12 * 64 * 4);
  assertEquals(kvCacheBytesPerToken({ layers: 2, kvHeads: 3, dHead: 5 }, { precision: "int4" }), 30);
  assertThrows(() => kvCacheShape(BERT_BASE), TypeError, "encoder");
  assertThrows(() => kvCacheBytesPerToken({ layers: 0, kvHeads: 1, dHead: 1 }), RangeError, "layers");
  assertThrows(
    () => kvCacheBytesPerToken({ layers: 1, kvHeads: 1, dHead: 1 }, { precision: "q4" as "int4" }),
    TypeError,
  );
});

Deno.test("FLOP estimates are 2N per token forward and 6ND for training (GPT-3: 3.14e23)", () => {
  assertEquals(forwardFlopsPerToken(1e9), 2e9);
  assertEquals(trainingFlops(1e9, 2e10), 1.2e20);
  // Brown et al. 2020, Table D.1: GPT-3 175B trained on 300B tokens used 3.14e23 FLOPs.
  const gpt3 = countAnalytic({
    model_type: "gpt2",
    vocab_size: 50257,
    n_positions: 2048,
    n_embd: 12288,
    n_layer: 96,
    n_head: 96,
  });
  assertAlmostEquals(trainingFlops(gpt3.total, 300e9) / 3.14e23, 1, 0.01);
  assertThrows(() => trainingFlops(1e9, -1), RangeError, "tokens");
  assertThrows(() => forwardFlopsPerToken(Number.NaN), RangeError);
});

Deno.test("computeOptimalTokens() is 20 tokens per parameter (Chinchilla 70B: 1.4T tokens)", () => {
  // Hoffmann et al. 2022: Chinchilla, 70B parameters, trained on 1.4 trillion tokens.
  assertEquals(computeOptimalTokens(70e9), 1.4e12);
  assertEquals(computeOptimalTokens(1e6, { tokensPerParam: 5 }), 5e6);
  assertThrows(() => computeOptimalTokens(1e6, { tokensPerParam: -1 }), RangeError, "tokensPerParam");
});

Deno.test("costFigures() uses active parameters for FLOPs and total parameters for memory", () => {
  const r = countAnalytic(MIXTRAL);
  const c = costFigures(r, { kvCache: kvCacheShape(MIXTRAL) });
  assertEquals(c.params, r.total);
  assertEquals(c.activeParams, r.active);
  assertEquals(c.weightBytes.fp16, 2 * r.total);
  assertEquals(c.weightBytes.int4, r.total / 2);
  assertEquals(c.forwardFlopsPerToken, 2 * r.active!);
  assertEquals(c.computeOptimalTokens, 20 * r.total);
  assertEquals(c.trainingFlops, 6 * r.active! * 20 * r.total);
  assertEquals(c.kvCacheBytesPerToken, 2 * 32 * 8 * 128 * 2);
  const dense = costFigures(countAnalytic(GPT2_SMALL));
  assertEquals(dense.activeParams, dense.params);
  assertEquals(dense.kvCacheBytesPerToken, undefined);
});

Deno.test("formatCount() shows every component, the total, tied tensors and the formula", () => {
  const r: CountResult = countAnalytic(GPT2_SMALL);
  const text = formatCount(r);
  for (const c of COMPONENTS) assertStringIncludes(text, c);
  assertStringIncludes(text, "124,439,808");
  assertStringIncludes(text, "tied: head.weight");
  assertStringIncludes(text, "formula: vocab * d_model");
  assertStringIncludes(formatCount(countAnalytic(MIXTRAL)), "active");
  const exact: CountResult = {
    ...r,
    analytic: undefined,
    excluded: [{ name: "onnx::Shape_1", reason: "shape constant", elements: 2 }],
  };
  assertStringIncludes(formatCount(exact), "onnx::Shape_1 (2): shape constant");
});

Deno.test("humanCount() rounds to three significant figures with a suffix", () => {
  assertEquals(humanCount(124439808), "124M");
  assertEquals(humanCount(6738415616), "6.74B");
  assertEquals(humanCount(46702792704), "46.7B");
  assertEquals(humanCount(22713216), "22.7M");
  assertEquals(humanCount(1.4e12), "1.4T");
  assertEquals(humanCount(512), "512");
});

// ---------------------------------------------------------------------------
// scripts/count.ts

const SCRIPT = new URL("../scripts/count.ts", import.meta.url).pathname;

async function runScript(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("scripts/count.ts --arch --json prints total, breakdowns, tied, excluded and the formula", async () => {
  const { code, stdout } = await runScript("--arch", "mixtral-8x7b", "--json");
  assertEquals(code, 0);
  const j = JSON.parse(stdout);
  const r = countAnalytic(MIXTRAL);
  assertEquals(j.total, r.total);
  assertEquals(j.active, r.active);
  assertEquals(j.byComponent, r.byComponent);
  assertEquals(j.byKind, r.byKind);
  assertEquals(j.tied, []);
  assertEquals(j.excluded, []);
  assertEquals(j.analytic.formula, r.analytic!.formula);
  assertEquals(j.analytic.value, r.total);
  assertEquals(j.published.total, 46.7e9);
});

Deno.test("scripts/count.ts prints a table by default and counts a config.json", async () => {
  const table = await runScript("--arch", "GPT2-small");
  assertEquals(table.code, 0);
  assertStringIncludes(table.stdout, "124,439,808");
  assertStringIncludes(table.stdout, "KV cache");
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/config.json`;
    await Deno.writeTextFile(path, JSON.stringify({ ...GPT2_SMALL, architectures: ["GPT2LMHeadModel"] }));
    const j = JSON.parse((await runScript("--config", path, "--json")).stdout);
    assertEquals(j.total, 124439808);
    assertEquals(j.tied, ["head.weight"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scripts/count.ts exits 2 for an unknown --arch, listing the known names", async () => {
  const { code, stderr } = await runScript("--arch", "gpt-5");
  assertEquals(code, 2);
  assertStringIncludes(stderr, "gpt-5");
  assertStringIncludes(stderr, "llama2-7b");
  assertStringIncludes(stderr, "mixtral-8x7b");
});

Deno.test("scripts/count.ts with no source counts the bundled model exactly, as the other tasks default to it", async () => {
  const r = await runScript("--json");
  assertEquals(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const model = await countModel(bundledModelPath());
  assertEquals(out.total, model.total);
  assertEquals(out.total, out.analytic.value, "the bundled model's file matches its config");
  // The table gives memory in units that fit the size, and the KV cache and FLOPs as for --arch.
  const table = await runScript();
  assertEquals(table.code, 0, table.stderr);
  assertStringIncludes(table.stdout, `weights: fp32 ${humanBytes(model.total * 4)}`);
  assert(/weights: fp32 \d+(\.\d+)? MiB/.test(table.stdout), "a few-MB model is counted in MiB");
  const cfg = JSON.parse(await Deno.readTextFile(join(bundledModelPath(), "config.json")));
  // keys and values, every layer, d_model each, 2 bytes in fp16
  assertStringIncludes(table.stdout, `KV cache (fp16): ${humanBytes(2 * cfg.n_layer * cfg.n_embd * 2)} per token`);
  assertStringIncludes(table.stdout, "FLOPs: forward");
});

Deno.test("humanBytes() picks the binary unit that fits, with three significant figures", () => {
  assertEquals(humanBytes(0), "0 B");
  assertEquals(humanBytes(1023), "1023 B");
  assertEquals(humanBytes(1024), "1.00 KiB");
  assertEquals(humanBytes(3_412_224), "3.25 MiB");
  assertEquals(humanBytes(14e9), "13.0 GiB");
  assertEquals(humanBytes(650 * 2 ** 30), "650 GiB");
  assertEquals(humanBytes(2 ** 50), "1024 TiB");
});

Deno.test("scripts/count.ts exits 2 for bad usage and bad configs", async () => {
  assertEquals((await runScript("--arch", "gpt2-small", "--config", "x.json")).code, 2);
  assertEquals((await runScript("--arch", "gpt2-small", "--dtype", "q8")).code, 2);
  assertEquals((await runScript("--frobnicate")).code, 2);
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/config.json`;
    await Deno.writeTextFile(path, JSON.stringify({ model_type: "llama", vocab_size: 10 }));
    const r = await runScript("--config", path);
    assertEquals(r.code, 2);
    assertStringIncludes(r.stderr, "hidden_size");
    await Deno.writeTextFile(path, "[1, 2]");
    assertEquals((await runScript("--config", path)).code, 2);
    assertEquals((await runScript("--config", `${dir}/missing.json`)).code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Exact counts from model files

/** Sum of every initializer's elements, read with lib/onnx.ts only. */
async function initializerElements(path: string): Promise<number> {
  return sum((await readOnnx(path)).initializers.map((i) => i.elements));
}

function refOf(config: Gpt2Config | LlamaConfig): number {
  return config.family === "gpt2"
    ? refGpt2({
      V: config.vocabSize,
      P: config.maxPositions,
      d: config.dModel,
      L: config.nLayer,
      f: config.dMlp,
      tied: true,
    })
    : refLlama({
      V: config.vocabSize,
      d: config.dModel,
      L: config.nLayer,
      H: config.nHead,
      Hkv: config.nKvHead,
      dh: config.dHead,
      f: config.dMlp,
      tied: config.tieWordEmbeddings,
    });
}

Deno.test("countModel() of the bundled model = initializers − excluded constants = the analytic count", async () => {
  const dir = bundledModelPath();
  const r = await countModel(dir);
  const all = await initializerElements(join(dir, "onnx", "model.onnx"));
  assertEquals(r.total, all - sum(r.excluded.map((x) => x.elements)));
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  assertEquals(r.total, countAnalytic(config).total);
  assertEquals(r.analytic?.value, r.total);
  assertEquals(r.family, "gpt");
  assertEquals(r.tied, ["head.weight"]);
  assertEquals(sum(Object.values(r.byComponent)), r.total);
  assertEquals(sum(Object.values(r.byKind)), r.total);
  assertEquals(sum(r.tensors!.map((t) => t.elements)), r.total);
  assert(r.excluded.every((x) => x.reason.length > 0));
});

Deno.test("countModel() counts GPT-2- and LLaMA-shaped exports exactly, with readable or anonymous names", async () => {
  for (const config of [TINY_GPT2, TINY_LLAMA, { ...TINY_LLAMA, tieWordEmbeddings: true }]) {
    for (const anonymize of [false, true]) {
      const { dir } = await tinyModelDir(config, { anonymize });
      const r = await countModel(dir);
      const all = await initializerElements(join(dir, "onnx", "model.onnx"));
      assertEquals(r.total, refOf(config), `${config.family} anonymize=${anonymize}`);
      assertEquals(r.total, all - sum(r.excluded.map((x) => x.elements)));
      assertEquals(r.total, r.analytic!.value);
      assertEquals(r.byComponent, countAnalytic(config).byComponent);
      assertEquals(r.byKind, countAnalytic(config).byKind);
      assertEquals(r.tied, countAnalytic(config).tied);
      assertEquals(r.family, config.family === "gpt2" ? "gpt" : "llama");
    }
  }
});

Deno.test("countModel() gives fp16, q8, int8 and q4 files the same count as their fp32 original", async () => {
  for (const config of [TINY_GPT2, TINY_LLAMA]) {
    const { dir } = await tinyModelDir(config);
    await quantizeModel(dir, { dtypes: ["fp16", "q8", "int8", "q4"], blockSize: 16 });
    const fp32 = await countModel(dir);
    for (const dtype of ["fp16", "q8", "int8", "q4"] as const) {
      const r = await countModel(dir, { dtype });
      assertEquals([r.total, r.byComponent, r.byKind, r.tied], [fp32.total, fp32.byComponent, fp32.byKind, fp32.tied]);
      assertEquals(r.tensors!.map((t) => t.name), fp32.tensors!.map((t) => t.name), dtype);
      if (dtype !== "fp16") assert(r.excluded.some((x) => /quantization scale/.test(x.reason)), dtype);
    }
  }
});

Deno.test("countModel() counts a graph of unrecognised layout exactly, under other", async () => {
  const proto = makeModel({
    name: "odd",
    nodes: [
      makeNode("MatMul", ["x", "alpha"], ["h"], {}, "n1"),
      makeNode("Add", ["h", "beta_vec"], ["h2"], {}, "n2"),
      makeNode("Reshape", ["h2", "shp"], ["y"], {}, "n3"),
    ],
    inputs: [makeValueInfo("x", DataType.FLOAT, ["n", 4])],
    outputs: [makeValueInfo("y", DataType.FLOAT, ["n", 3])],
    initializers: [
      makeTensor("alpha", [4, 3], new Float32Array(12)),
      makeTensor("beta_vec", [3], new Float32Array(3)),
      makeTensor("shp", [2], new BigInt64Array([-1n, 3n])),
    ],
  });
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "odd.onnx");
    await writeOnnx(proto, path);
    const r = await countModel(path);
    assertEquals([r.family, r.total, r.byComponent.other, r.byKind.weight, r.byKind.bias], ["unknown", 15, 15, 12, 3]);
    assertEquals(r.excluded.map((x) => x.name), ["shp"]);
    assertEquals(r.analytic, undefined);
    assertStringIncludes(formatCount(r), "shp (2)");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("formatCount() groups many excluded tensors by reason and compares an exact count with the formula", async () => {
  const { dir } = await tinyModelDir(TINY_LLAMA);
  const r = await countModel(dir);
  assert(r.excluded.length > 12);
  const text = formatCount(r);
  assertStringIncludes(text, "× rotary position table");
  assertStringIncludes(text, "(equal to the exact count)");
});

Deno.test("scripts/count.ts --model prints the exact count of a folder, a dtype and a .onnx file", async () => {
  const { dir } = await tinyModelDir(TINY_LLAMA);
  await quantizeModel(dir, { dtypes: ["q4"], blockSize: 16 });
  const want = refOf(TINY_LLAMA);
  for (
    const args of [["--model", dir], ["--model", dir, "--dtype", "q4"], ["--model", join(dir, "onnx", "model.onnx")]]
  ) {
    const { code, stdout } = await runScript(...args, "--json");
    assertEquals(code, 0, args.join(" "));
    const j = JSON.parse(stdout);
    assertEquals(j.total, want);
    assertEquals(j.analytic.value, want);
    assertEquals(sum(j.tensors.map((t: { elements: number }) => t.elements)), want);
    assert(j.excluded.length > 0);
  }
  const table = await runScript("--model", dir);
  assertEquals(table.code, 0);
  assertStringIncludes(table.stdout, want.toLocaleString("en-US"));
  assertStringIncludes(table.stdout, "equal to the exact count");
});

Deno.test("scripts/count.ts --model exits 2 for a missing model, a bad dtype, or --dtype without --model", async () => {
  for (
    const args of [
      ["--model", "/no/such/model"],
      ["--model", bundledModelPath(), "--dtype", "q3"],
      ["--arch", "gpt2-small", "--dtype", "q4"],
      ["--model", bundledModelPath(), "--arch", "gpt2-small"],
    ]
  ) {
    const r = await runScript(...args);
    assertEquals(r.code, 2, args.join(" "));
    assert(r.stderr.length > 0);
  }
});
