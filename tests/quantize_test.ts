/**
 * Tests for lib/quantize.ts.
 *
 * Three independent checks per variant:
 * 1. Bytes: the stored tensors are dequantized by a reference written here
 *    (not shared with lib/) and compared with the fp32 weights within the
 *    format's precision, with the format's scale (not just any scale).
 * 2. Function: the variant, run by ONNX Runtime, computes the same logits as
 *    an fp32 model exported afresh from those dequantized weights (so the
 *    graph wiring, layouts and attributes are what ONNX Runtime expects).
 * 3. Closeness: next-token distributions stay within a per-dtype bound of
 *    fp32's, and `generate()` with the KV cache runs.
 */
import {
  assert,
  assertEquals,
  assertLessOrEqual,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { Tensor as HfTensor } from "@huggingface/transformers";
import { join } from "node:path";
import { exportModel } from "../lib/export.ts";
import { loadModel, type Model } from "../lib/load.ts";
import {
  DataType,
  encodeOnnx,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  type NodeInfo,
  OnnxFormatError,
  type OnnxModel,
  readOnnx,
  readOnnxBytes,
  tensorBytes,
  tensorValues,
} from "../lib/onnx.ts";
import {
  type QuantDtype,
  quantizeInt8,
  quantizeModel,
  quantizeOnnx,
  quantizeQ4Blocks,
  type QuantizeResult,
  quantizeUint8,
  toFloat16Bits,
} from "../lib/quantize.ts";
import type { ArchConfig, Gpt2Config, ParamMap } from "../lib/types.ts";
import { byteTokenizer, TINY_GPT2, TINY_LLAMA, tinyModelDir } from "./_fixtures.ts";

const DTYPES: QuantDtype[] = ["fp16", "q8", "int8", "q4"];
const PROMPTS = ["hello world", "The cat sat on the", "q"];

// ------------------------------------------------------------ fixtures

interface Fixture {
  config: ArchConfig;
  dir: string;
  params: ParamMap;
  names: Record<string, string>;
  fp32: OnnxModel;
  result: QuantizeResult;
  variants: Map<QuantDtype, OnnxModel>;
}

const fixtures = new Map<string, Promise<Fixture>>();

/** One exported model per config, quantized to every dtype once and shared by the tests. */
function fixture(config: ArchConfig, blockSize = 32): Promise<Fixture> {
  const key = `${JSON.stringify(config)}/${blockSize}`;
  let p = fixtures.get(key);
  if (!p) {
    p = (async () => {
      const { dir, params, names } = await tinyModelDir(config);
      const result = await quantizeModel(dir, { dtypes: DTYPES, blockSize });
      const fp32 = await readOnnx(join(dir, "onnx", "model.onnx"));
      const variants = new Map<QuantDtype, OnnxModel>();
      for (const v of result.variants) variants.set(v.dtype, await readOnnx(v.path));
      return { config, dir, params, names, fp32, result, variants };
    })();
    fixtures.set(key, p);
  }
  return p;
}

// ------------------------------------------------------------ reference dequantization (independent of lib/)

/** A dequantized matrix `[K, N]` and, per element, the largest error its format allows. */
interface Dequantized {
  values: Float64Array;
  tolerance: Float64Array;
}

function f32(m: OnnxModel, name: string): Float32Array {
  const v = tensorValues(m, name);
  assertEquals(v.dataType, DataType.FLOAT, `${name} should be float32`);
  return v.data as Float32Array;
}

function dims(m: OnnxModel, name: string): number[] {
  const info = m.initializers.find((i) => i.name === name);
  assert(info, `no initializer ${name}`);
  return info.dims;
}

/** float16: decode each 16-bit pattern with the platform's own float16 reader. */
function refFp16(m: OnnxModel, name: string): Float64Array {
  const info = m.initializers.find((i) => i.name === name)!;
  assertEquals(info.dataType, DataType.FLOAT16, `${name} should be stored as float16`);
  const raw = tensorBytes(m, name);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Float64Array.from({ length: info.elements }, (_, i) => dv.getFloat16(2 * i, true));
}

/** q8: `(q − zp) · scale`, uint8 (or int8) codes `[K, N]`, scalar or per-column scale and zero point. */
function refQ8(m: OnnxModel, w: string, K: number, N: number, type: number = DataType.UINT8): Dequantized {
  const q = tensorValues(m, `${w}_quantized`);
  assertEquals(q.dataType, type);
  assertEquals(q.dims, [K, N]);
  const scale = f32(m, `${w}_scale`);
  const zp = tensorValues(m, `${w}_zero_point`);
  assertEquals(zp.dataType, type);
  assert(scale.length === 1 || scale.length === N);
  assertEquals(zp.data.length, scale.length);
  const values = new Float64Array(K * N);
  const tolerance = new Float64Array(K * N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      const g = scale.length === 1 ? 0 : n;
      values[k * N + n] = (Number(q.data[k * N + n]) - Number(zp.data[g])) * scale[g];
      tolerance[k * N + n] = scale[g] * (0.5 + 1e-5);
    }
  }
  return { values, tolerance };
}

/** int8 QDQ: `(q − zp) · scale[n]` with per-column scale and zero point (axis 1). */
function refInt8(m: OnnxModel, w: string, K: number, N: number): Dequantized {
  const q = tensorValues(m, `${w}_quantized`);
  assertEquals(q.dataType, DataType.INT8);
  assertEquals(q.dims, [K, N]);
  const scale = f32(m, `${w}_scale`);
  const zp = tensorValues(m, `${w}_zero_point`);
  assertEquals(zp.dataType, DataType.INT8);
  assertEquals([scale.length, zp.data.length], [N, N]);
  const values = new Float64Array(K * N);
  const tolerance = new Float64Array(K * N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      values[k * N + n] = (Number(q.data[k * N + n]) - Number(zp.data[n])) * scale[n];
      tolerance[k * N + n] = scale[n] * (0.5 + 1e-5);
    }
  }
  return { values, tolerance };
}

/**
 * q4 (MatMulNBits): B `[N, kBlocks, blockSize/2]` holds column n of W in row n, two codes a byte,
 * low nibble first; scales `[N·kBlocks]`; zero points two a byte, low nibble first, `[N·ceil(kBlocks/2)]`.
 */
function refQ4(m: OnnxModel, w: string, K: number, N: number, blockSize: number): Dequantized & { padOk: boolean } {
  const kBlocks = Math.ceil(K / blockSize);
  const blob = blockSize / 2;
  const b = tensorValues(m, `${w}_Q4`);
  assertEquals(b.dataType, DataType.UINT8);
  assertEquals(b.dims, [N, kBlocks, blob]);
  const scales = f32(m, `${w}_scales`);
  assertEquals(scales.length, N * kBlocks);
  const zpt = tensorValues(m, `${w}_zero_points`);
  assertEquals(zpt.dataType, DataType.UINT8);
  const zpStride = Math.ceil(kBlocks / 2);
  assertEquals(zpt.data.length, N * zpStride);
  const values = new Float64Array(K * N);
  const tolerance = new Float64Array(K * N);
  let padOk = true;
  for (let n = 0; n < N; n++) {
    for (let blk = 0; blk < kBlocks; blk++) {
      const zpByte = Number(zpt.data[n * zpStride + (blk >> 1)]);
      const zp = blk % 2 === 0 ? zpByte & 15 : zpByte >> 4;
      if (blk === kBlocks - 1 && kBlocks % 2 === 1 && zpByte >> 4 !== 8) padOk = false;
      const scale = scales[n * kBlocks + blk];
      for (let i = 0; i < blockSize; i++) {
        const byte = Number(b.data[(n * kBlocks + blk) * blob + (i >> 1)]);
        const code = i % 2 === 0 ? byte & 15 : byte >> 4;
        const k = blk * blockSize + i;
        if (k >= K) {
          if (code !== zp) padOk = false;
          continue;
        }
        values[k * N + n] = (code - zp) * scale;
        tolerance[k * N + n] = scale * (0.5 + 1e-5);
      }
    }
  }
  return { values, tolerance, padOk };
}

/** The MatMul nodes of the fp32 graph that read a float32 matrix initializer: the learned weights. */
function learnedMatMuls(fp32: OnnxModel): NodeInfo[] {
  return fp32.nodes.filter((n) => {
    const info = fp32.initializers.find((i) => i.name === n.inputs[1]);
    return n.opType === "MatMul" && info?.dataType === DataType.FLOAT && info.dims.length === 2;
  });
}

/** Dequantizes one learned matrix of a variant with the reference above. */
function dequantize(fx: Fixture, dtype: QuantDtype, w: string, blockSize = 32): Dequantized {
  const [K, N] = dims(fx.fp32, w);
  const m = fx.variants.get(dtype)!;
  if (dtype === "fp16") {
    const values = refFp16(m, w);
    return { values, tolerance: values.map((v) => Math.abs(v) * 2 ** -11 + 2 ** -25) };
  }
  if (dtype === "q8") return refQ8(m, w, K, N);
  if (dtype === "int8") return refInt8(m, w, K, N);
  const r = refQ4(m, w, K, N, blockSize);
  assert(r.padOk, `${w}: padding codes must equal the block's zero point, and a spare zero-point nibble must be 8`);
  return r;
}

/** The fp32 parameters with every tensor the variant converted replaced by its dequantized values. */
function dequantizedParams(fx: Fixture, dtype: QuantDtype, blockSize = 32): ParamMap {
  const out: ParamMap = new Map(fx.params);
  const converted = fx.result.variants.find((v) => v.dtype === dtype)!.converted;
  for (const name of converted) {
    const readable = fx.names[name];
    assert(readable, `converted initializer ${name} is not a learned parameter`);
    const values = dtype === "fp16"
      ? refFp16(fx.variants.get(dtype)!, name)
      : dequantize(fx, dtype, name, blockSize).values;
    out.set(readable, { data: Float32Array.from(values), dims: fx.params.get(readable)!.dims });
  }
  return out;
}

// ------------------------------------------------------------ running models

async function logits(m: Model, prompt: string): Promise<{ data: Float32Array; dims: number[] }> {
  const out = await m.model!(m.tokenizer(prompt));
  return { data: out.logits.data as Float32Array, dims: out.logits.dims as number[] };
}

function softmax(z: Float32Array, from: number, n: number): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, z[from + i]);
  const p = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += p[i] = Math.exp(z[from + i] - max);
  return p.map((v) => v / sum);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assertEquals(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Greedy continuation without the KV cache: the whole sequence is run again for every token. */
async function greedyNoCache(m: Model, prompt: string, steps: number): Promise<number[]> {
  const ids = Array.from(m.tokenizer.encode(prompt));
  for (let s = 0; s < steps; s++) {
    const t = ids.length;
    const input_ids = new HfTensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, t]);
    const attention_mask = new HfTensor("int64", new BigInt64Array(t).fill(1n), [1, t]);
    const out = await m.model!({ input_ids, attention_mask });
    const z = out.logits.data as Float32Array;
    const v = out.logits.dims[2] as number;
    let best = 0;
    for (let i = 1; i < v; i++) if (z[(t - 1) * v + i] > z[(t - 1) * v + best]) best = i;
    ids.push(best);
  }
  return ids;
}

/**
 * Worst-case relative error of one stored weight: half a quantization step
 * over the largest magnitude the step covers.
 * - fp16: 11-bit significand, 2^-11.
 * - int8: symmetric per column, step max|W|/127, half step 1/254 of max|W|.
 * - q8: uint8 over [min(W,0), max(W,0)] (width ≤ 2·max|W|), half step ≤ max|W|/255; the
 *   activations are quantized the same way at run time, so another 1/255: 2/255 in all.
 * - q4: 4 bits per block over [min,max] ∋ 0, half step ≤ 2·max|W_block|/30 = max|W_block|/15.
 */
const WEIGHT_EPS: Record<QuantDtype, number> = { fp16: 2 ** -11, int8: 1 / 254, q8: 2 / 255, q4: 1 / 15 };

/**
 * First-order error budget for the logits: a relative perturbation ε of a
 * matrix moves its output by about ε of its size, and to first order these
 * add up over the weights a token passes through in series: two matrices per
 * sublayer, two sublayers per block, plus the embedding and the head/final
 * norm, so `D = 4·nLayer + 2`, and `max|Δlogit| ≤ D·ε·max|logit|`.
 * Given that, softmax bounds follow exactly: `q_i/p_i ∈ [e^−2B, e^2B]` gives
 * `|Δp_i| ≤ p_i (e^2B − 1)`, and Hoeffding's lemma gives `KL(p‖q) ≤ (2B)²/8`.
 */
function logitBudget(config: ArchConfig, dtype: QuantDtype, maxLogit: number): number {
  return (4 * config.nLayer + 2) * WEIGHT_EPS[dtype] * maxLogit;
}

// ------------------------------------------------------------ tensor-level formats

Deno.test("quantizeUint8() matches hand-computed codes, scale and zero point", () => {
  const q = quantizeUint8({ data: new Float32Array([-0.3, 0.2, 0, 1]), dims: [2, 2] });
  // Range [-0.3, 1] → scale 1.3/255; zp = round(0.3/scale) = round(58.85) = 59; 0.2/scale = 39.2 → 39 + 59.
  assertEquals([...q.data], [0, 98, 59, 255]);
  assertEquals(q.zeroPoint[0], 59);
  assert(Math.abs(q.scale[0] - 1.3 / 255) < 1e-9);
  const pc = quantizeUint8({ data: new Float32Array([-0.3, 0.2, 0, 1]), dims: [2, 2] }, { perChannel: true });
  // Column 0: [-0.3, 0] → scale 0.3/255, zp 255; column 1: [0.2, 1] widened to [0, 1] → scale 1/255, zp 0.
  assertEquals([...pc.zeroPoint], [255, 0]);
  assertEquals([...pc.data], [0, 51, 255, 255]);
  // An all-zero tensor gets scale 1 and zero point 0, as ONNX Runtime does.
  const z = quantizeUint8({ data: new Float32Array(4), dims: [2, 2] });
  assertEquals([z.scale[0], z.zeroPoint[0], ...z.data], [1, 0, 0, 0, 0, 0]);
});

Deno.test("quantizeInt8() is symmetric, per tensor or with one scale per output column", () => {
  const w = { data: new Float32Array([-1, 0.4, 0.3, 0.1]), dims: [2, 2] };
  const q = quantizeInt8(w, { perChannel: true });
  assertEquals([...q.data], [-127, 127, 38, 32]); // 0.3·127 = 38.1, 0.1·127/0.4 = 31.75
  assertEquals([...q.zeroPoint], [0, 0]);
  assert(Math.abs(q.scale[0] - 1 / 127) < 1e-9 && Math.abs(q.scale[1] - 0.4 / 127) < 1e-9);
  const t = quantizeInt8(w);
  assertEquals([...t.data], [-127, 51, 38, 13]); // 0.4·127 = 50.8, 0.1·127 = 12.7
  assertEquals([t.scale.length, t.zeroPoint[0]], [1, 0]);
});

Deno.test("quantizeQ4Blocks() packs a hand-made column low nibble first", () => {
  // v_k = (k − 5)/10: range [-0.5, 1.0] → scale 0.1, zero point 5, code k.
  const w = { data: Float32Array.from({ length: 16 }, (_, k) => (k - 5) / 10), dims: [16, 1] };
  const q = quantizeQ4Blocks(w, 16);
  assertEquals(q.dims, [1, 1, 8]);
  assertEquals([...q.data], [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
  assert(Math.abs(q.scales[0] - 0.1) < 1e-7);
  assertEquals([...q.zeroPoints], [0x85]); // zp 5 low; the absent second block's nibble is 8
  // K = 20 → two blocks, the second padded with its zero point.
  const w2 = { data: Float32Array.from({ length: 20 }, (_, k) => (k % 16 - 5) / 10), dims: [20, 1] };
  const q2 = quantizeQ4Blocks(w2, 16);
  assertEquals(q2.dims, [1, 2, 8]);
  const zp1 = q2.zeroPoints[0] >> 4;
  const tail = [...q2.data.slice(8 + 2)]; // codes 4..15 of block 1 are padding
  assert(tail.every((byte) => (byte & 15) === zp1 && byte >> 4 === zp1), `padding ${tail} vs zp ${zp1}`);
});

Deno.test("toFloat16Bits() rounds to nearest even like the platform's Float16Array", () => {
  const xs = new Float32Array([0, -0, 1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65520, 1e-8, -3.14159]);
  const bits = toFloat16Bits(xs);
  const dv = new DataView(new ArrayBuffer(2));
  for (let i = 0; i < xs.length; i++) {
    dv.setUint16(0, bits[i]);
    assertEquals(dv.getFloat16(0), Math.f16round(xs[i]), `value ${xs[i]}`);
  }
});

// ------------------------------------------------------------ stored bytes

for (const config of [TINY_GPT2, TINY_LLAMA]) {
  const fam = config.family;

  Deno.test(`quantizeModel() stores ${fam} fp16 weights that round-trip to the nearest float16`, async () => {
    const fx = await fixture(config);
    const v = fx.variants.get("fp16")!;
    const converted = fx.result.variants.find((x) => x.dtype === "fp16")!.converted;
    // Every learned tensor, and only those: shape constants and rotary tables keep their type.
    assertEquals(new Set(converted), new Set(Object.keys(fx.names)));
    for (const name of converted) {
      const got = refFp16(v, name);
      const want = f32(fx.fp32, name);
      for (let i = 0; i < want.length; i++) {
        assertEquals(got[i], Math.f16round(want[i]), `${name}[${i}]`);
        assert(Math.abs(got[i] - want[i]) <= Math.abs(want[i]) * 2 ** -11 + 2 ** -25);
      }
      const cast = v.nodes.find((n) => n.name === `${name}_Cast`);
      assert(cast && cast.opType === "Cast" && cast.attributes.to === DataType.FLOAT, `Cast after ${name}`);
      assertEquals(cast.outputs, [`${name}_Cast_output_0`]);
      assert(!v.nodes.some((n) => n !== cast && n.inputs.includes(name)), `only the Cast reads ${name}`);
    }
    for (const info of v.initializers.filter((i) => i.name.startsWith("const_") || /rotary/.test(i.name))) {
      assertEquals(info.dataType, fx.fp32.initializers.find((i) => i.name === info.name)!.dataType, info.name);
    }
    // Graph inputs and outputs (the KV cache included) stay float32.
    assertEquals(v.inputs, fx.fp32.inputs);
    assertEquals(v.outputs, fx.fp32.outputs);
  });

  for (const dtype of ["q8", "int8", "q4"] as const) {
    Deno.test(`quantizeModel() stores ${fam} ${dtype} weights within half a step of fp32, at the format's scale`, async () => {
      const fx = await fixture(config);
      const v = fx.variants.get(dtype)!;
      const matmuls = learnedMatMuls(fx.fp32);
      const converted = fx.result.variants.find((x) => x.dtype === dtype)!.converted;
      assertEquals(new Set(converted), new Set(matmuls.map((n) => n.inputs[1])));
      // GPT-2: 4 per block; LLaMA: 7 per block plus the untied head.
      assertEquals(converted.length, fam === "gpt2" ? 4 * config.nLayer : 7 * config.nLayer + 1);
      for (const w of converted) {
        const [K, N] = dims(fx.fp32, w);
        const want = f32(fx.fp32, w);
        const d = dequantize(fx, dtype, w);
        for (let i = 0; i < want.length; i++) {
          const err = Math.abs(d.values[i] - want[i]);
          assert(err <= d.tolerance[i], `${w}[${i}]: |${d.values[i]} − ${want[i]}| > ${d.tolerance[i]}`);
        }
        // The step is the format's, computed here in float64 from the fp32 weights.
        if (dtype === "q8") {
          const s = f32(v, `${w}_scale`)[0];
          const range = Math.max(0, ...want) - Math.min(0, ...want);
          assert(Math.abs(s - range / 255) <= 1e-6 * s, `${w}: scale ${s} vs range/255 ${range / 255}`);
        } else if (dtype === "int8") {
          const s = f32(v, `${w}_scale`);
          for (let n = 0; n < N; n++) {
            let m = 0;
            for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(want[k * N + n]));
            assert(Math.abs(s[n] - m / 127) <= 1e-6 * s[n], `${w}: column ${n} scale ${s[n]} vs ${m / 127}`);
          }
        } else {
          const s = f32(v, `${w}_scales`);
          const kBlocks = Math.ceil(K / 32);
          for (let n = 0; n < N; n++) {
            for (let b = 0; b < kBlocks; b++) {
              let lo = 0;
              let hi = 0;
              for (let k = b * 32; k < Math.min(K, b * 32 + 32); k++) {
                lo = Math.min(lo, want[k * N + n]);
                hi = Math.max(hi, want[k * N + n]);
              }
              const got = s[n * kBlocks + b];
              assert(Math.abs(got - (hi - lo) / 15) <= 1e-6 * got, `${w}: block (${n}, ${b}) scale ${got}`);
            }
          }
        }
        // The fp32 matrix is gone: only its quantized form is stored.
        assert(!v.initializers.some((i) => i.name === w), `${w} should be replaced`);
      }
      // Embeddings (Gather) and the tied head (Transpose of the embedding) stay float32.
      for (const n of v.nodes.filter((x) => x.opType === "Gather" || x.opType === "Transpose")) {
        const info = v.initializers.find((i) => i.name === n.inputs[0]);
        if (info) assertEquals(info.dataType, DataType.FLOAT, `${n.name} reads ${info.name}`);
      }
    });
  }
}

Deno.test("quantizeModel() names q8 nodes and tensors as ONNX Runtime's quantize_dynamic does", async () => {
  const fx = await fixture(TINY_GPT2);
  const v = fx.variants.get("q8")!;
  const w = "transformer.h.0.attn.c_attn.weight";
  const a = "/transformer/h.0/ln_1/LayerNormalization_output_0";
  const m = "/transformer/h.0/attn/c_attn/MatMul";
  const y = `${m}_output_0`;
  const byName = new Map(v.nodes.map((n) => [n.name, n]));
  const dql = byName.get(`${a}_QuantizeLinear`)!;
  assertEquals([dql.opType, dql.inputs, dql.outputs], [
    "DynamicQuantizeLinear",
    [a],
    [`${a}_quantized`, `${a}_scale`, `${a}_zero_point`],
  ]);
  const mmi = byName.get(`${m}_quant`)!;
  assertEquals([mmi.opType, mmi.inputs, mmi.outputs], [
    "MatMulInteger",
    [`${a}_quantized`, `${w}_quantized`, `${a}_zero_point`, `${w}_zero_point`],
    [`${y}_output_quantized`],
  ]);
  const cast = byName.get(`${y}_output_quantized_cast`)!;
  assertEquals([cast.opType, cast.outputs, cast.attributes.to], ["Cast", [`${y}_output_quantized_cast_output`], 1]);
  const scales = byName.get(`${m}_quant_scales_mul`)!;
  assertEquals([scales.opType, scales.inputs, scales.outputs], ["Mul", [`${a}_scale`, `${w}_scale`], [
    `${m}_quant_scales_mul:0`,
  ]]);
  const out = byName.get(`${m}_quant_output_scale_mul`)!;
  assertEquals([out.opType, out.inputs, out.outputs], ["Mul", [
    `${y}_output_quantized_cast_output`,
    `${m}_quant_scales_mul:0`,
  ], [y]]);
  assertEquals([dims(v, `${w}_scale`), dims(v, `${w}_zero_point`)], [[], []]);
  // LLaMA's q, k and v projections read one normalized activation: it is quantized once.
  const lx = (await fixture(TINY_LLAMA)).variants.get("q8")!;
  // Per block: the q/k/v input, the o input, the gate/up input, the down input; plus the head's input.
  assertEquals(lx.nodes.filter((n) => n.opType === "DynamicQuantizeLinear").length, 4 * TINY_LLAMA.nLayer + 1);
  assertEquals(lx.nodes.filter((n) => n.opType === "MatMulInteger").length, 7 * TINY_LLAMA.nLayer + 1);
});

Deno.test("quantizeModel() names int8 QDQ and q4 MatMulNBits nodes as ONNX Runtime's quantizers do", async () => {
  const fx = await fixture(TINY_GPT2);
  const w = "transformer.h.1.mlp.c_fc.weight";
  const m = "/transformer/h.1/mlp/c_fc/MatMul";
  const int8 = fx.variants.get("int8")!;
  const dq = int8.nodes.find((n) => n.name === `${w}_DequantizeLinear`)!;
  assertEquals([dq.opType, dq.inputs, dq.outputs, dq.attributes.axis], [
    "DequantizeLinear",
    [`${w}_quantized`, `${w}_scale`, `${w}_zero_point`],
    [`${w}_DequantizeLinear_Output`],
    1,
  ]);
  assertEquals(int8.nodes.find((n) => n.name === m)!.inputs[1], `${w}_DequantizeLinear_Output`);
  const q4 = fx.variants.get("q4")!;
  const nb = q4.nodes.find((n) => n.name === `${m}_Q4`)!;
  assertEquals([nb.opType, nb.domain, nb.outputs], ["MatMulNBits", "com.microsoft", [`${m}_output_0`]]);
  assertEquals(nb.inputs.slice(1), [`${w}_Q4`, `${w}_scales`, `${w}_zero_points`]);
  assertEquals(nb.attributes, { K: 32, N: 128, bits: 4, block_size: 32 });
  assert(q4.proto.opsetImport!.some((o) => o.domain === "com.microsoft" && Number(o.version) === 1));
  const leveled = readOnnxBytes(encodeOnnx(quantizeOnnx(fx.fp32, "q4", { accuracyLevel: 4 }).proto));
  assertEquals(leveled.nodes.find((n) => n.name === `${m}_Q4`)!.attributes.accuracy_level, 4);
});

Deno.test("quantizeOnnx() keeps a weight other nodes still read, and fp16 keeps values beyond ±65504", () => {
  // y = x·W + W[0] (W also read by Gather), z = x·B with B too large for float16.
  const w = new Float32Array([0.5, -0.25, 1, 0.125]);
  const big = new Float32Array([1e5, 1, 2, 3]);
  const proto = makeModel({
    name: "shared",
    nodes: [
      makeNode("MatMul", ["x", "W"], ["xw"]),
      makeNode("Gather", ["W", "i0"], ["row"], { axis: 0 }),
      makeNode("Add", ["xw", "row"], ["y"]),
      makeNode("MatMul", ["x", "B"], ["z"], {}, "/big/MatMul"),
    ],
    inputs: [makeValueInfo("x", DataType.FLOAT, [1, 2])],
    outputs: [makeValueInfo("y", DataType.FLOAT, [1, 2]), makeValueInfo("z", DataType.FLOAT, [1, 2])],
    initializers: [
      makeTensor("W", [2, 2], w),
      makeTensor("B", [2, 2], big),
      makeTensor("i0", [], BigInt64Array.from([0n])),
    ],
  });
  const model = readOnnxBytes(encodeOnnx(proto));
  const q8 = readOnnxBytes(encodeOnnx(quantizeOnnx(model, "q8").proto));
  assertEquals(tensorValues(q8, "W").data, w); // still read by the Gather
  assert(q8.initializers.some((i) => i.name === "W_quantized"));
  assert(!q8.initializers.some((i) => i.name === "B"));
  // An unnamed MatMul gets ONNX Runtime's fallback name for the scale product.
  assert(q8.nodes.some((n) => n.name === "x_scale_W_scale_mul" && n.outputs[0] === "x_scale_W_scale_mul:0"));
  assertEquals(q8.nodes.filter((n) => n.opType === "DynamicQuantizeLinear").length, 1);
  const fp16 = quantizeOnnx(model, "fp16");
  assertEquals(fp16.converted, ["W"]);
  assertEquals(fp16.keptFloat32, ["B"]);
});

Deno.test("quantizeModel() writes q4 for K not a multiple of the block size, and honours blockSize", async () => {
  // d_model 48 and d_mlp 80 with blocks of 32: 2 and 3 blocks per column, the last padded.
  const odd: Gpt2Config = { ...TINY_GPT2, dModel: 48, dMlp: 80 };
  for (const blockSize of [32, 16]) {
    const fx = await fixture(odd, blockSize);
    for (const w of fx.result.variants.find((x) => x.dtype === "q4")!.converted) {
      const want = f32(fx.fp32, w);
      const d = dequantize(fx, "q4", w, blockSize);
      for (let i = 0; i < want.length; i++) assert(Math.abs(d.values[i] - want[i]) <= d.tolerance[i]);
      const nb = fx.variants.get("q4")!.nodes.find((n) => n.inputs[1] === `${w}_Q4`)!;
      assertEquals(nb.attributes.block_size, blockSize);
    }
    const m = await loadModel(fx.dir, { dtype: "q4" });
    try {
      const l = await logits(m, "odd sizes");
      assertEquals(l.dims, [1, 9, odd.vocabSize]);
      assert(l.data.every(Number.isFinite));
    } finally {
      await m.dispose();
    }
  }
});

Deno.test("quantizeModel() writes q8 per channel and with int8 weights, and each runs", async () => {
  for (
    const opts of [{ perChannel: true }, { weightType: "int8" as const }, {
      weightType: "int8" as const,
      perChannel: true,
    }]
  ) {
    const { dir } = await tinyModelDir(TINY_GPT2);
    const r = await quantizeModel(dir, { dtypes: ["q8"], ...opts });
    const fp32 = await readOnnx(join(dir, "onnx", "model.onnx"));
    const v = await readOnnx(r.variants[0].path);
    const type = opts.weightType === "int8" ? DataType.INT8 : DataType.UINT8;
    for (const w of r.variants[0].converted) {
      const [K, N] = dims(fp32, w);
      const want = f32(fp32, w);
      const d = refQ8(v, w, K, N, type);
      for (let i = 0; i < want.length; i++) assert(Math.abs(d.values[i] - want[i]) <= d.tolerance[i], `${w}[${i}]`);
      assertEquals(dims(v, `${w}_scale`), opts.perChannel ? [N] : []);
      if (type === DataType.INT8) {
        // Symmetric: zero point 0 and scale max|W|/127 per group.
        assert([...tensorValues(v, `${w}_zero_point`).data].every((z) => z === 0));
        const s = f32(v, `${w}_scale`);
        const absMax = (n?: number) => {
          let m = 0;
          for (let k = 0; k < K; k++) {
            for (let j = 0; j < N; j++) if (n === undefined || j === n) m = Math.max(m, Math.abs(want[k * N + j]));
          }
          return m;
        };
        for (let g = 0; g < s.length; g++) {
          const m = absMax(opts.perChannel ? g : undefined);
          assert(Math.abs(s[g] - m / 127) <= 1e-6 * s[g], `${w}: scale ${s[g]} vs ${m / 127}`);
        }
      }
    }
    const base = await loadModel(dir);
    const m = await loadModel(dir, { dtype: "q8" });
    try {
      const l0 = await logits(base, "per channel");
      const l1 = await logits(m, "per channel");
      assertLessOrEqual(maxAbsDiff(l0.data, l1.data), logitBudget(TINY_GPT2, "q8", maxAbs(l0.data)));
      const out = await m.model!.generate({ ...m.tokenizer("ab"), max_new_tokens: 3, do_sample: false });
      assertEquals((out as unknown as { tolist(): bigint[][] }).tolist()[0].length, 5);
    } finally {
      await base.dispose();
      await m.dispose();
    }
  }
});

Deno.test("quantizeModel() finds weights by graph structure in anonymized exports", async () => {
  const named = await fixture(TINY_GPT2);
  const { dir, names } = await tinyModelDir(TINY_GPT2, { anonymize: true });
  const r = await quantizeModel(dir, { dtypes: ["q4", "q8"] });
  for (const v of r.variants) {
    const anon = await readOnnx(v.path);
    const twin = named.variants.get(v.dtype)!;
    assertEquals(v.converted.length, named.result.variants.find((x) => x.dtype === v.dtype)!.converted.length);
    for (const w of v.converted) {
      assert(w.startsWith("onnx::MatMul_"), w);
      const readable = names[w];
      const original = Object.entries(named.names).find(([, r]) => r === readable)![0];
      const suffix = v.dtype === "q4" ? "_Q4" : "_quantized";
      assertEquals(tensorBytes(anon, `${w}${suffix}`), tensorBytes(twin, `${original}${suffix}`), readable);
    }
  }
});

Deno.test("quantizeModel() reads external data and writes self-contained variants", async () => {
  const { dir } = await tinyModelDir(TINY_GPT2, { externalDataThreshold: 1024 });
  const r = await quantizeModel(dir, { dtypes: ["fp16", "q4"] });
  const dataBytes = (await Deno.stat(join(dir, "onnx", "model.onnx_data"))).size;
  assertEquals(r.sourceBytes, (await Deno.stat(r.source)).size + dataBytes);
  for (const v of r.variants) {
    const m = await readOnnx(v.path);
    assert(m.initializers.every((i) => !i.external), `${v.file} should hold its data inline`);
  }
  const m = await loadModel(dir, { dtype: "q4" });
  try {
    assert((await logits(m, "external")).data.every(Number.isFinite));
  } finally {
    await m.dispose();
  }
});

// ------------------------------------------------------------ sizes

Deno.test("quantizeModel() shrinks files: fp16 halves learned tensors, q8/int8 quarter and q4 ~1/6 the matrices", async () => {
  for (const config of [TINY_GPT2, TINY_LLAMA]) {
    const fx = await fixture(config);
    const bytesOf = (m: OnnxModel, names: string[]) => names.reduce((s, n) => s + tensorBytes(m, n).byteLength, 0);
    for (const v of fx.result.variants) {
      const m = fx.variants.get(v.dtype)!;
      assertEquals(v.bytes, (await Deno.stat(v.path)).size);
      assertEquals(v.ratio, v.bytes / fx.result.sourceBytes);
      assert(v.ratio < 0.7, `${config.family} ${v.dtype}: ratio ${v.ratio}`);
      const before = bytesOf(fx.fp32, v.converted);
      const after = v.dtype === "fp16" ? bytesOf(m, v.converted) : bytesOf(
        m,
        v.converted.flatMap((w) =>
          v.dtype === "q4"
            ? [`${w}_Q4`, `${w}_scales`, `${w}_zero_points`]
            : [`${w}_quantized`, `${w}_scale`, `${w}_zero_point`]
        ),
      );
      // fp16: 2 of 4 bytes. q8: 1 byte + a scale. int8: 1 byte + 5 bytes per column.
      // q4 (blocks of 32): ½ byte + 4/32 (scale) + ½/32 (zero point) per value, of 4 bytes ≈ 0.16.
      const expected = { fp16: [0.5, 0.5], q8: [0.25, 0.26], int8: [0.25, 0.3], q4: [0.16, 0.17] }[v.dtype];
      const ratio = after / before;
      assert(ratio >= expected[0] - 1e-9 && ratio <= expected[1], `${v.dtype}: matrix bytes ratio ${ratio}`);
    }
    const size = (d: QuantDtype) => fx.result.variants.find((x) => x.dtype === d)!.bytes;
    assert(size("q4") < size("q8") && size("q4") < size("int8") && size("q4") < size("fp16"));
  }
});

// ------------------------------------------------------------ running the variants

for (const config of [TINY_GPT2, TINY_LLAMA]) {
  for (const dtype of DTYPES) {
    Deno.test(`${config.family} ${dtype}: ONNX Runtime computes the fp32 function of the stored weights`, async () => {
      const fx = await fixture(config);
      // An fp32 model exported afresh from the weights this test decoded out of the variant.
      const ref = await Deno.makeTempDir({ prefix: "paramscope-deq-" });
      await exportModel(ref, {
        config,
        params: dequantizedParams(fx, dtype),
        tokenizer: byteTokenizer(config.maxPositions),
        eosTokenId: 256,
      });
      const a = await loadModel(fx.dir, { dtype });
      const b = await loadModel(ref);
      try {
        for (const prompt of PROMPTS) {
          const la = await logits(a, prompt);
          const lb = await logits(b, prompt);
          assertEquals(la.dims, lb.dims);
          const scale = maxAbs(lb.data);
          // fp16 and q4: float32 rounding only. q8 quantizes activations at run time (1/255 of their range
          // per matrix input); so does int8, because ONNX Runtime fuses DequantizeLinear → MatMul into a
          // dynamically quantized MatMul at its extended optimization level (transformers.js runs with all).
          const tol = dtype === "q8" || dtype === "int8"
            ? (4 * config.nLayer + 2) * scale / 255
            : 1e-4 * Math.max(1, scale);
          const d = maxAbsDiff(la.data, lb.data);
          assertLessOrEqual(d, tol, `${prompt}: max |Δlogit| ${d}`);
        }
      } finally {
        await a.dispose();
        await b.dispose();
      }
    });

    Deno.test(`${config.family} ${dtype}: next-token distributions stay within the format's bound of fp32`, async () => {
      const fx = await fixture(config);
      const base = await loadModel(fx.dir);
      const m = await loadModel(fx.dir, { dtype });
      try {
        for (const prompt of PROMPTS) {
          const l0 = await logits(base, prompt);
          const l1 = await logits(m, prompt);
          const bound = logitBudget(config, dtype, maxAbs(l0.data));
          const dLogit = maxAbsDiff(l0.data, l1.data);
          assertLessOrEqual(dLogit, bound, `${prompt}: max |Δlogit| ${dLogit}`);
          const v = config.vocabSize;
          const t = l0.dims[1];
          const p = softmax(l0.data, (t - 1) * v, v);
          const q = softmax(l1.data, (t - 1) * v, v);
          const maxP = Math.max(...p);
          assertLessOrEqual(maxAbsDiff(p, q), maxP * Math.expm1(2 * bound));
          let kl = 0;
          for (let i = 0; i < v; i++) kl += p[i] * Math.log(p[i] / q[i]);
          assertLessOrEqual(kl, (2 * bound) ** 2 / 8);
        }
      } finally {
        await base.dispose();
        await m.dispose();
      }
    });

    Deno.test(`${config.family} ${dtype}: generate() runs with the KV cache`, async () => {
      const fx = await fixture(config);
      const m = await loadModel(fx.dir, { dtype });
      try {
        const prompt = "The cat";
        const inputs = m.tokenizer(prompt);
        const out = await m.model!.generate({ ...inputs, max_new_tokens: 6, do_sample: false });
        const ids = (out as unknown as { tolist(): bigint[][] }).tolist()[0].map(Number);
        assertEquals(ids.length, (inputs.input_ids.dims as number[])[1] + 6);
        assert(ids.every((id) => id >= 0 && id < config.vocabSize));
        // With the cache or without it, greedy decoding of the same file picks the same tokens. (q8 is left
        // out: its activation scale is taken over whatever tensor it sees, one new token or the whole sequence.)
        if (dtype !== "q8") assertEquals(ids, await greedyNoCache(m, prompt, 6));
      } finally {
        await m.dispose();
      }
    });
  }
}

// ------------------------------------------------------------ bad input

Deno.test("quantizeModel() explains a folder without onnx/model.onnx", async () => {
  const dir = await Deno.makeTempDir();
  const e = await assertRejects(() => quantizeModel(dir, { dtypes: ["q4"] }), OnnxFormatError);
  assertStringIncludes(e.message, join(dir, "onnx", "model.onnx"));
  assertStringIncludes(e.message, "exportModel");
});

Deno.test("quantizeModel() names an unknown dtype and lists the known ones, before writing anything", async () => {
  const { dir } = await tinyModelDir(TINY_GPT2);
  const e = await assertRejects(
    // deno-lint-ignore no-explicit-any
    () => quantizeModel(dir, { dtypes: ["fp16", "fp8" as any] }),
    RangeError,
  );
  assertStringIncludes(e.message, '"fp8"');
  assertStringIncludes(e.message, "fp16, q8, int8, q4");
  assertEquals([...Deno.readDirSync(join(dir, "onnx"))].map((f) => f.name), ["model.onnx"]);
  await assertRejects(() => quantizeModel(dir, { dtypes: [] }), RangeError, "at least one");
  // deno-lint-ignore no-explicit-any
  await assertRejects(() => quantizeModel(dir, {} as any), TypeError, "options.dtypes");
});

Deno.test("quantizeModel() rejects a block size that is not a power of two ≥ 16", async () => {
  const { dir } = await tinyModelDir(TINY_GPT2);
  for (const blockSize of [24, 8, 0, -32, 33.5, NaN]) {
    const e = await assertRejects(() => quantizeModel(dir, { dtypes: ["q4"], blockSize }), RangeError);
    assertStringIncludes(e.message, `blockSize ${blockSize}`);
    assertStringIncludes(e.message, "power of two");
  }
  assertThrows(() => quantizeQ4Blocks({ data: new Float32Array(4), dims: [2, 2] }, 48), RangeError, "power of two");
  await assertRejects(() => quantizeModel(dir, { dtypes: ["q4"], accuracyLevel: 7 }), RangeError, "accuracyLevel 7");
  // deno-lint-ignore no-explicit-any
  await assertRejects(() => quantizeModel(dir, { dtypes: ["q8"], weightType: "int4" as any }), RangeError, '"int4"');
});

Deno.test("quantizeOnnx() refuses a model with no float32 MatMul weight left to quantize", async () => {
  const fx = await fixture(TINY_GPT2);
  const e = assertThrows(() => quantizeOnnx(fx.variants.get("q4")!, "q8"), RangeError);
  assertStringIncludes(e.message, "nothing to quantize");
  assertThrows(() => quantizeUint8({ data: new Float32Array(3), dims: [3] }), RangeError, "matrix");
});
