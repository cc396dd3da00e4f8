/**
 * A tiny BERT encoder folder that transformers.js loads with `AutoModel` (the
 * layout and graph of an Optimum `feature-extraction` export of `BertModel`),
 * with seeded random weights and the real WordPiece tokenizer of
 * all-MiniLM-L6-v2 from `../shared/fixtures` (read-only, beside the clone).
 *
 * Graph (Hugging Face `BertModel` semantics, opset 17):
 * `input_ids`, `attention_mask`, `token_type_ids` (int64 `[batch, pos]`) →
 * `last_hidden_state` `[batch, pos, d_model]` (and `pooler_output` `[batch, d_model]`
 * with `pooler: true`):
 * - embeddings: word + position (`embeddings.position_ids` sliced to the length) + token type,
 *   then LayerNorm;
 * - per block, post-norm: self-attention over keys with the additive mask
 *   `(1 - attention_mask) · float32_min`, scores scaled by `1/√d_head`; output dense +
 *   residual + LayerNorm; intermediate dense + exact GELU `x · ½ · (1 + erf(x/√2))`
 *   (`Erf`) + output dense + residual + LayerNorm.
 *
 * Names follow Optimum: node scopes carry the module path
 * (`/encoder/layer.0/attention/self/query/MatMul`), biases, norms and embeddings
 * keep their PyTorch names (`encoder.layer.0.attention.self.query.bias`), linear
 * weights are stored transposed (`[in, out]`) under anonymous names
 * (`onnx::MatMul_1`) as constant folding leaves them, and the pooler is a `Gemm`
 * with `transB = 1` on the PyTorch `[out, in]` tensor `pooler.dense.weight`.
 *
 * @example
 * ```ts
 * import { bertTokenizerAvailable, writeTinyBert } from "./_bert_fixture.ts";
 * if (bertTokenizerAvailable()) {
 *   const dir = await Deno.makeTempDir();
 *   const bert = await writeTinyBert(dir, { seed: 3 });
 *   console.log(bert.config.vocab_size, bert.params.get("embeddings.word_embeddings.weight")!.dims); // 30522 [30522, 32]
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  DataType,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
  writeOnnx,
} from "../lib/onnx.ts";
import { createPrng, type Prng } from "../lib/prng.ts";
import type { Tensor } from "../lib/types.ts";

/**
 * The real all-MiniLM-L6-v2 tokenizer folder (`tokenizer.json`, `tokenizer_config.json`,
 * `special_tokens_map.json`, `vocab.txt`), in `../shared/fixtures` beside the clone.
 *
 * @example
 * ```ts
 * import { BERT_TOKENIZER_DIR } from "./_bert_fixture.ts";
 * console.log(BERT_TOKENIZER_DIR.pathname.endsWith("all-MiniLM-L6-v2-tokenizer/"));
 * ```
 */
export const BERT_TOKENIZER_DIR: URL = new URL("../../shared/fixtures/all-MiniLM-L6-v2-tokenizer/", import.meta.url);

/**
 * Whether the real BERT tokenizer files are present. Tests built on
 * {@linkcode writeTinyBert} must be reported as ignored, with the reason, when
 * this is `false` (a user's clone has no `../shared`).
 *
 * @param dir the tokenizer folder to look in (default {@linkcode BERT_TOKENIZER_DIR})
 * @returns `true` when `tokenizer.json` and `tokenizer_config.json` are readable files there
 * @example
 * ```ts
 * import { bertTokenizerAvailable } from "./_bert_fixture.ts";
 * console.log(typeof bertTokenizerAvailable()); // "boolean"
 * ```
 */
export function bertTokenizerAvailable(dir: URL = BERT_TOKENIZER_DIR): boolean {
  try {
    return Deno.statSync(new URL("tokenizer.json", dir)).isFile &&
      Deno.statSync(new URL("tokenizer_config.json", dir)).isFile;
  } catch {
    return false;
  }
}

/**
 * Options for {@linkcode writeTinyBert}. Every field has a small default.
 *
 * @example
 * ```ts
 * import type { TinyBertOptions } from "./_bert_fixture.ts";
 * const o: TinyBertOptions = { seed: 7, numLayers: 1, pooler: true };
 * console.log(o.numLayers);
 * ```
 */
export interface TinyBertOptions {
  /** Seed of the weights (`createPrng`). Default 1. */
  seed?: number;
  /** Standard deviation of the normal weights and biases; LayerNorm gains are `1 + N(0, std)`. Default 0.05. */
  std?: number;
  /** `hidden_size` (`d_model`). Default 32. */
  hiddenSize?: number;
  /** `num_hidden_layers`. Default 2. */
  numLayers?: number;
  /** `num_attention_heads`; must divide `hiddenSize`. Default 4. */
  numHeads?: number;
  /** `intermediate_size` (`d_mlp`). Default 64. */
  intermediateSize?: number;
  /** `max_position_embeddings`, also written as the tokenizer's `model_max_length`. Default 64. */
  maxPositions?: number;
  /** Add the pooler (`tanh(dense(h[:, 0]))`) and its `pooler_output`, as a `BertModel` checkpoint has. Default `false`
   *  (Optimum's feature-extraction export outputs only `last_hidden_state`, so the pooler is pruned). */
  pooler?: boolean;
  /** Folder holding the WordPiece tokenizer files. Default {@linkcode BERT_TOKENIZER_DIR}. */
  tokenizerDir?: URL;
}

/**
 * What {@linkcode writeTinyBert} wrote.
 *
 * @example
 * ```ts
 * import type { TinyBert } from "./_bert_fixture.ts";
 * function width(b: TinyBert): number { return b.config.hidden_size as number; }
 * console.log(typeof width);
 * ```
 */
export interface TinyBert {
  /** The model folder. */
  dir: string;
  /** `config.json` as written. */
  config: Record<string, unknown>;
  /**
   * Every learned tensor under its PyTorch name and in PyTorch's layout: `nn.Linear` weights are
   * `[out, in]`, embeddings `[rows, d_model]`, LayerNorm `weight`/`bias` `[d_model]`.
   */
  params: Map<string, Tensor>;
  /** ONNX initializer name → PyTorch name, for the learned tensors (the anonymous `onnx::MatMul_N` included). */
  storedNames: Record<string, string>;
  /** Files written, relative to `dir`. */
  files: string[];
}

/** Float32 minimum, which Hugging Face multiplies `1 - attention_mask` by. */
const F32_MIN = -3.4028234663852886e38;

/**
 * Writes a tiny BERT model folder (`config.json`, `tokenizer.json`, `tokenizer_config.json`,
 * `special_tokens_map.json`, `vocab.txt`, `onnx/model.onnx`) that transformers.js loads for
 * `AutoModel` / feature extraction. The vocabulary is the real tokenizer's (30522 rows for
 * all-MiniLM-L6-v2, about 4 MB of float32 embeddings at `hiddenSize` 32): write it to a
 * temporary folder, never into the repository.
 *
 * @param dir destination folder (created if needed)
 * @param options sizes, seed, scale, pooler, tokenizer folder
 * @returns the folder, its config, the weights in PyTorch layout and the stored-name map
 * @throws {RangeError} when a size is not a positive integer or the heads do not divide `hiddenSize`
 * @throws {TypeError} when the tokenizer files are missing (naming the folder; check {@linkcode bertTokenizerAvailable})
 * @example
 * ```ts
 * import { bertTokenizerAvailable, writeTinyBert } from "./_bert_fixture.ts";
 * if (bertTokenizerAvailable()) {
 *   const dir = await Deno.makeTempDir({ prefix: "tiny-bert-" });
 *   const { files } = await writeTinyBert(dir, { numLayers: 1 });
 *   console.log(files.includes("onnx/model.onnx")); // true
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function writeTinyBert(dir: string, options: TinyBertOptions = {}): Promise<TinyBert> {
  const size = (name: keyof TinyBertOptions, fallback: number): number => {
    const v = options[name] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      throw new RangeError(`writeTinyBert(): ${name} must be a positive integer, got ${String(v)}`);
    }
    return v;
  };
  const d = size("hiddenSize", 32), nLayer = size("numLayers", 2), nHead = size("numHeads", 4);
  const dMlp = size("intermediateSize", 64), maxPos = size("maxPositions", 64);
  if (d % nHead !== 0) {
    throw new RangeError(`writeTinyBert(): numHeads ${nHead} does not divide hiddenSize ${d}; pick a divisor`);
  }
  const std = options.std ?? 0.05;
  if (!(std > 0)) throw new RangeError(`writeTinyBert(): std must be a positive number, got ${std}`);
  const tokDir = options.tokenizerDir ?? BERT_TOKENIZER_DIR;
  if (!bertTokenizerAvailable(tokDir)) {
    throw new TypeError(
      `writeTinyBert(): no tokenizer.json/tokenizer_config.json in ${fileURLToPath(tokDir)}; ` +
        `pass tokenizerDir, or ignore the test when bertTokenizerAvailable() is false`,
    );
  }
  const tokenizerJson = await Deno.readTextFile(new URL("tokenizer.json", tokDir));
  const vocab = vocabSize(JSON.parse(tokenizerJson));
  const tokenizerConfig = JSON.parse(await Deno.readTextFile(new URL("tokenizer_config.json", tokDir)));

  const config: Record<string, unknown> = {
    model_type: "bert",
    architectures: ["BertModel"],
    vocab_size: vocab,
    hidden_size: d,
    num_hidden_layers: nLayer,
    num_attention_heads: nHead,
    intermediate_size: dMlp,
    hidden_act: "gelu",
    max_position_embeddings: maxPos,
    type_vocab_size: 2,
    layer_norm_eps: 1e-12,
    pad_token_id: 0,
    position_embedding_type: "absolute",
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    initializer_range: std,
  };
  const params = bertParams(config, createPrng(options.seed ?? 1), std, options.pooler ?? false);
  const built = bertGraph(config, params, options.pooler ?? false);

  await Deno.mkdir(join(dir, "onnx"), { recursive: true });
  const files: string[] = [];
  const write = async (name: string, text: string) => {
    await Deno.writeTextFile(join(dir, name), text);
    files.push(name);
  };
  await write("config.json", JSON.stringify(config, null, 2) + "\n");
  await write("tokenizer.json", tokenizerJson);
  // The real file says 512; this model has maxPositions rows, so longer inputs would index past the table.
  await write(
    "tokenizer_config.json",
    JSON.stringify({ ...tokenizerConfig, model_max_length: maxPos }, null, 2) + "\n",
  );
  for (const extra of ["special_tokens_map.json", "vocab.txt"]) {
    try {
      await write(extra, await Deno.readTextFile(new URL(extra, tokDir)));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  await writeOnnx(built.model, join(dir, "onnx", "model.onnx"));
  files.push("onnx/model.onnx");
  return { dir, config, params, storedNames: built.storedNames, files };
}

/** Rows of the embedding table: one past the largest id of the vocabulary and the added tokens. */
function vocabSize(json: { model?: { vocab?: Record<string, number> }; added_tokens?: { id: number }[] }): number {
  let max = -1;
  for (const id of Object.values(json.model?.vocab ?? {})) max = Math.max(max, id);
  for (const t of json.added_tokens ?? []) max = Math.max(max, t.id);
  if (max < 0) throw new TypeError("writeTinyBert(): tokenizer.json has no WordPiece vocabulary (model.vocab)");
  return max + 1;
}

/** Seeded weights under PyTorch names and layouts. */
function bertParams(config: Record<string, unknown>, rng: Prng, std: number, pooler: boolean): Map<string, Tensor> {
  const d = config.hidden_size as number, dMlp = config.intermediate_size as number;
  const p = new Map<string, Tensor>();
  const normal = (name: string, dims: number[], mean = 0) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rng.normal(mean, std);
    p.set(name, { data, dims });
  };
  const layerNorm = (scope: string) => {
    normal(`${scope}.weight`, [d], 1);
    normal(`${scope}.bias`, [d]);
  };
  const linear = (scope: string, inDim: number, outDim: number) => {
    normal(`${scope}.weight`, [outDim, inDim]);
    normal(`${scope}.bias`, [outDim]);
  };
  normal("embeddings.word_embeddings.weight", [config.vocab_size as number, d]);
  normal("embeddings.position_embeddings.weight", [config.max_position_embeddings as number, d]);
  normal("embeddings.token_type_embeddings.weight", [config.type_vocab_size as number, d]);
  layerNorm("embeddings.LayerNorm");
  for (let i = 0; i < (config.num_hidden_layers as number); i++) {
    const l = `encoder.layer.${i}`;
    for (const m of ["query", "key", "value"]) linear(`${l}.attention.self.${m}`, d, d);
    linear(`${l}.attention.output.dense`, d, d);
    layerNorm(`${l}.attention.output.LayerNorm`);
    linear(`${l}.intermediate.dense`, d, dMlp);
    linear(`${l}.output.dense`, dMlp, d);
    layerNorm(`${l}.output.LayerNorm`);
  }
  if (pooler) linear("pooler.dense", d, d);
  return p;
}

/** Nodes and initializers in the order torch.onnx emits them; node names `scope/Op`, `scope/Op_1`, ... */
class Graph {
  nodes: NodeProto[] = [];
  initializers: TensorProto[] = [];
  storedNames: Record<string, string> = {};
  #used = new Map<string, number>();
  #consts = new Map<string, string>();
  #anon = 0;

  op(opType: string, inputs: string[], scope: string, attrs: Parameters<typeof makeNode>[3] = {}, out?: string) {
    const base = `${scope}/${opType}`;
    const k = this.#used.get(base) ?? 0;
    this.#used.set(base, k + 1);
    const name = k === 0 ? base : `${base}_${k}`;
    const output = out ?? `${name}_output_0`;
    this.nodes.push(makeNode(opType, inputs, [output], attrs, name));
    return output;
  }

  /** A learned tensor under its PyTorch name. */
  param(torchName: string, t: Tensor): string {
    this.initializers.push(makeTensor(torchName, t.dims, t.data));
    this.storedNames[torchName] = torchName;
    return torchName;
  }

  /** A `[out, in]` PyTorch weight stored transposed `[in, out]` under an anonymous name, as constant folding leaves it. */
  transposedParam(torchName: string, t: Tensor): string {
    const [rows, cols] = t.dims;
    const data = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[c * rows + r] = t.data[r * cols + c];
    const stored = `onnx::MatMul_${++this.#anon}`;
    this.initializers.push(makeTensor(stored, [cols, rows], data));
    this.storedNames[stored] = torchName;
    return stored;
  }

  i64(values: number[], scalar = false): string {
    const key = `i64:${scalar}:${values}`;
    let name = this.#consts.get(key);
    if (!name) {
      name = `const_i64_${values.join("_").replace(/-/g, "m")}${scalar ? "_s" : ""}`;
      this.initializers.push(makeTensor(name, scalar ? [] : [values.length], BigInt64Array.from(values.map(BigInt))));
      this.#consts.set(key, name);
    }
    return name;
  }

  f32(value: number, label: string): string {
    const key = `f32:${value}`;
    let name = this.#consts.get(key);
    if (!name) {
      name = `const_f32_${label}`;
      this.initializers.push(makeTensor(name, [], new Float32Array([value])));
      this.#consts.set(key, name);
    }
    return name;
  }
}

function bertGraph(
  config: Record<string, unknown>,
  params: Map<string, Tensor>,
  pooler: boolean,
): { model: ReturnType<typeof makeModel>; storedNames: Record<string, string> } {
  const d = config.hidden_size as number, nHead = config.num_attention_heads as number;
  const dHead = d / nHead, eps = { float: config.layer_norm_eps as number };
  const maxPos = config.max_position_embeddings as number;
  const g = new Graph();
  const P = (name: string) => params.get(name)!;
  const layerNorm = (x: string, torch: string, scope: string, out?: string) => {
    const gain = g.param(`${torch}.weight`, P(`${torch}.weight`));
    const bias = g.param(`${torch}.bias`, P(`${torch}.bias`));
    return g.op("LayerNormalization", [x, gain, bias], scope, { axis: -1, epsilon: eps }, out);
  };
  const linear = (x: string, torch: string, scope: string) => {
    const y = g.op("MatMul", [x, g.transposedParam(`${torch}.weight`, P(`${torch}.weight`))], scope);
    return g.op("Add", [g.param(`${torch}.bias`, P(`${torch}.bias`)), y], scope);
  };

  // Embeddings: h is [B, S, d].
  const words = g.op(
    "Gather",
    [g.param("embeddings.word_embeddings.weight", P("embeddings.word_embeddings.weight")), "input_ids"],
    "/embeddings/word_embeddings",
    { axis: 0 },
  );
  const types = g.op(
    "Gather",
    [
      g.param("embeddings.token_type_embeddings.weight", P("embeddings.token_type_embeddings.weight")),
      "token_type_ids",
    ],
    "/embeddings/token_type_embeddings",
    { axis: 0 },
  );
  let h = g.op("Add", [words, types], "/embeddings");
  // The registered buffer position_ids [1, max_pos] (int64), sliced to the sequence length: [1, S].
  g.initializers.push(
    makeTensor("embeddings.position_ids", [1, maxPos], BigInt64Array.from({ length: maxPos }, (_, i) => BigInt(i))),
  );
  const shape = g.op("Shape", ["input_ids"], "/embeddings");
  const seq = g.op("Gather", [shape, g.i64([1])], "/embeddings", { axis: 0 });
  const posIds = g.op("Slice", ["embeddings.position_ids", g.i64([0]), seq, g.i64([1])], "/embeddings");
  const pos = g.op(
    "Gather",
    [g.param("embeddings.position_embeddings.weight", P("embeddings.position_embeddings.weight")), posIds],
    "/embeddings/position_embeddings",
    { axis: 0 },
  );
  h = g.op("Add", [h, pos], "/embeddings");
  h = layerNorm(h, "embeddings.LayerNorm", "/embeddings/LayerNorm");

  // Extended attention mask [B, 1, 1, T]: (1 - mask) · float32_min, added to every query's scores.
  const m4 = g.op("Unsqueeze", ["attention_mask", g.i64([1, 2])], "");
  const mf = g.op("Cast", [m4], "", { to: DataType.FLOAT });
  const inv = g.op("Sub", [g.f32(1, "one"), mf], "");
  const mask = g.op("Mul", [inv, g.f32(F32_MIN, "min")], "");

  const heads = (x: string, scope: string) =>
    g.op("Transpose", [g.op("Reshape", [x, g.i64([0, 0, nHead, dHead])], scope)], scope, { perm: [0, 2, 1, 3] });
  for (let i = 0; i < (config.num_hidden_layers as number); i++) {
    const t = `encoder.layer.${i}`, s = `/encoder/layer.${i}`;
    const sa = `${s}/attention/self`;
    const q = heads(linear(h, `${t}.attention.self.query`, `${sa}/query`), sa);
    const k = heads(linear(h, `${t}.attention.self.key`, `${sa}/key`), sa);
    const v = heads(linear(h, `${t}.attention.self.value`, `${sa}/value`), sa);
    const kt = g.op("Transpose", [k], sa, { perm: [0, 1, 3, 2] });
    const scores = g.op("Div", [g.op("MatMul", [q, kt], sa), g.f32(Math.sqrt(dHead), `sqrt_dhead_${dHead}`)], sa);
    const probs = g.op("Softmax", [g.op("Add", [scores, mask], sa)], sa, { axis: -1 });
    const ctx = g.op("MatMul", [probs, v], sa);
    const merged = g.op("Reshape", [g.op("Transpose", [ctx], sa, { perm: [0, 2, 1, 3] }), g.i64([0, 0, d])], sa);
    const attn = linear(merged, `${t}.attention.output.dense`, `${s}/attention/output/dense`);
    const res1 = g.op("Add", [attn, h], `${s}/attention/output`);
    h = layerNorm(res1, `${t}.attention.output.LayerNorm`, `${s}/attention/output/LayerNorm`);
    const pre = linear(h, `${t}.intermediate.dense`, `${s}/intermediate/dense`);
    // Exact GELU as torch exports it: x · (erf(x / √2) + 1) · 0.5.
    const act = `${s}/intermediate/intermediate_act_fn`;
    const erf = g.op("Erf", [g.op("Div", [pre, g.f32(Math.SQRT2, "sqrt2")], act)], act);
    const gelu = g.op(
      "Mul",
      [g.op("Mul", [pre, g.op("Add", [erf, g.f32(1, "one")], act)], act), g.f32(0.5, "half")],
      act,
    );
    const out = linear(gelu, `${t}.output.dense`, `${s}/output/dense`);
    const res2 = g.op("Add", [out, h], `${s}/output`);
    const last = i === (config.num_hidden_layers as number) - 1;
    h = layerNorm(res2, `${t}.output.LayerNorm`, `${s}/output/LayerNorm`, last ? "last_hidden_state" : undefined);
  }

  const outputs: ValueInfoProto[] = [
    makeValueInfo("last_hidden_state", DataType.FLOAT, ["batch_size", "sequence_length", d]),
  ];
  if (pooler) {
    // pooler_output = tanh(h[:, 0] Wᵀ + b), W stored [out, in] and read by Gemm with transB.
    const first = g.op("Gather", ["last_hidden_state", g.i64([0], true)], "/pooler", { axis: 1 });
    const dense = g.op(
      "Gemm",
      [
        first,
        g.param("pooler.dense.weight", P("pooler.dense.weight")),
        g.param("pooler.dense.bias", P("pooler.dense.bias")),
      ],
      "/pooler/dense",
      { alpha: { float: 1 }, beta: { float: 1 }, transB: 1 },
    );
    g.op("Tanh", [dense], "/pooler/activation", {}, "pooler_output");
    outputs.push(makeValueInfo("pooler_output", DataType.FLOAT, ["batch_size", d]));
  }
  const inputs = ["input_ids", "attention_mask", "token_type_ids"].map((n) =>
    makeValueInfo(n, DataType.INT64, ["batch_size", "sequence_length"])
  );
  const model = makeModel({
    name: "main_graph",
    nodes: g.nodes,
    initializers: g.initializers,
    inputs,
    outputs,
    opset: 17,
  });
  return { model, storedNames: g.storedNames };
}
