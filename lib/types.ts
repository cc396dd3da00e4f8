/**
 * Shared types: tensors as flat `Float32Array`s with named dims, and the
 * architecture configs the reference forward pass, training and export read.
 *
 * Dims are named from one vocabulary: `batch, pos, d_model, head, d_head,
 * d_mlp, vocab, layer`.
 *
 * @module
 */

/**
 * A dense float tensor in row-major order.
 *
 * @example
 * ```ts
 * import type { Tensor } from "@paramscope/kit/types";
 * const t: Tensor = { data: new Float32Array(6), dims: [2, 3] };
 * console.log(t.dims);
 * ```
 */
export interface Tensor {
  /** Values, row-major; `data.length` is the product of `dims`. */
  data: Float32Array;
  /** Shape, outermost first. */
  dims: readonly number[];
}

/**
 * Learned tensors of a model under readable names (`embed.tokens`,
 * `blocks.0.attn.qkv.weight`, `norm_f.gain`, ...). Matrices are stored
 * `[in, out]` so a linear layer is `y = x·W + b`.
 *
 * GPT-2 family names and shapes:
 * - `embed.tokens` `[vocab, d_model]`, `embed.positions` `[pos, d_model]`
 * - `blocks.{i}.ln1.gain|bias` `[d_model]`
 * - `blocks.{i}.attn.qkv.weight` `[d_model, 3·d_model]` (columns: all heads' q, then k, then v),
 *   `blocks.{i}.attn.qkv.bias` `[3·d_model]`
 * - `blocks.{i}.attn.o.weight` `[d_model, d_model]`, `.bias` `[d_model]`
 * - `blocks.{i}.ln2.gain|bias` `[d_model]`
 * - `blocks.{i}.mlp.in.weight` `[d_model, d_mlp]`, `.bias` `[d_mlp]`
 * - `blocks.{i}.mlp.out.weight` `[d_mlp, d_model]`, `.bias` `[d_model]`
 * - `norm_f.gain|bias` `[d_model]`; the head is tied: logits = x·embed.tokensᵀ
 *
 * LLaMA family names and shapes:
 * - `embed.tokens` `[vocab, d_model]`
 * - `blocks.{i}.ln1.gain`, `blocks.{i}.ln2.gain` `[d_model]` (RMSNorm)
 * - `blocks.{i}.attn.q.weight` `[d_model, head·d_head]`, `attn.k.weight` and `attn.v.weight`
 *   `[d_model, kv_head·d_head]`, `attn.o.weight` `[head·d_head, d_model]`
 * - `blocks.{i}.mlp.gate.weight`, `mlp.in.weight` `[d_model, d_mlp]`, `mlp.out.weight` `[d_mlp, d_model]`
 * - `norm_f.gain` `[d_model]`; `head.weight` `[d_model, vocab]` unless `tieWordEmbeddings`
 *
 * @example
 * ```ts
 * import type { ParamMap } from "@paramscope/kit/types";
 * const params: ParamMap = new Map([["norm_f.gain", { data: new Float32Array([1, 1]), dims: [2] }]]);
 * console.log(params.size);
 * ```
 */
export type ParamMap = Map<string, Tensor>;

/**
 * GPT-2 family architecture (LayerNorm, learned positions, GELU tanh, biases, tied head).
 *
 * @example
 * ```ts
 * import type { Gpt2Config } from "@paramscope/kit/types";
 * const c: Gpt2Config = { family: "gpt2", vocabSize: 50257, maxPositions: 1024, dModel: 768, nLayer: 12, nHead: 12, dMlp: 3072, normEps: 1e-5 };
 * console.log(c.dModel / c.nHead);
 * ```
 */
export interface Gpt2Config {
  /** Family tag. */
  family: "gpt2";
  /** Vocabulary size (`vocab`). */
  vocabSize: number;
  /** Context length (`n_positions`). */
  maxPositions: number;
  /** Width of the residual stream (`d_model`, HF `n_embd`). */
  dModel: number;
  /** Number of blocks (HF `n_layer`). */
  nLayer: number;
  /** Attention heads per block (HF `n_head`); `d_head = dModel / nHead`. */
  nHead: number;
  /** Hidden width of the MLP (`d_mlp`, HF `n_inner`, default `4·d_model`). */
  dMlp: number;
  /** LayerNorm epsilon (HF `layer_norm_epsilon`). */
  normEps: number;
}

/**
 * LLaMA family architecture (RMSNorm, rotary positions, grouped-query attention, SwiGLU, no biases).
 *
 * @example
 * ```ts
 * import type { LlamaConfig } from "@paramscope/kit/types";
 * const c: LlamaConfig = {
 *   family: "llama", vocabSize: 32000, maxPositions: 4096, dModel: 4096, nLayer: 32, nHead: 32, nKvHead: 32,
 *   dHead: 128, dMlp: 11008, normEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: false,
 * };
 * console.log(c.nHead / c.nKvHead);
 * ```
 */
export interface LlamaConfig {
  /** Family tag. */
  family: "llama";
  /** Vocabulary size (`vocab`). */
  vocabSize: number;
  /** Context length (HF `max_position_embeddings`). */
  maxPositions: number;
  /** Width of the residual stream (HF `hidden_size`). */
  dModel: number;
  /** Number of blocks (HF `num_hidden_layers`). */
  nLayer: number;
  /** Query heads (HF `num_attention_heads`). */
  nHead: number;
  /** Key/value heads (HF `num_key_value_heads`); `nHead / nKvHead` query heads share one. */
  nKvHead: number;
  /** Width of one head (HF `head_dim`, default `hidden_size / num_attention_heads`). */
  dHead: number;
  /** Hidden width of the SwiGLU MLP (HF `intermediate_size`). */
  dMlp: number;
  /** RMSNorm epsilon (HF `rms_norm_eps`). */
  normEps: number;
  /** Rotary base (HF `rope_theta`). */
  ropeTheta: number;
  /** Whether the head reuses `embed.tokens` (HF `tie_word_embeddings`). */
  tieWordEmbeddings: boolean;
}

/**
 * Either supported decoder family.
 *
 * @example
 * ```ts
 * import type { ArchConfig } from "@paramscope/kit/types";
 * function width(c: ArchConfig): number { return c.dModel; }
 * console.log(typeof width);
 * ```
 */
export type ArchConfig = Gpt2Config | LlamaConfig;
