/**
 * Open any transformers.js model and look at its weights and biases tensor by
 * tensor: readable names resolved from the ONNX graph, values dequantized to
 * `Float32Array` on demand, statistics per tensor and per layer, and figures.
 *
 * Names follow lib/types.ts (`embed.tokens`, `blocks.3.attn.qkv.weight`,
 * `blocks.0.ln1.gain`, `norm_f.gain`, `head.weight`, BERT's `embed.token_types`
 * and `pooler.weight`), and {@linkcode readParameter} returns matrices in the
 * canonical `[in, out]` layout whatever the file stores. A name is resolved
 * from the node that reads the tensor (following DequantizeLinear, Cast and
 * Transpose) and that node's scope (`/transformer/h.3/mlp/c_proj/MatMul`), then
 * from a PyTorch-style initializer name (`model.layers.3.self_attn.q_proj.weight`),
 * and finally falls back to the stored name under component `other`.
 *
 * Formats read: float32, float16, bfloat16; int8/uint8 (and int4/uint4) through
 * `DequantizeLinear` per tensor, per axis or per block; ONNX Runtime dynamic
 * quantization (`MatMulInteger` / `DynamicQuantizeMatMul` with `<W>_scale` and
 * `<W>_zero_point`); 4-bit (2..8-bit) `com.microsoft::MatMulNBits`; external data.
 *
 * Memory: the `.onnx` file is read once and tensors stay views into it (external
 * data is read one tensor at a time); only the tensors asked for are turned into
 * floats.
 *
 * @example
 * ```ts
 * import { listParameters, readParameter, tensorStats } from "./weights.ts";
 * const list = await listParameters("models/paramscope-gpt2-tiny");
 * console.log(list.params.map((p) => p.name).slice(0, 4)); // ["embed.tokens", "embed.positions", "blocks.0.ln1.gain", ...]
 * const w = await readParameter(list, "blocks.0.attn.qkv.weight");
 * console.log(w.dims, tensorStats(w).std);
 * ```
 *
 * @module
 */
import { dirname, join } from "node:path";
import {
  bfloatToFloat32,
  dequantizeLinear,
  dequantizeNBits,
  halfToFloat32,
  transpose2d,
  unpackNibbles,
} from "./_dequant.ts";
import type { Component, ExcludedTensor, ParamKind } from "./count.ts";
import { bundledModelPath, type Dtype, DTYPE_FILES, type Model } from "./load.ts";
import {
  DataType,
  dataTypeName,
  type InitializerInfo,
  OnnxFormatError,
  type OnnxModel,
  readOnnx,
  readOnnxBytes,
  tensorBytes,
  type TensorProto,
} from "./onnx.ts";
import { bar, type Figure, heatmap, histogram, line } from "./plot.ts";
import { type FileLease, type FloatSource, leaseFile, stageFloats, tensorSums } from "./_stats.ts";
import type { ParamMap, Tensor } from "./types.ts";

// ---------------------------------------------------------------------------
// Public types

/**
 * Where weights come from: a {@linkcode Model} from lib/load.ts, a decoded
 * {@linkcode OnnxModel}, a path (a model folder in the Hugging Face layout or a
 * `.onnx` file), or a {@linkcode ListParametersResult} already built.
 */
export type WeightSource = Model | OnnxModel | ListParametersResult | string;

/**
 * How a stored tensor is quantized.
 *
 * - `dequantize-linear`: `DequantizeLinear(codes, scale, zero_point, axis, block_size)` (QDQ models)
 * - `matmul-integer`: ONNX Runtime dynamic quantization, `MatMulInteger` with `<W>_scale`, `<W>_zero_point`
 *   (or `DynamicQuantizeMatMul`)
 * - `matmul-nbits`: `com.microsoft::MatMulNBits`, blocks of `blockSize` codes along K with a scale each
 *
 * @example
 * ```ts
 * import type { QuantizationInfo } from "./weights.ts";
 * const q: QuantizationInfo = { scheme: "matmul-nbits", bits: 4, signed: false, granularity: "block", blockSize: 32,
 *   scale: "w_scales" };
 * console.log(q.scheme);
 * ```
 */
export interface QuantizationInfo {
  /** Which operator pattern holds the codes. */
  scheme: "dequantize-linear" | "matmul-integer" | "matmul-nbits";
  /** Bits per code. */
  bits: number;
  /** Whether codes are signed (int8/int4) or unsigned (uint8/uint4/MatMulNBits). */
  signed: boolean;
  /** One scale for the tensor, one per channel, or one per block. */
  granularity: "tensor" | "channel" | "block";
  /** Axis of the stored tensor the scales run along (channel and block granularity). */
  axis?: number;
  /** Codes per scale along `axis` (block granularity). */
  blockSize?: number;
  /** Name of the scale tensor. */
  scale: string;
  /** Name of the zero-point tensor, when there is one. */
  zeroPoint?: string;
  /** MatMulNBits act-order group index tensor (`g_idx`), when there is one. */
  groupIndex?: string;
  /** MatMulNBits: `K` (input features) and `N` (output features). */
  K?: number;
  /** MatMulNBits output features. */
  N?: number;
}

/**
 * One learned tensor of a model file.
 *
 * @example
 * ```ts
 * import { listParameters, type ParamInfo } from "./weights.ts";
 * const p: ParamInfo = (await listParameters("models/paramscope-gpt2-tiny")).params[2];
 * console.log(p.name, p.dims, p.component, p.kind); // "blocks.0.ln1.gain" ["d_model"] "norm" "gain"
 * ```
 */
export interface ParamInfo {
  /** Readable name (`blocks.3.attn.qkv.weight`), or the stored name when the layout was not recognised. */
  name: string;
  /** Shape in the canonical layout {@linkcode readParameter} returns (`[in, out]` for matrices). */
  shape: number[];
  /** A name per dim from `batch, pos, d_model, head, d_head, d_mlp, vocab, layer` and products of them
   *  (`qkv` = 3·d_model, `head*d_head`, `kv_head*d_head`, `type_vocab`, `n_expert`); `?` when unknown. */
  dims: string[];
  /** Logical elements (product of `shape`); a 4-bit matrix counts all its K·N weights. */
  elements: number;
  /** Stored element type (`float32`, `float16`, `uint8`, `int8`, `uint4`, ...). */
  dtype: string;
  /** Where it sits in the model (as lib/count.ts). */
  component: Component;
  /** Matrix or table, additive bias, or a norm's multiplicative gain. */
  kind: ParamKind;
  /** Block index, for tensors inside `blocks.{i}`. */
  layer?: number;
  /** Initializer name in the file. */
  storedName: string;
  /** Shape as stored (e.g. MatMulNBits `[N, k_blocks, blob_size]`). */
  storedShape: number[];
  /** Whether the file stores it `[out, in]` (transposed relative to the canonical layout). */
  transposed: boolean;
  /** Other readable names served by the same storage (GPT-2's `head.weight` = `embed.tokens`ᵀ). */
  tied: string[];
  /** For an entry of {@linkcode ListParametersResult.tied}: the counted parameter it repeats. */
  tiedTo?: string;
  /** Quantization, or `null` for plain float storage. */
  quantization: QuantizationInfo | null;
  /** How the name was found: from the consuming node's scope, from the initializer name, or not at all. */
  resolvedBy: "scope" | "initializer" | "stored";
  /** The node that reads it (after DequantizeLinear/Cast/Transpose), when there is one. */
  consumer?: string;
}

/**
 * Everything {@linkcode listParameters} found; also the handle the other functions read values through.
 *
 * @example
 * ```ts
 * import { listParameters } from "./weights.ts";
 * const r = await listParameters("models/paramscope-gpt2-tiny");
 * console.log(r.params.length, r.tied.map((t) => t.name), r.excluded.length); // ... ["head.weight"] ...
 * ```
 */
export interface ListParametersResult {
  /** The decoded model file. */
  onnx: OnnxModel;
  /** Path of the `.onnx` file, when read from disk. */
  path?: string;
  /** The model's `config.json`, when found. */
  config?: Record<string, unknown>;
  /** Learned tensors, in file order, each storage counted once. */
  params: ParamInfo[];
  /** Readable names that reuse a counted tensor (graph-level ties, or exporter copies of a tied matrix). */
  tied: ParamInfo[];
  /** Initializers that are not learned parameters, with why. */
  excluded: ExcludedTensor[];
}

/**
 * Options for {@linkcode listParameters}.
 *
 * @example
 * ```ts
 * import type { ListParametersOptions } from "./weights.ts";
 * const o: ListParametersOptions = { dtype: "q8" };
 * console.log(o.dtype);
 * ```
 */
export interface ListParametersOptions {
  /** Which file of a model folder to open (`q8` → `onnx/model_quantized.onnx`). Default `"fp32"`. Ignored for a
   *  Model (it carries its own) or a `.onnx` path. */
  dtype?: Dtype;
  /** The model's `config.json` object. Default: the Model's, or `config.json` beside the folder/file if present. */
  config?: Record<string, unknown>;
}

/**
 * Options for {@linkcode readParameter}.
 *
 * @example
 * ```ts
 * import type { ReadParameterOptions } from "./weights.ts";
 * const o: ReadParameterOptions = { layout: "stored" };
 * console.log(o.layout);
 * ```
 */
export interface ReadParameterOptions extends ListParametersOptions {
  /** `"canonical"` (`[in, out]`, as lib/types.ts) or `"stored"` (the file's order; MatMulNBits is always
   *  canonical). Default `"canonical"`. */
  layout?: "canonical" | "stored";
}

// ---------------------------------------------------------------------------
// Graph walking

interface GNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  ints: Record<string, number | number[]>;
  value?: TensorProto;
}

interface Use {
  node: GNode;
  index: number;
  /** Whether the value reaching `node` is the transpose of the stored tensor. */
  transposed: boolean;
  /** DequantizeLinear passed on the way, and whether a Transpose came before it. */
  dql?: { node: GNode; afterTranspose: boolean };
}

function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (v && typeof v === "object" && "toNumber" in v) return (v as { toNumber(): number }).toNumber();
  return Number(v ?? 0);
}

type GraphLike = { node?: NodeLike[] | null };
type NodeLike = {
  name?: string | null;
  opType?: string | null;
  domain?: string | null;
  input?: string[] | null;
  output?: string[] | null;
  attribute?: {
    name?: string | null;
    type?: number | null;
    i?: unknown;
    ints?: unknown[] | null;
    t?: TensorProto | null;
    g?: GraphLike | null;
    graphs?: GraphLike[] | null;
  }[] | null;
};

/** Every node of the graph and of its subgraphs (If/Loop/Scan bodies read the main graph's initializers). */
function collectNodes(graph: GraphLike | null | undefined, out: GNode[] = []): GNode[] {
  for (const n of graph?.node ?? []) {
    const ints: GNode["ints"] = {};
    let value: TensorProto | undefined;
    for (const a of n.attribute ?? []) {
      const name = a.name ?? "";
      if (a.type === 2) ints[name] = num(a.i);
      else if (a.type === 7) ints[name] = (a.ints ?? []).map(num);
      else if (a.type === 4 && a.t) value = a.t;
      if (a.g) collectNodes(a.g, out);
      for (const g of a.graphs ?? []) collectNodes(g, out);
    }
    out.push({
      name: n.name ?? "",
      opType: n.opType ?? "",
      domain: n.domain ?? "",
      inputs: n.input ?? [],
      outputs: n.output ?? [],
      ints,
      value,
    });
  }
  return out;
}

interface GraphIndex {
  consumers: Map<string, { node: GNode; index: number }[]>;
  producers: Map<string, GNode>;
  inits: Map<string, InitializerInfo>;
}

function indexGraph(onnx: OnnxModel): GraphIndex {
  const nodes = collectNodes(onnx.proto.graph as GraphLike);
  const consumers = new Map<string, { node: GNode; index: number }[]>();
  const producers = new Map<string, GNode>();
  for (const node of nodes) {
    node.inputs.forEach((name, index) => {
      if (!name) return;
      let list = consumers.get(name);
      if (!list) consumers.set(name, list = []);
      list.push({ node, index });
    });
    for (const o of node.outputs) producers.set(o, node);
  }
  const inits = new Map(onnx.initializers.map((i) => [i.name, i]));
  return { consumers, producers, inits };
}

const PASS_THROUGH = new Set(["Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Slice"]);

/** Where a stored tensor is used, following ops that only convert, reshape or transpose it. */
function tracedUses(g: GraphIndex, start: string): Use[] {
  const out: Use[] = [];
  const seen = new Set<string>();
  const walk = (value: string, transposed: boolean, dql: Use["dql"], depth: number) => {
    if (seen.has(value) || depth > 12) return;
    seen.add(value);
    for (const { node, index } of g.consumers.get(value) ?? []) {
      const op = node.opType;
      if (index === 0 && PASS_THROUGH.has(op)) {
        walk(node.outputs[0], transposed, dql, depth + 1);
      } else if (index === 0 && op === "Transpose") {
        const perm = node.ints.perm as number[] | undefined;
        const swaps = perm === undefined || (perm.length === 2 && perm[0] === 1 && perm[1] === 0);
        walk(node.outputs[0], swaps ? !transposed : transposed, dql, depth + 1);
      } else if (index === 0 && op === "DequantizeLinear" && dql === undefined) {
        walk(node.outputs[0], transposed, { node, afterTranspose: transposed }, depth + 1);
      } else {
        out.push({ node, index, transposed, dql });
      }
    }
  };
  walk(start, false, undefined, 0);
  return out;
}

type OpRole = { role: "weight" | "bias" | "gain"; transposed?: boolean } | { aux: string } | { constant: true };

const AUX_SCALE = "quantization scale";
const AUX_ZERO = "quantization zero point";
const AUX_GIDX = "quantization group index (g_idx)";

/** What an input position of an operator means for a stored tensor fed into it. */
function opRole(use: Use): OpRole {
  const { node, index } = use;
  const t = use.transposed;
  switch (node.opType) {
    case "MatMul":
      return index === 1 ? { role: "weight", transposed: t } : { role: "weight", transposed: !t };
    case "Gemm":
      if (index === 2) return { role: "bias" };
      if (index === 1) return { role: "weight", transposed: node.ints.transB === 1 ? !t : t };
      return { role: "weight", transposed: node.ints.transA === 1 ? t : !t };
    case "MatMulInteger":
      return index <= 1 ? { role: "weight", transposed: index === 1 ? t : !t } : { aux: AUX_ZERO };
    case "DynamicQuantizeMatMul":
      return index === 1
        ? { role: "weight", transposed: t }
        : index === 2
        ? { aux: AUX_SCALE }
        : index === 3
        ? { aux: AUX_ZERO }
        : index === 4
        ? { role: "bias" }
        : { constant: true };
    case "MatMulNBits":
      return index === 1
        ? { role: "weight", transposed: true }
        : index === 2
        ? { aux: AUX_SCALE }
        : index === 3
        ? { aux: AUX_ZERO }
        : index === 4
        ? { aux: AUX_GIDX }
        : index === 5
        ? { role: "bias" }
        : { constant: true };
    case "Gather":
      return index === 0 ? { role: "weight", transposed: node.ints.axis === 1 ? !t : t } : { constant: true };
    case "Add":
      return { role: "bias" };
    case "Mul":
      return { role: "gain" };
    case "LayerNormalization":
      return index === 1 ? { role: "gain" } : index === 2 ? { role: "bias" } : { constant: true };
    case "SimplifiedLayerNormalization":
    case "RMSNormalization":
      return index === 1 ? { role: "gain" } : { constant: true };
    case "SkipLayerNormalization":
      return index === 2 ? { role: "gain" } : index >= 3 ? { role: "bias" } : { constant: true };
    case "SkipSimplifiedLayerNormalization":
      return index === 2 ? { role: "gain" } : index === 3 ? { role: "bias" } : { constant: true };
    case "EmbedLayerNormalization":
      return index >= 2 && index <= 4
        ? { role: "weight" }
        : index === 5
        ? { role: "gain" }
        : index === 6
        ? { role: "bias" }
        : { constant: true };
    case "Attention":
    case "MultiHeadAttention":
    case "Conv":
      return index === 1 ? { role: "weight" } : index === 2 ? { role: "bias" } : { constant: true };
    case "DequantizeLinear":
    case "QuantizeLinear":
      return index === 1 ? { aux: AUX_SCALE } : index === 2 ? { aux: AUX_ZERO } : { constant: true };
    case "Reshape":
    case "Expand":
    case "Concat":
    case "Range":
    case "ConstantOfShape":
    case "Equal":
    case "Less":
    case "LessOrEqual":
    case "Greater":
    case "Where":
    case "Tile":
    case "Pad":
    case "Split":
    case "Pow":
    case "Div":
    case "Sub":
    case "Sqrt":
    case "Trilu":
    case "CumSum":
    case "ReduceMean":
    case "ReduceSum":
    case "Softmax":
    case "Slice":
    case "Squeeze":
    case "Unsqueeze":
    case "Max":
    case "Min":
    case "Clip":
      return { constant: true };
    default:
      return { role: "weight", transposed: t };
  }
}

// ---------------------------------------------------------------------------
// Readable names

type RuleType = "embedding" | "linear" | "norm";

interface Rule {
  re: RegExp;
  type: RuleType;
  component: Component;
  /** Readable base name; `$1`, `$2` are the regex groups. */
  base: string;
  /** Dim names: `[rows, cols]` of the canonical matrix (the bias takes `cols`); norms use `d_model`. */
  dims?: [string, string];
}

const GPT = "(?:transformer\\.)?";
const DEC = "(?:model\\.|gpt_neox\\.)?";
const ENC = "(?:bert\\.|roberta\\.)?";
const LAYER = "encoder\\.layer\\.(\\d+)";

/** `[module path regex, type, component, readable base, "rows cols" dim names]`. */
type RuleRow = [string, RuleType, Component, string, string?];

const E = "embedding", L = "linear", N = "norm";
const MOE = `${DEC}layers\\.(\\d+)\\.block_sparse_moe`;

/** PyTorch module paths of the GPT-2, LLaMA/Mistral/Qwen2/Mixtral, GPT-NeoX and BERT families. */
const RULE_ROWS: RuleRow[] = [
  // GPT-2
  [`${GPT}wte`, E, "embedding", "embed.tokens", "vocab d_model"],
  [`${GPT}wpe`, E, "embedding", "embed.positions", "pos d_model"],
  [`${GPT}h\\.(\\d+)\\.ln_1`, N, "norm", "blocks.$1.ln1"],
  [`${GPT}h\\.(\\d+)\\.attn\\.c_attn`, L, "attention", "blocks.$1.attn.qkv", "d_model qkv"],
  [`${GPT}h\\.(\\d+)\\.attn\\.c_proj`, L, "attention", "blocks.$1.attn.o", "d_model d_model"],
  [`${GPT}h\\.(\\d+)\\.ln_2`, N, "norm", "blocks.$1.ln2"],
  [`${GPT}h\\.(\\d+)\\.mlp\\.c_fc`, L, "mlp", "blocks.$1.mlp.in", "d_model d_mlp"],
  [`${GPT}h\\.(\\d+)\\.mlp\\.c_proj`, L, "mlp", "blocks.$1.mlp.out", "d_mlp d_model"],
  [`${GPT}ln_f`, N, "norm", "norm_f"],
  // LLaMA, Mistral, Qwen2, Mixtral
  [`${DEC}embed_tokens`, E, "embedding", "embed.tokens", "vocab d_model"],
  [`${DEC}layers\\.(\\d+)\\.input_layernorm`, N, "norm", "blocks.$1.ln1"],
  [`${DEC}layers\\.(\\d+)\\.post_attention_layernorm`, N, "norm", "blocks.$1.ln2"],
  [`${DEC}layers\\.(\\d+)\\.self_attn\\.q_proj`, L, "attention", "blocks.$1.attn.q", "d_model head*d_head"],
  [`${DEC}layers\\.(\\d+)\\.self_attn\\.k_proj`, L, "attention", "blocks.$1.attn.k", "d_model kv_head*d_head"],
  [`${DEC}layers\\.(\\d+)\\.self_attn\\.v_proj`, L, "attention", "blocks.$1.attn.v", "d_model kv_head*d_head"],
  [`${DEC}layers\\.(\\d+)\\.self_attn\\.o_proj`, L, "attention", "blocks.$1.attn.o", "head*d_head d_model"],
  [`${DEC}layers\\.(\\d+)\\.mlp\\.gate_proj`, L, "mlp", "blocks.$1.mlp.gate", "d_model d_mlp"],
  [`${DEC}layers\\.(\\d+)\\.mlp\\.up_proj`, L, "mlp", "blocks.$1.mlp.in", "d_model d_mlp"],
  [`${DEC}layers\\.(\\d+)\\.mlp\\.down_proj`, L, "mlp", "blocks.$1.mlp.out", "d_mlp d_model"],
  [`${MOE}\\.gate`, L, "mlp", "blocks.$1.mlp.router", "d_model n_expert"],
  [`${MOE}\\.experts\\.(\\d+)\\.w1`, L, "mlp", "blocks.$1.mlp.experts.$2.gate", "d_model d_mlp"],
  [`${MOE}\\.experts\\.(\\d+)\\.w3`, L, "mlp", "blocks.$1.mlp.experts.$2.in", "d_model d_mlp"],
  [`${MOE}\\.experts\\.(\\d+)\\.w2`, L, "mlp", "blocks.$1.mlp.experts.$2.out", "d_mlp d_model"],
  [`${DEC}norm`, N, "norm", "norm_f"],
  // GPT-NeoX (its fused query_key_value interleaves q, k, v per head, unlike GPT-2's c_attn)
  [`${DEC}embed_in`, E, "embedding", "embed.tokens", "vocab d_model"],
  [`${DEC}layers\\.(\\d+)\\.attention\\.query_key_value`, L, "attention", "blocks.$1.attn.qkv", "d_model qkv"],
  [`${DEC}layers\\.(\\d+)\\.attention\\.dense`, L, "attention", "blocks.$1.attn.o", "d_model d_model"],
  [`${DEC}layers\\.(\\d+)\\.mlp\\.dense_h_to_4h`, L, "mlp", "blocks.$1.mlp.in", "d_model d_mlp"],
  [`${DEC}layers\\.(\\d+)\\.mlp\\.dense_4h_to_h`, L, "mlp", "blocks.$1.mlp.out", "d_mlp d_model"],
  [`${DEC}final_layer_norm`, N, "norm", "norm_f"],
  ["embed_out", L, "head", "head", "d_model vocab"],
  // BERT, RoBERTa (post-norm: ln1 follows attention, ln2 the MLP)
  [`${ENC}embeddings\\.word_embeddings`, E, "embedding", "embed.tokens", "vocab d_model"],
  [`${ENC}embeddings\\.position_embeddings`, E, "embedding", "embed.positions", "pos d_model"],
  [`${ENC}embeddings\\.token_type_embeddings`, E, "embedding", "embed.token_types", "type_vocab d_model"],
  [`${ENC}embeddings\\.LayerNorm`, N, "norm", "embed.norm"],
  [`${ENC}${LAYER}\\.attention\\.self\\.query`, L, "attention", "blocks.$1.attn.q", "d_model d_model"],
  [`${ENC}${LAYER}\\.attention\\.self\\.key`, L, "attention", "blocks.$1.attn.k", "d_model d_model"],
  [`${ENC}${LAYER}\\.attention\\.self\\.value`, L, "attention", "blocks.$1.attn.v", "d_model d_model"],
  [`${ENC}${LAYER}\\.attention\\.output\\.dense`, L, "attention", "blocks.$1.attn.o", "d_model d_model"],
  [`${ENC}${LAYER}\\.attention\\.output\\.LayerNorm`, N, "norm", "blocks.$1.ln1"],
  [`${ENC}${LAYER}\\.intermediate\\.dense`, L, "mlp", "blocks.$1.mlp.in", "d_model d_mlp"],
  [`${ENC}${LAYER}\\.output\\.dense`, L, "mlp", "blocks.$1.mlp.out", "d_mlp d_model"],
  [`${ENC}${LAYER}\\.output\\.LayerNorm`, N, "norm", "blocks.$1.ln2"],
  [`${ENC}pooler\\.dense`, L, "other", "pooler", "d_model d_model"],
  // Untied output head
  ["lm_head", L, "head", "head", "d_model vocab"],
];

const RULES: readonly Rule[] = RULE_ROWS.map(([re, type, component, base, dims]) => ({
  re: new RegExp(`^${re}$`),
  type,
  component,
  base,
  dims: dims === undefined ? undefined : (dims.split(" ") as [string, string]),
}));

interface Resolved {
  name: string;
  component: Component;
  kind: ParamKind;
  layer?: number;
  /** Dim names for a tensor of the canonical rank, or undefined. */
  dims?: string[];
  type: RuleType;
}

function applyRule(r: Rule, m: RegExpMatchArray, role: "weight" | "bias" | "gain"): Resolved {
  const base = r.base.replace(/\$(\d)/g, (_, k) => m[Number(k)]);
  const layer = /^blocks\.(\d+)\./.exec(base);
  let name: string, kind: ParamKind, dims: string[] | undefined;
  if (r.type === "embedding") {
    name = base;
    kind = "weight";
    dims = r.dims;
  } else if (r.type === "norm") {
    kind = role === "bias" ? "bias" : "gain";
    name = `${base}.${kind}`;
    dims = ["d_model"];
  } else {
    kind = role === "bias" ? "bias" : "weight";
    name = `${base}.${kind}`;
    dims = kind === "bias" ? [r.dims![1]] : r.dims;
  }
  return { name, component: r.component, kind, layer: layer ? Number(layer[1]) : undefined, dims, type: r.type };
}

/** The rule for a module path given as segments, trying the longest prefix first. */
function resolveModule(segments: string[], role: "weight" | "bias" | "gain"): Resolved | undefined {
  for (let n = segments.length; n > 0; n--) {
    const path = segments.slice(0, n).join(".");
    for (const r of RULES) {
      const m = path.match(r.re);
      if (m) return applyRule(r, m, role);
    }
  }
  return undefined;
}

/** `/transformer/h.3/mlp/c_proj/MatMul` → `["transformer", "h.3", "mlp", "c_proj"]`. */
function scopeSegments(nodeName: string): string[] {
  const parts = nodeName.replace(/^\/+/, "").split("/").filter((s) => s.length > 0);
  return parts.slice(0, -1);
}

const QUANT_SUFFIX = /(?:_quantized|_Q\d+(?:G\d+)?|_q\d+)$/;

/** `model.layers.3.self_attn.q_proj.weight` (or `..._quantized`) → its readable name. */
function resolveStoredName(stored: string): Resolved | undefined {
  const m = /^(.*)\.(weight|bias|gamma|beta)$/.exec(stored.replace(QUANT_SUFFIX, ""));
  if (!m) return undefined;
  const role = m[2] === "bias" || m[2] === "beta" ? "bias" : "weight";
  const path = m[1];
  for (const r of RULES) {
    const mm = path.match(r.re);
    if (mm) return applyRule(r, mm, role);
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Listing

const INTEGER_TYPES = new Set<number>([
  DataType.INT64,
  DataType.INT32,
  DataType.INT16,
  DataType.UINT16,
  DataType.UINT32,
  DataType.UINT64,
  DataType.BOOL,
]);
const CODE_TYPES = new Set<number>([DataType.UINT8, DataType.INT8, DataType.UINT4, DataType.INT4]);

interface Candidate {
  info: InitializerInfo;
  uses: Use[];
  paramUses: { use: Use; role: "weight" | "bias" | "gain"; transposed: boolean }[];
  quant: QuantizationInfo | null;
  quantNames: { name: string; reason: string }[];
}

const ROTARY = /rotary|inv_freq|cos_cached|sin_cached|(?:^|[/._])rope(?:[/._]|$)/i;

/** Quantization of the tensor read at `use`, with the auxiliary tensors it needs. */
function quantOf(g: GraphIndex, info: InitializerInfo, use: Use): QuantizationInfo | null {
  const signed = info.dataType === DataType.INT8 || info.dataType === DataType.INT4;
  const bits = info.dataType === DataType.UINT4 || info.dataType === DataType.INT4 ? 4 : 8;
  const node = use.node;
  if (node.opType === "MatMulNBits" && use.index === 1) {
    const blockSize = num(node.ints.block_size);
    return {
      scheme: "matmul-nbits",
      bits: num(node.ints.bits ?? 4),
      signed: false,
      granularity: "block",
      axis: 0,
      blockSize,
      scale: node.inputs[2],
      zeroPoint: node.inputs[3] || undefined,
      groupIndex: node.inputs[4] || undefined,
      K: num(node.ints.K),
      N: num(node.ints.N),
    };
  }
  if ((node.opType === "MatMulInteger" || node.opType === "DynamicQuantizeMatMul") && use.index === 1) {
    let scale: string | undefined;
    let zeroPoint: string | undefined;
    if (node.opType === "DynamicQuantizeMatMul") {
      scale = node.inputs[2];
      zeroPoint = node.inputs[3] || undefined;
    } else {
      zeroPoint = node.inputs[3] || undefined;
      const base = info.name.replace(/_quantized$/, "");
      if (g.inits.has(`${base}_scale`)) scale = `${base}_scale`;
      else scale = scaleFromGraph(g, node);
    }
    if (scale === undefined) return null;
    return { scheme: "matmul-integer", bits, signed, granularity: "tensor", scale, zeroPoint };
  }
  let dql = use.dql;
  if (dql === undefined && node.opType === "Gather" && use.index === 0 && CODE_TYPES.has(info.dataType)) {
    // ONNX Runtime's quantized Gather: gather the codes, then DequantizeLinear the rows.
    const after = g.consumers.get(node.outputs[0])?.find((c) => c.node.opType === "DequantizeLinear" && c.index === 0);
    if (after) dql = { node: after.node, afterTranspose: false };
  }
  if (dql !== undefined) {
    const d = dql.node;
    const blockSize = num(d.ints.block_size ?? 0);
    let axis = num(d.ints.axis ?? 1);
    const rank = info.dims.length;
    if (axis < 0) axis += rank;
    if (dql.afterTranspose && rank === 2) axis = 1 - axis;
    return {
      scheme: "dequantize-linear",
      bits,
      signed,
      granularity: blockSize > 0 ? "block" : "tensor",
      axis,
      blockSize: blockSize > 0 ? blockSize : undefined,
      scale: d.inputs[1],
      zeroPoint: d.inputs[2] || undefined,
    };
  }
  return null;
}

/** MatMulInteger's weight scale when it is not named `<W>_scale`: `Mul(Cast(MatMulInteger), Mul(a_scale, w_scale))`. */
function scaleFromGraph(g: GraphIndex, mmi: GNode): string | undefined {
  let value = mmi.outputs[0];
  for (let hop = 0; hop < 3; hop++) {
    for (const c of g.consumers.get(value) ?? []) {
      if (c.node.opType !== "Mul") continue;
      const other = c.node.inputs[1 - c.index];
      if (g.inits.has(other)) return other;
      const p = g.producers.get(other);
      if (p?.opType === "Mul") return p.inputs.find((x) => g.inits.has(x));
    }
    const cast = (g.consumers.get(value) ?? []).find((c) => c.node.opType === "Cast");
    if (!cast) break;
    value = cast.node.outputs[0];
  }
  return undefined;
}

/** Scale granularity once the scale tensor's length is known. */
function settleGranularity(q: QuantizationInfo, scaleElements: number, dims: number[]): void {
  if (q.scheme === "matmul-nbits" || q.granularity === "block") return;
  if (scaleElements <= 1) {
    q.granularity = "tensor";
    delete q.axis;
    return;
  }
  q.granularity = "channel";
  // MatMulInteger's B is [K, N]: per-channel scales run along N (the last axis), as ONNX Runtime writes them.
  if (q.scheme === "matmul-integer") q.axis = scaleElements === dims[dims.length - 1] ? dims.length - 1 : 0;
}

function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Lists parameters of a decoded model (synchronous core of {@linkcode listParameters}). */
function listFromOnnx(onnx: OnnxModel, config?: Record<string, unknown>): ListParametersResult {
  const g = indexGraph(onnx);
  const excluded: ExcludedTensor[] = [];
  const exclude = (info: InitializerInfo, reason: string) =>
    excluded.push({ name: info.name, reason, elements: info.elements });

  // Pass 1: uses, roles and quantization of every initializer.
  const cands: Candidate[] = [];
  const auxReasons = new Map<string, string>();
  for (const info of onnx.initializers) {
    const uses = tracedUses(g, info.name);
    const paramUses: Candidate["paramUses"] = [];
    for (const use of uses) {
      const r = opRole(use);
      if ("aux" in r) auxReasons.set(info.name, auxReasons.get(info.name) ?? r.aux);
      else if ("role" in r) paramUses.push({ use, role: r.role, transposed: r.transposed ?? use.transposed });
    }
    let quant: QuantizationInfo | null = null;
    for (const p of paramUses) {
      quant = quantOf(g, info, p.use);
      if (quant) break;
    }
    const quantNames: Candidate["quantNames"] = [];
    if (quant) {
      quantNames.push({ name: quant.scale, reason: AUX_SCALE });
      if (quant.zeroPoint) quantNames.push({ name: quant.zeroPoint, reason: AUX_ZERO });
      if (quant.groupIndex) quantNames.push({ name: quant.groupIndex, reason: AUX_GIDX });
      const s = g.inits.get(quant.scale);
      settleGranularity(quant, s ? s.elements : 1, info.dims);
    }
    cands.push({ info, uses, paramUses, quant, quantNames });
  }
  for (const c of cands) {
    for (const q of c.quantNames) auxReasons.set(q.name, `${q.reason} of ${c.info.name}`);
  }

  // Pass 2: decide what each initializer is, and name the parameters.
  const params: ParamInfo[] = [];
  const aliases: ParamInfo[] = [];
  const taken = new Set<string>();
  for (const c of cands) {
    const { info } = c;
    const aux = auxReasons.get(info.name);
    if (aux !== undefined) {
      exclude(info, aux);
      continue;
    }
    if (info.dataType === DataType.STRING) {
      exclude(info, "string constant");
      continue;
    }
    if (c.uses.length === 0) {
      exclude(info, "not read by any node");
      continue;
    }
    if (INTEGER_TYPES.has(info.dataType)) {
      exclude(info, `${dataTypeName(info.dataType)} constant (shape, index or mask)`);
      continue;
    }
    if (CODE_TYPES.has(info.dataType) && c.quant === null) {
      exclude(info, `${dataTypeName(info.dataType)} constant that nothing dequantizes (mask or index)`);
      continue;
    }
    if (info.elements <= 1 && c.quant === null) {
      exclude(info, "scalar constant");
      continue;
    }
    if (ROTARY.test(info.name) || c.uses.some((u) => ROTARY.test(u.node.name))) {
      exclude(info, "rotary position table (computed from positions, not learned)");
      continue;
    }
    if (c.paramUses.length === 0) {
      const ops = [...new Set(c.uses.map((u) => u.node.opType))].join(", ");
      exclude(info, `constant read by ${ops} (not a learned weight)`);
      continue;
    }
    const fromName = /^onnx::/.test(info.name) ? undefined : resolveStoredName(info.name);
    const scoped = c.paramUses.map((p) => ({ p, r: resolveModule(scopeSegments(p.use.node.name), p.role) }));
    let pick = scoped.find((s) => s.r !== undefined && fromName !== undefined && s.r.name === fromName.name);
    if (!pick) {
      const named = scoped.filter((s) => s.r !== undefined);
      // A table read both by a Gather and (transposed) by the head is the embedding; the head is its tie.
      pick = named.find((s) => s.r!.component !== "head") ?? named[0];
    }
    const first = pick?.p ?? c.paramUses[0];
    let resolved: Resolved;
    let resolvedBy: ParamInfo["resolvedBy"];
    if (pick?.r) {
      resolved = pick.r;
      resolvedBy = "scope";
    } else if (fromName) {
      resolved = fromName;
      resolvedBy = "initializer";
    } else {
      resolved = { name: info.name, component: "other", kind: first.role, type: "linear" };
      resolvedBy = "stored";
    }
    const p = makeInfo(info, c.quant, resolved, resolvedBy, first);
    if (taken.has(p.name)) {
      // Two tensors claim one name (an odd graph): keep both, the later under its stored name.
      p.name = info.name;
      p.resolvedBy = "stored";
      delete p.layer;
    }
    taken.add(p.name);
    params.push(p);
    for (const s of scoped) {
      if (s.r === undefined || s.r.name === p.name || aliases.some((a) => a.name === s.r!.name)) continue;
      const a = makeInfo(info, c.quant, s.r, "scope", s.p);
      a.tiedTo = p.name;
      aliases.push(a);
    }
  }
  for (const a of aliases) {
    const target = params.find((p) => p.name === a.tiedTo)!;
    if (!taken.has(a.name)) target.tied.push(a.name);
  }
  const tied = aliases.filter((a) => !taken.has(a.name));
  tieExporterCopies(params, tied, config);
  return { onnx, path: onnx.path, config, params, tied, excluded };
}

/**
 * Exporters that constant-fold `Transpose(wte)` store the tied head as a second
 * initializer. When the config says the embeddings are tied and a `head.weight`
 * has the transposed shape of `embed.tokens`, it is moved to `tied` so it is
 * counted once, as the model defines it.
 */
function tieExporterCopies(params: ParamInfo[], tied: ParamInfo[], config?: Record<string, unknown>): void {
  if (config === undefined) return;
  const type = String(config.model_type ?? "");
  const tiedFlag = config.tie_word_embeddings;
  const isTied = tiedFlag === true || (tiedFlag === undefined && type === "gpt2");
  if (!isTied) return;
  const head = params.findIndex((p) => p.name === "head.weight");
  const emb = params.find((p) => p.name === "embed.tokens");
  if (head < 0 || emb === undefined) return;
  const h = params[head];
  if (h.shape.length !== 2 || h.shape[0] !== emb.shape[1] || h.shape[1] !== emb.shape[0]) return;
  h.tiedTo = "embed.tokens";
  emb.tied.push("head.weight");
  params.splice(head, 1);
  tied.push(h);
}

function makeInfo(
  info: InitializerInfo,
  quant: QuantizationInfo | null,
  r: Resolved,
  resolvedBy: ParamInfo["resolvedBy"],
  use: Candidate["paramUses"][number],
): ParamInfo {
  const stored = [...info.dims];
  let shape: number[];
  let transposed = use.transposed;
  if (quant?.scheme === "matmul-nbits") {
    shape = [quant.K!, quant.N!];
    transposed = true;
  } else if (stored.length === 2 && transposed) {
    shape = [stored[1], stored[0]];
  } else {
    shape = stored;
    if (stored.length !== 2) transposed = false;
  }
  const dims = r.dims && r.dims.length === shape.length ? [...r.dims] : shape.map(() => "?");
  const p: ParamInfo = {
    name: r.name,
    shape,
    dims,
    elements: elementCount(shape),
    dtype: dataTypeName(info.dataType),
    component: r.component,
    kind: r.kind,
    storedName: info.name,
    storedShape: stored,
    transposed,
    tied: [],
    quantization: quant === null ? null : { ...quant },
    resolvedBy,
    consumer: use.use.node.name || undefined,
  };
  if (r.layer !== undefined) p.layer = r.layer;
  return p;
}

// ---------------------------------------------------------------------------
// Opening sources

const CACHE = new WeakMap<object, Promise<ListParametersResult>>();

function isListResult(s: unknown): s is ListParametersResult {
  return typeof s === "object" && s !== null && "params" in s && "excluded" in s && "onnx" in s;
}

function isOnnxModel(s: unknown): s is OnnxModel {
  return typeof s === "object" && s !== null && "proto" in s && "initializers" in s;
}

function isModel(s: unknown): s is Model {
  return typeof s === "object" && s !== null && "onnxPath" in s && "config" in s;
}

function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch {
    return null;
  }
}

function readConfigBeside(paths: string[]): Record<string, unknown> | undefined {
  for (const p of paths) {
    if (!statOrNull(p)?.isFile) continue;
    let v: unknown;
    try {
      v = JSON.parse(Deno.readTextFileSync(p));
    } catch (e) {
      throw new TypeError(`${p} is not valid JSON (${(e as Error).message}); fix it or pass options.config`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new TypeError(`${p} must hold a JSON object (a config.json); pass options.config instead`);
    }
    return v as Record<string, unknown>;
  }
  return undefined;
}

/**
 * A model folder or `.onnx` path, read and listed. With `lease`, inspectWeights() reads the file into the
 * statistics kernels' memory (lib/_stats.ts) and gets the lease to release once it is done with the bytes;
 * any trouble reading it that way (a missing file, no WebAssembly) is left to readOnnx to report.
 */
async function openPath(
  path: string,
  options: ListParametersOptions,
  lease?: { held?: FileLease },
): Promise<ListParametersResult> {
  const st = statOrNull(path);
  let onnxPath: string;
  let configPaths: string[];
  if (st?.isDirectory) {
    const dtype = options.dtype ?? "fp32";
    const file = DTYPE_FILES[dtype];
    if (file === undefined) {
      throw new RangeError(`Unknown dtype "${dtype}"; use one of ${Object.keys(DTYPE_FILES).join(", ")}`);
    }
    onnxPath = join(path, "onnx", file);
    if (!statOrNull(onnxPath) && statOrNull(join(path, file))?.isFile) onnxPath = join(path, file);
    configPaths = [join(path, "config.json")];
  } else {
    onnxPath = path;
    configPaths = [join(dirname(path), "config.json"), join(dirname(dirname(path)), "config.json")];
  }
  let onnx: OnnxModel | undefined;
  if (lease !== undefined) {
    try {
      lease.held = leaseFile(onnxPath) ?? undefined;
    } catch {
      lease.held = undefined;
    }
    if (lease.held !== undefined) onnx = readOnnxBytes(lease.held.bytes, { baseDir: dirname(onnxPath) }, onnxPath);
  }
  onnx ??= await readOnnx(onnxPath);
  return listFromOnnx(onnx, options.config ?? readConfigBeside(configPaths));
}

/**
 * Every learned tensor of a model under a readable name, with its canonical
 * shape and named dims, stored dtype, component and kind, the stored name,
 * whether the file stores it transposed, what it is tied to and how it is
 * quantized; and every initializer that is not a parameter (shape constants,
 * masks, rotary tables, scales and zero points), with the reason.
 *
 * For a Model or OnnxModel the result is cached (the same object gives the same
 * list); a path is read each time.
 *
 * @param source a Model, a decoded ONNX model, a model folder or `.onnx` path (default: the bundled model)
 * @param options which dtype file of a folder to open, and the config
 * @returns parameters, tied names and excluded tensors; pass it to {@linkcode readParameter} to read values
 * @throws {OnnxFormatError} for a missing, truncated or malformed file (naming the file and tensor)
 * @throws {TypeError} for an unreadable config.json; {RangeError} for an unknown dtype
 *
 * @example
 * ```ts
 * import { listParameters } from "./weights.ts";
 * const { params, excluded } = await listParameters("models/paramscope-gpt2-tiny");
 * for (const p of params.slice(0, 5)) console.log(p.name, p.dims.join("×"), p.dtype, p.component, p.kind);
 * console.log(excluded[0].reason);
 * ```
 */
export function listParameters(
  source: WeightSource = bundledModelPath(),
  options: ListParametersOptions = {},
): Promise<ListParametersResult> {
  if (isListResult(source)) return Promise.resolve(source);
  if (typeof source === "string") return openPath(source, options);
  if (typeof source !== "object" || source === null) {
    return Promise.reject(
      new TypeError(
        `listParameters(): source must be a Model, an OnnxModel or a path, got ${
          source === null ? "null" : typeof source
        }`,
      ),
    );
  }
  const cached = CACHE.get(source);
  if (cached && options.config === undefined) return cached;
  let p: Promise<ListParametersResult>;
  if (isOnnxModel(source)) {
    p = Promise.resolve().then(() => listFromOnnx(source, options.config));
  } else if (isModel(source)) {
    p = readOnnx(source.onnxPath).then((onnx) => listFromOnnx(onnx, options.config ?? source.config));
  } else {
    return Promise.reject(
      new TypeError("listParameters(): source must be a Model (lib/load.ts), an OnnxModel (lib/onnx.ts) or a path"),
    );
  }
  if (options.config === undefined) CACHE.set(source, p);
  return p;
}

function findParam(list: ListParametersResult, name: string, where: string): ParamInfo {
  const hit = list.params.find((p) => p.name === name) ?? list.tied.find((p) => p.name === name) ??
    list.params.find((p) => p.storedName === name);
  if (hit) return hit;
  const ex = list.excluded.find((x) => x.name === name);
  if (ex) {
    throw new RangeError(`${where}: "${name}" is not a learned parameter (${ex.reason}); read it with tensorValues()`);
  }
  const shown = list.params.slice(0, 6).map((p) => p.name).join(", ");
  throw new RangeError(
    `${where}: no parameter named "${name}" in ${list.path ?? "the model"}; names look like ${shown}, ... ` +
      `(listParameters() lists all ${list.params.length})`,
  );
}

// ---------------------------------------------------------------------------
// Values

/** Float values of an initializer or a Constant node's tensor (scales, float zero points). */
function auxFloats(list: ListParametersResult, name: string, what: string, forName: string): Float32Array {
  const v = auxValues(list, name, what, forName);
  return v instanceof Float32Array ? v : Float32Array.from(v);
}

function auxValues(
  list: ListParametersResult,
  name: string,
  what: string,
  forName: string,
): Float32Array | Int32Array | Uint8Array | Int8Array {
  const info = list.onnx.initializers.find((i) => i.name === name);
  if (info) return decodeNumbers(tensorBytes(list.onnx, name), info.dataType, info.elements, name, list);
  const producer = collectNodes(list.onnx.proto.graph as GraphLike).find((n) => n.outputs.includes(name));
  if (producer?.opType === "Constant" && producer.value) {
    const t = producer.value;
    const dims = (t.dims ?? []).map(num);
    const n = elementCount(dims);
    const type = t.dataType ?? 0;
    if (t.rawData && t.rawData.byteLength > 0) return decodeNumbers(t.rawData, type, n, name, list);
    if (t.floatData?.length) return Float32Array.from(t.floatData);
    if (t.int32Data?.length) {
      return type === DataType.FLOAT16 ? halfToFloat32(Uint16Array.from(t.int32Data)) : Int32Array.from(t.int32Data);
    }
  }
  throw new TypeError(
    `cannot dequantize "${forName}": its ${what} "${name}" is computed in the graph, not stored; ` +
      `this kit reads scales and zero points only from initializers or Constant nodes`,
  );
}

/** Bytes of one tensor as numbers: floats become Float32Array, 8-bit and 4-bit codes typed integer arrays. */
function decodeNumbers(
  raw: Uint8Array,
  type: number,
  n: number,
  name: string,
  list: ListParametersResult,
  out?: Float32Array,
): Float32Array | Int32Array | Uint8Array | Int8Array {
  const aligned = (k: number) => (raw.byteOffset % k === 0 ? raw : raw.slice());
  switch (type) {
    case DataType.FLOAT: {
      const b = aligned(4);
      return new Float32Array(b.buffer, b.byteOffset, n);
    }
    case DataType.FLOAT16: {
      const b = aligned(2);
      return halfToFloat32(new Uint16Array(b.buffer, b.byteOffset, n), out);
    }
    case DataType.BFLOAT16: {
      const b = aligned(2);
      return bfloatToFloat32(new Uint16Array(b.buffer, b.byteOffset, n), out);
    }
    case DataType.DOUBLE: {
      const b = aligned(8);
      return Float32Array.from(new Float64Array(b.buffer, b.byteOffset, n));
    }
    case DataType.UINT8:
      return new Uint8Array(raw.buffer, raw.byteOffset, n);
    case DataType.INT8:
      return new Int8Array(raw.buffer, raw.byteOffset, n);
    case DataType.UINT4:
      return unpackNibbles(raw, n, false);
    case DataType.INT4:
      return unpackNibbles(raw, n, true);
    case DataType.INT32: {
      const b = aligned(4);
      return new Int32Array(b.buffer, b.byteOffset, n);
    }
    case DataType.UINT16:
    case DataType.INT16: {
      const b = aligned(2);
      return Int32Array.from(
        type === DataType.INT16
          ? new Int16Array(b.buffer, b.byteOffset, n)
          : new Uint16Array(b.buffer, b.byteOffset, n),
      );
    }
    default:
      throw new OnnxFormatError(
        `${list.path ?? "<bytes>"}: tensor "${name}" has data type ${dataTypeName(type)}, which has no numeric ` +
          `reading here; supported: float32, float16, bfloat16, float64, int8, uint8, int4, uint4, int16, uint16, int32`,
      );
  }
}

/**
 * Values of one parameter as floats. `canonical` applies the transpose; `copy`
 * guarantees the result does not alias the file's bytes. Dequantized values go
 * into `into` when given (and of the parameter's length) rather than a fresh array.
 */
function materialize(
  list: ListParametersResult,
  p: ParamInfo,
  canonical: boolean,
  copy: boolean,
  into?: Float32Array,
): Tensor {
  const onnx = list.onnx;
  const q = p.quantization;
  const raw = tensorBytes(onnx, p.storedName);
  const info = onnx.initializers.find((i) => i.name === p.storedName)!;
  const out = into !== undefined && into.length === p.elements ? into : undefined;
  let data: Float32Array;
  let dims: number[] = p.storedShape;
  if (q === null) {
    const v = decodeNumbers(raw, info.dataType, info.elements, p.storedName, list, out);
    if (!(v instanceof Float32Array)) {
      throw new OnnxFormatError(
        `${list.path ?? "<bytes>"}: parameter "${p.name}" ("${p.storedName}") is stored as ${p.dtype} ` +
          `but nothing in the graph dequantizes it`,
      );
    }
    data = copy && v.buffer === raw.buffer ? v.slice() : v;
  } else if (q.scheme === "matmul-nbits") {
    const scales = auxFloats(list, q.scale, "scale", p.name);
    let zp: Uint8Array | Float32Array | null = null;
    if (q.zeroPoint) {
      const z = auxValues(list, q.zeroPoint, "zero point", p.name);
      zp = z instanceof Float32Array ? z : z instanceof Uint8Array ? z : Uint8Array.from(z);
    }
    const gIdx = q.groupIndex ? Int32Array.from(auxValues(list, q.groupIndex, "g_idx", p.name)) : undefined;
    const label = `${list.path ?? "<bytes>"}: "${p.name}"`;
    const layout = { K: q.K!, N: q.N!, bits: q.bits, blockSize: q.blockSize!, gIdx };
    data = dequantizeNBits(raw, scales, zp, layout, label, out);
    return { data, dims: [q.K!, q.N!] };
  } else {
    const codes = decodeNumbers(raw, info.dataType, info.elements, p.storedName, list);
    const scale = auxFloats(list, q.scale, "scale", p.name);
    const zp = q.zeroPoint ? auxValues(list, q.zeroPoint, "zero point", p.name) : null;
    const label = `${list.path ?? "<bytes>"}: "${p.name}"`;
    let axis = q.axis ?? 0;
    if (q.scheme === "dequantize-linear" && q.granularity !== "block" && scale.length > 1) {
      // A quantized Gather dequantizes rows of the gathered output: its axis is the table's last.
      if (axis >= info.dims.length || scale.length !== info.dims[axis]) axis = info.dims.length - 1;
    }
    const layout = { dims: info.dims, axis, blockSize: q.blockSize ?? 0 };
    data = dequantizeLinear(codes, scale, zp, layout, label, out?.length === codes.length ? out : undefined);
  }
  if (canonical && p.transposed && dims.length === 2) {
    data = transpose2d(data, dims[0], dims[1]);
    dims = [dims[1], dims[0]];
  }
  return { data, dims: [...dims] };
}

/**
 * One parameter as a float tensor in the canonical layout of lib/types.ts
 * (`[in, out]` matrices: transposed when the file stores `[out, in]`),
 * dequantized from whatever the file stores. Only this tensor is decoded; the
 * result is a fresh array (changing it does not change the model).
 *
 * @param source where the weights are (see {@linkcode WeightSource})
 * @param name a readable name (`blocks.0.attn.qkv.weight`), a tied name (`head.weight`) or a stored name
 * @param options layout, and for a path the dtype and config
 * @returns the values and their dims
 * @throws {RangeError} for an unknown name or a non-parameter (the message says which)
 * @throws {OnnxFormatError} when the tensor's data is short, missing or of an unreadable type (naming it)
 *
 * @example
 * ```ts
 * import { readParameter } from "./weights.ts";
 * const w = await readParameter("models/paramscope-gpt2-tiny", "blocks.0.mlp.in.weight");
 * console.log(w.dims); // [d_model, d_mlp]
 * ```
 */
export async function readParameter(
  source: WeightSource,
  name: string,
  options: ReadParameterOptions = {},
): Promise<Tensor> {
  const list = await listParameters(source, options);
  const p = findParam(list, name, "readParameter()");
  const layout = options.layout ?? "canonical";
  if (layout !== "canonical" && layout !== "stored") {
    throw new RangeError(`readParameter(): layout must be "canonical" or "stored", got ${JSON.stringify(layout)}`);
  }
  return materialize(list, p, layout === "canonical", true);
}

/**
 * Options for {@linkcode loadParams}.
 *
 * @example
 * ```ts
 * import type { LoadParamsOptions } from "./weights.ts";
 * const o: LoadParamsOptions = { filter: /^blocks\.0\./ };
 * console.log(String(o.filter));
 * ```
 */
export interface LoadParamsOptions extends ListParametersOptions {
  /** Only names matching this pattern. Default: all. */
  filter?: RegExp;
}

/**
 * Every parameter as a canonical float tensor: the {@linkcode ParamMap} the
 * reference forward pass and training take. Tied names are left out (GPT-2
 * has no `head.weight`: its head is `embed.tokens`ᵀ).
 *
 * @param source where the weights are
 * @param options dtype and config for a path; an optional name filter
 * @returns readable name → tensor, in file order
 * @throws as {@linkcode readParameter}
 *
 * @example
 * ```ts
 * import { loadParams } from "./weights.ts";
 * const params = await loadParams("models/paramscope-gpt2-tiny");
 * console.log(params.get("embed.tokens")!.dims, params.has("head.weight")); // [vocab, d_model] false
 * ```
 */
export async function loadParams(source: WeightSource, options: LoadParamsOptions = {}): Promise<ParamMap> {
  const list = await listParameters(source, options);
  const out: ParamMap = new Map();
  for (const p of list.params) {
    if (options.filter && !options.filter.test(p.name)) continue;
    out.set(p.name, materialize(list, p, true, true));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Statistics

/**
 * Options for {@linkcode tensorStats}.
 *
 * @example
 * ```ts
 * import type { StatsOptions } from "./weights.ts";
 * const o: StatsOptions = { bins: 64, nearZero: 1e-4 };
 * console.log(o.bins);
 * ```
 */
export interface StatsOptions {
  /** |x| ≤ this counts as near zero. Default `1e-3`. */
  nearZero?: number;
  /** Histogram bins; 0 for none. Default 32. */
  bins?: number;
  /** Histogram range `[lo, hi]`. Default: the tensor's min and max. */
  range?: readonly [number, number];
}

/**
 * A histogram: `bins + 1` ascending edges, a count per bin (bin `i` is
 * `[edges[i], edges[i+1])`, the last also holds `hi`), and values outside the range.
 *
 * @example
 * ```ts
 * import { tensorStats } from "./weights.ts";
 * const h = tensorStats(new Float32Array([0, 1, 2, 3]), { bins: 3 }).histogram!;
 * console.log(h.counts); // [1, 1, 2]
 * ```
 */
export interface Histogram {
  /** Bin edges. */
  edges: number[];
  /** Count per bin. */
  counts: number[];
  /** Finite values outside the range (only with an explicit range). */
  outside: number;
}

/**
 * Summary statistics of a tensor. Moments are accumulated in float64 in one pass.
 *
 * @example
 * ```ts
 * import { tensorStats, type TensorStats } from "./weights.ts";
 * const s: TensorStats = tensorStats(new Float32Array([3, 4]));
 * console.log(s.l2, s.mean); // 5 3.5
 * ```
 */
export interface TensorStats {
  /** Values (finite and not). */
  count: number;
  /** Mean of the finite values. */
  mean: number;
  /** Population standard deviation (divides by n) of the finite values. */
  std: number;
  /** Smallest finite value (NaN when there is none). */
  min: number;
  /** Largest finite value (NaN when there is none). */
  max: number;
  /** Euclidean norm √Σx² (Frobenius norm for a matrix). */
  l2: number;
  /** Mean of |x|. */
  meanAbs: number;
  /** Fraction of values with |x| ≤ `nearZeroThreshold`. */
  nearZero: number;
  /** The threshold used for `nearZero`. */
  nearZeroThreshold: number;
  /** NaN and ±Infinity values (left out of every other figure). */
  nonFinite: number;
  /** Histogram, unless `bins` was 0. */
  histogram?: Histogram;
}

/**
 * Count, mean, std, min, max, L2 norm, mean |x|, fraction near zero and a
 * histogram of a tensor. Sums accumulate in float64, shifted by a value of the
 * tensor (its min, or its first value), which keeps the variance of offset data
 * such as gains near 1 accurate. With WebAssembly SIMD (lib/_stats.ts) the
 * moments and the histogram share one pass (after one for min and max when the
 * histogram spans them); otherwise plain JavaScript loops give the same figures.
 *
 * @param values a tensor or its data
 * @param options near-zero threshold, histogram bins and range
 * @returns the statistics
 * @throws {RangeError} for a negative threshold, bins that are not a non-negative integer, or a bad range
 *
 * @example
 * ```ts
 * import { tensorStats } from "./weights.ts";
 * const s = tensorStats(new Float32Array([0, 0.0001, -2, 2]), { bins: 4 });
 * console.log(s.mean, s.std, s.nearZero, s.histogram!.counts); // 0.000025 1.414... 0.5 [1, 0, 2, 1]
 * ```
 */
export function tensorStats(values: Tensor | Float32Array, options: StatsOptions = {}): TensorStats {
  const d = values instanceof Float32Array ? values : values?.data;
  if (!(d instanceof Float32Array)) {
    throw new TypeError("tensorStats(): pass a Tensor or a Float32Array");
  }
  return statsOf(d, options);
}

/** tensorStats() over float32 values given as an array or as their bytes (e.g. a view into the model file). */
function statsOf(src: FloatSource, options: StatsOptions): TensorStats {
  const thr = options.nearZero ?? 1e-3;
  if (!(thr >= 0)) throw new RangeError(`tensorStats(): nearZero must be ≥ 0, got ${thr}`);
  const bins = options.bins ?? 32;
  if (!Number.isInteger(bins) || bins < 0) {
    throw new RangeError(`tensorStats(): bins must be a non-negative integer, got ${bins}`);
  }
  const range = options.range;
  if (bins > 0 && range !== undefined) {
    const [lo, hi] = range;
    if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(hi > lo)) {
      throw new RangeError(`tensorStats(): range must be finite [lo, hi] with hi > lo, got [${lo}, ${hi}]`);
    }
  }
  const m = tensorSums(src, thr, bins > 0 ? { bins, range } : null);
  const { shift, sum: s, sumSq: s2, count: n, nonFinite: bad } = m;
  const k = n - bad;
  const mean = k > 0 ? shift + s / k : NaN;
  const variance = k > 0 ? Math.max(0, (s2 - (s * s) / k) / k) : NaN;
  const sumSq = s2 + 2 * shift * s + k * shift * shift;
  const out: TensorStats = {
    count: n,
    mean,
    std: Math.sqrt(variance),
    min: k > 0 ? m.min : NaN,
    max: k > 0 ? m.max : NaN,
    l2: Math.sqrt(Math.max(0, sumSq)),
    meanAbs: k > 0 ? m.sumAbs / k : NaN,
    nearZero: n > 0 ? m.nearZero / n : 0,
    nearZeroThreshold: thr,
    nonFinite: bad,
  };
  if (m.histogram !== undefined) {
    const { lo, hi, counts, outside } = m.histogram;
    const edges: number[] = [];
    for (let i = 0; i <= bins; i++) edges.push(lo + (hi - lo) * (i / bins));
    edges[bins] = hi;
    out.histogram = { edges, counts: Array.from(counts), outside };
  }
  return out;
}

/**
 * How far a stored tensor can be and is from the float weights it encodes.
 *
 * @example
 * ```ts
 * import type { QuantError } from "./weights.ts";
 * const e: QuantError = { bound: 0.001, boundRelStd: 0.05 };
 * console.log(e.bound);
 * ```
 */
export interface QuantError {
  /** Largest error the format allows: max scale / 2 for integer codes, max |x|·2⁻¹¹ for float16, ·2⁻⁸ for bfloat16. */
  bound: number;
  /** `bound` divided by the tensor's std. */
  boundRelStd: number;
  /** √mean((dequantized − reference)²), when a reference was given. */
  rms?: number;
  /** max |dequantized − reference|, when a reference was given. */
  max?: number;
  /** `rms` divided by the reference's std. */
  rmsRelStd?: number;
}

/**
 * RMS and max difference between a dequantized tensor and its float reference.
 *
 * @param values dequantized values
 * @param reference the original float weights, same length and layout
 * @returns rms, max and rms relative to the reference's std (`bound` fields are 0: see {@linkcode quantError})
 * @throws {RangeError} when the lengths differ
 *
 * @example
 * ```ts
 * import { compareTensors } from "./weights.ts";
 * console.log(compareTensors(new Float32Array([1, 2]), new Float32Array([1, 2.5])).max); // 0.5
 * ```
 */
export function compareTensors(
  values: Tensor | Float32Array,
  reference: Tensor | Float32Array,
): { rms: number; max: number; rmsRelStd: number } {
  const a = values instanceof Float32Array ? values : values.data;
  const b = reference instanceof Float32Array ? reference : reference.data;
  if (a.length !== b.length) {
    throw new RangeError(`compareTensors(): ${a.length} values vs ${b.length} in the reference; pass the same shape`);
  }
  let s = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    s += e * e;
    if (e > m) m = e;
  }
  const rms = a.length ? Math.sqrt(s / a.length) : 0;
  const std = tensorStats(b, { bins: 0 }).std;
  return { rms, max: m, rmsRelStd: std > 0 ? rms / std : 0 };
}

/**
 * The quantization error of one parameter: the bound its format implies (from
 * its scales, or float16/bfloat16 rounding) relative to its std, and with a
 * float reference the actual RMS and max error. Plain float32 has bound 0.
 *
 * @param source where the weights are
 * @param name parameter name
 * @param reference the original float32 tensor in the canonical layout (optional)
 * @returns bound, bound / std, and with a reference rms, max and rms / std
 * @throws as {@linkcode readParameter}; {RangeError} when the reference's size differs
 *
 * @example
 * ```ts
 * import { quantError } from "./weights.ts";
 * const e = await quantError("models/paramscope-gpt2-tiny", "blocks.0.attn.qkv.weight");
 * console.log(e.bound); // 0 for float32
 * ```
 */
export async function quantError(source: WeightSource, name: string, reference?: Tensor): Promise<QuantError> {
  const list = await listParameters(source);
  const p = findParam(list, name, "quantError()");
  const t = materialize(list, p, true, false);
  return quantErrorOf(list, p, t, tensorStats(t, { bins: 0 }), reference);
}

function quantErrorOf(
  list: ListParametersResult,
  p: ParamInfo,
  t: Tensor,
  stats: TensorStats,
  reference?: Tensor,
): QuantError {
  let bound = 0;
  const q = p.quantization;
  if (q !== null) {
    const scales = auxFloats(list, q.scale, "scale", p.name);
    let m = 0;
    for (let i = 0; i < scales.length; i++) m = Math.max(m, Math.abs(scales[i]));
    bound = m / 2;
  } else if (p.dtype === "float16" || p.dtype === "bfloat16") {
    const maxAbs = Math.max(Math.abs(stats.min), Math.abs(stats.max));
    bound = p.dtype === "float16" ? maxAbs * 2 ** -11 + 2 ** -25 : maxAbs * 2 ** -8;
  }
  const out: QuantError = { bound, boundRelStd: stats.std > 0 ? bound / stats.std : 0 };
  if (reference !== undefined) {
    if (reference.data.length !== t.data.length) {
      throw new RangeError(
        `reference for "${p.name}" has ${reference.data.length} values but the parameter has ${t.data.length}`,
      );
    }
    Object.assign(out, compareTensors(t, reference));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Inspection

/**
 * One row of {@linkcode inspectWeights}: a parameter and its statistics.
 *
 * @example
 * ```ts
 * import { inspectWeights, type InspectRow } from "./weights.ts";
 * const row: InspectRow = (await inspectWeights("models/paramscope-gpt2-tiny")).rows[0];
 * console.log(row.name, row.stats.std);
 * ```
 */
export interface InspectRow {
  /** Readable name. */
  name: string;
  /** Canonical shape. */
  shape: number[];
  /** Named dims. */
  dims: string[];
  /** Stored element type. */
  dtype: string;
  /** Component. */
  component: Component;
  /** Kind. */
  kind: ParamKind;
  /** Block index, when in a block. */
  layer?: number;
  /** Stored name. */
  storedName: string;
  /** Stored transposed. */
  transposed: boolean;
  /** Names tied to it. */
  tied: string[];
  /** Quantization, or null. */
  quantization: QuantizationInfo | null;
  /** Statistics of the dequantized values. */
  stats: TensorStats;
  /** For quantized and half-precision tensors: the error bound, and the error against `reference` if given. */
  quantError?: QuantError;
}

/**
 * Per-layer summary: how big the weights, biases and gains of a block are, side by side.
 *
 * @example
 * ```ts
 * import { inspectWeights, type LayerSummary } from "./weights.ts";
 * const l: LayerSummary = (await inspectWeights("models/paramscope-gpt2-tiny")).layers[0];
 * console.log(l.meanAbsWeight, l.meanAbsBias);
 * ```
 */
export interface LayerSummary {
  /** Block index. */
  layer: number;
  /** Parameters in the block. */
  params: number;
  /** L2 norm of all weight matrices of the block together. */
  weightL2: number;
  /** L2 norm of all biases of the block together (0 when it has none). */
  biasL2: number;
  /** L2 norm of all norm gains of the block together. */
  gainL2: number;
  /** Mean |w| over the block's weight matrices. */
  meanAbsWeight: number;
  /** Mean |b| over the block's biases (NaN when it has none). */
  meanAbsBias: number;
  /** Mean of the block's gains (NaN when it has none). */
  meanGain: number;
}

/**
 * What {@linkcode inspectWeights} found.
 *
 * @example
 * ```ts
 * import { inspectWeights, type InspectResult } from "./weights.ts";
 * const r: InspectResult = await inspectWeights("models/paramscope-gpt2-tiny");
 * console.log(r.rows.length, r.layers.length, r.total);
 * ```
 */
export interface InspectResult {
  /** The `.onnx` file, when read from disk. */
  path?: string;
  /** One row per counted parameter (tied names are not repeated), in file order. */
  rows: InspectRow[];
  /** One summary per block, in block order. */
  layers: LayerSummary[];
  /** Tied names and what they repeat. */
  tied: { name: string; tiedTo: string }[];
  /** Non-parameter initializers and why. */
  excluded: ExcludedTensor[];
  /** Sum of the rows' elements. */
  total: number;
  /** Bytes of weight data read (stored sizes of the rows' tensors). */
  storedBytes: number;
}

/**
 * Options for {@linkcode inspectWeights}.
 *
 * @example
 * ```ts
 * import type { InspectOptions } from "./weights.ts";
 * const o: InspectOptions = { filter: /attn/, bins: 16 };
 * console.log(o.bins);
 * ```
 */
export interface InspectOptions extends StatsOptions, ListParametersOptions {
  /** Only parameters whose readable name matches. Default: all. */
  filter?: RegExp;
  /** Float32 originals (e.g. `await loadParams(fp32Folder)`) to measure quantization error against. Default: none. */
  reference?: ParamMap;
}

function storedByteSize(info: InitializerInfo): number {
  const per: Record<number, number> = { 1: 4, 10: 2, 16: 2, 11: 8, 2: 1, 3: 1, 21: 0.5, 22: 0.5 };
  return Math.ceil(info.elements * (per[info.dataType] ?? 4));
}

/**
 * Statistics of every parameter (or those matching `filter`), one tensor at a
 * time, and a per-layer summary of weights, biases and gains side by side.
 * Quantized and half-precision tensors also get their error bound, and their
 * actual error when `reference` holds the float originals.
 *
 * Speed: float32 tensors are read where they lie in the file's bytes and the
 * others are dequantized straight into the WebAssembly statistics kernels'
 * memory; given a path, the file itself is read (synchronously) into that
 * memory, reused from call to call. `bench/inspect_bench.ts` compares the
 * throughput with a plain read of the file.
 *
 * @param source where the weights are (default: the bundled model)
 * @param options stats settings, a name filter, float references
 * @returns rows, layer summaries, tied and excluded tensors, totals
 * @throws as {@linkcode readParameter}
 *
 * @example
 * ```ts
 * import { formatInspect, inspectWeights } from "./weights.ts";
 * console.log(formatInspect(await inspectWeights("models/paramscope-gpt2-tiny", { filter: /^blocks\.0\./ })));
 * ```
 */
export async function inspectWeights(
  source: WeightSource = bundledModelPath(),
  options: InspectOptions = {},
): Promise<InspectResult> {
  // A path is read into the statistics kernels' memory, so float32 tensors are summed where they lie; nothing
  // in the result refers to those bytes, and the lease ends with this call.
  const lease: { held?: FileLease } = {};
  try {
    const list = typeof source === "string"
      ? await openPath(source, options, lease)
      : await listParameters(source, options);
    return inspectList(list, options);
  } finally {
    lease.held?.release();
  }
}

function inspectList(list: ListParametersResult, options: InspectOptions): InspectResult {
  const rows: InspectRow[] = [];
  const infos = new Map(list.onnx.initializers.map((i) => [i.name, i]));
  let total = 0, storedBytes = 0;
  for (const p of list.params) {
    if (options.filter && !options.filter.test(p.name)) continue;
    const ref = options.reference?.get(p.name);
    const info = infos.get(p.storedName)!;
    // Plain float32: statistics straight from the stored bytes, at any alignment (no per-tensor copy here).
    const raw = p.quantization === null && info.dataType === DataType.FLOAT && ref === undefined
      ? tensorBytes(list.onnx, p.storedName)
      : undefined;
    let t: Tensor | undefined;
    let stats: TensorStats;
    if (raw !== undefined && raw.byteLength >= info.elements * 4) {
      stats = statsOf(raw.subarray(0, info.elements * 4), options);
    } else {
      // Dequantized into the kernels' memory, where they are read without a copy (unless a reference needs the
      // canonical order, which takes a transpose).
      const into = ref === undefined ? stageFloats(p.elements) ?? undefined : undefined;
      t = materialize(list, p, ref !== undefined, false, into);
      stats = tensorStats(t, options);
    }
    const row: InspectRow = {
      name: p.name,
      shape: p.shape,
      dims: p.dims,
      dtype: p.dtype,
      component: p.component,
      kind: p.kind,
      storedName: p.storedName,
      transposed: p.transposed,
      tied: p.tied,
      quantization: p.quantization,
      stats,
    };
    if (p.layer !== undefined) row.layer = p.layer;
    if (t !== undefined && (p.quantization !== null || p.dtype === "float16" || p.dtype === "bfloat16")) {
      row.quantError = quantErrorOf(list, p, t, stats, ref);
    }
    rows.push(row);
    total += p.elements;
    storedBytes += storedByteSize(info);
  }
  return {
    path: list.path,
    rows,
    layers: layerSummaries(rows),
    tied: list.tied.map((t) => ({ name: t.name, tiedTo: t.tiedTo! })),
    excluded: list.excluded,
    total,
    storedBytes,
  };
}

/**
 * Per-layer summaries from inspection rows: norms and mean magnitudes of the
 * block's weights, biases and gains, combined from the per-tensor statistics
 * (no second pass over the values).
 *
 * @param rows rows of {@linkcode inspectWeights}
 * @returns one summary per block index present, ascending
 *
 * @example
 * ```ts
 * import { inspectWeights, layerSummaries } from "./weights.ts";
 * const { rows } = await inspectWeights("models/paramscope-gpt2-tiny");
 * for (const l of layerSummaries(rows)) console.log(l.layer, l.weightL2.toFixed(2), l.biasL2.toFixed(2));
 * ```
 */
export function layerSummaries(rows: readonly InspectRow[]): LayerSummary[] {
  const acc = new Map<
    number,
    {
      params: number;
      sq: Record<ParamKind, number>;
      abs: Record<ParamKind, number>;
      n: Record<ParamKind, number>;
      sum: number;
    }
  >();
  for (const r of rows) {
    if (r.layer === undefined) continue;
    let a = acc.get(r.layer);
    if (!a) {
      a = {
        params: 0,
        sq: { weight: 0, bias: 0, gain: 0 },
        abs: { weight: 0, bias: 0, gain: 0 },
        n: { weight: 0, bias: 0, gain: 0 },
        sum: 0,
      };
      acc.set(r.layer, a);
    }
    const finite = r.stats.count - r.stats.nonFinite;
    a.params += r.stats.count;
    a.sq[r.kind] += r.stats.l2 ** 2;
    a.abs[r.kind] += r.stats.meanAbs * finite;
    a.n[r.kind] += finite;
    if (r.kind === "gain") a.sum += r.stats.mean * finite;
  }
  return [...acc.entries()].sort((x, y) => x[0] - y[0]).map(([layer, a]) => ({
    layer,
    params: a.params,
    weightL2: Math.sqrt(a.sq.weight),
    biasL2: Math.sqrt(a.sq.bias),
    gainL2: Math.sqrt(a.sq.gain),
    meanAbsWeight: a.n.weight ? a.abs.weight / a.n.weight : NaN,
    meanAbsBias: a.n.bias ? a.abs.bias / a.n.bias : NaN,
    meanGain: a.n.gain ? a.sum / a.n.gain : NaN,
  }));
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(4);
}

function table(header: string[], rows: string[][], rightFrom = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i >= rightFrom ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/**
 * A plain-text report of an inspection: one line per tensor (shape, dtype,
 * mean, std, min, max, L2, % near zero), then the per-layer table of weights
 * vs biases vs gains, then tied and excluded tensors.
 *
 * @param result what {@linkcode inspectWeights} returned
 * @returns the report, lines joined with `\n`
 *
 * @example
 * ```ts
 * import { formatInspect, inspectWeights } from "./weights.ts";
 * console.log(formatInspect(await inspectWeights("models/paramscope-gpt2-tiny")));
 * ```
 */
export function formatInspect(result: InspectResult): string {
  const rows = result.rows.map((r) => {
    const q = r.quantization;
    const dtype = q === null ? r.dtype : `${r.dtype} ${q.bits}b/${q.granularity}`;
    return [
      r.name,
      `[${r.shape.join(", ")}]`,
      dtype,
      fmt(r.stats.mean),
      fmt(r.stats.std),
      fmt(r.stats.min),
      fmt(r.stats.max),
      fmt(r.stats.l2),
      `${(100 * r.stats.nearZero).toFixed(1)}%`,
      r.quantError ? fmt(r.quantError.boundRelStd) : "",
    ];
  });
  const header = ["name", "shape", "dtype", "mean", "std", "min", "max", "l2", "~0", "err/std"];
  if (!result.rows.some((r) => r.quantError)) {
    // Plain float32: no error column.
    header.pop();
    for (const r of rows) r.pop();
  }
  const out = [
    table(header, rows, 3),
    "",
    `${result.rows.length} tensors, ${result.total.toLocaleString("en-US")} parameters, ` +
    `${(result.storedBytes / 1e6).toFixed(2)} MB stored`,
  ];
  if (result.layers.length > 0) {
    out.push("");
    out.push(table(
      ["layer", "params", "|W| l2", "|b| l2", "gain l2", "mean|W|", "mean|b|", "mean gain"],
      result.layers.map((l) => [
        String(l.layer),
        l.params.toLocaleString("en-US"),
        fmt(l.weightL2),
        fmt(l.biasL2),
        fmt(l.gainL2),
        fmt(l.meanAbsWeight),
        fmt(l.meanAbsBias),
        fmt(l.meanGain),
      ]),
    ));
  }
  out.push("");
  out.push(`tied: ${result.tied.length ? result.tied.map((t) => `${t.name} = ${t.tiedTo}`).join(", ") : "none"}`);
  out.push(
    `excluded: ${result.excluded.length} tensors (${
      [...new Set(result.excluded.map((x) => x.reason.replace(/ of .*$/, "")))].join("; ")
    })`,
  );
  return out.join("\n");
}

// ---------------------------------------------------------------------------
// Figures

/**
 * Options for {@linkcode plotHistogram}.
 *
 * @example
 * ```ts
 * import type { PlotHistogramOptions } from "./weights.ts";
 * const o: PlotHistogramOptions = { bins: 100, logY: true };
 * console.log(o.bins);
 * ```
 */
export interface PlotHistogramOptions {
  /** Bins. Default 64. */
  bins?: number;
  /** Logarithmic count axis. Default false. */
  logY?: boolean;
  /** Title. Default: none. */
  title?: string;
}

/**
 * A histogram figure of one tensor's values.
 *
 * @param t the tensor (e.g. from {@linkcode readParameter})
 * @param options bins, log axis, title
 * @returns a plotly Figure that displays itself in Jupyter
 *
 * @example
 * ```ts
 * import { plotHistogram, readParameter } from "./weights.ts";
 * const fig = plotHistogram(await readParameter("models/paramscope-gpt2-tiny", "embed.tokens"), { title: "embed.tokens" });
 * console.log(fig.data.length); // 1
 * ```
 */
export function plotHistogram(t: Tensor | Float32Array, options: PlotHistogramOptions = {}): Figure {
  const d = t instanceof Float32Array ? t : t.data;
  return histogram(d, {
    bins: options.bins ?? 64,
    logY: options.logY,
    title: options.title,
    xTitle: "value",
    yTitle: "count",
  });
}

/**
 * A matrix shrunk by averaging blocks: `[rows, cols]` → at most `[maxRows, maxCols]`,
 * each output cell the mean of a `rowStep × colStep` block (the last blocks may be smaller).
 *
 * @param t a 2-D tensor
 * @param maxRows largest number of output rows (default 128)
 * @param maxCols largest number of output columns (default 128)
 * @returns the averaged tensor and the block size
 * @throws {RangeError} for a tensor that is not 2-D or non-positive limits
 *
 * @example
 * ```ts
 * import { blockAverage } from "./weights.ts";
 * const r = blockAverage({ data: new Float32Array([1, 2, 3, 4]), dims: [2, 2] }, 1, 1);
 * console.log(r.tensor.data[0], r.rowStep); // 2.5 2
 * ```
 */
export function blockAverage(
  t: Tensor,
  maxRows = 128,
  maxCols = 128,
): { tensor: Tensor; rowStep: number; colStep: number } {
  if (t.dims.length !== 2) throw new RangeError(`blockAverage(): need a 2-D tensor, got dims [${t.dims}]`);
  if (!(maxRows >= 1 && maxCols >= 1)) {
    throw new RangeError(`blockAverage(): maxRows and maxCols must be ≥ 1, got ${maxRows}, ${maxCols}`);
  }
  const [R, C] = t.dims;
  const rowStep = Math.max(1, Math.ceil(R / maxRows));
  const colStep = Math.max(1, Math.ceil(C / maxCols));
  const r = Math.ceil(R / rowStep), c = Math.ceil(C / colStep);
  const sum = new Float64Array(r * c);
  const cnt = new Float64Array(r * c);
  for (let i = 0; i < R; i++) {
    const oi = Math.floor(i / rowStep) * c;
    for (let j = 0; j < C; j++) {
      const o = oi + Math.floor(j / colStep);
      sum[o] += t.data[i * C + j];
      cnt[o]++;
    }
  }
  const data = new Float32Array(r * c);
  for (let i = 0; i < data.length; i++) data[i] = sum[i] / cnt[i];
  return { tensor: { data, dims: [r, c] }, rowStep, colStep };
}

/**
 * Options for {@linkcode plotHeatmap}.
 *
 * @example
 * ```ts
 * import type { PlotHeatmapOptions } from "./weights.ts";
 * const o: PlotHeatmapOptions = { maxSize: 64 };
 * console.log(o.maxSize);
 * ```
 */
export interface PlotHeatmapOptions {
  /** Largest rows and columns drawn; bigger matrices are block-averaged. Default 128. */
  maxSize?: number;
  /** Title. Default: none. */
  title?: string;
  /** Axis titles (e.g. the dim names). Default: rows/columns, with the block size when averaged. */
  xTitle?: string;
  /** y axis title. */
  yTitle?: string;
}

/**
 * A heatmap of a weight matrix, centred at 0, block-averaged down to
 * `maxSize × maxSize` when larger (the axis titles say by how much).
 *
 * @param t a 2-D tensor
 * @param options size limit and titles
 * @returns a plotly Figure
 * @throws {RangeError} for a tensor that is not 2-D
 *
 * @example
 * ```ts
 * import { plotHeatmap, readParameter } from "./weights.ts";
 * const w = await readParameter("models/paramscope-gpt2-tiny", "blocks.0.attn.qkv.weight");
 * console.log((plotHeatmap(w).data[0].z as number[][]).length); // d_model rows (at most 128)
 * ```
 */
export function plotHeatmap(t: Tensor, options: PlotHeatmapOptions = {}): Figure {
  const max = options.maxSize ?? 128;
  const { tensor, rowStep, colStep } = blockAverage(t, max, max);
  const [R, C] = tensor.dims;
  const rows: Float32Array[] = [];
  for (let i = 0; i < R; i++) rows.push(tensor.data.subarray(i * C, (i + 1) * C));
  return heatmap(rows, {
    title: options.title,
    zmid: 0,
    xTitle: options.xTitle ?? (colStep > 1 ? `column (blocks of ${colStep})` : "column"),
    yTitle: options.yTitle ?? (rowStep > 1 ? `row (blocks of ${rowStep})` : "row"),
  });
}

/**
 * Options for {@linkcode plotLayerNorms}.
 *
 * @example
 * ```ts
 * import type { PlotLayerNormsOptions } from "./weights.ts";
 * const o: PlotLayerNormsOptions = { metric: "meanAbs" };
 * console.log(o.metric);
 * ```
 */
export interface PlotLayerNormsOptions {
  /** `"l2"` (norm of each tensor) or `"meanAbs"` (mean |x|, comparable across sizes). Default `"l2"`. */
  metric?: "l2" | "meanAbs" | "std";
  /** Title. Default: `"<metric> by layer"`. */
  title?: string;
}

/**
 * A line chart of each block tensor's norm by layer: one line per role
 * (`attn.qkv.weight`, `mlp.in.bias`, `ln1.gain`, ...), so weights and biases
 * show side by side across depth.
 *
 * @param result what {@linkcode inspectWeights} returned
 * @param options metric and title
 * @returns a plotly Figure
 *
 * @example
 * ```ts
 * import { inspectWeights, plotLayerNorms } from "./weights.ts";
 * const fig = plotLayerNorms(await inspectWeights("models/paramscope-gpt2-tiny"));
 * console.log(fig.data.map((t) => t.name));
 * ```
 */
export function plotLayerNorms(result: InspectResult, options: PlotLayerNormsOptions = {}): Figure {
  const metric = options.metric ?? "l2";
  const series = new Map<string, { x: number[]; y: number[] }>();
  for (const r of result.rows) {
    if (r.layer === undefined) continue;
    const role = r.name.replace(/^blocks\.\d+\./, "");
    let s = series.get(role);
    if (!s) series.set(role, s = { x: [], y: [] });
    s.x.push(r.layer);
    s.y.push(r.stats[metric]);
  }
  return line([...series.entries()].map(([name, s]) => ({ name, x: s.x, y: s.y })), {
    title: options.title ?? `${metric} by layer`,
    xTitle: "layer",
    yTitle: metric,
    markers: true,
  });
}

/**
 * The L2 norm of every row of a matrix (for an embedding table, of every token's vector).
 *
 * @param t a 2-D tensor `[rows, cols]`
 * @returns `rows` norms
 * @throws {RangeError} for a tensor that is not 2-D
 *
 * @example
 * ```ts
 * import { rowNorms } from "./weights.ts";
 * console.log(rowNorms({ data: new Float32Array([3, 4, 0, 1]), dims: [2, 2] })); // Float32Array [5, 1]
 * ```
 */
export function rowNorms(t: Tensor): Float32Array {
  if (t.dims.length !== 2) throw new RangeError(`rowNorms(): need a 2-D tensor, got dims [${t.dims}]`);
  const [R, C] = t.dims;
  const out = new Float32Array(R);
  for (let i = 0; i < R; i++) {
    let s = 0;
    for (let j = 0; j < C; j++) {
      const v = t.data[i * C + j];
      s += v * v;
    }
    out[i] = Math.sqrt(s);
  }
  return out;
}

/**
 * Options for {@linkcode plotEmbeddingNorms}.
 *
 * @example
 * ```ts
 * import type { PlotEmbeddingNormsOptions } from "./weights.ts";
 * const o: PlotEmbeddingNormsOptions = { labels: ["a", "b"] };
 * console.log(o.labels?.length);
 * ```
 */
export interface PlotEmbeddingNormsOptions {
  /** Token text per row: with labels the figure is a bar chart of the rows given. Default: a line over row ids. */
  labels?: readonly string[];
  /** Title. Default `"embedding row norms"`. */
  title?: string;
}

/**
 * The norm of each embedding row: a line over token ids, or with `labels` a bar per token.
 *
 * @param t an embedding table `[vocab, d_model]`
 * @param options labels and title
 * @returns a plotly Figure
 * @throws {RangeError} for a tensor that is not 2-D or labels of the wrong length
 *
 * @example
 * ```ts
 * import { plotEmbeddingNorms, readParameter } from "./weights.ts";
 * const fig = plotEmbeddingNorms(await readParameter("models/paramscope-gpt2-tiny", "embed.tokens"));
 * console.log((fig.data[0].y as number[]).length); // one norm per token
 * ```
 */
export function plotEmbeddingNorms(t: Tensor, options: PlotEmbeddingNormsOptions = {}): Figure {
  const norms = rowNorms(t);
  const title = options.title ?? "embedding row norms";
  if (options.labels !== undefined) {
    if (options.labels.length !== norms.length) {
      throw new RangeError(
        `plotEmbeddingNorms(): ${options.labels.length} labels for ${norms.length} rows; pass one per row`,
      );
    }
    return bar(norms, { labels: options.labels, title, yTitle: "L2 norm" });
  }
  return line(norms, { title, xTitle: "token id", yTitle: "L2 norm" });
}
