import { assertAlmostEquals, assertLess, assertThrows } from "@std/assert";
import { bigramModel, bigramPerplexity, unigramPerplexity } from "../lib/ngram.ts";
import { lcg } from "./_fixtures.ts";

Deno.test("unigramPerplexity() equals add-one counts computed by hand", () => {
  // counts: 0→1, 1→2, 2→1; N = 4, V = 3; test scores ids after the first: [1, 2].
  const r = unigramPerplexity(new Int32Array([0, 1, 1, 2]), new Int32Array([0, 1, 2]), 3);
  const want = -(Math.log(3 / 7) + Math.log(2 / 7)) / 2;
  assertAlmostEquals(r.loss, want, 1e-12);
  assertAlmostEquals(r.perplexity, Math.exp(want), 1e-9);
});

Deno.test("bigramModel() is a distribution over the next token for every history", () => {
  const rnd = lcg(7);
  const V = 13;
  const train = Int32Array.from({ length: 400 }, () => Math.floor((rnd() + 0.5) * (V - 2))); // ids 11, 12 never seen
  const p = bigramModel(train, V);
  for (let v = 0; v < V; v++) {
    let s = 0;
    for (let w = 0; w < V; w++) s += p(v, w);
    assertAlmostEquals(s, 1, 1e-9, `history ${v}`);
  }
});

Deno.test("bigramModel() matches interpolated Kneser-Ney worked by hand", () => {
  // train 0 1 0 1 0 2: pairs (0,1)×2, (1,0)×2, (0,2)×1; c(0) = 3 as a history; N1+(0·) = 2.
  // continuation counts: N1+(·1) = 1, N1+(·0) = 1, N1+(·2) = 1 over 3 pair types.
  const p = bigramModel(new Int32Array([0, 1, 0, 1, 0, 2]), 3, 0.5);
  const cont = (1 - 1e-6) / 3 + 1e-6 / 3;
  assertAlmostEquals(p(0, 1), (2 - 0.5) / 3 + (0.5 * 2 / 3) * cont, 1e-12);
  assertAlmostEquals(p(0, 0), 0 + (0.5 * 2 / 3) * cont, 1e-12);
  assertAlmostEquals(p(2, 1), cont, 1e-12); // unseen history backs off to the continuation unigram
});

Deno.test("bigramPerplexity() beats unigram on text with local structure", () => {
  const text = new Int32Array(2000).map((_, i) => (i % 2 === 0 ? 0 : 1 + ((i >> 1) % 3)));
  const b = bigramPerplexity(text.subarray(0, 1600), text.subarray(1600), 4);
  const u = unigramPerplexity(text.subarray(0, 1600), text.subarray(1600), 4);
  assertLess(b.perplexity, u.perplexity);
});

Deno.test("ngram baselines reject empty input, bad ids and a bad discount", () => {
  assertThrows(() => unigramPerplexity(new Int32Array([]), new Int32Array([1, 2]), 3), RangeError, "empty");
  assertThrows(() => bigramPerplexity(new Int32Array([0, 5]), new Int32Array([0, 1]), 3), RangeError, "token id 5");
  assertThrows(() => bigramModel(new Int32Array([0, 1]), 3, 1.5), RangeError, "discount");
});
