/**
 * The benchmarks' tiny settings run in CI (as `deno task bench --tiny` would), so a benchmark that
 * breaks is caught here; their timings are not checked (speed is measured by `deno task bench`,
 * as ratios, never asserted).
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { fileURLToPath } from "node:url";

const ALL = fileURLToPath(new URL("../bench/all.ts", import.meta.url));
const BENCHES = [...Deno.readDirSync(fileURLToPath(new URL("../bench/", import.meta.url)))]
  .map((e) => e.name).filter((n) => n.endsWith("_bench.ts")).sort();

Deno.test("every benchmark runs in its tiny setting and prints its table", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-run", "--allow-env", ALL, "--tiny"],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout), err = new TextDecoder().decode(r.stderr);
  assertEquals(r.code, 0, `${out.slice(-2000)}\n${err.slice(-2000)}`);
  assert(BENCHES.length >= 7, BENCHES.join(", "));
  for (const b of BENCHES) {
    assertStringIncludes(out, `## ${b} (tiny)`);
    assert(!out.includes(`${b} exited with code`), `${b} failed`);
  }
  // Every benchmark reports against a baseline measured in the same run.
  assert((out.match(/×|x faster|x slower|%/g) ?? []).length >= BENCHES.length, out.slice(0, 3000));
});
