/**
 * Encode throughput of `encode()` (lib/bpe.ts) against transformers.js' GPT2Tokenizer built from the same
 * tokenizer.json, on the Brown validation split, in the same run; plus the time `trainBpe()` takes.
 *
 * Run: `deno run -A bench/bpe_bench.ts [--vocab 4096] [--docs 50] [--reps 3] [--json]`
 * (`--docs 5 --reps 1` is the tiny setting).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { GPT2Tokenizer } from "@huggingface/transformers";
import { type BpeModel, encode, toTokenizerConfig, toTokenizerJson, trainBpe } from "../lib/bpe.ts";
import { loadBrown } from "../lib/corpus.ts";

const { values } = parseArgs({
  options: {
    vocab: { type: "string", default: "4096" },
    docs: { type: "string", default: "50" },
    reps: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
  },
});
const vocabSize = Number(values.vocab), docs = Number(values.docs), reps = Number(values.reps);

const brown = await loadBrown();
let t0 = performance.now();
const model = trainBpe(brown.train, { vocabSize });
const trainMs = performance.now() - t0;
const texts = brown.valid.slice(0, docs);
const chars = texts.reduce((n, t) => n + t.length, 0);

const hf = () =>
  new GPT2Tokenizer(
    JSON.parse(JSON.stringify(toTokenizerJson(model))),
    JSON.parse(JSON.stringify(toTokenizerConfig(model))),
  );
const ours = (): BpeModel => structuredClone(model); // a fresh object starts with an empty pre-token cache

/** Milliseconds to encode all texts: the first pass on a fresh tokenizer (cold caches), then the best of `reps`. */
function time(fresh: () => (s: string) => number[]): { coldMs: number; warmMs: number; tokens: number } {
  const enc = fresh();
  let tokens = 0;
  t0 = performance.now();
  for (const t of texts) tokens += enc(t).length;
  const coldMs = performance.now() - t0;
  let warmMs = Infinity;
  for (let r = 0; r < reps; r++) {
    t0 = performance.now();
    for (const t of texts) enc(t);
    warmMs = Math.min(warmMs, performance.now() - t0);
  }
  return { coldMs, warmMs, tokens };
}

const a = time(() => {
  const m = ours();
  return (s) => encode(m, s);
});
const b = time(() => {
  const tok = hf();
  return (s) => tok.encode(s);
});
if (a.tokens !== b.tokens) throw new Error(`token counts differ: ours ${a.tokens}, transformers.js ${b.tokens}`);

const mb = chars / 1e6;
const result = {
  vocabSize: model.vocab.length,
  merges: model.merges.length,
  trainDocs: brown.train.length,
  trainMs: Math.round(trainMs),
  encodeChars: chars,
  tokens: a.tokens,
  charsPerToken: +(chars / a.tokens).toFixed(3),
  ours: { coldMBps: +(mb / (a.coldMs / 1e3)).toFixed(2), warmMBps: +(mb / (a.warmMs / 1e3)).toFixed(2) },
  transformersJs: { coldMBps: +(mb / (b.coldMs / 1e3)).toFixed(2), warmMBps: +(mb / (b.warmMs / 1e3)).toFixed(2) },
  speedup: { cold: +(b.coldMs / a.coldMs).toFixed(2), warm: +(b.warmMs / a.warmMs).toFixed(2) },
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(
    `trainBpe: ${result.merges} merges, vocab ${result.vocabSize}, ${result.trainDocs} Brown documents in ${result.trainMs} ms`,
  );
  console.log(`encode ${mb.toFixed(2)} MB (${result.tokens} tokens, ${result.charsPerToken} chars/token):`);
  console.table({
    "lib/bpe.ts encode()": { "cold MB/s": result.ours.coldMBps, "warm MB/s": result.ours.warmMBps },
    "transformers.js GPT2Tokenizer": {
      "cold MB/s": result.transformersJs.coldMBps,
      "warm MB/s": result.transformersJs.warmMBps,
    },
  });
  console.log(
    `encode() is ${result.speedup.cold}x (cold) and ${result.speedup.warm}x (warm) as fast as transformers.js`,
  );
}
