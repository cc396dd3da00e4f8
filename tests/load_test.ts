import { assert, assertEquals, assertGreater, assertRejects, assertStringIncludes } from "@std/assert";
import { join } from "node:path";
import { archFromConfig, bundledModelPath, loadModel, ModelLoadError } from "../lib/load.ts";
import { TINY_LLAMA, tinyModelDir } from "./_fixtures.ts";

Deno.test("loadModel() loads the bundled model offline and generate() returns tokens", async () => {
  const m = await loadModel(undefined, { offline: true });
  try {
    assertEquals(m.source, "bundled");
    assertEquals(m.config.model_type, "gpt2");
    assertEquals(m.arch?.family, "gpt2");
    assert(m.files.some((f) => f.endsWith(join("onnx", "model.onnx"))));
    const inputs = m.tokenizer("The king and the queen");
    const out = await m.model!.generate({ ...inputs, max_new_tokens: 5, do_sample: false });
    const ids = (out as { tolist(): bigint[][] }).tolist()[0];
    assertEquals(ids.length, (inputs.input_ids.dims as number[])[1] + 5);
  } finally {
    await m.dispose();
  }
});

Deno.test("the bundled tokenizer round-trips English, Chinese, emoji and code", async () => {
  const m = await loadModel(undefined, { tokenizerOnly: true });
  for (
    const text of ["The table and the chair.", "参数是模型的核心", "emoji 🚀 ok", "const x = f(a, b);\n\treturn x;"]
  ) {
    const ids = m.tokenizer.encode(text);
    assertEquals(m.tokenizer.decode(ids), text);
  }
});

Deno.test("loadModel() loads a local LLaMA-family folder exported by the kit", async () => {
  const { dir } = await tinyModelDir(TINY_LLAMA);
  const m = await loadModel(dir);
  try {
    assertEquals(m.source, "local");
    assertEquals(m.arch?.family, "llama");
    const out = await m.model!(m.tokenizer("hi there"));
    assertEquals(out.logits.dims, [1, 8, TINY_LLAMA.vocabSize]);
  } finally {
    await m.dispose();
  }
});

Deno.test("loadModel() names a path that does not exist", async () => {
  const e = await assertRejects(() => loadModel("./no/such/model-folder"), ModelLoadError);
  assertStringIncludes(e.message, "./no/such/model-folder");
});

Deno.test("loadModel() names the missing config.json of a folder", async () => {
  const dir = await Deno.makeTempDir();
  const e = await assertRejects(() => loadModel(dir), ModelLoadError);
  assertStringIncludes(e.message, "config.json is missing");
});

Deno.test("loadModel() reports invalid JSON in config.json", async () => {
  const { dir } = await tinyModelDir();
  await Deno.writeTextFile(join(dir, "config.json"), '{"model_type": "gpt2", ');
  const e = await assertRejects(() => loadModel(dir), ModelLoadError);
  assertStringIncludes(e.message, "not valid JSON");
});

Deno.test("loadModel() reports a truncated onnx/model.onnx before ONNX Runtime sees it", async () => {
  const { dir } = await tinyModelDir();
  const path = join(dir, "onnx", "model.onnx");
  const bytes = await Deno.readFile(path);
  await Deno.writeFile(path, bytes.subarray(0, bytes.length - 1000));
  const e = await assertRejects(() => loadModel(dir), ModelLoadError);
  assertStringIncludes(e.message, "model.onnx");
});

Deno.test("loadModel() reports a corrupt onnx/model.onnx", async () => {
  const { dir } = await tinyModelDir();
  await Deno.writeTextFile(join(dir, "onnx", "model.onnx"), "this is not a protobuf at all, just text");
  const e = await assertRejects(() => loadModel(dir), ModelLoadError);
  assert(/not a valid ONNX model|holds no graph|corrupt/.test(e.message), e.message);
});

Deno.test("loadModel() lists the known dtypes for an unknown one", async () => {
  // deno-lint-ignore no-explicit-any
  const e = await assertRejects(() => loadModel(undefined, { dtype: "fp8" as any }), ModelLoadError);
  assertStringIncludes(e.message, 'Unknown dtype "fp8"');
  assertStringIncludes(e.message, "q4");
});

Deno.test("loadModel() names a dtype file the folder does not have", async () => {
  const { dir } = await tinyModelDir();
  const e = await assertRejects(() => loadModel(dir, { dtype: "q4" }), ModelLoadError);
  assertStringIncludes(e.message, "model_q4.onnx");
});

Deno.test("loadModel() explains an offline cache miss for a hub id", async () => {
  const cacheDir = await Deno.makeTempDir();
  const e = await assertRejects(() => loadModel("Xenova/gpt2", { offline: true, cacheDir }), ModelLoadError);
  assertStringIncludes(e.message, "not in the cache");
  assertStringIncludes(e.message, "offline");
});

Deno.test("loadModel() uses a hub model already in the cache without the network", async () => {
  const { dir } = await tinyModelDir();
  const cacheDir = await Deno.makeTempDir();
  await Deno.mkdir(join(cacheDir, "someone"), { recursive: true });
  await Deno.rename(dir, join(cacheDir, "someone", "tiny-gpt2"));
  const m = await loadModel("someone/tiny-gpt2", { offline: true, cacheDir });
  try {
    assertEquals(m.source, "hub");
    assertEquals(m.dir, join(cacheDir, "someone", "tiny-gpt2"));
  } finally {
    await m.dispose();
  }
});

Deno.test("archFromConfig() names a missing field", () => {
  try {
    archFromConfig({ model_type: "gpt2", vocab_size: 10, n_layer: 1, n_head: 1 });
    throw new Error("expected a TypeError");
  } catch (e) {
    assert(e instanceof TypeError);
    assertStringIncludes(e.message, '"n_embd"');
  }
});

Deno.test("the demo runs without network permission for the bundled model, and says what a hub id needs", async () => {
  const cache = await Deno.makeTempDir();
  const base = [
    "run",
    "--quiet",
    "--allow-read",
    `--allow-write=${cache}`,
    "--allow-env",
    "--allow-ffi",
    "--allow-sys",
    new URL("../scripts/demo.ts", import.meta.url).pathname,
  ];
  const env = { PARAMSCOPE_CACHE: cache, NO_COLOR: "1" };
  const ok = await new Deno.Command(Deno.execPath(), { args: base, env, stdout: "piped", stderr: "piped" }).output();
  const okOut = new TextDecoder().decode(ok.stdout);
  assert(ok.success, new TextDecoder().decode(ok.stderr));
  assertStringIncludes(okOut, "next token (top 5)");
  const hub = await new Deno.Command(Deno.execPath(), {
    args: [...base, "--model", "Xenova/gpt2"],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(hub.code, 1);
  assertStringIncludes(new TextDecoder().decode(hub.stderr), "needs network permission");
});

Deno.test("the bundled model folder stays well under 20 MB", () => {
  let bytes = 0;
  const walk = (d: string) => {
    for (const e of Deno.readDirSync(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) walk(p);
      else bytes += Deno.statSync(p).size;
    }
  };
  walk(bundledModelPath());
  assertGreater(bytes, 1e6);
  assert(bytes < 20e6, `bundled model is ${(bytes / 1e6).toFixed(1)} MB`);
});
