/**
 * Published architectures with their Hugging Face-style configs and published
 * parameter totals, so a count can be checked against the figure people quote.
 *
 * Every config holds the real published hyperparameters. Models with an HF
 * checkpoint use its `config.json` fields; GPT-3, Gopher and Chinchilla have
 * none and are written as `gpt2` configs with their papers' sizes. When the
 * analytic count and the published figure differ by more than 1%, the entry
 * carries a one-line `note` and a machine-checkable `reconcile` saying why.
 *
 * @example
 * ```ts
 * import { CATALOG, comparePublished } from "@paramscope/kit/catalog";
 * for (const e of CATALOG) {
 *   const c = comparePublished(e);
 *   console.log(e.name, c.counted, e.published, (100 * c.relativeDifference).toFixed(2) + "%");
 * }
 * ```
 *
 * @module
 */
import { countAnalytic, type CountResult, type Family, type HfConfig } from "./count.ts";

/**
 * Why a published figure differs from the analytic count by more than 1%.
 *
 * - `rounded`: the published figure is the count rounded to `significantFigures` significant figures
 *   (a size-class name such as "7B").
 * - `extra`: the published figure includes `elements` parameters the HF-style config cannot express
 *   (`what` says which); the count plus `elements` is within 1% of it.
 *
 * @example
 * ```ts
 * import type { Reconcile } from "@paramscope/kit/catalog";
 * const r: Reconcile = { kind: "rounded", significantFigures: 1 };
 * console.log(r.kind);
 * ```
 */
export type Reconcile =
  | { kind: "rounded"; significantFigures: number }
  | { kind: "extra"; elements: number; what: string };

/**
 * One published architecture.
 *
 * @example
 * ```ts
 * import { catalogEntry } from "@paramscope/kit/catalog";
 * const e = catalogEntry("mixtral-8x7b");
 * console.log(e.name, e.year, e.published, e.publishedActive);
 * ```
 */
export interface CatalogEntry {
  /** Short lowercase id, as given to `scripts/count.ts --arch`. */
  id: string;
  /** Display name. */
  name: string;
  /** Year the model was published. */
  year: number;
  /** Counting family of its config. */
  family: Family;
  /** Hugging Face-style config (`model_type` and the fields the count reads, plus a few that describe it). */
  config: HfConfig;
  /** Published total parameter count. */
  published: number;
  /** Mixture of experts: published parameters active per token. */
  publishedActive?: number;
  /** Published non-embedding count, where the source gives one. */
  publishedNonEmbedding?: number;
  /** Where the published figure and the hyperparameters come from. */
  source: string;
  /** One line on why the count differs from `published` by more than 1%; absent when it does not. */
  note?: string;
  /** The same explanation in checkable form; present exactly when `note` is. */
  reconcile?: Reconcile;
}

/**
 * The catalog, grouped by lineage (encoders, GPT line, DeepMind, LLaMA line, small open models).
 *
 * @example
 * ```ts
 * import { CATALOG } from "@paramscope/kit/catalog";
 * console.log(CATALOG.map((e) => e.id).join(", "));
 * ```
 */
export const CATALOG: readonly CatalogEntry[] = [
  {
    // Devlin et al. 2018, "BERT: Pre-training of Deep Bidirectional Transformers...", §3: BERT_BASE
    // (L=12, H=768, A=12, Total Parameters=110M); config: google-bert/bert-base-uncased config.json.
    id: "bert-base",
    name: "BERT base",
    year: 2018,
    family: "bert",
    config: {
      model_type: "bert",
      vocab_size: 30522,
      hidden_size: 768,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      intermediate_size: 3072,
      max_position_embeddings: 512,
      type_vocab_size: 2,
      hidden_act: "gelu",
    },
    published: 110e6,
    source: "Devlin et al. 2018 (BERT), §3; google-bert/bert-base-uncased config.json",
  },
  {
    // Devlin et al. 2018, §3: BERT_LARGE (L=24, H=1024, A=16, Total Parameters=340M);
    // config: google-bert/bert-large-uncased config.json.
    id: "bert-large",
    name: "BERT large",
    year: 2018,
    family: "bert",
    config: {
      model_type: "bert",
      vocab_size: 30522,
      hidden_size: 1024,
      num_hidden_layers: 24,
      num_attention_heads: 16,
      intermediate_size: 4096,
      max_position_embeddings: 512,
      type_vocab_size: 2,
      hidden_act: "gelu",
    },
    published: 340e6,
    source: "Devlin et al. 2018 (BERT), §3; google-bert/bert-large-uncased config.json",
    note: "The paper's 340M is the 335.1M count rounded to two significant figures.",
    reconcile: { kind: "rounded", significantFigures: 2 },
  },
  {
    // openai/gpt-2 README model table (124M, 355M, 774M, 1558M), which corrects the paper's Table 2
    // (117M, 345M, 762M, 1542M: "our original parameter counts were wrong due to an error");
    // config: openai-community/gpt2 config.json.
    id: "gpt2-small",
    name: "GPT-2 small",
    year: 2019,
    family: "gpt",
    config: {
      model_type: "gpt2",
      vocab_size: 50257,
      n_positions: 1024,
      n_ctx: 1024,
      n_embd: 768,
      n_layer: 12,
      n_head: 12,
    },
    published: 124e6,
    source: "openai/gpt-2 README (corrected counts; the paper said 117M); openai-community/gpt2 config.json",
  },
  {
    id: "gpt2-medium",
    name: "GPT-2 medium",
    year: 2019,
    family: "gpt",
    config: {
      model_type: "gpt2",
      vocab_size: 50257,
      n_positions: 1024,
      n_ctx: 1024,
      n_embd: 1024,
      n_layer: 24,
      n_head: 16,
    },
    published: 355e6,
    source: "openai/gpt-2 README (corrected counts; the paper said 345M); openai-community/gpt2-medium config.json",
  },
  {
    id: "gpt2-large",
    name: "GPT-2 large",
    year: 2019,
    family: "gpt",
    config: {
      model_type: "gpt2",
      vocab_size: 50257,
      n_positions: 1024,
      n_ctx: 1024,
      n_embd: 1280,
      n_layer: 36,
      n_head: 20,
    },
    published: 774e6,
    source: "openai/gpt-2 README (corrected counts; the paper said 762M); openai-community/gpt2-large config.json",
  },
  {
    id: "gpt2-xl",
    name: "GPT-2 XL",
    year: 2019,
    family: "gpt",
    config: {
      model_type: "gpt2",
      vocab_size: 50257,
      n_positions: 1024,
      n_ctx: 1024,
      n_embd: 1600,
      n_layer: 48,
      n_head: 25,
    },
    published: 1558e6,
    source: "openai/gpt-2 README (corrected counts; the paper said 1542M); openai-community/gpt2-xl config.json",
  },
  {
    // Brown et al. 2020, "Language Models are Few-Shot Learners", Table 2.1: GPT-3 175B, n_params 175.0B,
    // n_layers 96, d_model 12288, n_heads 96, d_head 128, context 2048; GPT-2's BPE vocabulary (50257).
    id: "gpt3-175b",
    name: "GPT-3 175B",
    year: 2020,
    family: "gpt",
    config: { model_type: "gpt2", vocab_size: 50257, n_positions: 2048, n_embd: 12288, n_layer: 96, n_head: 96 },
    published: 175.0e9,
    source: "Brown et al. 2020 (GPT-3), Table 2.1; written as a gpt2 config",
  },
  {
    // Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training Gopher", Table 1:
    // 280B, 80 layers, 128 heads, key/value size 128, d_model 16384; SentencePiece vocabulary of 32,000;
    // 2048-token context; relative position encodings (Transformer-XL) and RMSNorm.
    id: "gopher-280b",
    name: "Gopher 280B",
    year: 2021,
    family: "gpt",
    config: { model_type: "gpt2", vocab_size: 32000, n_positions: 2048, n_embd: 16384, n_layer: 80, n_head: 128 },
    published: 280e9,
    source: "Rae et al. 2021 (Gopher), Table 1 and §3; written as a gpt2 config",
    note: "280B includes Transformer-XL relative-position projections, one d_model×d_model matrix per layer, " +
      "that a gpt2 config cannot express.",
    reconcile: {
      kind: "extra",
      elements: 80 * 16384 * 16384,
      what: "relative-position key projection W_R (layer · d_model²)",
    },
  },
  {
    // Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", Table 4: Chinchilla 70B,
    // 80 layers, 64 heads, key/value size 128, d_model 8192; same tokenizer (32,000) and architecture as Gopher.
    id: "chinchilla-70b",
    name: "Chinchilla 70B",
    year: 2022,
    family: "gpt",
    config: { model_type: "gpt2", vocab_size: 32000, n_positions: 2048, n_embd: 8192, n_layer: 80, n_head: 64 },
    published: 70e9,
    source: "Hoffmann et al. 2022 (Chinchilla), Table 4; written as a gpt2 config",
    note: "70B includes Gopher-style relative-position projections, one d_model×d_model matrix per layer, " +
      "that a gpt2 config cannot express.",
    reconcile: {
      kind: "extra",
      elements: 80 * 8192 * 8192,
      what: "relative-position key projection W_R (layer · d_model²)",
    },
  },
  {
    // Touvron et al. 2023, "Llama 2: Open Foundation and Fine-Tuned Chat Models", Table 1 (7B, 13B, 70B;
    // GQA for 70B); configs: meta-llama/Llama-2-{7b,13b,70b}-hf config.json.
    id: "llama2-7b",
    name: "LLaMA 2 7B",
    year: 2023,
    family: "llama",
    config: {
      model_type: "llama",
      vocab_size: 32000,
      hidden_size: 4096,
      intermediate_size: 11008,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 32,
      max_position_embeddings: 4096,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: false,
    },
    published: 7e9,
    source: "Touvron et al. 2023 (Llama 2), Table 1; meta-llama/Llama-2-7b-hf config.json",
    note: "7B is the size-class name: the 6.74B count rounded to one significant figure.",
    reconcile: { kind: "rounded", significantFigures: 1 },
  },
  {
    id: "llama2-13b",
    name: "LLaMA 2 13B",
    year: 2023,
    family: "llama",
    config: {
      model_type: "llama",
      vocab_size: 32000,
      hidden_size: 5120,
      intermediate_size: 13824,
      num_hidden_layers: 40,
      num_attention_heads: 40,
      num_key_value_heads: 40,
      max_position_embeddings: 4096,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: false,
    },
    published: 13e9,
    source: "Touvron et al. 2023 (Llama 2), Table 1; meta-llama/Llama-2-13b-hf config.json",
  },
  {
    id: "llama2-70b",
    name: "LLaMA 2 70B",
    year: 2023,
    family: "llama",
    config: {
      model_type: "llama",
      vocab_size: 32000,
      hidden_size: 8192,
      intermediate_size: 28672,
      num_hidden_layers: 80,
      num_attention_heads: 64,
      num_key_value_heads: 8,
      max_position_embeddings: 4096,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: false,
    },
    published: 70e9,
    source: "Touvron et al. 2023 (Llama 2), Table 1; meta-llama/Llama-2-70b-hf config.json",
    note: "70B is the size-class name: the 68.98B count rounded to one significant figure.",
    reconcile: { kind: "rounded", significantFigures: 1 },
  },
  {
    // Meta 2024, "The Llama 3 Herd of Models", Table 3 (8B: 32 layers, d 4096, FFN 14336, 32 heads, 8 KV heads;
    // 70B: 80 layers, d 8192, FFN 28672, 64 heads, 8 KV heads; vocabulary 128K); configs:
    // meta-llama/Meta-Llama-3-{8B,70B} config.json.
    id: "llama3-8b",
    name: "Llama 3 8B",
    year: 2024,
    family: "llama",
    config: {
      model_type: "llama",
      vocab_size: 128256,
      hidden_size: 4096,
      intermediate_size: 14336,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      max_position_embeddings: 8192,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      tie_word_embeddings: false,
    },
    published: 8e9,
    source: "Llama Team 2024 (The Llama 3 Herd of Models), Table 3; meta-llama/Meta-Llama-3-8B config.json",
  },
  {
    id: "llama3-70b",
    name: "Llama 3 70B",
    year: 2024,
    family: "llama",
    config: {
      model_type: "llama",
      vocab_size: 128256,
      hidden_size: 8192,
      intermediate_size: 28672,
      num_hidden_layers: 80,
      num_attention_heads: 64,
      num_key_value_heads: 8,
      max_position_embeddings: 8192,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      tie_word_embeddings: false,
    },
    published: 70e9,
    source: "Llama Team 2024 (The Llama 3 Herd of Models), Table 3; meta-llama/Meta-Llama-3-70B config.json",
  },
  {
    // Mistral AI, "Mistral 7B" announcement (Sept 2023): "a 7.3B parameter model"; Jiang et al. 2023,
    // "Mistral 7B", Table 1; config: mistralai/Mistral-7B-v0.1 config.json.
    id: "mistral-7b",
    name: "Mistral 7B",
    year: 2023,
    family: "llama",
    config: {
      model_type: "mistral",
      vocab_size: 32000,
      hidden_size: 4096,
      intermediate_size: 14336,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      max_position_embeddings: 32768,
      sliding_window: 4096,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: false,
    },
    published: 7.3e9,
    source: "Mistral AI announcement (7.3B) and Jiang et al. 2023, Table 1; mistralai/Mistral-7B-v0.1 config.json",
  },
  {
    // Mistral AI, "Mixtral of experts" announcement (Dec 2023): "46.7B total parameters but only uses 12.9B
    // parameters per token"; Jiang et al. 2024, "Mixtral of Experts", Table 1; config:
    // mistralai/Mixtral-8x7B-v0.1 config.json.
    id: "mixtral-8x7b",
    name: "Mixtral 8x7B",
    year: 2023,
    family: "moe",
    config: {
      model_type: "mixtral",
      vocab_size: 32000,
      hidden_size: 4096,
      intermediate_size: 14336,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      num_local_experts: 8,
      num_experts_per_tok: 2,
      max_position_embeddings: 32768,
      rms_norm_eps: 1e-5,
      rope_theta: 1e6,
      tie_word_embeddings: false,
    },
    published: 46.7e9,
    publishedActive: 12.9e9,
    source: "Mistral AI announcement (46.7B total, 12.9B per token); mistralai/Mixtral-8x7B-v0.1 config.json",
  },
  {
    // sentence-transformers/all-MiniLM-L6-v2 model page (22.7M params) and its config.json
    // (a copy is in shared/fixtures/all-MiniLM-L6-v2-tokenizer/config.json).
    id: "all-minilm-l6-v2",
    name: "all-MiniLM-L6-v2",
    year: 2021,
    family: "bert",
    config: {
      model_type: "bert",
      vocab_size: 30522,
      hidden_size: 384,
      num_hidden_layers: 6,
      num_attention_heads: 12,
      intermediate_size: 1536,
      max_position_embeddings: 512,
      type_vocab_size: 2,
      hidden_act: "gelu",
    },
    published: 22.7e6,
    source: "sentence-transformers/all-MiniLM-L6-v2 model page (22.7M) and config.json",
  },
  {
    // Zhang et al. 2024, "TinyLlama: An Open-Source Small Language Model", Table 1 (1.1B; 22 layers, d 2048,
    // 32 heads, 4 query groups, intermediate 5632, vocabulary 32000); config: TinyLlama/TinyLlama-1.1B-Chat-v1.0.
    id: "tinyllama-1.1b",
    name: "TinyLlama 1.1B",
    year: 2024,
    family: "llama",
    config: {
      model_type: "llama",
      vocab_size: 32000,
      hidden_size: 2048,
      intermediate_size: 5632,
      num_hidden_layers: 22,
      num_attention_heads: 32,
      num_key_value_heads: 4,
      max_position_embeddings: 2048,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: false,
    },
    published: 1.1e9,
    source: "Zhang et al. 2024 (TinyLlama), Table 1; TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json",
  },
  {
    // Qwen2.5 model card (Qwen/Qwen2.5-0.5B): "Number of Parameters: 0.49B; Number of Parameters
    // (Non-Embedding): 0.36B; 24 layers; 14 heads for Q and 2 for KV"; config: Qwen/Qwen2.5-0.5B config.json.
    id: "qwen2.5-0.5b",
    name: "Qwen2.5 0.5B",
    year: 2024,
    family: "llama",
    config: {
      model_type: "qwen2",
      vocab_size: 151936,
      hidden_size: 896,
      intermediate_size: 4864,
      num_hidden_layers: 24,
      num_attention_heads: 14,
      num_key_value_heads: 2,
      max_position_embeddings: 32768,
      rms_norm_eps: 1e-6,
      rope_theta: 1e6,
      tie_word_embeddings: true,
    },
    published: 0.49e9,
    publishedNonEmbedding: 0.36e9,
    source: "Qwen/Qwen2.5-0.5B model card (0.49B, non-embedding 0.36B) and config.json",
  },
  {
    // Allal et al. 2025, "SmolLM2: When Smol Goes Big" and the HuggingFaceTB/SmolLM2-135M model card (135M);
    // config: HuggingFaceTB/SmolLM2-135M config.json.
    id: "smollm2-135m",
    name: "SmolLM2 135M",
    year: 2024,
    family: "llama",
    config: {
      model_type: "llama",
      vocab_size: 49152,
      hidden_size: 576,
      intermediate_size: 1536,
      num_hidden_layers: 30,
      num_attention_heads: 9,
      num_key_value_heads: 3,
      max_position_embeddings: 8192,
      rms_norm_eps: 1e-5,
      rope_theta: 100000,
      tie_word_embeddings: true,
    },
    published: 135e6,
    source: "HuggingFaceTB/SmolLM2-135M model card and config.json",
  },
];

/**
 * The ids of every catalog entry, in catalog order.
 *
 * @returns ids such as `"gpt2-small"`, `"llama2-7b"`
 *
 * @example
 * ```ts
 * import { catalogIds } from "@paramscope/kit/catalog";
 * console.log(catalogIds().includes("gpt3-175b")); // true
 * ```
 */
export function catalogIds(): string[] {
  return CATALOG.map((e) => e.id);
}

/**
 * Looks up a catalog entry by id (case-insensitive).
 *
 * @param id an entry id, e.g. `"llama2-7b"`
 * @returns the entry
 * @throws {RangeError} for an unknown id; the message lists the known ones
 *
 * @example
 * ```ts
 * import { catalogEntry } from "@paramscope/kit/catalog";
 * console.log(catalogEntry("GPT2-small").config.n_embd); // 768
 * ```
 */
export function catalogEntry(id: string): CatalogEntry {
  const want = String(id).toLowerCase();
  const e = CATALOG.find((x) => x.id === want);
  if (e === undefined) {
    throw new RangeError(`unknown architecture "${id}"; known: ${catalogIds().join(", ")}`);
  }
  return e;
}

/**
 * An entry's analytic count next to its published figure.
 *
 * @example
 * ```ts
 * import { catalogEntry, comparePublished, type PublishedComparison } from "@paramscope/kit/catalog";
 * const c: PublishedComparison = comparePublished(catalogEntry("gpt3-175b"));
 * console.log(c.agrees); // true
 * ```
 */
export interface PublishedComparison {
  /** The analytic count of the entry's config. */
  count: CountResult;
  /** `count.total`. */
  counted: number;
  /** The entry's published figure. */
  published: number;
  /** `(counted − published) / published`. */
  relativeDifference: number;
  /**
   * The count the published figure is compared with after the entry's `reconcile`: `counted` plus any `extra`
   * elements, or `counted` rounded to the stated significant figures.
   */
  reconciled: number;
  /** Whether `reconciled` is within 1% of `published` (equal to it, for `rounded`). */
  agrees: boolean;
}

/**
 * Counts an entry's config and compares it with its published figure,
 * applying the entry's `reconcile` when it has one.
 *
 * @param entry a catalog entry
 * @returns counted, published, their relative difference, the reconciled count and whether it agrees
 *
 * @example
 * ```ts
 * import { catalogEntry, comparePublished } from "@paramscope/kit/catalog";
 * const c = comparePublished(catalogEntry("llama2-7b"));
 * console.log(c.counted, c.reconciled, c.agrees); // 6738415616 7000000000 true
 * ```
 */
export function comparePublished(entry: CatalogEntry): PublishedComparison {
  const count = countAnalytic(entry.config);
  const counted = count.total;
  const r = entry.reconcile;
  let reconciled = counted;
  let agrees: boolean;
  if (r?.kind === "rounded") {
    reconciled = Number(counted.toPrecision(r.significantFigures));
    agrees = reconciled === entry.published;
  } else {
    if (r?.kind === "extra") reconciled = counted + r.elements;
    agrees = Math.abs(reconciled - entry.published) <= 0.01 * entry.published;
  }
  return {
    count,
    counted,
    published: entry.published,
    relativeDifference: (counted - entry.published) / entry.published,
    reconciled,
    agrees,
  };
}
