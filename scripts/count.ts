/**
 * Count a model's parameters: analytically from a config, or exactly from a model file.
 *
 * ```sh
 * deno run -A scripts/count.ts                            # the bundled model, exactly
 * deno run -A scripts/count.ts --arch llama2-7b           # a catalog entry, as a table
 * deno run -A scripts/count.ts --arch mixtral-8x7b --json # the same as JSON
 * deno run -A scripts/count.ts --config path/to/config.json
 * deno run -A scripts/count.ts --list                     # known --arch names
 * deno run -A scripts/count.ts --model path/to/folder --dtype q4   # exact count of onnx/model_q4.onnx
 * deno run -A scripts/count.ts --model Xenova/gpt2 --json          # a hub id (downloads through lib/load.ts)
 * ```
 *
 * `--json` prints `{ name, total, active?, byComponent, byKind, tied, excluded, analytic, coarse, cost, published? }`;
 * with `--model` also `tensors` (every counted tensor) and `path`, and `analytic`/`coarse` when the config is known.
 * A local folder or `.onnx` file is read directly; a hub id goes through `loadModel(id, { tokenizerOnly: true })`.
 * Exit codes: 0 ok, 2 bad usage (unknown `--arch`, missing or unreadable `--config` or `--model`, bad config).
 *
 * @module
 */
import { CATALOG, type CatalogEntry, catalogIds, comparePublished } from "../lib/catalog.ts";
import {
  coarseEstimate,
  type CostFigures,
  costFigures,
  countAnalytic,
  countModel,
  formatCount,
  type HfConfig,
  humanBytes,
  humanCount,
  type KvCacheShape,
  kvCacheShape,
} from "../lib/count.ts";
import { bundledModelPath, type Dtype, DTYPE_FILES, loadModel } from "../lib/load.ts";
import type { WeightSource } from "../lib/weights.ts";
import { fail, parseFlags } from "./_cli.ts";

const USAGE = `usage: count.ts [--arch NAME | --config PATH | --model ID|PATH [--dtype DTYPE] | --list] [--json]
  (none of them)   count the bundled model exactly
  --arch NAME      count a catalog entry (see --list)
  --config PATH    count a Hugging Face config.json
  --model ID|PATH  count a model file exactly: a folder, a .onnx file or a hub id
  --dtype DTYPE    with --model: which weights file (${Object.keys(DTYPE_FILES).join(", ")}; default fp32)
  --list           list catalog entries
  --json           print JSON instead of a table`;

function readConfig(path: string): HfConfig {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    fail(`cannot read --config ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    fail(`--config ${path} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    fail(
      `--config ${path} must hold a JSON object (a config.json), not ${
        Array.isArray(parsed) ? "an array" : typeof parsed
      }`,
    );
  }
  return parsed as HfConfig;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A folder or file path is read directly; an `owner/name` that is not a path is a hub id. */
async function openSource(model: string, dtype: Dtype): Promise<WeightSource> {
  if (exists(model)) return model;
  if (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(model) && !model.startsWith(".")) {
    return await loadModel(model, { dtype, tokenizerOnly: true });
  }
  fail(`no model folder or .onnx file at "${model}", and it is not a hub id of the form owner/name`);
}

/** `--model`: the exact count of a model file, beside the analytic count when its config is known. */
async function countFile(model: string, dtypeFlag: string | undefined, json: boolean): Promise<void> {
  const dtype = (dtypeFlag ?? "fp32") as Dtype;
  if (!Object.hasOwn(DTYPE_FILES, dtype)) {
    fail(`unknown --dtype "${dtypeFlag}"; use one of ${Object.keys(DTYPE_FILES).join(", ")}`);
  }
  let count, path: string | undefined, config: Record<string, unknown> | undefined;
  try {
    const source = await openSource(model, dtype);
    const { listParameters } = await import("../lib/weights.ts");
    const list = await listParameters(source, { dtype });
    path = list.path;
    config = list.config;
    count = await countModel(list);
  } catch (e) {
    fail(`cannot count ${model}: ${e instanceof Error ? e.message : String(e)}`);
  }
  let coarse, kv: KvCacheShape | undefined;
  if (count.analytic !== undefined && config !== undefined) {
    coarse = coarseEstimate(config as HfConfig);
    if (count.family !== "bert") kv = kvCacheShape(config as HfConfig);
  }
  const cost = costFigures(count, { kvCache: kv });
  if (json) {
    console.log(JSON.stringify({ name: model, path, dtype, ...count, coarse, cost }, null, 2));
    return;
  }
  console.log(`${model} (${path ?? dtype})`);
  console.log(formatCount(count));
  printCost(cost);
}

/** Memory of the weights per precision, the KV cache per token, and FLOPs. */
function printCost(cost: CostFigures): void {
  const w = cost.weightBytes, b = humanBytes;
  console.log(`weights: fp32 ${b(w.fp32)}, fp16/bf16 ${b(w.fp16)}, int8 ${b(w.int8)}, int4 ${b(w.int4)}`);
  if (cost.kvCacheBytesPerToken !== undefined) {
    console.log(`KV cache (fp16): ${b(cost.kvCacheBytesPerToken)} per token`);
  }
  console.log(
    `FLOPs: forward ${cost.forwardFlopsPerToken.toExponential(2)} per token; ` +
      `compute-optimal ${humanCount(cost.computeOptimalTokens)} tokens → training ${
        cost.trainingFlops.toExponential(2)
      }`,
  );
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    arch: { type: "string" },
    config: { type: "string" },
    model: { type: "string" },
    dtype: { type: "string" },
    list: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  if (flags.list) {
    if (flags.json) {
      console.log(JSON.stringify(CATALOG.map((e) => ({ id: e.id, name: e.name, year: e.year })), null, 2));
    } else for (const e of CATALOG) console.log(`${e.id.padEnd(18)} ${e.name} (${e.year})`);
    return;
  }
  const sources = [flags.arch, flags.config, flags.model].filter((x) => x !== undefined).length;
  if (sources > 1) fail(`give one of --arch, --config or --model, not ${sources}\n${USAGE}`);
  if (flags.dtype !== undefined && (flags.arch !== undefined || flags.config !== undefined)) {
    fail(`--dtype goes with --model (or the bundled model), not with --arch or --config\n${USAGE}`);
  }
  // Like every other task, the bundled model when no model is named.
  if (sources === 0) return await countFile(bundledModelPath(), flags.dtype, flags.json);
  if (flags.model !== undefined) return await countFile(flags.model, flags.dtype, flags.json);

  let entry: CatalogEntry | undefined;
  let config: HfConfig;
  let name: string;
  if (flags.arch !== undefined) {
    entry = CATALOG.find((e) => e.id === flags.arch!.toLowerCase());
    if (entry === undefined) fail(`unknown --arch "${flags.arch}"; known: ${catalogIds().join(", ")}`);
    config = entry.config;
    name = entry.name;
  } else {
    config = readConfig(flags.config!);
    name = flags.config!;
  }

  let count, coarse;
  try {
    count = countAnalytic(config);
    coarse = coarseEstimate(config);
  } catch (e) {
    fail(`cannot count ${name}: ${e instanceof Error ? e.message : String(e)}`);
  }
  let kv: KvCacheShape | undefined;
  if (count.family !== "bert") kv = kvCacheShape(config);
  const cost = costFigures(count, { kvCache: kv });
  const published = entry === undefined ? undefined : comparePublished(entry);

  if (flags.json) {
    const out = {
      name,
      ...count,
      coarse,
      cost,
      published: entry === undefined || published === undefined ? undefined : {
        total: entry.published,
        active: entry.publishedActive,
        relativeDifference: published.relativeDifference,
        note: entry.note,
        source: entry.source,
      },
    };
    console.log(JSON.stringify(out, null, 2));
    return;
  }

  console.log(`${name}${entry ? ` (${entry.year})` : ""}`);
  console.log(formatCount(count));
  console.log(
    `coarse V·d + N·(4d² + 8d² + 4d): ${coarse.value.toLocaleString("en-US")} ` +
      `(${(100 * coarse.relativeError).toFixed(2)}% vs analytic)`,
  );
  if (entry !== undefined && published !== undefined) {
    console.log(
      `published: ${humanCount(entry.published)} (${(100 * published.relativeDifference).toFixed(2)}% difference)` +
        (entry.note ? ` — ${entry.note}` : ""),
    );
    if (entry.publishedActive !== undefined) console.log(`published active: ${humanCount(entry.publishedActive)}`);
  }
  printCost(cost);
}

if (import.meta.main) await main(Deno.args);
