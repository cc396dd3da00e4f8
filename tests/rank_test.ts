/** Unit tests of lib/_rank.ts against a full sort and the softmax formula. */
import { assertAlmostEquals, assertEquals } from "@std/assert";
import { softmax64, topIndices } from "../lib/_rank.ts";
import { createPrng } from "../lib/prng.ts";

Deno.test("topIndices() equals a full sort by value then index, skipping -Infinity, for every k", () => {
  const p = createPrng(3);
  // Few distinct values, so ties are common; some entries removed.
  const x = Array.from({ length: 200 }, () => p.next() < 0.1 ? -Infinity : Math.floor(p.next() * 20));
  const sorted = x.map((_, i) => i).filter((i) => x[i] !== -Infinity).sort((a, b) => (x[b] - x[a]) || (a - b));
  for (const k of [1, 2, 7, 50, sorted.length, sorted.length + 5]) {
    assertEquals(topIndices(x, k), sorted.slice(0, k), `k = ${k}`);
  }
  assertEquals(topIndices(new Float32Array([1, 1, 1]), 2), [0, 1]);
  assertEquals(topIndices([-Infinity, -Infinity], 3), []);
});

Deno.test("softmax64() sums to one, gives -Infinity probability 0 and survives large scores", () => {
  const p = softmax64([1000, 1000 + Math.log(3), -Infinity]);
  assertAlmostEquals(p[0], 0.25, 1e-12);
  assertAlmostEquals(p[1], 0.75, 1e-12);
  assertEquals(p[2], 0);
});
