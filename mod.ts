/**
 * paramscope: see what a large language model's parameters are.
 *
 * Load a model (the bundled one, a local folder, or a hub id), read its
 * weights straight from the ONNX file transformers.js runs, count them, step
 * through the forward pass, sample the next token, and plot what you find.
 *
 * @example
 * ```ts
 * import { loadModel } from "@paramscope/kit";
 * const model = await loadModel(); // bundled GPT-2, offline
 * console.log(model.config.n_layer, model.tokenizer.encode("Hello"));
 * await model.dispose();
 * ```
 *
 * @module
 */
export * from "./lib/types.ts";
export * from "./lib/load.ts";
export * from "./lib/onnx.ts";
export * from "./lib/export.ts";
export * from "./lib/presets.ts";
export * from "./lib/count.ts";
export * from "./lib/catalog.ts";
export * from "./lib/prng.ts";
export * from "./lib/sample.ts";
export * from "./lib/tokenize.ts";
export * from "./lib/bpe.ts";
export * from "./lib/corpus.ts";
export * from "./lib/train.ts";
export * from "./lib/ngram.ts";
export * from "./lib/forward.ts";
export * from "./lib/quantize.ts";
export * from "./lib/plot.ts";
export * from "./lib/embed.ts";
export * from "./lib/weights.ts";
export * from "./lib/engine.ts";
export * from "./lib/generate.ts";
export * from "./lib/umap.ts";
