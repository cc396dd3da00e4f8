/**
 * Text → token ids, token strings, decoded pieces and character offsets, for
 * any transformers.js tokenizer (WordPiece as in BERT, byte-level BPE as in
 * GPT-2, Metaspace/SentencePiece-style BPE with byte fallback as in LLaMA),
 * plus a token view that displays itself in Jupyter and writes an HTML page.
 *
 * transformers.js returns no offsets, so they are rebuilt here:
 *
 * - **pieces**: each token's contribution to the decoded text (no clean-up of
 *   tokenization spaces), so `pieces.join("")` of the text's tokens equals
 *   `detokenize()` of them. WordPiece continuations lose their `##`, other
 *   WordPiece tokens start with the space the decoder puts between words,
 *   `Ġ`/`▁` become spaces, byte-fallback tokens `<0xNN>` become the characters
 *   their bytes spell.
 * - **split characters**: when the UTF-8 bytes of one character are spread over
 *   several tokens (byte-level BPE, byte fallback), the character belongs to the
 *   token that completes it, the one after which a streaming decoder can print
 *   it. The earlier tokens get an empty piece and a zero-width offset at the
 *   character's start. (A U+FFFD that is in the text itself cannot be told apart
 *   from an unfinished character, so it goes to the token holding its first byte.)
 * - **offsets** are `[start, end)` UTF-16 indices into the text. When the
 *   pieces concatenate to the text exactly (byte-level BPE, most SentencePiece
 *   text) they are the running lengths, and `text.slice(start, end)` is the
 *   piece. Otherwise (lower-casing, accent stripping, unknown tokens, dropped
 *   characters) pieces are matched to the text after folding both sides
 *   (NFKD, lower case, combining marks, whitespace and control characters
 *   removed); whitespace the piece starts or ends with is then claimed from the
 *   text, and `[UNK]`-like tokens take the unmatched stretch between their
 *   neighbours (one whitespace-separated chunk each when the counts agree).
 *   Characters the tokenizer drops belong to no token (BERT's control
 *   characters, the leading space a Metaspace `prepend_scheme: "first"`
 *   tokenizer does not give back).
 * - **special tokens** the post-processor adds (BOS/CLS at the start, EOS/SEP at
 *   the end) have zero-width offsets at the start or end of the text and
 *   `inserted: true`; `addedBos` says whether the sequence starts with one,
 *   since that shifts every position and changes every number downstream.
 *
 * Pieces cost two short decodes per token (a few microseconds each), offsets
 * one linear pass. This module only reads a tokenizer, through the
 * {@linkcode TokenizerLike} subset of `PreTrainedTokenizer`, and does not
 * import transformers.js; building one (and transformers.js `env`) is
 * `load.ts`'s business.
 *
 * @example
 * ```ts ignore
 * import { tokenize, tokenView } from "./tokenize.ts";
 * const result = tokenize(model, "Hello, world!"); // model: a Model handle or a PreTrainedTokenizer
 * console.log(result.ids, result.pieces, result.offsets, result.addedBos);
 * tokenView(result); // as the last expression of a notebook cell: coloured token chips
 * ```
 *
 * @module
 */
import { writeFileAtomic } from "./_fs.ts";

/**
 * The part of a transformers.js `PreTrainedTokenizer` this module uses. Any
 * `PreTrainedTokenizer` (from `AutoTokenizer.from_pretrained`, or built with
 * `new PreTrainedTokenizer(tokenizerJSON, tokenizerConfig)`) satisfies it.
 *
 * @example
 * ```ts ignore
 * import { PreTrainedTokenizer } from "@huggingface/transformers";
 * import type { TokenizerLike } from "./tokenize.ts";
 * const t: TokenizerLike = new PreTrainedTokenizer(tokenizerJSON, tokenizerConfig);
 * ```
 */
export interface TokenizerLike {
  /** Text to ids (`add_special_tokens` defaults to `true` in transformers.js). */
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
  /** Ids to text. */
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  /** Token string → id, added tokens included. */
  get_vocab(): Map<string, number>;
  /** Ids of the special tokens (`<s>`, `[CLS]`, `<|endoftext|>`, ...). */
  all_special_ids: number[];
  /** Id of the unknown token, if the tokenizer has one. */
  unk_token_id?: number;
  /** The context length the tokenizer was made for (`model_max_length`), if it says. */
  model_max_length?: number;
}

/**
 * A transformers.js tokenizer, or anything carrying one in a `tokenizer` field (the `Model`
 * handle from `load.ts`).
 *
 * @example
 * ```ts ignore
 * import type { TokenizerSource } from "./tokenize.ts";
 * const a: TokenizerSource = tokenizer;          // a PreTrainedTokenizer
 * const b: TokenizerSource = { tokenizer };      // e.g. the Model handle
 * ```
 */
export type TokenizerSource = TokenizerLike | { tokenizer: TokenizerLike };

/**
 * Options of {@linkcode tokenize}.
 *
 * @example
 * ```ts
 * import type { TokenizeOptions } from "./tokenize.ts";
 * const o: TokenizeOptions = { addSpecialTokens: false };
 * console.log(o.addSpecialTokens);
 * ```
 */
export interface TokenizeOptions {
  /**
   * Add the special tokens the tokenizer's post-processor adds for a model input (BOS for
   * LLaMA, `[CLS] … [SEP]` for BERT, nothing for GPT-2). Default `true`, as transformers.js
   * does for a forward pass. `addedBos`/`addedEos` in the result say what was added.
   */
  addSpecialTokens?: boolean;
}

/**
 * Summary counts of a tokenization.
 *
 * @example
 * ```ts
 * import type { TokenCounts } from "./tokenize.ts";
 * const c: TokenCounts = { tokens: 3, textTokens: 2, chars: 9, words: 2, tokensPerWord: 1, charsPerToken: 4.5 };
 * console.log(c.charsPerToken);
 * ```
 */
export interface TokenCounts {
  /** All ids, inserted special tokens included. */
  tokens: number;
  /** Ids that come from the text (inserted special tokens excluded). */
  textTokens: number;
  /** Characters of the text, counted as Unicode code points. */
  chars: number;
  /** Whitespace-separated words of the text. */
  words: number;
  /** `textTokens / words` (0 when the text has no words). */
  tokensPerWord: number;
  /** `chars / textTokens` (0 when no token comes from the text). */
  charsPerToken: number;
}

/**
 * What {@linkcode tokenize} returns. Every array has one entry per id.
 *
 * @example
 * ```ts ignore
 * import { tokenize, type TokenizeResult } from "./tokenize.ts";
 * const r: TokenizeResult = tokenize(tokenizer, "Hi there");
 * for (let i = 0; i < r.ids.length; i++) console.log(r.ids[i], r.tokens[i], JSON.stringify(r.pieces[i]), r.offsets[i]);
 * ```
 */
export interface TokenizeResult {
  /** The text that was tokenized: the input with lone surrogates replaced by U+FFFD (same length). */
  text: string;
  /** Token ids, as a forward pass receives them. */
  ids: number[];
  /** Token strings as the vocabulary spells them (`"Ġthe"`, `"##ing"`, `"▁the"`, `"<0xE2>"`, `"[CLS]"`). */
  tokens: string[];
  /** Decoded text each token contributes (see the module doc; `""` for a token ending mid-character). */
  pieces: string[];
  /** `[start, end)` UTF-16 offsets into `text`; zero-width for inserted tokens and mid-character tokens. */
  offsets: [number, number][];
  /** Whether each id is one of the tokenizer's special tokens. */
  special: boolean[];
  /** Whether each id was added by the post-processor rather than read from the text. */
  inserted: boolean[];
  /** Whether the sequence starts with an inserted special token (BOS or CLS). */
  addedBos: boolean;
  /** Whether the sequence ends with an inserted special token (EOS or SEP). */
  addedEos: boolean;
  /** Anything the caller should know: replaced surrogates, control characters, special tokens typed in the text. */
  warnings: string[];
  /** Token, character and word counts. */
  counts: TokenCounts;
}

/**
 * Options of {@linkcode detokenize}.
 *
 * @example
 * ```ts
 * import type { DetokenizeOptions } from "./tokenize.ts";
 * const o: DetokenizeOptions = { skipSpecialTokens: true };
 * console.log(o.skipSpecialTokens);
 * ```
 */
export interface DetokenizeOptions {
  /** Leave out special tokens (`<s>`, `[CLS]`, ...). Default `false`. */
  skipSpecialTokens?: boolean;
  /**
   * Apply the tokenizer's "clean up tokenization spaces" rules (`" ,"` → `","`, `" n't"` → `"n't"`).
   * Default `false`, so that the result is exactly the concatenation of the tokens' pieces.
   */
  cleanUpSpaces?: boolean;
}

// ---------------------------------------------------------------------------
// tokenizer access

interface TokenizerInfo {
  idToToken: string[];
  special: Set<number>;
  unkId: number | undefined;
}

const infoCache = new WeakMap<TokenizerLike, TokenizerInfo>();

function isTokenizer(t: unknown): t is TokenizerLike {
  if (t === null || (typeof t !== "object" && typeof t !== "function")) return false;
  const o = t as Record<string, unknown>;
  return typeof o.encode === "function" && typeof o.decode === "function" && typeof o.get_vocab === "function";
}

function resolveTokenizer(source: TokenizerSource): TokenizerLike {
  if (isTokenizer(source)) return source;
  if (source !== null && typeof source === "object" && isTokenizer((source as { tokenizer?: unknown }).tokenizer)) {
    return (source as { tokenizer: TokenizerLike }).tokenizer;
  }
  throw new TypeError(
    `expected a transformers.js tokenizer (PreTrainedTokenizer) or an object with a \`tokenizer\` field ` +
      `(the Model handle from load()), got ${describe(source)}`,
  );
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === "object") return `an object with keys [${Object.keys(v as object).slice(0, 5).join(", ")}]`;
  return typeof v;
}

function infoOf(tokenizer: TokenizerLike): TokenizerInfo {
  let info = infoCache.get(tokenizer);
  if (!info) {
    const idToToken: string[] = [];
    for (const [token, id] of tokenizer.get_vocab()) idToToken[id] = token;
    const unk = tokenizer.unk_token_id;
    info = {
      idToToken,
      special: new Set(tokenizer.all_special_ids ?? []),
      unkId: typeof unk === "number" ? unk : undefined,
    };
    infoCache.set(tokenizer, info);
  }
  return info;
}

function decodeIds(tokenizer: TokenizerLike, ids: number[]): string {
  if (ids.length === 0) return "";
  return tokenizer.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
}

// ---------------------------------------------------------------------------
// text checks

function replaceLoneSurrogates(text: string, warnings: string[]): string {
  let out = "";
  let last = 0;
  const where: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    } else if (!(c >= 0xdc00 && c <= 0xdfff)) continue;
    where.push(i);
    out += text.slice(last, i) + "\uFFFD";
    last = i + 1;
  }
  if (where.length === 0) return text;
  warnings.push(
    `replaced ${where.length} lone UTF-16 surrogate${where.length > 1 ? "s" : ""} ` +
      `(at index ${where.slice(0, 5).join(", ")}${where.length > 5 ? ", ..." : ""}) with U+FFFD`,
  );
  return out + text.slice(last);
}

function warnControl(text: string, warnings: string[]): void {
  const found: string[] = [];
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || (c >= 0x7f && c <= 0x9f)) {
      count++;
      if (found.length < 5) found.push(`U+${c.toString(16).toUpperCase().padStart(4, "0")} at index ${i}`);
    }
  }
  if (count > 0) {
    warnings.push(
      `text contains ${count} control character${count > 1 ? "s" : ""} (${found.join(", ")}${
        count > 5 ? ", ..." : ""
      }); ` +
        `some tokenizers drop them (BERT does), and token views show them as control pictures`,
    );
  }
}

// ---------------------------------------------------------------------------
// pieces: each token's contribution to the decoded text

/** Length of the common prefix of two strings. */
function lcp(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/**
 * Piece of token `i` = what decoding `ids[s..i]` adds to decoding `ids[s..i-1]`, where only the
 * stable part counts: the prefix that stays when up to 3 later tokens are decoded too (a
 * character whose bytes are not complete yet decodes to U+FFFD and then changes). `back` tokens
 * of context are enough for every transformers.js decoder (they look at one token, the first
 * one, or the bytes of one character); `back = Infinity` decodes full prefixes.
 */
function computePieces(tokenizer: TokenizerLike, ids: number[], back: number): string[] {
  const ahead = 3; // a character has at most 4 UTF-8 bytes, so at most 3 more tokens complete it
  const pieces: string[] = [];
  // The window start moves in steps of `back` (at least `back` tokens of context, at most 2·back),
  // so one token's decode is the next token's context decode most of the time.
  let prevStart = -1, prevY = "";
  for (let i = 0; i < ids.length; i++) {
    const s = i < back ? 0 : (Math.floor(i / back) - 1) * back;
    const x = s === prevStart ? prevY : decodeIds(tokenizer, ids.slice(s, i));
    const y = decodeIds(tokenizer, ids.slice(s, i + 1));
    prevStart = s;
    prevY = y;
    // Common case: the token only appends, and its tail is not a character still being completed.
    if (y.startsWith(x) && !y.slice(-3).includes("\uFFFD")) {
      pieces.push(y.slice(x.length));
      continue;
    }
    const z = decodeIds(tokenizer, ids.slice(s, Math.min(ids.length, i + 1 + ahead)));
    const a = lcp(x, z), b = lcp(y, z);
    pieces.push(b > a ? z.slice(a, b) : "");
  }
  return pieces;
}

/**
 * Pieces that concatenate to the full decode: a short context window first, longer ones only
 * if a decoder needs more context (full prefixes are quadratic, so only for short inputs).
 */
function piecesOf(tokenizer: TokenizerLike, ids: number[], warnings: string[]): string[] {
  const full = decodeIds(tokenizer, ids);
  let pieces = computePieces(tokenizer, ids, 8);
  if (pieces.join("") === full) return pieces;
  pieces = computePieces(tokenizer, ids, 128);
  if (pieces.join("") === full) return pieces;
  if (ids.length <= 4096) return computePieces(tokenizer, ids, Infinity);
  warnings.push("this tokenizer's decoder looks far back; pieces of a long text are approximate");
  return pieces;
}

// ---------------------------------------------------------------------------
// offsets: aligning pieces to the text

const WS = /\s/u;
const FOLD_DROP = /[\p{M}\p{Cc}\p{Cf}\s\u2581]/gu;

/** Folded form of a string for matching: NFKD, lower case, no marks, whitespace or control characters. */
function fold(s: string): string {
  return s.normalize("NFKD").toLowerCase().normalize("NFKD").replace(FOLD_DROP, "");
}

function isFoldEmpty(ch: string): boolean {
  return fold(ch) === "";
}

interface Folded {
  /** Folded text. */
  f: string;
  /** For each UTF-16 unit of `f`, the `[start, end)` of the source code point in the text. */
  start: Uint32Array;
  end: Uint32Array;
}

function foldText(text: string): Folded {
  let f = "";
  const start: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < text.length;) {
    const cp = text.codePointAt(i)!;
    const len = cp > 0xffff ? 2 : 1;
    const g = fold(text.slice(i, i + len));
    for (let k = 0; k < g.length; k++) {
      start.push(i);
      end.push(i + len);
    }
    f += g;
    i += len;
  }
  return { f, start: Uint32Array.from(start), end: Uint32Array.from(end) };
}

type Match = { kind: "match"; a: number; b: number } | { kind: "pending" } | { kind: "empty" };

function leadingWs(s: string): number {
  let n = 0;
  while (n < s.length && WS.test(s[n])) n++;
  return n;
}

function trailingWs(s: string): number {
  let n = 0;
  while (n < s.length && WS.test(s[s.length - 1 - n])) n++;
  return n;
}

/**
 * Offsets of the text's tokens (see the module doc). `unmatchable[j]` marks tokens whose piece
 * does not spell their text (the unknown token).
 */
function alignPieces(text: string, pieces: string[], unmatchable: boolean[]): [number, number][] {
  const n = pieces.length;
  if (pieces.join("") === text) {
    const out: [number, number][] = [];
    let pos = 0;
    for (const p of pieces) {
      out.push([pos, pos + p.length]);
      pos += p.length;
    }
    return out;
  }

  // Pass 1: find each token's folded piece in the folded text, left to right.
  const F = foldText(text);
  const matches: Match[] = [];
  let q = 0;
  let afterPending = false;
  for (let j = 0; j < n; j++) {
    const fp = fold(pieces[j]);
    if (unmatchable[j]) {
      matches.push({ kind: "pending" });
      afterPending = true;
      continue;
    }
    if (fp === "") {
      matches.push({ kind: "empty" });
      continue;
    }
    // Far jumps are only trusted right after an unknown token, which hides an unknown stretch.
    // (Searching a bounded prefix keeps misses from scanning the whole text.)
    const hay = afterPending ? F.f : F.f.slice(0, q + 64 + fp.length);
    const r = hay.indexOf(fp, q);
    if (r >= 0) {
      matches.push({ kind: "match", a: r, b: r + fp.length });
      q = r + fp.length;
      afterPending = false;
      continue;
    }
    // Partial match, character by character with a short look-ahead (normalisation differences).
    let a = -1, b = -1;
    for (const ch of fp) {
      const k = F.f.slice(0, q + 4 + ch.length).indexOf(ch, q);
      if (k >= 0) {
        if (a < 0) a = k;
        b = k + ch.length;
        q = b;
      }
    }
    if (a >= 0) {
      matches.push({ kind: "match", a, b });
      afterPending = false;
    } else {
      matches.push({ kind: "pending" });
      afterPending = true;
    }
  }

  // Pass 2: turn folded ranges into text offsets, claim whitespace, share gaps among unknown tokens.
  const out: [number, number][] = new Array(n);
  let pos = 0;
  let j = 0;
  while (j < n) {
    const m = matches[j];
    if (m.kind === "match") {
      let s = F.start[m.a], e = F.end[m.b - 1];
      for (let lw = leadingWs(pieces[j]); lw > 0 && s > pos && WS.test(text[s - 1]); lw--) s--;
      for (let tw = trailingWs(pieces[j]); tw > 0 && e < text.length && WS.test(text[e]); tw--) e++;
      // Combining marks after the last matched character belong to it, unless the next token holds them.
      const nextEmpty = j + 1 < n && matches[j + 1].kind === "empty";
      if (!nextEmpty) { while (e < text.length && /\p{M}/u.test(text[e])) e++; }
      s = Math.max(s, pos);
      out[j] = [s, Math.max(s, e)];
      pos = out[j][1];
      j++;
      continue;
    }
    // A group of unmatched tokens up to the next matched one.
    let k = j;
    while (k < n && matches[k].kind !== "match") k++;
    const gapEnd = k < n ? F.start[(matches[k] as { a: number }).a] : text.length;
    const group = Array.from({ length: k - j }, (_, i) => j + i);
    const pending = group.filter((g) => matches[g].kind === "pending");
    if (pending.length === 0) {
      // Only whitespace/control/empty pieces: claim matching characters in order.
      for (const g of group) {
        const p = pieces[g];
        let c = 0;
        while (c < p.length && pos + c < gapEnd && text[pos + c] === p[c]) c++;
        if (c === 0) { while (c < p.length && pos + c < gapEnd && isFoldEmpty(text[pos + c])) c++; }
        out[g] = [pos, pos + c];
        pos += c;
      }
    } else {
      const chunks: [number, number][] = [];
      for (const mm of text.slice(pos, gapEnd).matchAll(/\S+/gu)) {
        chunks.push([pos + mm.index!, pos + mm.index! + mm[0].length]);
      }
      const spans = new Map<number, [number, number]>();
      if (chunks.length === pending.length) {
        pending.forEach((g, i) => spans.set(g, chunks[i]));
      } else if (chunks.length > 0) {
        const whole: [number, number] = [chunks[0][0], chunks[chunks.length - 1][1]];
        pending.forEach((g, i) => spans.set(g, i === 0 ? whole : [whole[1], whole[1]]));
      }
      for (const g of group) {
        const sp = spans.get(g);
        if (sp) {
          out[g] = sp;
          pos = sp[1];
        } else out[g] = [pos, pos];
      }
    }
    j = k;
  }
  return out;
}

// ---------------------------------------------------------------------------
// public API

/**
 * Tokenizes `text` and explains the result: ids, vocabulary strings, decoded pieces, character
 * offsets, which tokens are special or inserted, whether a BOS was added, and counts.
 *
 * @param source a transformers.js `PreTrainedTokenizer`, or an object with one in `tokenizer`
 * @param text non-empty text; lone UTF-16 surrogates are replaced by U+FFFD (with a warning)
 * @param options `addSpecialTokens` (default `true`)
 * @returns the tokenization; throws a `RangeError` for empty text or text that yields no token
 * @example
 * ```ts ignore
 * import { tokenize } from "./tokenize.ts";
 * const r = tokenize(model, "The cat sat.", { addSpecialTokens: true });
 * console.log(r.addedBos, r.ids.length, r.counts.charsPerToken.toFixed(2));
 * for (const [i, [s, e]] of r.offsets.entries()) console.log(r.tokens[i], JSON.stringify(r.text.slice(s, e)));
 * ```
 */
export function tokenize(source: TokenizerSource, text: string, options: TokenizeOptions = {}): TokenizeResult {
  const tokenizer = resolveTokenizer(source);
  if (typeof text !== "string") throw new TypeError(`text must be a string, got ${describe(text)}`);
  if (text.length === 0) {
    throw new RangeError(
      "text is empty; tokenize needs at least one character (a forward pass needs at least one token)",
    );
  }
  const { addSpecialTokens = true } = options;
  if (typeof addSpecialTokens !== "boolean") {
    throw new TypeError(`addSpecialTokens must be true or false, got ${String(addSpecialTokens)}`);
  }
  const warnings: string[] = [];
  const clean = replaceLoneSurrogates(text, warnings);
  warnControl(clean, warnings);
  const info = infoOf(tokenizer);

  const textIds = tokenizer.encode(clean, { add_special_tokens: false });
  const ids = addSpecialTokens ? tokenizer.encode(clean, { add_special_tokens: true }) : textIds;
  if (ids.length === 0) {
    throw new RangeError(
      `text ${JSON.stringify(clean.slice(0, 40))} produced no tokens (this tokenizer drops all of it); ` +
        `pass text with visible characters or addSpecialTokens: true`,
    );
  }

  // Where the text's ids sit among all ids: normally one contiguous run between a prefix and a suffix.
  const fromText = locateRun(ids, textIds);
  const inserted = fromText.map((x) => !x);

  const textPieces = piecesOf(tokenizer, textIds, warnings);
  // The unknown token stands for text it does not spell, unless the text spells it out itself.
  const unkTyped = info.unkId !== undefined && clean.includes(info.idToToken[info.unkId] ?? "\u0000");
  const unmatchable = textIds.map((id) => id === info.unkId && !unkTyped);
  const textOffsets = alignPieces(clean, textPieces, unmatchable);

  const pieces: string[] = [];
  const offsets: [number, number][] = [];
  let t = 0;
  let seenText = false;
  for (let i = 0; i < ids.length; i++) {
    if (fromText[i]) {
      pieces.push(textPieces[t]);
      offsets.push(textOffsets[t]);
      t++;
      seenText = true;
    } else {
      pieces.push(decodeIds(tokenizer, [ids[i]]));
      const at = !seenText ? 0 : t < textIds.length ? textOffsets[t][0] : clean.length;
      offsets.push([at, at]);
    }
  }

  const special = ids.map((id) => info.special.has(id));
  const typed = new Set<string>();
  for (let i = 0; i < ids.length; i++) {
    const tok = info.idToToken[ids[i]];
    // An unknown-token id stands for unknown text; only report specials the text spells out.
    if (special[i] && !inserted[i] && tok !== undefined && clean.includes(tok)) typed.add(tok);
  }
  if (typed.size > 0) {
    warnings.push(
      `the text contains special token${typed.size > 1 ? "s" : ""} ${
        [...typed].map((s) => JSON.stringify(s)).join(", ")
      }, ` +
        `encoded as the special id${typed.size > 1 ? "s" : ""}, not as plain text`,
    );
  }

  const maxLength = tokenizer.model_max_length;
  if (typeof maxLength === "number" && maxLength > 0 && maxLength < 1e9 && ids.length > maxLength) {
    warnings.push(
      `${ids.length} tokens are more than the model's context of ${maxLength}; ` +
        `nextToken()/generate() keep the last ${maxLength}, a plain forward pass refuses the text`,
    );
  }

  const chars = Array.from(clean).length;
  const words = clean.split(/\s+/u).filter((w) => w.length > 0).length;
  const textTokens = textIds.length;
  return {
    text: clean,
    ids,
    tokens: ids.map((id) => info.idToToken[id] ?? ""),
    pieces,
    offsets,
    special,
    inserted,
    addedBos: inserted[0] === true,
    addedEos: inserted[ids.length - 1] === true && ids.length > textTokens,
    warnings,
    counts: {
      tokens: ids.length,
      textTokens,
      chars,
      words,
      tokensPerWord: words > 0 ? textTokens / words : 0,
      charsPerToken: textTokens > 0 ? chars / textTokens : 0,
    },
  };
}

/** Marks which of `all` are the run `sub` (a contiguous run, else a left-to-right subsequence). */
function locateRun(all: number[], sub: number[]): boolean[] {
  const mark = new Array<boolean>(all.length).fill(false);
  for (let start = 0; start + sub.length <= all.length; start++) {
    let ok = true;
    for (let k = 0; k < sub.length && ok; k++) ok = all[start + k] === sub[k];
    if (ok) {
      for (let k = 0; k < sub.length; k++) mark[start + k] = true;
      return mark;
    }
  }
  for (let i = 0, k = 0; i < all.length && k < sub.length; i++) {
    if (all[i] === sub[k]) {
      mark[i] = true;
      k++;
    }
  }
  return mark;
}

/**
 * Decodes ids back to text with the tokenizer's decoder.
 *
 * @param source a transformers.js `PreTrainedTokenizer`, or an object with one in `tokenizer`
 * @param ids token ids, each a vocabulary id; `[]` gives `""`
 * @param options `skipSpecialTokens` (default `false`), `cleanUpSpaces` (default `false`)
 * @returns the decoded text
 * @example
 * ```ts ignore
 * import { detokenize, tokenize } from "./tokenize.ts";
 * const { ids } = tokenize(model, "Hello there");
 * console.log(detokenize(model, ids, { skipSpecialTokens: true })); // "Hello there" (BERT: "hello there")
 * ```
 */
export function detokenize(source: TokenizerSource, ids: ArrayLike<number>, options: DetokenizeOptions = {}): string {
  const tokenizer = resolveTokenizer(source);
  if (ids === null || typeof ids !== "object" || typeof ids.length !== "number") {
    throw new TypeError(`ids must be an array of token ids, got ${describe(ids)}`);
  }
  const { skipSpecialTokens = false, cleanUpSpaces = false } = options;
  const info = infoOf(tokenizer);
  const list = Array.from(ids);
  for (let i = 0; i < list.length; i++) {
    const id = list[i];
    if (!Number.isInteger(id) || info.idToToken[id] === undefined) {
      throw new RangeError(
        `ids[${i}] = ${
          String(id)
        } is not a token id of this tokenizer (ids are integers in [0, ${info.idToToken.length}))`,
      );
    }
  }
  if (list.length === 0) return "";
  return tokenizer.decode(list, {
    skip_special_tokens: skipSpecialTokens,
    clean_up_tokenization_spaces: cleanUpSpaces,
  });
}

// ---------------------------------------------------------------------------
// display

/**
 * Options of {@linkcode tokenView}.
 *
 * @example
 * ```ts
 * import type { TokenViewOptions } from "./tokenize.ts";
 * const o: TokenViewOptions = { title: "GPT-2 tokens", showIds: true };
 * console.log(o.title);
 * ```
 */
export interface TokenViewOptions {
  /** Heading of the view. Default: `"Tokens"`. */
  title?: string;
  /** Print each id under its chip (it is always in the hover title). Default `false`. */
  showIds?: boolean;
}

const PALETTE = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fecaca", "#ddd6fe", "#fed7aa", "#a5f3fc", "#f5d0fe"];

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** Makes whitespace and control characters visible: `·` space, `↵` newline, `→` tab, control pictures. */
function visible(s: string): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === " ") out += "·";
    else if (ch === "\n") out += "↵";
    else if (ch === "\t") out += "→";
    else if (ch === "\r") out += "␍";
    else if (c < 0x20) out += String.fromCodePoint(0x2400 + c);
    else if (c === 0x7f) out += "␡";
    else if ((c >= 0x80 && c <= 0x9f) || (c >= 0x200b && c <= 0x200f) || c === 0xfeff) {
      out += `<U+${c.toString(16).toUpperCase().padStart(4, "0")}>`;
    } else out += ch;
  }
  return out;
}

/**
 * A displayable view of a tokenization: coloured chips, one per token (id, vocabulary string
 * and offsets on hover), special tokens outlined, whitespace made visible. In a Deno Jupyter
 * notebook it displays itself; in a script, `toHtml()`/`writeHtml()` make a standalone page.
 *
 * @example
 * ```ts ignore
 * import { tokenize, TokenView } from "./tokenize.ts";
 * const view = new TokenView(tokenize(model, "Tokenization is fun"), { showIds: true });
 * await view.writeHtml("tokens.html");
 * ```
 */
export class TokenView {
  /** The tokenization shown. */
  readonly result: TokenizeResult;
  /** Display settings. */
  readonly options: TokenViewOptions;

  /**
   * Wraps a tokenization for display.
   *
   * @param result what {@linkcode tokenize} returned
   * @param options title and whether to print ids
   */
  constructor(result: TokenizeResult, options: TokenViewOptions = {}) {
    if (!result || !Array.isArray(result.ids) || !Array.isArray(result.pieces)) {
      throw new TypeError("TokenView needs the result of tokenize() (an object with ids, pieces and offsets)");
    }
    this.result = result;
    this.options = options;
  }

  /**
   * The view as an HTML fragment (a `<div>` with inline styles, no scripts).
   *
   * @returns HTML text
   * @example
   * ```ts ignore
   * const html = new TokenView(result).fragment();
   * ```
   */
  fragment(): string {
    const r = this.result;
    const { title = "Tokens", showIds = false } = this.options;
    const chips: string[] = [];
    for (let i = 0; i < r.ids.length; i++) {
      const [s, e] = r.offsets[i];
      const partial = r.pieces[i] === "" && !r.special[i];
      const label = partial ? r.tokens[i] : visible(r.pieces[i]) || "∅";
      const hover = `#${i} · id ${r.ids[i]} · token ${JSON.stringify(r.tokens[i])} · chars [${s}, ${e})` +
        (r.inserted[i] ? " · inserted by the tokenizer" : "") +
        (partial ? " · adds no text by itself (a byte of a character a later token completes, or a marker)" : "");
      const style = r.special[i]
        ? "background:#f3f4f6;border:1px dashed #6b7280;color:#374151"
        : `background:${PALETTE[i % PALETTE.length]};border:1px solid rgba(0,0,0,0.12)` +
          (partial ? ";opacity:0.55;font-style:italic" : "");
      const id = showIds ? `<span style="display:block;font-size:9px;color:#4b5563">${r.ids[i]}</span>` : "";
      chips.push(
        `<span title="${escapeHtml(hover)}" style="display:inline-block;margin:1px;padding:1px 3px;border-radius:3px;` +
          `font-family:ui-monospace,monospace;font-size:13px;white-space:pre;text-align:center;${style}">` +
          `${escapeHtml(label)}${id}</span>`,
      );
    }
    const c = r.counts;
    const summary = `${c.tokens} tokens (${c.textTokens} from the text) · ${c.chars} chars · ` +
      `${c.charsPerToken.toFixed(2)} chars/token · ${c.tokensPerWord.toFixed(2)} tokens/word · ` +
      `BOS added: ${r.addedBos ? "yes" : "no"}`;
    const warn = r.warnings.map((w) => `<div style="color:#b45309">⚠ ${escapeHtml(w)}</div>`).join("");
    return `<div style="font-family:system-ui,sans-serif;line-height:1.9">` +
      `<div style="font-weight:600">${escapeHtml(title)}</div>` +
      `<div style="color:#4b5563;font-size:12px">${escapeHtml(summary)}</div>${warn}` +
      `<div>${chips.join("")}</div></div>`;
  }

  /**
   * A standalone HTML page containing the view.
   *
   * @returns a complete HTML document
   * @example
   * ```ts ignore
   * Deno.writeTextFileSync("tokens.html", new TokenView(result).toHtml());
   * ```
   */
  toHtml(): string {
    const title = escapeHtml(this.options.title ?? "Tokens");
    return `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>` +
      `<body style="margin:16px">${this.fragment()}</body></html>\n`;
  }

  /**
   * A plain-text rendering: a summary line, the pieces separated by `|`, and the ids.
   *
   * @returns text for terminals and `text/plain` displays
   * @example
   * ```ts ignore
   * console.log(new TokenView(result).toString());
   * ```
   */
  toString(): string {
    const r = this.result;
    const shown = r.pieces.map((p, i) => (p === "" && !r.special[i] ? `(${r.tokens[i]})` : visible(p)));
    return `${r.counts.tokens} tokens, BOS added: ${r.addedBos ? "yes" : "no"}\n` +
      `|${shown.join("|")}|\n[${r.ids.join(", ")}]` +
      (r.warnings.length > 0 ? `\n${r.warnings.map((w) => `warning: ${w}`).join("\n")}` : "");
  }

  /**
   * Writes {@linkcode TokenView.toHtml} to `path` atomically (temporary file, then rename).
   *
   * @param path destination `.html` file
   * @returns resolves when the file is in place
   * @example
   * ```ts ignore
   * await new TokenView(result).writeHtml("out/tokens.html");
   * ```
   */
  async writeHtml(path: string): Promise<void> {
    await writeFileAtomic(path, this.toHtml());
  }

  /**
   * The MIME bundle Jupyter displays.
   *
   * @returns `text/html` (the chips) and `text/plain` ({@linkcode TokenView.toString})
   * @example
   * ```ts ignore
   * const bundle = new TokenView(result).mimeBundle();
   * console.log(Object.keys(bundle)); // ["text/html", "text/plain"]
   * ```
   */
  mimeBundle(): Record<string, string> {
    return { "text/html": this.fragment(), "text/plain": this.toString() };
  }

  /**
   * Jupyter rich display (the Deno kernel calls this for the last expression of a cell).
   *
   * @returns {@linkcode TokenView.mimeBundle}
   * @example
   * ```ts ignore
   * new TokenView(result); // last expression of a cell: shows the chips
   * ```
   */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return this.mimeBundle();
  }
}

/**
 * Shorthand for `new TokenView(result, options)`.
 *
 * @param result what {@linkcode tokenize} returned
 * @param options title and whether to print ids
 * @returns the view
 * @example
 * ```ts ignore
 * import { tokenize, tokenView } from "./tokenize.ts";
 * tokenView(tokenize(model, "A cat sat"), { title: "GPT-2" });
 * ```
 */
export function tokenView(result: TokenizeResult, options: TokenViewOptions = {}): TokenView {
  return new TokenView(result, options);
}
