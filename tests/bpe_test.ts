import { assert, assertEquals, assertGreater, assertLess, assertThrows } from "@std/assert";
import { GPT2Tokenizer } from "@huggingface/transformers";
import {
  type BpeModel,
  decode,
  encode,
  fromTokenizerJson,
  GPT2_PATTERN,
  toTokenizerConfig,
  toTokenizerJson,
  trainBpe,
} from "../lib/bpe.ts";
import { loadBrown } from "../lib/corpus.ts";

// Loaded once; tests that need only a slice take a few documents.
const brown = await loadBrown();

/** transformers.js' own tokenizer built from our JSON objects (no `env`, no files). */
function hfTokenizer(model: BpeModel): GPT2Tokenizer {
  const json = JSON.parse(JSON.stringify(toTokenizerJson(model)));
  const config = JSON.parse(JSON.stringify(toTokenizerConfig(model, { maxLength: 512 })));
  return new GPT2Tokenizer(json, config);
}

const TRICKY = [
  "Hello, world! It's 3.14159 -- isn't it?",
  "中文分词测试：你好，世界。日本語のテキスト",
  "emoji 🦕🎉👩‍👩‍👧 and flags 🇳🇴, accents: naïve café Ångström",
  "def f(x):\n\treturn {'a': x ** 2}  # comment\n\n\n    indented\r\n",
  "   leading and trailing spaces   ",
  "<|endoftext|>first doc<|endoftext|><|endoftext|>second doc",
  "numbers 1234567890 and $1,000.00 and 50% and 1/2",
  "weird: \u0000\u0001\u007f\u00a0\u2028 zero\u200bwidth",
  "",
];

// GPT-2's bytes_to_unicode, written out independently of lib/bpe.ts (from the GPT-2 paper's released encoder.py).
function referenceByteChars(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const byId: string[] = [];
  bs.forEach((_, i) => (byId[i] = String.fromCharCode(cs[i])));
  return byId;
}

/** Naive BPE trainer: recounts every pair over every word before each merge. Same tie rule: smaller (left, right) ids. */
function naiveTrain(texts: string[], vocabSize: number, minFrequency: number): [string, string][] {
  const vocab = referenceByteChars();
  const byteChar = new Map<number, string>();
  // Byte b is shown as the char at the id where the table put it.
  const order: number[] = [];
  for (let b = 33; b <= 126; b++) order.push(b);
  for (let b = 161; b <= 172; b++) order.push(b);
  for (let b = 174; b <= 255; b++) order.push(b);
  for (let b = 0; b < 256; b++) if (!order.includes(b)) order.push(b);
  order.forEach((b, i) => byteChar.set(b, vocab[i]));
  const id = new Map(vocab.map((t, i) => [t, i]));
  const counts = new Map<string, number>();
  const pattern = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  for (const t of texts) for (const m of t.match(pattern) ?? []) counts.set(m, (counts.get(m) ?? 0) + 1);
  const words = [...counts].map(([w, f]) => ({
    syms: [...new TextEncoder().encode(w)].map((b) => byteChar.get(b)!),
    f,
  }));
  const merges: [string, string][] = [];
  while (vocab.length < vocabSize - 1) {
    const pairs = new Map<string, { l: string; r: string; c: number }>();
    for (const { syms, f } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = `${id.get(syms[i])},${id.get(syms[i + 1])}`;
        const p = pairs.get(k) ?? { l: syms[i], r: syms[i + 1], c: 0 };
        p.c += f;
        pairs.set(k, p);
      }
    }
    let best: { l: string; r: string; c: number } | undefined;
    for (const p of pairs.values()) {
      const better = best === undefined || p.c > best.c ||
        (p.c === best.c && (id.get(p.l)! < id.get(best.l)! ||
          (id.get(p.l) === id.get(best.l) && id.get(p.r)! < id.get(best.r)!)));
      if (better) best = p;
    }
    if (best === undefined || best.c < minFrequency) break;
    const merged = best.l + best.r;
    if (!id.has(merged)) {
      id.set(merged, vocab.length);
      vocab.push(merged);
    }
    merges.push([best.l, best.r]);
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length;) {
        if (i + 1 < w.syms.length && w.syms[i] === best.l && w.syms[i + 1] === best.r) {
          out.push(merged);
          i += 2;
        } else out.push(w.syms[i++]);
      }
      w.syms = out;
    }
  }
  return merges;
}

Deno.test("trainBpe() learns the same merges as a naive full-recount trainer", () => {
  const texts = brown.train.slice(0, 6);
  const model = trainBpe(texts, { vocabSize: 700, minFrequency: 2 });
  const reference = naiveTrain(texts, 700, 2);
  assertEquals(model.merges.length, reference.length);
  assertEquals(model.merges, reference);
});

Deno.test("trainBpe() lays out the vocabulary as GPT-2 does: bytes first, special token last", () => {
  const model = trainBpe(brown.train.slice(0, 3), { vocabSize: 400 });
  assertEquals(model.vocab.length, 400);
  assertEquals(model.vocab.slice(0, 256), referenceByteChars());
  assertEquals(model.vocab[399], "<|endoftext|>");
  // Published GPT-2 ids of single characters: "!" 0, '"' 1, "\t" 197, "\n" 198, " " 220.
  const base = trainBpe(["x"], { vocabSize: 257 });
  assertEquals(encode(base, '!"\t\n '), [0, 1, 197, 198, 220]);
});

Deno.test("trainBpe() is deterministic", () => {
  const texts = brown.train.slice(10, 14);
  assertEquals(trainBpe(texts, { vocabSize: 500 }).merges, trainBpe(texts, { vocabSize: 500 }).merges);
});

Deno.test("trainBpe() stops early when no pair reaches minFrequency, keeping the special token last", () => {
  const model = trainBpe(["abab abab"], { vocabSize: 1000, minFrequency: 2 });
  assertLess(model.vocab.length, 1000);
  assertEquals(model.vocab.at(-1), "<|endoftext|>");
  for (const [l, r] of model.merges) assert(model.vocab.includes(l + r));
});

Deno.test("trainBpe() never learns from special tokens inside the training text", () => {
  const model = trainBpe(["<|endoftext|><|endoftext|><|endoftext|>ab<|endoftext|>ab"], { vocabSize: 300 });
  assertEquals(model.merges, [["a", "b"]]);
});

Deno.test("encode() gives exactly transformers.js' ids on held-out Brown text", () => {
  const model = trainBpe(brown.train.slice(0, 40), { vocabSize: 2048 });
  const tok = hfTokenizer(model);
  const heldOut = brown.valid.slice(0, 4);
  let words = 0;
  for (const doc of heldOut) {
    words += doc.split(/\s+/).length;
    assertEquals(encode(model, doc), tok.encode(doc));
  }
  assertGreater(words, 4000);
  const joined = heldOut.join("<|endoftext|>");
  assertEquals(encode(model, joined), tok.encode(joined));
});

Deno.test("encode() gives exactly transformers.js' ids on Chinese, emoji, code and whitespace", () => {
  const model = trainBpe(brown.train.slice(0, 10), { vocabSize: 1024 });
  const tok = hfTokenizer(model);
  for (const s of TRICKY) assertEquals(encode(model, s), tok.encode(s), JSON.stringify(s));
});

Deno.test("tokenizer.json round-trips arbitrary text through transformers.js (byte-level: no unknowns)", () => {
  const model = trainBpe(brown.train.slice(0, 10), { vocabSize: 1024 });
  const tok = hfTokenizer(model);
  for (const s of TRICKY) {
    const ids = tok.encode(s);
    assertEquals(decode(model, ids), s);
    if (ids.length > 0) assertEquals(tok.decode(ids), s);
  }
  assertEquals(tok.eos_token_id, 1023);
  assertEquals(tok.model_max_length, 512);
  assertEquals(tok.add_bos_token, false);
});

Deno.test("fromTokenizerJson() reads back a model that encodes identically", () => {
  const model = trainBpe(brown.train.slice(0, 5), { vocabSize: 600 });
  const back = fromTokenizerJson(JSON.parse(JSON.stringify(toTokenizerJson(model))));
  assertEquals(back.vocab, model.vocab);
  assertEquals(back.merges, model.merges);
  const text = brown.valid[0].slice(0, 3000) + TRICKY.join("\n");
  assertEquals(encode(back, text), encode(model, text));
});

Deno.test("encode() splits text into GPT-2 pre-tokens and never merges across them", () => {
  const model = trainBpe(brown.train.slice(0, 5), { vocabSize: 800 });
  const text = brown.valid[1].slice(0, 2000);
  const pieces = text.match(GPT2_PATTERN) ?? [];
  assertEquals(pieces.join(""), text);
  assertEquals(encode(model, text), pieces.flatMap((p) => encode(model, p)));
});

Deno.test("a 12,288-token vocabulary trained on Brown makes common English words single tokens with a leading space", () => {
  const big = trainBpe(brown.train, { vocabSize: 12288 });
  const words = [" table", " chair", " king", " queen", " moon", " water", " house", " Monday", " red"];
  for (const w of words) assertEquals(encode(big, w).length, 1, `${JSON.stringify(w)} is not a single token`);
  // At 4,096 only the more frequent ones are: " king" (27 uses in the train split), " queen" (18), " moon" (47)
  // and " Monday" (62) rank between 1,700th and 5,200th among Brown's words, beyond what 3,839 merges reach.
  const small = trainBpe(brown.train, { vocabSize: 4096 });
  for (const w of [" table", " chair", " water", " house", " red"]) {
    assertEquals(encode(small, w).length, 1, `${JSON.stringify(w)} is not a single token at 4096`);
  }
  // Smaller vocabularies are prefixes of larger ones: training is greedy and deterministic.
  assertEquals(big.vocab.slice(0, 4095), small.vocab.slice(0, 4095));
});

Deno.test("bad arguments raise typed errors that name the value", () => {
  assertThrows(() => trainBpe(["abc"], { vocabSize: 100 }), RangeError, "vocabSize");
  assertThrows(() => trainBpe(["abc"], { vocabSize: 300.5 }), RangeError, "300.5");
  assertThrows(() => trainBpe(["abc"], { minFrequency: 0 }), RangeError, "minFrequency");
  assertThrows(() => trainBpe("abc" as unknown as string[]), TypeError, "texts");
  assertThrows(() => trainBpe([""]), RangeError, "no text");
  assertThrows(() => trainBpe(["abc"], { specialTokens: [""] }), TypeError, "specialTokens");
  assertThrows(() => trainBpe(["abc"], { specialTokens: ["<s>", "<s>"] }), RangeError, "repeat");
  const model = trainBpe(["abc abc"], { vocabSize: 260 });
  assertThrows(() => decode(model, [260]), RangeError, "260");
  assertThrows(() => encode(model, 5 as unknown as string), TypeError, "text");
  assertThrows(() => toTokenizerConfig(model, { maxLength: 0 }), RangeError, "maxLength");
  assertThrows(() => fromTokenizerJson({ model: { type: "WordPiece" } }), TypeError, "BPE");
});
