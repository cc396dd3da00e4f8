/**
 * Every script runs in its tiny setting, as a user would run it (a
 * subprocess with the task's permissions, no network).
 */
import { assert, assertEquals, assertGreater, assertStringIncludes } from "@std/assert";
import { join } from "node:path";
import { loadModel } from "../lib/load.ts";

async function run(
  script: string,
  args: string[],
  perms: string[],
): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...perms, new URL(`../scripts/${script}`, import.meta.url).pathname, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}

Deno.test("train --preset tiny improves on a uniform guess and exports a model transformers.js loads", async () => {
  const out = await Deno.makeTempDir({ prefix: "paramscope-train-" });
  const r = await run("train.ts", ["--preset", "tiny", "--steps", "30", "--out", out], [
    "--allow-read",
    "--allow-env",
    `--allow-write=${out},/tmp`,
    "--allow-sys",
  ]);
  assertEquals(r.code, 0, r.err);
  const figures = JSON.parse(r.out);
  assertEquals(figures.steps, 30);
  // 30 steps from random init must already improve on the loss of a uniform guess, ln(vocab).
  assert(figures.heldOut.loss < Math.log(figures.config.vocabSize), JSON.stringify(figures.heldOut));
  assertStringIncludes(await Deno.readTextFile(join(out, "README.md")), "held-out");
  const m = await loadModel(out);
  try {
    const gen = await m.model!.generate({ ...m.tokenizer("The jury"), max_new_tokens: 4, do_sample: false });
    assertEquals((gen as { tolist(): bigint[][] }).tolist()[0].length, m.tokenizer.encode("The jury").length + 4);
  } finally {
    await m.dispose();
  }
});

Deno.test("train rejects an unknown preset and a bad learning rate with exit code 2", async () => {
  const bad = await run("train.ts", ["--preset", "huge"], ["--allow-read", "--allow-env"]);
  assertEquals(bad.code, 2);
  assertStringIncludes(bad.err, "Known: bundled, tiny");
  const nan = await run("train.ts", ["--preset", "tiny", "--lr", "NaN", "--out", "/tmp/x"], [
    "--allow-read",
    "--allow-env",
  ]);
  assertEquals(nan.code, 2);
  assertStringIncludes(nan.err, "--lr must be a positive number");
});

Deno.test("make-model --tiny writes a complete model folder", async () => {
  const out = await Deno.makeTempDir({ prefix: "paramscope-make-" });
  const r = await run("make_model.ts", ["--tiny", "--out", out], [
    "--allow-read",
    "--allow-env",
    `--allow-write=${out}`,
  ]);
  assertEquals(r.code, 0, r.err);
  for (
    const f of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"]
  ) {
    assertGreater((await Deno.stat(join(out, f))).size, 10, f);
  }
});
