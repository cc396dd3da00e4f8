/**
 * The kit's main job in one command: load a model (the bundled one unless
 * `--model` says otherwise), print its parameter count, tokenize a sentence,
 * and show the five most likely next tokens.
 *
 *   deno task demo [--model ID|PATH] [--text "..."] [--dtype fp32|fp16|q8|q4] [--offline]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Dtype, loadModel, ModelLoadError, progressBar } from "../lib/load.ts";
import { countModel } from "../lib/count.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    text: { type: "string", default: "The king and the queen sat at the table in the" },
    dtype: { type: "string", default: "fp32" },
    offline: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log('deno task demo [--model ID|PATH] [--text "..."] [--dtype fp32|fp16|q8|q4] [--offline]');
  Deno.exit(0);
}

try {
  const m = await loadModel(values.model, {
    dtype: values.dtype as Dtype,
    offline: values.offline,
    onProgress: progressBar(),
  });
  const count = await countModel(m);
  console.log(`model      ${m.id} (${m.source}, ${m.config.model_type}, ${m.dtype})`);
  console.log(`weights    ${m.onnxPath}`);
  const tied = count.tied.length ? ` (${count.tied.join(", ")} tied to the embedding, counted once)` : "";
  console.log(`parameters ${count.total.toLocaleString("en-US")}${tied}; ${count.excluded.length} constants excluded`);
  const ids = Array.from(m.tokenizer.encode(values.text));
  console.log(`text       ${JSON.stringify(values.text)}`);
  console.log(`tokens     ${ids.length}: ${ids.map((id) => JSON.stringify(m.tokenizer.decode([id]))).join(" ")}`);
  console.log(`ids        ${ids.join(" ")}`);
  const inputs = m.tokenizer(values.text);
  const out = await m.model!(inputs);
  const logits = out.logits;
  const [, seq, vocab] = logits.dims as number[];
  const last = (logits.data as Float32Array).subarray((seq - 1) * vocab, seq * vocab);
  let max = -Infinity;
  for (const v of last) max = Math.max(max, v);
  let z = 0;
  for (const v of last) z += Math.exp(v - max);
  const order = Array.from(last.keys()).sort((a, b) => last[b] - last[a]).slice(0, 5);
  console.log("next token (top 5):");
  for (const id of order) {
    const p = Math.exp(last[id] - max) / z;
    console.log(
      `  ${(100 * p).toFixed(2).padStart(6)}%  ${String(id).padStart(5)}  ${JSON.stringify(m.tokenizer.decode([id]))}`,
    );
  }
  await m.dispose();
} catch (e) {
  if (e instanceof ModelLoadError) {
    console.error(`error: ${e.message}`);
    Deno.exit(1);
  }
  throw e;
}
