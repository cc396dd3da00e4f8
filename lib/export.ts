/**
 * Writes a model folder in the exact layout transformers.js loads from the
 * Hugging Face hub: `config.json`, `generation_config.json`, `tokenizer.json`,
 * `tokenizer_config.json` and `onnx/model.onnx` with KV-cache inputs and
 * outputs (`input_ids`, `attention_mask`, `position_ids`,
 * `past_key_values.N.key|value` → `logits`, `present.N.key|value`).
 *
 * The ONNX graph follows Hugging Face semantics and Optimum's naming: node
 * names carry the module scope (`/transformer/h.0/attn/c_attn/MatMul`) and
 * initializers the PyTorch parameter names (`transformer.h.0.attn.c_attn.weight`),
 * or anonymous names (`onnx::MatMul_12`) with `anonymize`, as many hub exports have.
 *
 * @example
 * ```ts
 * import { exportModel } from "@paramscope/kit/export";
 * import type { Gpt2Config, ParamMap } from "@paramscope/kit/types";
 * declare const config: Gpt2Config, params: ParamMap, tokenizerJson: unknown, tokenizerConfig: Record<string, unknown>;
 * await exportModel("out/my-model", { config, params, tokenizer: { json: tokenizerJson, config: tokenizerConfig } });
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { writeFileAtomic } from "./_fs.ts";
import {
  DataType,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
  writeOnnx,
} from "./onnx.ts";
import { expectedParamShapes } from "./forward.ts";
import type { ArchConfig, Gpt2Config, LlamaConfig, ParamMap, Tensor } from "./types.ts";

/** Options for {@linkcode exportModel}. */
export interface ExportOptions {
  /** Architecture. */
  config: ArchConfig;
  /** Weights under the readable names of lib/types.ts. */
  params: ParamMap;
  /** Tokenizer files' contents: `tokenizer.json` and `tokenizer_config.json`. */
  tokenizer: { json: unknown; config: object };
  /** Token ids for `bos_token_id`, `eos_token_id` (default: the tokenizer config's `eos_token` id or `vocab - 1`). */
  bosTokenId?: number;
  /** End-of-sequence id. */
  eosTokenId?: number;
  /** Store learned tensors under anonymous names (`onnx::MatMul_7`), as many hub exports do (default `false`). */
  anonymize?: boolean;
  /** Move tensors of at least this many bytes to `onnx/model.onnx_data` (default: all inline). */
  externalDataThreshold?: number;
  /** Default generation settings written to `generation_config.json`. */
  generation?: Record<string, unknown>;
  /** Extra files to write into the folder (name → text), e.g. a model card `README.md`. */
  extraFiles?: Record<string, string>;
}

/** What {@linkcode exportModel} wrote. */
export interface ExportResult {
  /** The folder. */
  dir: string;
  /** Every file written, relative to `dir`. */
  files: string[];
  /** Bytes of `onnx/model.onnx` (plus external data, if any). */
  onnxBytes: number;
  /** Map from the ONNX initializer name to the readable parameter name. */
  initializerNames: Record<string, string>;
}

/**
 * Writes a model folder that transformers.js (and ONNX Runtime) load.
 *
 * @param dir destination folder (created if needed; existing files are replaced atomically)
 * @param options weights, config, tokenizer and export settings
 * @returns the files written and the initializer naming
 * @throws {TypeError} when a parameter is missing or has the wrong shape
 *
 * @example
 * ```ts
 * import { exportModel } from "@paramscope/kit/export";
 * import type { Gpt2Config, ParamMap } from "@paramscope/kit/types";
 * declare const config: Gpt2Config, params: ParamMap, tok: { json: unknown; config: Record<string, unknown> };
 * const r = await exportModel("out/m", { config, params, tokenizer: tok });
 * console.log(r.files);
 * ```
 */
export async function exportModel(dir: string, options: ExportOptions): Promise<ExportResult> {
  const { config, params } = options;
  checkParams(config, params);
  await Deno.mkdir(join(dir, "onnx"), { recursive: true });
  const eos = options.eosTokenId ?? config.vocabSize - 1;
  const bos = options.bosTokenId ?? eos;
  const built = config.family === "gpt2"
    ? buildGpt2Graph(config, params, options.anonymize ?? false)
    : buildLlamaGraph(config, params, options.anonymize ?? false);
  const files: string[] = [];
  const write = async (name: string, text: string) => {
    await writeFileAtomic(join(dir, name), text);
    files.push(name);
  };
  await write("config.json", JSON.stringify(hfConfig(config, bos, eos), null, 2) + "\n");
  await write(
    "generation_config.json",
    JSON.stringify({ bos_token_id: bos, eos_token_id: eos, ...(options.generation ?? {}) }, null, 2) + "\n",
  );
  await write("tokenizer.json", JSON.stringify(options.tokenizer.json));
  await write("tokenizer_config.json", JSON.stringify(options.tokenizer.config, null, 2) + "\n");
  for (const [name, text] of Object.entries(options.extraFiles ?? {})) await write(name, text);
  const onnxPath = join(dir, "onnx", "model.onnx");
  let onnxBytes = await writeOnnx(built.model, onnxPath, { externalDataThreshold: options.externalDataThreshold });
  files.push("onnx/model.onnx");
  if (options.externalDataThreshold !== undefined) {
    files.push("onnx/model.onnx_data");
    onnxBytes += (await Deno.stat(join(dir, "onnx", "model.onnx_data"))).size;
  }
  return { dir, files, onnxBytes, initializerNames: built.names };
}

/**
 * The Hugging Face `config.json` object for an architecture.
 *
 * @param config architecture
 * @param bos beginning-of-sequence id
 * @param eos end-of-sequence id
 * @returns a JSON-ready object with HF field names
 *
 * @example
 * ```ts
 * import { hfConfig } from "@paramscope/kit/export";
 * const c = hfConfig({ family: "gpt2", vocabSize: 100, maxPositions: 16, dModel: 8, nLayer: 1, nHead: 2, dMlp: 32, normEps: 1e-5 }, 99, 99);
 * console.log(c.model_type); // "gpt2"
 * ```
 */
export function hfConfig(config: ArchConfig, bos: number, eos: number): Record<string, unknown> {
  if (config.family === "gpt2") {
    return {
      model_type: "gpt2",
      architectures: ["GPT2LMHeadModel"],
      vocab_size: config.vocabSize,
      n_positions: config.maxPositions,
      n_ctx: config.maxPositions,
      n_embd: config.dModel,
      n_layer: config.nLayer,
      n_head: config.nHead,
      n_inner: config.dMlp,
      activation_function: "gelu_new",
      layer_norm_epsilon: config.normEps,
      bos_token_id: bos,
      eos_token_id: eos,
      tie_word_embeddings: true,
      use_cache: true,
    };
  }
  return {
    model_type: "llama",
    architectures: ["LlamaForCausalLM"],
    vocab_size: config.vocabSize,
    max_position_embeddings: config.maxPositions,
    hidden_size: config.dModel,
    intermediate_size: config.dMlp,
    num_hidden_layers: config.nLayer,
    num_attention_heads: config.nHead,
    num_key_value_heads: config.nKvHead,
    head_dim: config.dHead,
    hidden_act: "silu",
    rms_norm_eps: config.normEps,
    rope_theta: config.ropeTheta,
    tie_word_embeddings: config.tieWordEmbeddings,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: bos,
    eos_token_id: eos,
    use_cache: true,
  };
}

function checkParams(config: ArchConfig, params: ParamMap): void {
  for (const [name, shape] of expectedParamShapes(config)) {
    const t = params.get(name);
    if (!t) throw new TypeError(`Cannot export: parameter "${name}" [${shape}] is missing from params.`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.dims.length !== shape.length || t.dims.some((x, i) => x !== shape[i]) || t.data.length !== n) {
      throw new TypeError(
        `Cannot export: parameter "${name}" has shape [${t.dims}] (${t.data.length} values) but the config needs [${shape}].`,
      );
    }
  }
}

/** Collects nodes and initializers while a graph is built. */
class GraphBuilder {
  nodes: NodeProto[] = [];
  initializers: TensorProto[] = [];
  names: Record<string, string> = {};
  private anonCount = 0;
  private consts = new Map<string, string>();
  constructor(private anonymize: boolean) {}

  /** Adds a node; returns its first output name. */
  op(opType: string, inputs: string[], scope: string, attrs: Parameters<typeof makeNode>[3] = {}, nOut = 1): string {
    const name = `${scope}/${opType}`;
    const outputs = Array.from({ length: nOut }, (_, i) => `${name}_output_${i}`);
    this.nodes.push(makeNode(opType, inputs, outputs, attrs, name));
    return outputs[0];
  }

  /** Adds a node with several outputs; returns them all. */
  opN(opType: string, inputs: string[], scope: string, attrs: Parameters<typeof makeNode>[3], nOut: number): string[] {
    const first = this.op(opType, inputs, scope, attrs, nOut);
    return Array.from({ length: nOut }, (_, i) => first.replace(/_output_0$/, `_output_${i}`));
  }

  /** Adds a learned tensor under its PyTorch name (or an anonymous one); returns the stored name. */
  param(torchName: string, readable: string, t: Tensor, consumerOp: string): string {
    const stored = this.anonymize ? `onnx::${consumerOp}_${++this.anonCount}` : torchName;
    this.initializers.push(makeTensor(stored, t.dims, t.data));
    this.names[stored] = readable;
    return stored;
  }

  /** A shared int64 constant (shape or index), stored once. */
  i64(values: number[], scalar = false): string {
    const key = `i64:${scalar}:${values}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_i64_${values.join("_").replace(/-/g, "m")}${scalar ? "_s" : ""}`;
      this.initializers.push(makeTensor(name, scalar ? [] : [values.length], BigInt64Array.from(values.map(BigInt))));
      this.consts.set(key, name);
    }
    return name;
  }

  /** A shared float32 scalar constant. */
  f32(value: number, label: string): string {
    const key = `f32:${value}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_f32_${label}`;
      this.initializers.push(makeTensor(name, [], new Float32Array([value])));
      this.consts.set(key, name);
    }
    return name;
  }
}

interface Built {
  model: ModelProto;
  names: Record<string, string>;
}

/**
 * Appends this step's keys/values `[B, kv_head, S, d_head]` to the past ones
 * along the sequence axis and exposes them as `present.{layer}.key|value`.
 */
function appendKv(g: GraphBuilder, layer: number, k: string, v: string, scope: string): [string, string] {
  const out: string[] = [];
  for (const [kind, x] of [["key", k], ["value", v]] as const) {
    const all = g.op("Concat", [`past_key_values.${layer}.${kind}`, x], `${scope}/present_${kind}`, { axis: 2 });
    g.nodes.push(makeNode("Identity", [all], [`present.${layer}.${kind}`], {}, `${scope}/present.${kind}`));
    out.push(all);
  }
  return [out[0], out[1]];
}

/** Wraps a decoder graph with the inputs and outputs transformers.js expects of a KV-cache model. */
function decoderModel(
  g: GraphBuilder,
  family: "gpt2" | "llama",
  config: ArchConfig,
  kvHeads: number,
  dHead: number,
): Built {
  const inputs: ValueInfoProto[] = [
    makeValueInfo("input_ids", DataType.INT64, ["batch_size", "sequence_length"]),
    makeValueInfo("attention_mask", DataType.INT64, ["batch_size", "total_sequence_length"]),
    makeValueInfo("position_ids", DataType.INT64, ["batch_size", "sequence_length"]),
  ];
  const outputs: ValueInfoProto[] = [
    makeValueInfo("logits", DataType.FLOAT, ["batch_size", "sequence_length", config.vocabSize]),
  ];
  for (let i = 0; i < config.nLayer; i++) {
    for (const kind of ["key", "value"]) {
      const past = ["batch_size", kvHeads, "past_sequence_length", dHead];
      inputs.push(makeValueInfo(`past_key_values.${i}.${kind}`, DataType.FLOAT, past));
      outputs.push(
        makeValueInfo(`present.${i}.${kind}`, DataType.FLOAT, ["batch_size", kvHeads, "total_sequence_length", dHead]),
      );
    }
  }
  const model = makeModel({
    name: `paramscope_${family}`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs,
    outputs,
    opset: 17,
    metadata: { "paramscope.family": family },
  });
  return { model, names: g.names };
}

/**
 * Additive attention mask `[batch, 1, query, key]`: 0 where a query may attend
 * (key position ≤ the query's absolute position and attention_mask = 1), the
 * float32 minimum elsewhere (as Hugging Face does; finite, so a fully padded
 * row stays a uniform softmax rather than NaN).
 */
function buildMask(g: GraphBuilder): string {
  const s = "/model/mask";
  const idsShape = g.op("Shape", ["input_ids"], `${s}/ids`);
  const seq = g.op("Gather", [idsShape, g.i64([1], true)], `${s}/seq`, { axis: 0 });
  const maskShape = g.op("Shape", ["attention_mask"], `${s}/am`);
  const total = g.op("Gather", [maskShape, g.i64([1], true)], `${s}/total`, { axis: 0 });
  const past = g.op("Sub", [total, seq], `${s}/past`);
  const one = g.i64([1], true);
  const qPos = g.op("Range", [past, total, one], `${s}/qpos`);
  const kPos = g.op("Range", [g.i64([0], true), total, one], `${s}/kpos`);
  const q2 = g.op("Unsqueeze", [qPos, g.i64([1])], `${s}/q2`);
  const k2 = g.op("Unsqueeze", [kPos, g.i64([0])], `${s}/k2`);
  const causal = g.op("LessOrEqual", [k2, q2], `${s}/causal`);
  const amBool = g.op("Cast", ["attention_mask"], `${s}/ambool`, { to: DataType.BOOL });
  const am4 = g.op("Unsqueeze", [amBool, g.i64([1, 2])], `${s}/am4`);
  const allowed = g.op("And", [causal, am4], `${s}/allowed`);
  return g.op("Where", [allowed, g.f32(0, "zero"), g.f32(-3.4028234663852886e38, "min")], `${s}/bias`);
}

/** Splits `[B, S, H·dh]` into heads `[B, H, S, dh]`. */
function toHeads(g: GraphBuilder, x: string, heads: number, dHead: number, scope: string): string {
  const r = g.op("Reshape", [x, g.i64([0, 0, heads, dHead])], scope);
  return g.op("Transpose", [r], scope, { perm: [0, 2, 1, 3] });
}

/** Merges heads `[B, H, S, dh]` back into `[B, S, H·dh]`. */
function fromHeads(g: GraphBuilder, z: string, width: number, scope: string): string {
  const t = g.op("Transpose", [z], `${scope}/merge`, { perm: [0, 2, 1, 3] });
  return g.op("Reshape", [t, g.i64([0, 0, width])], `${scope}/merge`);
}

/** Scaled dot-product attention over `[B, H, S, dh]` queries and `[B, H, T, dh]` keys/values. */
function attend(g: GraphBuilder, q: string, k: string, v: string, mask: string, dHead: number, scope: string): string {
  const kt = g.op("Transpose", [k], `${scope}/kt`, { perm: [0, 1, 3, 2] });
  const raw = g.op("MatMul", [q, kt], `${scope}/scores`);
  const scaled = g.op("Div", [raw, g.f32(Math.sqrt(dHead), `sqrt_dhead_${dHead}`)], `${scope}/scores`);
  const masked = g.op("Add", [scaled, mask], `${scope}/scores`);
  const p = g.op("Softmax", [masked], `${scope}/pattern`, { axis: -1 });
  return g.op("MatMul", [p, v], `${scope}/z`);
}

function linear(
  g: GraphBuilder,
  x: string,
  params: ParamMap,
  readable: string,
  torch: string,
  scope: string,
  withBias: boolean,
): string {
  const w = g.param(`${torch}.weight`, `${readable}.weight`, params.get(`${readable}.weight`)!, "MatMul");
  let y = g.op("MatMul", [x, w], scope);
  if (withBias) {
    const b = g.param(`${torch}.bias`, `${readable}.bias`, params.get(`${readable}.bias`)!, "Add");
    y = g.op("Add", [y, b], scope);
  }
  return y;
}

function buildGpt2Graph(config: Gpt2Config, params: ParamMap, anonymize: boolean): Built {
  const g = new GraphBuilder(anonymize);
  const d = config.dModel;
  const dHead = d / config.nHead;
  if (!Number.isInteger(dHead)) {
    throw new TypeError(`dModel ${d} is not divisible by nHead ${config.nHead}; pick a head count that divides it.`);
  }
  const wte = g.param("transformer.wte.weight", "embed.tokens", params.get("embed.tokens")!, "Gather");
  const wpe = g.param("transformer.wpe.weight", "embed.positions", params.get("embed.positions")!, "Gather");
  const tok = g.op("Gather", [wte, "input_ids"], "/transformer/wte", { axis: 0 });
  const pos = g.op("Gather", [wpe, "position_ids"], "/transformer/wpe", { axis: 0 });
  let h = g.op("Add", [tok, pos], "/transformer");
  const mask = buildMask(g);
  const eps = { float: config.normEps };
  const ln = (x: string, readable: string, torch: string, scope: string) => {
    const gain = g.param(`${torch}.weight`, `${readable}.gain`, params.get(`${readable}.gain`)!, "LayerNormalization");
    const bias = g.param(`${torch}.bias`, `${readable}.bias`, params.get(`${readable}.bias`)!, "LayerNormalization");
    return g.op("LayerNormalization", [x, gain, bias], scope, { axis: -1, epsilon: eps });
  };
  for (let i = 0; i < config.nLayer; i++) {
    const b = `blocks.${i}`;
    const t = `transformer.h.${i}`;
    const s = `/transformer/h.${i}`;
    const x1 = ln(h, `${b}.ln1`, `${t}.ln_1`, `${s}/ln_1`);
    const qkv = linear(g, x1, params, `${b}.attn.qkv`, `${t}.attn.c_attn`, `${s}/attn/c_attn`, true);
    const [q, k, v] = g.opN("Split", [qkv, g.i64([d, d, d])], `${s}/attn`, { axis: 2 }, 3);
    const qh = toHeads(g, q, config.nHead, dHead, `${s}/attn/q`);
    const kh = toHeads(g, k, config.nHead, dHead, `${s}/attn/k`);
    const vh = toHeads(g, v, config.nHead, dHead, `${s}/attn/v`);
    const [kAll, vAll] = appendKv(g, i, kh, vh, `${s}/attn`);
    const z = attend(g, qh, kAll, vAll, mask, dHead, `${s}/attn`);
    const merged = fromHeads(g, z, d, `${s}/attn`);
    const a = linear(g, merged, params, `${b}.attn.o`, `${t}.attn.c_proj`, `${s}/attn/c_proj`, true);
    h = g.op("Add", [h, a], `${s}/resid_mid`);
    const x2 = ln(h, `${b}.ln2`, `${t}.ln_2`, `${s}/ln_2`);
    const pre = linear(g, x2, params, `${b}.mlp.in`, `${t}.mlp.c_fc`, `${s}/mlp/c_fc`, true);
    const post = geluTanhGraph(g, pre, `${s}/mlp/act`);
    const m = linear(g, post, params, `${b}.mlp.out`, `${t}.mlp.c_proj`, `${s}/mlp/c_proj`, true);
    h = g.op("Add", [h, m], `${s}/resid_post`);
  }
  const hf = ln(h, "norm_f", "transformer.ln_f", "/transformer/ln_f");
  // Tied head: the same initializer as the token embedding, transposed in the graph (stored once).
  const wteT = g.op("Transpose", [wte], "/lm_head", { perm: [1, 0] });
  g.nodes.push(makeNode("MatMul", [hf, wteT], ["logits"], {}, "/lm_head/MatMul"));
  return decoderModel(g, "gpt2", config, config.nHead, dHead);
}

/** GELU, tanh form, from elementwise ops: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`. */
function geluTanhGraph(g: GraphBuilder, x: string, scope: string): string {
  const x2 = g.op("Mul", [x, x], `${scope}/x2`);
  const x3 = g.op("Mul", [x2, x], `${scope}/x3`);
  const c = g.op("Mul", [x3, g.f32(0.044715, "gelu_c")], `${scope}/cx3`);
  const inner = g.op("Add", [x, c], `${scope}/inner`);
  const scaled = g.op("Mul", [inner, g.f32(Math.sqrt(2 / Math.PI), "sqrt_2_over_pi")], `${scope}/scaled`);
  const th = g.op("Tanh", [scaled], scope);
  const onePlus = g.op("Add", [th, g.f32(1, "one")], `${scope}/one_plus`);
  const half = g.op("Mul", [x, g.f32(0.5, "half")], `${scope}/half`);
  return g.op("Mul", [half, onePlus], `${scope}/out`);
}

/** RMSNorm from elementwise ops: `x / sqrt(mean(x²) + eps) · gain`. */
function rmsNormGraph(g: GraphBuilder, x: string, gain: string, eps: number, scope: string): string {
  const sq = g.op("Mul", [x, x], `${scope}/sq`);
  const mean = g.op("ReduceMean", [sq], `${scope}/mean`, { axes: [-1], keepdims: 1 });
  const plus = g.op("Add", [mean, g.f32(eps, `eps_${eps}`.replace(/[^a-z0-9_]/gi, "_"))], `${scope}/eps`);
  const root = g.op("Sqrt", [plus], scope);
  const normed = g.op("Div", [x, root], `${scope}/normed`);
  return g.op("Mul", [normed, gain], `${scope}/gain`);
}

function buildLlamaGraph(config: LlamaConfig, params: ParamMap, anonymize: boolean): Built {
  const g = new GraphBuilder(anonymize);
  const { dHead, nHead, nKvHead } = config;
  if (nHead % nKvHead !== 0) {
    throw new TypeError(`nHead ${nHead} is not a multiple of nKvHead ${nKvHead}; grouped-query attention needs it.`);
  }
  if (dHead % 2 !== 0) throw new TypeError(`dHead ${dHead} must be even for rotary positions.`);
  const wte = g.param("model.embed_tokens.weight", "embed.tokens", params.get("embed.tokens")!, "Gather");
  let h = g.op("Gather", [wte, "input_ids"], "/model/embed_tokens", { axis: 0 });
  const mask = buildMask(g);
  // Rotary tables [maxPositions, dHead/2] (constants, not parameters), gathered by position id.
  const half = dHead / 2;
  const cos = new Float32Array(config.maxPositions * dHead);
  const sin = new Float32Array(config.maxPositions * dHead);
  for (let p = 0; p < config.maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * Math.pow(config.ropeTheta, (-2 * i) / dHead);
      cos[p * dHead + i] = cos[p * dHead + i + half] = Math.cos(angle);
      sin[p * dHead + i] = sin[p * dHead + i + half] = Math.sin(angle);
    }
  }
  g.initializers.push(makeTensor("model.rotary_emb.cos_cached", [config.maxPositions, dHead], cos));
  g.initializers.push(makeTensor("model.rotary_emb.sin_cached", [config.maxPositions, dHead], sin));
  const cosP = g.op("Gather", ["model.rotary_emb.cos_cached", "position_ids"], "/model/rotary_emb/cos", { axis: 0 });
  const sinP = g.op("Gather", ["model.rotary_emb.sin_cached", "position_ids"], "/model/rotary_emb/sin", { axis: 0 });
  // [B, S, dh] → [B, 1, S, dh] to broadcast over heads.
  const cos4 = g.op("Unsqueeze", [cosP, g.i64([1])], "/model/rotary_emb/cos4");
  const sin4 = g.op("Unsqueeze", [sinP, g.i64([1])], "/model/rotary_emb/sin4");
  const rope = (x: string, scope: string) => {
    // rotate_half: concat(-x2, x1) where x1, x2 are the two halves of d_head.
    const [x1, x2] = g.opN("Split", [x, g.i64([half, half])], `${scope}/rot`, { axis: -1 }, 2);
    const neg = g.op("Neg", [x2], `${scope}/rot`);
    const rot = g.op("Concat", [neg, x1], `${scope}/rot`, { axis: -1 });
    const a = g.op("Mul", [x, cos4], `${scope}/cos`);
    const b = g.op("Mul", [rot, sin4], `${scope}/sin`);
    return g.op("Add", [a, b], `${scope}/rope`);
  };
  const norm = (x: string, readable: string, torch: string, scope: string) => {
    const gain = g.param(`${torch}.weight`, `${readable}.gain`, params.get(`${readable}.gain`)!, "Mul");
    return rmsNormGraph(g, x, gain, config.normEps, scope);
  };
  const groups = nHead / nKvHead;
  const repeatKv = (x: string, scope: string) => {
    if (groups === 1) return x;
    // [B, kv, T, dh] → [B, kv, groups, T, dh] → [B, kv·groups, T, dh], as HF's repeat_kv.
    const u = g.op("Unsqueeze", [x, g.i64([2])], `${scope}/repeat_kv`);
    const shape = g.op("Shape", [x], `${scope}/repeat_kv`);
    const b = g.op("Gather", [shape, g.i64([0])], `${scope}/repeat_kv/b`, { axis: 0 });
    const t = g.op("Gather", [shape, g.i64([2])], `${scope}/repeat_kv/t`, { axis: 0 });
    const target = g.op(
      "Concat",
      [b, g.i64([nKvHead]), g.i64([groups]), t, g.i64([dHead])],
      `${scope}/repeat_kv/target`,
      { axis: 0 },
    );
    const e = g.op("Expand", [u, target], `${scope}/repeat_kv`);
    const flat = g.op("Concat", [b, g.i64([nHead]), t, g.i64([dHead])], `${scope}/repeat_kv/flat`, { axis: 0 });
    return g.op("Reshape", [e, flat], `${scope}/repeat_kv`);
  };
  for (let i = 0; i < config.nLayer; i++) {
    const b = `blocks.${i}`;
    const t = `model.layers.${i}`;
    const s = `/model/layers.${i}`;
    const x1 = norm(h, `${b}.ln1`, `${t}.input_layernorm`, `${s}/input_layernorm`);
    const q = linear(g, x1, params, `${b}.attn.q`, `${t}.self_attn.q_proj`, `${s}/self_attn/q_proj`, false);
    const k = linear(g, x1, params, `${b}.attn.k`, `${t}.self_attn.k_proj`, `${s}/self_attn/k_proj`, false);
    const v = linear(g, x1, params, `${b}.attn.v`, `${t}.self_attn.v_proj`, `${s}/self_attn/v_proj`, false);
    const qh = rope(toHeads(g, q, nHead, dHead, `${s}/self_attn/q`), `${s}/self_attn/q`);
    const kh = rope(toHeads(g, k, nKvHead, dHead, `${s}/self_attn/k`), `${s}/self_attn/k`);
    const vh = toHeads(g, v, nKvHead, dHead, `${s}/self_attn/v`);
    const [kAll, vAll] = appendKv(g, i, kh, vh, `${s}/self_attn`);
    const z = attend(
      g,
      qh,
      repeatKv(kAll, `${s}/self_attn/k`),
      repeatKv(vAll, `${s}/self_attn/v`),
      mask,
      dHead,
      `${s}/self_attn`,
    );
    const merged = fromHeads(g, z, nHead * dHead, `${s}/self_attn`);
    const a = linear(g, merged, params, `${b}.attn.o`, `${t}.self_attn.o_proj`, `${s}/self_attn/o_proj`, false);
    h = g.op("Add", [h, a], `${s}/resid_mid`);
    const x2 = norm(h, `${b}.ln2`, `${t}.post_attention_layernorm`, `${s}/post_attention_layernorm`);
    const gate = linear(g, x2, params, `${b}.mlp.gate`, `${t}.mlp.gate_proj`, `${s}/mlp/gate_proj`, false);
    const up = linear(g, x2, params, `${b}.mlp.in`, `${t}.mlp.up_proj`, `${s}/mlp/up_proj`, false);
    const sig = g.op("Sigmoid", [gate], `${s}/mlp/act_fn`);
    const act = g.op("Mul", [gate, sig], `${s}/mlp/act_fn`);
    const prod = g.op("Mul", [act, up], `${s}/mlp`);
    const m = linear(g, prod, params, `${b}.mlp.out`, `${t}.mlp.down_proj`, `${s}/mlp/down_proj`, false);
    h = g.op("Add", [h, m], `${s}/resid_post`);
  }
  const hf = norm(h, "norm_f", "model.norm", "/model/norm");
  if (config.tieWordEmbeddings) {
    const wteT = g.op("Transpose", [wte], "/lm_head", { perm: [1, 0] });
    g.nodes.push(makeNode("MatMul", [hf, wteT], ["logits"], {}, "/lm_head/MatMul"));
  } else {
    const w = g.param("lm_head.weight", "head.weight", params.get("head.weight")!, "MatMul");
    g.nodes.push(makeNode("MatMul", [hf, w], ["logits"], {}, "/lm_head/MatMul"));
  }
  return decoderModel(g, "llama", config, nKvHead, dHead);
}
