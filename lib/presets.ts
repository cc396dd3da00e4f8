/**
 * Named architectures the kit uses: the bundled model's shape.
 *
 * @module
 */
import type { Gpt2Config } from "./types.ts";

/**
 * Shape of the bundled model `paramscope-gpt2-tiny`: a GPT-2 with a 4,096-token
 * byte-level BPE vocabulary, 128-wide residual stream, 4 blocks of 4 heads and
 * a 128-token context (about 1.3 M parameters, ~5 MB in fp32).
 *
 * @example
 * ```ts
 * import { BUNDLED_ARCH } from "@paramscope/kit/presets";
 * console.log(BUNDLED_ARCH.dModel / BUNDLED_ARCH.nHead); // 32 per head
 * ```
 */
export const BUNDLED_ARCH: Readonly<Gpt2Config> = Object.freeze({
  family: "gpt2",
  vocabSize: 4096,
  maxPositions: 128,
  dModel: 128,
  nLayer: 4,
  nHead: 4,
  dMlp: 512,
  normEps: 1e-5,
});
