/**
 * One forward pass: the model's most likely next tokens after a text, with
 * logits, probabilities and the entropy of the distribution.
 *
 * ```sh
 * deno run --allow-read --allow-env --allow-ffi scripts/forward.ts --text "The cat sat on the"
 * deno run --allow-read --allow-env --allow-ffi scripts/forward.ts --text "Hello" --top 5 --engine reference --json
 * ```
 *
 * `--engine onnx` (default) runs ONNX Runtime; `--engine reference` runs the
 * kit's readable TypeScript forward pass over the same weights. `--json`
 * prints `{ text, ids, tokens, addedBos, top: [{ id, token, text, logit, prob }],
 * entropy: { nats, bits }, engine }`. Exit codes: 0 ok, 2 bad usage, or a model
 * that cannot be loaded or run.
 *
 * @module
 */
import { ENGINE_NAMES, type EngineName } from "../lib/engine.ts";
import { nextToken, type NextTokenResult } from "../lib/generate.ts";
import { loadModel } from "../lib/load.ts";
import { fail, parseFlags } from "./_cli.ts";

const USAGE = `usage: forward.ts --text TEXT [--model ID|PATH] [--top N] [--engine reference|onnx] [--json]
  --text TEXT        the text whose next token to predict (required, non-empty)
  --model ID|PATH    a model folder or hub id (default: the bundled model)
  --top N            how many candidates to list (default 10)
  --engine NAME      onnx (ONNX Runtime, default) or reference (the kit's TypeScript forward pass)
  --json             print { text, ids, tokens, addedBos, top: [{ id, token, text, logit, prob }], entropy, engine }`;

/** The candidates as a fixed-width table, with the input and the entropy above it. */
function formatTable(modelId: string, r: NextTokenResult): string {
  const rows = r.top.map((t, i) => [
    String(i + 1),
    String(t.id),
    JSON.stringify(t.token),
    JSON.stringify(t.text),
    t.logit.toFixed(3),
    (100 * t.prob).toFixed(2) + "%",
  ]);
  const header = ["#", "id", "token", "text", "logit", "prob"];
  const width = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: string[]) => cells.map((cell, c) => cell.padEnd(width[c])).join("  ").trimEnd();
  return [
    `${modelId} (${r.engine}): ${JSON.stringify(r.text)}`,
    `${r.ids.length} input tokens [${r.ids.join(", ")}]; BOS added: ${r.addedBos ? "yes" : "no"}`,
    `entropy of the next token: ${r.entropy.nats.toFixed(3)} nats = ${r.entropy.bits.toFixed(3)} bits`,
    "",
    line(header),
    ...rows.map(line),
  ].join("\n");
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    text: { type: "string" },
    model: { type: "string" },
    top: { type: "string", default: "10" },
    engine: { type: "string", default: "onnx" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  if (flags.text === undefined) fail(`--text is required\n${USAGE}`);
  if (flags.text.length === 0) fail("--text is empty; give at least one character");
  const top = Number(flags.top);
  if (!Number.isInteger(top) || top < 1) fail(`--top must be an integer >= 1, got ${JSON.stringify(flags.top)}`);
  if (!ENGINE_NAMES.includes(flags.engine as EngineName)) {
    fail(`--engine must be one of ${ENGINE_NAMES.join(", ")}, got ${JSON.stringify(flags.engine)}`);
  }

  let model;
  try {
    model = await loadModel(flags.model);
  } catch (e) {
    fail(`cannot load ${flags.model ?? "the bundled model"}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    const r = await nextToken(model, flags.text, { topK: top, engine: flags.engine as EngineName });
    if (flags.json) {
      const { logits: _logits, ...rest } = r;
      console.log(JSON.stringify(rest, null, 2));
    } else console.log(formatTable(model.id, r));
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) fail(e.message);
    throw e;
  } finally {
    await model.dispose();
  }
}

if (import.meta.main) await main(Deno.args);
