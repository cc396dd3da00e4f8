/**
 * Tokenize a text and show every token: id, vocabulary string, decoded piece
 * and `[start, end)` character offsets, plus the counts.
 *
 * ```sh
 * deno run --allow-read --allow-env --allow-ffi scripts/tokenize.ts --text "The cat sat on the mat."
 * deno run --allow-read --allow-env --allow-ffi scripts/tokenize.ts --text "你好,世界" --json
 * deno run --allow-read --allow-env --allow-ffi --allow-write=out scripts/tokenize.ts --text "x = 1" --html out/tokens.html
 * ```
 *
 * The model defaults to the bundled one, loaded with `tokenizerOnly` (ONNX
 * Runtime never starts; `--allow-ffi` is still needed because importing
 * transformers.js loads its image library's native addon). `--json` prints
 * the whole `tokenize()` result; `--html FILE` writes the token chips as a
 * standalone page. Exit codes: 0 ok, 2 bad usage (empty text, unknown flag)
 * or a model that cannot be loaded.
 *
 * @module
 */
import { loadModel } from "../lib/load.ts";
import { tokenize, type TokenizeResult, TokenView } from "../lib/tokenize.ts";
import { fail, parseFlags } from "./_cli.ts";

const USAGE = `usage: tokenize.ts --text TEXT [--model ID|PATH] [--no-special] [--json] [--html FILE]
  --text TEXT      the text to tokenize (required, non-empty)
  --model ID|PATH  a model folder or hub id (default: the bundled model)
  --no-special     do not add the special tokens the tokenizer inserts for a forward pass (BOS, [CLS] ... [SEP])
  --json           print the tokenize() result as JSON: { text, ids, tokens, pieces, offsets, special, ... }
  --html FILE      also write the token chips to FILE as a standalone HTML page`;

/** A fixed-width table of the tokens, one row per token, then the counts. */
function formatTable(r: TokenizeResult): string {
  const rows = r.ids.map((id, i) => [
    String(i),
    String(id),
    JSON.stringify(r.tokens[i]),
    JSON.stringify(r.pieces[i]),
    `${r.offsets[i][0]}–${r.offsets[i][1]}`,
    r.inserted[i] ? "inserted" : r.special[i] ? "special" : "",
  ]);
  const header = ["#", "id", "token", "piece", "chars", ""];
  const width = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: string[]) => cells.map((cell, c) => cell.padEnd(width[c])).join("  ").trimEnd();
  const c = r.counts;
  return [
    line(header),
    ...rows.map(line),
    "",
    `${c.tokens} tokens (${c.textTokens} from the text), ${c.chars} characters, ` +
    `${c.charsPerToken.toFixed(2)} characters per token, ${c.tokensPerWord.toFixed(2)} tokens per word; ` +
    `BOS added: ${r.addedBos ? "yes" : "no"}`,
    ...r.warnings.map((w) => `warning: ${w}`),
  ].join("\n");
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    text: { type: "string" },
    model: { type: "string" },
    "no-special": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    html: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  if (flags.text === undefined) fail(`--text is required\n${USAGE}`);
  if (flags.text.length === 0) fail("--text is empty; give at least one character to tokenize");
  if (flags.html !== undefined && flags.html.length === 0) fail("--html needs a file name");

  let model;
  try {
    model = await loadModel(flags.model, { tokenizerOnly: true });
  } catch (e) {
    fail(`cannot load ${flags.model ?? "the bundled model"}: ${e instanceof Error ? e.message : String(e)}`);
  }
  let result: TokenizeResult;
  try {
    result = tokenize(model, flags.text, { addSpecialTokens: !flags["no-special"] });
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) fail(e.message);
    throw e;
  }
  if (flags.html !== undefined) {
    await new TokenView(result, { title: `Tokens (${model.id})`, showIds: true }).writeHtml(flags.html);
  }
  if (flags.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`${model.id}: ${JSON.stringify(flags.text)}`);
    console.log(formatTable(result));
    if (flags.html !== undefined) console.log(`wrote ${flags.html}`);
  }
}

if (import.meta.main) await main(Deno.args);
