import { assert, assertEquals, assertRejects, assertStringIncludes, assertThrows } from "@std/assert";
import { join } from "node:path";
import { expectedParamShapes as expectedParams } from "../lib/forward.ts";
import { archFromConfig, bundledModelPath } from "../lib/load.ts";
import {
  DataType,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  type ModelProto,
  OnnxFormatError,
  readOnnx,
  type TensorProto,
  tensorValues,
  writeOnnx,
} from "../lib/onnx.ts";
import { quantizeModel } from "../lib/quantize.ts";
import type { ArchConfig, LlamaConfig, ParamMap, Tensor } from "../lib/types.ts";
import {
  blockAverage,
  compareTensors,
  formatInspect,
  inspectWeights,
  layerSummaries,
  listParameters,
  type ListParametersResult,
  loadParams,
  plotEmbeddingNorms,
  plotHeatmap,
  plotHistogram,
  plotLayerNorms,
  quantError,
  readParameter,
  rowNorms,
  tensorStats,
} from "../lib/weights.ts";
import { lcg, TINY_GPT2, TINY_LLAMA, tinyModelDir } from "./_fixtures.ts";

// ---------------------------------------------------------------------------
// Helpers and independent references

const TINY_LLAMA_TIED: LlamaConfig = { ...TINY_LLAMA, tieWordEmbeddings: true };

/** Component and kind a readable name must get, written out from lib/types.ts independently of the rules. */
function expectedRole(name: string): { component: string; kind: string } {
  if (name.startsWith("embed.")) return { component: "embedding", kind: "weight" };
  if (name === "head.weight") return { component: "head", kind: "weight" };
  const kind = name.endsWith(".gain") ? "gain" : name.endsWith(".bias") ? "bias" : "weight";
  if (/\.(ln1|ln2)\.|^norm_f\./.test(name)) return { component: "norm", kind };
  if (/\.attn\./.test(name)) return { component: "attention", kind };
  if (/\.mlp\./.test(name)) return { component: "mlp", kind };
  return { component: "other", kind };
}

/** Naive float64 two-pass statistics. */
function naiveStats(d: ArrayLike<number>, thr: number) {
  const xs = Array.from(d).filter((v) => Number.isFinite(v));
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  return {
    mean,
    std: Math.sqrt(variance),
    min: Math.min(...xs),
    max: Math.max(...xs),
    l2: Math.sqrt(xs.reduce((a, b) => a + b * b, 0)),
    meanAbs: xs.reduce((a, b) => a + Math.abs(b), 0) / n,
    nearZero: Array.from(d).filter((v) => Math.abs(v) <= thr).length / d.length,
  };
}

function close(a: number, b: number, rel: number, what: string): void {
  const tol = rel * Math.max(1, Math.abs(b));
  assert(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tolerance ${tol})`);
}

function transposeRef(t: Tensor): number[] {
  const [r, c] = t.dims;
  const out: number[] = [];
  for (let j = 0; j < c; j++) for (let i = 0; i < r; i++) out.push(t.data[i * c + j]);
  return out;
}

async function writeTemp(proto: ModelProto): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "paramscope-weights-" });
  const path = join(dir, "model.onnx");
  await writeOnnx(proto, path);
  return path;
}

function graph(
  nodes: ReturnType<typeof makeNode>[],
  initializers: TensorProto[],
  opset = 21,
  inputs = [makeValueInfo("x", DataType.FLOAT, ["n", 4])],
): ModelProto {
  return makeModel({
    name: "hand",
    nodes,
    initializers,
    inputs,
    outputs: [makeValueInfo("y", DataType.FLOAT, ["n", 3])],
    opset,
    extraOpsets: { "com.microsoft": 1 },
  });
}

/** Packs 4-bit codes two per byte, low nibble first. */
function packNibbles(codes: number[]): Uint8Array {
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  codes.forEach((c, i) => out[i >> 1] |= (c & 15) << ((i & 1) * 4));
  return out;
}

/** Largest |a − b| ≤ bound(i) check, reporting the first violation. */
function assertWithin(a: Float32Array, b: ArrayLike<number>, bound: (i: number) => number, what: string): void {
  assertEquals(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    if (!(e <= bound(i))) throw new Error(`${what}[${i}]: |${a[i]} − ${b[i]}| = ${e} > ${bound(i)}`);
  }
}

// ---------------------------------------------------------------------------
// Names

async function checkNames(config: ArchConfig, anonymize: boolean): Promise<ListParametersResult> {
  const { dir, names } = await tinyModelDir(config, { anonymize });
  const list = await listParameters(dir);
  const expected = expectedParams(config);
  assertEquals(list.params.map((p) => p.name).sort(), [...expected.keys()].sort());
  const stored = Object.fromEntries(Object.entries(names).map(([s, r]) => [r, s]));
  for (const p of list.params) {
    assertEquals(p.shape, expected.get(p.name), p.name);
    assertEquals(p.storedName, stored[p.name], p.name);
    assertEquals(p.resolvedBy, "scope", p.name);
    assertEquals({ component: p.component, kind: p.kind }, expectedRole(p.name), p.name);
    assertEquals(p.dims.length, p.shape.length, p.name);
    assert(!p.dims.includes("?"), `${p.name} has unnamed dims ${p.dims}`);
    assertEquals(p.layer, /^blocks\.(\d+)/.exec(p.name) ? Number(/^blocks\.(\d+)/.exec(p.name)![1]) : undefined);
    assertEquals(p.quantization, null);
    assertEquals(p.dtype, "float32");
  }
  return list;
}

Deno.test("listParameters() names every GPT-2 tensor as lib/types.ts does, with the head tied to embed.tokens", async () => {
  const list = await checkNames(TINY_GPT2, false);
  assertEquals(list.tied.map((t) => [t.name, t.tiedTo, t.transposed]), [["head.weight", "embed.tokens", true]]);
  assertEquals(list.params.find((p) => p.name === "embed.tokens")!.tied, ["head.weight"]);
  const qkv = list.params.find((p) => p.name === "blocks.1.attn.qkv.weight")!;
  assertEquals(qkv.dims, ["d_model", "qkv"]);
  assertEquals(qkv.consumer, "/transformer/h.1/attn/c_attn/MatMul");
  assertEquals(list.params.find((p) => p.name === "embed.positions")!.dims, ["pos", "d_model"]);
  assertEquals(list.params.find((p) => p.name === "blocks.0.mlp.out.bias")!.dims, ["d_model"]);
});

Deno.test("listParameters() names every LLaMA tensor, untied and tied heads, and excludes rotary tables", async () => {
  const list = await checkNames(TINY_LLAMA, false);
  assertEquals(list.tied, []);
  assertEquals(list.params.find((p) => p.name === "blocks.0.attn.k.weight")!.dims, ["d_model", "kv_head*d_head"]);
  assertEquals(list.params.find((p) => p.name === "head.weight")!.dims, ["d_model", "vocab"]);
  const rotary = list.excluded.filter((x) => /rotary/.test(x.reason)).map((x) => x.name).sort();
  assertEquals(rotary, ["model.rotary_emb.cos_cached", "model.rotary_emb.sin_cached"]);
  const tied = await checkNames(TINY_LLAMA_TIED, false);
  assertEquals(tied.tied.map((t) => t.name), ["head.weight"]);
});

Deno.test("listParameters() resolves anonymous initializer names to the identical list", async () => {
  for (const config of [TINY_GPT2, TINY_LLAMA, TINY_LLAMA_TIED]) {
    const named = await checkNames(config, false);
    const anon = await checkNames(config, true);
    const view = (l: ListParametersResult) => l.params.map((p) => [p.name, p.shape, p.dims, p.component, p.kind]);
    assertEquals(view(anon), view(named));
    assertEquals(anon.tied.map((t) => t.name), named.tied.map((t) => t.name));
    assert(anon.params.every((p) => p.storedName.startsWith("onnx::")));
  }
});

Deno.test("listParameters() names the bundled model's tensors from its config", async () => {
  const list = await listParameters();
  const arch = archFromConfig(list.config!)!;
  const expected = expectedParams(arch);
  assertEquals(list.params.map((p) => p.name), [...expected.keys()]);
  for (const p of list.params) assertEquals(p.shape, expected.get(p.name));
});

Deno.test("listParameters() falls back to PyTorch initializer names when node names carry no scope", async () => {
  const w = new Float32Array(12).map((_, i) => i);
  const proto = graph(
    [
      makeNode("MatMul", ["x", "model.layers.7.mlp.down_proj.weight"], ["h"], {}, "node_12"),
      makeNode("Add", ["h", "model.layers.7.mlp.down_proj.bias"], ["y"], {}, "node_13"),
    ],
    [
      makeTensor("model.layers.7.mlp.down_proj.weight", [4, 3], w),
      makeTensor("model.layers.7.mlp.down_proj.bias", [3], new Float32Array([1, 2, 3])),
    ],
  );
  const list = await listParameters(await writeTemp(proto));
  assertEquals(list.params.map((p) => [p.name, p.component, p.kind, p.layer, p.resolvedBy]), [
    ["blocks.7.mlp.out.weight", "mlp", "weight", 7, "initializer"],
    ["blocks.7.mlp.out.bias", "mlp", "bias", 7, "initializer"],
  ]);
});

Deno.test("listParameters() keeps tensors of an unrecognised layout under their stored names as other", async () => {
  const proto = graph(
    [
      makeNode("MatMul", ["x", "alpha"], ["h"], {}, "n1"),
      makeNode("Add", ["h", "beta_vec"], ["h2"], {}, "n2"),
      makeNode("Mul", ["h2", "gamma_thing"], ["h3"], {}, "n3"),
      makeNode("Reshape", ["h3", "shp"], ["y"], {}, "n4"),
    ],
    [
      makeTensor("alpha", [4, 3], new Float32Array(12).fill(0.5)),
      makeTensor("beta_vec", [3], new Float32Array([1, 2, 3])),
      makeTensor("gamma_thing", [3], new Uint16Array([0x3f80, 0x4000, 0x4040]), DataType.BFLOAT16),
      makeTensor("shp", [2], new BigInt64Array([-1n, 3n])),
    ],
  );
  const path = await writeTemp(proto);
  const list = await listParameters(path);
  assertEquals(list.params.map((p) => [p.name, p.component, p.kind, p.resolvedBy, p.dims]), [
    ["alpha", "other", "weight", "stored", ["?", "?"]],
    ["beta_vec", "other", "bias", "stored", ["?"]],
    ["gamma_thing", "other", "gain", "stored", ["?"]],
  ]);
  assertEquals(list.excluded.map((x) => x.name), ["shp"]);
  // bfloat16 0x3f80, 0x4000, 0x4040 are 1, 2, 3 exactly.
  assertEquals(Array.from((await readParameter(path, "gamma_thing")).data), [1, 2, 3]);
});

/**
 * A BERT-shaped graph as Optimum exports `BertModel`: scopes without the `bert.` prefix, anonymous matrix
 * names, readable biases and LayerNorm tensors; layer 0's attention LayerNorm decomposed as older opsets do.
 */
function bertGraph(c: { V: number; P: number; T: number; d: number; f: number; L: number }): ModelProto {
  const nodes: ReturnType<typeof makeNode>[] = [];
  const inits: TensorProto[] = [];
  let anon = 0;
  const t = (name: string, dims: number[]) => {
    inits.push(makeTensor(name, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.01)));
    return name;
  };
  const ln = (x: string, scope: string, torch: string, decomposed: boolean) => {
    if (!decomposed) {
      nodes.push(
        makeNode("LayerNormalization", [x, t(`${torch}.weight`, [c.d]), t(`${torch}.bias`, [c.d])], [`${scope}/o`], {
          axis: -1,
        }, `${scope}/LayerNormalization`),
      );
    } else {
      nodes.push(makeNode("ReduceMean", [x], [`${scope}/m`], {}, `${scope}/ReduceMean`));
      nodes.push(makeNode("Sub", [x, `${scope}/m`], [`${scope}/c`], {}, `${scope}/Sub`));
      nodes.push(makeNode("Add", [`${scope}/c`, t(`${scope}_eps`, [])], [`${scope}/e`], {}, `${scope}/Add`));
      nodes.push(makeNode("Mul", [`${scope}/e`, t(`${torch}.weight`, [c.d])], [`${scope}/g`], {}, `${scope}/Mul_1`));
      nodes.push(makeNode("Add", [`${scope}/g`, t(`${torch}.bias`, [c.d])], [`${scope}/o`], {}, `${scope}/Add_1`));
    }
    return `${scope}/o`;
  };
  const linear = (x: string, scope: string, torch: string, k: number, n: number) => {
    nodes.push(makeNode("MatMul", [x, t(`onnx::MatMul_${++anon}`, [k, n])], [`${scope}/mm`], {}, `${scope}/MatMul`));
    nodes.push(makeNode("Add", [t(`${torch}.bias`, [n]), `${scope}/mm`], [`${scope}/o`], {}, `${scope}/Add`));
    return `${scope}/o`;
  };
  const gather = (table: string, ids: string, scope: string, dims: number[]) => {
    nodes.push(makeNode("Gather", [t(table, dims), ids], [`${scope}/o`], {}, `${scope}/Gather`));
    return `${scope}/o`;
  };
  const w = gather("embeddings.word_embeddings.weight", "input_ids", "/embeddings/word_embeddings", [c.V, c.d]);
  const p = gather("embeddings.position_embeddings.weight", "position_ids", "/embeddings/position_embeddings", [
    c.P,
    c.d,
  ]);
  const tt = gather("embeddings.token_type_embeddings.weight", "token_type_ids", "/embeddings/token_type_embeddings", [
    c.T,
    c.d,
  ]);
  nodes.push(
    makeNode("Add", [w, p], ["e1"], {}, "/embeddings/Add"),
    makeNode("Add", ["e1", tt], ["e2"], {}, "/embeddings/Add_1"),
  );
  let h = ln("e2", "/embeddings/LayerNorm", "embeddings.LayerNorm", false);
  for (let i = 0; i < c.L; i++) {
    const s = `/encoder/layer.${i}`, m = `encoder.layer.${i}`;
    for (const k of ["query", "key", "value"]) {
      linear(h, `${s}/attention/self/${k}`, `${m}.attention.self.${k}`, c.d, c.d);
    }
    const o = linear(
      `${s}/attention/self/value/o`,
      `${s}/attention/output/dense`,
      `${m}.attention.output.dense`,
      c.d,
      c.d,
    );
    const a = ln(o, `${s}/attention/output/LayerNorm`, `${m}.attention.output.LayerNorm`, i === 0);
    const up = linear(a, `${s}/intermediate/dense`, `${m}.intermediate.dense`, c.d, c.f);
    const down = linear(up, `${s}/output/dense`, `${m}.output.dense`, c.f, c.d);
    h = ln(down, `${s}/output/LayerNorm`, `${m}.output.LayerNorm`, false);
  }
  nodes.push(
    makeNode("Gemm", [h, t("pooler.dense.weight", [c.d, c.d]), t("pooler.dense.bias", [c.d])], ["y"], {
      transB: 1,
    }, "/pooler/dense/Gemm"),
  );
  const ids = (name: string) => makeValueInfo(name, DataType.INT64, ["b", "s"]);
  return makeModel({
    name: "bert",
    nodes,
    initializers: inits,
    inputs: [ids("input_ids"), ids("position_ids"), ids("token_type_ids")],
    outputs: [makeValueInfo("y", DataType.FLOAT, ["b", c.d])],
  });
}

Deno.test("listParameters() names a BERT export's tensors, and countModel() equals the analytic BERT count", async () => {
  const c = { V: 30, P: 12, T: 2, d: 8, f: 16, L: 2 };
  const path = await writeTemp(bertGraph(c));
  const list = await listParameters(path);
  const names = list.params.map((p) => p.name);
  assertEquals(names.slice(0, 5), [
    "embed.tokens",
    "embed.positions",
    "embed.token_types",
    "embed.norm.gain",
    "embed.norm.bias",
  ]);
  for (const i of [0, 1]) {
    for (const x of ["q", "k", "v", "o"]) {
      assert(
        names.includes(`blocks.${i}.attn.${x}.weight`) && names.includes(`blocks.${i}.attn.${x}.bias`),
        `${i}.${x}`,
      );
    }
    for (
      const x of ["ln1.gain", "ln1.bias", "mlp.in.weight", "mlp.in.bias", "mlp.out.weight", "mlp.out.bias", "ln2.gain"]
    ) {
      assert(names.includes(`blocks.${i}.${x}`), `blocks.${i}.${x}`);
    }
  }
  const pooler = list.params.find((p) => p.name === "pooler.weight")!;
  assertEquals([pooler.component, pooler.transposed, pooler.dims], ["other", true, ["d_model", "d_model"]]);
  assertEquals(list.params.find((p) => p.name === "embed.token_types")!.dims, ["type_vocab", "d_model"]);
  assertEquals(
    list.params.find((p) => p.name === "blocks.0.ln1.gain")!.consumer,
    "/encoder/layer.0/attention/output/LayerNorm/Mul_1",
  );
  assertEquals(list.params.find((p) => p.name === "blocks.1.mlp.out.weight")!.shape, [c.f, c.d]);
  const { countAnalytic, countModel } = await import("../lib/count.ts");
  const config = {
    model_type: "bert",
    vocab_size: c.V,
    max_position_embeddings: c.P,
    type_vocab_size: c.T,
    hidden_size: c.d,
    intermediate_size: c.f,
    num_hidden_layers: c.L,
    num_attention_heads: 2,
  };
  const exact = await countModel(path, { config });
  const analytic = countAnalytic(config);
  assertEquals([exact.total, exact.byComponent, exact.byKind], [analytic.total, analytic.byComponent, analytic.byKind]);
  assertEquals(exact.family, "bert");
});

Deno.test("listParameters() names GPT-NeoX scopes", async () => {
  const proto = graph(
    [
      makeNode("MatMul", ["x", "onnx::MatMul_1"], ["h"], {}, "/gpt_neox/layers.4/attention/query_key_value/MatMul"),
      makeNode(
        "Add",
        ["gpt_neox.layers.4.attention.query_key_value.bias", "h"],
        ["y"],
        {},
        "/gpt_neox/layers.4/attention/query_key_value/Add",
      ),
    ],
    [
      makeTensor("onnx::MatMul_1", [4, 3], new Float32Array(12)),
      makeTensor("gpt_neox.layers.4.attention.query_key_value.bias", [3], new Float32Array(3)),
    ],
  );
  const list = await listParameters(await writeTemp(proto));
  assertEquals(list.params.map((p) => p.name), ["blocks.4.attn.qkv.weight", "blocks.4.attn.qkv.bias"]);
});

// ---------------------------------------------------------------------------
// Values

async function checkValues(config: ArchConfig, options: { anonymize?: boolean; externalDataThreshold?: number }) {
  const { dir, params } = await tinyModelDir(config, options);
  const loaded = await loadParams(dir);
  assertEquals([...loaded.keys()].sort(), [...params.keys()].sort());
  for (const [name, want] of params) {
    const got = loaded.get(name)!;
    assertEquals(got.dims, [...want.dims], name);
    // Bit patterns, so -0 vs 0 would fail.
    assertEquals(new Uint32Array(got.data.slice().buffer), new Uint32Array(want.data.slice().buffer), name);
  }
  return { dir, params };
}

Deno.test("loadParams() returns the exported float32 tensors bit-exactly in [in, out] layout", async () => {
  for (const config of [TINY_GPT2, TINY_LLAMA]) {
    await checkValues(config, {});
    await checkValues(config, { anonymize: true });
  }
});

Deno.test("readParameter() reads tensors stored as external data", async () => {
  const { dir, params } = await checkValues(TINY_LLAMA, { externalDataThreshold: 1024 });
  const onnx = await readOnnx(join(dir, "onnx", "model.onnx"));
  assert(onnx.initializers.some((i) => i.external));
  const w = await readParameter(onnx, "blocks.1.mlp.gate.weight");
  assertEquals(Array.from(w.data), Array.from(params.get("blocks.1.mlp.gate.weight")!.data));
});

Deno.test("readParameter() gives the tied GPT-2 head as embed.tokensᵀ and stored layout on request", async () => {
  const { dir, params } = await tinyModelDir(TINY_GPT2);
  const list = await listParameters(dir);
  const head = await readParameter(list, "head.weight");
  const emb = params.get("embed.tokens")!;
  assertEquals(head.dims, [emb.dims[1], emb.dims[0]]);
  assertEquals(Array.from(head.data), transposeRef(emb));
  const stored = await readParameter(list, "head.weight", { layout: "stored" });
  assertEquals(stored.dims, [...emb.dims]);
  // A stored name works too, and the result is a copy.
  const byStored = await readParameter(list, "transformer.wte.weight");
  byStored.data[0] = 1234;
  assertEquals((await readParameter(list, "embed.tokens")).data[0], emb.data[0]);
});

Deno.test("a head stored as a transposed copy of a tied embedding is listed as tied, not counted twice", async () => {
  const { dir, params } = await tinyModelDir(TINY_GPT2);
  const path = join(dir, "onnx", "model.onnx");
  const onnx = await readOnnx(path);
  // What constant folding of Transpose(wte) makes: a second initializer read by the head's MatMul.
  const emb = params.get("embed.tokens")!;
  const proto = structuredClone(onnx.proto);
  const g = proto.graph!;
  g.node = g.node!.filter((n) => n.name !== "/lm_head/Transpose");
  g.node.find((n) => n.name === "/lm_head/MatMul")!.input![1] = "onnx::MatMul_999";
  g.initializer!.push(makeTensor("onnx::MatMul_999", [emb.dims[1], emb.dims[0]], Float32Array.from(transposeRef(emb))));
  await writeOnnx(proto, path);
  const list = await listParameters(dir);
  assertEquals(list.params.map((p) => p.name), [...expectedParams(TINY_GPT2).keys()]);
  assertEquals(list.tied.map((t) => [t.name, t.tiedTo, t.storedName]), [[
    "head.weight",
    "embed.tokens",
    "onnx::MatMul_999",
  ]]);
  assertEquals(Array.from((await readParameter(list, "head.weight")).data), transposeRef(emb));
  // Without a config saying the embeddings are tied, the copy is a parameter of its own.
  const bare = await listParameters(await readOnnx(path));
  assert(bare.params.some((p) => p.name === "head.weight"));
});

Deno.test("readParameter() names unknown and non-parameter tensors in RangeErrors", async () => {
  const { dir } = await tinyModelDir(TINY_LLAMA);
  const list = await listParameters(dir);
  const e1 = await assertRejects(() => readParameter(list, "blocks.9.attn.q.weight"), RangeError);
  assertStringIncludes(e1.message, "blocks.9.attn.q.weight");
  const e2 = await assertRejects(() => readParameter(list, "model.rotary_emb.cos_cached"), RangeError);
  assertStringIncludes(e2.message, "rotary");
  await assertRejects(() => readParameter(list, "embed.tokens", { layout: "sideways" as "stored" }), RangeError);
  await assertRejects(() => listParameters(42 as unknown as string), TypeError);
});

// Quantized variants written by lib/quantize.ts -------------------------------

async function quantizedDir(config: ArchConfig) {
  const made = await tinyModelDir(config);
  await quantizeModel(made.dir, { dtypes: ["fp16", "q8", "int8", "q4"], blockSize: 16 });
  const perChannel = await tinyModelDir(config);
  await quantizeModel(perChannel.dir, { dtypes: ["q8"], perChannel: true, weightType: "int8" });
  return { ...made, perChannelDir: perChannel.dir, perChannelParams: perChannel.params };
}

/** Stored scale (and zero point) of a quantized weight, read with lib/onnx.ts only. */
function storedScales(list: ListParametersResult, stored: string, suffix: string): Float32Array {
  return tensorValues(list.onnx, `${stored}${suffix}`).data as Float32Array;
}

Deno.test("fp16 tensors dequantize within float16 rounding (relative 2^-11) of the float32 originals", async () => {
  const { dir, params } = await quantizedDir(TINY_GPT2);
  const list = await listParameters(dir, { dtype: "fp16" });
  assertEquals(list.params.map((p) => p.name), (await listParameters(dir)).params.map((p) => p.name));
  for (const p of list.params) {
    assertEquals(p.dtype, "float16");
    const want = params.get(p.name)!.data;
    assertWithin(
      (await readParameter(list, p.name)).data,
      want,
      (i) => Math.abs(want[i]) * 2 ** -11 + 2 ** -25,
      p.name,
    );
  }
});

Deno.test("q8 MatMulInteger weights dequantize within scale/2, per tensor and per column", async () => {
  for (const config of [TINY_GPT2, TINY_LLAMA]) {
    const { dir, params, perChannelDir, perChannelParams } = await quantizedDir(config);
    for (const [d, ref, perColumn] of [[dir, params, false], [perChannelDir, perChannelParams, true]] as const) {
      const list = await listParameters(d, { dtype: "q8" });
      const quantized = list.params.filter((p) => p.quantization !== null);
      assert(quantized.length >= 4 * config.nLayer);
      for (const p of quantized) {
        assertEquals(p.quantization!.scheme, "matmul-integer");
        assertEquals(p.quantization!.granularity, perColumn ? "channel" : "tensor");
        const base = p.storedName.replace(/_quantized$/, "");
        const scale = storedScales(list, base, "_scale");
        const cols = p.shape[1];
        const got = (await readParameter(list, p.name)).data;
        assertWithin(
          got,
          ref.get(p.name)!.data,
          (i) => (perColumn ? scale[i % cols] : scale[0]) / 2 * (1 + 1e-6),
          p.name,
        );
      }
    }
  }
});

Deno.test("int8 QDQ weights (DequantizeLinear per column, axis 1) dequantize within scale/2", async () => {
  const { dir, params } = await quantizedDir(TINY_LLAMA);
  const list = await listParameters(dir, { dtype: "int8" });
  const quantized = list.params.filter((p) => p.quantization !== null);
  assert(quantized.length > 0);
  for (const p of quantized) {
    assertEquals([p.quantization!.scheme, p.quantization!.granularity, p.quantization!.axis], [
      "dequantize-linear",
      "channel",
      1,
    ]);
    const scale = storedScales(list, p.storedName.replace(/_quantized$/, ""), "_scale");
    const cols = p.shape[1];
    const got = (await readParameter(list, p.name)).data;
    assertWithin(got, params.get(p.name)!.data, (i) => scale[i % cols] / 2 * (1 + 1e-6), p.name);
  }
});

Deno.test("q4 MatMulNBits weights dequantize to [K, N] within scale/2 of their block", async () => {
  for (const config of [TINY_GPT2, TINY_LLAMA]) {
    const { dir, params } = await quantizedDir(config);
    const list = await listParameters(dir, { dtype: "q4" });
    const quantized = list.params.filter((p) => p.quantization !== null);
    assert(quantized.length > 0);
    for (const p of quantized) {
      const q = p.quantization!;
      assertEquals([q.scheme, q.bits, q.blockSize], ["matmul-nbits", 4, 16]);
      assertEquals(p.transposed, true);
      const [K, N] = p.shape;
      assertEquals(p.storedShape, [N, Math.ceil(K / 16), 8]);
      assertEquals(p.elements, K * N);
      const scales = storedScales(list, p.storedName.replace(/_Q4$/, ""), "_scales");
      const kBlocks = Math.ceil(K / 16);
      const got = (await readParameter(list, p.name)).data;
      assertWithin(got, params.get(p.name)!.data, (i) => {
        const k = Math.floor(i / N), n = i % N;
        return scales[n * kBlocks + Math.floor(k / 16)] / 2 * (1 + 1e-6);
      }, p.name);
    }
  }
});

// Hand-built graphs of each layout ---------------------------------------------

Deno.test("MatMulNBits dequantizes packed codes, packed zero points and g_idx as a naive reference does", async () => {
  const rnd = lcg(7);
  const K = 40, N = 3, bs = 16, kb = Math.ceil(K / bs), blob = bs / 2;
  const code = () => Math.floor((rnd() + 0.5) * 16) & 15;
  const codes: number[][] = Array.from({ length: N }, () => Array.from({ length: kb * bs }, code));
  const scales = new Float32Array(N * kb).map(() => 0.01 + (rnd() + 0.5) * 0.1);
  const zps: number[][] = Array.from(
    { length: N },
    () => Array.from({ length: kb }, () => Math.floor((rnd() + 0.5) * 16) & 15),
  );
  const b = new Uint8Array(N * kb * blob);
  for (let n = 0; n < N; n++) b.set(packNibbles(codes[n]), n * kb * blob);
  const zpBytes = new Uint8Array(N * Math.ceil(kb / 2));
  for (let n = 0; n < N; n++) zpBytes.set(packNibbles(zps[n]), n * Math.ceil(kb / 2));
  const gIdx = Int32Array.from({ length: K }, (_, k) => (k * 7) % kb);
  for (const variant of ["zero points", "default zero point", "g_idx"]) {
    const inputs = ["x", "w_Q4", "w_scales"];
    const inits = [makeTensor("w_Q4", [N, kb, blob], b), makeTensor("w_scales", [N * kb], scales)];
    if (variant !== "default zero point") {
      inputs.push("w_zero_points");
      inits.push(makeTensor("w_zero_points", [zpBytes.length], zpBytes));
    }
    if (variant === "g_idx") {
      inputs.push("w_g_idx");
      inits.push(makeTensor("w_g_idx", [K], gIdx));
    }
    const node = makeNode(
      "MatMulNBits",
      inputs,
      ["y"],
      { K, N, bits: 4, block_size: bs },
      "/model/layers.0/mlp/up_proj/MatMul_Q4",
      "com.microsoft",
    );
    const list = await listParameters(
      await writeTemp(graph([node], inits, 21, [makeValueInfo("x", DataType.FLOAT, ["n", K])])),
    );
    assertEquals(list.params.map((p) => [p.name, p.shape]), [["blocks.0.mlp.in.weight", [K, N]]]);
    assertEquals(
      list.excluded.map((x) => x.reason.replace(/ of .*/, "")).sort(),
      variant === "g_idx"
        ? ["quantization group index (g_idx)", "quantization scale", "quantization zero point"]
        : variant === "zero points"
        ? ["quantization scale", "quantization zero point"]
        : ["quantization scale"],
    );
    const got = (await readParameter(list, "blocks.0.mlp.in.weight")).data;
    const want: number[] = [];
    for (let k = 0; k < K; k++) {
      for (let n = 0; n < N; n++) {
        const g = variant === "g_idx" ? gIdx[k] : Math.floor(k / bs);
        const zp = variant === "default zero point" ? 8 : zps[n][g];
        want.push((codes[n][k] - zp) * scales[n * kb + g]);
      }
    }
    assertWithin(got, want, () => 1e-6, variant);
  }
});

Deno.test("DequantizeLinear per tensor (uint8, then Transpose) and per channel (int8, Gemm transB) give [in, out]", async () => {
  const q = new Uint8Array([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 250]); // stored [out=3, in=4]
  const perTensor = graph(
    [
      makeNode("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], {}, "wq_DequantizeLinear"),
      makeNode("Transpose", ["wd"], ["wt"], { perm: [1, 0] }, "/transformer/h.2/mlp/c_fc/Transpose"),
      makeNode("MatMul", ["x", "wt"], ["y"], {}, "/transformer/h.2/mlp/c_fc/MatMul"),
    ],
    [
      makeTensor("wq", [3, 4], q),
      makeTensor("ws", [], new Float32Array([0.5])),
      makeTensor("wz", [], new Uint8Array([20])),
    ],
  );
  let list = await listParameters(await writeTemp(perTensor));
  let p = list.params[0];
  assertEquals([p.name, p.shape, p.transposed, p.quantization!.granularity], [
    "blocks.2.mlp.in.weight",
    [4, 3],
    true,
    "tensor",
  ]);
  const deq = Array.from(q, (v) => (v - 20) * 0.5);
  assertEquals(
    Array.from((await readParameter(list, p.name)).data),
    transposeRef({ data: Float32Array.from(deq), dims: [3, 4] }),
  );

  const qi = new Int8Array([-128, -1, 0, 127, 5, 6, 7, 8, -9, -10, -11, -12]);
  const perChannel = graph(
    [
      makeNode("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], { axis: 0 }, "wq_DequantizeLinear"),
      makeNode("Gemm", ["x", "wd", "b"], ["y"], { transB: 1 }, "/bert/encoder/layer.1/attention/self/key/Gemm"),
    ],
    [
      makeTensor("wq", [3, 4], qi),
      makeTensor("ws", [3], new Float32Array([0.1, 0.2, 0.4])),
      makeTensor("wz", [3], new Int8Array([0, 1, -2])),
      makeTensor("b", [3], new Float32Array([1, 2, 3])),
    ],
  );
  list = await listParameters(await writeTemp(perChannel));
  assertEquals(list.params.map((x) => [x.name, x.shape, x.component, x.kind]), [
    ["blocks.1.attn.k.weight", [4, 3], "attention", "weight"],
    ["blocks.1.attn.k.bias", [3], "attention", "bias"],
  ]);
  p = list.params[0];
  assertEquals([p.quantization!.granularity, p.quantization!.axis, p.transposed], ["channel", 0, true]);
  const s = [0.1, 0.2, 0.4], z = [0, 1, -2];
  const deq2 = Float32Array.from(qi, (v, i) => (v - z[Math.floor(i / 4)]) * s[Math.floor(i / 4)]);
  // Float32 products against a float64 reference: one rounding, relative 2^-24.
  const want2 = transposeRef({ data: deq2, dims: [3, 4] });
  assertWithin((await readParameter(list, p.name)).data, want2, (i) => Math.abs(want2[i]) * 2 ** -23, "per channel");
});

Deno.test("DequantizeLinear with int4 codes and block_size dequantizes block by block", async () => {
  // W int4 [4, 3] (already [in, out]), blocks of 2 along axis 0: scale and zero point [2, 3].
  const codes = [-8, -1, 0, 1, 2, 3, 7, -7, 4, -3, 5, 6];
  const scale = new Float32Array([0.5, 1, 2, 0.25, 0.125, 4]);
  const zp = [1, 0, -1, 2, 0, 3];
  const proto = graph(
    [
      makeNode("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], { axis: 0, block_size: 2 }, "dq"),
      makeNode("MatMul", ["x", "wd"], ["y"], {}, "/model/layers.0/self_attn/o_proj/MatMul"),
    ],
    [
      makeTensor("wq", [4, 3], packNibbles(codes), DataType.INT4),
      makeTensor("ws", [2, 3], scale),
      makeTensor("wz", [2, 3], packNibbles(zp), DataType.INT4),
    ],
  );
  const list = await listParameters(await writeTemp(proto));
  const p = list.params[0];
  assertEquals([p.name, p.dtype, p.quantization!.granularity, p.quantization!.blockSize, p.quantization!.bits], [
    "blocks.0.attn.o.weight",
    "int4",
    "block",
    2,
    4,
  ]);
  const want = codes.map((c, i) => {
    const r = Math.floor(i / 3), col = i % 3, g = Math.floor(r / 2) * 3 + col;
    return (c - zp[g]) * scale[g];
  });
  assertEquals(Array.from((await readParameter(list, p.name)).data), want);
});

Deno.test("MatMulInteger finds its weight scale through the graph when it is not named <W>_scale", async () => {
  const wq = new Uint8Array([0, 50, 100, 150, 200, 250, 1, 2, 3, 4, 5, 6]);
  const proto = graph(
    [
      makeNode("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], {}, "x_QuantizeLinear"),
      makeNode("MatMulInteger", ["xq", "wq", "xz", "wz"], ["yi"], {}, "/model/layers.3/self_attn/v_proj/MatMul_quant"),
      makeNode("Cast", ["yi"], ["yf"], { to: DataType.FLOAT }, "cast"),
      makeNode("Mul", ["xs", "odd_scale_name"], ["sc"], {}, "scales_mul"),
      makeNode("Mul", ["yf", "sc"], ["y"], {}, "out_mul"),
    ],
    [
      makeTensor("wq", [4, 3], wq),
      makeTensor("wz", [], new Uint8Array([100])),
      makeTensor("odd_scale_name", [], new Float32Array([0.25])),
    ],
  );
  const list = await listParameters(await writeTemp(proto));
  assertEquals(list.params.map((p) => [p.name, p.quantization?.scale]), [["blocks.3.attn.v.weight", "odd_scale_name"]]);
  assertEquals(list.excluded.map((x) => x.name).sort(), ["odd_scale_name", "wz"]);
  assertEquals(
    Array.from((await readParameter(list, "blocks.3.attn.v.weight")).data),
    Array.from(wq, (v) => (v - 100) * 0.25),
  );
});

Deno.test("a quantized Gather table is dequantized by the DequantizeLinear after it", async () => {
  const q = new Uint8Array(20).map((_, i) => i * 12);
  const proto = graph(
    [
      makeNode("Gather", ["emb_quantized", "ids"], ["g"], { axis: 0 }, "/model/embed_tokens/Gather"),
      makeNode(
        "DequantizeLinear",
        ["g", "emb_scale", "emb_zero_point"],
        ["y"],
        {},
        "/model/embed_tokens/DequantizeLinear",
      ),
    ],
    [
      makeTensor("emb_quantized", [5, 4], q),
      makeTensor("emb_scale", [], new Float32Array([0.125])),
      makeTensor("emb_zero_point", [], new Uint8Array([3])),
    ],
    21,
    [makeValueInfo("ids", DataType.INT64, ["n"])],
  );
  const list = await listParameters(await writeTemp(proto));
  assertEquals(list.params.map((p) => [p.name, p.shape, p.quantization?.scheme]), [[
    "embed.tokens",
    [5, 4],
    "dequantize-linear",
  ]]);
  assertEquals(Array.from((await readParameter(list, "embed.tokens")).data), Array.from(q, (v) => (v - 3) * 0.125));
});

// ---------------------------------------------------------------------------
// Bad input

Deno.test("a truncated model file is an OnnxFormatError naming the file", async () => {
  const bytes = await Deno.readFile(join(bundledModelPath(), "onnx", "model.onnx"));
  const dir = await Deno.makeTempDir();
  const path = join(dir, "model.onnx");
  await Deno.writeFile(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const e = await assertRejects(() => listParameters(path), OnnxFormatError);
  assertStringIncludes(e.message, path);
});

Deno.test("a tensor whose raw data is shorter than its shape is an OnnxFormatError naming the tensor", async () => {
  const proto = graph([makeNode("MatMul", ["x", "short_w"], ["y"], {}, "/lm_head/MatMul")], [
    { ...makeTensor("short_w", [4, 3], new Float32Array(12)), rawData: new Uint8Array(40) },
  ]);
  const path = await writeTemp(proto);
  const e = await assertRejects(() => listParameters(path), OnnxFormatError);
  assertStringIncludes(e.message, "short_w");
  // Unvalidated, the error surfaces when the values are read.
  const unchecked = await readOnnx(path, { validate: false });
  const e2 = await assertRejects(() => readParameter(unchecked, "head.weight"), OnnxFormatError);
  assertStringIncludes(e2.message, "short_w");
});

Deno.test("an unknown data type is an OnnxFormatError naming the tensor", async () => {
  const proto = graph([makeNode("MatMul", ["x", "odd_type"], ["y"], {}, "/lm_head/MatMul")], [
    { ...makeTensor("odd_type", [4, 3], new Float32Array(12)), dataType: 99 },
  ]);
  const path = await writeTemp(proto);
  const e = await assertRejects(() => listParameters(path), OnnxFormatError);
  assertStringIncludes(e.message, "odd_type");
  assertStringIncludes(e.message, "unknown data type");
  const unchecked = await readOnnx(path, { validate: false });
  const e2 = await assertRejects(() => readParameter(unchecked, "odd_type"), OnnxFormatError);
  assertStringIncludes(e2.message, "odd_type");
});

// ---------------------------------------------------------------------------
// Statistics

Deno.test("tensorStats() matches a naive float64 two-pass reference, also for offset data", () => {
  const rnd = lcg(3);
  for (const offset of [0, 1, 1000]) {
    const d = new Float32Array(5000).map(() => offset + 0.02 * rnd());
    const s = tensorStats(d, { nearZero: 0.005, bins: 0 });
    const r = naiveStats(d, 0.005);
    for (const k of ["mean", "min", "max", "l2", "meanAbs", "nearZero"] as const) {
      close(s[k], r[k], 1e-9, `${k} @${offset}`);
    }
    close(s.std, r.std, 1e-6, `std @${offset}`);
    assertEquals([s.count, s.nonFinite, s.histogram], [5000, 0, undefined]);
  }
});

Deno.test("tensorStats() leaves NaN and ±Infinity out of every figure and counts them", () => {
  const d = new Float32Array([1, NaN, -3, Infinity, 0, -Infinity, 2]);
  const s = tensorStats(d, { bins: 2 });
  const r = naiveStats(d, 1e-3);
  assertEquals([s.count, s.nonFinite, s.min, s.max], [7, 3, -3, 2]);
  close(s.mean, r.mean, 1e-12, "mean");
  close(s.std, r.std, 1e-12, "std");
  assertEquals(s.histogram!.counts.reduce((a, b) => a + b, 0), 4);
  const empty = tensorStats(new Float32Array(0));
  assert(Number.isNaN(empty.mean) && Number.isNaN(empty.min));
});

Deno.test("tensorStats() bins like a naive search over half-open edges, the last bin closed", () => {
  const rnd = lcg(11);
  const d = new Float32Array(2000).map(() => rnd());
  for (const options of [{ bins: 7 }, { bins: 10, range: [-0.25, 0.25] as const }]) {
    const h = tensorStats(d, options).histogram!;
    const want = new Array(options.bins).fill(0);
    let outside = 0;
    for (const v of d) {
      const last = h.edges.length - 2;
      if (v < h.edges[0] || v > h.edges[last + 1]) {
        outside++;
        continue;
      }
      let b = 0;
      while (b < last && !(v < h.edges[b + 1])) b++;
      want[b]++;
    }
    assertEquals(h.counts, want);
    assertEquals(h.outside, outside);
  }
  assertEquals(tensorStats(new Float32Array([0, 1, 2, 3]), { bins: 3 }).histogram!.counts, [1, 1, 2]);
});

Deno.test("tensorStats() rejects bad options with a RangeError naming them", () => {
  const d = new Float32Array([1, 2]);
  assertThrows(() => tensorStats(d, { nearZero: -1 }), RangeError, "nearZero");
  assertThrows(() => tensorStats(d, { bins: 2.5 }), RangeError, "bins");
  assertThrows(() => tensorStats(d, { range: [1, 1] }), RangeError, "range");
  assertThrows(() => tensorStats([1, 2] as unknown as Float32Array), TypeError);
});

Deno.test("compareTensors() gives RMS and max error; quantError() bounds q4 error by max scale/2", async () => {
  const e = compareTensors(new Float32Array([1, 2, 3]), new Float32Array([1, 2, 5]));
  close(e.rms, Math.sqrt(4 / 3), 1e-12, "rms");
  assertEquals(e.max, 2);
  assertThrows(() => compareTensors(new Float32Array(2), new Float32Array(3)), RangeError);
  const { dir, params } = await quantizedDir(TINY_LLAMA);
  const list = await listParameters(dir, { dtype: "q4" });
  const name = "blocks.1.mlp.out.weight";
  const p = list.params.find((x) => x.name === name)!;
  const err = await quantError(list, name, params.get(name));
  const scales = storedScales(list, p.storedName.replace(/_Q4$/, ""), "_scales");
  assertEquals(err.bound, Math.max(...scales) / 2);
  assert(err.max! <= err.bound * (1 + 1e-6) && err.rms! <= err.max!);
  close(err.boundRelStd, err.bound / naiveStats(params.get(name)!.data, 0).std, 0.05, "bound / std");
  assertEquals((await quantError(dir, name)).bound, 0);
});

Deno.test("inspectWeights() gives one row per counted tensor and layer summaries equal to direct sums", async () => {
  const { dir, params } = await tinyModelDir(TINY_GPT2);
  const r = await inspectWeights(dir, { bins: 8 });
  assertEquals(r.rows.map((x) => x.name), [...expectedParams(TINY_GPT2).keys()]);
  assertEquals(r.total, [...params.values()].reduce((a, t) => a + t.data.length, 0));
  for (const row of r.rows) {
    const ref = naiveStats(params.get(row.name)!.data, 1e-3);
    close(row.stats.std, ref.std, 1e-6, row.name);
    close(row.stats.l2, ref.l2, 1e-9, row.name);
  }
  for (const l of r.layers) {
    const mine = [...params].filter(([n]) => n.startsWith(`blocks.${l.layer}.`));
    const sq = (kind: RegExp) =>
      Math.sqrt(mine.filter(([n]) => kind.test(n)).reduce((a, [, t]) => a + t.data.reduce((s, v) => s + v * v, 0), 0));
    close(l.weightL2, sq(/\.weight$/), 1e-9, "weightL2");
    close(l.biasL2, sq(/\.bias$/), 1e-9, "biasL2");
    close(l.gainL2, sq(/\.gain$/), 1e-9, "gainL2");
    const biases = mine.filter(([n]) => n.endsWith(".bias")).flatMap(([, t]) => Array.from(t.data));
    close(l.meanAbsBias, biases.reduce((a, v) => a + Math.abs(v), 0) / biases.length, 1e-9, "meanAbsBias");
    assertEquals(l.params, mine.reduce((a, [, t]) => a + t.data.length, 0));
  }
  assertEquals(layerSummaries(r.rows), r.layers);
  assertEquals(r.tied, [{ name: "head.weight", tiedTo: "embed.tokens" }]);
  const filtered = await inspectWeights(dir, { filter: /\.bias$/ });
  assert(filtered.rows.length > 0 && filtered.rows.every((x) => x.kind === "bias"));
  const text = formatInspect(r);
  assertStringIncludes(text, "blocks.1.attn.qkv.weight");
  assertStringIncludes(text, "tied: head.weight = embed.tokens");
});

Deno.test("inspectWeights() reports quantization error against float references", async () => {
  const { dir, params } = await quantizedDir(TINY_GPT2);
  const r = await inspectWeights(dir, { dtype: "int8", reference: params as ParamMap, bins: 0 });
  const q = r.rows.filter((x) => x.quantization !== null);
  assert(q.length > 0);
  for (const row of q) assert(row.quantError!.max! <= row.quantError!.bound * (1 + 1e-6), row.name);
  assertEquals(r.rows.filter((x) => x.quantization === null).every((x) => x.quantError === undefined), true);
  assertStringIncludes(formatInspect(r), "err/std");
});

// ---------------------------------------------------------------------------
// Figures

Deno.test("blockAverage() and rowNorms() match naive loops; plotHeatmap() stays within 128×128", () => {
  const rnd = lcg(5);
  const t: Tensor = { data: new Float32Array(300 * 200).map(() => rnd()), dims: [300, 200] };
  const { tensor, rowStep, colStep } = blockAverage(t, 128, 128);
  assertEquals([tensor.dims, rowStep, colStep], [[100, 100], 3, 2]);
  let s = 0;
  for (let i = 3; i < 6; i++) for (let j = 2; j < 4; j++) s += t.data[i * 200 + j];
  close(tensor.data[1 * 100 + 1], s / 6, 1e-6, "block (1,1)");
  const fig = plotHeatmap(t);
  assertEquals((fig.data[0].z as number[][]).length, 100);
  assertEquals(fig.data[0].zmid, 0);
  const rn = rowNorms(t);
  close(rn[7], Math.sqrt(Array.from(t.data.subarray(7 * 200, 8 * 200)).reduce((a, v) => a + v * v, 0)), 1e-6, "row 7");
  assertThrows(() => blockAverage({ data: new Float32Array(3), dims: [3] }), RangeError);
  assertThrows(() => rowNorms({ data: new Float32Array(3), dims: [3] }), RangeError);
});

Deno.test("the figure builders give a histogram, per-layer lines and embedding norms", async () => {
  const { dir } = await tinyModelDir(TINY_GPT2);
  const emb = await readParameter(dir, "embed.tokens");
  const h = plotHistogram(emb, { bins: 20 });
  assertEquals((h.data[0].y as number[]).reduce((a, b) => a + b, 0), emb.data.length);
  const lines = plotLayerNorms(await inspectWeights(dir));
  assert(lines.data.some((tr) => tr.name === "attn.qkv.weight"));
  assertEquals(lines.data[0].x as number[], Array.from({ length: TINY_GPT2.nLayer }, (_, i) => i));
  const norms = plotEmbeddingNorms(emb);
  assertEquals((norms.data[0].y as number[]).length, TINY_GPT2.vocabSize);
  assertThrows(() => plotEmbeddingNorms(emb, { labels: ["a"] }), RangeError);
});

// ---------------------------------------------------------------------------
// Script

const SCRIPT = new URL("../scripts/inspect.ts", import.meta.url).pathname;

async function runInspect(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("scripts/inspect.ts --json lists exactly the tensors countModel() counts", async () => {
  const { countModel } = await import("../lib/count.ts");
  const { code, stdout } = await runInspect("--json", "--bins", "4");
  assertEquals(code, 0);
  const rows = JSON.parse(stdout) as { name: string; stats: { count: number; histogram: { counts: number[] } } }[];
  const count = await countModel(bundledModelPath());
  assertEquals(rows.map((r) => r.name), count.tensors!.map((t) => t.name));
  assertEquals(rows.reduce((a, r) => a + r.stats.count, 0), count.total);
  assert(rows.every((r) => r.stats.histogram.counts.length === 4));
});

Deno.test("scripts/inspect.ts prints a table, filters, reads quantized folders and rejects bad usage", async () => {
  const { dir } = await quantizedDir(TINY_LLAMA);
  const table = await runInspect("--model", dir, "--dtype", "q4", "--filter", "^blocks\\.0\\.");
  assertEquals(table.code, 0);
  assertStringIncludes(table.stdout, "blocks.0.mlp.gate.weight");
  assertStringIncludes(table.stdout, "uint8 4b/block");
  assert(!table.stdout.includes("blocks.1."));
  const json = JSON.parse((await runInspect("--model", dir, "--dtype", "q8", "--json", "--filter", "attn")).stdout);
  assert(json.length > 0 && json.every((r: { quantization: unknown }) => r.quantization !== null));
  for (const bad of [["--model", "/no/such/folder"], ["--bins", "-1"], ["--filter", "("], ["--dtype", "q3"], ["--x"]]) {
    const r = await runInspect(...bad);
    assertEquals(r.code, 2, bad.join(" "));
    assert(r.stderr.length > 0);
  }
});
