/**
 * Parameter counts from an architecture config, with the formula shown.
 *
 * {@linkcode countAnalytic} reads a Hugging Face `config.json` object (or a
 * {@linkcode ArchConfig}) and builds one term per learned tensor, e.g.
 * `blocks.{i}.attn.k.weight = d_model * kv_head * d_head`. The terms are
 * joined into one formula string, evaluated with mathjs against the config's
 * values, and summed by component and kind. {@linkcode countModel} counts a
 * model file exactly (every learned ONNX initializer, scales and shape
 * constants left out with the reason) and returns the same
 * {@linkcode CountResult} shape, with the analytic formula beside it when the
 * config is known, so the two can be compared side by side.
 *
 * Counts are plain `number`s: every count here is an integer below 2^53
 * (9.007e15), where float64 arithmetic is exact; a config whose count would
 * exceed that throws a RangeError instead of returning a rounded value.
 *
 * Families:
 * - `gpt` (HF `gpt2`; GPT-3, Gopher and Chinchilla are written in its shape): LayerNorm gain and bias, learned
 *   positions, fused q/k/v with biases, two-matrix GELU MLP with biases, head tied to the token embedding.
 * - `bert` (HF `bert`): word + position + token-type embeddings and an embedding LayerNorm, post-norm blocks with
 *   biases and two LayerNorms, and the pooler (`BertModel`; no masked-LM head).
 * - `llama` (HF `llama`, `mistral`, `qwen2`): RMSNorm gains only, rotary positions (no parameters),
 *   grouped-query attention, SwiGLU with three matrices, no biases except Qwen2's q/k/v biases (and LLaMA's
 *   optional `attention_bias`/`mlp_bias`), tied or untied head.
 * - `moe` (HF `mixtral`): the `llama` shape with `num_local_experts` SwiGLU experts and a router per block;
 *   the result also gives the parameters active per token (`num_experts_per_tok` experts).
 *
 * @example
 * ```ts
 * import { countAnalytic } from "@paramscope/kit/count";
 * const r = countAnalytic({ model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 });
 * console.log(r.total); // 124439808
 * console.log(r.analytic?.formula);
 * ```
 *
 * @module
 */
import { evaluate, parse } from "mathjs";
import type { Dtype } from "./load.ts";
import type { ArchConfig } from "./types.ts";
import type { WeightSource } from "./weights.ts";

/** Where a parameter sits in the model. `other` holds BERT's pooler. */
export type Component = "embedding" | "attention" | "mlp" | "norm" | "head" | "other";

/** What a parameter is: a matrix or embedding table, an additive bias, or a norm's multiplicative gain. */
export type ParamKind = "weight" | "bias" | "gain";

/**
 * Counting family; see the module doc for what each one contains. `unknown` only
 * comes from {@linkcode countModel} on a file whose layout matches no family.
 */
export type Family = "gpt" | "bert" | "llama" | "moe" | "unknown";

/** The components, in display order. */
export const COMPONENTS: readonly Component[] = ["embedding", "attention", "mlp", "norm", "head", "other"];

/** The kinds, in display order. */
export const KINDS: readonly ParamKind[] = ["weight", "bias", "gain"];

/** The HF `model_type` values {@linkcode countAnalytic} understands, and the family each belongs to. */
export const SUPPORTED_MODEL_TYPES: Readonly<Record<string, Family>> = {
  gpt2: "gpt",
  bert: "bert",
  llama: "llama",
  mistral: "llama",
  qwen2: "llama",
  mixtral: "moe",
};

/**
 * A Hugging Face `config.json` object. Field names are exactly HF's; only the
 * ones the count reads are typed, and any other field is allowed and ignored.
 * `null` means the same as absent (HF writes `"n_inner": null`).
 *
 * Required per `model_type`:
 * - `gpt2`: `vocab_size`, `n_positions`, `n_embd`, `n_layer`, `n_head`
 * - `bert`: `vocab_size`, `max_position_embeddings`, `hidden_size`, `intermediate_size`, `num_hidden_layers`,
 *   `num_attention_heads`
 * - `llama`: `vocab_size`, `hidden_size`, `intermediate_size`, `num_hidden_layers`, `num_attention_heads`
 * - `mistral`, `qwen2`: as `llama`, plus `num_key_value_heads`
 * - `mixtral`: as `mistral`, plus `num_local_experts`, `num_experts_per_tok`
 *
 * @example
 * ```ts
 * import type { HfConfig } from "@paramscope/kit/count";
 * const c: HfConfig = { model_type: "llama", vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008,
 *   num_hidden_layers: 32, num_attention_heads: 32 };
 * console.log(c.model_type);
 * ```
 */
export interface HfConfig {
  /** Architecture tag: one of {@linkcode SUPPORTED_MODEL_TYPES}. */
  model_type: string;
  /** Vocabulary size (`vocab`). */
  vocab_size?: number;
  /** GPT-2: residual width (`d_model`). */
  n_embd?: number;
  /** GPT-2: number of blocks. */
  n_layer?: number;
  /** GPT-2: attention heads. */
  n_head?: number;
  /** GPT-2: learned position rows (context length). */
  n_positions?: number;
  /** GPT-2: MLP hidden width; absent or `null` means `4 · n_embd`. */
  n_inner?: number | null;
  /** GPT-2: whether the head reuses the token embedding; default `true`. Others: default `false`. */
  tie_word_embeddings?: boolean;
  /** Residual width (`d_model`). */
  hidden_size?: number;
  /** MLP hidden width (`d_mlp`); for Mixtral, one expert's. */
  intermediate_size?: number;
  /** Number of blocks. */
  num_hidden_layers?: number;
  /** Query heads. */
  num_attention_heads?: number;
  /** Key/value heads (grouped-query attention); LLaMA defaults it to `num_attention_heads`. */
  num_key_value_heads?: number | null;
  /** Width of one head; default `hidden_size / num_attention_heads`. */
  head_dim?: number | null;
  /** Context length; BERT's learned position rows (rotary models have no position parameters). */
  max_position_embeddings?: number;
  /** BERT: token-type (segment) rows; default 2. */
  type_vocab_size?: number;
  /** LLaMA: biases on q, k, v and o; default `false`. */
  attention_bias?: boolean;
  /** LLaMA: biases on the three MLP matrices; default `false`. */
  mlp_bias?: boolean;
  /** Mixtral: experts per block. */
  num_local_experts?: number;
  /** Mixtral: experts each token is routed to. */
  num_experts_per_tok?: number;
  /** Any other HF field, ignored. */
  [field: string]: unknown;
}

/**
 * One learned tensor (or a family of equal tensors) in an analytic count.
 *
 * @example
 * ```ts
 * import { countAnalytic } from "@paramscope/kit/count";
 * const r = countAnalytic({ model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 });
 * const t = r.analytic!.terms.find((t) => t.name === "blocks.{i}.attn.qkv.weight")!;
 * console.log(t.formula, t.elements); // "d_model * 3 * d_model" 21233664
 * ```
 */
export interface AnalyticTerm {
  /** Readable name; `{i}` stands for the block index, `{e}` for the expert index. */
  name: string;
  /** Component it belongs to. */
  component: Component;
  /** Weight, bias or gain. */
  kind: ParamKind;
  /** `"block"`: the formula is per block and is multiplied by `layer`; `"model"`: it occurs once. */
  per: "block" | "model";
  /** Elements per block (or in the model, for `per: "model"`), in mathjs syntax over the scope's symbols. */
  formula: string;
  /** Elements in the whole model (the formula's value, times `layer` for `per: "block"`). */
  elements: number;
  /** Mixture of experts: the per-token active formula when it differs (`k_expert` in place of `n_expert`). */
  activeFormula?: string;
  /** Mixture of experts: active elements in the whole model, when `activeFormula` is set. */
  activeElements?: number;
}

/**
 * A symbolic count: the formula text, its value, and the values of its symbols.
 *
 * @example
 * ```ts
 * import { countAnalytic } from "@paramscope/kit/count";
 * const a = countAnalytic({ model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 }).analytic!;
 * console.log(a.scope.d_model, a.symbols.d_model, a.value); // 768 "n_embd" 124439808
 * ```
 */
export interface AnalyticCount {
  /** The whole count in mathjs syntax: model-level terms plus `layer * (per-block terms)`. */
  formula: string;
  /** The same formula as LaTeX (mathjs `toTex`), for notebooks. */
  tex: string;
  /** Symbol values the formula was evaluated with (`vocab`, `d_model`, `layer`, ...). */
  scope: Readonly<Record<string, number>>;
  /** Where each symbol came from: the HF field name, or the default rule when the field was absent. */
  symbols: Readonly<Record<string, string>>;
  /** The formula's value (mathjs), equal to the sum of the terms' elements. */
  value: number;
  /** One entry per learned tensor. */
  terms: readonly AnalyticTerm[];
  /** Mixture of experts: the active-per-token formula, its LaTeX and value. */
  active?: { formula: string; tex: string; value: number };
}

/**
 * A tensor left out of a count, with why (e.g. an ONNX shape constant or a quantization scale).
 *
 * @example
 * ```ts
 * import type { ExcludedTensor } from "@paramscope/kit/count";
 * const x: ExcludedTensor = { name: "onnx::Reshape_42", reason: "shape constant", elements: 3 };
 * console.log(x.reason);
 * ```
 */
export interface ExcludedTensor {
  /** Name as found in the source (ONNX initializer name, ...). */
  name: string;
  /** Why it is not a learned parameter. */
  reason: string;
  /** Its element count. */
  elements: number;
}

/**
 * A parameter count, analytic or exact. An exact count from a model file
 * returns the same shape with `excluded` filled and `analytic` absent.
 *
 * @example
 * ```ts
 * import { countAnalytic } from "@paramscope/kit/count";
 * const r = countAnalytic({ model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 });
 * console.log(r.byComponent.embedding, r.byKind.bias, r.tied); // 39383808 102144 ["head.weight"]
 * ```
 */
export interface CountResult {
  /** Counting family. */
  family: Family;
  /** Learned parameters, each shared tensor counted once. */
  total: number;
  /** Mixture of experts: parameters used for one token (router + the `k` routed experts); absent for dense models. */
  active?: number;
  /** `total` split by component; every component is present (0 when empty). */
  byComponent: Record<Component, number>;
  /** `total` split by kind; every kind is present. */
  byKind: Record<ParamKind, number>;
  /** Readable names of tensors that reuse another tensor's storage and were counted once (e.g. `head.weight`). */
  tied: string[];
  /** Tensors found but not counted, with the reason; always empty for analytic counts. */
  excluded: ExcludedTensor[];
  /** The formula and its terms: for analytic counts, and for exact counts whose config.json is known. */
  analytic?: AnalyticCount;
  /** Exact counts: every counted tensor, in file order. */
  tensors?: CountedTensor[];
}

/**
 * One tensor of an exact count ({@linkcode countModel}).
 *
 * @example
 * ```ts
 * import type { CountedTensor } from "@paramscope/kit/count";
 * const t: CountedTensor = { name: "norm_f.gain", storedName: "model.norm.weight", component: "norm", kind: "gain",
 *   elements: 4096 };
 * console.log(t.elements);
 * ```
 */
export interface CountedTensor {
  /** Readable name (or the stored name when the layout was not recognised). */
  name: string;
  /** Initializer name in the file. */
  storedName: string;
  /** Component. */
  component: Component;
  /** Kind. */
  kind: ParamKind;
  /** Logical elements (a 4-bit matrix counts all K·N weights). */
  elements: number;
}

/**
 * Options for {@linkcode countAnalytic}.
 *
 * @example
 * ```ts
 * import { countAnalytic, type CountAnalyticOptions } from "@paramscope/kit/count";
 * const o: CountAnalyticOptions = { pooler: false };
 * console.log(countAnalytic({ model_type: "bert", vocab_size: 30522, max_position_embeddings: 512, hidden_size: 768,
 *   intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12 }, o).total); // 108891648
 * ```
 */
export interface CountAnalyticOptions {
  /** BERT only: count the pooler (dense `d_model × d_model` + bias) that `BertModel` checkpoints carry. Default `true`. */
  pooler?: boolean;
}

// ---------------------------------------------------------------------------
// Reading configs

/** Dimensions every family is normalized to before terms are built. */
interface Dims {
  family: Family;
  modelType: string;
  scope: Record<string, number>;
  symbols: Record<string, string>;
  tied: boolean;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  head: number;
  kvHead: number;
  dHead: number;
  layer: number;
}

function isArchConfig(c: HfConfig | ArchConfig): c is ArchConfig {
  return typeof c === "object" && c !== null && "family" in c && !("model_type" in c);
}

function describe(modelType: string): string {
  return `config with model_type "${modelType}"`;
}

/** A positive integer field; absent/null → TypeError naming it, wrong value → RangeError naming it. */
function need(c: Record<string, unknown>, modelType: string, field: string, what: string): number {
  const v = c[field];
  if (v === undefined || v === null) {
    throw new TypeError(
      `${describe(modelType)} is missing "${field}" (${what}); add it as it appears in the model's config.json`,
    );
  }
  return positive(v, modelType, field);
}

function optional(c: Record<string, unknown>, modelType: string, field: string): number | undefined {
  const v = c[field];
  return v === undefined || v === null ? undefined : positive(v, modelType, field);
}

function positive(v: unknown, modelType: string, field: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw new RangeError(`${describe(modelType)} has "${field}" = ${JSON.stringify(v)}; it must be a positive integer`);
  }
  return v;
}

function flag(c: Record<string, unknown>, modelType: string, field: string, fallback: boolean): boolean {
  const v = c[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") {
    throw new TypeError(`${describe(modelType)} has "${field}" = ${JSON.stringify(v)}; it must be true or false`);
  }
  return v;
}

function headsOf(
  modelType: string,
  dModel: number,
  head: number,
  kvHead: number,
  headDim: number | undefined,
  fields: [string, string, string],
): number {
  const [dField, hField, kvField] = fields;
  if (head % kvHead !== 0) {
    throw new RangeError(
      `${describe(modelType)} has ${hField} = ${head} not divisible by ${kvField} = ${kvHead}; ` +
        `each key/value head must serve a whole number of query heads`,
    );
  }
  if (headDim !== undefined) return headDim;
  if (dModel % head !== 0) {
    throw new RangeError(
      `${
        describe(modelType)
      } has ${dField} = ${dModel} not divisible by ${hField} = ${head}; set "head_dim" explicitly`,
    );
  }
  return dModel / head;
}

/** Reads any accepted config into {@linkcode Dims}; all field validation happens here. */
function readDims(config: HfConfig | ArchConfig): Dims {
  if (typeof config !== "object" || config === null) {
    throw new TypeError(
      `expected a config object (HF config.json or ArchConfig), got ${config === null ? "null" : typeof config}`,
    );
  }
  if (isArchConfig(config)) return readArch(config);
  const c = config as Record<string, unknown>;
  const modelType = c.model_type;
  const supported = Object.keys(SUPPORTED_MODEL_TYPES).join(", ");
  if (typeof modelType !== "string") {
    throw new TypeError(`config has no "model_type" string; set it to one of: ${supported}`);
  }
  const family = Object.hasOwn(SUPPORTED_MODEL_TYPES, modelType) ? SUPPORTED_MODEL_TYPES[modelType] : undefined;
  if (family === undefined) {
    throw new TypeError(`unknown model_type "${modelType}"; supported model types: ${supported}`);
  }
  const vocab = need(c, modelType, "vocab_size", "vocabulary size");

  if (family === "gpt") {
    const dModel = need(c, modelType, "n_embd", "residual width");
    const layer = need(c, modelType, "n_layer", "number of blocks");
    const head = need(c, modelType, "n_head", "attention heads");
    const pos = need(c, modelType, "n_positions", "learned position rows");
    const inner = optional(c, modelType, "n_inner");
    const dHead = headsOf(modelType, dModel, head, head, undefined, ["n_embd", "n_head", "n_head"]);
    return {
      family,
      modelType,
      scope: { vocab, pos, d_model: dModel, layer, d_mlp: inner ?? 4 * dModel },
      symbols: {
        vocab: "vocab_size",
        pos: "n_positions",
        d_model: "n_embd",
        layer: "n_layer",
        d_mlp: inner === undefined ? "4 * n_embd (n_inner absent)" : "n_inner",
      },
      tied: flag(c, modelType, "tie_word_embeddings", true),
      qkvBias: true,
      oBias: true,
      mlpBias: true,
      head,
      kvHead: head,
      dHead,
      layer,
    };
  }

  const dModel = need(c, modelType, "hidden_size", "residual width");
  const dMlp = need(c, modelType, "intermediate_size", "MLP hidden width");
  const layer = need(c, modelType, "num_hidden_layers", "number of blocks");
  const head = need(c, modelType, "num_attention_heads", "query heads");

  if (family === "bert") {
    const pos = need(c, modelType, "max_position_embeddings", "learned position rows");
    const types = optional(c, modelType, "type_vocab_size");
    const dHead = headsOf(modelType, dModel, head, head, undefined, [
      "hidden_size",
      "num_attention_heads",
      "num_attention_heads",
    ]);
    return {
      family,
      modelType,
      scope: { vocab, pos, type_vocab: types ?? 2, d_model: dModel, layer, d_mlp: dMlp },
      symbols: {
        vocab: "vocab_size",
        pos: "max_position_embeddings",
        type_vocab: types === undefined ? "2 (type_vocab_size absent)" : "type_vocab_size",
        d_model: "hidden_size",
        layer: "num_hidden_layers",
        d_mlp: "intermediate_size",
      },
      tied: false,
      qkvBias: true,
      oBias: true,
      mlpBias: true,
      head,
      kvHead: head,
      dHead,
      layer,
    };
  }

  // llama, mistral, qwen2, mixtral. HF's LlamaConfig fills a missing num_key_value_heads with
  // num_attention_heads; Mistral/Mixtral/Qwen2 configs fill it with class defaults that rarely match the
  // model, so it is required for them.
  const kvRaw = modelType === "llama"
    ? optional(c, modelType, "num_key_value_heads")
    : need(c, modelType, "num_key_value_heads", "key/value heads");
  const kvHead = kvRaw ?? head;
  const headDim = optional(c, modelType, "head_dim");
  const dHead = headsOf(modelType, dModel, head, kvHead, headDim, [
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
  ]);
  const scope: Record<string, number> = {
    vocab,
    d_model: dModel,
    layer,
    head,
    kv_head: kvHead,
    d_head: dHead,
    d_mlp: dMlp,
  };
  const symbols: Record<string, string> = {
    vocab: "vocab_size",
    d_model: "hidden_size",
    layer: "num_hidden_layers",
    head: "num_attention_heads",
    kv_head: kvRaw === undefined ? "num_attention_heads (num_key_value_heads absent)" : "num_key_value_heads",
    d_head: headDim === undefined ? "hidden_size / num_attention_heads (head_dim absent)" : "head_dim",
    d_mlp: "intermediate_size",
  };
  if (family === "moe") {
    const nExpert = need(c, modelType, "num_local_experts", "experts per block");
    const kExpert = need(c, modelType, "num_experts_per_tok", "experts per token");
    if (kExpert > nExpert) {
      throw new RangeError(
        `${describe(modelType)} has num_experts_per_tok = ${kExpert} > num_local_experts = ${nExpert}; ` +
          `a token cannot be routed to more experts than exist`,
      );
    }
    scope.n_expert = nExpert;
    scope.k_expert = kExpert;
    symbols.n_expert = "num_local_experts";
    symbols.k_expert = "num_experts_per_tok";
  }
  const attentionBias = modelType === "llama" && flag(c, modelType, "attention_bias", false);
  return {
    family,
    modelType,
    scope,
    symbols,
    tied: flag(c, modelType, "tie_word_embeddings", false),
    qkvBias: modelType === "qwen2" || attentionBias,
    oBias: attentionBias,
    mlpBias: modelType === "llama" && flag(c, modelType, "mlp_bias", false),
    head,
    kvHead,
    dHead,
    layer,
  };
}

function readArch(a: ArchConfig): Dims {
  const c = a as unknown as Record<string, unknown>;
  if (a.family === "gpt2") {
    const mt = "gpt2 (ArchConfig)";
    const vocab = need(c, mt, "vocabSize", "vocabulary size");
    const pos = need(c, mt, "maxPositions", "learned position rows");
    const dModel = need(c, mt, "dModel", "residual width");
    const layer = need(c, mt, "nLayer", "number of blocks");
    const head = need(c, mt, "nHead", "attention heads");
    const dMlp = need(c, mt, "dMlp", "MLP hidden width");
    const dHead = headsOf(mt, dModel, head, head, undefined, ["dModel", "nHead", "nHead"]);
    return {
      family: "gpt",
      modelType: "gpt2",
      scope: { vocab, pos, d_model: dModel, layer, d_mlp: dMlp },
      symbols: { vocab: "vocabSize", pos: "maxPositions", d_model: "dModel", layer: "nLayer", d_mlp: "dMlp" },
      tied: true,
      qkvBias: true,
      oBias: true,
      mlpBias: true,
      head,
      kvHead: head,
      dHead,
      layer,
    };
  }
  if (a.family === "llama") {
    const mt = "llama (ArchConfig)";
    const vocab = need(c, mt, "vocabSize", "vocabulary size");
    const dModel = need(c, mt, "dModel", "residual width");
    const layer = need(c, mt, "nLayer", "number of blocks");
    const head = need(c, mt, "nHead", "query heads");
    const kvHead = need(c, mt, "nKvHead", "key/value heads");
    const dHeadIn = need(c, mt, "dHead", "width of one head");
    const dMlp = need(c, mt, "dMlp", "MLP hidden width");
    const dHead = headsOf(mt, dModel, head, kvHead, dHeadIn, ["dModel", "nHead", "nKvHead"]);
    return {
      family: "llama",
      modelType: "llama",
      scope: { vocab, d_model: dModel, layer, head, kv_head: kvHead, d_head: dHead, d_mlp: dMlp },
      symbols: {
        vocab: "vocabSize",
        d_model: "dModel",
        layer: "nLayer",
        head: "nHead",
        kv_head: "nKvHead",
        d_head: "dHead",
        d_mlp: "dMlp",
      },
      tied: flag(c, mt, "tieWordEmbeddings", false),
      qkvBias: false,
      oBias: false,
      mlpBias: false,
      head,
      kvHead,
      dHead,
      layer,
    };
  }
  const family = (a as { family?: unknown }).family;
  throw new TypeError(`unknown ArchConfig family ${JSON.stringify(family)}; supported families: gpt2, llama`);
}

// ---------------------------------------------------------------------------
// Terms per family

type TermSpec = Omit<AnalyticTerm, "elements" | "activeElements">;

function t(
  name: string,
  component: Component,
  kind: ParamKind,
  per: "block" | "model",
  formula: string,
  activeFormula?: string,
): TermSpec {
  return activeFormula === undefined
    ? { name, component, kind, per, formula }
    : { name, component, kind, per, formula, activeFormula };
}

const B = "blocks.{i}";

function termsFor(d: Dims, options: CountAnalyticOptions): TermSpec[] {
  const out: TermSpec[] = [];
  if (d.family === "gpt") {
    out.push(
      t("embed.tokens", "embedding", "weight", "model", "vocab * d_model"),
      t("embed.positions", "embedding", "weight", "model", "pos * d_model"),
      t(`${B}.ln1.gain`, "norm", "gain", "block", "d_model"),
      t(`${B}.ln1.bias`, "norm", "bias", "block", "d_model"),
      t(`${B}.attn.qkv.weight`, "attention", "weight", "block", "d_model * 3 * d_model"),
      t(`${B}.attn.qkv.bias`, "attention", "bias", "block", "3 * d_model"),
      t(`${B}.attn.o.weight`, "attention", "weight", "block", "d_model * d_model"),
      t(`${B}.attn.o.bias`, "attention", "bias", "block", "d_model"),
      t(`${B}.ln2.gain`, "norm", "gain", "block", "d_model"),
      t(`${B}.ln2.bias`, "norm", "bias", "block", "d_model"),
      t(`${B}.mlp.in.weight`, "mlp", "weight", "block", "d_model * d_mlp"),
      t(`${B}.mlp.in.bias`, "mlp", "bias", "block", "d_mlp"),
      t(`${B}.mlp.out.weight`, "mlp", "weight", "block", "d_mlp * d_model"),
      t(`${B}.mlp.out.bias`, "mlp", "bias", "block", "d_model"),
      t("norm_f.gain", "norm", "gain", "model", "d_model"),
      t("norm_f.bias", "norm", "bias", "model", "d_model"),
    );
  } else if (d.family === "bert") {
    // Post-norm: ln1 follows attention, ln2 follows the MLP.
    out.push(
      t("embed.tokens", "embedding", "weight", "model", "vocab * d_model"),
      t("embed.positions", "embedding", "weight", "model", "pos * d_model"),
      t("embed.token_types", "embedding", "weight", "model", "type_vocab * d_model"),
      t("embed.norm.gain", "norm", "gain", "model", "d_model"),
      t("embed.norm.bias", "norm", "bias", "model", "d_model"),
    );
    for (const p of ["q", "k", "v", "o"]) {
      out.push(
        t(`${B}.attn.${p}.weight`, "attention", "weight", "block", "d_model * d_model"),
        t(`${B}.attn.${p}.bias`, "attention", "bias", "block", "d_model"),
      );
    }
    out.push(
      t(`${B}.ln1.gain`, "norm", "gain", "block", "d_model"),
      t(`${B}.ln1.bias`, "norm", "bias", "block", "d_model"),
      t(`${B}.mlp.in.weight`, "mlp", "weight", "block", "d_model * d_mlp"),
      t(`${B}.mlp.in.bias`, "mlp", "bias", "block", "d_mlp"),
      t(`${B}.mlp.out.weight`, "mlp", "weight", "block", "d_mlp * d_model"),
      t(`${B}.mlp.out.bias`, "mlp", "bias", "block", "d_model"),
      t(`${B}.ln2.gain`, "norm", "gain", "block", "d_model"),
      t(`${B}.ln2.bias`, "norm", "bias", "block", "d_model"),
    );
    if (options.pooler ?? true) {
      out.push(
        t("pooler.weight", "other", "weight", "model", "d_model * d_model"),
        t("pooler.bias", "other", "bias", "model", "d_model"),
      );
    }
  } else {
    out.push(
      t("embed.tokens", "embedding", "weight", "model", "vocab * d_model"),
      t(`${B}.ln1.gain`, "norm", "gain", "block", "d_model"),
      t(`${B}.attn.q.weight`, "attention", "weight", "block", "d_model * head * d_head"),
      t(`${B}.attn.k.weight`, "attention", "weight", "block", "d_model * kv_head * d_head"),
      t(`${B}.attn.v.weight`, "attention", "weight", "block", "d_model * kv_head * d_head"),
    );
    if (d.qkvBias) {
      out.push(
        t(`${B}.attn.q.bias`, "attention", "bias", "block", "head * d_head"),
        t(`${B}.attn.k.bias`, "attention", "bias", "block", "kv_head * d_head"),
        t(`${B}.attn.v.bias`, "attention", "bias", "block", "kv_head * d_head"),
      );
    }
    out.push(t(`${B}.attn.o.weight`, "attention", "weight", "block", "head * d_head * d_model"));
    if (d.oBias) out.push(t(`${B}.attn.o.bias`, "attention", "bias", "block", "d_model"));
    out.push(t(`${B}.ln2.gain`, "norm", "gain", "block", "d_model"));
    if (d.family === "moe") {
      // The router is a bias-free linear map d_model → n_expert; every token passes through it.
      const E = `${B}.mlp.experts.{e}`;
      out.push(
        t(`${B}.mlp.router.weight`, "mlp", "weight", "block", "d_model * n_expert"),
        t(`${E}.gate.weight`, "mlp", "weight", "block", "n_expert * d_model * d_mlp", "k_expert * d_model * d_mlp"),
        t(`${E}.in.weight`, "mlp", "weight", "block", "n_expert * d_model * d_mlp", "k_expert * d_model * d_mlp"),
        t(`${E}.out.weight`, "mlp", "weight", "block", "n_expert * d_mlp * d_model", "k_expert * d_mlp * d_model"),
      );
    } else {
      out.push(
        t(`${B}.mlp.gate.weight`, "mlp", "weight", "block", "d_model * d_mlp"),
        t(`${B}.mlp.in.weight`, "mlp", "weight", "block", "d_model * d_mlp"),
        t(`${B}.mlp.out.weight`, "mlp", "weight", "block", "d_mlp * d_model"),
      );
      if (d.mlpBias) {
        out.push(
          t(`${B}.mlp.gate.bias`, "mlp", "bias", "block", "d_mlp"),
          t(`${B}.mlp.in.bias`, "mlp", "bias", "block", "d_mlp"),
          t(`${B}.mlp.out.bias`, "mlp", "bias", "block", "d_model"),
        );
      }
    }
    out.push(t("norm_f.gain", "norm", "gain", "model", "d_model"));
  }
  if (!d.tied && d.family !== "bert") out.push(t("head.weight", "head", "weight", "model", "d_model * vocab"));
  return out;
}

/** Terms in order, the per-block ones gathered into `layer * (...)` where the first of them stands. */
function assemble(terms: readonly TermSpec[], pick: (t: TermSpec) => string): string {
  const block = terms.filter((x) => x.per === "block").map(pick);
  const parts: string[] = [];
  let blockDone = false;
  for (const x of terms) {
    if (x.per === "model") parts.push(pick(x));
    else if (!blockDone) {
      parts.push(`layer * (${block.join(" + ")})`);
      blockDone = true;
    }
  }
  return parts.join(" + ");
}

function evalCount(formula: string, scope: Record<string, number>, what: string): number {
  const v = evaluate(formula, { ...scope }) as unknown;
  if (typeof v !== "number" || !Number.isSafeInteger(v)) {
    throw new RangeError(
      `${what} evaluates to ${String(v)}, beyond 2^53 where counts stop being exact; check the config's sizes`,
    );
  }
  return v;
}

/** LaTeX for a symbol: `d_model` → `d_{\mathrm{model}}`, `kv_head` → `\mathrm{kv\_head}` (leading space keeps `\cdot` apart). */
function symbolTex(name: string): string {
  const [base, ...rest] = name.split("_");
  if (base.length === 1 && rest.length > 0) return ` ${base}_{\\mathrm{${rest.join("\\_")}}}`;
  return ` \\mathrm{${name.replaceAll("_", "\\_")}}`;
}

/** The formula as LaTeX, symbols written as subscripted names. */
function texOf(formula: string): string {
  return parse(formula).toTex({
    handler: (node: { type: string; name?: string }) =>
      node.type === "SymbolNode" && node.name !== undefined ? symbolTex(node.name) : undefined,
  });
}

function emptyByComponent(): Record<Component, number> {
  return { embedding: 0, attention: 0, mlp: 0, norm: 0, head: 0, other: 0 };
}

function emptyByKind(): Record<ParamKind, number> {
  return { weight: 0, bias: 0, gain: 0 };
}

/**
 * Counts a model's learned parameters from its architecture config, with the
 * formula shown: one term per tensor, the whole formula evaluated by mathjs.
 *
 * Tied embeddings are counted once (`tied: ["head.weight"]`). BERT is counted
 * as `BertModel` (encoder + pooler, no masked-LM head). Rotary position
 * embeddings have no parameters and do not appear.
 *
 * @param config a Hugging Face `config.json` object (see {@linkcode HfConfig} for the fields read per
 *   `model_type`) or an {@linkcode ArchConfig}
 * @param options see {@linkcode CountAnalyticOptions}
 * @returns total, breakdown by component and kind, the tied tensors, and the formula with its terms;
 *   for Mixtral also `active` (parameters used per token)
 * @throws {TypeError} when a needed field is missing (the message names the field and the model_type) or the
 *   model_type is not one of {@linkcode SUPPORTED_MODEL_TYPES} (the message lists them)
 * @throws {RangeError} when a size is not a positive integer, heads do not divide evenly, or the count exceeds 2^53
 *
 * @example
 * ```ts
 * import { countAnalytic } from "@paramscope/kit/count";
 * const r = countAnalytic({
 *   model_type: "mixtral", vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
 *   num_attention_heads: 32, num_key_value_heads: 8, num_local_experts: 8, num_experts_per_tok: 2,
 * });
 * console.log(r.total, r.active); // 46702792704 12879925248
 * ```
 */
export function countAnalytic(config: HfConfig | ArchConfig, options: CountAnalyticOptions = {}): CountResult {
  const dims = readDims(config);
  const specs = termsFor(dims, options);
  const scope = dims.scope;
  const terms: AnalyticTerm[] = specs.map((s) => {
    const mult = s.per === "block" ? dims.layer : 1;
    const elements = evalCount(s.formula, scope, `term ${s.name}`) * mult;
    if (s.activeFormula === undefined) return { ...s, elements };
    return { ...s, elements, activeElements: evalCount(s.activeFormula, scope, `term ${s.name}`) * mult };
  });

  const formula = assemble(specs, (x) => x.formula);
  const value = evalCount(formula, scope, `the ${dims.modelType} count`);
  const byComponent = emptyByComponent();
  const byKind = emptyByKind();
  let sum = 0;
  for (const x of terms) {
    byComponent[x.component] += x.elements;
    byKind[x.kind] += x.elements;
    sum += x.elements;
  }
  // The formula and the terms are two routes to one number; disagreement would mean a bug in assemble().
  if (sum !== value) throw new Error(`internal: formula gives ${value} but its terms sum to ${sum}`);

  const analytic: AnalyticCount = {
    formula,
    tex: texOf(formula),
    scope: { ...scope },
    symbols: { ...dims.symbols },
    value,
    terms,
  };
  const result: CountResult = {
    family: dims.family,
    total: value,
    byComponent,
    byKind,
    tied: dims.tied && dims.family !== "bert" ? ["head.weight"] : [],
    excluded: [],
    analytic,
  };
  if (specs.some((x) => x.activeFormula !== undefined)) {
    const activeFormula = assemble(specs, (x) => x.activeFormula ?? x.formula);
    const activeValue = evalCount(activeFormula, scope, `the ${dims.modelType} active count`);
    analytic.active = { formula: activeFormula, tex: texOf(activeFormula), value: activeValue };
    result.active = activeValue;
  }
  return result;
}

/**
 * Parameters outside the embedding tables and the output head (the "non-embedding"
 * count of Kaplan et al. 2020 and of the Qwen model cards).
 *
 * @param result any count
 * @returns `total − byComponent.embedding − byComponent.head`
 *
 * @example
 * ```ts
 * import { countAnalytic, nonEmbeddingCount } from "@paramscope/kit/count";
 * const r = countAnalytic({ model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 });
 * console.log(nonEmbeddingCount(r)); // 85056000
 * ```
 */
export function nonEmbeddingCount(result: CountResult): number {
  return result.total - result.byComponent.embedding - result.byComponent.head;
}

// ---------------------------------------------------------------------------
// Exact count from a model file

/**
 * Options for {@linkcode countModel}.
 *
 * @example
 * ```ts
 * import type { CountModelOptions } from "@paramscope/kit/count";
 * const o: CountModelOptions = { dtype: "q4" };
 * console.log(o.dtype);
 * ```
 */
export interface CountModelOptions {
  /** Which file of a model folder to count (`q8` → `onnx/model_quantized.onnx`). Default `"fp32"`. */
  dtype?: Dtype;
  /** The model's `config.json` object. Default: the Model's, or `config.json` beside the folder/file. */
  config?: Record<string, unknown>;
}

/** The family a set of readable names belongs to, for files without a known config. */
function familyFromNames(names: ReadonlySet<string>): Family {
  const has = (re: RegExp) => [...names].some((n) => re.test(n));
  if (names.has("embed.token_types") || names.has("pooler.weight")) return "bert";
  if (has(/\.attn\.qkv\.weight$/) && names.has("embed.positions")) return "gpt";
  if (has(/\.mlp\.experts\./)) return "moe";
  if (has(/\.attn\.q\.weight$/) && has(/\.mlp\.gate\.weight$/)) return "llama";
  return "unknown";
}

/**
 * The exact parameter count of a model file: every learned initializer of the
 * ONNX graph, by component and kind, each storage counted once (a tied head is
 * listed in `tied`, not counted again), with shape constants, masks, rotary
 * tables, quantization scales and zero points listed in `excluded` with the
 * reason. Quantized files count the same logical parameters as their float
 * original (a MatMulNBits weight `[N, k_blocks, blob]` counts N·K).
 *
 * When the model's config.json is known and its `model_type` is supported, the
 * result also carries `analytic` (the formula of {@linkcode countAnalytic}), so
 * the exact total can be checked against it; a config the analytic count
 * cannot read leaves `analytic` absent rather than failing the exact count.
 *
 * @param source a Model (lib/load.ts), a decoded OnnxModel, a model folder or a `.onnx` path
 * @param options which dtype file of a folder to count; the config
 * @returns total, breakdowns, tied and excluded tensors, every counted tensor, and `analytic` when known
 * @throws {OnnxFormatError} for a missing, truncated or malformed file (naming the file and tensor)
 *
 * @example
 * ```ts
 * import { countModel } from "@paramscope/kit/count";
 * const r = await countModel("models/paramscope-gpt2-tiny");
 * console.log(r.total === r.analytic?.value, r.tied); // true ["head.weight"]
 * ```
 */
export async function countModel(source: WeightSource, options: CountModelOptions = {}): Promise<CountResult> {
  // Loaded on first use so that analytic counting never pulls in the ONNX reader.
  const { listParameters } = await import("./weights.ts");
  const list = await listParameters(source, options);
  const byComponent = emptyByComponent();
  const byKind = emptyByKind();
  let total = 0;
  const tensors: CountedTensor[] = [];
  for (const p of list.params) {
    byComponent[p.component] += p.elements;
    byKind[p.kind] += p.elements;
    total += p.elements;
    tensors.push({
      name: p.name,
      storedName: p.storedName,
      component: p.component,
      kind: p.kind,
      elements: p.elements,
    });
  }
  const config = list.config;
  const modelType = typeof config?.model_type === "string" ? config.model_type : undefined;
  let analytic: AnalyticCount | undefined;
  let family: Family | undefined;
  if (config !== undefined && modelType !== undefined && Object.hasOwn(SUPPORTED_MODEL_TYPES, modelType)) {
    family = SUPPORTED_MODEL_TYPES[modelType];
    try {
      // Optimum's feature-extraction exports of BertModel drop the pooler; count it only when present.
      const pooler = list.params.some((p) => p.name === "pooler.weight");
      analytic = countAnalytic(config as HfConfig, family === "bert" ? { pooler } : {}).analytic;
    } catch {
      analytic = undefined;
    }
  }
  const result: CountResult = {
    family: family ?? familyFromNames(new Set(list.params.map((p) => p.name))),
    total,
    byComponent,
    byKind,
    tied: list.tied.map((t) => t.name),
    excluded: list.excluded.map((x) => ({ ...x })),
    tensors,
  };
  if (analytic !== undefined) result.analytic = analytic;
  return result;
}

// ---------------------------------------------------------------------------
// The textbook estimate

/**
 * The coarse textbook estimate and how far it is from the exact analytic count.
 *
 * @example
 * ```ts
 * import { coarseEstimate, type CoarseEstimate } from "@paramscope/kit/count";
 * const e: CoarseEstimate = coarseEstimate({ model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 });
 * console.log(e.value, e.analytic, e.relativeError.toFixed(4));
 * ```
 */
export interface CoarseEstimate {
  /** `vocab * d_model + layer * (4 * d_model^2 + 8 * d_model^2 + 4 * d_model)` in mathjs syntax. */
  formula: string;
  /** The formula as LaTeX. */
  tex: string;
  /** Symbol values used (`vocab`, `d_model`, `layer`). */
  scope: Readonly<Record<string, number>>;
  /** The estimate. */
  value: number;
  /** The exact analytic count of the same config ({@linkcode countAnalytic}'s `total`). */
  analytic: number;
  /** `(value − analytic) / analytic`: negative when the estimate is short. */
  relativeError: number;
}

/** The textbook estimate: embeddings `V·d`, then per layer attention `4d²`, a 4×-wide MLP `8d²`, and two LayerNorms `4d`. */
export const COARSE_FORMULA = "vocab * d_model + layer * (4 * d_model^2 + 8 * d_model^2 + 4 * d_model)";

/**
 * The coarse textbook estimate `V·d + N·(4d² + 8d² + 4d)`: embeddings, then per
 * layer attention (`4d²`: q, k, v, o), an MLP assumed 4× wide (`8d²`) and two
 * LayerNorms (`4d`). It ignores biases, positions, grouped-query attention,
 * real MLP widths, a third SwiGLU matrix, an untied head and experts, which is
 * what `relativeError` shows.
 *
 * @param config as for {@linkcode countAnalytic}
 * @returns the estimate, its formula, the exact count and the relative error
 * @throws {TypeError | RangeError} as {@linkcode countAnalytic}
 *
 * @example
 * ```ts
 * import { coarseEstimate } from "@paramscope/kit/count";
 * const e = coarseEstimate({ model_type: "llama", vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008,
 *   num_hidden_layers: 32, num_attention_heads: 32 });
 * console.log(e.value, e.analytic); // 6574047232 6738415616
 * ```
 */
export function coarseEstimate(config: HfConfig | ArchConfig): CoarseEstimate {
  const exact = countAnalytic(config);
  const scope = exact.analytic!.scope;
  const s = { vocab: scope.vocab, d_model: scope.d_model, layer: scope.layer };
  const value = evalCount(COARSE_FORMULA, s, "the coarse estimate");
  return {
    formula: COARSE_FORMULA,
    tex: texOf(COARSE_FORMULA),
    scope: s,
    value,
    analytic: exact.total,
    relativeError: (value - exact.total) / exact.total,
  };
}

// ---------------------------------------------------------------------------
// Cost figures

/** Storage formats for weights and caches. */
export type Precision = "fp32" | "fp16" | "bf16" | "int8" | "int4";

/** Bytes per element of each {@linkcode Precision} (int4 packs two per byte). */
export const BYTES_PER_ELEMENT: Readonly<Record<Precision, number>> = {
  fp32: 4,
  fp16: 2,
  bf16: 2,
  int8: 1,
  int4: 0.5,
};

function checkPrecision(p: unknown, where: string): Precision {
  if (typeof p !== "string" || !Object.hasOwn(BYTES_PER_ELEMENT, p)) {
    throw new TypeError(
      `${where}: unknown precision ${JSON.stringify(p)}; use one of ${Object.keys(BYTES_PER_ELEMENT).join(", ")}`,
    );
  }
  return p as Precision;
}

function checkCount(n: unknown, name: string, where: string): number {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) {
    throw new RangeError(`${where}: ${name} = ${String(n)}; it must be a finite number ≥ 0`);
  }
  return n;
}

/**
 * Bytes to store `params` weights at one precision, ignoring quantization
 * scales and zero points (int4 rounds up to whole bytes).
 *
 * @param params number of parameters (≥ 0)
 * @param precision storage format
 * @returns bytes
 * @throws {RangeError} for a negative or non-finite count; {TypeError} for an unknown precision
 *
 * @example
 * ```ts
 * import { weightBytes } from "@paramscope/kit/count";
 * console.log(weightBytes(7e9, "fp16") / 2 ** 30); // ≈ 13.04 GiB
 * ```
 */
export function weightBytes(params: number, precision: Precision): number {
  const n = checkCount(params, "params", "weightBytes()");
  const p = checkPrecision(precision, "weightBytes()");
  return Math.ceil(n * BYTES_PER_ELEMENT[p]);
}

/**
 * The shape that sets the KV cache's size: one key and one value vector of
 * `kvHeads · dHead` per layer per token.
 *
 * @example
 * ```ts
 * import type { KvCacheShape } from "@paramscope/kit/count";
 * const s: KvCacheShape = { layers: 32, kvHeads: 8, dHead: 128 };
 * console.log(s.kvHeads * s.dHead);
 * ```
 */
export interface KvCacheShape {
  /** Decoder blocks. */
  layers: number;
  /** Key/value heads (fewer than query heads under grouped-query attention). */
  kvHeads: number;
  /** Width of one head. */
  dHead: number;
}

/**
 * Reads the KV-cache shape from a decoder config.
 *
 * @param config a decoder config (`gpt2`, `llama`, `mistral`, `qwen2`, `mixtral`, or an ArchConfig)
 * @returns layers, key/value heads and head width
 * @throws {TypeError} for an encoder (`bert` keeps no KV cache) and as {@linkcode countAnalytic}
 *
 * @example
 * ```ts
 * import { kvCacheShape } from "@paramscope/kit/count";
 * console.log(kvCacheShape({ model_type: "mistral", vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336,
 *   num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8 })); // { layers: 32, kvHeads: 8, dHead: 128 }
 * ```
 */
export function kvCacheShape(config: HfConfig | ArchConfig): KvCacheShape {
  const d = readDims(config);
  if (d.family === "bert") {
    throw new TypeError(
      `kvCacheShape(): model_type "${d.modelType}" is an encoder and keeps no KV cache; pass a decoder config`,
    );
  }
  return { layers: d.layer, kvHeads: d.kvHead, dHead: d.dHead };
}

/**
 * Options for {@linkcode kvCacheBytesPerToken}.
 *
 * @example
 * ```ts
 * import type { KvCacheOptions } from "@paramscope/kit/count";
 * const o: KvCacheOptions = { precision: "fp32" };
 * console.log(o.precision);
 * ```
 */
export interface KvCacheOptions {
  /** Storage format of cached keys and values. Default `"fp16"`. */
  precision?: Precision;
}

/**
 * KV-cache bytes for one token of context: `2 · layers · kvHeads · dHead · bytes`
 * (one key and one value vector per layer).
 *
 * @param shape layers, key/value heads, head width (see {@linkcode kvCacheShape})
 * @param options see {@linkcode KvCacheOptions}
 * @returns bytes per token
 * @throws {RangeError} for a size that is not a positive integer; {TypeError} for an unknown precision
 *
 * @example
 * ```ts
 * import { kvCacheBytesPerToken } from "@paramscope/kit/count";
 * console.log(kvCacheBytesPerToken({ layers: 32, kvHeads: 32, dHead: 128 })); // 524288 (LLaMA 2 7B, fp16)
 * ```
 */
export function kvCacheBytesPerToken(shape: KvCacheShape, options: KvCacheOptions = {}): number {
  const where = "kvCacheBytesPerToken()";
  for (const k of ["layers", "kvHeads", "dHead"] as const) {
    const v = shape?.[k];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      throw new RangeError(`${where}: shape.${k} = ${String(v)}; it must be a positive integer`);
    }
  }
  const p = checkPrecision(options.precision ?? "fp16", where);
  return 2 * shape.layers * shape.kvHeads * shape.dHead * BYTES_PER_ELEMENT[p];
}

/**
 * Forward-pass FLOPs per token, `≈ 2·N` (one multiply and one add per weight;
 * attention over the context is left out). For a mixture of experts pass the
 * active count.
 *
 * @param params parameters used per token
 * @returns FLOPs (a float estimate, not an exact integer)
 * @throws {RangeError} for a negative or non-finite count
 *
 * @example
 * ```ts
 * import { forwardFlopsPerToken } from "@paramscope/kit/count";
 * console.log(forwardFlopsPerToken(124439808)); // 248879616
 * ```
 */
export function forwardFlopsPerToken(params: number): number {
  return 2 * checkCount(params, "params", "forwardFlopsPerToken()");
}

/**
 * Training FLOPs, `≈ 6·N·D`: forward (2N) plus backward (4N) per token, over `D` tokens.
 *
 * @param params parameters used per token (`N`)
 * @param tokens training tokens (`D`)
 * @returns FLOPs (a float estimate)
 * @throws {RangeError} for a negative or non-finite argument
 *
 * @example
 * ```ts
 * import { trainingFlops } from "@paramscope/kit/count";
 * console.log(trainingFlops(175e9, 300e9).toExponential(2)); // "3.15e+23" (GPT-3)
 * ```
 */
export function trainingFlops(params: number, tokens: number): number {
  const where = "trainingFlops()";
  return 6 * checkCount(params, "params", where) * checkCount(tokens, "tokens", where);
}

/**
 * Options for {@linkcode computeOptimalTokens}.
 *
 * @example
 * ```ts
 * import type { ComputeOptimalOptions } from "@paramscope/kit/count";
 * const o: ComputeOptimalOptions = { tokensPerParam: 20 };
 * console.log(o.tokensPerParam);
 * ```
 */
export interface ComputeOptimalOptions {
  /** Tokens per parameter. Default 20 (Hoffmann et al. 2022, "Chinchilla"). */
  tokensPerParam?: number;
}

/**
 * Compute-optimal training tokens for a model size, `≈ 20·N` (Chinchilla).
 *
 * @param params parameters (`N`)
 * @param options see {@linkcode ComputeOptimalOptions}
 * @returns tokens
 * @throws {RangeError} for a negative or non-finite argument
 *
 * @example
 * ```ts
 * import { computeOptimalTokens } from "@paramscope/kit/count";
 * console.log(computeOptimalTokens(70e9)); // 1.4e12
 * ```
 */
export function computeOptimalTokens(params: number, options: ComputeOptimalOptions = {}): number {
  const where = "computeOptimalTokens()";
  const ratio = checkCount(options.tokensPerParam ?? 20, "tokensPerParam", where);
  return checkCount(params, "params", where) * ratio;
}

/**
 * All cost figures of one count.
 *
 * @example
 * ```ts
 * import { costFigures, countAnalytic, type CostFigures } from "@paramscope/kit/count";
 * const c: CostFigures = costFigures(countAnalytic({ model_type: "gpt2", vocab_size: 50257, n_positions: 1024,
 *   n_embd: 768, n_layer: 12, n_head: 12 }));
 * console.log(c.weightBytes.fp16);
 * ```
 */
export interface CostFigures {
  /** Parameters stored (`total`). */
  params: number;
  /** Parameters used per token (`active` for a mixture of experts, else `total`). */
  activeParams: number;
  /** Bytes of weights at each precision. */
  weightBytes: Record<Precision, number>;
  /** `2 · activeParams`. */
  forwardFlopsPerToken: number;
  /** Compute-optimal training tokens for `params` (Chinchilla's 20 per parameter by default). */
  computeOptimalTokens: number;
  /** `6 · activeParams · computeOptimalTokens`. */
  trainingFlops: number;
  /** KV-cache bytes per token, when the options gave a shape. */
  kvCacheBytesPerToken?: number;
}

/**
 * Options for {@linkcode costFigures}.
 *
 * @example
 * ```ts
 * import type { CostOptions } from "@paramscope/kit/count";
 * const o: CostOptions = { kvCache: { layers: 12, kvHeads: 12, dHead: 64 }, kvPrecision: "fp32" };
 * console.log(o.kvCache?.layers);
 * ```
 */
export interface CostOptions extends ComputeOptimalOptions {
  /** KV-cache shape; when given, `kvCacheBytesPerToken` is filled. Default: none. */
  kvCache?: KvCacheShape;
  /** Precision of the KV cache. Default `"fp16"`. */
  kvPrecision?: Precision;
}

/**
 * Memory and compute figures for a count: weight bytes at every precision,
 * forward and training FLOPs, compute-optimal tokens, and optionally the KV cache.
 *
 * @param count any {@linkcode CountResult} (analytic or exact)
 * @param options see {@linkcode CostOptions}
 * @returns the figures
 * @throws {RangeError | TypeError} as the single-figure functions
 *
 * @example
 * ```ts
 * import { costFigures, countAnalytic, kvCacheShape } from "@paramscope/kit/count";
 * const cfg = { model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 };
 * const c = costFigures(countAnalytic(cfg), { kvCache: kvCacheShape(cfg) });
 * console.log(c.weightBytes.fp32, c.kvCacheBytesPerToken); // 497759232 36864
 * ```
 */
export function costFigures(count: CountResult, options: CostOptions = {}): CostFigures {
  const params = count.total;
  const activeParams = count.active ?? count.total;
  const weights = {} as Record<Precision, number>;
  for (const p of Object.keys(BYTES_PER_ELEMENT) as Precision[]) weights[p] = weightBytes(params, p);
  const tokens = computeOptimalTokens(params, options);
  const out: CostFigures = {
    params,
    activeParams,
    weightBytes: weights,
    forwardFlopsPerToken: forwardFlopsPerToken(activeParams),
    computeOptimalTokens: tokens,
    trainingFlops: trainingFlops(activeParams, tokens),
  };
  if (options.kvCache !== undefined) {
    out.kvCacheBytesPerToken = kvCacheBytesPerToken(options.kvCache, { precision: options.kvPrecision ?? "fp16" });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Text

/**
 * A count written the way people say it: `124M`, `6.74B`, `22.7M`, `512`.
 *
 * @param n a count
 * @returns three significant figures with a K/M/B/T suffix
 *
 * @example
 * ```ts
 * import { humanCount } from "@paramscope/kit/count";
 * console.log(humanCount(124439808), humanCount(46702792704)); // "124M" "46.7B"
 * ```
 */
export function humanCount(n: number): string {
  const units: [number, string][] = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "K"]];
  for (const [u, s] of units) {
    if (Math.abs(n) >= u) return `${Number((n / u).toPrecision(3))}${s}`;
  }
  return String(n);
}

/**
 * A size in bytes in binary units, three significant figures: `3.25 MiB`, `13.0 GiB`, `512 B`.
 *
 * @param bytes a non-negative byte count
 * @returns the size with a B/KiB/MiB/GiB/TiB suffix
 *
 * @example
 * ```ts
 * import { humanBytes } from "@paramscope/kit/count";
 * console.log(humanBytes(3_412_224), humanBytes(7e9 * 2), humanBytes(512)); // "3.25 MiB" "13.0 GiB" "512 B"
 * ```
 */
export function humanBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) [v, i] = [v / 1024, i + 1];
  return i === 0 ? `${v} B` : `${v >= 100 ? v.toFixed(0) : v.toPrecision(3)} ${units[i]}`;
}

/**
 * A plain-text table of a count: one row per component and per kind with its
 * share of the total, then tied and excluded tensors and the formula.
 *
 * @param result any count
 * @returns the table, lines joined with `\n`
 *
 * @example
 * ```ts
 * import { countAnalytic, formatCount } from "@paramscope/kit/count";
 * console.log(formatCount(countAnalytic({ model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768,
 *   n_layer: 12, n_head: 12 })));
 * ```
 */
export function formatCount(result: CountResult): string {
  const rows: [string, number][] = [];
  for (const c of COMPONENTS) rows.push([c, result.byComponent[c]]);
  rows.push(["", NaN]);
  for (const k of KINDS) rows.push([k, result.byKind[k]]);
  const width = Math.max(...rows.map(([, n]) => (Number.isNaN(n) ? 0 : n.toLocaleString("en-US").length)), 5);
  const lines = [`${"part".padEnd(10)} ${"params".padStart(width)}  share`];
  for (const [label, n] of rows) {
    if (Number.isNaN(n)) {
      lines.push("");
      continue;
    }
    const share = result.total === 0 ? 0 : (100 * n) / result.total;
    lines.push(`${label.padEnd(10)} ${n.toLocaleString("en-US").padStart(width)}  ${share.toFixed(2).padStart(6)}%`);
  }
  lines.push("");
  lines.push(
    `${"total".padEnd(10)} ${result.total.toLocaleString("en-US").padStart(width)}  (${humanCount(result.total)})`,
  );
  if (result.active !== undefined) {
    lines.push(
      `${"active".padEnd(10)} ${result.active.toLocaleString("en-US").padStart(width)}  (${
        humanCount(result.active)
      } per token)`,
    );
  }
  lines.push(`tied: ${result.tied.length === 0 ? "none" : result.tied.join(", ")}`);
  lines.push(`excluded: ${result.excluded.length === 0 ? "none" : `${result.excluded.length} tensors`}`);
  if (result.excluded.length <= 12) {
    for (const x of result.excluded) lines.push(`  ${x.name} (${x.elements.toLocaleString("en-US")}): ${x.reason}`);
  } else {
    // Real exports hold hundreds of constants: one line per reason.
    const groups = new Map<string, { n: number; elements: number }>();
    for (const x of result.excluded) {
      const reason = x.reason.replace(/ of .*$/, "");
      const g = groups.get(reason) ?? { n: 0, elements: 0 };
      g.n++;
      g.elements += x.elements;
      groups.set(reason, g);
    }
    for (const [reason, g] of groups) {
      lines.push(`  ${g.n} × ${reason} (${g.elements.toLocaleString("en-US")} elements)`);
    }
  }
  if (result.analytic !== undefined && result.tensors !== undefined) {
    const diff = result.total - result.analytic.value;
    lines.push(
      `analytic (config.json): ${result.analytic.value.toLocaleString("en-US")} ` +
        (diff === 0 ? "(equal to the exact count)" : `(exact − analytic = ${diff.toLocaleString("en-US")})`),
    );
  }
  if (result.analytic !== undefined) {
    const a = result.analytic;
    lines.push(`formula: ${a.formula}`);
    lines.push(`  where ${Object.entries(a.scope).map(([k, v]) => `${k} = ${v} (${a.symbols[k]})`).join(", ")}`);
    if (a.active !== undefined) lines.push(`active formula: ${a.active.formula}`);
  }
  return lines.join("\n");
}
