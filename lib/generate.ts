/**
 * The model-dependent half of sampling (`sample.ts` stays pure): the next-token
 * distribution of a text, and text generation as an incremental loop over a KV
 * cache that streams tokens as an async iterator.
 *
 * Both run on either engine of `engine.ts`: `"onnx"` (ONNX Runtime, the
 * default) or `"reference"` (the readable TypeScript forward pass). Sampling is
 * `chooseToken` from `sample.ts` (repetition penalty → temperature → top-k →
 * top-p → min-p → a draw with a seeded PRNG), so the same seed always gives the
 * same tokens, and temperature 0 is exactly greedy decoding: the same tokens as
 * transformers.js's `generate({ do_sample: false })` on the same model.
 *
 * Whether the tokenizer added a BOS token is always reported (`addedBos`): it
 * changes every number downstream.
 *
 * @example
 * ```ts ignore
 * import { loadModel } from "./load.ts";
 * import { generate, nextToken } from "./generate.ts";
 * const model = await loadModel();
 * const next = await nextToken(model, "The cat sat on the", { topK: 5 });
 * console.log(next.addedBos, next.top.map((t) => `${JSON.stringify(t.text)} ${t.prob.toFixed(3)}`));
 * for await (const t of generate(model, "Once upon a time", { temperature: 0.7, seed: 1, maxTokens: 20 })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(t.text));
 * }
 * ```
 *
 * @module
 */
import { createEngine, type Engine, ENGINE_NAMES, type EngineName, type EngineRunResult } from "./engine.ts";
import type { Model } from "./load.ts";
import { createPrng, type Prng } from "./prng.ts";
import { chooseToken, entropy, samplingDistribution, softmax, type TokenChoice } from "./sample.ts";
import { tokenize } from "./tokenize.ts";
import { topIndices } from "./_rank.ts";

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/** The slice of a transformers.js tokenizer this module uses. */
interface DecodingTokenizer {
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  get_vocab(): Map<string, number> | Record<string, number>;
}

const vocabCache = new WeakMap<object, string[]>();

/** id → vocabulary string (`"Ġthe"`, `"▁the"`, `"<0xE2>"`), built once per tokenizer. */
function idToToken(tokenizer: DecodingTokenizer): string[] {
  let table = vocabCache.get(tokenizer);
  if (!table) {
    table = [];
    const vocab = tokenizer.get_vocab();
    const entries = vocab instanceof Map ? vocab.entries() : Object.entries(vocab);
    for (const [token, id] of entries) table[id] = token;
    vocabCache.set(tokenizer, table);
  }
  return table;
}

function tokenizerOf(model: Model): DecodingTokenizer {
  if (model === null || typeof model !== "object" || !model.tokenizer) {
    throw new TypeError(`model must be the Model returned by loadModel(), got ${String(model)}`);
  }
  return model.tokenizer as unknown as DecodingTokenizer;
}

function resolveEngine(model: Model, engine: EngineName | Engine | undefined): Promise<Engine> {
  if (engine !== undefined && typeof engine === "object") return Promise.resolve(engine);
  return createEngine(model, { engine: engine ?? "onnx" });
}

function checkEngine(engine: unknown): void {
  if (engine === undefined) return;
  if (typeof engine === "object" && engine !== null && typeof (engine as Engine).run === "function") return;
  if (!ENGINE_NAMES.includes(engine as EngineName)) {
    throw new RangeError(
      `engine is ${JSON.stringify(engine)}; expected ${ENGINE_NAMES.map((n) => `"${n}"`).join(" or ")} or an Engine`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// nextToken
// ---------------------------------------------------------------------------------------------

/**
 * Options of {@linkcode nextToken}.
 *
 * @example
 * ```ts
 * import type { NextTokenOptions } from "./generate.ts";
 * const o: NextTokenOptions = { topK: 5, engine: "reference" };
 * console.log(o.topK);
 * ```
 */
export interface NextTokenOptions {
  /** How many of the most likely next tokens to list. Integer `>= 1`; default `10` (capped at the vocabulary). */
  topK?: number;
  /** `"onnx"` (default), `"reference"`, or an `Engine` from `createEngine()`. */
  engine?: EngineName | Engine;
}

/**
 * One candidate next token.
 *
 * @example
 * ```ts
 * import type { TopToken } from "./generate.ts";
 * const t: TopToken = { id: 262, token: "Ġthe", text: " the", logit: 7.1, prob: 0.21 };
 * console.log(t.text);
 * ```
 */
export interface TopToken {
  /** Token id. */
  id: number;
  /** Vocabulary string (`"Ġthe"`). */
  token: string;
  /** Decoded text of the token alone (`" the"`; `"\uFFFD"` for a byte that ends mid-character). */
  text: string;
  /** Raw logit. */
  logit: number;
  /** `softmax(logits)[id]`, temperature 1, nothing filtered. */
  prob: number;
}

/**
 * What {@linkcode nextToken} returns.
 *
 * @example
 * ```ts
 * import type { NextTokenResult } from "./generate.ts";
 * function best(r: NextTokenResult): string { return `${r.top[0].text} (${(100 * r.top[0].prob).toFixed(1)}%)`; }
 * console.log(typeof best);
 * ```
 */
export interface NextTokenResult {
  /** The input text. */
  text: string;
  /** Input ids, as the model received them (special tokens included). */
  ids: number[];
  /** Vocabulary string of each input id. */
  tokens: string[];
  /** Whether the tokenizer put a BOS (or other special) token in front of the text. */
  addedBos: boolean;
  /** The `topK` most likely next tokens, most likely first (ties: lower id first). */
  top: TopToken[];
  /** Entropy of the next-token distribution, in nats (natural log) and bits (log₂). */
  entropy: { nats: number; bits: number };
  /** Next-token logits `[vocab]` at the last position. */
  logits: Float32Array;
  /** The engine that computed them. */
  engine: EngineName;
}

/**
 * The model's next-token distribution after `text`: the input tokens (and whether a BOS was
 * added), the most likely next tokens with logits and probabilities, and the entropy.
 *
 * @param model a model from `loadModel()`
 * @param text non-empty text; tokenized as for a forward pass (special tokens added, as transformers.js does)
 * @param options `topK` (default 10) and `engine` (default `"onnx"`)
 * @returns ids, tokens, `addedBos`, top tokens, entropy and the raw logits
 * @throws {RangeError} on empty text, text longer than the context, a bad `topK` or engine name
 * @example
 * ```ts ignore
 * import { loadModel } from "./load.ts";
 * import { nextToken } from "./generate.ts";
 * const r = await nextToken(await loadModel(), "The cat", { topK: 3 });
 * console.log(r.addedBos, r.entropy.bits.toFixed(2), r.top.map((t) => t.text));
 * ```
 */
export async function nextToken(model: Model, text: string, options: NextTokenOptions = {}): Promise<NextTokenResult> {
  const tokenizer = tokenizerOf(model);
  const k = options.topK ?? 10;
  if (typeof k !== "number" || !Number.isInteger(k) || k < 1) {
    throw new RangeError(`topK must be an integer >= 1, got ${String(k)}`);
  }
  checkEngine(options.engine);
  const tok = tokenize(model, text);
  const engine = await resolveEngine(model, options.engine);
  if (tok.ids.length > engine.arch.maxPositions) {
    throw new RangeError(
      `the text is ${tok.ids.length} tokens but the context holds ${engine.arch.maxPositions}; shorten the text`,
    );
  }
  const { logits } = await engine.run(tok.ids, { logits: "last" });
  const probs = softmax(logits.data);
  const vocab = idToToken(tokenizer);
  const top = topIndices(logits.data, Math.min(k, logits.data.length)).map((id): TopToken => ({
    id,
    token: vocab[id] ?? "",
    text: tokenizer.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
    logit: logits.data[id],
    prob: probs[id],
  }));
  return {
    text: tok.text,
    ids: tok.ids,
    tokens: tok.tokens,
    addedBos: tok.addedBos,
    top,
    entropy: { nats: entropy(logits.data), bits: entropy(logits.data, { unit: "bits" }) },
    logits: logits.data,
    engine: engine.name,
  };
}

// ---------------------------------------------------------------------------------------------
// Incremental detokenization
// ---------------------------------------------------------------------------------------------

/**
 * Options of {@linkcode createTextStream}.
 *
 * @example
 * ```ts
 * import type { TextStreamOptions } from "./generate.ts";
 * const o: TextStreamOptions = { context: [464, 3797] };
 * console.log(o.context?.length);
 * ```
 */
export interface TextStreamOptions {
  /**
   * Ids that precede the streamed ones (the prompt). Only the last one is used, as decoding
   * context, so that a tokenizer that strips the leading space of a sequence's first token
   * (SentencePiece) still spells the first streamed token right. Default: none.
   */
  context?: readonly number[];
}

/**
 * Turns ids into text one id at a time.
 *
 * @example
 * ```ts
 * import type { TextStream } from "./generate.ts";
 * function all(s: TextStream, ids: number[]): string { return ids.map((id) => s.push(id)).join("") + s.flush(); }
 * console.log(typeof all);
 * ```
 */
export interface TextStream {
  /**
   * Adds one id and returns the text it completes: `""` while a character is still incomplete
   * (a multi-byte character split across tokens), then the whole character at once.
   */
  push(id: number): string;
  /** Returns whatever is still held back (an incomplete character decodes as U+FFFD). */
  flush(): string;
}

/**
 * An incremental decoder: pushing ids one at a time yields text that concatenates to the
 * decoding of all of them, and never shows half a character. It decodes a short window of ids
 * and holds text back while the window ends in U+FFFD (the replacement character a byte-level
 * tokenizer produces for an incomplete UTF-8 sequence), as Hugging Face's streamers do.
 *
 * @param model a model from `loadModel()`, or a transformers.js tokenizer
 * @param options `context`: the prompt ids (see {@linkcode TextStreamOptions})
 * @returns the stream
 * @example
 * ```ts ignore
 * import { loadModel } from "./load.ts";
 * import { createTextStream } from "./generate.ts";
 * const model = await loadModel();
 * const ids = model.tokenizer.encode("naïve café 日本");
 * const stream = createTextStream(model);
 * console.log(ids.map((id) => stream.push(id)).join("") + stream.flush()); // "naïve café 日本"
 * ```
 */
export function createTextStream(
  model: Model | Model["tokenizer"],
  options: TextStreamOptions = {},
): TextStream {
  const tokenizer = ("tokenizer" in model ? model.tokenizer : model) as unknown as DecodingTokenizer;
  if (!tokenizer || typeof tokenizer.decode !== "function") {
    throw new TypeError("createTextStream needs a Model from loadModel() or a transformers.js tokenizer");
  }
  const decode = (ids: number[]): string =>
    ids.length === 0 ? "" : tokenizer.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  const ids: number[] = [];
  // Use the last context id as a prefix only if it decodes on its own to complete text.
  const last = options.context?.length ? options.context[options.context.length - 1] : undefined;
  if (last !== undefined) {
    const t = decode([last]);
    if (t.length > 0 && !t.endsWith("\uFFFD")) ids.push(last);
  }
  // ids[prefix:read] is decoded text already emitted; ids[read:] is pending.
  let prefix = 0, read = ids.length;
  return {
    push(id: number): string {
      ids.push(id);
      const before = decode(ids.slice(prefix, read));
      const now = decode(ids.slice(prefix));
      if (now.length > before.length && !now.endsWith("\uFFFD") && now.startsWith(before)) {
        prefix = read;
        read = ids.length;
        return now.slice(before.length);
      }
      return "";
    },
    flush(): string {
      if (read === ids.length) return "";
      const before = decode(ids.slice(prefix, read));
      const now = decode(ids.slice(prefix));
      prefix = read = ids.length;
      return now.startsWith(before) ? now.slice(before.length) : now;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// generate
// ---------------------------------------------------------------------------------------------

/** Why generation ended: an EOS token, `maxTokens`, a `stop` string, or a full context window. */
export type FinishReason = "eos" | "length" | "stop" | "context";

/**
 * Options of {@linkcode generate}. Sampling options are those of `chooseToken` in `sample.ts`
 * and are validated the same way.
 *
 * @example
 * ```ts
 * import type { GenerateOptions } from "./generate.ts";
 * const o: GenerateOptions = { temperature: 0.7, topP: 0.9, seed: 42, maxTokens: 50, stop: ["\n\n"] };
 * console.log(o.seed);
 * ```
 */
export interface GenerateOptions {
  /** Most tokens to generate (the EOS token included). Integer `>= 0`; default `32`. */
  maxTokens?: number;
  /** Divides the logits; `0` is greedy (argmax). Finite, `>= 0`; default `1`. */
  temperature?: number;
  /** Keep the `topK` most likely tokens. Integer `>= 1`; default: off. */
  topK?: number;
  /** Nucleus sampling mass, in `(0, 1]`; default `1` (off). */
  topP?: number;
  /** Keep tokens at least `minP` times as likely as the best, in `[0, 1]`; default `0` (off). */
  minP?: number;
  /** HF/CTRL repetition penalty over the prompt and generated ids. Finite, `> 0`; default `1` (off). */
  repetitionPenalty?: number;
  /** Seed of the sampling PRNG (`createPrng(seed)`); a safe integer, default `0`. Ignored at temperature 0. */
  seed?: number;
  /** A PRNG to draw from instead of `createPrng(seed)` (it advances; pass `prng.clone()` to keep yours). */
  prng?: Prng;
  /**
   * Stop when the generated text contains one of these strings. The text is cut before the stop
   * string (which is never streamed); the ids keep the token that completed it. Default: none.
   */
  stop?: string | readonly string[];
  /**
   * Token ids that end generation (the id is kept as the last generated id, streamed with text
   * `""`). Default: the model's `eos_token_id` (generation config, else config.json); `[]` never stops on EOS.
   */
  eosTokenIds?: readonly number[];
  /** `"onnx"` (default), `"reference"`, or an `Engine` from `createEngine()`. */
  engine?: EngineName | Engine;
  /**
   * What to do when the prompt does not leave room for `maxTokens` in the context window:
   * `"error"` (default) throws a `RangeError` if the prompt alone fills the context, and otherwise
   * generates until the context is full (`finishReason: "context"`); `"truncate"` drops prompt
   * tokens from the left (after a BOS, which is kept) so that `maxTokens` fit, at least one prompt
   * token staying, and says so in `warnings`.
   */
  overflow?: "error" | "truncate";
}

/**
 * One streamed token.
 *
 * @example
 * ```ts
 * import type { GeneratedToken } from "./generate.ts";
 * const t: GeneratedToken = { index: 0, id: 262, token: "Ġthe", text: " the", prob: 0.4, modelProb: 0.3, logprob: -1.2 };
 * console.log(t.text);
 * ```
 */
export interface GeneratedToken {
  /** 0 for the first generated token. */
  index: number;
  /** Token id. */
  id: number;
  /** Vocabulary string of the id. */
  token: string;
  /**
   * Text that this token makes final: `""` while a multi-byte character is incomplete or the text
   * might be the start of a stop string, then everything held back at once. Joining every
   * `text` gives {@linkcode GenerateResult.text}.
   */
  text: string;
  /** Probability of the id in the distribution it was drawn from (after the filters; 1 when greedy). */
  prob: number;
  /** Probability of the id under the model's untouched distribution (temperature 1, no filter). */
  modelProb: number;
  /** Natural log of `modelProb`. */
  logprob: number;
  /** Set on the last token only: why generation ended there. */
  finishReason?: FinishReason;
}

/**
 * What a finished {@linkcode generate} returns (the iterator's return value) and what
 * {@linkcode generateText} resolves to.
 *
 * @example
 * ```ts
 * import type { GenerateResult } from "./generate.ts";
 * function show(r: GenerateResult): string { return `${r.ids.length} tokens, ${r.finishReason}: ${r.text}`; }
 * console.log(typeof show);
 * ```
 */
export interface GenerateResult {
  /** Prompt ids the model saw (after any truncation), special tokens included. */
  promptIds: number[];
  /** Whether the tokenizer put a BOS token in front of the prompt. */
  addedBos: boolean;
  /** How many prompt tokens were dropped from the left (`overflow: "truncate"`). */
  truncated: number;
  /** Anything the caller should know (truncation, a tokenizer warning). */
  warnings: string[];
  /** Generated ids only (the EOS id included when generation stopped on it). */
  ids: number[];
  /** Generated text (the stop string and anything after it cut; EOS not spelled out). */
  text: string;
  /** Every streamed token. */
  tokens: GeneratedToken[];
  /** Why generation ended. */
  finishReason: FinishReason;
  /** The engine that ran. */
  engine: EngineName;
}

interface Plan {
  promptIds: number[];
  addedBos: boolean;
  truncated: number;
  warnings: string[];
  maxTokens: number;
  stops: string[];
  eos: Set<number>;
  sample: {
    temperature: number;
    topK?: number;
    topP?: number;
    minP?: number;
    repetitionPenalty?: number;
  };
  prng: Prng | undefined;
  /** Temperature 0 without a repetition penalty: the argmax of the raw logits, see {@linkcode greedyChoice}. */
  plainGreedy: boolean;
}

/** eos ids from the generation config transformers.js loaded, else config.json. */
function defaultEos(model: Model): number[] {
  const gen = (model.model as unknown as { generation_config?: { eos_token_id?: unknown } } | null)
    ?.generation_config?.eos_token_id;
  const raw = gen ?? model.config.eos_token_id;
  const list = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  return list.filter((x): x is number => Number.isInteger(x));
}

/** Validates everything and tokenizes, synchronously, so a bad call throws before any work. */
function plan(model: Model, prompt: string | readonly number[], options: GenerateOptions): Plan {
  tokenizerOf(model);
  if (!model.arch) {
    throw new TypeError(
      `model ${model.id} (model_type ${JSON.stringify(model.config.model_type)}) is not a GPT-2 or LLaMA-family ` +
        "decoder; generate() needs one",
    );
  }
  const o = options ?? {};
  const maxTokens = o.maxTokens ?? 32;
  if (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new RangeError(`maxTokens must be an integer >= 0, got ${String(maxTokens)}`);
  }
  const sample = {
    temperature: o.temperature ?? 1,
    topK: o.topK,
    topP: o.topP,
    minP: o.minP,
    repetitionPenalty: o.repetitionPenalty,
  };
  // sample.ts validates every sampling option (RangeError naming the value and the fix).
  samplingDistribution(new Float32Array(1), sample);
  let prng: Prng | undefined;
  if (o.prng !== undefined) {
    if (o.prng === null || typeof o.prng.next !== "function") {
      throw new TypeError("prng must be a Prng from createPrng(seed)");
    }
    prng = o.prng;
  } else prng = createPrng(o.seed ?? 0);
  const stops = o.stop === undefined ? [] : typeof o.stop === "string" ? [o.stop] : [...o.stop];
  stops.forEach((s, i) => {
    if (typeof s !== "string" || s.length === 0) {
      throw new RangeError(`stop[${i}] is ${JSON.stringify(s)}; stop strings must be non-empty strings`);
    }
  });
  const vocab = model.arch.vocabSize;
  const eosList = o.eosTokenIds ?? defaultEos(model);
  if (!Array.isArray(eosList)) throw new TypeError(`eosTokenIds must be an array of token ids`);
  eosList.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new RangeError(`eosTokenIds[${i}] is ${String(id)}, not a token id in [0, ${vocab})`);
    }
  });
  checkEngine(o.engine);
  const overflow = o.overflow ?? "error";
  if (overflow !== "error" && overflow !== "truncate") {
    throw new RangeError(`overflow is ${JSON.stringify(overflow)}; expected "error" or "truncate"`);
  }

  let ids: number[];
  let addedBos = false;
  const warnings: string[] = [];
  if (typeof prompt === "string") {
    const tok = tokenize(model, prompt);
    ids = tok.ids;
    addedBos = tok.addedBos;
    warnings.push(...tok.warnings);
  } else if (Array.isArray(prompt)) {
    if (prompt.length === 0) throw new RangeError("prompt is empty; pass text or at least one token id");
    prompt.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new RangeError(`prompt[${i}] is ${String(id)}, not a token id in [0, ${vocab})`);
      }
    });
    ids = [...prompt];
  } else {
    throw new TypeError(`prompt must be a string or an array of token ids, got ${typeof prompt}`);
  }

  const context = model.arch.maxPositions;
  let truncated = 0;
  if (overflow === "truncate" && ids.length + maxTokens > context) {
    const keep = Math.min(ids.length, Math.max(1, context - maxTokens));
    truncated = ids.length - keep;
    if (truncated > 0) {
      const head = addedBos && keep > 1 ? ids.slice(0, 1) : [];
      ids = [...head, ...ids.slice(ids.length - (keep - head.length))];
      warnings.push(
        `the prompt was truncated from ${ids.length + truncated} to ${ids.length} tokens ` +
          `(${truncated} dropped from the left${head.length ? ", BOS kept" : ""}) to leave room for ` +
          `${maxTokens} new tokens in the context of ${context}`,
      );
    }
  } else if (overflow === "error" && ids.length >= context) {
    throw new RangeError(
      `the prompt is ${ids.length} tokens but the context holds ${context}, leaving no room to generate; ` +
        `shorten it to at most ${context - 1} tokens or pass overflow: "truncate"`,
    );
  }
  return {
    promptIds: ids,
    addedBos,
    truncated,
    warnings,
    maxTokens,
    stops,
    eos: new Set(eosList),
    sample,
    prng: sample.temperature === 0 ? undefined : prng,
    plainGreedy: sample.temperature === 0 && (sample.repetitionPenalty ?? 1) === 1,
  };
}

/**
 * Where the earliest stop string starts in `text`, or -1. Stop strings can only start at or after
 * `emitted`: the text before it never ended in a prefix of one (see {@linkcode heldForStop}).
 */
function firstStop(text: string, stops: readonly string[], emitted: number): number {
  let cut = -1;
  for (const s of stops) {
    const at = text.indexOf(s, emitted);
    if (at >= 0 && (cut < 0 || at < cut)) cut = at;
  }
  return cut;
}

/** `2^-k` for `k = 0..255`: the scale step of {@linkcode greedyChoice}'s exponential. */
const POW2_NEG = Float64Array.from({ length: 256 }, (_, k) => 2 ** -k);

/**
 * What `chooseToken(logits, { temperature: 0 })` returns (the argmax, lowest id on ties, with
 * `prob` 1 and the model's log-probability), computed in two passes over the float32 logits
 * instead of sample.ts's general float64 pipeline: greedy decoding runs it once per token, where
 * the pipeline would cost more than the model's own step on a small model.
 *
 * `log Σ exp(x - max)`: with `t = (max - x)·log₂e` and `k = round(t)`, `exp(x - max) = 2^-k · e^f`
 * where `f = (k - t)·ln 2`, `|f| <= ln2 / 2`; `2^-k` comes from a table and `e^f` from a degree-7
 * Taylor polynomial (relative error < 1e-8), about 3× faster than `Math.exp`. Terms below `2^-255`
 * are dropped. The `logprob` agrees with `chooseToken`'s to 1e-8 (checked in tests/generate_test.ts
 * to 1e-5, the engines' own logit tolerance).
 */
function greedyChoice(x: Float32Array): TokenChoice {
  let id = 0, max = x[0];
  for (let i = 1; i < x.length; i++) {
    if (x[i] > max) {
      max = x[i];
      id = i;
    }
  }
  // NaN or no finite logit: let sample.ts name the problem.
  if (!Number.isFinite(max)) return chooseToken(x, { temperature: 0 });
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    const t = (max - x[i]) * Math.LOG2E; // >= 0
    if (!(t < 255)) continue; // also skips -Infinity (masked) logits
    const k = (t + 0.5) | 0, f = (k - t) * Math.LN2; // k = round(t); 2^(k - t) = e^f, |f| <= ln2 / 2
    const e = 1 + f * (1 + f * (1 / 2 + f * (1 / 6 + f * (1 / 24 + f * (1 / 120 + f * (1 / 720 + f / 5040))))));
    sum += e * POW2_NEG[k];
  }
  const logprob = -Math.log(sum);
  return { id, prob: 1, modelProb: Math.exp(logprob), logprob, keptCount: 1, greedy: true };
}

/** Length of the longest suffix of `text` that is a proper prefix of a stop string. */
function heldForStop(text: string, stops: readonly string[]): number {
  let hold = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > hold; n--) {
      if (text.endsWith(s.slice(0, n))) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

/**
 * Generates text after `prompt`, one token at a time over a KV cache, streaming each token as it
 * is chosen. Stops on an EOS token, after `maxTokens`, when the text contains a `stop` string, or
 * when the context window is full. Every option is validated before anything runs: this function
 * throws synchronously, and the returned iterator does the work.
 *
 * Iterate it with `for await` to get the tokens; its return value (the `value` of the final
 * `next()` result) is the {@linkcode GenerateResult}, which {@linkcode generateText} collects.
 *
 * @param model a GPT-2 or LLaMA-family model from `loadModel()`
 * @param prompt text (tokenized with special tokens, as transformers.js does) or prompt ids
 * @param options sampling, stopping, engine and overflow settings; see {@linkcode GenerateOptions}
 * @returns an async iterator of {@linkcode GeneratedToken}s that returns the {@linkcode GenerateResult}
 * @throws {RangeError} on a bad option (temperature, topK, topP, minP, repetitionPenalty, seed, maxTokens,
 *   stop, eosTokenIds, engine, overflow) or a prompt that fills the context (with `overflow: "error"`)
 * @example
 * ```ts ignore
 * import { loadModel } from "./load.ts";
 * import { generate } from "./generate.ts";
 * const model = await loadModel();
 * for await (const t of generate(model, "The jury said", { temperature: 0, maxTokens: 10, stop: "." })) {
 *   console.log(t.id, JSON.stringify(t.text), t.finishReason ?? "");
 * }
 * ```
 */
export function generate(
  model: Model,
  prompt: string | readonly number[],
  options: GenerateOptions = {},
): AsyncGenerator<GeneratedToken, GenerateResult, void> {
  const p = plan(model, prompt, options);
  return run(model, p, options.engine);
}

async function* run(
  model: Model,
  p: Plan,
  engineOption: EngineName | Engine | undefined,
): AsyncGenerator<GeneratedToken, GenerateResult, void> {
  const engine = await resolveEngine(model, engineOption);
  const tokenizer = tokenizerOf(model);
  const vocab = idToToken(tokenizer);
  const context = engine.arch.maxPositions;
  const stream = createTextStream(model, { context: p.promptIds });
  const previous = [...p.promptIds];
  const ids: number[] = [];
  const tokens: GeneratedToken[] = [];
  let decoded = ""; // every generated character so far (before any stop cut)
  let emitted = 0; // how much of `decoded` has been streamed
  let finishReason: FinishReason = "length";

  let step: EngineRunResult | undefined;
  for (let index = 0; index < p.maxTokens; index++) {
    // Feed what the model has not seen yet: the prompt first, then the last chosen id.
    step = step === undefined
      ? await engine.run(p.promptIds, { logits: "last" })
      : await engine.run([ids[ids.length - 1]], { past: step.present, logits: "last" });
    const choice = p.plainGreedy
      ? greedyChoice(step.logits.data)
      : chooseToken(step.logits.data, { ...p.sample, previousIds: previous, prng: p.prng });
    const id = choice.id;
    ids.push(id);
    previous.push(id);
    const item: GeneratedToken = {
      index,
      id,
      token: vocab[id] ?? "",
      text: "",
      prob: choice.prob,
      modelProb: choice.modelProb,
      logprob: choice.logprob,
    };
    let finished: FinishReason | undefined;
    if (p.eos.has(id)) finished = "eos";
    else {
      decoded += stream.push(id);
      const cut = firstStop(decoded, p.stops, emitted);
      if (cut >= 0) {
        decoded = decoded.slice(0, cut);
        finished = "stop";
      } else if (index === p.maxTokens - 1) finished = "length";
      else if (previous.length >= context) finished = "context";
    }
    if (finished && finished !== "stop") {
      decoded += stream.flush();
      // A stop string can still complete in the flushed text.
      const cut = firstStop(decoded, p.stops, emitted);
      if (cut >= 0) {
        decoded = decoded.slice(0, cut);
        finished = "stop";
      }
    }
    const safe = finished ? decoded.length : decoded.length - heldForStop(decoded, p.stops);
    if (safe > emitted) {
      item.text = decoded.slice(emitted, safe);
      emitted = safe;
    }
    if (finished) {
      item.finishReason = finished;
      finishReason = finished;
    }
    tokens.push(item);
    yield item;
    if (finished) break;
  }
  return {
    promptIds: p.promptIds,
    addedBos: p.addedBos,
    truncated: p.truncated,
    warnings: p.warnings,
    ids,
    text: decoded.slice(0, emitted),
    tokens,
    finishReason,
    engine: engine.name,
  };
}

/**
 * Runs {@linkcode generate} to the end and returns its result.
 *
 * @param model a GPT-2 or LLaMA-family model from `loadModel()`
 * @param prompt text or prompt ids
 * @param options as {@linkcode generate}
 * @returns prompt and generated ids, the text, every token and why it stopped
 * @throws {RangeError} as {@linkcode generate}
 * @example
 * ```ts ignore
 * import { loadModel } from "./load.ts";
 * import { generateText } from "./generate.ts";
 * const r = await generateText(await loadModel(), "Once upon a time", { temperature: 0, maxTokens: 16 });
 * console.log(r.addedBos, r.ids, r.finishReason, r.text);
 * ```
 */
export async function generateText(
  model: Model,
  prompt: string | readonly number[],
  options: GenerateOptions = {},
): Promise<GenerateResult> {
  const it = generate(model, prompt, options);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}
