/**
 * Speed of inspecting a model's weights: all statistics (mean, std, min, max,
 * L2, mean |x|, near-zero fraction, 32-bin histogram) of every tensor, as MB
 * of stored weights per second, beside a plain `Deno.readFile` of the same
 * file measured in the same run (interleaved rep by rep, so load from other
 * processes hits both alike). Goal (issue 4): end-to-end inspection of the
 * fp32 file at ≥ 50% of the read throughput.
 *
 * Columns, per dtype (the bundled model's fp32 file, then its fp16, q8, int8
 * and q4 variants written by lib/quantize.ts into a temporary folder):
 * - `end to end`: `inspectWeights(path)`: read the file, decode the protobuf,
 *   resolve every name, dequantize every tensor, all statistics;
 * - `stats only`: `inspectWeights(list)` on a model already listed: dequantize
 *   and all statistics, no file reading or decoding.
 *
 * Then, for fp32, the time split into its parts (with, for reference, a
 * synchronous read into a buffer reused from rep to rep, which is how
 * `inspectWeights(path)` reads the file), and the statistics kernels of
 * lib/_stats.ts (WebAssembly SIMD vs the JavaScript fallback) over all tensors.
 *
 * Run `deno run -A bench/inspect_bench.ts` (`--tiny` for a seconds-long smoke
 * run, `--reps N`, `--model DIR` for another folder, `--json`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { bundledModelPath } from "../lib/load.ts";
import { readOnnx, tensorBytes } from "../lib/onnx.ts";
import { quantizeModel } from "../lib/quantize.ts";
import { inspectWeights, listParameters } from "../lib/weights.ts";
import { hasWasmStats, tensorSums } from "../lib/_stats.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    reps: { type: "string" },
    json: { type: "boolean", default: false },
    tiny: { type: "boolean", default: false },
  },
});
const REPS = Number(flags.reps ?? (flags.tiny ? 3 : 31));
if (!Number.isInteger(REPS) || REPS < 1) {
  console.error(`--reps must be a positive integer, got "${flags.reps}"`);
  Deno.exit(2);
}
const source = flags.model ?? bundledModelPath();
const BINS = 32;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Runs each named task once per rep, in turn, after one warm-up rep; returns the ms of each rep. */
async function interleaved(tasks: Record<string, () => Promise<unknown> | unknown>): Promise<Record<string, number[]>> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(tasks).map((k) => [k, []]));
  for (let r = 0; r <= REPS; r++) {
    for (const [k, fn] of Object.entries(tasks)) {
      const t = await timed(fn);
      if (r > 0) times[k].push(t);
    }
  }
  return times;
}

const medians = (times: Record<string, number[]>): Record<string, number> =>
  Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));

/** Median over reps of `a`'s time over `b`'s in the same rep (run back to back, so both see the same load). */
const pairedRatio = (a: number[], b: number[]): number => median(a.map((t, i) => t / b[i]));

// A temporary copy holding the fp32 file and config, and the variants written beside it.
const dir = await Deno.makeTempDir({ prefix: "paramscope-inspect-bench-" });
await Deno.mkdir(join(dir, "onnx"));
await Deno.copyFile(join(source, "config.json"), join(dir, "config.json"));
await Deno.copyFile(join(source, "onnx", "model.onnx"), join(dir, "onnx", "model.onnx"));
await quantizeModel(dir, { dtypes: ["fp16", "q8", "int8", "q4"] });

interface Row {
  dtype: string;
  fileMB: number;
  weightsMB: number;
  params: number;
  readMBs: number;
  endToEndMBs: number;
  statsOnlyMBs: number;
  /** End-to-end over read throughput, the median of the per-rep ratios: the goal's figure. */
  ratio: number;
  /** Stats-only over read throughput, likewise. */
  ratioStatsOnly: number;
}

const rows: Row[] = [];
const files: Record<string, string> = {
  fp32: "model.onnx",
  fp16: "model_fp16.onnx",
  q8: "model_quantized.onnx",
  int8: "model_int8.onnx",
  q4: "model_q4.onnx",
};
for (const [dtype, file] of Object.entries(files)) {
  const path = join(dir, "onnx", file);
  const bytes = (await Deno.stat(path)).size;
  const list = await listParameters(path);
  const probe = await inspectWeights(list, { bins: BINS });
  const times = await interleaved({
    read: () => Deno.readFile(path),
    endToEnd: () => inspectWeights(path, { bins: BINS }),
    statsOnly: () => inspectWeights(list, { bins: BINS }),
  });
  const ms = medians(times);
  const mb = probe.storedBytes / 1e6;
  // Throughput ratio = (weights MB / inspect time) / (file MB / read time), per rep, then the median.
  const perByte = mb / (bytes / 1e6);
  rows.push({
    dtype,
    fileMB: bytes / 1e6,
    weightsMB: mb,
    params: probe.total,
    readMBs: bytes / 1e6 / (ms.read / 1000),
    endToEndMBs: mb / (ms.endToEnd / 1000),
    statsOnlyMBs: mb / (ms.statsOnly / 1000),
    ratio: perByte * pairedRatio(times.read, times.endToEnd),
    ratioStatsOnly: perByte * pairedRatio(times.read, times.statsOnly),
  });
}

// Where the fp32 time goes, and the kernels on their own.
const fp32 = join(dir, "onnx", "model.onnx");
const onnx = await readOnnx(fp32);
const fp32List = await listParameters(onnx);
const raws = fp32List.params.map((p) => tensorBytes(onnx, p.storedName));
const reused = new Uint8Array((await Deno.stat(fp32)).size);
const split = medians(
  await interleaved({
    "Deno.readFile": () => Deno.readFile(fp32),
    "readSync into a reused buffer": () => {
      using file = Deno.openSync(fp32);
      for (let got = 0; got < reused.length;) got += file.readSync(reused.subarray(got)) ?? reused.length;
    },
    "readOnnx (read + decode)": () => readOnnx(fp32),
    "listParameters (+ names)": () => listParameters(fp32),
    "inspectWeights(list) (stats only)": () => inspectWeights(fp32List, { bins: BINS }),
    "inspectWeights(path) (end to end)": () => inspectWeights(fp32, { bins: BINS }),
  }),
);
const kernels = medians(
  await interleaved({
    wasm: () => raws.forEach((b) => tensorSums(b, 1e-3, { bins: BINS }, hasWasmStats() ? "wasm" : "js")),
    js: () => raws.forEach((b) => tensorSums(b, 1e-3, { bins: BINS }, "js")),
  }),
);
await Deno.remove(dir, { recursive: true });

const fp32Row = rows[0];
const goalMet = fp32Row.ratio >= 0.5;
if (flags.json) {
  console.log(
    JSON.stringify({ reps: REPS, bins: BINS, rows, fp32SplitMs: split, kernelsMs: kernels, goalMet }, null, 2),
  );
  Deno.exit(0);
}

const f = (v: number, d = 1) => v.toFixed(d);
console.log(
  `inspection vs Deno.readFile of the same file, all stats, ${BINS} bins: MB/s from the median times of ${REPS} ` +
    `interleaved reps, each ratio the median of the reps' own ratios\n`,
);
console.log(
  "| dtype | file MB | weights MB | params | readFile MB/s | end to end MB/s | ratio | stats only MB/s | ratio |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.dtype} | ${f(r.fileMB, 2)} | ${f(r.weightsMB, 2)} | ${r.params.toLocaleString("en-US")} | ` +
      `${f(r.readMBs, 0)} | ${f(r.endToEndMBs, 0)} | ${f(100 * r.ratio)}% | ${f(r.statsOnlyMBs, 0)} | ` +
      `${f(100 * r.ratioStatsOnly)}% |`,
  );
}
console.log(`\nfp32 split (ms, median):`);
for (const [k, v] of Object.entries(split)) console.log(`  ${k.padEnd(36)} ${f(v, 2)}`);
const values = raws.reduce((a, b) => a + b.byteLength / 4, 0);
console.log(`\nstatistics kernels over all ${values.toLocaleString("en-US")} fp32 values (lib/_stats.ts, ms, median):`);
console.log(`  WebAssembly SIMD ${f(kernels.wasm, 2)} (${f((kernels.wasm * 1e6) / values, 2)} ns/value)`);
console.log(`  JavaScript       ${f(kernels.js, 2)} (${f((kernels.js * 1e6) / values, 2)} ns/value)`);
console.log(`  speed-up         ${f(kernels.js / kernels.wasm, 2)}×`);
console.log(
  `\ngoal (end-to-end inspection of fp32, all stats, ≥ 50% of readFile throughput): ` +
    `${goalMet ? "met" : "not met"} at ${f(100 * fp32Row.ratio)}% (stats only: ${f(100 * fp32Row.ratioStatsOnly)}%)`,
);
