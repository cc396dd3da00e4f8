/**
 * The reference forward pass against ONNX Runtime on the bundled model, and the
 * kit's generate() against transformers.js's generate(), measured in one run.
 *
 * 1. Forward over 64 tokens (all logits, no cache): reference engine
 *    (TypeScript, one thread, the model's weights pinned in WebAssembly memory
 *    as `createEngine` keeps them) vs the `onnx` engine on an ONNX Runtime session
 *    created with `intraOpNumThreads: 1, interOpNumThreads: 1` (transformers.js
 *    `session_options`), so both use one core. Also ONNX Runtime with its
 *    default threads, for context. Goal: reference ≤ 3× ONNX Runtime (1 thread).
 * 2. 64 new tokens, greedy, no EOS stop: `generateText()` on the `onnx` engine
 *    vs transformers.js `model.generate({ max_new_tokens: 64, do_sample: false })`
 *    on the same single-thread session (both must produce the same ids). Goal: ≤ 1.1×.
 *
 * The functions of a comparison run in turns; the table shows each one's fastest time and, as the
 * ratio, the median over rounds of its time divided by the baseline's time in the same round.
 *
 * Run: `deno run --allow-read --allow-env --allow-ffi bench/parity_bench.ts [--tiny] [--json]`.
 * `--tiny` uses the kit's tiny GPT-2 export (16 tokens, 16 new tokens) for CI.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { AutoModelForCausalLM, Tensor } from "@huggingface/transformers";
import { createEngine } from "../lib/engine.ts";
import { generateText } from "../lib/generate.ts";
import { loadModel, type Model } from "../lib/load.ts";
import { createPrng } from "../lib/prng.ts";
import { exportModel } from "../lib/export.ts";
import { expectedParamShapes } from "../lib/forward.ts";
import { toTokenizerConfig, toTokenizerJson, trainBpe } from "../lib/bpe.ts";
import type { Gpt2Config, ParamMap } from "../lib/types.ts";

const { values } = parseArgs({
  options: {
    tiny: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log("usage: parity_bench.ts [--tiny] [--json]");
  Deno.exit(0);
}

const TOKENS = values.tiny ? 16 : 64;
const NEW_TOKENS = values.tiny ? 16 : 64;
const MIN_MS = values.tiny ? 150 : 5000;

/** Fastest time of each function and, for each, the median over rounds of its time divided by the first's. */
interface Timing {
  ms: number[];
  ratio: number[];
}

/**
 * Times functions in turns (a, b, c, a, b, c, ...) over at least `minMs` of rounds, after a warm-up.
 * This machine is shared, and load from other processes comes in bursts: the functions of one round
 * run within milliseconds of each other and see the same load, so the median of the per-round
 * ratios is steady where a ratio of two separately timed minimums swings with the bursts.
 */
async function timeInterleaved(fns: (() => Promise<unknown>)[], minMs: number): Promise<Timing> {
  const warm = performance.now();
  for (let i = 0; i < 3 || performance.now() - warm < minMs / 4; i++) for (const f of fns) await f();
  const times: number[][] = fns.map(() => []);
  const start = performance.now();
  for (let round = 0; round < 5 || performance.now() - start < minMs; round++) {
    for (const [k, f] of fns.entries()) {
      const t0 = performance.now();
      await f();
      times[k].push(performance.now() - t0);
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  return {
    ms: times.map((t) => Math.min(...t)),
    ratio: times.map((t) => median(t.map((x, r) => x / times[0][r]))),
  };
}

/** The tiny setting: a seeded GPT-2 (2 layers, d_model 32, context 32) exported with a byte tokenizer. */
async function tinyModelFolder(): Promise<string> {
  const config: Gpt2Config = {
    family: "gpt2",
    vocabSize: 257,
    maxPositions: 32,
    dModel: 32,
    nLayer: 2,
    nHead: 4,
    dMlp: 128,
    normEps: 1e-5,
  };
  const prng = createPrng(1);
  const params: ParamMap = new Map();
  for (const [name, dims] of expectedParamShapes(config)) {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = name.endsWith("gain") ? 1 : prng.normal(0, 0.1);
    params.set(name, { data, dims });
  }
  const bpe = trainBpe(["a"], { vocabSize: 257 });
  const dir = await Deno.makeTempDir({ prefix: "paramscope-parity-bench-" });
  await exportModel(dir, {
    config,
    params,
    tokenizer: { json: toTokenizerJson(bpe), config: toTokenizerConfig(bpe, { maxLength: 32 }) },
    eosTokenId: 256,
  });
  return dir;
}

const tinyDir = values.tiny ? await tinyModelFolder() : undefined;
const base = await loadModel(tinyDir);
// A second ONNX Runtime session over the same file, pinned to one thread.
const single = await AutoModelForCausalLM.from_pretrained(base.dir, {
  dtype: "fp32",
  local_files_only: true,
  session_options: { intraOpNumThreads: 1, interOpNumThreads: 1 },
});
const model1: Model = { ...base, model: single };

const arch = base.arch!;
const prng = createPrng(42);
const ids = Array.from({ length: TOKENS }, () => prng.nextInt(arch.vocabSize));
const promptIds = ids.slice(0, 8);

const reference = await createEngine(base, { engine: "reference" });
const ortDefault = await createEngine(base, { engine: "onnx" });
const ort1 = await createEngine(model1, { engine: "onnx" });

interface Row {
  what: string;
  engine: string;
  ms: number;
  ratio: string;
  goal: string;
}
const rows: Row[] = [];

// 1. Forward over TOKENS tokens.
const fwd = await timeInterleaved(
  [() => ort1.run(ids), () => reference.run(ids), () => ortDefault.run(ids)],
  MIN_MS,
);
const fw = `forward ${TOKENS} tokens`;
rows.push({ what: fw, engine: "ONNX Runtime, 1 thread", ms: fwd.ms[0], ratio: "1.00×", goal: "" });
rows.push({
  what: fw,
  engine: "reference (TypeScript)",
  ms: fwd.ms[1],
  ratio: `${fwd.ratio[1].toFixed(2)}×`,
  goal: `≤ 3× ${fwd.ratio[1] <= 3 ? "met" : "NOT met"}`,
});
rows.push({
  what: fw,
  engine: "ONNX Runtime, default threads",
  ms: fwd.ms[2],
  ratio: `${fwd.ratio[2].toFixed(2)}×`,
  goal: "",
});

// 2. NEW_TOKENS greedy tokens.
const input_ids = new Tensor("int64", BigInt64Array.from(promptIds.map(BigInt)), [1, promptIds.length]);
const attention_mask = new Tensor("int64", new BigInt64Array(promptIds.length).fill(1n), [1, promptIds.length]);
const hfGenerate = async (): Promise<number[]> => {
  const out = await single.generate({
    input_ids,
    attention_mask,
    max_new_tokens: NEW_TOKENS,
    do_sample: false,
    eos_token_id: null,
  } as Record<string, unknown>);
  return (out as unknown as { tolist(): bigint[][] }).tolist()[0].slice(promptIds.length).map(Number);
};
const ours = (engine: "onnx" | "reference") => () =>
  generateText(model1, promptIds, { temperature: 0, maxTokens: NEW_TOKENS, eosTokenIds: [], engine });
const [hfIds, ourIds] = [await hfGenerate(), (await ours("onnx")()).ids];
if (hfIds.join() !== ourIds.join()) {
  console.error("generate() and transformers.js generate() disagree:", hfIds, ourIds);
  Deno.exit(1);
}
const g = await timeInterleaved([hfGenerate, ours("onnx"), ours("reference")], MIN_MS);
const gen = `generate ${NEW_TOKENS} new tokens (greedy)`;
rows.push({ what: gen, engine: "transformers.js generate(), 1 thread", ms: g.ms[0], ratio: "1.00×", goal: "" });
rows.push({
  what: gen,
  engine: "kit generate(), onnx engine, 1 thread",
  ms: g.ms[1],
  ratio: `${g.ratio[1].toFixed(2)}×`,
  goal: `≤ 1.1× ${g.ratio[1] <= 1.1 ? "met" : "NOT met"}`,
});
rows.push({
  what: gen,
  engine: "kit generate(), reference engine",
  ms: g.ms[2],
  ratio: `${g.ratio[2].toFixed(2)}×`,
  goal: "",
});

await single.dispose();
await base.dispose();
if (tinyDir) await Deno.remove(tinyDir, { recursive: true });

if (values.json) console.log(JSON.stringify({ model: base.id, tokens: TOKENS, newTokens: NEW_TOKENS, rows }, null, 2));
else {
  const header = ["what", "engine", "ms", "ratio", "goal"];
  const cells = rows.map((r) => [r.what, r.engine, r.ms.toFixed(2), r.ratio, r.goal]);
  const width = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)));
  const line = (row: string[]) => row.map((x, c) => x.padEnd(width[c])).join("  ").trimEnd();
  console.log(
    `model ${base.id} (${arch.family}, d_model ${arch.dModel}, ${arch.nLayer} layers, vocab ${arch.vocabSize})`,
  );
  console.log(line(header) + "   (ms: fastest run; ratio: median of per-round ratios)");
  for (const row of cells) console.log(line(row));
}
