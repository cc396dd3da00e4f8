/**
 * Ranking and softmax over a vocabulary of scores, shared by sampling (`sample.ts`), the logit
 * lens (`forward.ts`) and the next-token view (`generate.ts`). `-Infinity` marks a removed token.
 *
 * @module
 */

/**
 * Indices of the `k` largest entries other than `-Infinity`, largest first (lower index first on
 * ties), by a bounded min-heap: `O(n · log k)` instead of a full sort.
 *
 * @param x scores `[n]` (logits or probabilities), no NaN
 * @param k how many, at least 1
 * @returns at most `k` indices
 * @example
 * ```ts
 * import { topIndices } from "./_rank.ts";
 * console.log(topIndices([0.1, 3, -Infinity, 3, 2], 3)); // [1, 3, 4]
 * ```
 */
export function topIndices(x: ArrayLike<number>, k: number): number[] {
  // "worse" = smaller value, or equal value and larger index
  const worse = (a: number, b: number): boolean => x[a] < x[b] || (x[a] === x[b] && a > b);
  const heap = new Uint32Array(k);
  let size = 0;
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let w = i;
      if (l < size && worse(heap[l], heap[w])) w = l;
      if (r < size && worse(heap[r], heap[w])) w = r;
      if (w === i) return;
      [heap[i], heap[w]] = [heap[w], heap[i]];
      i = w;
    }
  };
  for (let i = 0; i < x.length; i++) {
    if (x[i] === -Infinity) continue;
    if (size < k) {
      let c = size++;
      heap[c] = i;
      while (c > 0) {
        const parent = (c - 1) >> 1;
        if (!worse(heap[c], heap[parent])) break;
        [heap[c], heap[parent]] = [heap[parent], heap[c]];
        c = parent;
      }
    } else if (worse(heap[0], i)) {
      heap[0] = i;
      siftDown(0);
    }
  }
  return Array.from(heap.subarray(0, size)).sort((a, b) => worse(a, b) ? 1 : worse(b, a) ? -1 : 0);
}

/**
 * Softmax in float64, max-subtracted; `-Infinity` entries get probability 0.
 *
 * @param x scores `[n]` with at least one finite entry
 * @returns probabilities `[n]`
 * @example
 * ```ts
 * import { softmax64 } from "./_rank.ts";
 * console.log(softmax64([0, Math.log(3), -Infinity])); // ≈ Float64Array [0.25, 0.75, 0]
 * ```
 */
export function softmax64(x: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > m) m = x[i];
  const p = new Float64Array(x.length);
  let z = 0;
  for (let i = 0; i < x.length; i++) {
    const e = x[i] === -Infinity ? 0 : Math.exp(x[i] - m);
    p[i] = e;
    z += e;
  }
  for (let i = 0; i < x.length; i++) p[i] /= z;
  return p;
}
