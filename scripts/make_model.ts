/**
 * Makes the bundled model folder from scratch: trains a byte-level BPE
 * tokenizer on the Brown Corpus, initialises GPT-2 weights from a seed, and
 * exports the Hugging Face / transformers.js layout into `models/`.
 * (`deno task train --preset bundled` then replaces the random weights with trained ones.)
 *
 *   deno task make-model [--out DIR] [--seed N] [--vocab N] [--tiny]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { loadBrown } from "../lib/corpus.ts";
import { toTokenizerConfig, toTokenizerJson, trainBpe } from "../lib/bpe.ts";
import { initGpt2Params } from "../lib/train.ts";
import { createPrng } from "../lib/prng.ts";
import { exportModel } from "../lib/export.ts";
import { BUNDLED_ARCH } from "../lib/presets.ts";
import { bundledModelPath } from "../lib/load.ts";
import type { Gpt2Config } from "../lib/types.ts";

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    seed: { type: "string", default: "1" },
    vocab: { type: "string" },
    tiny: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log("deno task make-model [--out DIR] [--seed N] [--vocab N] [--tiny]");
  Deno.exit(0);
}
const seed = Number(values.seed);
if (!Number.isInteger(seed)) {
  console.error(`--seed must be an integer, got "${values.seed}"`);
  Deno.exit(2);
}
const out = values.out ?? bundledModelPath();
const config: Gpt2Config = values.tiny
  ? { ...BUNDLED_ARCH, vocabSize: 512, dModel: 32, nLayer: 2, nHead: 2, dMlp: 128, maxPositions: 64 }
  : { ...BUNDLED_ARCH };
if (values.vocab) config.vocabSize = Number(values.vocab);

const t0 = performance.now();
const corpus = await loadBrown(values.tiny ? { categories: ["news"] } : {});
const bpe = trainBpe(corpus.train, { vocabSize: config.vocabSize });
console.error(`tokenizer: ${bpe.vocab.length} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
config.vocabSize = bpe.vocab.length;
const eos = bpe.vocab.indexOf("<|endoftext|>");
const prng = createPrng(seed);
const params = initGpt2Params(config, () => prng.next());
const r = await exportModel(out, {
  config,
  params,
  tokenizer: { json: toTokenizerJson(bpe), config: toTokenizerConfig(bpe, { maxLength: config.maxPositions }) },
  eosTokenId: eos,
  bosTokenId: eos,
});
console.log(`wrote ${r.files.length} files to ${out} (onnx ${(r.onnxBytes / 1e6).toFixed(2)} MB)`);
console.log(join(out, "onnx", "model.onnx"));
