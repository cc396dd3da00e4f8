/**
 * Test fixtures made by the project's own code: seeded random weights for
 * either family, a byte-level tokenizer with no merges, and tiny exported
 * model folders in a temporary directory.
 */
import { exportModel } from "../lib/export.ts";
import { toTokenizerConfig, toTokenizerJson, trainBpe } from "../lib/bpe.ts";
import { expectedParamShapes as expectedParams } from "../lib/forward.ts";
import type { ArchConfig, Gpt2Config, LlamaConfig, ParamMap } from "../lib/types.ts";

/** A byte-level BPE tokenizer with the 256 byte tokens and `<|endoftext|>` (id 256), no merges. */
export function byteTokenizer(maxLength = 64): { json: unknown; config: object } {
  const model = trainBpe(["a"], { vocabSize: 257 });
  return { json: toTokenizerJson(model), config: toTokenizerConfig(model, { maxLength }) };
}

/** A seeded LCG in [-0.5, 0.5). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** Random parameters for a config: gains near 1, everything else uniform in ±scale/2. */
export function randomParams(config: ArchConfig, seed = 1, scale = 0.2): ParamMap {
  const rnd = lcg(seed);
  const m: ParamMap = new Map();
  for (const [name, shape] of expectedParams(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = name.endsWith("gain") ? 1 + 0.2 * rnd() : scale * rnd();
    m.set(name, { data: d, dims: shape });
  }
  return m;
}

/** A tiny GPT-2 config over the byte tokenizer. */
export const TINY_GPT2: Gpt2Config = {
  family: "gpt2",
  vocabSize: 257,
  maxPositions: 32,
  dModel: 32,
  nLayer: 2,
  nHead: 4,
  dMlp: 128,
  normEps: 1e-5,
};

/** A tiny LLaMA config with grouped-query attention and an untied head. */
export const TINY_LLAMA: LlamaConfig = {
  family: "llama",
  vocabSize: 257,
  maxPositions: 32,
  dModel: 32,
  nLayer: 2,
  nHead: 4,
  nKvHead: 2,
  dHead: 8,
  dMlp: 64,
  normEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
};

/** Exports a tiny model into a fresh temporary folder; returns the folder and its params. */
export async function tinyModelDir(
  config: ArchConfig = TINY_GPT2,
  options: { anonymize?: boolean; externalDataThreshold?: number; seed?: number } = {},
): Promise<{ dir: string; params: ParamMap; names: Record<string, string> }> {
  const dir = await Deno.makeTempDir({ prefix: `paramscope-${config.family}-` });
  const params = randomParams(config, options.seed ?? 1);
  const r = await exportModel(dir, {
    config,
    params,
    tokenizer: byteTokenizer(config.maxPositions),
    eosTokenId: 256,
    anonymize: options.anonymize,
    externalDataThreshold: options.externalDataThreshold,
  });
  return { dir, params, names: r.initializerNames };
}

/**
 * A small WordPiece (BERT-style) tokenizer's files: lower-cases, inserts [CLS] … [SEP], unknown words
 * become [UNK]. `words` must start with "[PAD]", "[UNK]", "[CLS]", "[SEP]" (ids 0–3).
 */
export function wordPieceTokenizerFiles(
  words: string[],
): { json: Record<string, unknown>; config: Record<string, unknown> } {
  const cls = { SpecialToken: { id: "[CLS]", type_id: 0 } }, sep = { SpecialToken: { id: "[SEP]", type_id: 0 } };
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [0, 1, 2, 3].map((id) => ({
      id,
      content: words[id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [cls, { Sequence: { id: "A", type_id: 0 } }, sep],
      pair: [cls, { Sequence: { id: "A", type_id: 0 } }, sep, { Sequence: { id: "B", type_id: 1 } }, sep],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [2], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [3], tokens: ["[SEP]"] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(words.map((w, i) => [w, i])),
    },
  };
  const config = {
    tokenizer_class: "BertTokenizer",
    do_lower_case: true,
    unk_token: "[UNK]",
    cls_token: "[CLS]",
    sep_token: "[SEP]",
    pad_token: "[PAD]",
    model_max_length: 64,
  };
  return { json, config };
}
