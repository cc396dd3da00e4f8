/**
 * Write fp16 / q8 / int8 / q4 variants of a model folder's `onnx/model.onnx`
 * beside it, and print each file's size and its ratio to fp32.
 *
 * ```sh
 * deno run --allow-read --allow-write scripts/quantize.ts --model DIR --dtypes fp16,q8,q4
 * deno run --allow-read --allow-write scripts/quantize.ts --model DIR --dtypes q4 --block-size 64 --json
 * ```
 *
 * `--json` prints `{ dir, source, sourceBytes, variants: [{ dtype, file, path, bytes, ratio, converted }] }`.
 * Exit codes: 0 ok, 2 bad usage or a model that cannot be read.
 *
 * @module
 */
import { OnnxFormatError } from "../lib/onnx.ts";
import { QUANT_DTYPES, type QuantDtype, quantizeModel, type QuantizeResult } from "../lib/quantize.ts";
import { fail, parseFlags } from "./_cli.ts";

const USAGE = `usage: quantize.ts --model DIR [--dtypes fp16,q8,int8,q4] [--block-size N] [--per-channel]
                   [--weight-type uint8|int8] [--accuracy-level N] [--json]
  --model DIR         model folder holding onnx/model.onnx (Hugging Face layout)
  --dtypes LIST       comma-separated variants to write (default: fp16,q8,q4)
  --block-size N      q4 block size along K, a power of two >= 16 (default 32)
  --per-channel       q8: one scale and zero point per output column
  --weight-type T     q8 weight type: uint8 (default) or int8
  --accuracy-level N  q4: MatMulNBits accuracy_level 0-4 (default: not written)
  --json              print JSON instead of a table`;

function table(r: QuantizeResult): string {
  const rows = [
    ["file", "bytes", "vs fp32", "tensors converted"],
    ["model.onnx (fp32)", r.sourceBytes.toLocaleString("en-US"), "1.000", ""],
    ...r.variants.map((v) => [
      `${v.file} (${v.dtype})`,
      v.bytes.toLocaleString("en-US"),
      v.ratio.toFixed(3),
      String(v.converted.length),
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows.map((row) =>
    row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join("  ").trimEnd()
  ).join("\n");
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    model: { type: "string" },
    dtypes: { type: "string", default: "fp16,q8,q4" },
    "block-size": { type: "string" },
    "per-channel": { type: "boolean", default: false },
    "weight-type": { type: "string" },
    "accuracy-level": { type: "string" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  if (flags.model === undefined) fail(`--model DIR is required\n${USAGE}`);
  const dtypes = flags.dtypes.split(",").map((d) => d.trim()).filter((d) => d !== "");
  const unknown = dtypes.filter((d) => !QUANT_DTYPES.includes(d as QuantDtype));
  if (unknown.length > 0 || dtypes.length === 0) {
    fail(`--dtypes "${flags.dtypes}": use a comma-separated list of ${QUANT_DTYPES.join(", ")}`);
  }
  const int = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n)) fail(`--${flag} must be an integer, got "${text}"`);
    return n;
  };
  const weightType = flags["weight-type"];
  if (weightType !== undefined && weightType !== "uint8" && weightType !== "int8") {
    fail(`--weight-type must be uint8 or int8, got "${weightType}"`);
  }
  let result: QuantizeResult;
  try {
    result = await quantizeModel(flags.model, {
      dtypes: dtypes as QuantDtype[],
      blockSize: int("block-size", flags["block-size"]),
      perChannel: flags["per-channel"],
      weightType,
      accuracyLevel: int("accuracy-level", flags["accuracy-level"]),
    });
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError || e instanceof OnnxFormatError) fail(e.message);
    throw e;
  }
  console.log(flags.json ? JSON.stringify(result, null, 2) : table(result));
}

if (import.meta.main) await main(Deno.args);
