import { assert, assertEquals, assertInstanceOf, assertStringIncludes, assertThrows } from "@std/assert";
import { PreTrainedTokenizer } from "@huggingface/transformers";
import { detokenize, tokenize, type TokenizeResult, TokenView, tokenView } from "../lib/tokenize.ts";
import { createPrng } from "../lib/prng.ts";

// ---------------------------------------------------------------------------
// Fixtures: tokenizers in the Hugging Face tokenizers JSON format, built here and loaded
// through transformers.js (`new PreTrainedTokenizer(tokenizerJSON, tokenizerConfig)`).

/** GPT-2's byte ↔ printable-character table (bytes_to_unicode in the GPT-2 encoder). */
function bytesToUnicode(): string[] {
  const map: string[] = new Array(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCharCode(printable(b) ? b : 256 + n++);
  return map;
}
const BYTE = bytesToUnicode();

interface Fixture {
  tokenizer: PreTrainedTokenizer;
  vocab: Record<string, number>;
  merges: [string, string][];
}

/** Byte-level BPE as in GPT-2: ids 0..255 are the bytes, then one id per merge, then <|endoftext|>. */
function gpt2Fixture(): Fixture {
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[BYTE[b]] = b;
  const merges: [string, string][] = [
    ["Ġ", "t"],
    ["h", "e"],
    ["Ġt", "he"],
    ["a", "t"],
    ["Ġ", "c"],
    ["Ġc", "at"],
    ["t", "he"],
    ["Ġ", "s"],
    ["Ġs", "at"],
    ["o", "n"],
    ["Ġ", "on"],
    [BYTE[0xf0], BYTE[0x9f]], // the first two bytes of most emoji
  ];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const eot = Object.keys(vocab).length;
  vocab["<|endoftext|>"] = eot;
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: eot,
        content: "<|endoftext|>",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
  const config = {
    tokenizer_class: "GPT2Tokenizer",
    bos_token: "<|endoftext|>",
    eos_token: "<|endoftext|>",
    unk_token: "<|endoftext|>",
    add_prefix_space: false,
    model_max_length: 1024,
  };
  return { tokenizer: new PreTrainedTokenizer(json, config), vocab, merges };
}

/**
 * SentencePiece-style BPE with byte fallback as in LLaMA: `<unk> <s> </s>`, then `<0x00>..<0xFF>`
 * (ids 3..258), then pieces. `metaspace: false` is the LLaMA-2 layout (Prepend + Replace
 * normalizer); `true` the newer Metaspace pre-tokenizer with prepend_scheme "first".
 */
function llamaFixture(metaspace: boolean): Fixture {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  for (const c of ["▁", "h", "e", "l", "o", "w", "r", "d", "a", "t", "c"]) vocab[c] = Object.keys(vocab).length;
  const merges: [string, string][] = [
    ["l", "l"],
    ["e", "ll"],
    ["▁", "h"],
    ["▁h", "ell"],
    ["▁hell", "o"],
    ["o", "r"],
    ["▁", "w"],
    ["▁w", "or"],
    ["▁wor", "l"],
    ["▁worl", "d"],
  ];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
    normalizer: metaspace ? null : {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }],
    },
    pre_tokenizer: metaspace ? { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false } : null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<s>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const config = {
    tokenizer_class: "LlamaTokenizer",
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    add_bos_token: true,
    add_eos_token: false,
    legacy: !metaspace,
    model_max_length: 2048,
  };
  return { tokenizer: new PreTrainedTokenizer(json, config), vocab, merges };
}

// The real BERT WordPiece tokenizer from the shared fixtures, when present.
const BERT_DIR = new URL("../../shared/fixtures/all-MiniLM-L6-v2-tokenizer/", import.meta.url);
const bertAvailable = (() => {
  try {
    return Deno.statSync(new URL("tokenizer.json", BERT_DIR)).isFile;
  } catch {
    return false;
  }
})();
if (!bertAvailable) {
  console.warn(`ignored: BERT tokenizer tests, because ${BERT_DIR.pathname} is absent (no shared/ beside this clone)`);
}
let bertCache: { tokenizer: PreTrainedTokenizer; vocab: Map<string, number> } | undefined;
function bert(): { tokenizer: PreTrainedTokenizer; vocab: Map<string, number> } {
  if (!bertCache) {
    const json = JSON.parse(Deno.readTextFileSync(new URL("tokenizer.json", BERT_DIR)));
    const config = JSON.parse(Deno.readTextFileSync(new URL("tokenizer_config.json", BERT_DIR)));
    // vocab.txt: one token per line, the line number is the id.
    const lines = Deno.readTextFileSync(new URL("vocab.txt", BERT_DIR)).split("\n");
    const vocab = new Map<string, number>();
    lines.forEach((t, i) => t.length > 0 && vocab.set(t.replace(/\r$/, ""), i));
    bertCache = { tokenizer: new PreTrainedTokenizer(json, config), vocab };
  }
  return bertCache;
}

// ---------------------------------------------------------------------------
// Independent references

/** The GPT-2 encoder's algorithm: regex pre-tokens → bytes → repeatedly merge the best-ranked pair. */
function referenceByteBpe(text: string, fx: Fixture): number[] {
  const rank = new Map(fx.merges.map(([a, b], i) => [`${a} ${b}`, i]));
  const pattern = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  const ids: number[] = [];
  for (const part of text.split(/(<\|endoftext\|>)/)) {
    if (part === "<|endoftext|>") {
      ids.push(fx.vocab[part]);
      continue;
    }
    for (const pre of part.match(pattern) ?? []) {
      let word = Array.from(new TextEncoder().encode(pre), (b) => BYTE[b]);
      for (;;) {
        let best = -1, bestRank = Infinity;
        for (let i = 0; i + 1 < word.length; i++) {
          const r = rank.get(`${word[i]} ${word[i + 1]}`);
          if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
        }
        if (best < 0) break;
        const [a, b] = [word[best], word[best + 1]];
        const next: string[] = [];
        for (let i = 0; i < word.length; i++) {
          if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
            next.push(a + b);
            i++;
          } else next.push(word[i]);
        }
        word = next;
      }
      for (const t of word) ids.push(fx.vocab[t]);
    }
  }
  return ids;
}

/** BERT for ASCII text: lower-case, split on whitespace and punctuation, greedy longest-match WordPiece. */
function referenceWordPiece(text: string, vocab: Map<string, number>): number[] {
  const ids: number[] = [vocab.get("[CLS]")!];
  const words = text.toLowerCase().split(/\s+/).flatMap((w) => w.split(/([!-/:-@[-`{-~])/)).filter((w) => w);
  for (const w of words) {
    const sub: number[] = [];
    let start = 0;
    while (start < w.length) {
      let end = w.length, id: number | undefined;
      for (; end > start; end--) {
        id = vocab.get((start > 0 ? "##" : "") + w.slice(start, end));
        if (id !== undefined) break;
      }
      if (id === undefined) {
        sub.length = 0;
        sub.push(vocab.get("[UNK]")!);
        break;
      }
      sub.push(id);
      start = end;
    }
    ids.push(...sub);
  }
  ids.push(vocab.get("[SEP]")!);
  return ids;
}

/** Fold used to compare normalised pieces with the text they came from (BERT drops control characters). */
function loose(s: string): string {
  return s.normalize("NFKD").toLowerCase().replace(/[\p{M}\p{Cc}\s]/gu, "").replace(/^##/, "");
}

function assertOffsetsSliceToPieces(r: TokenizeResult): void {
  for (let i = 0; i < r.ids.length; i++) {
    const [s, e] = r.offsets[i];
    assert(0 <= s && s <= e && e <= r.text.length, `offsets[${i}] = [${s}, ${e}] out of range`);
    if (i > 0) assert(s >= r.offsets[i - 1][1] || r.inserted[i], `offsets[${i}] overlaps the previous token`);
    if (!r.inserted[i]) assertEquals(r.text.slice(s, e), r.pieces[i], `token ${i} (${r.tokens[i]})`);
  }
}

const SAMPLES = [
  "the cat sat on the mat",
  "Hello, world! Tokenizing émigré 😀 text.",
  " leading and  double  spaces\tand tabs\n\nand newlines\r\n",
  "e\u0301 combining, ﬁ ligature, 北京, Ⅻ, 🇫🇷 flags and 👩‍👩‍👧 families",
  "numbers 3.14159 and 1,000,000; code: x += f(y)[0] // ok?",
];

// ---------------------------------------------------------------------------
// byte-level BPE (GPT-2 style)

Deno.test("tokenize() gives the hand-derived byte-level BPE ids and vocabulary strings", () => {
  const fx = gpt2Fixture();
  const r = tokenize(fx.tokenizer, "the cat sat on the mat");
  // Merges by rank: "the" ← t+he ← h+e; "Ġcat" ← Ġc+at; "Ġmat" has no Ġm merge: Ġ, m, at.
  const expected = ["the", "Ġcat", "Ġsat", "Ġon", "Ġthe", "Ġ", "m", "at"];
  assertEquals(r.tokens, expected);
  assertEquals(r.ids, expected.map((t) => fx.vocab[t]));
  assertEquals(r.pieces, ["the", " cat", " sat", " on", " the", " ", "m", "at"]);
  assertEquals(r.addedBos, false);
  assertEquals(r.addedEos, false);
  assertEquals(r.inserted.every((x) => !x), true);
  assertEquals(r.special.every((x) => !x), true);
});

Deno.test("tokenize() ids match a reference GPT-2 BPE encoder on varied text", () => {
  const fx = gpt2Fixture();
  for (const text of [...SAMPLES, "a<|endoftext|>b"]) {
    assertEquals(tokenize(fx.tokenizer, text).ids, referenceByteBpe(text, fx), JSON.stringify(text));
  }
});

Deno.test("byte-level BPE offsets slice the text back into the pieces and the pieces round-trip", () => {
  const fx = gpt2Fixture();
  for (const text of SAMPLES) {
    const r = tokenize(fx.tokenizer, text);
    assertOffsetsSliceToPieces(r);
    assertEquals(r.pieces.join(""), text);
    assertEquals(detokenize(fx.tokenizer, r.ids), text);
    assertEquals(r.offsets[r.offsets.length - 1][1], text.length);
  }
});

Deno.test("a character split across byte-level tokens belongs to the token that completes it", () => {
  const fx = gpt2Fixture();
  const r = tokenize(fx.tokenizer, "a😀");
  // U+1F600 is F0 9F 98 80: the fixture merges F0+9F, so the emoji is three tokens.
  assertEquals(r.tokens, ["a", BYTE[0xf0] + BYTE[0x9f], BYTE[0x98], BYTE[0x80]]);
  assertEquals(r.pieces, ["a", "", "", "😀"]);
  assertEquals(r.offsets, [[0, 1], [1, 1], [1, 1], [1, 3]]);
  const e = tokenize(fx.tokenizer, "é!");
  assertEquals(e.pieces, ["", "é", "!"]);
  assertEquals(e.offsets, [[0, 0], [0, 1], [1, 2]]);
});

Deno.test("a special token typed in the text is encoded as its id and reported", () => {
  const fx = gpt2Fixture();
  const r = tokenize(fx.tokenizer, "hi<|endoftext|>");
  const eot = fx.vocab["<|endoftext|>"];
  assertEquals(r.ids[r.ids.length - 1], eot);
  assertEquals(r.special[r.ids.length - 1], true);
  assertEquals(r.inserted[r.ids.length - 1], false);
  assertEquals(r.offsets[r.ids.length - 1], [2, 15]);
  assertStringIncludes(r.warnings.join("\n"), `special token "<|endoftext|>"`);
});

// ---------------------------------------------------------------------------
// SentencePiece-style BPE with byte fallback (LLaMA style)

for (const metaspace of [false, true]) {
  const kind = metaspace ? "Metaspace pre-tokenizer" : "LLaMA-2 normalizer";
  Deno.test(`LLaMA-style BPE (${kind}) adds a BOS, reports it, and gives hand-derived ids`, () => {
    const fx = llamaFixture(metaspace);
    const r = tokenize(fx.tokenizer, "hello world");
    assertEquals(r.tokens, ["<s>", "▁hello", "▁world"]);
    assertEquals(r.ids, [1, fx.vocab["▁hello"], fx.vocab["▁world"]]);
    assertEquals(r.addedBos, true);
    assertEquals(r.addedEos, false);
    assertEquals(r.inserted, [true, false, false]);
    assertEquals(r.special, [true, false, false]);
    assertEquals(r.pieces, ["<s>", "hello", " world"]);
    assertEquals(r.offsets, [[0, 0], [0, 5], [5, 11]]);
    assertEquals(r.counts.tokens, 3);
    assertEquals(r.counts.textTokens, 2);

    const plain = tokenize(fx.tokenizer, "hello world", { addSpecialTokens: false });
    assertEquals(plain.ids, [fx.vocab["▁hello"], fx.vocab["▁world"]]);
    assertEquals(plain.addedBos, false);
  });

  Deno.test(`LLaMA-style BPE (${kind}) falls back to byte tokens and maps them to characters`, () => {
    const fx = llamaFixture(metaspace);
    const r = tokenize(fx.tokenizer, "hello é😀", { addSpecialTokens: false });
    const bytes = (...bs: number[]) => bs.map((b) => `<0x${b.toString(16).toUpperCase()}>`);
    assertEquals(r.tokens, ["▁hello", "▁", ...bytes(0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80)]);
    assertEquals(r.ids.slice(2), [0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80].map((b) => 3 + b));
    assertEquals(r.pieces, ["hello", " ", "", "é", "", "", "", "😀"]);
    assertOffsetsSliceToPieces(r);
    assertEquals(detokenize(fx.tokenizer, r.ids), "hello é😀");
  });

  Deno.test(`LLaMA-style BPE (${kind}) offsets slice back to the pieces on varied text`, () => {
    const fx = llamaFixture(metaspace);
    for (const text of SAMPLES) {
      const r = tokenize(fx.tokenizer, text);
      assertOffsetsSliceToPieces(r);
      const rest = r.pieces.slice(1).join("");
      // SentencePiece decoding drops one leading space; the LLaMA-2 normalizer prepends one, so
      // it round-trips, while prepend_scheme "first" does not add one to text that has it.
      assertEquals(rest, metaspace && text.startsWith(" ") ? text.slice(1) : text);
      assertEquals(detokenize(fx.tokenizer, r.ids, { skipSpecialTokens: true }), rest);
    }
  });
}

// ---------------------------------------------------------------------------
// WordPiece (the real BERT tokenizer)

Deno.test({
  name: "BERT WordPiece ids match the vocabulary file and a greedy longest-match reference",
  ignore: !bertAvailable,
  fn() {
    const { tokenizer, vocab } = bert();
    const r = tokenize(tokenizer, "Hello, world!");
    assertEquals(r.ids, ["[CLS]", "hello", ",", "world", "!", "[SEP]"].map((t) => vocab.get(t)!));
    assertEquals(r.tokens, ["[CLS]", "hello", ",", "world", "!", "[SEP]"]);
    assertEquals(r.addedBos, true);
    assertEquals(r.addedEos, true);
    assertEquals(r.inserted, [true, false, false, false, false, true]);
    assertEquals(r.offsets[0], [0, 0]);
    assertEquals(r.offsets[5], [13, 13]);
    for (
      const text of ["the cat sat on the mat", "Tokenizing unbelievably long words, e.g. antidisestablishmentarianism!"]
    ) {
      assertEquals(tokenize(tokenizer, text).ids, referenceWordPiece(text, vocab), text);
    }
    const t = tokenize(tokenizer, "tokenizing");
    assertEquals(t.tokens, ["[CLS]", "token", "##izing", "[SEP]"]);
    assertEquals(t.pieces, ["[CLS]", "token", "izing", "[SEP]"]);
    assertEquals(t.offsets, [[0, 0], [0, 5], [5, 10], [10, 10]]);
  },
});

Deno.test({
  name: "BERT offsets point at the original text through lower-casing, accents and unknown characters",
  ignore: !bertAvailable,
  fn() {
    const { tokenizer } = bert();
    const text = "Hello, WORLD! Émigré 😀 text\u0007s.";
    const r = tokenize(tokenizer, text);
    for (let i = 0; i < r.ids.length; i++) {
      if (r.inserted[i] || r.tokens[i] === "[UNK]") continue;
      const [s, e] = r.offsets[i];
      assertEquals(loose(text.slice(s, e)), loose(r.pieces[i]), `token ${i} ${r.tokens[i]}`);
    }
    const unk = r.tokens.indexOf("[UNK]");
    assertEquals(text.slice(...r.offsets[unk]), "😀");
    const emi = r.tokens.indexOf("emi");
    assertEquals(text.slice(...r.offsets[emi]).trim(), "Émi");
    assertStringIncludes(r.warnings.join("\n"), `U+0007 at index ${text.indexOf("\u0007")}`);
    // Lower-cased, accents and the control character gone; [UNK] is special, so skipping specials drops it too.
    assertEquals(
      detokenize(tokenizer, r.ids, { cleanUpSpaces: true }),
      "[CLS] hello, world! emigre [UNK] texts. [SEP]",
    );
    assertEquals(
      detokenize(tokenizer, r.ids, { skipSpecialTokens: true, cleanUpSpaces: true }),
      "hello, world! emigre texts.",
    );
  },
});

Deno.test({
  name: "BERT tokens that drop every character still give a clear error without special tokens",
  ignore: !bertAvailable,
  fn() {
    const { tokenizer } = bert();
    assertThrows(() => tokenize(tokenizer, "  \u0007 ", { addSpecialTokens: false }), RangeError, "produced no tokens");
    const r = tokenize(tokenizer, "  \u0007 ");
    assertEquals(r.tokens, ["[CLS]", "[SEP]"]);
    assertEquals(r.counts.textTokens, 0);
    assertEquals(r.counts.charsPerToken, 0);
  },
});

// ---------------------------------------------------------------------------
// Shared behaviour

Deno.test("tokenize() accepts a model handle with a tokenizer field", () => {
  const fx = gpt2Fixture();
  const handle = { tokenizer: fx.tokenizer, name: "fixture" };
  assertEquals(tokenize(handle, "the cat").ids, tokenize(fx.tokenizer, "the cat").ids);
  assertEquals(detokenize(handle, [fx.vocab["the"]]), "the");
});

Deno.test("tokenize() counts tokens per word and characters (code points) per token", () => {
  const fx = gpt2Fixture();
  const text = "the cat 😀";
  const r = tokenize(fx.tokenizer, text);
  const codePoints = [...text].length; // 9
  assertEquals(r.counts.chars, codePoints);
  assertEquals(r.counts.words, 3);
  assertEquals(r.counts.textTokens, r.ids.length);
  assertEquals(r.counts.tokensPerWord, r.ids.length / 3);
  assertEquals(r.counts.charsPerToken, codePoints / r.ids.length);
});

Deno.test("tokenize() replaces lone surrogates with U+FFFD and says so", () => {
  const fx = gpt2Fixture();
  const r = tokenize(fx.tokenizer, "ab\ud800c\udc00");
  assertEquals(r.text, "ab\uFFFDc\uFFFD");
  assertStringIncludes(r.warnings.join("\n"), "replaced 2 lone UTF-16 surrogates (at index 2, 4) with U+FFFD");
  assertEquals(r.pieces.join(""), r.text);
  assertEquals(tokenize(fx.tokenizer, "ok 😀").warnings, []);
});

Deno.test("tokenize() keeps control characters as tokens of byte-level BPE and warns about them", () => {
  const fx = gpt2Fixture();
  const r = tokenize(fx.tokenizer, "a\u0000b\u001b");
  assertEquals(r.pieces.join(""), "a\u0000b\u001b");
  assertStringIncludes(r.warnings[0], "2 control characters (U+0000 at index 1, U+001B at index 3)");
});

Deno.test("bad input gets a typed error naming the problem", () => {
  const fx = gpt2Fixture();
  assertThrows(() => tokenize(fx.tokenizer, ""), RangeError, "text is empty");
  assertThrows(() => tokenize(fx.tokenizer, 42 as unknown as string), TypeError, "text must be a string");
  assertThrows(() => tokenize({} as PreTrainedTokenizer, "x"), TypeError, "expected a transformers.js tokenizer");
  assertThrows(() => tokenize(null as unknown as PreTrainedTokenizer, "x"), TypeError, "got null");
  assertThrows(
    () => tokenize(fx.tokenizer, "x", { addSpecialTokens: "yes" as unknown as boolean }),
    TypeError,
    "addSpecialTokens must be true or false",
  );
  assertThrows(() => detokenize(fx.tokenizer, [1, 99999]), RangeError, "ids[1] = 99999 is not a token id");
  assertThrows(() => detokenize(fx.tokenizer, [0.5]), RangeError, "ids[0] = 0.5");
  assertThrows(() => detokenize(fx.tokenizer, [-1]), RangeError, "ids[0] = -1");
  assertEquals(detokenize(fx.tokenizer, []), "");
});

Deno.test("offsets stay ordered and inside the text for random mixed-script strings in every family", () => {
  const alphabet = [
    "a",
    "Z",
    " ",
    "  ",
    "\n",
    "\t",
    "é",
    "e\u0301",
    "😀",
    "👩‍👩‍👧",
    "北",
    "ﬁ",
    "Ⅻ",
    "\u0007",
    "\u200b",
    "'",
    ",",
    "[UNK]",
    "<s>",
    "<|endoftext|>",
    "\ud800",
    "İ",
    "ß",
    "₂",
    "##",
    "▁",
    "hello",
    "the",
  ];
  const families: [string, PreTrainedTokenizer][] = [
    ["gpt2", gpt2Fixture().tokenizer],
    ["llama", llamaFixture(false).tokenizer],
    ["metaspace", llamaFixture(true).tokenizer],
  ];
  if (bertAvailable) families.push(["bert", bert().tokenizer]);
  const rng = createPrng(2025);
  for (let trial = 0; trial < 300; trial++) {
    let text = "";
    for (let n = 1 + rng.nextInt(10); n > 0; n--) text += alphabet[rng.nextInt(alphabet.length)];
    for (const [name, tokenizer] of families) {
      const r = tokenize(tokenizer, text);
      const where = `${name} ${JSON.stringify(text)}`;
      assertEquals(r.text.length, text.length, where);
      for (let i = 0; i < r.ids.length; i++) {
        const [s, e] = r.offsets[i];
        assert(0 <= s && s <= e && e <= r.text.length, `${where}: offsets[${i}] = [${s}, ${e}]`);
        if (i > 0 && !r.inserted[i]) assert(s >= r.offsets[i - 1][1], `${where}: offsets[${i}] overlaps`);
      }
      if (name === "gpt2") {
        assertOffsetsSliceToPieces(r);
        assertEquals(r.pieces.join(""), r.text, where);
      }
    }
  }
});

// ---------------------------------------------------------------------------
// Display

Deno.test("TokenView displays itself in Jupyter with HTML-escaped chips and ids on hover", () => {
  const fx = gpt2Fixture();
  const r = tokenize(fx.tokenizer, "<b>&'\" x\n");
  const view = tokenView(r, { title: "A <title>" });
  assertInstanceOf(view, TokenView);
  // What the Deno Jupyter kernel does with the last expression of a cell:
  const display = (view as unknown as Record<symbol, () => Record<string, string>>)[Symbol.for("Jupyter.display")];
  assertEquals(typeof display, "function");
  const bundle = display.call(view);
  assertEquals(bundle, view.mimeBundle());
  const html = bundle["text/html"];
  assert(!html.includes("<b>"), "raw text leaked into the HTML");
  assertStringIncludes(html, "&lt;");
  assertStringIncludes(html, "&amp;");
  assertStringIncludes(html, "A &lt;title&gt;");
  assertStringIncludes(html, `id ${r.ids[0]}`);
  assertStringIncludes(html, "↵"); // the newline is visible
  assertEquals((html.match(/<span title=/g) ?? []).length, r.ids.length);
  assertStringIncludes(bundle["text/plain"], `${r.ids.length} tokens, BOS added: no`);
  assertStringIncludes(bundle["text/plain"], `[${r.ids.join(", ")}]`);
});

Deno.test("TokenView marks inserted special tokens and mid-character tokens", () => {
  const fx = llamaFixture(false);
  const r = tokenize(fx.tokenizer, "é");
  const html = new TokenView(r, { showIds: true }).fragment();
  assertStringIncludes(html, "inserted by the tokenizer");
  assertStringIncludes(html, "adds no text by itself");
  assertStringIncludes(html, "BOS added: yes");
  assertStringIncludes(html, "&lt;s&gt;");
  assertStringIncludes(html, `>${r.ids[1]}</span>`);
});

Deno.test("TokenView.writeHtml() writes a standalone page", async () => {
  const fx = gpt2Fixture();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/tokens.html`;
    const view = tokenView(tokenize(fx.tokenizer, "the cat"));
    await view.writeHtml(path);
    const page = await Deno.readTextFile(path);
    assert(page.startsWith("<!DOCTYPE html>"));
    assertStringIncludes(page, '<meta charset="utf-8">');
    assertEquals(page, view.toHtml());
    assertEquals([...Deno.readDirSync(dir)].length, 1); // no temporary file left behind
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenize() warns when the text is longer than the model's context", async () => {
  const { loadModel } = await import("../lib/load.ts");
  const m = await loadModel(undefined, { tokenizerOnly: true });
  const context = (m.tokenizer as unknown as { model_max_length: number }).model_max_length;
  const long = tokenize(m, "the table and the chair ".repeat(context));
  assert(long.ids.length > context);
  assert(long.warnings.some((w) => w.includes(`context of ${context}`)), long.warnings.join("; "));
  const short = tokenize(m, "the table and the chair");
  assert(!short.warnings.some((w) => w.includes("context")));
});
