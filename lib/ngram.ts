/**
 * Count-based baselines a trained model must beat: unigram and bigram
 * language models estimated on training tokens and scored on held-out tokens
 * (perplexity = exp of the mean negative log-likelihood per token).
 *
 * The bigram model uses interpolated Kneser–Ney smoothing (absolute discount
 * `d`, continuation unigram), the standard strong count baseline; the unigram
 * model uses add-one (Laplace) smoothing so unseen tokens keep a probability.
 *
 * @module
 */

/** Result of scoring held-out tokens. */
export interface NgramResult {
  /** Mean negative log-likelihood per predicted token, in nats. */
  loss: number;
  /** `exp(loss)`. */
  perplexity: number;
  /** Tokens scored. */
  tokens: number;
}

function check(train: Int32Array, test: Int32Array, vocabSize: number): void {
  if (!Number.isInteger(vocabSize) || vocabSize < 1) {
    throw new RangeError(`vocabSize must be a positive integer, got ${vocabSize}`);
  }
  if (train.length < 2) throw new RangeError(`training tokens are empty (${train.length}); pass a real corpus`);
  if (test.length < 2) throw new RangeError(`held-out tokens are empty (${test.length}); pass a real held-out split`);
  for (const arr of [train, test]) {
    for (let i = 0; i < arr.length; i++) {
      if (arr[i] < 0 || arr[i] >= vocabSize) {
        throw new RangeError(`token id ${arr[i]} at index ${i} is outside the vocabulary [0, ${vocabSize})`);
      }
    }
  }
}

/**
 * Add-one unigram perplexity: `p(w) = (c(w) + 1) / (N + V)`. Scores every
 * held-out token after the first (the same positions a bigram or a
 * transformer predicts).
 *
 * @param train training token ids
 * @param test held-out token ids
 * @param vocabSize vocabulary size `V`
 * @returns loss and perplexity on `test`
 * @throws {RangeError} for empty inputs or ids outside the vocabulary
 *
 * @example
 * ```ts
 * import { unigramPerplexity } from "@paramscope/kit/ngram";
 * const r = unigramPerplexity(new Int32Array([0, 1, 1, 2]), new Int32Array([1, 1]), 3);
 * console.log(r.perplexity.toFixed(3)); // 2.333
 * ```
 */
export function unigramPerplexity(train: Int32Array, test: Int32Array, vocabSize: number): NgramResult {
  check(train, test, vocabSize);
  const counts = new Float64Array(vocabSize);
  for (const t of train) counts[t]++;
  const denom = train.length + vocabSize;
  let nll = 0;
  for (let i = 1; i < test.length; i++) nll -= Math.log((counts[test[i]] + 1) / denom);
  const loss = nll / (test.length - 1);
  return { loss, perplexity: Math.exp(loss), tokens: test.length - 1 };
}

/**
 * An interpolated Kneser–Ney bigram model estimated from training tokens:
 * `p(w|v) = max(c(v,w) − d, 0)/c(v) + d·N₁₊(v·)/c(v) · p_cont(w)`, with
 * `p_cont(w) = N₁₊(·w)/N₁₊(··)` mixed with a uniform floor (weight `1e-6`)
 * so a token never seen as a continuation keeps a probability; an unseen
 * history `v` falls back to `p_cont`. For every `v`, `p(·|v)` sums to 1.
 *
 * @param train training token ids
 * @param vocabSize vocabulary size
 * @param discount absolute discount `d` in (0, 1) (default 0.75)
 * @returns `prob(v, w)`, the probability of `w` after `v`
 * @throws {RangeError} for empty input, ids outside the vocabulary, or a discount outside (0, 1)
 *
 * @example
 * ```ts
 * import { bigramModel } from "@paramscope/kit/ngram";
 * const p = bigramModel(new Int32Array([0, 1, 0, 1, 0, 1, 2]), 3);
 * console.log(p(0, 1) > p(0, 2)); // true
 * ```
 */
export function bigramModel(train: Int32Array, vocabSize: number, discount = 0.75): (v: number, w: number) => number {
  check(train, train, vocabSize);
  if (!(discount > 0 && discount < 1)) throw new RangeError(`discount must be in (0, 1), got ${discount}`);
  const pairs = new Map<number, number>(); // key v·V + w → count
  const history = new Float64Array(vocabSize); // c(v) as a history
  for (let i = 1; i < train.length; i++) {
    const key = train[i - 1] * vocabSize + train[i];
    pairs.set(key, (pairs.get(key) ?? 0) + 1);
    history[train[i - 1]]++;
  }
  const followers = new Float64Array(vocabSize); // N₁₊(v·)
  const continuation = new Float64Array(vocabSize); // N₁₊(·w)
  for (const key of pairs.keys()) {
    followers[Math.floor(key / vocabSize)]++;
    continuation[key % vocabSize]++;
  }
  const types = pairs.size;
  const floor = 1e-6;
  const pCont = (w: number) => (1 - floor) * continuation[w] / types + floor / vocabSize;
  return (v: number, w: number): number => {
    if (history[v] === 0) return pCont(w);
    const c = pairs.get(v * vocabSize + w) ?? 0;
    return Math.max(c - discount, 0) / history[v] + (discount * followers[v] / history[v]) * pCont(w);
  };
}

/**
 * Held-out perplexity of the interpolated Kneser–Ney bigram model of
 * {@linkcode bigramModel} trained on `train`.
 *
 * @param train training token ids
 * @param test held-out token ids
 * @param vocabSize vocabulary size
 * @param discount absolute discount `d` in (0, 1) (default 0.75)
 * @returns loss and perplexity on `test`
 * @throws {RangeError} for empty inputs, ids outside the vocabulary, or a discount outside (0, 1)
 *
 * @example
 * ```ts
 * import { bigramPerplexity } from "@paramscope/kit/ngram";
 * const train = new Int32Array([0, 1, 0, 1, 0, 1, 2]);
 * const r = bigramPerplexity(train, new Int32Array([0, 1, 0, 1]), 3);
 * console.log(r.perplexity < 2); // true: "1 follows 0" was learned
 * ```
 */
export function bigramPerplexity(train: Int32Array, test: Int32Array, vocabSize: number, discount = 0.75): NgramResult {
  check(train, test, vocabSize);
  const p = bigramModel(train, vocabSize, discount);
  let nll = 0;
  for (let i = 1; i < test.length; i++) nll -= Math.log(p(test[i - 1], test[i]));
  const loss = nll / (test.length - 1);
  return { loss, perplexity: Math.exp(loss), tokens: test.length - 1 };
}
