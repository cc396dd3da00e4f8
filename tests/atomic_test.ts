/**
 * Nothing lost: every file the kit writes goes through `writeFileAtomic` (temporary name beside the
 * target, then rename), so a run that fails or is killed mid-write never leaves a half-written
 * file where a good one was, and a failed write leaves no temporary file behind.
 */
import { assert, assertEquals, assertRejects } from "@std/assert";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic, writeFileAtomicSync } from "../lib/_fs.ts";
import { exportModel } from "../lib/export.ts";
import { DataType, makeModel, makeNode, makeTensor, makeValueInfo, writeOnnx } from "../lib/onnx.ts";
import { bar, inlinePlotlyFile } from "../lib/plot.ts";
import { tokenize, TokenView } from "../lib/tokenize.ts";
import { initGpt2Params, saveCheckpoint } from "../lib/train.ts";
import { loadModel } from "../lib/load.ts";
import type { Gpt2Config } from "../lib/types.ts";
import { byteTokenizer, randomParams, TINY_GPT2 } from "./_fixtures.ts";

const LIB = fileURLToPath(new URL("../lib/", import.meta.url));
const GOOD = "a good file that must survive\n";

/** Every file under `dir` (relative paths) with its contents. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else out.set(p.slice(dir.length + 1), await Deno.readTextFile(p).catch(() => "<binary>"));
    }
  };
  await walk(dir);
  return out;
}

/**
 * Runs `fn` while every rename fails, as if the process died after writing the temporary file and
 * before moving it into place. Returns the renames that were attempted and what `fn` threw.
 */
async function withFailingRename(fn: () => Promise<unknown>): Promise<{ renames: [string, string][]; error: unknown }> {
  const rename = Deno.rename, renameSync = Deno.renameSync;
  const renames: [string, string][] = [];
  const fail = (from: string | URL, to: string | URL) => {
    renames.push([String(from), String(to)]);
    throw new Deno.errors.PermissionDenied("simulated failure between the write and the rename");
  };
  Deno.rename = (from, to) => Promise.resolve().then(() => fail(from, to));
  Deno.renameSync = fail;
  try {
    await fn();
    return { renames, error: undefined };
  } catch (error) {
    return { renames, error };
  } finally {
    Deno.rename = rename;
    Deno.renameSync = renameSync;
  }
}

/** Asserts a writer only renames within the target's folder, keeps the old files, leaves no temp file. */
async function checkWriter(
  name: string,
  targets: string[],
  write: (dir: string) => Promise<unknown>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  for (const t of targets) {
    await Deno.mkdir(dirname(join(dir, t)), { recursive: true });
    await Deno.writeTextFile(join(dir, t), GOOD);
  }
  const before = await snapshot(dir);
  const { renames, error } = await withFailingRename(() => write(dir));
  assert(error instanceof Deno.errors.PermissionDenied, `${name}: the failed rename must surface, got ${error}`);
  assert(renames.length > 0, `${name}: wrote without a rename (not through writeFileAtomic)`);
  for (const [from, to] of renames) {
    assertEquals(dirname(from), dirname(to), `${name}: the temporary file must sit beside its target`);
    assert(basename(from).startsWith(`${basename(to)}.tmp-`), `${name}: temporary name ${from}`);
  }
  assertEquals(await snapshot(dir), before, `${name}: files changed or a temporary file was left behind`);
  // With renames working, the same call replaces the targets and leaves only them.
  await write(dir);
  const after = await snapshot(dir);
  for (const t of targets) assert(after.get(t) !== GOOD, `${name}: ${t} was not replaced`);
  assert([...after.keys()].every((k) => !k.includes(".tmp-")), `${name}: temporary files left: ${[...after.keys()]}`);
  await Deno.remove(dir, { recursive: true });
}

const idGraph = () =>
  makeModel({
    name: "t",
    nodes: [makeNode("Add", ["x", "w"], ["y"])],
    inputs: [makeValueInfo("x", DataType.FLOAT, [4])],
    outputs: [makeValueInfo("y", DataType.FLOAT, [4])],
    initializers: [makeTensor("w", [1024], new Float32Array(1024).fill(0.5))],
  });

Deno.test("writeOnnx() replaces a model (and its external data) only by rename", async () => {
  await checkWriter("writeOnnx", ["m.onnx"], (dir) => writeOnnx(idGraph(), join(dir, "m.onnx")));
  await checkWriter(
    "writeOnnx external",
    ["m.onnx", "m.onnx_data"],
    (dir) => writeOnnx(idGraph(), join(dir, "m.onnx"), { externalDataThreshold: 64 }),
  );
});

Deno.test("exportModel() replaces each file of a model folder only by rename", async () => {
  const tokenizer = byteTokenizer();
  await checkWriter(
    "exportModel",
    ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"],
    (dir) => exportModel(dir, { config: TINY_GPT2, params: randomParams(TINY_GPT2), tokenizer }),
  );
});

Deno.test("Figure.writeHtml() and inlinePlotlyFile() replace a page only by rename", async () => {
  await checkWriter("Figure.writeHtml", ["plot.html"], (dir) => bar([1, 2, 3]).writeHtml(join(dir, "plot.html")));
  await checkWriter("inlinePlotlyFile", ["page.html"], async (dir) => {
    const src = join(dir, "..", `${basename(dir)}-src.html`);
    await Deno.writeTextFile(
      src,
      '<html><head><script src="https://cdn.plot.ly/plotly-2.0.0.min.js"></script></head></html>',
    );
    await inlinePlotlyFile(src, join(dir, "page.html"));
  });
});

Deno.test("TokenView.writeHtml() replaces a page only by rename", async () => {
  const model = await loadModel(undefined, { tokenizerOnly: true });
  const view = new TokenView(tokenize(model, "The cat sat."));
  await checkWriter("TokenView.writeHtml", ["tokens.html"], (dir) => view.writeHtml(join(dir, "tokens.html")));
});

Deno.test("saveCheckpoint() replaces a checkpoint only by rename", async () => {
  const config: Gpt2Config = {
    family: "gpt2",
    vocabSize: 11,
    maxPositions: 8,
    dModel: 8,
    nLayer: 1,
    nHead: 2,
    dMlp: 32,
    normEps: 1e-5,
  };
  const params = initGpt2Params(config, () => 0.25);
  const n = [...params.values()].reduce((a, t) => a + t.data.length, 0);
  const ckpt = {
    config,
    step: 3,
    params,
    adamM: new Float32Array(n),
    adamV: new Float32Array(n),
    rngState: 1,
    batchSize: 2,
    seqLen: 8,
    history: [],
    evals: [],
  };
  await checkWriter("saveCheckpoint", ["run.ckpt"], (dir) => saveCheckpoint(join(dir, "run.ckpt"), ckpt));
});

Deno.test("writeFileAtomic() leaves an existing folder untouched and no temporary file when the rename is refused", async () => {
  const dir = await Deno.makeTempDir();
  const target = join(dir, "target");
  await Deno.mkdir(target);
  await Deno.writeTextFile(join(target, "inside.txt"), GOOD);
  await assertRejects(() => writeFileAtomic(target, "new"), Error);
  let syncError: unknown;
  try {
    writeFileAtomicSync(target, new Uint8Array([1, 2, 3]));
  } catch (e) {
    syncError = e;
  }
  assert(syncError instanceof Error, "the sync write must fail too");
  assertEquals([...(await snapshot(dir)).entries()], [["target/inside.txt", GOOD]]);
  // A write into a missing folder fails before creating anything.
  await assertRejects(() => writeFileAtomic(join(dir, "no", "such", "file"), "x"), Deno.errors.NotFound);
  assertEquals((await snapshot(dir)).size, 1);
});

Deno.test("a process killed in the middle of a 512 MiB write leaves the good file intact", async () => {
  const dir = await Deno.makeTempDir();
  const target = join(dir, "weights.bin");
  await Deno.writeTextFile(target, GOOD);
  const size = 512 * 2 ** 20;
  const code = `
    import { writeFileAtomic } from ${JSON.stringify(new URL("../lib/_fs.ts", import.meta.url).href)};
    await writeFileAtomic(${JSON.stringify(target)}, new Uint8Array(${size}).fill(0x42));
    console.log("finished");
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Kill it once the temporary file has some bytes but not all of them.
  let seen = -1;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const tmp = [...Deno.readDirSync(dir)].find((e) => e.name.startsWith("weights.bin.tmp-"));
    if (tmp) {
      const bytes = Deno.statSync(join(dir, tmp.name)).size;
      if (bytes > 0 && bytes < size) {
        seen = bytes;
        child.kill("SIGKILL");
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const status = await child.status;
  await child.stdout.cancel();
  await child.stderr.cancel();
  assert(seen > 0, "the write was never observed in progress");
  assertEquals(status.signal, "SIGKILL");
  assertEquals(await Deno.readTextFile(target), GOOD);
  // A killed process cannot clean up: what it leaves is its own temporary file, never the target.
  const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assertEquals(left[0], "weights.bin");
  assert(left.slice(1).every((n) => /^weights\.bin\.tmp-\d+-[0-9a-f]{8}$/.test(n)), JSON.stringify(left));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("no module in lib/ writes a file except through lib/_fs.ts", async () => {
  const direct =
    /\bDeno\.(writeFile|writeTextFile|writeFileSync|writeTextFileSync|create|createSync|copyFile|copyFileSync|truncate|truncateSync)\s*\(|\bDeno\.open(Sync)?\([^)]*write|from\s+["']node:fs/;
  const offenders: string[] = [];
  for await (const e of Deno.readDir(LIB)) {
    if (!e.name.endsWith(".ts") || e.name === "_fs.ts") continue;
    const lines = (await Deno.readTextFile(join(LIB, e.name))).split("\n");
    lines.forEach((line, i) => {
      const code = line.trim();
      if (code.startsWith("*") || code.startsWith("//") || code.startsWith("/*")) return; // doc examples
      if (direct.test(code)) offenders.push(`lib/${e.name}:${i + 1}: ${code}`);
    });
  }
  assertEquals(offenders, []);
});
