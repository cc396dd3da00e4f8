/**
 * Byte-level BPE tokenizer training (GPT-2 style) and a fast encoder that gives
 * the same ids as transformers.js on the `tokenizer.json` written here.
 *
 * Layout of the vocabulary (the GPT-2 layout):
 * - ids `0..255`: the 256 bytes, as the printable characters of GPT-2's `bytes_to_unicode` table, in that table's
 *   order (`"!"` is 0, `"Ġ"` (the space byte) is 220), so any text encodes without unknown tokens;
 * - then one id per new token, in the order the merges created them;
 * - special tokens last (`<|endoftext|>` is the last id, as in GPT-2).
 *
 * Text is pre-tokenized with GPT-2's regex; merges never cross a pre-token, and special tokens are cut out of the
 * text before pre-tokenization (leftmost-longest match, as transformers.js does), so `"<|endoftext|>"` in a text is
 * always the special id.
 *
 * @module
 */

/**
 * GPT-2's pre-tokenization regex, exactly as transformers.js' ByteLevel pre-tokenizer uses it.
 *
 * @example
 * ```ts
 * import { GPT2_PATTERN } from "@paramscope/kit/bpe";
 * console.log("It's 42 degrees!".match(GPT2_PATTERN)); // ["It", "'s", " 42", " degrees", "!"]
 * ```
 */
export const GPT2_PATTERN: RegExp = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * Options of {@linkcode trainBpe}.
 *
 * @example
 * ```ts
 * import type { TrainBpeOptions } from "@paramscope/kit/bpe";
 * const options: TrainBpeOptions = { vocabSize: 4096, specialTokens: ["<|endoftext|>"], minFrequency: 2 };
 * console.log(options.vocabSize);
 * ```
 */
export interface TrainBpeOptions {
  /** Final vocabulary size, special tokens included. Default `4096`. Must be at least 256 + the special tokens. */
  vocabSize?: number;
  /** Special tokens, appended after the learned tokens in this order. Default `["<|endoftext|>"]`. */
  specialTokens?: readonly string[];
  /** A pair seen fewer times than this (counted over the whole corpus) is never merged; training stops early. Default `2`. */
  minFrequency?: number;
}

/**
 * A trained byte-level BPE: plain JSON-serializable data.
 *
 * @example
 * ```ts
 * import { type BpeModel, trainBpe } from "@paramscope/kit/bpe";
 * const model: BpeModel = trainBpe(["abab abab"], { vocabSize: 260 });
 * console.log(model.merges[0], model.vocab[256]); // ["a", "b"] "ab"
 * ```
 */
export interface BpeModel {
  /** Token strings by id, in GPT-2 byte-level characters (a space is `"Ġ"`); special tokens at the end. */
  vocab: string[];
  /** Merges in priority order; merge `r` joins `merges[r][0]` and `merges[r][1]` into their concatenation. */
  merges: [string, string][];
  /** Special tokens (also at the end of `vocab`). */
  specialTokens: string[];
  /** What training saw: distinct pre-tokens ("words"), total pre-tokens and bytes. */
  stats: { words: number; pretokens: number; bytes: number };
}

/**
 * Result of {@linkcode trainBpe} (the same as {@linkcode BpeModel}).
 *
 * @example
 * ```ts
 * import { type TrainBpeResult, trainBpe } from "@paramscope/kit/bpe";
 * const r: TrainBpeResult = trainBpe(["abab abab"], { vocabSize: 260 });
 * console.log(r.stats); // { words: 2, pretokens: 2, bytes: 9 } ("abab" and " abab")
 * ```
 */
export type TrainBpeResult = BpeModel;

/**
 * Options of {@linkcode toTokenizerConfig}.
 *
 * @example
 * ```ts
 * import type { TokenizerConfigOptions } from "@paramscope/kit/bpe";
 * const options: TokenizerConfigOptions = { maxLength: 256 };
 * console.log(options.maxLength);
 * ```
 */
export interface TokenizerConfigOptions {
  /** `model_max_length`: the context length of the model the tokenizer serves. Default `1024`. */
  maxLength?: number;
}

/**
 * The Hugging Face `tokenizer.json` object produced by {@linkcode toTokenizerJson}.
 *
 * @example
 * ```ts
 * import { type TokenizerJson, toTokenizerJson, trainBpe } from "@paramscope/kit/bpe";
 * const json: TokenizerJson = toTokenizerJson(trainBpe(["abab abab"], { vocabSize: 260 }));
 * console.log(json.model.merges); // ["a b", "ab ab"]
 * ```
 */
export interface TokenizerJson {
  /** Format version, `"1.0"`. */
  version: string;
  /** Always `null`. */
  truncation: null;
  /** Always `null`. */
  padding: null;
  /** Special tokens with their ids. */
  added_tokens: {
    id: number;
    content: string;
    single_word: boolean;
    lstrip: boolean;
    rstrip: boolean;
    normalized: boolean;
    special: boolean;
  }[];
  /** Always `null`. */
  normalizer: null;
  /** ByteLevel, no prefix space, GPT-2 regex. */
  pre_tokenizer: { type: "ByteLevel"; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  /** ByteLevel (adds nothing). */
  post_processor: { type: "ByteLevel"; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  /** ByteLevel. */
  decoder: { type: "ByteLevel"; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  /** The BPE model: vocab (token → id) and merges as `"left right"` strings. */
  model: {
    type: "BPE";
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: string;
    end_of_word_suffix: string;
    fuse_unk: boolean;
    byte_fallback: boolean;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    merges: string[];
  };
}

/**
 * The Hugging Face `tokenizer_config.json` object produced by {@linkcode toTokenizerConfig}.
 *
 * @example
 * ```ts
 * import { type TokenizerConfig, toTokenizerConfig, trainBpe } from "@paramscope/kit/bpe";
 * const config: TokenizerConfig = toTokenizerConfig(trainBpe(["abab abab"], { vocabSize: 260 }));
 * console.log(config.add_bos_token); // false
 * ```
 */
export interface TokenizerConfig {
  /** `"GPT2Tokenizer"`. */
  tokenizer_class: string;
  /** The first special token (`<|endoftext|>`). */
  bos_token: string;
  /** The first special token. */
  eos_token: string;
  /** The first special token (never produced: byte-level BPE has no unknowns). */
  unk_token: string;
  /** The first special token. */
  pad_token: string;
  /** `false`: encoding adds no BOS. */
  add_bos_token: boolean;
  /** `false`: encoding adds no EOS. */
  add_eos_token: boolean;
  /** `false`. */
  add_prefix_space: boolean;
  /** `false`, so that decoding gives back the exact text. */
  clean_up_tokenization_spaces: boolean;
  /** Context length. */
  model_max_length: number;
  /** Special tokens by id, as transformers writes them. */
  added_tokens_decoder: Record<
    string,
    { content: string; lstrip: boolean; normalized: boolean; rstrip: boolean; single_word: boolean; special: boolean }
  >;
}

/** GPT-2's `bytes_to_unicode`: byte values in table order, and the character each byte is shown as. */
function bytesToUnicode(): { order: number[]; chars: string[] } {
  const order: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) order.push(b);
  for (let b = 0xa1; b <= 0xac; b++) order.push(b);
  for (let b = 0xae; b <= 0xff; b++) order.push(b);
  const printable = new Set(order);
  const chars: string[] = new Array(256);
  for (const b of order) chars[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.has(b)) {
      order.push(b);
      chars[b] = String.fromCharCode(256 + n);
      n++;
    }
  }
  return { order, chars };
}

const BYTE_TABLE = bytesToUnicode();
/** Token id of each byte value (its position in the table order). */
const BYTE_ID = new Int32Array(256);
BYTE_TABLE.order.forEach((b, i) => (BYTE_ID[b] = i));
/** The 256 base tokens by id. */
const BASE_VOCAB: string[] = BYTE_TABLE.order.map((b) => BYTE_TABLE.chars[b]);
const UNICODE_TO_BYTE = new Map<string, number>(BASE_VOCAB.map((c, i) => [c, BYTE_TABLE.order[i]]));

// A pair of ids packed into one number: left · 2^20 + right (ids stay below 2^20).
const SHIFT = 1 << 20;
const MAX_VOCAB = SHIFT;
const utf8 = new TextEncoder();

/** Appends the byte ids of `piece` to `out`. */
function pieceBytes(piece: string, out: number[]): void {
  let ascii = true;
  for (let i = 0; i < piece.length; i++) {
    if (piece.charCodeAt(i) >= 128) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    for (let i = 0; i < piece.length; i++) out.push(BYTE_ID[piece.charCodeAt(i)]);
  } else {
    for (const b of utf8.encode(piece)) out.push(BYTE_ID[b]);
  }
}

/** Splits `text` around special tokens (leftmost, then longest match). Odd entries of the result are specials. */
function splitSpecials(text: string, specials: readonly string[]): string[] {
  if (specials.length === 0) return [text];
  const parts: string[] = [];
  let start = 0;
  while (start <= text.length) {
    let at = -1;
    let hit = "";
    for (const s of specials) {
      const i = text.indexOf(s, start);
      if (i >= 0 && (at < 0 || i < at || (i === at && s.length > hit.length))) {
        at = i;
        hit = s;
      }
    }
    if (at < 0) break;
    parts.push(text.slice(start, at), hit);
    start = at + hit.length;
  }
  parts.push(text.slice(start));
  return parts;
}

function checkSpecials(specialTokens: unknown): string[] {
  if (!Array.isArray(specialTokens) || specialTokens.some((s) => typeof s !== "string" || s === "")) {
    throw new TypeError(
      `specialTokens must be an array of non-empty strings, got ${
        JSON.stringify(specialTokens)
      }; e.g. ["<|endoftext|>"]`,
    );
  }
  if (new Set(specialTokens).size !== specialTokens.length) {
    throw new RangeError(`specialTokens must not repeat a token, got ${JSON.stringify(specialTokens)}`);
  }
  return [...specialTokens];
}

/** A max-heap of (count, pair) entries; ties go to the smaller packed pair, so training is deterministic. */
class PairHeap {
  counts: number[] = [];
  keys: number[] = [];
  get size(): number {
    return this.counts.length;
  }
  #above(i: number, j: number): boolean {
    const c = this.counts, k = this.keys;
    return c[i] > c[j] || (c[i] === c[j] && k[i] < k[j]);
  }
  #swap(i: number, j: number): void {
    const c = this.counts, k = this.keys;
    [c[i], c[j]] = [c[j], c[i]];
    [k[i], k[j]] = [k[j], k[i]];
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#above(i, p)) break;
      this.#swap(i, p);
      i = p;
    }
  }
  /** Removes the top entry; read it from `counts[0]`, `keys[0]` before calling. */
  pop(): void {
    const last = this.counts.length - 1;
    this.#swap(0, last);
    this.counts.pop();
    this.keys.pop();
    const n = this.counts.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < n && this.#above(l, m)) m = l;
      if (r < n && this.#above(r, m)) m = r;
      if (m === i) break;
      this.#swap(i, m);
      i = m;
    }
  }
}

/**
 * Trains a byte-level BPE tokenizer (GPT-2 style) on `texts`.
 *
 * Pre-tokens are counted once; merges then update pair counts incrementally, touching only the words that contain
 * the merged pair. The most frequent pair is merged first; ties go to the pair of smaller ids. Training stops at
 * `vocabSize` or when no pair reaches `minFrequency`; the vocabulary is then smaller, with the special tokens still
 * last.
 *
 * @param texts training documents (special tokens inside them are cut out, never learned from)
 * @param options vocabulary size, special tokens, minimum pair frequency; see {@linkcode TrainBpeOptions}
 * @returns the trained model (vocab, merges, special tokens, stats)
 * @throws {TypeError} when `texts` is not an array of strings or `specialTokens` is not an array of strings
 * @throws {RangeError} when `vocabSize` or `minFrequency` is out of range or `texts` holds no text
 *
 * @example
 * ```ts
 * import { encode, trainBpe } from "@paramscope/kit/bpe";
 * const model = trainBpe(["the cat sat on the mat", "the dog sat on the log"], { vocabSize: 270 });
 * console.log(model.vocab.length, model.vocab.at(-1)); // 266 "<|endoftext|>": pairs seen once are not merged
 * console.log(encode(model, "the cat"));
 * ```
 */
export function trainBpe(texts: readonly string[], options: TrainBpeOptions = {}): BpeModel {
  const { vocabSize = 4096, minFrequency = 2 } = options;
  const specials = checkSpecials(options.specialTokens ?? ["<|endoftext|>"]);
  if (!Array.isArray(texts) || texts.some((t) => typeof t !== "string")) {
    throw new TypeError("texts must be an array of strings (one per document)");
  }
  const minSize = 256 + specials.length;
  if (!Number.isInteger(vocabSize) || vocabSize < minSize || vocabSize > MAX_VOCAB) {
    throw new RangeError(
      `vocabSize must be an integer from ${minSize} (256 bytes + ${specials.length} special tokens) to ${MAX_VOCAB}, got ${vocabSize}`,
    );
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new RangeError(`minFrequency must be an integer >= 1, got ${minFrequency}; the default is 2`);
  }

  // 1. Count pre-tokens.
  const wordCounts = new Map<string, number>();
  let pretokens = 0;
  for (const text of texts) {
    const parts = splitSpecials(text, specials);
    for (let p = 0; p < parts.length; p += 2) {
      for (const m of parts[p].matchAll(GPT2_PATTERN)) {
        const w = m[0];
        wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
        pretokens++;
      }
    }
  }
  if (pretokens === 0) throw new RangeError("texts hold no text to train on; pass at least one non-empty document");

  // 2. Words as byte-id sequences; pair counts and, per pair, the words it occurs in.
  const words: number[][] = [];
  const freqs: number[] = [];
  let bytes = 0;
  for (const [w, f] of wordCounts) {
    const ids: number[] = [];
    pieceBytes(w, ids);
    bytes += ids.length * f;
    if (ids.length < 2) continue; // nothing to merge inside
    words.push(ids);
    freqs.push(f);
  }
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  for (let w = 0; w < words.length; w++) {
    const ids = words[w], f = freqs[w];
    for (let i = 0; i + 1 < ids.length; i++) {
      const key = ids[i] * SHIFT + ids[i + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      const list = where.get(key);
      if (list === undefined) where.set(key, [w]);
      else if (list[list.length - 1] !== w) list.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);

  // 3. Merge.
  const vocab = BASE_VOCAB.slice();
  const tokenId = new Map<string, number>(vocab.map((t, i) => [t, i]));
  const merges: [string, string][] = [];
  const target = vocabSize - specials.length;
  const delta = new Map<number, number>();
  while (vocab.length < target && heap.size > 0) {
    const count = heap.counts[0], key = heap.keys[0];
    heap.pop();
    if (pairCount.get(key) !== count) continue; // stale entry: a fresher one is in the heap
    if (count < minFrequency) break;
    const a = Math.floor(key / SHIFT), b = key - a * SHIFT;
    const merged = vocab[a] + vocab[b];
    let id = tokenId.get(merged);
    if (id === undefined) {
      // A string can arise from two different merges (a+bc, ab+c); it keeps its first id, as in HF tokenizers.
      id = vocab.length;
      vocab.push(merged);
      tokenId.set(merged, id);
    }
    merges.push([vocab[a], vocab[b]]);
    delta.clear();
    for (const w of where.get(key) ?? []) {
      const old = words[w];
      let found = false;
      for (let i = 0; i + 1 < old.length; i++) {
        if (old[i] === a && old[i + 1] === b) {
          found = true;
          break;
        }
      }
      if (!found) continue; // listed before an earlier merge in this word removed the pair
      const next: number[] = [];
      for (let i = 0; i < old.length;) {
        if (i + 1 < old.length && old[i] === a && old[i + 1] === b) {
          next.push(id);
          i += 2;
        } else {
          next.push(old[i]);
          i++;
        }
      }
      const f = freqs[w];
      for (let i = 0; i + 1 < old.length; i++) {
        const k = old[i] * SHIFT + old[i + 1];
        delta.set(k, (delta.get(k) ?? 0) - f);
      }
      for (let i = 0; i + 1 < next.length; i++) {
        const k = next[i] * SHIFT + next[i + 1];
        delta.set(k, (delta.get(k) ?? 0) + f);
        if (next[i] === id || next[i + 1] === id) {
          const list = where.get(k);
          if (list === undefined) where.set(k, [w]);
          else if (list[list.length - 1] !== w) list.push(w);
        }
      }
      words[w] = next;
    }
    where.delete(key);
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const c = (pairCount.get(k) ?? 0) + d;
      if (c > 0) {
        pairCount.set(k, c);
        heap.push(c, k);
      } else {
        pairCount.delete(k);
        where.delete(k);
      }
    }
  }
  for (const s of specials) vocab.push(s);
  return { vocab, merges, specialTokens: specials, stats: { words: wordCounts.size, pretokens, bytes } };
}

/** Lookup tables built once per model for {@linkcode encode} and {@linkcode decode}. */
interface Compiled {
  rank: Map<number, number>;
  mergedId: Int32Array;
  specialId: Map<string, number>;
  vocabBytes: (Uint8Array | null)[];
  cache: Map<string, number[]>;
}

const compiledModels = new WeakMap<BpeModel, Compiled>();
const CACHE_LIMIT = 200_000;

function compile(model: BpeModel): Compiled {
  const hit = compiledModels.get(model);
  if (hit !== undefined) return hit;
  if (
    typeof model !== "object" || model === null || !Array.isArray(model.vocab) || !Array.isArray(model.merges) ||
    !Array.isArray(model.specialTokens)
  ) {
    throw new TypeError(
      "model must be a BpeModel ({ vocab, merges, specialTokens }) from trainBpe() or fromTokenizerJson()",
    );
  }
  const specialId = new Map<string, number>();
  for (const s of model.specialTokens) {
    const id = model.vocab.lastIndexOf(s);
    if (id < 0) throw new RangeError(`special token ${JSON.stringify(s)} is missing from model.vocab`);
    specialId.set(s, id);
  }
  const isSpecial = new Set(specialId.values());
  const tokenId = new Map<string, number>();
  model.vocab.forEach((t, i) => {
    if (!isSpecial.has(i) && !tokenId.has(t)) tokenId.set(t, i);
  });
  for (let i = 0; i < 256; i++) {
    if (tokenId.get(BASE_VOCAB[i]) !== i) {
      throw new RangeError(
        `model.vocab[${i}] must be the byte-level token ${JSON.stringify(BASE_VOCAB[i])}, got ${
          JSON.stringify(model.vocab[i])
        }`,
      );
    }
  }
  const rank = new Map<number, number>();
  const mergedId = new Int32Array(model.merges.length);
  model.merges.forEach(([l, r], i) => {
    const a = tokenId.get(l), b = tokenId.get(r), m = tokenId.get(l + r);
    if (a === undefined || b === undefined || m === undefined) {
      throw new RangeError(
        `merge ${i} (${JSON.stringify(l)} ${JSON.stringify(r)}) uses a token missing from model.vocab`,
      );
    }
    const key = a * SHIFT + b;
    if (!rank.has(key)) rank.set(key, i);
    mergedId[i] = m;
  });
  const vocabBytes = model.vocab.map((t, i) => {
    if (isSpecial.has(i)) return null;
    const out = new Uint8Array(t.length);
    for (let j = 0; j < t.length; j++) out[j] = UNICODE_TO_BYTE.get(t[j]) ?? 0;
    return out;
  });
  const compiled: Compiled = { rank, mergedId, specialId, vocabBytes, cache: new Map() };
  compiledModels.set(model, compiled);
  return compiled;
}

/** Applies the merges to one pre-token's byte ids: lowest rank first, leftmost first among equals. */
function mergeWord(ids: number[], c: Compiled): number[] {
  const { rank, mergedId } = c;
  for (;;) {
    let best = -1;
    for (let i = 0; i + 1 < ids.length; i++) {
      const r = rank.get(ids[i] * SHIFT + ids[i + 1]);
      if (r !== undefined && (best < 0 || r < best)) best = r;
    }
    if (best < 0) return ids;
    // Every occurrence of the best pair is merged left to right; pairs created by it rank later, so this equals
    // merging one occurrence at a time in (rank, position) order as transformers.js does.
    const next: number[] = [];
    for (let i = 0; i < ids.length;) {
      if (i + 1 < ids.length && rank.get(ids[i] * SHIFT + ids[i + 1]) === best) {
        next.push(mergedId[best]);
        i += 2;
      } else {
        next.push(ids[i]);
        i++;
      }
    }
    ids = next;
  }
}

/**
 * Encodes `text` to token ids with a trained model: special tokens are matched first, the rest is pre-tokenized with
 * {@linkcode GPT2_PATTERN} and each pre-token's bytes are merged. Gives the same ids as transformers.js'
 * tokenizer built from {@linkcode toTokenizerJson} (with no BOS/EOS added). Pre-tokens are cached per model.
 *
 * @param model a model from {@linkcode trainBpe} or {@linkcode fromTokenizerJson}
 * @param text any string (byte-level: nothing is unknown)
 * @returns token ids
 * @throws {TypeError} when `text` is not a string or `model` is not a BpeModel
 *
 * @example
 * ```ts
 * import { decode, encode, trainBpe } from "@paramscope/kit/bpe";
 * const model = trainBpe(["low lower lowest", "new newer newest"], { vocabSize: 280 });
 * const ids = encode(model, "lowest 🦕<|endoftext|>");
 * console.log(ids.at(-1) === model.vocab.length - 1, decode(model, ids)); // true "lowest 🦕<|endoftext|>"
 * ```
 */
export function encode(model: BpeModel, text: string): number[] {
  if (typeof text !== "string") throw new TypeError(`text must be a string, got ${typeof text}`);
  const c = compile(model);
  const out: number[] = [];
  const parts = splitSpecials(text, model.specialTokens);
  for (let p = 0; p < parts.length; p++) {
    if (p % 2 === 1) {
      out.push(c.specialId.get(parts[p])!);
      continue;
    }
    for (const m of parts[p].matchAll(GPT2_PATTERN)) {
      const piece = m[0];
      let ids = c.cache.get(piece);
      if (ids === undefined) {
        const bytes: number[] = [];
        pieceBytes(piece, bytes);
        ids = mergeWord(bytes, c);
        if (c.cache.size >= CACHE_LIMIT) c.cache.clear();
        c.cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
  }
  return out;
}

/**
 * Decodes token ids back to text (bytes joined, then UTF-8 decoded; special tokens as their text).
 *
 * @param model a model from {@linkcode trainBpe} or {@linkcode fromTokenizerJson}
 * @param ids token ids
 * @returns the text; `decode(model, encode(model, s)) === s` for any well-formed string `s`
 * @throws {RangeError} on an id outside `0..vocab.length-1`
 *
 * @example
 * ```ts
 * import { decode, encode, trainBpe } from "@paramscope/kit/bpe";
 * const model = trainBpe(["hello world"], { vocabSize: 260, minFrequency: 1 });
 * console.log(decode(model, encode(model, "hello, 世界"))); // "hello, 世界"
 * ```
 */
export function decode(model: BpeModel, ids: readonly number[]): string {
  const c = compile(model);
  let text = "";
  let buf: number[] = [];
  const flush = () => {
    if (buf.length > 0) text += new TextDecoder().decode(new Uint8Array(buf));
    buf = [];
  };
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= model.vocab.length) {
      throw new RangeError(`token id ${id} is outside the vocabulary 0..${model.vocab.length - 1}`);
    }
    const bytes = c.vocabBytes[id];
    if (bytes === null) {
      flush();
      text += model.vocab[id];
    } else for (const b of bytes) buf.push(b);
  }
  flush();
  return text;
}

/**
 * The Hugging Face `tokenizer.json` for a trained model, in the layout GPT-2's uses: BPE model (merges as
 * `"left right"` strings, which both transformers.js and the Python `tokenizers` library read), ByteLevel
 * pre-tokenizer (`add_prefix_space: false`, GPT-2 regex), ByteLevel decoder and post-processor, special tokens in
 * `added_tokens`.
 *
 * @param model a model from {@linkcode trainBpe}
 * @returns the object to write with `JSON.stringify` as `tokenizer.json`
 *
 * @example
 * ```ts
 * import { toTokenizerJson, trainBpe } from "@paramscope/kit/bpe";
 * const json = toTokenizerJson(trainBpe(["a tiny corpus"], { vocabSize: 260, minFrequency: 1 }));
 * console.log(json.model.type, json.added_tokens[0].content); // "BPE" "<|endoftext|>"
 * ```
 */
export function toTokenizerJson(model: BpeModel): TokenizerJson {
  const { specialId } = compile(model);
  const vocab: Record<string, number> = {};
  model.vocab.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
  });
  for (const [t, id] of specialId) vocab[t] = id;
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true } as const;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: model.specialTokens.map((content) => ({
      id: specialId.get(content)!,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: true,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { ...byteLevel },
    post_processor: { ...byteLevel },
    decoder: { ...byteLevel },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: model.merges.map(([l, r]) => `${l} ${r}`),
    },
  };
}

/**
 * The matching `tokenizer_config.json`: `GPT2Tokenizer`, the first special token as BOS/EOS/UNK/PAD, no BOS or EOS
 * added on encode, no clean-up of spaces on decode (so decoding returns the exact text).
 *
 * @param model a model from {@linkcode trainBpe}
 * @param options `maxLength` (default 1024); see {@linkcode TokenizerConfigOptions}
 * @returns the object to write with `JSON.stringify` as `tokenizer_config.json`
 * @throws {RangeError} when the model has no special token or `maxLength` is not a positive integer
 *
 * @example
 * ```ts
 * import { toTokenizerConfig, trainBpe } from "@paramscope/kit/bpe";
 * const config = toTokenizerConfig(trainBpe(["a tiny corpus"], { vocabSize: 260 }), { maxLength: 256 });
 * console.log(config.tokenizer_class, config.eos_token, config.model_max_length); // GPT2Tokenizer <|endoftext|> 256
 * ```
 */
export function toTokenizerConfig(model: BpeModel, options: TokenizerConfigOptions = {}): TokenizerConfig {
  const { maxLength = 1024 } = options;
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new RangeError(`maxLength must be a positive integer (the model's context length), got ${maxLength}`);
  }
  const first = model.specialTokens[0];
  if (first === undefined) {
    throw new RangeError('model has no special token; train with specialTokens: ["<|endoftext|>"]');
  }
  const { specialId } = compile(model);
  const added: TokenizerConfig["added_tokens_decoder"] = {};
  model.specialTokens.forEach((content) => {
    added[String(specialId.get(content))] = {
      content,
      lstrip: false,
      normalized: true,
      rstrip: false,
      single_word: false,
      special: true,
    };
  });
  return {
    tokenizer_class: "GPT2Tokenizer",
    bos_token: first,
    eos_token: first,
    unk_token: first,
    pad_token: first,
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    clean_up_tokenization_spaces: false,
    model_max_length: maxLength,
    added_tokens_decoder: added,
  };
}

/**
 * Reads a byte-level BPE back from a `tokenizer.json` object (one written by {@linkcode toTokenizerJson}, or GPT-2's),
 * so {@linkcode encode} can tokenize with it.
 *
 * @param json the parsed `tokenizer.json`
 * @returns the model; `stats` are zero (training counts are not stored in the file)
 * @throws {TypeError} when `json` is not a BPE tokenizer.json with a ByteLevel pre-tokenizer
 *
 * @example
 * ```ts
 * import { encode, fromTokenizerJson, toTokenizerJson, trainBpe } from "@paramscope/kit/bpe";
 * const model = trainBpe(["the cat sat", "the cat ran"], { vocabSize: 262 });
 * const back = fromTokenizerJson(JSON.parse(JSON.stringify(toTokenizerJson(model))));
 * console.log(encode(back, "the cat").join() === encode(model, "the cat").join()); // true
 * ```
 */
export function fromTokenizerJson(json: unknown): BpeModel {
  // deno-lint-ignore no-explicit-any
  const j = json as any;
  if (
    typeof j !== "object" || j === null || j.model?.type !== "BPE" || typeof j.model.vocab !== "object" ||
    !Array.isArray(j.model.merges) || j.pre_tokenizer?.type !== "ByteLevel"
  ) {
    throw new TypeError("json must be a tokenizer.json with a BPE model and a ByteLevel pre_tokenizer");
  }
  const vocab: string[] = [];
  for (const [t, id] of Object.entries(j.model.vocab as Record<string, number>)) vocab[id] = t;
  const specialTokens: string[] = [];
  for (const a of (j.added_tokens ?? []) as { id: number; content: string; special: boolean }[]) {
    if (!a.special) continue;
    vocab[a.id] = a.content;
    specialTokens.push(a.content);
  }
  const merges = (j.model.merges as (string | [string, string])[]).map((m): [string, string] => {
    if (Array.isArray(m)) return [m[0], m[1]];
    const [l, r] = m.split(" ", 2);
    return [l, r];
  });
  return { vocab, merges, specialTokens, stats: { words: 0, pretokens: 0, bytes: 0 } };
}
