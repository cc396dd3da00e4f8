/**
 * Tests of lib/forward.ts against a deliberately naive float64 implementation written here
 * straight from the math (nested loops over number[], nothing shared with lib/), on random small
 * models built with a seeded LCG.
 */
import { assert, assertEquals, assertInstanceOf, assertStringIncludes, assertThrows } from "@std/assert";
import {
  attentionPatterns,
  expectedParamShapes,
  forward,
  type KeyValue,
  logitLens,
  residualNorms,
} from "../lib/forward.ts";
import type { ArchConfig, Gpt2Config, LlamaConfig, ParamMap, Tensor } from "../lib/types.ts";

const TOL = 1e-4;

// ---------------------------------------------------------------------------------------------
// Random models
// ---------------------------------------------------------------------------------------------

/** Seeded LCG (Numerical Recipes constants), uniform on [-1, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

/** The parameter list of types.ts, written out here independently of lib/. */
function shapesFor(c: ArchConfig): [string, number[]][] {
  const D = c.dModel, F = c.dMlp, V = c.vocabSize;
  const out: [string, number[]][] = [["embed.tokens", [V, D]]];
  if (c.family === "gpt2") {
    out.push(["embed.positions", [c.maxPositions, D]]);
    for (let i = 0; i < c.nLayer; i++) {
      out.push(
        [`blocks.${i}.ln1.gain`, [D]],
        [`blocks.${i}.ln1.bias`, [D]],
        [`blocks.${i}.attn.qkv.weight`, [D, 3 * D]],
        [`blocks.${i}.attn.qkv.bias`, [3 * D]],
        [`blocks.${i}.attn.o.weight`, [D, D]],
        [`blocks.${i}.attn.o.bias`, [D]],
        [`blocks.${i}.ln2.gain`, [D]],
        [`blocks.${i}.ln2.bias`, [D]],
        [`blocks.${i}.mlp.in.weight`, [D, F]],
        [`blocks.${i}.mlp.in.bias`, [F]],
        [`blocks.${i}.mlp.out.weight`, [F, D]],
        [`blocks.${i}.mlp.out.bias`, [D]],
      );
    }
    out.push(["norm_f.gain", [D]], ["norm_f.bias", [D]]);
  } else {
    const Q = c.nHead * c.dHead, KV = c.nKvHead * c.dHead;
    for (let i = 0; i < c.nLayer; i++) {
      out.push(
        [`blocks.${i}.ln1.gain`, [D]],
        [`blocks.${i}.attn.q.weight`, [D, Q]],
        [`blocks.${i}.attn.k.weight`, [D, KV]],
        [`blocks.${i}.attn.v.weight`, [D, KV]],
        [`blocks.${i}.attn.o.weight`, [Q, D]],
        [`blocks.${i}.ln2.gain`, [D]],
        [`blocks.${i}.mlp.gate.weight`, [D, F]],
        [`blocks.${i}.mlp.in.weight`, [D, F]],
        [`blocks.${i}.mlp.out.weight`, [F, D]],
      );
    }
    out.push(["norm_f.gain", [D]]);
    if (!c.tieWordEmbeddings) out.push(["head.weight", [D, V]]);
  }
  return out;
}

function randomParams(c: ArchConfig, seed: number): ParamMap {
  const rnd = lcg(seed);
  const params: ParamMap = new Map();
  for (const [name, dims] of shapesFor(c)) {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    // Gains near 1, biases small, matrices scaled so activations stay of order 1.
    const scale = name.endsWith(".gain") ? 0.2 : name.endsWith(".bias") ? 0.1 : name.startsWith("embed") ? 1 : 0.45;
    for (let i = 0; i < n; i++) data[i] = (name.endsWith(".gain") ? 1 : 0) + scale * rnd();
    params.set(name, { data, dims });
  }
  return params;
}

function randomIds(n: number, vocab: number, seed: number): number[] {
  const rnd = lcg(seed);
  return Array.from({ length: n }, () => Math.floor(((rnd() + 1) / 2) * vocab));
}

const GPT2: Gpt2Config = {
  family: "gpt2",
  vocabSize: 37,
  maxPositions: 12,
  dModel: 16,
  nLayer: 2,
  nHead: 4,
  dMlp: 48,
  normEps: 1e-5,
};

/** GQA (2 query heads per kv head), dHead not dModel/nHead, untied head. */
const LLAMA_GQA: LlamaConfig = {
  family: "llama",
  vocabSize: 41,
  maxPositions: 12,
  dModel: 16,
  nLayer: 2,
  nHead: 4,
  nKvHead: 2,
  dHead: 6,
  dMlp: 40,
  normEps: 1e-6,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
};

/** Multi-head (nKvHead = nHead), tied head, another rotary base. */
const LLAMA_TIED: LlamaConfig = { ...LLAMA_GQA, nKvHead: 4, dHead: 4, tieWordEmbeddings: true, ropeTheta: 500 };

/** Multi-query (one kv head), untied. */
const LLAMA_MQA: LlamaConfig = { ...LLAMA_GQA, nKvHead: 1, nLayer: 3 };

// ---------------------------------------------------------------------------------------------
// The naive float64 reference
// ---------------------------------------------------------------------------------------------

type Vec = number[];
type Mat = number[][];

interface Naive {
  logits: Mat; // [pos][vocab]
  residPre0: Mat; // [pos][d_model]
  residPost: Mat[]; // [layer][pos][d_model]
  patterns: number[][][][]; // [layer][head][query][key]
  keys: number[][][][]; // [layer][kv_head][pos][d_head], after rotary
  values: number[][][][];
}

function mat(t: Tensor): Mat {
  const [r, c] = t.dims;
  return Array.from({ length: r }, (_, i) => Array.from(t.data.subarray(i * c, (i + 1) * c)));
}
function vec(t: Tensor): Vec {
  return Array.from(t.data);
}
function get(params: ParamMap, name: string): Tensor {
  const t = params.get(name);
  if (!t) throw new Error(`test model lacks ${name}`);
  return t;
}

/** y[j] = Σ_i x[i]·W[i][j] (+ b[j]). */
function vecMat(x: Vec, W: Mat, b?: Vec): Vec {
  const y: Vec = [];
  for (let j = 0; j < W[0].length; j++) {
    let s = b ? b[j] : 0;
    for (let i = 0; i < x.length; i++) s += x[i] * W[i][j];
    y.push(s);
  }
  return y;
}

function layerNormRef(x: Vec, g: Vec, b: Vec, eps: number): Vec {
  const m = x.reduce((a, v) => a + v, 0) / x.length;
  const v = x.reduce((a, u) => a + (u - m) * (u - m), 0) / x.length;
  return x.map((u, i) => ((u - m) / Math.sqrt(v + eps)) * g[i] + b[i]);
}

function rmsNormRef(x: Vec, g: Vec, eps: number): Vec {
  const ms = x.reduce((a, u) => a + u * u, 0) / x.length;
  return x.map((u, i) => (u / Math.sqrt(ms + eps)) * g[i]);
}

function softmaxRef(x: Vec): Vec {
  const m = Math.max(...x);
  const e = x.map((u) => Math.exp(u - m));
  const z = e.reduce((a, u) => a + u, 0);
  return e.map((u) => u / z);
}

function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** HF rotate_half rotary at absolute position `pos`: pairs (i, i + d/2), angle pos·θ^(-2i/d). */
function ropeRef(x: Vec, pos: number, theta: number): Vec {
  const d = x.length, half = d / 2, out = x.slice();
  for (let i = 0; i < half; i++) {
    const a = pos * Math.pow(theta, (-2 * i) / d);
    out[i] = x[i] * Math.cos(a) - x[i + half] * Math.sin(a);
    out[i + half] = x[i + half] * Math.cos(a) + x[i] * Math.sin(a);
  }
  return out;
}

function naiveForward(c: ArchConfig, params: ParamMap, ids: number[], offset = 0): Naive {
  const n = ids.length, D = c.dModel;
  const gpt2 = c.family === "gpt2";
  const H = c.nHead, KVH = gpt2 ? c.nHead : c.nKvHead, dh = gpt2 ? D / H : c.dHead;
  const E = mat(get(params, "embed.tokens"));
  let x: Mat = ids.map((t, p) => {
    const row = E[t].slice();
    if (gpt2) {
      const P = mat(get(params, "embed.positions"));
      for (let d = 0; d < D; d++) row[d] += P[offset + p][d];
    }
    return row;
  });
  const out: Naive = {
    logits: [],
    residPre0: x.map((r) => r.slice()),
    residPost: [],
    patterns: [],
    keys: [],
    values: [],
  };
  const normOf = (prefix: string, v: Vec) =>
    gpt2
      ? layerNormRef(v, vec(get(params, `${prefix}.gain`)), vec(get(params, `${prefix}.bias`)), c.normEps)
      : rmsNormRef(v, vec(get(params, `${prefix}.gain`)), c.normEps);

  for (let l = 0; l < c.nLayer; l++) {
    const b = `blocks.${l}`;
    const h = x.map((r) => normOf(`${b}.ln1`, r));
    // q[head][pos][d], k[kv_head][pos][d], v[kv_head][pos][d]
    const q: number[][][] = Array.from({ length: H }, () => []);
    const k: number[][][] = Array.from({ length: KVH }, () => []);
    const v: number[][][] = Array.from({ length: KVH }, () => []);
    for (let p = 0; p < n; p++) {
      if (gpt2) {
        const qkv = vecMat(h[p], mat(get(params, `${b}.attn.qkv.weight`)), vec(get(params, `${b}.attn.qkv.bias`)));
        for (let hh = 0; hh < H; hh++) {
          q[hh].push(qkv.slice(hh * dh, hh * dh + dh));
          k[hh].push(qkv.slice(D + hh * dh, D + hh * dh + dh));
          v[hh].push(qkv.slice(2 * D + hh * dh, 2 * D + hh * dh + dh));
        }
      } else {
        const qp = vecMat(h[p], mat(get(params, `${b}.attn.q.weight`)));
        const kp = vecMat(h[p], mat(get(params, `${b}.attn.k.weight`)));
        const vp = vecMat(h[p], mat(get(params, `${b}.attn.v.weight`)));
        for (let hh = 0; hh < H; hh++) q[hh].push(ropeRef(qp.slice(hh * dh, hh * dh + dh), offset + p, c.ropeTheta));
        for (let g = 0; g < KVH; g++) {
          k[g].push(ropeRef(kp.slice(g * dh, g * dh + dh), offset + p, c.ropeTheta));
          v[g].push(vp.slice(g * dh, g * dh + dh));
        }
      }
    }
    out.keys.push(k);
    out.values.push(v);
    const z: Mat = Array.from({ length: n }, () => new Array(H * dh).fill(0));
    const pat: number[][][] = [];
    for (let hh = 0; hh < H; hh++) {
      const g = Math.floor((hh * KVH) / H);
      pat.push([]);
      for (let i = 0; i < n; i++) {
        const s: Vec = [];
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let d = 0; d < dh; d++) dot += q[hh][i][d] * k[g][j][d];
          s.push(dot / Math.sqrt(dh));
        }
        const pr = softmaxRef(s);
        pat[hh].push([...pr, ...new Array(n - 1 - i).fill(0)]);
        for (let j = 0; j <= i; j++) for (let d = 0; d < dh; d++) z[i][hh * dh + d] += pr[j] * v[g][j][d];
      }
    }
    out.patterns.push(pat);
    const Wo = mat(get(params, `${b}.attn.o.weight`));
    const bo = gpt2 ? vec(get(params, `${b}.attn.o.bias`)) : undefined;
    x = x.map((r, p) => {
      const a = vecMat(z[p], Wo, bo);
      return r.map((u, d) => u + a[d]);
    });
    x = x.map((r) => {
      const h2 = normOf(`${b}.ln2`, r);
      let act: Vec;
      if (gpt2) {
        act = vecMat(h2, mat(get(params, `${b}.mlp.in.weight`)), vec(get(params, `${b}.mlp.in.bias`))).map(gelu);
      } else {
        const gate = vecMat(h2, mat(get(params, `${b}.mlp.gate.weight`)));
        const up = vecMat(h2, mat(get(params, `${b}.mlp.in.weight`)));
        act = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
      }
      const m = vecMat(
        act,
        mat(get(params, `${b}.mlp.out.weight`)),
        gpt2 ? vec(get(params, `${b}.mlp.out.bias`)) : undefined,
      );
      return r.map((u, d) => u + m[d]);
    });
    out.residPost.push(x.map((r) => r.slice()));
  }
  out.logits = x.map((r) => headRef(c, params, normOf("norm_f", r)));
  return out;
}

function headRef(c: ArchConfig, params: ParamMap, h: Vec): Vec {
  if (c.family === "llama" && !c.tieWordEmbeddings) return vecMat(h, mat(get(params, "head.weight")));
  const E = mat(get(params, "embed.tokens"));
  return E.map((row) => row.reduce((a, u, d) => a + u * h[d], 0));
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function maxDiff(actual: Float32Array, expected: number[]): number {
  assertEquals(actual.length, expected.length, "length");
  let m = 0;
  for (let i = 0; i < actual.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]));
  assert(Number.isFinite(m), "non-finite values");
  return m;
}

function assertClose(actual: Float32Array, expected: number[], what: string, tol = TOL): void {
  const d = maxDiff(actual, expected);
  assert(d <= tol, `${what}: max |diff| ${d.toExponential(2)} > ${tol}`);
}

function kvHeads(c: ArchConfig): number {
  return c.family === "gpt2" ? c.nHead : c.nKvHead;
}
function headDim(c: ArchConfig): number {
  return c.family === "gpt2" ? c.dModel / c.nHead : c.dHead;
}

const CONFIGS: [string, ArchConfig][] = [
  ["GPT-2", GPT2],
  ["LLaMA GQA untied", LLAMA_GQA],
  ["LLaMA MHA tied", LLAMA_TIED],
  ["LLaMA MQA", LLAMA_MQA],
];

// ---------------------------------------------------------------------------------------------
// Logits against the reference
// ---------------------------------------------------------------------------------------------

for (const [label, config] of CONFIGS) {
  Deno.test(`forward() matches the float64 reference for ${label} at 1, 7 and full-context tokens`, () => {
    const params = randomParams(config, 11);
    for (const n of [1, 7, config.maxPositions]) {
      const ids = randomIds(n, config.vocabSize, 100 + n);
      const { logits } = forward(config, params, ids);
      assertEquals(logits.dims, [n, config.vocabSize]);
      const ref = naiveForward(config, params, ids);
      assertClose(logits.data, ref.logits.flat(), `${label} n=${n} logits`);
    }
  });
}

// Long enough for three blocks of 128 queries, with heads wide enough (16) that the attention
// products switch from JavaScript (fewer than 64 keys) to WebAssembly SIMD (64 keys and more).
const LONG: [string, ArchConfig][] = [
  ["GPT-2", { ...GPT2, maxPositions: 300, dModel: 32, nHead: 2 }],
  ["LLaMA GQA", { ...LLAMA_GQA, maxPositions: 300, dModel: 32, dHead: 16, nKvHead: 2 }],
];

for (const [label, config] of LONG) {
  Deno.test(`forward() over ${config.maxPositions} tokens (several query blocks) matches the reference for ${label}, also after a past`, () => {
    const params = randomParams(config, 5);
    const n = config.maxPositions;
    const ids = randomIds(n, config.vocabSize, 9);
    const ref = naiveForward(config, params, ids);
    const { logits, cache } = forward(config, params, ids, { cache: true });
    assertClose(logits.data, ref.logits.flat(), `${label} logits`);
    for (let l = 0; l < config.nLayer; l++) {
      assertClose(cache!.get(`blocks.${l}.attn.pattern`)!.data, ref.patterns[l].flat(2), `${label} pattern ${l}`, 1e-5);
    }
    // 170 tokens, then the other 130 at once over the KV cache: blocks that start after a past.
    const first = forward(config, params, ids.slice(0, 170));
    const rest = forward(config, params, ids.slice(170), { past: first.present });
    assertClose(rest.logits.data, ref.logits.slice(170).flat(), `${label} after a past`);
  });
}

Deno.test("expectedParamShapes() lists exactly the names and shapes of the ParamMap contract", () => {
  for (const [, config] of CONFIGS) {
    assertEquals([...expectedParamShapes(config)], shapesFor(config));
  }
});

Deno.test("forward() accepts Int32Array ids and matches number[] ids", () => {
  const params = randomParams(GPT2, 3);
  const ids = randomIds(5, GPT2.vocabSize, 9);
  assertEquals(forward(GPT2, params, Int32Array.from(ids)).logits.data, forward(GPT2, params, ids).logits.data);
});

Deno.test("forward() with positionOffset matches the reference started at that position", () => {
  for (const config of [GPT2, LLAMA_GQA]) {
    const params = randomParams(config, 21);
    const ids = randomIds(4, config.vocabSize, 5);
    const { logits } = forward(config, params, ids, { positionOffset: 6 });
    assertClose(logits.data, naiveForward(config, params, ids, 6).logits.flat(), `${config.family} offset 6`);
  }
});

Deno.test('forward() with logits: "last" returns only the last row', () => {
  const params = randomParams(LLAMA_GQA, 4);
  const ids = randomIds(6, LLAMA_GQA.vocabSize, 8);
  const all = forward(LLAMA_GQA, params, ids).logits;
  const last = forward(LLAMA_GQA, params, ids, { logits: "last" }).logits;
  assertEquals(last.dims, [1, LLAMA_GQA.vocabSize]);
  assertEquals(last.data, all.data.slice(5 * LLAMA_GQA.vocabSize));
});

// ---------------------------------------------------------------------------------------------
// KV cache
// ---------------------------------------------------------------------------------------------

for (const [label, config] of CONFIGS) {
  Deno.test(`KV cache: ${label} prefix then one token at a time equals the full pass`, () => {
    const params = randomParams(config, 31);
    const n = config.maxPositions, V = config.vocabSize;
    const ids = randomIds(n, V, 77);
    const full = forward(config, params, ids);
    let step = forward(config, params, ids.slice(0, 3));
    assertClose(step.logits.data, Array.from(full.logits.data.subarray(0, 3 * V)), `${label} prefix`);
    for (let p = 3; p < n; p++) {
      step = forward(config, params, [ids[p]], { past: step.present });
      const want = Array.from(full.logits.data.subarray(p * V, (p + 1) * V));
      assertClose(step.logits.data, want, `${label} step at position ${p}`);
    }
    // The accumulated present equals the full pass's present.
    for (let l = 0; l < config.nLayer; l++) {
      assertEquals(step.present![l].key.dims, full.present![l].key.dims);
      assertClose(step.present![l].key.data, Array.from(full.present![l].key.data), `${label} key ${l}`);
      assertClose(step.present![l].value.data, Array.from(full.present![l].value.data), `${label} value ${l}`);
    }
  });
}

Deno.test("present has the ONNX layout [1, kv_head, pos, d_head] and holds the rotated keys", () => {
  for (const config of [GPT2, LLAMA_GQA, LLAMA_MQA]) {
    const params = randomParams(config, 41);
    const ids = randomIds(5, config.vocabSize, 3);
    const { present } = forward(config, params, ids);
    const ref = naiveForward(config, params, ids);
    assertEquals(present!.length, config.nLayer);
    for (let l = 0; l < config.nLayer; l++) {
      assertEquals(present![l].key.dims, [1, kvHeads(config), 5, headDim(config)]);
      assertClose(present![l].key.data, ref.keys[l].flat(2), `${config.family} keys ${l}`);
      assertClose(present![l].value.data, ref.values[l].flat(2), `${config.family} values ${l}`);
    }
  }
});

Deno.test("KV cache: several tokens at once after a past, and 3-dim past tensors, match the full pass", () => {
  const config = LLAMA_GQA, params = randomParams(config, 51), V = config.vocabSize;
  const ids = randomIds(9, V, 12);
  const full = forward(config, params, ids);
  const first = forward(config, params, ids.slice(0, 4));
  const past: KeyValue[] = first.present!.map((kv) => ({
    key: { data: kv.key.data, dims: kv.key.dims.slice(1) },
    value: { data: kv.value.data, dims: kv.value.dims.slice(1) },
  }));
  const rest = forward(config, params, ids.slice(4), { past, present: false });
  assertEquals(rest.present, undefined);
  assertClose(rest.logits.data, Array.from(full.logits.data.subarray(4 * V)), "continuation");
});

Deno.test("forward() with present: false gives the same logits and no present", () => {
  const params = randomParams(GPT2, 5);
  const ids = randomIds(7, GPT2.vocabSize, 1);
  const a = forward(GPT2, params, ids), b = forward(GPT2, params, ids, { present: false });
  assertEquals(b.present, undefined);
  assertEquals(b.logits.data, a.logits.data);
});

// ---------------------------------------------------------------------------------------------
// Activation cache and its views
// ---------------------------------------------------------------------------------------------

function expectedCacheShapes(c: ArchConfig, n: number, keys: number): Map<string, number[]> {
  const D = c.dModel, F = c.dMlp, H = c.nHead, KVH = kvHeads(c), dh = headDim(c);
  const m = new Map<string, number[]>([["embed", [n, D]]]);
  if (c.family === "gpt2") m.set("pos_embed", [n, D]);
  for (let i = 0; i < c.nLayer; i++) {
    const b = `blocks.${i}`;
    m.set(`${b}.resid_pre`, [n, D]).set(`${b}.ln1.normalized`, [n, D]);
    m.set(`${b}.attn.q`, [H, n, dh]).set(`${b}.attn.k`, [KVH, n, dh]).set(`${b}.attn.v`, [KVH, n, dh]);
    if (c.family === "llama") m.set(`${b}.attn.rot_q`, [H, n, dh]).set(`${b}.attn.rot_k`, [KVH, n, dh]);
    m.set(`${b}.attn.scores`, [H, n, keys]).set(`${b}.attn.pattern`, [H, n, keys]);
    m.set(`${b}.attn.z`, [n, H * dh]).set(`${b}.attn.out`, [n, D]).set(`${b}.resid_mid`, [n, D]);
    m.set(`${b}.ln2.normalized`, [n, D]).set(`${b}.mlp.pre`, [n, F]);
    if (c.family === "llama") m.set(`${b}.mlp.pre_linear`, [n, F]);
    m.set(`${b}.mlp.post`, [n, F]).set(`${b}.mlp.out`, [n, D]).set(`${b}.resid_post`, [n, D]);
  }
  m.set("norm_f.normalized", [n, D]);
  return m;
}

Deno.test("cache: every documented entry is present with its dims, and nothing else", () => {
  for (const [label, config] of CONFIGS) {
    const params = randomParams(config, 61);
    const ids = randomIds(6, config.vocabSize, 2);
    const { cache } = forward(config, params, ids, { cache: true });
    const want = expectedCacheShapes(config, 6, 6);
    assertEquals(new Set(cache!.keys()), new Set(want.keys()), label);
    for (const [name, dims] of want) {
      const t = cache!.get(name)!;
      assertEquals(t.dims, dims, `${label} ${name}`);
      assertEquals(t.data.length, dims.reduce((a, b) => a * b, 1), `${label} ${name} length`);
    }
  }
});

Deno.test("cache: with a past, scores and patterns cover past and new keys", () => {
  const params = randomParams(LLAMA_GQA, 62);
  const ids = randomIds(7, LLAMA_GQA.vocabSize, 4);
  const first = forward(LLAMA_GQA, params, ids.slice(0, 5));
  const { cache } = forward(LLAMA_GQA, params, ids.slice(5), { past: first.present, cache: true });
  const want = expectedCacheShapes(LLAMA_GQA, 2, 7);
  for (const [name, dims] of want) assertEquals(cache!.get(name)!.dims, dims, name);
  // The rows equal the last two query rows of the full pass.
  const full = naiveForward(LLAMA_GQA, params, ids);
  const pat = attentionPatterns(cache!, 1);
  const expected = full.patterns[1].map((head) => head.slice(5)).flat(2);
  assertClose(pat.data, expected, "patterns after past", 1e-5);
});

Deno.test("forward() without cache keeps no activations", () => {
  const params = randomParams(GPT2, 63);
  const result = forward(GPT2, params, [1, 2, 3]);
  assertEquals(result.cache, undefined);
  assertEquals(Object.keys(result).sort(), ["logits", "present"]);
});

Deno.test("cache: values agree with the reference (residual streams, patterns) and compose as documented", () => {
  for (const [label, config] of CONFIGS) {
    const params = randomParams(config, 64);
    const ids = randomIds(8, config.vocabSize, 6);
    const { cache, logits } = forward(config, params, ids, { cache: true });
    const c = cache!;
    const ref = naiveForward(config, params, ids);
    assertClose(c.get("blocks.0.resid_pre")!.data, ref.residPre0.flat(), `${label} resid_pre`);
    for (let l = 0; l < config.nLayer; l++) {
      assertClose(c.get(`blocks.${l}.resid_post`)!.data, ref.residPost[l].flat(), `${label} resid_post ${l}`);
      assertClose(c.get(`blocks.${l}.attn.pattern`)!.data, ref.patterns[l].flat(2), `${label} pattern ${l}`, 1e-5);
      // resid_mid = resid_pre + attn.out; resid_post = resid_mid + mlp.out
      const pre = c.get(`blocks.${l}.resid_pre`)!.data, mid = c.get(`blocks.${l}.resid_mid`)!.data;
      const aOut = c.get(`blocks.${l}.attn.out`)!.data, mOut = c.get(`blocks.${l}.mlp.out`)!.data;
      assertClose(mid, Array.from(pre, (v, i) => v + aOut[i]), `${label} resid_mid ${l}`, 1e-5);
      assertClose(c.get(`blocks.${l}.resid_post`)!.data, Array.from(mid, (v, i) => v + mOut[i]), `${label} post`, 1e-5);
    }
    const embed = c.get("embed")!.data;
    const pos = config.family === "gpt2" ? c.get("pos_embed")!.data : new Float32Array(embed.length);
    assertClose(c.get("blocks.0.resid_pre")!.data, Array.from(embed, (v, i) => v + pos[i]), `${label} embed`, 1e-6);
    // The cached run's logits equal the uncached run's.
    assertEquals(logits.data, forward(config, params, ids).logits.data);
  }
});

Deno.test("attentionPatterns() rows sum to 1 and are causal; scores are -Infinity where masked", () => {
  for (const [label, config] of CONFIGS) {
    const params = randomParams(config, 71);
    const n = 7;
    const { cache } = forward(config, params, randomIds(n, config.vocabSize, 7), { cache: true });
    for (let l = 0; l < config.nLayer; l++) {
      const p = attentionPatterns(cache!, l);
      const s = cache!.get(`blocks.${l}.attn.scores`)!;
      assertEquals(p.dims, [config.nHead, n, n]);
      for (let h = 0; h < config.nHead; h++) {
        for (let i = 0; i < n; i++) {
          let sum = 0;
          for (let j = 0; j < n; j++) {
            const at = (h * n + i) * n + j;
            sum += p.data[at];
            if (j > i) {
              assertEquals(p.data[at], 0, `${label} pattern above the diagonal`);
              assertEquals(s.data[at], -Infinity, `${label} masked score`);
            } else assert(Number.isFinite(s.data[at]) && p.data[at] > 0);
          }
          assert(Math.abs(sum - 1) < 1e-5, `${label} layer ${l} head ${h} row ${i} sums to ${sum}`);
        }
      }
    }
  }
});

Deno.test("residualNorms() gives the L2 norm of every stream at every position", () => {
  const config = GPT2, params = randomParams(config, 81);
  const ids = randomIds(5, config.vocabSize, 8);
  const { cache } = forward(config, params, ids, { cache: true });
  const ref = naiveForward(config, params, ids);
  const { names, norms } = residualNorms(cache!);
  assertEquals(names, ["blocks.0.resid_pre", "blocks.0.resid_post", "blocks.1.resid_post"]);
  assertEquals(norms.dims, [3, 5]);
  const streams = [ref.residPre0, ...ref.residPost];
  const want = streams.flatMap((s) => s.map((row) => Math.sqrt(row.reduce((a, v) => a + v * v, 0))));
  assertClose(norms.data, want, "norms");
});

Deno.test("logitLens() at the last layer equals the real logits; earlier layers apply norm_f and the head", () => {
  for (const [label, config] of CONFIGS) {
    const params = randomParams(config, 91);
    const n = 6;
    const ids = randomIds(n, config.vocabSize, 10);
    const { cache, logits } = forward(config, params, ids, { cache: true });
    const ref = naiveForward(config, params, ids);
    for (const position of [2, n - 1]) {
      const lens = logitLens(config, params, cache!, { position, topK: 3 });
      assertEquals(lens.position, position);
      assertEquals(lens.layers.length, config.nLayer + 1);
      const V = config.vocabSize;
      const real = Array.from(logits.data.subarray(position * V, (position + 1) * V));
      const last = lens.layers[config.nLayer];
      assertEquals(last.name, `blocks.${config.nLayer - 1}.resid_post`);
      assertClose(last.logits, real, `${label} lens = logits`, 1e-5);
      const argmax = real.indexOf(Math.max(...real));
      assertEquals(lens.prediction, argmax);
      assertEquals(last.predictionRank, 1);
      assertEquals(last.top[0].id, argmax);
      // Layer 0: norm_f + head on the embeddings, computed by the reference.
      const normF = config.family === "gpt2"
        ? layerNormRef(
          ref.residPre0[position],
          vec(get(params, "norm_f.gain")),
          vec(get(params, "norm_f.bias")),
          config.normEps,
        )
        : rmsNormRef(ref.residPre0[position], vec(get(params, "norm_f.gain")), config.normEps);
      assertClose(lens.layers[0].logits, headRef(config, params, normF), `${label} lens layer 0`);
      for (const layer of lens.layers) {
        const probs = softmaxRef(Array.from(layer.logits));
        assertEquals(layer.top.length, 3);
        assert(layer.top[0].prob >= layer.top[1].prob && layer.top[1].prob >= layer.top[2].prob, "top is sorted");
        assert(Math.abs(layer.top[0].prob - Math.max(...probs)) < 1e-6);
        assert(Math.abs(layer.predictionProb - probs[argmax]) < 1e-6);
        assertEquals(layer.predictionRank, 1 + probs.filter((p) => p > probs[argmax]).length);
      }
    }
  }
});

Deno.test("logitLens() defaults to the last position and five tokens", () => {
  const params = randomParams(GPT2, 92);
  const { cache } = forward(GPT2, params, [3, 4, 5], { cache: true });
  const lens = logitLens(GPT2, params, cache!);
  assertEquals(lens.position, 2);
  assertEquals(lens.layers[0].top.length, 5);
});

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

function throwsWith(fn: () => unknown, type: typeof TypeError | typeof RangeError, ...parts: string[]): void {
  const e = assertThrows(fn);
  assertInstanceOf(e, type);
  for (const part of parts) assertStringIncludes((e as Error).message, part);
}

Deno.test("forward() rejects token ids outside the vocabulary, non-integers and empty input", () => {
  const params = randomParams(GPT2, 101);
  throwsWith(() => forward(GPT2, params, [1, 37]), RangeError, "ids[1] is 37", "[0, 37)");
  throwsWith(() => forward(GPT2, params, [-1]), RangeError, "ids[0] is -1");
  throwsWith(() => forward(GPT2, params, [1.5]), TypeError, "ids[0] is 1.5", "integers");
  throwsWith(() => forward(GPT2, params, []), RangeError, "empty");
});

Deno.test("forward() rejects sequences longer than the context, also after a past or an offset", () => {
  for (const config of [GPT2, LLAMA_GQA]) {
    const params = randomParams(config, 102);
    throwsWith(() => forward(config, params, new Array(13).fill(1)), RangeError, "maxPositions", "12");
    const first = forward(config, params, new Array(10).fill(1));
    throwsWith(() => forward(config, params, [1, 2, 3], { past: first.present }), RangeError, "10..12");
    throwsWith(() => forward(config, params, [1, 2], { positionOffset: 11 }), RangeError, "exceed the context");
    throwsWith(() => forward(config, params, [1], { positionOffset: -1 }), RangeError, "positionOffset");
  }
});

Deno.test("forward() names a missing parameter in a TypeError", () => {
  for (const [name, config] of [["blocks.1.attn.o.bias", GPT2], ["head.weight", LLAMA_GQA]] as const) {
    const params = randomParams(config, 103);
    params.delete(name);
    throwsWith(() => forward(config, params, [1]), TypeError, name, "missing");
  }
});

Deno.test("forward() rejects a wrongly shaped tensor with a RangeError naming it and both shapes", () => {
  const params = randomParams(LLAMA_GQA, 104);
  const t = params.get("blocks.0.attn.k.weight")!;
  params.set("blocks.0.attn.k.weight", { data: t.data, dims: [12, 16] });
  throwsWith(() => forward(LLAMA_GQA, params, [1]), RangeError, "blocks.0.attn.k.weight", "[12, 16]", "[16, 12]");
  params.set("blocks.0.attn.k.weight", { data: t.data.subarray(1), dims: [16, 12] });
  throwsWith(() => forward(LLAMA_GQA, params, [1]), RangeError, "blocks.0.attn.k.weight", "191 values");
  params.set("blocks.0.attn.k.weight", { data: Array.from(t.data) as unknown as Float32Array, dims: [16, 12] });
  throwsWith(() => forward(LLAMA_GQA, params, [1]), TypeError, "Float32Array");
});

Deno.test("forward() rejects a malformed past and an inconsistent config", () => {
  const params = randomParams(LLAMA_GQA, 105);
  const { present } = forward(LLAMA_GQA, params, [1, 2]);
  throwsWith(
    () => forward(LLAMA_GQA, params, [3], { past: present!.slice(1) }),
    RangeError,
    "one {key, value} entry per layer",
  );
  const bad = present!.map((kv) => ({ key: { data: kv.key.data, dims: [1, 4, 2, 3] }, value: kv.value }));
  throwsWith(() => forward(LLAMA_GQA, params, [3], { past: bad }), RangeError, "past[0].key", "[1, 2, past_pos, 6]");
  throwsWith(() => forward({ ...LLAMA_GQA, nKvHead: 3 }, params, [1]), RangeError, "nKvHead");
  throwsWith(() => forward({ ...GPT2, nHead: 5 }, randomParams(GPT2, 1), [1]), RangeError, "dModel");
  throwsWith(() => forward({ ...GPT2, dModel: 0 }, params, [1]), RangeError, "config.dModel");
  throwsWith(() => forward({ ...GPT2, family: "bert" } as unknown as ArchConfig, params, [1]), TypeError, "family");
  throwsWith(() => forward(LLAMA_GQA, params, [1], { logits: "first" as "last" }), TypeError, "options.logits");
});

Deno.test("cache views reject a cache without the needed entries and out-of-range positions", () => {
  const params = randomParams(GPT2, 106);
  const { cache } = forward(GPT2, params, [1, 2], { cache: true });
  throwsWith(() => attentionPatterns(cache!, 2), RangeError, "blocks.2.attn.pattern", "cache: true");
  throwsWith(() => attentionPatterns(new Map(), 0), RangeError, "cache: true");
  throwsWith(() => residualNorms(new Map()), RangeError, "blocks.0.resid_pre");
  throwsWith(() => logitLens(GPT2, params, new Map()), RangeError, "cache: true");
  throwsWith(() => logitLens(GPT2, params, cache!, { position: 2 }), RangeError, "positions 0..1");
  throwsWith(() => logitLens(GPT2, params, cache!, { topK: 0 }), RangeError, "topK");
});
