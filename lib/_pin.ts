/**
 * Keeps a model's weights packed in WebAssembly memory for the reference
 * engine, so that decoding one token at a time does not copy and repack every
 * weight matrix at every step (which took most of a step's time).
 *
 * Safe only for weights nobody can change: `createEngine(model, { engine:
 * "reference" })` pins the private copy it reads with `loadParams`, never
 * weights a caller passes in.
 *
 * @module
 */
import { pinnedBytes, pinWeight, SIMD_MIN_WEIGHTS } from "./_kernels.ts";
import { expectedParamShapes } from "./forward.ts";
import type { ArchConfig, ParamMap } from "./types.ts";

/** Most bytes of pinned weights per thread: a few small models, never a copy of a large one. */
export const PIN_BUDGET_BYTES = 256 * 2 ** 20;

/**
 * Pins every matrix `forward()` multiplies by, as it multiplies (layer weights `[in, out]`; the
 * tied head reads `embed.tokens` transposed). When they do not all fit in what is left of
 * `budgetBytes`, none is pinned and `forward()` copies weights per call as before. Matrices too
 * small for the SIMD path (below `SIMD_MIN_WEIGHTS` elements) run in JavaScript and need no pin.
 *
 * @param config the architecture
 * @param params weights that will never change and that no caller can reach
 * @param budgetBytes most bytes of pinned weights this thread may hold in all
 * @returns whether every matrix that runs in SIMD is pinned
 * @example
 * ```ts
 * import { pinForwardWeights } from "./_pin.ts";
 * import { expectedParamShapes } from "./forward.ts";
 * import type { Gpt2Config, ParamMap } from "./types.ts";
 * const config: Gpt2Config = { family: "gpt2", vocabSize: 64, maxPositions: 8, dModel: 32, nLayer: 1, nHead: 2, dMlp: 128, normEps: 1e-5 };
 * const params: ParamMap = new Map();
 * for (const [name, dims] of expectedParamShapes(config)) params.set(name, { data: new Float32Array(dims.reduce((a, b) => a * b, 1)), dims });
 * console.log(pinForwardWeights(config, params)); // true (where WebAssembly SIMD runs)
 * ```
 */
export function pinForwardWeights(config: ArchConfig, params: ParamMap, budgetBytes = PIN_BUDGET_BYTES): boolean {
  const matrices: [Float32Array, number, number, boolean][] = [];
  for (const [name, dims] of expectedParamShapes(config)) {
    const t = params.get(name);
    if (!t) return false;
    if (/^blocks\.\d+\..*\.weight$/.test(name) || name === "head.weight") {
      matrices.push([t.data, dims[0], dims[1], false]);
    }
  }
  const tied = config.family === "gpt2" || config.tieWordEmbeddings;
  if (tied) matrices.push([params.get("embed.tokens")!.data, config.dModel, config.vocabSize, true]);
  // Room for all of them (outputs padded to 16 columns), or none.
  const need = matrices.reduce((s, [, k, n]) => s + 4 * k * Math.ceil(n / 16) * 16, 0);
  if (pinnedBytes() + need > budgetBytes) return false;
  return matrices.every(([w, k, n, transposed]) =>
    pinWeight(w, k, n, transposed, budgetBytes) || k * n < SIMD_MIN_WEIGHTS
  );
}
