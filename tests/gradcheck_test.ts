/**
 * Gradient check: the hand-written backward pass of lib/train.ts against
 * central finite differences of an independent float64 GPT-2 loss written
 * here from the layout contract in lib/types.ts (nothing from lib/ is used to
 * compute the reference).
 */
import { assert, assertLess } from "@std/assert";
import { gpt2LossAndGrad } from "../lib/train.ts";
import type { Gpt2Config, ParamMap } from "../lib/types.ts";

const config: Gpt2Config = {
  family: "gpt2",
  vocabSize: 11,
  maxPositions: 6,
  dModel: 8,
  nLayer: 2,
  nHead: 2,
  dMlp: 32,
  normEps: 1e-5,
};
const B = 2, T = 5;

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
}

/** Parameters with non-trivial values everywhere (biases ≠ 0, gains ≠ 1) so every path is exercised. */
function randomParams(seed: number): Map<string, { data: Float64Array; dims: number[] }> {
  const u = lcg(seed);
  const normal = () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  const C = config.dModel, F = config.dMlp;
  const shapes: [string, number[]][] = [["embed.tokens", [config.vocabSize, C]], [
    "embed.positions",
    [config.maxPositions, C],
  ]];
  for (let l = 0; l < config.nLayer; l++) {
    const p = `blocks.${l}.`;
    shapes.push(
      [p + "ln1.gain", [C]],
      [p + "ln1.bias", [C]],
      [p + "attn.qkv.weight", [C, 3 * C]],
      [p + "attn.qkv.bias", [3 * C]],
      [p + "attn.o.weight", [C, C]],
      [p + "attn.o.bias", [C]],
      [p + "ln2.gain", [C]],
      [p + "ln2.bias", [C]],
      [p + "mlp.in.weight", [C, F]],
      [p + "mlp.in.bias", [F]],
      [p + "mlp.out.weight", [F, C]],
      [p + "mlp.out.bias", [C]],
    );
  }
  shapes.push(["norm_f.gain", [C]], ["norm_f.bias", [C]]);
  const m = new Map<string, { data: Float64Array; dims: number[] }>();
  for (const [name, dims] of shapes) {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      // round through float32 so the float32 lib and this float64 reference see the same values
      data[i] = Math.fround(name.endsWith(".gain") ? 1 + 0.2 * normal() : 0.4 * normal());
    }
    m.set(name, { data, dims });
  }
  return m;
}

/** Plain float64 GPT-2: mean cross-entropy over B·T positions. */
function refLoss(p: Map<string, { data: Float64Array }>, inputs: Int32Array, targets: Int32Array): number {
  const C = config.dModel, F = config.dMlp, V = config.vocabSize, NH = config.nHead, hs = C / NH;
  const g = (n: string) => p.get(n)!.data;
  const linear = (x: number[], W: Float64Array, b: Float64Array, inD: number, outD: number) => {
    const y = Array.from(b);
    for (let k = 0; k < inD; k++) for (let j = 0; j < outD; j++) y[j] += x[k] * W[k * outD + j];
    return y;
  };
  const ln = (x: number[], gain: Float64Array, bias: Float64Array) => {
    const mu = x.reduce((a, b) => a + b, 0) / x.length;
    const va = x.reduce((a, b) => a + (b - mu) ** 2, 0) / x.length;
    return x.map((v, i) => ((v - mu) / Math.sqrt(va + config.normEps)) * gain[i] + bias[i]);
  };
  const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  let total = 0;
  for (let b = 0; b < B; b++) {
    let xs: number[][] = [];
    for (let t = 0; t < T; t++) {
      const tok = inputs[b * T + t];
      xs.push(Array.from({ length: C }, (_, i) => g("embed.tokens")[tok * C + i] + g("embed.positions")[t * C + i]));
    }
    for (let l = 0; l < config.nLayer; l++) {
      const q = `blocks.${l}.`;
      const qkv = xs.map((x) =>
        linear(ln(x, g(q + "ln1.gain"), g(q + "ln1.bias")), g(q + "attn.qkv.weight"), g(q + "attn.qkv.bias"), C, 3 * C)
      );
      const attOut = xs.map(() => new Array(C).fill(0));
      for (let h = 0; h < NH; h++) {
        for (let t = 0; t < T; t++) {
          const scores: number[] = [];
          for (let s = 0; s <= t; s++) {
            let d = 0;
            for (let i = 0; i < hs; i++) d += qkv[t][h * hs + i] * qkv[s][C + h * hs + i];
            scores.push(d / Math.sqrt(hs));
          }
          const mx = Math.max(...scores);
          const e = scores.map((v) => Math.exp(v - mx));
          const z = e.reduce((a, c) => a + c, 0);
          for (let s = 0; s <= t; s++) {
            for (let i = 0; i < hs; i++) attOut[t][h * hs + i] += (e[s] / z) * qkv[s][2 * C + h * hs + i];
          }
        }
      }
      xs = xs.map((x, t) => {
        const o = linear(attOut[t], g(q + "attn.o.weight"), g(q + "attn.o.bias"), C, C);
        return x.map((v, i) => v + o[i]);
      });
      xs = xs.map((x) => {
        const hid = linear(
          ln(x, g(q + "ln2.gain"), g(q + "ln2.bias")),
          g(q + "mlp.in.weight"),
          g(q + "mlp.in.bias"),
          C,
          F,
        )
          .map(gelu);
        const o = linear(hid, g(q + "mlp.out.weight"), g(q + "mlp.out.bias"), F, C);
        return x.map((v, i) => v + o[i]);
      });
    }
    for (let t = 0; t < T; t++) {
      const h = ln(xs[t], g("norm_f.gain"), g("norm_f.bias"));
      const logits: number[] = [];
      for (let v = 0; v < V; v++) {
        let d = 0;
        for (let i = 0; i < C; i++) d += h[i] * g("embed.tokens")[v * C + i];
        logits.push(d);
      }
      const mx = Math.max(...logits);
      const lse = mx + Math.log(logits.reduce((a, c) => a + Math.exp(c - mx), 0));
      total += lse - logits[targets[b * T + t]];
    }
  }
  return total / (B * T);
}

Deno.test("gpt2LossAndGrad() matches float64 central differences for every parameter tensor", () => {
  const p64 = randomParams(42);
  const inputs = new Int32Array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3]);
  const targets = new Int32Array([1, 4, 1, 5, 9, 2, 6, 5, 3, 5]);
  const p32: ParamMap = new Map();
  for (const [k, v] of p64) p32.set(k, { data: Float32Array.from(v.data), dims: v.dims });
  const { loss, grads } = gpt2LossAndGrad(config, p32, inputs, targets, { batch: B });

  // forward agreement: float32 vs float64 on O(1) activations, a few ulps of float32 per op
  const ref = refLoss(p64, inputs, targets);
  assertLess(Math.abs(loss - ref), 1e-5, `loss ${loss} vs float64 reference ${ref}`);

  // Central differences in float64 with h = 1e-5: truncation error O(h²·f''') ≈ 1e-10 and rounding
  // error ≈ 1e-16/h ≈ 1e-11, so the numeric gradient is exact to ~1e-9. The analytic gradient is
  // float32 (relative rounding ≈ 6e-8 per op, accumulated over sums of at most a few hundred terms,
  // ≲ 1e-5). Bound: max over a tensor of |a − n| / max(|a|, |n|, 1e-3·max|n|) < 1e-3: a 100× margin
  // over rounding, while a wrong term or factor in the backward pass gives errors of order 1.
  // The floor (1e-3 of the tensor's largest entry) keeps near-zero entries from being judged by
  // relative error alone.
  const h = 1e-5;
  let checked = 0;
  for (const [name, t] of p64) {
    const a = grads.get(name)!.data;
    assert(a.length === t.data.length, `${name} gradient size`);
    const num = new Float64Array(t.data.length);
    for (let i = 0; i < t.data.length; i++) {
      const x0 = t.data[i];
      t.data[i] = x0 + h;
      const lp = refLoss(p64, inputs, targets);
      t.data[i] = x0 - h;
      const lm = refLoss(p64, inputs, targets);
      t.data[i] = x0;
      num[i] = (lp - lm) / (2 * h);
    }
    const scale = num.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert(scale > 1e-6, `${name} has a non-trivial gradient (max ${scale})`);
    let worst = 0;
    for (let i = 0; i < num.length; i++) {
      const e = Math.abs(a[i] - num[i]) / Math.max(Math.abs(a[i]), Math.abs(num[i]), 1e-3 * scale);
      worst = Math.max(worst, e);
    }
    assertLess(worst, 1e-3, `${name}: max relative error ${worst}`);
    checked++;
  }
  assert(checked === 4 + 12 * config.nLayer, `checked ${checked} tensors`);
});
