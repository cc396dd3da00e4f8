/**
 * Named architectures the kit uses: the bundled model's shape.
 *
 * @module
 */
import type { Gpt2Config } from "./types.ts";

/**
 * Shape of the bundled model `paramscope-gpt2-tiny`: a GPT-2 with a 4,096-token
 * byte-level BPE vocabulary, 96-wide residual stream, 4 blocks of 4 heads (24 wide) and
 * a 128-token context (about 0.85 M parameters, ~3.5 MB in fp32). It is small so that it sees the
 * Brown Corpus several times on two CPU cores within the time budget (`deno task train --preset bundled`).
 * The vocabulary is small for the same reason: at 4,096 tokens words such as "table", "water" and "red" are
 * whole, while rarer ones ("king", "Monday") split in two or three pieces; the BPE trainer keeps them whole
 * from 12,288 tokens up, which costs three times the head compute per token.
 *
 * @example
 * ```ts
 * import { BUNDLED_ARCH } from "@paramscope/kit/presets";
 * console.log(BUNDLED_ARCH.dModel / BUNDLED_ARCH.nHead); // 24 per head
 * ```
 */
export const BUNDLED_ARCH: Readonly<Gpt2Config> = Object.freeze({
  family: "gpt2",
  vocabSize: 4096,
  maxPositions: 128,
  dModel: 96,
  nLayer: 4,
  nHead: 4,
  dMlp: 384,
  normEps: 1e-5,
});
