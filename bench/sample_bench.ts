/**
 * Cost of one sampling step over a GPT-2-sized vocabulary (50257 logits), per
 * filter combination, against `softmax()` alone as the baseline measured in the
 * same run, plus a naive nucleus (sort all indices, then walk) to show what the
 * bucketed partial sort in `topP` saves. Run: `deno bench bench/sample_bench.ts`.
 */
import { chooseToken, samplingDistribution, softmax } from "../lib/sample.ts";
import { createPrng } from "../lib/prng.ts";

const VOCAB = 50257;
const init = createPrng(0);
const logits = Float32Array.from({ length: VOCAB }, () => init.normal(0, 3));
const prng = createPrng(1);
const previousIds = Array.from({ length: 256 }, (_, i) => (i * 193) % VOCAB);

Deno.bench("softmax (baseline)", { group: "step", baseline: true }, () => {
  softmax(logits);
});
Deno.bench("chooseToken greedy", { group: "step" }, () => {
  chooseToken(logits, { temperature: 0 });
});
Deno.bench("chooseToken temperature 0.8", { group: "step" }, () => {
  chooseToken(logits, { temperature: 0.8, prng });
});
Deno.bench("chooseToken topK 50", { group: "step" }, () => {
  chooseToken(logits, { topK: 50, prng });
});
Deno.bench("chooseToken topP 0.9", { group: "step" }, () => {
  chooseToken(logits, { topP: 0.9, prng });
});
Deno.bench("chooseToken topK 50 + topP 0.9 + minP 0.05 + penalty", { group: "step" }, () => {
  chooseToken(logits, { temperature: 0.8, topK: 50, topP: 0.9, minP: 0.05, repetitionPenalty: 1.2, previousIds, prng });
});
Deno.bench("samplingDistribution all steps (plots)", { group: "step" }, () => {
  samplingDistribution(logits, {
    temperature: 0.8,
    topK: 50,
    topP: 0.9,
    minP: 0.05,
    repetitionPenalty: 1.2,
    previousIds,
  });
});

Deno.bench("naive nucleus: full sort of every index (comparison)", { group: "step" }, () => {
  const p = softmax(logits);
  const order = Array.from({ length: VOCAB }, (_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  let cum = 0;
  for (const i of order) if ((cum += p[i]) >= 0.9) break;
});
