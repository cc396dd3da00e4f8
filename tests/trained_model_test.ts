/**
 * The bundled model has really learned English. The word groups below were
 * chosen before the model was trained (see this file's first commit) and
 * none of them steered any training decision.
 */
import { assert, assertGreater } from "@std/assert";
import { join } from "node:path";
import { bundledModelPath, loadModel } from "../lib/load.ts";
import { readOnnx, tensorValues } from "../lib/onnx.ts";

const GROUPS: Record<string, string[]> = {
  days: ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
  months: [
    "January",
    "February",
    "March",
    "April",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
  ],
  numbers: ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"],
  colours: ["red", "blue", "green", "yellow", "black", "white", "brown", "gray"],
  family: ["mother", "father", "brother", "sister", "son", "daughter", "wife", "husband", "uncle", "aunt"],
};

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

Deno.test("the bundled model is the trained one, and its card reports beating the bigram baseline", async () => {
  const figures = JSON.parse(await Deno.readTextFile(join(bundledModelPath(), "training.json")));
  assert(figures.heldOut.perplexity < figures.bigram.perplexity, JSON.stringify(figures.heldOut));
  assert(figures.bigram.perplexity < figures.unigram.perplexity);
  const card = await Deno.readTextFile(join(bundledModelPath(), "README.md"));
  assert(card.includes(figures.heldOut.perplexity.toFixed(1)), "the model card states the measured perplexity");
});

Deno.test("the bundled model's embeddings group related words (within-group cosine > across-group)", async () => {
  const model = await loadModel(undefined, { tokenizerOnly: true });
  const onnx = await readOnnx(model.onnxPath);
  const wte = tensorValues(onnx, "transformer.wte.weight");
  const [, d] = wte.dims;
  const table = wte.data as Float32Array;
  // A word is " word" (GPT-2 tokens carry their leading space); several tokens are averaged.
  const vec = (word: string) => {
    const ids = Array.from(model.tokenizer.encode(" " + word));
    const v = new Float32Array(d);
    for (const id of ids) for (let i = 0; i < d; i++) v[i] += table[id * d + i] / ids.length;
    return v;
  };
  const vecs = Object.fromEntries(Object.entries(GROUPS).map(([g, ws]) => [g, ws.map(vec)]));
  const names = Object.keys(GROUPS);
  let acrossSum = 0, acrossN = 0, withinSum = 0, withinN = 0;
  const within: Record<string, number> = {};
  for (const g of names) {
    let s = 0, n = 0;
    const vs = vecs[g];
    for (let i = 0; i < vs.length; i++) for (let j = i + 1; j < vs.length; j++) s += cosine(vs[i], vs[j]), n++;
    within[g] = s / n;
    withinSum += s;
    withinN += n;
    for (const h of names) {
      if (h <= g) continue;
      for (const a of vs) for (const b of vecs[h]) acrossSum += cosine(a, b), acrossN++;
    }
  }
  const across = acrossSum / acrossN;
  console.log(
    `mean cosine across groups ${across.toFixed(3)}; within: ${
      names.map((g) => `${g} ${within[g].toFixed(3)}`).join(", ")
    }`,
  );
  assertGreater(withinSum / withinN, across);
  for (const g of names) assertGreater(within[g], across, `group ${g}`);
});
