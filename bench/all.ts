/**
 * Runs every benchmark in this folder, one after another, and prints their
 * tables. Each benchmark reports ratios against a baseline measured in the
 * same run, never absolute pass/fail times.
 *
 *   deno task bench            # full settings
 *   deno task bench --tiny     # seconds-long settings (what CI's smoke test runs)
 *   deno task bench forward    # only benchmarks whose file name contains "forward"
 *
 * @module
 */
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { tiny: { type: "boolean", default: false } },
});

/** Each benchmark with the arguments of its seconds-long setting. */
const BENCHES: { file: string; tiny: string[]; denoBench?: boolean }[] = [
  { file: "forward_bench.ts", tiny: ["--tiny"] },
  { file: "parity_bench.ts", tiny: ["--tiny"] },
  { file: "train_bench.ts", tiny: ["--steps", "2", "--d", "32", "--layers", "1", "--vocab", "256", "--seq", "16"] },
  { file: "inspect_bench.ts", tiny: ["--tiny"] },
  { file: "embed_bench.ts", tiny: ["--tiny"] },
  { file: "sample_bench.ts", tiny: [], denoBench: true },
  { file: "bpe_bench.ts", tiny: ["--docs", "5", "--reps", "1"] },
];

let failed = 0;
for (const b of BENCHES) {
  if (positionals.length && !positionals.some((p) => b.file.includes(p))) continue;
  const url = new URL(`./${b.file}`, import.meta.url);
  try {
    await Deno.stat(url);
  } catch {
    continue; // not every checkout has every benchmark
  }
  console.log(`\n## ${b.file}${values.tiny ? " (tiny)" : ""}\n`);
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      b.denoBench ? "bench" : "run",
      "--quiet",
      "--allow-read",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      "--allow-write=/tmp",
      url.pathname,
      ...(values.tiny ? b.tiny : []),
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!r.success) {
    failed++;
    console.log(`${b.file} exited with code ${r.code}`);
  }
}
Deno.exit(failed ? 1 : 0);
