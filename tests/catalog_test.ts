import { assert, assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import { CATALOG, type CatalogEntry, catalogEntry, catalogIds, comparePublished } from "../lib/catalog.ts";
import { countAnalytic, type HfConfig, nonEmbeddingCount, SUPPORTED_MODEL_TYPES } from "../lib/count.ts";

const within1pct = (a: number, b: number) => Math.abs(a - b) <= 0.01 * Math.abs(b);

/** `n` rounded to `sf` significant figures, by integer arithmetic (independent of toPrecision). */
function roundSig(n: number, sf: number): number {
  const digits = Math.floor(Math.log10(n)) + 1;
  const unit = 10 ** Math.max(0, digits - sf);
  return Math.round(n / unit) * unit;
}

Deno.test("CATALOG holds the architectures issue 3 asks for", () => {
  assertEquals(catalogIds().sort(), [
    "all-minilm-l6-v2",
    "bert-base",
    "bert-large",
    "chinchilla-70b",
    "gopher-280b",
    "gpt2-large",
    "gpt2-medium",
    "gpt2-small",
    "gpt2-xl",
    "gpt3-175b",
    "llama2-13b",
    "llama2-70b",
    "llama2-7b",
    "llama3-70b",
    "llama3-8b",
    "mistral-7b",
    "mixtral-8x7b",
    "qwen2.5-0.5b",
    "smollm2-135m",
    "tinyllama-1.1b",
  ]);
  for (const e of CATALOG) {
    assertEquals(e.id, e.id.toLowerCase());
    assertEquals(e.family, SUPPORTED_MODEL_TYPES[e.config.model_type], e.id);
    assert(e.year >= 2018 && e.year <= 2025, e.id);
    assert(e.source.length > 0, e.id);
    assertEquals(e.note === undefined, e.reconcile === undefined, `${e.id}: note and reconcile come together`);
  }
});

Deno.test("every catalog entry's count is within 1% of its published total, or a note explains the gap", () => {
  for (const e of CATALOG) {
    const counted = countAnalytic(e.config).total;
    const off = Math.abs(counted - e.published) / e.published;
    if (e.reconcile === undefined) {
      assert(off <= 0.01, `${e.id}: ${counted} is ${(100 * off).toFixed(2)}% from ${e.published} and has no note`);
      continue;
    }
    // A note is there only because the gap is over 1%...
    assert(off > 0.01, `${e.id} carries a note although it is within 1%`);
    // ...and the gap is exactly what the note says.
    if (e.reconcile.kind === "rounded") {
      assertEquals(roundSig(counted, e.reconcile.significantFigures), e.published, e.id);
    } else {
      assert(within1pct(counted + e.reconcile.elements, e.published), `${e.id}: count + extra vs published`);
    }
  }
});

Deno.test("comparePublished() agrees for every entry and not for a wrong published figure", () => {
  for (const e of CATALOG) {
    const c = comparePublished(e);
    assert(c.agrees, e.id);
    assertEquals(c.counted, countAnalytic(e.config).total);
    assertEquals(c.relativeDifference, (c.counted - e.published) / e.published);
  }
  const gpt2 = catalogEntry("gpt2-small");
  // The GPT-2 paper's original 117M is 6% off the true count; without a note that does not agree.
  const wrong: CatalogEntry = { ...gpt2, published: 117e6 };
  assert(!comparePublished(wrong).agrees);
  const l7 = catalogEntry("llama2-7b");
  assert(!comparePublished({ ...l7, published: 6e9 }).agrees);
  assertEquals(comparePublished(l7).reconciled, 7e9);
  assertEquals(
    comparePublished(catalogEntry("gopher-280b")).reconciled,
    countAnalytic(catalogEntry("gopher-280b").config).total + 80 * 16384 ** 2,
  );
});

Deno.test("catalog counts equal the released models' known parameter counts", () => {
  // model.num_parameters() of the released checkpoints (transformers; tied weights once; BertModel with pooler).
  const known: Record<string, number> = {
    "bert-base": 109_482_240,
    "bert-large": 335_141_888,
    "gpt2-small": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    "llama2-7b": 6_738_415_616,
    "llama2-13b": 13_015_864_320,
    "llama2-70b": 68_976_648_192,
    "llama3-8b": 8_030_261_248,
    "llama3-70b": 70_553_706_496,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "tinyllama-1.1b": 1_100_048_384,
    "qwen2.5-0.5b": 494_032_768,
    "smollm2-135m": 134_515_008,
    "all-minilm-l6-v2": 22_713_216,
  };
  for (const [id, n] of Object.entries(known)) assertEquals(countAnalytic(catalogEntry(id).config).total, n, id);
});

Deno.test("Mixtral's active count and Qwen2.5's non-embedding count match their published figures", () => {
  const mixtral = catalogEntry("mixtral-8x7b");
  const m = countAnalytic(mixtral.config);
  assert(within1pct(m.active!, mixtral.publishedActive!), `${m.active} vs ${mixtral.publishedActive}`);
  const qwen = catalogEntry("qwen2.5-0.5b");
  const q = countAnalytic(qwen.config);
  assert(within1pct(nonEmbeddingCount(q), qwen.publishedNonEmbedding!));
  assertEquals(q.tied, ["head.weight"]);
});

Deno.test("catalog configs carry the papers' head widths and attention layouts", () => {
  const headWidth = (c: HfConfig) =>
    c.model_type === "gpt2" ? c.n_embd! / c.n_head! : c.head_dim ?? c.hidden_size! / c.num_attention_heads!;
  // GPT-3 Table 2.1 (d_head 128), Gopher Table 1 and Chinchilla Table 4 (key/value size 128).
  for (const id of ["gpt3-175b", "gopher-280b", "chinchilla-70b", "llama2-7b", "llama3-70b", "mistral-7b"]) {
    assertEquals(headWidth(catalogEntry(id).config), 128, id);
  }
  // Grouped-query attention with 8 key/value heads (LLaMA 2 70B, Llama 3, Mistral, Mixtral).
  for (const id of ["llama2-70b", "llama3-8b", "llama3-70b", "mistral-7b", "mixtral-8x7b"]) {
    assertEquals(catalogEntry(id).config.num_key_value_heads, 8, id);
  }
  assertEquals(
    catalogEntry("llama2-7b").config.num_key_value_heads,
    catalogEntry("llama2-7b").config.num_attention_heads,
  );
});

Deno.test("catalogEntry() is case-insensitive and lists the known ids for an unknown one", () => {
  assertEquals(catalogEntry("Mixtral-8x7B").id, "mixtral-8x7b");
  const e = assertThrows(() => catalogEntry("gpt-5"), RangeError, "gpt-5");
  for (const id of catalogIds()) assertStringIncludes(e.message, id);
});

const FIXTURE = new URL("../../shared/fixtures/all-MiniLM-L6-v2-tokenizer/config.json", import.meta.url);
const haveFixture = (() => {
  try {
    return Deno.statSync(FIXTURE).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "all-MiniLM-L6-v2's real config.json counts as its catalog entry (ignored when ../shared/fixtures is absent)",
  ignore: !haveFixture,
  fn() {
    const real = JSON.parse(Deno.readTextFileSync(FIXTURE)) as HfConfig;
    const entry = catalogEntry("all-minilm-l6-v2");
    for (const [field, value] of Object.entries(entry.config)) assertEquals(real[field], value, field);
    const r = countAnalytic(real);
    assertEquals(r.total, countAnalytic(entry.config).total);
    assert(within1pct(r.total, 22.7e6));
  },
});
