/**
 * Generate text after a prompt, streamed to stdout as it is sampled.
 *
 * ```sh
 * deno run --allow-read --allow-env --allow-ffi scripts/generate.ts --prompt "Once upon a time"
 * deno run --allow-read --allow-env --allow-ffi scripts/generate.ts --prompt "The" --temperature 0 --max-tokens 20 --json
 * deno run --allow-read --allow-env --allow-ffi scripts/generate.ts --prompt "Hi" --temperature 0.8 --top-p 0.9 --seed 7
 * ```
 *
 * Sampling is seeded (`--seed`, default 0): the same flags always print the
 * same text. `--temperature 0` is greedy decoding. Without `--json` the prompt
 * and then each new piece of text are written as they come, followed by a
 * newline and a one-line summary on stderr. `--json` prints
 * `{ prompt, prompt_ids, added_bos, ids, text, finish_reason, warnings }`, where
 * `ids` are the generated ids only. Exit codes: 0 ok, 2 bad usage (an invalid
 * option, a prompt that fills the context without `--truncate`) or a model that
 * cannot be loaded.
 *
 * @module
 */
import { ENGINE_NAMES, type EngineName } from "../lib/engine.ts";
import { generate, type GenerateOptions, type GenerateResult } from "../lib/generate.ts";
import { loadModel } from "../lib/load.ts";
import { fail, parseFlags } from "./_cli.ts";

const USAGE = `usage: generate.ts --prompt TEXT [--model ID|PATH] [--temperature T] [--top-k K] [--top-p P] [--min-p M]
                   [--repetition-penalty R] [--seed S] [--max-tokens N] [--stop TEXT]... [--engine onnx|reference]
                   [--truncate] [--json]
  --prompt TEXT              the text to continue (required, non-empty)
  --model ID|PATH            a model folder or hub id (default: the bundled model)
  --temperature T            0 = greedy; default 1
  --top-k K                  keep the K most likely tokens (default: off)
  --top-p P                  nucleus sampling mass in (0, 1] (default 1: off)
  --min-p M                  keep tokens at least M times as likely as the best (default 0: off)
  --repetition-penalty R     > 1 discourages repeating prompt and generated tokens (default 1: off)
  --seed S                   seed of the sampler (default 0)
  --max-tokens N             most tokens to generate (default 32)
  --stop TEXT                stop when the text contains TEXT (repeatable)
  --engine NAME              onnx (ONNX Runtime, default) or reference (the kit's TypeScript forward pass)
  --truncate                 drop prompt tokens from the left when the prompt and N tokens exceed the context
  --json                     print { prompt, prompt_ids, added_bos, ids, text, finish_reason, warnings }`;

function numberFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || Number.isNaN(n)) fail(`--${name} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    prompt: { type: "string" },
    model: { type: "string" },
    temperature: { type: "string" },
    "top-k": { type: "string" },
    "top-p": { type: "string" },
    "min-p": { type: "string" },
    "repetition-penalty": { type: "string" },
    seed: { type: "string" },
    "max-tokens": { type: "string" },
    stop: { type: "string", multiple: true },
    engine: { type: "string", default: "onnx" },
    truncate: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  if (flags.prompt === undefined) fail(`--prompt is required\n${USAGE}`);
  if (flags.prompt.length === 0) fail("--prompt is empty; give at least one character");
  if (!ENGINE_NAMES.includes(flags.engine as EngineName)) {
    fail(`--engine must be one of ${ENGINE_NAMES.join(", ")}, got ${JSON.stringify(flags.engine)}`);
  }
  const options: GenerateOptions = {
    temperature: numberFlag("temperature", flags.temperature),
    topK: numberFlag("top-k", flags["top-k"]),
    topP: numberFlag("top-p", flags["top-p"]),
    minP: numberFlag("min-p", flags["min-p"]),
    repetitionPenalty: numberFlag("repetition-penalty", flags["repetition-penalty"]),
    seed: numberFlag("seed", flags.seed),
    maxTokens: numberFlag("max-tokens", flags["max-tokens"]),
    stop: flags.stop,
    engine: flags.engine as EngineName,
    overflow: flags.truncate ? "truncate" : "error",
  };

  let model;
  try {
    model = await loadModel(flags.model);
  } catch (e) {
    fail(`cannot load ${flags.model ?? "the bundled model"}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const encoder = new TextEncoder();
  const write = (s: string) => {
    if (s) Deno.stdout.writeSync(encoder.encode(s));
  };
  try {
    let it;
    try {
      it = generate(model, flags.prompt, options);
    } catch (e) {
      if (e instanceof RangeError || e instanceof TypeError) fail(e.message);
      throw e;
    }
    if (!flags.json) write(flags.prompt);
    let result: GenerateResult;
    for (;;) {
      const step = await it.next();
      if (step.done) {
        result = step.value;
        break;
      }
      if (!flags.json) write(step.value.text);
    }
    if (flags.json) {
      console.log(JSON.stringify(
        {
          prompt: flags.prompt,
          prompt_ids: result.promptIds,
          added_bos: result.addedBos,
          ids: result.ids,
          text: result.text,
          finish_reason: result.finishReason,
          warnings: result.warnings,
        },
        null,
        2,
      ));
    } else {
      write("\n");
      for (const w of result.warnings) console.error(`warning: ${w}`);
      console.error(
        `[${result.ids.length} tokens, ${result.finishReason}, engine ${result.engine}, ` +
          `prompt ${result.promptIds.length} tokens, BOS added: ${result.addedBos ? "yes" : "no"}]`,
      );
    }
  } finally {
    await model.dispose();
  }
}

if (import.meta.main) await main(Deno.args);
