/**
 * One small interface over the two ways this kit runs a decoder: "given new
 * token ids (and the keys/values of earlier positions), return next-token
 * logits (and the keys/values of every position)".
 *
 * - `reference`: the readable TypeScript forward pass of `forward.ts` over the
 *   weights `loadParams()` reads from the model's ONNX file.
 * - `onnx`: the transformers.js model's ONNX Runtime session, fed `input_ids`,
 *   `attention_mask`, `position_ids` and `past_key_values.N.key|value`; its
 *   `present.N.key|value` outputs become the next call's past.
 *
 * Both engines use one KV-cache layout, forward.ts's {@linkcode KeyValue}:
 * per layer `[1, kv_head, pos, d_head]` Float32Arrays (keys after rotary for
 * LLaMA), which is ONNX's `present` layout for batch 1. So a cache made by one
 * engine can be continued by the other, which is how the parity tests compare
 * them step by step.
 *
 * @example
 * ```ts ignore
 * import { loadModel } from "./load.ts";
 * import { createEngine } from "./engine.ts";
 * const model = await loadModel();
 * const onnx = await createEngine(model, { engine: "onnx" });
 * const first = await onnx.run([10, 20, 30]);
 * const next = await onnx.run([40], { past: first.present, logits: "last" });
 * console.log(first.logits.dims, next.logits.dims); // [3, vocab] [1, vocab]
 * ```
 *
 * @module
 */
import { forward, type KeyValue } from "./forward.ts";
import { pinForwardWeights } from "./_pin.ts";
import type { Model } from "./load.ts";
import type { ArchConfig, ParamMap, Tensor } from "./types.ts";
import { loadParams } from "./weights.ts";

/** Names of the engines {@linkcode createEngine} builds. */
export type EngineName = "reference" | "onnx";

/**
 * Every engine name, in the order scripts list them.
 *
 * @example
 * ```ts
 * import { ENGINE_NAMES } from "./engine.ts";
 * console.log(ENGINE_NAMES.join(" | ")); // "reference | onnx"
 * ```
 */
export const ENGINE_NAMES: readonly EngineName[] = Object.freeze(["reference", "onnx"] as const);

/**
 * Options of {@linkcode Engine.run}.
 *
 * @example
 * ```ts
 * import type { EngineRunOptions } from "./engine.ts";
 * const o: EngineRunOptions = { logits: "last" };
 * console.log(o.logits);
 * ```
 */
export interface EngineRunOptions {
  /**
   * Keys and values of the earlier positions, one entry per layer, each `[1, kv_head, past_pos, d_head]`
   * (usually the previous call's `present`). The new ids continue at position `past_pos`. Default: none.
   */
  past?: readonly KeyValue[];
  /** `"all"` (default): logits `[pos, vocab]` for every new id; `"last"`: `[1, vocab]` for the last one. */
  logits?: "all" | "last";
}

/**
 * What {@linkcode Engine.run} returns.
 *
 * @example
 * ```ts
 * import type { EngineRunResult } from "./engine.ts";
 * function lastRow(r: EngineRunResult): Float32Array {
 *   const [rows, vocab] = r.logits.dims;
 *   return r.logits.data.subarray((rows - 1) * vocab);
 * }
 * console.log(typeof lastRow);
 * ```
 */
export interface EngineRunResult {
  /** Next-token logits `[pos, vocab]` (`[1, vocab]` with `logits: "last"`). */
  logits: Tensor;
  /** Per layer keys and values `[1, kv_head, past_pos + pos, d_head]`: the past of the next call. */
  present: KeyValue[];
}

/**
 * A way of running a model: ids (+ past) → logits (+ present).
 *
 * @example
 * ```ts
 * import type { Engine } from "./engine.ts";
 * async function greedyNext(engine: Engine, ids: number[]): Promise<number> {
 *   const { logits } = await engine.run(ids, { logits: "last" });
 *   let best = 0;
 *   for (let v = 1; v < logits.data.length; v++) if (logits.data[v] > logits.data[best]) best = v;
 *   return best;
 * }
 * console.log(typeof greedyNext);
 * ```
 */
export interface Engine {
  /** Which engine this is. */
  readonly name: EngineName;
  /** The model's architecture (`vocabSize`, `maxPositions`, `nLayer`, ...). */
  readonly arch: ArchConfig;
  /**
   * Runs `ids` after `options.past`.
   *
   * @param ids new token ids, each in `[0, vocabSize)`; `past_pos + ids.length <= maxPositions`
   * @param options past keys/values and which logits to return
   * @returns logits and the keys/values of every position so far
   */
  run(ids: readonly number[], options?: EngineRunOptions): Promise<EngineRunResult>;
}

/**
 * Options of {@linkcode createEngine}.
 *
 * @example
 * ```ts
 * import type { CreateEngineOptions } from "./engine.ts";
 * const o: CreateEngineOptions = { engine: "reference" };
 * console.log(o.engine);
 * ```
 */
export interface CreateEngineOptions {
  /** `"onnx"` (default, ONNX Runtime through transformers.js) or `"reference"` (forward.ts). */
  engine?: EngineName;
  /**
   * Reference engine only: the weights to run. Default: `loadParams(model)`, read once per model and
   * shared by every reference engine of that model; being private to the engines, that copy is kept
   * packed in WebAssembly memory (up to 256 MiB of pinned weights per thread), which makes decoding
   * about 2× faster. Weights passed here are used as they are, never pinned, so they may change
   * between runs.
   */
  params?: ParamMap;
}

// ---------------------------------------------------------------------------------------------
// Validation shared by both engines (the same messages whichever engine runs)
// ---------------------------------------------------------------------------------------------

function archOf(model: Model): ArchConfig {
  if (model === null || typeof model !== "object" || !("config" in model)) {
    throw new TypeError(`model must be the Model returned by loadModel(), got ${String(model)}`);
  }
  if (!model.arch) {
    throw new TypeError(
      `model ${model.id} (model_type ${JSON.stringify(model.config.model_type)}) is not a GPT-2 or LLaMA-family ` +
        "decoder, so neither engine can run it; load a gpt2, llama, mistral or qwen2 model",
    );
  }
  return model.arch;
}

function kvHeads(arch: ArchConfig): { nKvHead: number; dHead: number } {
  return arch.family === "gpt2"
    ? { nKvHead: arch.nHead, dHead: arch.dModel / arch.nHead }
    : { nKvHead: arch.nKvHead, dHead: arch.dHead };
}

/**
 * Number of positions held by a KV cache (`past_pos`): dim 2 of the first layer's keys, 0 for none.
 *
 * @param past per layer keys and values `[1, kv_head, past_pos, d_head]`, or `undefined`
 * @returns `past_pos`
 * @example
 * ```ts
 * import { pastLength } from "./engine.ts";
 * const t = { data: new Float32Array(2 * 5 * 4), dims: [1, 2, 5, 4] };
 * console.log(pastLength([{ key: t, value: t }]), pastLength(undefined)); // 5 0
 * ```
 */
export function pastLength(past: readonly KeyValue[] | undefined): number {
  if (past === undefined || past.length === 0) return 0;
  const dims = past[0]?.key?.dims;
  if (!Array.isArray(dims) || dims.length !== 4) {
    throw new RangeError(
      `past[0].key must be a [1, kv_head, past_pos, d_head] tensor, got dims ${JSON.stringify(dims)}`,
    );
  }
  return dims[2];
}

function checkRun(arch: ArchConfig, ids: readonly number[], options: EngineRunOptions): number {
  if (!Array.isArray(ids)) {
    throw new TypeError(`ids must be an array of token ids, got ${Object.prototype.toString.call(ids)}`);
  }
  if (ids.length === 0) throw new RangeError("ids is empty; pass at least one token id");
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= arch.vocabSize) {
      throw new RangeError(
        `ids[${i}] is ${String(id)}, not a token id in [0, ${arch.vocabSize}); check the tokenizer matches the model`,
      );
    }
  }
  const which = options.logits ?? "all";
  if (which !== "all" && which !== "last") {
    throw new RangeError(`options.logits is ${JSON.stringify(which)}; expected "all" or "last"`);
  }
  const past = options.past;
  if (past !== undefined && (!Array.isArray(past) || past.length !== arch.nLayer)) {
    throw new RangeError(
      `options.past must hold one {key, value} per layer (${arch.nLayer}), got ${
        Array.isArray(past) ? past.length : typeof past
      }`,
    );
  }
  const pastLen = pastLength(past);
  const { nKvHead, dHead } = kvHeads(arch);
  past?.forEach((kv, l) => {
    for (const which of ["key", "value"] as const) {
      const t = kv?.[which];
      const ok = t && t.data instanceof Float32Array && t.dims.length === 4 && t.dims[0] === 1 &&
        t.dims[1] === nKvHead && t.dims[2] === pastLen && t.dims[3] === dHead &&
        t.data.length === nKvHead * pastLen * dHead;
      if (!ok) {
        throw new RangeError(
          `options.past[${l}].${which} must be a Float32Array tensor [1, ${nKvHead}, ${pastLen}, ${dHead}] ` +
            `([batch, kv_head, past_pos, d_head]), got dims ${JSON.stringify(t?.dims)}`,
        );
      }
    }
  });
  if (pastLen + ids.length > arch.maxPositions) {
    throw new RangeError(
      `positions ${pastLen}..${pastLen + ids.length - 1} exceed the context of ${arch.maxPositions} tokens; ` +
        `shorten the input to at most ${Math.max(0, arch.maxPositions - pastLen)} tokens`,
    );
  }
  return pastLen;
}

// ---------------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------------

const paramsCache = new WeakMap<Model, Promise<ParamMap>>();

/** The model's weights as a ParamMap, read once per model. */
function paramsOf(model: Model): Promise<ParamMap> {
  let p = paramsCache.get(model);
  if (!p) {
    p = loadParams(model);
    paramsCache.set(model, p);
    // A failed read must not stay cached.
    p.catch(() => paramsCache.delete(model));
  }
  return p;
}

function referenceEngine(arch: ArchConfig, params: ParamMap): Engine {
  return {
    name: "reference",
    arch,
    run(ids, options = {}) {
      checkRun(arch, ids, options);
      try {
        const r = forward(arch, params, ids, { past: options.past, logits: options.logits ?? "all" });
        return Promise.resolve({ logits: r.logits, present: r.present! });
      } catch (e) {
        return Promise.reject(e);
      }
    },
  };
}

/** What transformers.js's decoder forward returns: `logits` and `present.N.key|value`. */
type OrtOutputs = Record<string, { data: unknown; dims: number[] }>;

interface ForwardingModel {
  forward(inputs: Record<string, unknown>): Promise<OrtOutputs>;
}

type Transformers = typeof import("@huggingface/transformers");
let transformersPromise: Promise<Transformers> | undefined;

async function onnxEngine(model: Model, arch: ArchConfig): Promise<Engine> {
  const session = model.model as unknown as ForwardingModel | null;
  if (!session || typeof session.forward !== "function") {
    throw new TypeError(
      `model ${model.id} has no ONNX Runtime session (loaded with tokenizerOnly?); ` +
        `load it with loadModel(id) or use engine "reference"`,
    );
  }
  transformersPromise ??= import("@huggingface/transformers");
  const { Tensor } = await transformersPromise;
  const int64 = (values: BigInt64Array, dims: number[]) => new Tensor("int64", values, dims);
  return {
    name: "onnx",
    arch,
    async run(ids, options = {}) {
      const pastLen = checkRun(arch, ids, options);
      const n = ids.length, total = pastLen + n;
      const inputIds = new BigInt64Array(n);
      const positions = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        inputIds[i] = BigInt(ids[i]);
        positions[i] = BigInt(pastLen + i);
      }
      const inputs: Record<string, unknown> = {
        input_ids: int64(inputIds, [1, n]),
        attention_mask: int64(new BigInt64Array(total).fill(1n), [1, total]),
        position_ids: int64(positions, [1, n]),
      };
      if (options.past && pastLen > 0) {
        // Without past, transformers.js feeds empty [1, kv_head, 0, d_head] tensors itself.
        const pkv: Record<string, unknown> = {};
        options.past.forEach((kv, l) => {
          pkv[`past_key_values.${l}.key`] = new Tensor("float32", kv.key.data, [...kv.key.dims]);
          pkv[`past_key_values.${l}.value`] = new Tensor("float32", kv.value.data, [...kv.value.dims]);
        });
        inputs.past_key_values = pkv;
      }
      const out = await session.forward(inputs);
      const logits = out.logits;
      if (!logits || !(logits.data instanceof Float32Array)) {
        throw new TypeError(
          `model ${model.id}: ONNX Runtime returned no float32 "logits"; engines run fp32/fp16/quantized ` +
            "exports whose logits output is float32",
        );
      }
      const vocab = logits.dims[logits.dims.length - 1];
      const rows = options.logits === "last" ? 1 : n;
      // The last row is copied even when it is the only one: ONNX Runtime's output lives in an external
      // buffer that V8 reads several times slower than its own heap, and a sampler reads it at least twice.
      const data = rows === n && n > 1 ? logits.data : logits.data.slice((n - 1) * vocab, n * vocab);
      const present: KeyValue[] = [];
      for (let l = 0; l < arch.nLayer; l++) {
        const key = out[`present.${l}.key`], value = out[`present.${l}.value`];
        if (!key || !value || !(key.data instanceof Float32Array) || !(value.data instanceof Float32Array)) {
          throw new TypeError(
            `model ${model.id}: ONNX Runtime returned no float32 present.${l}.key/value; ` +
              "the export must have a KV cache (with-past decoder) for incremental decoding",
          );
        }
        present.push({
          key: { data: key.data, dims: [...key.dims] },
          value: { data: value.data, dims: [...value.dims] },
        });
      }
      return { logits: { data, dims: [rows, vocab] }, present };
    },
  };
}

const engineCache = new WeakMap<Model, Map<EngineName, Promise<Engine>>>();

/**
 * An engine for `model`. Engines are cached per model and name (unless `params` is given), so
 * asking again is free; the reference engine reads the weights once.
 *
 * @param model a causal LM from `loadModel()` (GPT-2 or LLaMA family; not `tokenizerOnly` for `onnx`)
 * @param options which engine (default `"onnx"`), and for `reference` optionally the weights
 * @returns the engine
 * @throws {RangeError} on an unknown engine name
 * @throws {TypeError} if the model is not a GPT-2/LLaMA decoder, or has no ONNX session for `onnx`
 * @example
 * ```ts ignore
 * import { loadModel } from "./load.ts";
 * import { createEngine } from "./engine.ts";
 * const model = await loadModel();
 * const ref = await createEngine(model, { engine: "reference" });
 * const { logits } = await ref.run([1, 2, 3], { logits: "last" });
 * console.log(logits.dims); // [1, vocab]
 * ```
 */
export async function createEngine(model: Model, options: CreateEngineOptions = {}): Promise<Engine> {
  const name = options.engine ?? "onnx";
  if (!ENGINE_NAMES.includes(name)) {
    throw new RangeError(`engine is ${JSON.stringify(name)}; expected one of ${ENGINE_NAMES.join(", ")}`);
  }
  const arch = archOf(model);
  if (options.params) {
    if (name !== "reference") {
      throw new RangeError(`options.params is only used by the "reference" engine, but engine is "${name}"`);
    }
    return referenceEngine(arch, options.params);
  }
  let byName = engineCache.get(model);
  if (!byName) engineCache.set(model, byName = new Map());
  let engine = byName.get(name);
  if (!engine) {
    // The model's own weights are private to the engines (no caller can change them), so the
    // reference engine may keep them packed in WebAssembly memory (lib/_pin.ts).
    engine = name === "onnx" ? onnxEngine(model, arch) : paramsOf(model).then((p) => {
      pinForwardWeights(arch, p);
      return referenceEngine(arch, p);
    });
    byName.set(name, engine);
    const forget = byName;
    engine.catch(() => forget.delete(name));
  }
  return await engine;
}
