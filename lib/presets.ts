/**
 * Named architectures the kit uses: the bundled model's shape.
 *
 * @module
 */
import type { Gpt2Config } from "./types.ts";

/**
 * Shape of the bundled model `paramscope-gpt2-tiny`: a GPT-2 with a 12,288-token
 * byte-level BPE vocabulary, 96-wide residual stream, 4 blocks of 4 heads (24 wide) and
 * a 128-token context (about 1.6 M parameters, ~6.5 MB in fp32). It is small so that it trains
 * on two CPU cores within the time budget (`deno task train --preset bundled`). The vocabulary is large
 * for the model because it is the smallest at which a BPE trained on the Brown Corpus
 * keeps common words ("king", "queen", "moon", "Monday") whole, so their embeddings can be compared.
 *
 * @example
 * ```ts
 * import { BUNDLED_ARCH } from "@paramscope/kit/presets";
 * console.log(BUNDLED_ARCH.dModel / BUNDLED_ARCH.nHead); // 24 per head
 * ```
 */
export const BUNDLED_ARCH: Readonly<Gpt2Config> = Object.freeze({
  family: "gpt2",
  vocabSize: 12288,
  maxPositions: 128,
  dModel: 96,
  nLayer: 4,
  nHead: 4,
  dMlp: 384,
  normEps: 1e-5,
});
