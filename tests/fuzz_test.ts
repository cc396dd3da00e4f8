/**
 * Untrusted model files: a seeded fuzzer mutates the bundled model's files and every case must end
 * in a typed error or a valid result within its time bound (lib/_fuzz.ts runs the cases in a child
 * process with narrow permissions); mutated model folders go through `loadModel` and ONNX Runtime
 * in subprocesses that must exit cleanly; and the regressions the fuzzer found stay fixed.
 */
import { assert, assertEquals, assertGreater, assertRejects, assertStringIncludes, assertThrows } from "@std/assert";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadFuzzBase, runFuzz, writeMutatedModel } from "../lib/_fuzz.ts";
import { archFromConfig, bundledModelPath, checkTokenizerJson, loadModel, ModelLoadError } from "../lib/load.ts";
import {
  DataType,
  encodeOnnx,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  type ModelProto,
  OnnxFormatError,
  readOnnx,
  readOnnxBytes,
  tensorBytes,
  tensorValues,
  validateOnnx,
  writeOnnx,
} from "../lib/onnx.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BUNDLED_ONNX = join(bundledModelPath(), "onnx", "model.onnx");
const TRANSFORMERS_ENV = "npm_package_config_libvips,MALLOC_ARENA_MAX,ORT_DISABLE_TELEMETRY";

Deno.test("fuzzing: 300 mutated model files all end in a typed error or a valid result within 2 s each", async () => {
  const report = await runFuzz({ cases: 300, seed: 20240601, timeoutMs: 2000 });
  console.log(
    `fuzz: ${report.cases} cases in ${(report.ms / 1000).toFixed(1)} s (slowest ${report.slowestMs} ms), ` +
      `${report.retries} rerun, ${report.restarts} child restarts, outcomes ${JSON.stringify(report.byOutcome)}`,
  );
  for (const [target, outcomes] of Object.entries(report.byTarget)) {
    console.log(`  ${target}: ${JSON.stringify(outcomes)}`);
  }
  const detail = report.failures.map((f) => `#${f.index} ${f.outcome} ${f.mutation}: ${f.message}`).join("\n");
  assertEquals(report.failures.length, 0, detail);
  assertEquals(report.cases, 300);
  // The campaign must reach every reader and both verdicts, or it proves nothing.
  for (const target of ["onnx", "config", "tokenizer"]) {
    assertGreater(Object.keys(report.byTarget[target] ?? {}).length, 0);
  }
  assertGreater(report.byOutcome["ok"] ?? 0, 20);
  assertGreater(report.byOutcome["OnnxFormatError"] ?? 0, 20);
  assertGreater(report.byOutcome["ModelLoadError"] ?? 0, 20);
  assertGreater(Object.keys(report.byMutation).length, 25);
});

Deno.test("fuzzing: a mutated onnx/model.onnx through loadModel and ONNX Runtime never kills the process", async () => {
  const root = await Deno.makeTempDir();
  const base = await loadFuzzBase();
  // Kinds that get past protobuf decoding and reach ONNX Runtime, plus some that the checks stop first.
  const kinds = ["value", "optype", "attribute", "opset", "wiretype", "graphio", "dims", "truncate"];
  try {
    for (const [i, kind] of kinds.entries()) {
      const dir = join(root, kind);
      const label = await writeMutatedModel(dir, kind, 100 + i, base);
      const res = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          `--allow-read=${dir},/usr/bin/ldd`,
          "--allow-ffi",
          `--allow-env=${TRANSFORMERS_ENV}`,
          join(ROOT, "scripts", "fuzz.ts"),
          "--load",
          dir,
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const stdout = new TextDecoder().decode(res.stdout);
      const stderr = new TextDecoder().decode(res.stderr);
      assertEquals(res.signal, null, `${label}: killed by ${res.signal}\n${stderr}`);
      assert(res.code === 0 || res.code === 1, `${label}: exit ${res.code}\n${stderr}`);
      if (res.code === 0) assertStringIncludes(stdout, "ok");
      else assert(/^error: \w+: .{20,}/m.test(stderr), `${label}: no clear message:\n${stderr}`);
      if (kind === "value") assertEquals(res.code, 0, `${label}: changed weights must still load and run\n${stderr}`);
      if (kind === "truncate" || kind === "dims") assertStringIncludes(stderr, "ModelLoadError");
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("deno task fuzz line: the script runs with narrow permissions and prints the breakdown", async () => {
  const res = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      // Exactly the recommended task line: deno run --allow-read --allow-write=/tmp --allow-run=deno
      "--allow-read",
      "--allow-write=/tmp",
      "--allow-run=deno",
      "scripts/fuzz.ts",
      "--cases",
      "12",
      "--seed",
      "5",
      "--json",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(res.stderr);
  assertEquals(res.code, 0, stderr);
  const report = JSON.parse(new TextDecoder().decode(res.stdout));
  assertEquals(report.cases, 12);
  assertEquals(report.seed, 5);
  assertEquals(Object.values(report.byOutcome as Record<string, number>).reduce((a, b) => a + b, 0), 12);
});

// ---------------------------------------------------------------------------------------------
// Regressions: each input below was found (or its class was found) by the fuzzer
// ---------------------------------------------------------------------------------------------

function tinyGraph(values: Float32Array): ModelProto {
  return makeModel({
    name: "t",
    nodes: [makeNode("Add", ["x", "w"], ["y"], {}, "/add")],
    inputs: [makeValueInfo("x", DataType.FLOAT, ["n", values.length])],
    outputs: [makeValueInfo("y", DataType.FLOAT, ["n", values.length])],
    initializers: [makeTensor("w", [values.length], values)],
  });
}

/** A folder holding `m.onnx` whose only tensor is external with the given entries, plus `data.bin` (12 bytes). */
async function externalModel(entries: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(join(dir, "data.bin"), new Uint8Array(new Float32Array([1, 2, 3]).buffer));
  const proto = tinyGraph(new Float32Array([1, 2, 3]));
  proto.graph!.initializer![0] = {
    ...proto.graph!.initializer![0],
    rawData: new Uint8Array(),
    dataLocation: 1,
    externalData: Object.entries(entries).map(([key, value]) => ({ key, value })),
  };
  await writeOnnx(proto, join(dir, "m.onnx"));
  return dir;
}

Deno.test("tensorValues() on an unvalidated model never follows a symlink out of the model folder", async () => {
  const outside = await Deno.makeTempFile();
  await Deno.writeFile(outside, new Uint8Array(new Float32Array([7, 7, 7]).buffer));
  const dir = await externalModel({ location: "link.bin", offset: "0" });
  await Deno.symlink(outside, join(dir, "link.bin"));
  const m = await readOnnx(join(dir, "m.onnx"), { validate: false });
  assertThrows(() => tensorValues(m, "w"), OnnxFormatError, "link out of the model folder");
});

Deno.test("external-data offsets and lengths must be whole numbers of bytes", async () => {
  for (const offset of ["0x10", "NaN", "-1", "1e3", " 0", "4.5", "99999999999999999999"]) {
    const dir = await externalModel({ location: "data.bin", offset });
    const e = await assertRejects(() => readOnnx(join(dir, "m.onnx")), OnnxFormatError);
    assertStringIncludes(e.message, `offset ${JSON.stringify(offset)}`);
    const m = await readOnnx(join(dir, "m.onnx"), { validate: false });
    assertThrows(() => tensorBytes(m, "w"), OnnxFormatError, "whole number");
  }
  const bad = await externalModel({ location: "data.bin", length: "-4" });
  await assertRejects(() => readOnnx(join(bad, "m.onnx")), OnnxFormatError, 'length "-4"');
  // The well-formed entry reads back the 12 bytes written.
  const good = await externalModel({ location: "data.bin", offset: "0", length: "12" });
  assertEquals(Array.from(tensorValues(await readOnnx(join(good, "m.onnx")), "w").data as Float32Array), [1, 2, 3]);
});

Deno.test("external data that names a folder or a path with a NUL byte is refused", async () => {
  const dir = await externalModel({ location: "sub" });
  await Deno.mkdir(join(dir, "sub"));
  await assertRejects(() => readOnnx(join(dir, "m.onnx")), OnnxFormatError, "not a regular file");
  const m = await readOnnx(join(dir, "m.onnx"), { validate: false });
  assertThrows(() => tensorBytes(m, "w"), OnnxFormatError, "not a regular file");
  const nul = await externalModel({ location: "data.bin\u0000../../etc/passwd" });
  await assertRejects(() => readOnnx(join(nul, "m.onnx")), OnnxFormatError, "NUL");
});

Deno.test("external data in a file whose name starts with two dots stays readable (it is inside the folder)", async () => {
  const dir = await externalModel({ location: "..data.bin", offset: "0" });
  await Deno.rename(join(dir, "data.bin"), join(dir, "..data.bin"));
  assertEquals(Array.from(tensorValues(await readOnnx(join(dir, "m.onnx")), "w").data as Float32Array), [1, 2, 3]);
});

Deno.test("a shape with a negative dim or more elements than 2^53 is refused before anything is allocated", () => {
  for (const dims of [[-1], [2 ** 62], [2 ** 31, 2 ** 31, 2 ** 31]]) {
    const proto = tinyGraph(new Float32Array([1, 2, 3]));
    proto.graph!.initializer![0].dims = dims;
    const bytes = encodeOnnx(proto);
    assertThrows(() => readOnnxBytes(bytes), OnnxFormatError, `"w"`);
    const m = readOnnxBytes(bytes, { validate: false });
    assertThrows(() => tensorValues(m, "w"), OnnxFormatError, "shape");
  }
});

Deno.test("typed-field tensors with fewer values than their shape are refused before the output is allocated", () => {
  const proto = tinyGraph(new Float32Array([1, 2, 3]));
  // 2^40 float32 elements claimed, 3 stored: the output must never be sized from the shape.
  proto.graph!.initializer![0] = { name: "w", dims: [2 ** 40], dataType: DataType.FLOAT, floatData: [1, 2, 3] };
  const m = readOnnxBytes(encodeOnnx(proto), { validate: false });
  assertThrows(() => tensorValues(m, "w"), OnnxFormatError, "has 3 values");
});

Deno.test("validateOnnx() refuses two initializers with the same name", () => {
  const proto = tinyGraph(new Float32Array([1, 2, 3]));
  proto.graph!.initializer!.push(makeTensor("w", [1], new Float32Array([9])));
  assertThrows(() => readOnnxBytes(encodeOnnx(proto)), OnnxFormatError, 'two initializers are named "w"');
});

Deno.test("validateOnnx() refuses a graph output that no node produces", () => {
  const proto = tinyGraph(new Float32Array([1]));
  proto.graph!.output!.push(makeValueInfo("nowhere", DataType.FLOAT, [1]));
  assertThrows(() => readOnnxBytes(encodeOnnx(proto)), OnnxFormatError, 'graph output "nowhere"');
});

Deno.test("validateOnnx({ expect: 'decoder' }) accepts the bundled model and checks the KV-cache pairs", async () => {
  const m = await readOnnx(BUNDLED_ONNX);
  validateOnnx(m, { expect: "decoder", layers: 4 });
  assertThrows(() => validateOnnx(m, { expect: "decoder", layers: 6 }), OnnxFormatError, "caches 4 layers");
  const proto = m.proto;
  const drop = (list: "input" | "output", name: string) => {
    const copy: ModelProto = {
      ...proto,
      graph: { ...proto.graph, [list]: proto.graph![list]!.filter((v) => v.name !== name) },
    };
    return readOnnxBytes(encodeOnnx(copy), { validate: false });
  };
  for (const name of ["input_ids", "attention_mask"]) {
    assertThrows(() => validateOnnx(drop("input", name), { expect: "decoder" }), OnnxFormatError, `input ${name}`);
  }
  assertThrows(() => validateOnnx(drop("output", "logits"), { expect: "decoder" }), OnnxFormatError, "output logits");
  assertThrows(
    () => validateOnnx(drop("output", "present.2.value"), { expect: "decoder" }),
    OnnxFormatError,
    "past_key_values.2.value has no present.2.value",
  );
  assertThrows(
    () => validateOnnx(drop("input", "past_key_values.0.key"), { expect: "decoder" }),
    OnnxFormatError,
    "present.0.key has no past_key_values.0.key",
  );
  // Without the option, the interface is not checked: a graph with no logits is still a valid ONNX file.
  validateOnnx(drop("output", "logits"));
});

Deno.test("loadModel() refuses a causal LM whose graph lacks the decoder interface", async () => {
  const dir = await Deno.makeTempDir();
  for (const f of ["config.json", "tokenizer_config.json", "tokenizer.json"]) {
    await Deno.copyFile(join(bundledModelPath(), f), join(dir, f));
  }
  const proto = (await readOnnx(BUNDLED_ONNX)).proto;
  // Still a well-formed graph; only the KV-cache output transformers.js reads for layer 1 is gone.
  const graph = { ...proto.graph, output: proto.graph!.output!.filter((v) => v.name !== "present.1.value") };
  await Deno.mkdir(join(dir, "onnx"));
  await writeOnnx({ ...proto, graph }, join(dir, "onnx", "model.onnx"));
  const e = await assertRejects(() => loadModel(dir), ModelLoadError);
  assertStringIncludes(e.message, "past_key_values.1.value has no present.1.value");
});

Deno.test("loadModel() refuses hub ids that would leave the download cache", async () => {
  const cacheDir = await Deno.makeTempDir();
  for (const id of ["owner/..x", "owner/.hidden", "a..b/model", "x/y..z"]) {
    const e = await assertRejects(() => loadModel(id, { cacheDir, offline: true }), ModelLoadError);
    assertStringIncludes(e.message, "not a valid hub id");
  }
  // "owner/.." is a path (the working folder), never a hub id: it loads nothing from the cache.
  const e = await assertRejects(() => loadModel("owner/..", { cacheDir, offline: true }), ModelLoadError);
  assertStringIncludes(e.message, "config.json is missing");
  assert(!e.message.includes(cacheDir), e.message);
});

Deno.test("archFromConfig() names sizes that are not whole positive numbers, and heads that do not divide", () => {
  const gpt2 = { model_type: "gpt2", vocab_size: 10, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 };
  for (const [field, value] of [["n_layer", -1], ["n_embd", 1.5], ["vocab_size", 2 ** 31], ["n_head", 0]] as const) {
    assertThrows(() => archFromConfig({ ...gpt2, [field]: value }), RangeError, `"${field}" is ${value}`);
  }
  assertThrows(() => archFromConfig({ ...gpt2, n_head: 3 }), RangeError, "n_embd 8 is not a multiple of n_head 3");
  assertThrows(() => archFromConfig({ ...gpt2, n_layer: "4" }), TypeError, `"n_layer" is "4"`);
  assertThrows(() => archFromConfig({ ...gpt2, layer_norm_epsilon: -1 }), RangeError, "greater than 0");
  const llama = {
    model_type: "llama",
    vocab_size: 10,
    hidden_size: 8,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 3,
    intermediate_size: 16,
  };
  assertThrows(() => archFromConfig(llama), RangeError, "not a multiple of num_key_value_heads 3");
});

Deno.test("archFromConfig() describes a model_type nested 100000 arrays deep without overflowing the stack", () => {
  let deep: unknown = [];
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assertThrows(() => archFromConfig({ model_type: deep }), TypeError, '"model_type" is an array of 1');
  assertThrows(() => archFromConfig({ model_type: "gpt2", n_embd: deep }), TypeError, '"n_embd" is an array');
});

Deno.test("checkTokenizerJson() accepts the bundled tokenizer and refuses what would make transformers.js hang", async () => {
  const json = JSON.parse(await Deno.readTextFile(join(bundledModelPath(), "tokenizer.json")));
  checkTokenizerJson(json);
  // deno-lint-ignore no-explicit-any
  const cases: [string, (j: any) => void, string][] = [
    ["huge added id", (j) => (j.added_tokens[0].id = 2 ** 31), "added_tokens[0].id is 2147483648"],
    ["negative vocab id", (j) => (j.model.vocab["the"] = -1), "is -1"],
    ["vocab as a string", (j) => (j.model.vocab = "x".repeat(1 << 20)), '"model.vocab" is "xxxx'],
    ["long added content", (j) => (j.added_tokens[0].content = "x".repeat(1 << 22)), "1 to 1000 characters"],
    ["added tokens not a list", (j) => (j.added_tokens = {}), '"added_tokens" is an object'],
    ["no model", (j) => delete j.model, '"model" is undefined'],
  ];
  for (const [what, mutate, message] of cases) {
    const copy = structuredClone(json);
    mutate(copy);
    assertThrows(() => checkTokenizerJson(copy), ModelLoadError, message, what);
  }
});

Deno.test("loadModel() refuses a tokenizer.json with an added-token id of 2^31 quickly and by name", async () => {
  const dir = await Deno.makeTempDir();
  for (const f of ["config.json", "tokenizer_config.json", "tokenizer.json"]) {
    await Deno.copyFile(join(bundledModelPath(), f), join(dir, f));
  }
  const json = JSON.parse(await Deno.readTextFile(join(dir, "tokenizer.json")));
  json.added_tokens[0].id = 2 ** 31;
  await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(json));
  const e = await assertRejects(() => loadModel(dir, { tokenizerOnly: true }), ModelLoadError);
  assertStringIncludes(e.message, "added_tokens[0].id is 2147483648");
});

// ---------------------------------------------------------------------------------------------
// Least privilege: scripts without network permission
// ---------------------------------------------------------------------------------------------

async function runScript(args: string[], perms: string[]): Promise<{ code: number; out: string; err: string }> {
  const res = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...perms, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: res.code, out: new TextDecoder().decode(res.stdout), err: new TextDecoder().decode(res.stderr) };
}

for (const script of ["count", "inspect"]) {
  Deno.test(`scripts/${script}.ts with only --allow-read: the bundled model works, a hub id says it needs the network`, async () => {
    const bundled = script === "count" ? ["--model", bundledModelPath(), "--json"] : ["--json", "--bins", "0"];
    const ok = await runScript([`scripts/${script}.ts`, ...bundled], ["--allow-read"]);
    assertEquals(ok.code, 0, ok.err);
    assert(JSON.parse(ok.out), "JSON output");
    const hub = await runScript([`scripts/${script}.ts`, "--model", "Xenova/gpt2"], ["--allow-read"]);
    assertEquals(hub.code, 2, hub.err);
    assertStringIncludes(hub.err, "needs network permission");
    assertStringIncludes(hub.err, "--allow-net=huggingface.co");
  });
}

Deno.test("scripts/demo.ts without env permission for transformers.js names the flags it needs", async () => {
  const res = await runScript(["scripts/demo.ts"], ["--allow-read", "--allow-ffi"]);
  assertEquals(res.code, 1, res.err);
  assertStringIncludes(res.err, "npm_package_config_libvips");
  assertStringIncludes(res.err, "--allow-env=");
});

Deno.test("scripts/demo.ts runs the bundled model with the narrowest permissions found", async () => {
  const res = await runScript(["scripts/demo.ts"], [
    `--allow-read=${bundledModelPath()},/usr/bin/ldd`,
    "--allow-ffi",
    `--allow-env=${TRANSFORMERS_ENV}`,
  ]);
  assertEquals(res.code, 0, res.err);
  assertStringIncludes(res.out, "next token (top 5)");
});
