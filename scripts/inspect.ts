/**
 * Inspect a model's weights tensor by tensor: readable name, shape, stored
 * dtype, mean, std, min, max, L2 norm, fraction near zero, quantization error
 * bound; then weights vs biases vs gains per layer.
 *
 * ```sh
 * deno run --allow-read scripts/inspect.ts                         # the bundled model, as a table
 * deno run --allow-read scripts/inspect.ts --model path/to/folder --dtype q4 --filter 'attn'
 * deno run --allow-read scripts/inspect.ts --json --bins 16        # [{ name, shape, dtype, component, kind, stats }, ...]
 * deno run -A scripts/inspect.ts --model Xenova/gpt2 --dtype q8    # a hub id (downloads through lib/load.ts)
 * ```
 *
 * A local folder or `.onnx` file is read directly; a hub id goes through
 * `loadModel(id, { tokenizerOnly: true })`, so ONNX Runtime is never started.
 * Exit codes: 0 ok, 2 bad usage or a model that cannot be read.
 *
 * @module
 */
import { bundledModelPath, type Dtype, DTYPE_FILES, loadModel } from "../lib/load.ts";
import { formatInspect, inspectWeights, type WeightSource } from "../lib/weights.ts";
import { fail, parseFlags } from "./_cli.ts";

const USAGE = `usage: inspect.ts [--model ID|PATH] [--dtype DTYPE] [--filter REGEX] [--json] [--bins N] [--near-zero T]
  --model ID|PATH  a model folder, a .onnx file, or a hub id (default: the bundled model)
  --dtype DTYPE    which weights file of a folder: ${Object.keys(DTYPE_FILES).join(", ")} (default fp32)
  --filter REGEX   only tensors whose readable name matches
  --json           print a JSON array of { name, shape, dtype, component, kind, stats, ... }
  --bins N         histogram bins per tensor (default 32; 0 for none)
  --near-zero T    |x| <= T counts as near zero (default 0.001)`;

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A folder or file path is read directly; an `owner/name` that is not a path is a hub id. */
async function openSource(model: string | undefined, dtype: Dtype): Promise<WeightSource> {
  if (model === undefined) return bundledModelPath();
  if (exists(model)) return model;
  if (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(model) && !model.startsWith(".")) {
    return await loadModel(model, { dtype, tokenizerOnly: true });
  }
  fail(`no model folder or .onnx file at "${model}", and it is not a hub id of the form owner/name`);
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    model: { type: "string" },
    dtype: { type: "string", default: "fp32" },
    filter: { type: "string" },
    json: { type: "boolean", default: false },
    bins: { type: "string", default: "32" },
    "near-zero": { type: "string", default: "0.001" },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  const dtype = flags.dtype as Dtype;
  if (!Object.hasOwn(DTYPE_FILES, dtype)) {
    fail(`unknown --dtype "${flags.dtype}"; use one of ${Object.keys(DTYPE_FILES).join(", ")}`);
  }
  const bins = Number(flags.bins);
  if (!Number.isInteger(bins) || bins < 0) fail(`--bins must be a non-negative integer, got "${flags.bins}"`);
  const nearZero = Number(flags["near-zero"]);
  if (!(nearZero >= 0)) fail(`--near-zero must be a number ≥ 0, got "${flags["near-zero"]}"`);
  let filter: RegExp | undefined;
  if (flags.filter !== undefined) {
    try {
      filter = new RegExp(flags.filter);
    } catch (e) {
      fail(`--filter is not a valid regular expression: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  let result;
  try {
    const source = await openSource(flags.model, dtype);
    result = await inspectWeights(source, { dtype, filter, bins, nearZero });
  } catch (e) {
    fail(`cannot inspect ${flags.model ?? "the bundled model"}: ${e instanceof Error ? e.message : String(e)}`);
  }

  if (flags.json) {
    const rows = result.rows.map((r) => ({
      name: r.name,
      shape: r.shape,
      dims: r.dims,
      dtype: r.dtype,
      component: r.component,
      kind: r.kind,
      layer: r.layer,
      storedName: r.storedName,
      transposed: r.transposed,
      tied: r.tied,
      quantization: r.quantization,
      stats: r.stats,
      quantError: r.quantError,
    }));
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  console.log(result.path ?? flags.model ?? "bundled model");
  console.log(formatInspect(result));
}

if (import.meta.main) await main(Deno.args);
