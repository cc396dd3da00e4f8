/**
 * Speed of inspecting a model's weights end to end (read the file, decode the
 * protobuf, resolve every name, dequantize every tensor, all statistics) as MB
 * of stored weights per second, beside a plain `Deno.readFile` of the same
 * file measured in the same run (the two are interleaved rep by rep, so load
 * from other processes hits both alike). Goal: inspection ≥ 50% of the read
 * throughput.
 *
 * Rows: the bundled model's fp32 file, then its fp16, q8, int8 and q4 variants
 * written by lib/quantize.ts into a temporary folder; for fp32 also the time
 * split into decode, names, moments and histogram.
 *
 * Run `deno run -A bench/inspect_bench.ts` (`--tiny` for a seconds-long smoke
 * run, `--reps N`, `--model DIR` for another folder, `--json`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { bundledModelPath } from "../lib/load.ts";
import { readOnnx } from "../lib/onnx.ts";
import { quantizeModel } from "../lib/quantize.ts";
import { inspectWeights, listParameters, loadParams, tensorStats } from "../lib/weights.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    reps: { type: "string" },
    json: { type: "boolean", default: false },
    tiny: { type: "boolean", default: false },
  },
});
const REPS = Number(flags.reps ?? (flags.tiny ? 3 : 21));
if (!Number.isInteger(REPS) || REPS < 1) {
  console.error(`--reps must be a positive integer, got "${flags.reps}"`);
  Deno.exit(2);
}
const source = flags.model ?? bundledModelPath();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

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
  inspectMBs: number;
  inspectNoHistMBs: number;
  ratio: number;
  ratioNoHist: number;
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
  const probe = await inspectWeights(path, { bins: 0 });
  const read: number[] = [], full: number[] = [], noHist: number[] = [];
  // One warm-up round, then interleaved reps.
  for (let r = 0; r <= REPS; r++) {
    const a = await timed(() => Deno.readFile(path));
    const b = await timed(() => inspectWeights(path, { bins: 32 }));
    const c = await timed(() => inspectWeights(path, { bins: 0 }));
    if (r === 0) continue;
    read.push(a), full.push(b), noHist.push(c);
  }
  const mb = probe.storedBytes / 1e6;
  const readMBs = bytes / 1e6 / (median(read) / 1000);
  const inspectMBs = mb / (median(full) / 1000);
  const inspectNoHistMBs = mb / (median(noHist) / 1000);
  rows.push({
    dtype,
    fileMB: bytes / 1e6,
    weightsMB: mb,
    params: probe.total,
    readMBs,
    inspectMBs,
    inspectNoHistMBs,
    ratio: inspectMBs / readMBs,
    ratioNoHist: inspectNoHistMBs / readMBs,
  });
}

// Where the fp32 time goes.
const fp32 = join(dir, "onnx", "model.onnx");
const tensors = [...(await loadParams(fp32)).values()].map((t) => t.data);
const parts: Record<string, number[]> = { "readFile": [], "readOnnx (read + decode)": [], "listParameters": [] };
parts["moments (all tensors)"] = [];
parts["moments + histogram"] = [];
for (let r = 0; r <= REPS; r++) {
  const t = [
    await timed(() => Deno.readFile(fp32)),
    await timed(() => readOnnx(fp32)),
    await timed(() => listParameters(fp32)),
    await timed(() => tensors.forEach((d) => tensorStats(d, { bins: 0 }))),
    await timed(() => tensors.forEach((d) => tensorStats(d, { bins: 32 }))),
  ];
  if (r === 0) continue;
  Object.values(parts).forEach((list, i) => list.push(t[i]));
}
await Deno.remove(dir, { recursive: true });

if (flags.json) {
  const split = Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, median(v)]));
  console.log(JSON.stringify({ reps: REPS, rows, fp32SplitMs: split }, null, 2));
  Deno.exit(0);
}

const f = (v: number, d = 1) => v.toFixed(d);
console.log(`inspect vs Deno.readFile, median of ${REPS} interleaved reps (one core)\n`);
console.log(
  "| dtype | file MB | weights MB | params | readFile MB/s | inspect MB/s | ratio | no histogram MB/s | ratio |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.dtype} | ${f(r.fileMB, 2)} | ${f(r.weightsMB, 2)} | ${r.params.toLocaleString("en-US")} | ${
      f(r.readMBs, 0)
    } | ` +
      `${f(r.inspectMBs, 0)} | ${f(100 * r.ratio)}% | ${f(r.inspectNoHistMBs, 0)} | ${f(100 * r.ratioNoHist)}% |`,
  );
}
console.log(`\nfp32 split (ms, median):`);
for (const [k, v] of Object.entries(parts)) console.log(`  ${k.padEnd(26)} ${f(median(v), 2)}`);
const goal = rows[0].ratio >= 0.5 ? "met" : "not met";
console.log(
  `\ngoal (inspect ≥ 50% of readFile throughput, fp32, all stats): ${goal} at ${f(100 * rows[0].ratio)}% ` +
    `(${f(100 * rows[0].ratioNoHist)}% without histograms)`,
);
