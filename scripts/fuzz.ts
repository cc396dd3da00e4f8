/**
 * Fuzz the kit's model-file readers with seeded mutations of the bundled model's files, and print
 * the case count and the breakdown of outcomes. Exit code 1 when any case crashed, hung, threw an
 * untyped error, accepted external data outside the model folder, or allocated more than the file
 * holds.
 *
 * ```sh
 * deno task fuzz --cases 10000 --seed 7          # a long run: table of outcomes
 * deno task fuzz --cases 500 --json              # the report as JSON
 * deno task fuzz --e2e 6                         # also: mutated folders through loadModel + ONNX Runtime
 * deno run ... scripts/fuzz.ts --load DIR        # one folder through loadModel and a forward pass
 * ```
 *
 * `--load DIR` prints `ok` (exit 0) or `error: <class>: <message>` (exit 1); the test suite and
 * `--e2e` run it in a subprocess to check that no mutated model crashes the process.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type CaseResult,
  denoCommand,
  loadFuzzBase,
  loadPermissions,
  ONNX_MUTATION_NAMES,
  runFuzz,
  writeMutatedModel,
} from "../lib/_fuzz.ts";
import { loadModel } from "../lib/load.ts";

const USAGE = `usage: fuzz.ts [--cases N] [--seed S] [--timeout MS] [--json] [--verbose] [--e2e N] | --load DIR
  --cases N      cases to run (default 300)
  --seed S       run seed (default 1)
  --timeout MS   time bound of one case (default 2000)
  --json         print the report as JSON
  --verbose      print every case as it ends
  --e2e N        also load N mutated model folders through loadModel + ONNX Runtime in subprocesses
  --only I,J     run only these case numbers of the seed (to reproduce a failure)
  --load DIR     load one folder with loadModel, run one forward pass, print ok or the error`;

const { values } = parseArgs({
  options: {
    cases: { type: "string", default: "300" },
    seed: { type: "string", default: "1" },
    timeout: { type: "string", default: "2000" },
    json: { type: "boolean", default: false },
    verbose: { type: "boolean", default: false },
    e2e: { type: "string", default: "0" },
    load: { type: "string" },
    only: { type: "string" },
    help: { type: "boolean", default: false },
  },
});

if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}

function wholeNumber(flag: string, text: string): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(n)) {
    console.error(`--${flag} must be a whole number, got ${JSON.stringify(text)}\n${USAGE}`);
    Deno.exit(2);
  }
  return n;
}

/** One folder through the real loader and one forward pass; the exit code says how it went. */
async function loadOne(dir: string): Promise<never> {
  try {
    const m = await loadModel(dir, { offline: true });
    try {
      await m.model!(m.tokenizer("The king and the queen"));
    } finally {
      await m.dispose();
    }
    console.log("ok");
    Deno.exit(0);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    console.error(`error: ${err.name}: ${err.message.split("\n")[0].slice(0, 400)}`);
    Deno.exit(1);
  }
}

if (values.load !== undefined) await loadOne(values.load);

const cases = wholeNumber("cases", values.cases!);
const seed = wholeNumber("seed", values.seed!);
const timeoutMs = wholeNumber("timeout", values.timeout!);
const e2e = wholeNumber("e2e", values.e2e!);

const only = values.only?.split(",").map((x) => wholeNumber("only", x.trim()));
const report = await runFuzz({
  cases,
  seed,
  timeoutMs,
  only,
  onResult: (r: CaseResult) => {
    if (values.verbose || !r.pass) {
      console.error(`${String(r.index).padStart(6)} ${r.target.padEnd(16)} ${r.outcome.padEnd(22)} ${r.mutation}`);
    }
  },
});

/** End-to-end: mutated folders through loadModel + ONNX Runtime, each in its own process. */
async function endToEnd(n: number): Promise<{ kind: string; code: number; signal: string | null; line: string }[]> {
  const out = [];
  const root = await Deno.makeTempDir({ prefix: "paramscope-fuzz-e2e-" });
  const base = await loadFuzzBase();
  try {
    for (let i = 0; i < n; i++) {
      const dir = join(root, `m${i}`);
      const kind = ONNX_MUTATION_NAMES[(seed + i) % ONNX_MUTATION_NAMES.length];
      const label = await writeMutatedModel(dir, kind, seed * 1000 + i, base);
      const res = await new Deno.Command(denoCommand(), {
        args: ["run", "--quiet", ...loadPermissions(dir), fileURLToPath(import.meta.url), "--load", dir],
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const text = new TextDecoder().decode(res.code === 0 ? res.stdout : res.stderr).trim().split("\n").pop() ?? "";
      out.push({ kind: label.slice(0, 100), code: res.code, signal: res.signal, line: text.slice(0, 200) });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  return out;
}

const e2eResults = e2e > 0 ? await endToEnd(e2e) : [];
const e2eFailures = e2eResults.filter((r) => r.signal !== null || (r.code !== 0 && r.code !== 1));

if (values.json) {
  console.log(JSON.stringify({ ...report, e2e: e2eResults }, null, 2));
} else {
  console.log(
    `fuzz: ${report.cases} cases, seed ${report.seed}, ${
      (report.ms / 1000).toFixed(1)
    } s, slowest case ${report.slowestMs} ms`,
  );
  if (!report.symlinks) console.log("note: no symlink cases (creating a symlink needs unscoped --allow-write)");
  console.log("outcome                          count");
  for (const [k, v] of Object.entries(report.byOutcome).sort((a, b) => b[1] - a[1])) {
    console.log(`${k.padEnd(32)} ${String(v).padStart(6)}`);
  }
  console.log("\nby target");
  for (const [t, m] of Object.entries(report.byTarget)) {
    console.log(`  ${t.padEnd(18)} ${Object.entries(m).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  }
  console.log("\nslowest cases");
  for (const c of report.slowest) {
    console.log(`  ${String(c.ms).padStart(5)} ms  #${c.index} ${c.mutation.slice(0, 100)}`);
  }
  for (const r of e2eResults) console.log(`e2e exit ${r.code}${r.signal ? ` ${r.signal}` : ""}  ${r.kind}  ${r.line}`);
  console.log(`\n${report.cases - report.failures.length} passed, ${report.failures.length} failed`);
}
for (const f of report.failures) {
  console.error(`FAILED case ${f.index}: ${f.outcome} ${f.mutation} :: ${f.message}`);
  console.error(`  reproduce: deno task fuzz --seed ${seed} --only ${f.index} --verbose`);
}
for (const f of e2eFailures) console.error(`FAILED e2e: ${f.kind} exit ${f.code} signal ${f.signal}`);
Deno.exit(report.failures.length + e2eFailures.length > 0 ? 1 : 0);
