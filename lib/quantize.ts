/**
 * Writes the lower-precision variants of an exported model beside its
 * `onnx/model.onnx`, in the layouts hub repositories carry and the real tools
 * write, so that `loadModel(dir, { dtype })` loads them and a weights reader
 * that understands hub files understands these too:
 *
 * | dtype | file | what changes |
 * |---|---|---|
 * | `fp16` | `model_fp16.onnx` | learned float initializers stored as FLOAT16, each followed by `Cast(to=FLOAT)`; compute, inputs, outputs and the KV cache stay float32 |
 * | `q8` | `model_quantized.onnx` | ONNX Runtime `quantize_dynamic` layout (weights QUInt8, per tensor or per column): `DynamicQuantizeLinear` → `MatMulInteger` → `Cast` → `Mul` |
 * | `int8` | `model_int8.onnx` | QDQ: symmetric int8 weights, one scale per output column, `DequantizeLinear(axis=1)` feeding the `MatMul` |
 * | `q4` | `model_q4.onnx` | `com.microsoft::MatMulNBits` (ONNX Runtime `MatMul4BitsQuantizer`, asymmetric, blocks of `blockSize` along K) |
 *
 * Learned matrices are found by structure, not by name: a `MatMul` whose second
 * input is a float32 rank-2 initializer `W [K, N]`. So files with readable
 * PyTorch names and anonymized ones (`onnx::MatMul_12`) quantize alike. Gather
 * embeddings and the tied head (`Transpose` of the embedding) stay float32 in
 * the integer formats, as ONNX Runtime's quantizers leave them by default.
 *
 * @example
 * ```ts
 * import { bundledModelPath } from "@paramscope/kit/load";
 * import { quantizeModel } from "@paramscope/kit/quantize";
 * const dir = await Deno.makeTempDir(); // a copy of the bundled model's fp32 file
 * await Deno.mkdir(`${dir}/onnx`);
 * await Deno.copyFile(`${bundledModelPath()}/onnx/model.onnx`, `${dir}/onnx/model.onnx`);
 * const r = await quantizeModel(dir, { dtypes: ["fp16", "q8", "q4"] });
 * for (const v of r.variants) console.log(v.file, v.bytes, v.ratio.toFixed(2));
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { DTYPE_FILES } from "./load.ts";
import {
  DataType,
  floatToHalf,
  type InitializerInfo,
  makeNode,
  makeTensor,
  type ModelProto,
  type NodeProto,
  OnnxFormatError,
  type OnnxModel,
  readOnnx,
  tensorBytes,
  type TensorProto,
  tensorValues,
  writeOnnx,
} from "./onnx.ts";
import type { Tensor } from "./types.ts";

/** A variant {@linkcode quantizeModel} can write. */
export type QuantDtype = "fp16" | "q8" | "int8" | "q4";

/** The variants, in the order of the table above. */
export const QUANT_DTYPES: readonly QuantDtype[] = Object.freeze(["fp16", "q8", "int8", "q4"]);

/** Smallest positive normal float32; ONNX Runtime treats a smaller scale as "all zero" and uses 1. */
const FLT_MIN = 1.1754943508222875e-38;
/** Largest finite float16. */
const HALF_MAX = 65504;

/** Options for {@linkcode quantizeOnnx}. */
export interface QuantizeOnnxOptions {
  /** q4: weights per block along K; a power of two ≥ 16 (default `32`). */
  blockSize?: number;
  /** q8: one scale and zero point per output column (`[N]`) instead of per tensor (default `false`). */
  perChannel?: boolean;
  /**
   * q8: weight element type (default `"uint8"`, asymmetric QUInt8). `"int8"` stores symmetric QInt8 weights
   * (zero point 0, range ±127) in the same `MatMulInteger` layout, which is what transformers.js'
   * `scripts/quantize.py` writes for models without Conv/attention contrib ops, in `model_quantized.onnx`
   * and in `model_int8.onnx`.
   */
  weightType?: "uint8" | "int8";
  /** q4: the `accuracy_level` attribute of `MatMulNBits`, 0–4 (default: not written, ONNX Runtime's default). */
  accuracyLevel?: number;
}

/** What {@linkcode quantizeOnnx} built. */
export interface QuantizeOnnxResult {
  /** The variant's model, ready for `writeOnnx`. */
  proto: ModelProto;
  /** Source initializers that were converted (fp16) or quantized (q8, int8, q4), in file order. */
  converted: string[];
  /** fp16: learned float initializers left in float32 because a value exceeds the float16 range (±65504). */
  keptFloat32: string[];
}

/** Options for {@linkcode quantizeModel}. */
export interface QuantizeOptions extends QuantizeOnnxOptions {
  /** Variants to write (duplicates are written once). */
  dtypes: readonly QuantDtype[];
}

/** One file written by {@linkcode quantizeModel}. */
export interface QuantizedVariant {
  /** The variant. */
  dtype: QuantDtype;
  /** Absolute path of the file written. */
  path: string;
  /** File name inside `onnx/`, e.g. `model_q4.onnx`. */
  file: string;
  /** Bytes written. */
  bytes: number;
  /** `bytes` over the fp32 model's bytes (external data included). */
  ratio: number;
  /** Source initializers converted or quantized. */
  converted: string[];
}

/** What {@linkcode quantizeModel} wrote. */
export interface QuantizeResult {
  /** The model folder. */
  dir: string;
  /** Path of the fp32 source, `dir/onnx/model.onnx`. */
  source: string;
  /** Bytes of the fp32 model (its `.onnx` plus external data, if any). */
  sourceBytes: number;
  /** One entry per variant, in the order asked. */
  variants: QuantizedVariant[];
}

/**
 * Checks and normalizes the options shared by the graph and file functions.
 * @throws {RangeError} for a bad block size or accuracy level
 */
function checkOptions(options: QuantizeOnnxOptions): Required<Omit<QuantizeOnnxOptions, "accuracyLevel">> & {
  accuracyLevel?: number;
} {
  const blockSize = options.blockSize ?? 32;
  if (!Number.isInteger(blockSize) || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
    throw new RangeError(
      `blockSize ${blockSize} is not a power of two ≥ 16, which MatMulNBits needs: use 16, 32, 64, 128 or 256.`,
    );
  }
  const level = options.accuracyLevel;
  if (level !== undefined && !(Number.isInteger(level) && level >= 0 && level <= 4)) {
    throw new RangeError(`accuracyLevel ${level} is not one of MatMulNBits' levels 0–4; leave it out for the default.`);
  }
  const weightType = options.weightType ?? "uint8";
  if (weightType !== "uint8" && weightType !== "int8") {
    throw new RangeError(`weightType ${JSON.stringify(weightType)} is not "uint8" or "int8".`);
  }
  return { blockSize, perChannel: options.perChannel ?? false, weightType, accuracyLevel: level };
}

function checkDtype(dtype: unknown): asserts dtype is QuantDtype {
  if (!QUANT_DTYPES.includes(dtype as QuantDtype)) {
    throw new RangeError(
      `Unknown dtype ${JSON.stringify(dtype)}: quantizeModel() writes ${QUANT_DTYPES.join(", ")}. ` +
        `(fp32 is the source itself.)`,
    );
  }
}

// ------------------------------------------------------------ tensor formats

/** Round half to even, as numpy's `round` (ONNX Runtime's Python quantizer rounds with it). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

function matrixDims(w: Tensor, what: string): [number, number] {
  if (w.dims.length !== 2 || w.data.length !== w.dims[0] * w.dims[1]) {
    throw new RangeError(`${what} needs a matrix [K, N]; got dims [${w.dims}] with ${w.data.length} values.`);
  }
  return [w.dims[0], w.dims[1]];
}

/**
 * float32 → IEEE float16 bit patterns, rounding to nearest even (as numpy and
 * onnxconverter-common do). Values beyond ±65504 become ±Infinity.
 *
 * @param data float32 values
 * @returns the 16-bit patterns, one per value
 *
 * @example
 * ```ts
 * import { toFloat16Bits } from "@paramscope/kit/quantize";
 * console.log(toFloat16Bits(new Float32Array([1, -2]))); // Uint16Array [15360, 49152]
 * ```
 */
export function toFloat16Bits(data: Float32Array): Uint16Array {
  const F16 = (globalThis as { Float16Array?: new (src: ArrayLike<number>) => ArrayBufferView }).Float16Array;
  if (F16) {
    const h = new F16(data);
    return new Uint16Array(h.buffer, h.byteOffset, data.length);
  }
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]);
  return out;
}

/** An asymmetric uint8 quantization of a matrix (ONNX Runtime QUInt8). */
export interface Uint8Quantized {
  /** Codes, row-major `[K, N]`. */
  data: Uint8Array;
  /** Shape `[K, N]`. */
  dims: [number, number];
  /** One scale (per tensor) or `N` (per column). */
  scale: Float32Array;
  /** One zero point or `N`, same length as `scale`. */
  zeroPoint: Uint8Array;
}

/**
 * Quantizes a matrix `W [K, N]` to uint8 exactly as ONNX Runtime's
 * `quantize_dynamic` does for QUInt8 weights: the range is widened to hold 0,
 * `scale = (max(W,0) − min(W,0)) / 255`, `zp = round(−min/scale)` clamped to
 * [0, 255], `q = clamp(round(W/scale) + zp, 0, 255)` (round half to even,
 * float32 arithmetic; an all-zero range gets scale 1, zp 0). Dequantize with
 * `(q − zp) · scale`.
 *
 * @param w the matrix `[K, N]`
 * @param options `perChannel`: one scale and zero point per column n (default `false`: one for the tensor)
 * @returns codes, scales and zero points
 * @throws {RangeError} when `w` is not a matrix
 *
 * @example
 * ```ts
 * import { quantizeUint8 } from "@paramscope/kit/quantize";
 * const q = quantizeUint8({ data: new Float32Array([-0.3, 0.2, 0, 1]), dims: [2, 2] });
 * console.log(q.data, q.scale[0], q.zeroPoint[0]); // Uint8Array [0, 98, 59, 255], 1.3/255, 59
 * ```
 */
export function quantizeUint8(w: Tensor, options: { perChannel?: boolean } = {}): Uint8Quantized {
  const [K, N] = matrixDims(w, "quantizeUint8()");
  const perChannel = options.perChannel ?? false;
  const groups = perChannel ? N : 1;
  const lo = new Float64Array(groups).fill(0);
  const hi = new Float64Array(groups).fill(0);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      const v = w.data[k * N + n];
      const g = perChannel ? n : 0;
      if (v < lo[g]) lo[g] = v;
      if (v > hi[g]) hi[g] = v;
    }
  }
  const scale = new Float32Array(groups);
  const zeroPoint = new Uint8Array(groups);
  for (let g = 0; g < groups; g++) {
    // rmax − rmin in float32, then / 255 in float64, stored float32 (as compute_scale_zp).
    const s = Math.fround(Math.fround(hi[g] - lo[g]) / 255);
    if (s < FLT_MIN) {
      scale[g] = 1;
      zeroPoint[g] = 0;
    } else {
      scale[g] = s;
      zeroPoint[g] = clamp(roundHalfEven(Math.fround(-Math.fround(lo[g] / s))), 0, 255);
    }
  }
  const data = new Uint8Array(K * N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      const g = perChannel ? n : 0;
      const i = k * N + n;
      data[i] = clamp(roundHalfEven(Math.fround(w.data[i] / scale[g])) + zeroPoint[g], 0, 255);
    }
  }
  return { data, dims: [K, N], scale, zeroPoint };
}

/** A symmetric int8 quantization of a matrix. */
export interface Int8Quantized {
  /** Codes in [−127, 127], row-major `[K, N]`. */
  data: Int8Array;
  /** Shape `[K, N]`. */
  dims: [number, number];
  /** One scale (per tensor) or `N` (per column). */
  scale: Float32Array;
  /** Zero points, all 0 (symmetric), same length as `scale`. */
  zeroPoint: Int8Array;
}

/**
 * Quantizes a matrix `W [K, N]` to int8 symmetrically, as ONNX Runtime's
 * quantizers do for QInt8 weights: `scale = max|W| / 127` (over the tensor, or
 * per output column), zero point 0, `q = clamp(round(W/scale), −127, 127)`
 * (round half to even, float32 arithmetic; an all-zero group gets scale 1).
 * Dequantize with `q · scale`.
 *
 * @param w the matrix `[K, N]`
 * @param options `perChannel`: one scale per column n (default `false`: one for the tensor)
 * @returns codes, scales and zero points
 * @throws {RangeError} when `w` is not a matrix
 *
 * @example
 * ```ts
 * import { quantizeInt8 } from "@paramscope/kit/quantize";
 * const q = quantizeInt8({ data: new Float32Array([-1, 0.4, 0.3, 0.1]), dims: [2, 2] }, { perChannel: true });
 * console.log(q.data, q.scale); // Int8Array [-127, 127, 38, 32], [1/127, 0.4/127]
 * ```
 */
export function quantizeInt8(w: Tensor, options: { perChannel?: boolean } = {}): Int8Quantized {
  const [K, N] = matrixDims(w, "quantizeInt8()");
  const perChannel = options.perChannel ?? false;
  const groups = perChannel ? N : 1;
  const absMax = new Float64Array(groups);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      const g = perChannel ? n : 0;
      absMax[g] = Math.max(absMax[g], Math.abs(w.data[k * N + n]));
    }
  }
  const scale = new Float32Array(groups);
  for (let g = 0; g < groups; g++) {
    // [-absmax, absmax] onto [-127, 127]: (rmax − rmin) / 254.
    const s = Math.fround(Math.fround(2 * absMax[g]) / 254);
    scale[g] = s < FLT_MIN ? 1 : s;
  }
  const data = new Int8Array(K * N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      const i = k * N + n;
      data[i] = clamp(roundHalfEven(Math.fround(w.data[i] / scale[perChannel ? n : 0])), -127, 127);
    }
  }
  return { data, dims: [K, N], scale, zeroPoint: new Int8Array(groups) };
}

/** A 4-bit blockwise quantization of a matrix in the `MatMulNBits` layout. */
export interface Q4Quantized {
  /** Packed codes `[N, kBlocks, blobSize]`: row n holds column n of W, two codes a byte, low nibble first. */
  data: Uint8Array;
  /** Shape of `data`: `[N, kBlocks, blobSize]`. */
  dims: [number, number, number];
  /** One scale per block, `[N · kBlocks]` (column n's blocks at `n·kBlocks + b`). */
  scales: Float32Array;
  /** Zero points, two a byte, low nibble first: `[N · ceil(kBlocks / 2)]`. */
  zeroPoints: Uint8Array;
  /** Rows of W (`K`). */
  K: number;
  /** Columns of W (`N`). */
  N: number;
  /** Blocks per column, `ceil(K / blockSize)`. */
  kBlocks: number;
  /** Values per block. */
  blockSize: number;
  /** Bytes per block, `blockSize / 2`. */
  blobSize: number;
}

/**
 * Quantizes a matrix `W [K, N]` to 4 bits in blocks of `blockSize` along K,
 * as ONNX Runtime's `MatMul4BitsQuantizer` (asymmetric, MLAS `range2scalezp`)
 * does: per block the range is widened to hold 0, `scale = (max − min) / 15`,
 * `zp = round(−min/scale)` in [0, 15], `code = clamp(round(v/scale + zp), 0, 15)`.
 * Dequantize with `(code − zp) · scale`. When K is not a multiple of the block
 * size the last block is padded with codes equal to its zero point (value 0);
 * with an odd number of blocks the last zero-point byte's high nibble is 8, as MLAS leaves it.
 *
 * @param w the matrix `[K, N]`
 * @param blockSize values per block, a power of two ≥ 16 (default `32`)
 * @returns packed codes, scales and zero points
 * @throws {RangeError} when `w` is not a matrix or the block size is not a power of two ≥ 16
 *
 * @example
 * ```ts
 * import { quantizeQ4Blocks } from "@paramscope/kit/quantize";
 * const w = { data: new Float32Array(32 * 2).map((_, i) => (i % 7) / 10 - 0.3), dims: [32, 2] };
 * const q = quantizeQ4Blocks(w, 16);
 * console.log(q.dims, q.scales.length, q.zeroPoints.length); // [2, 2, 8] 4 2
 * ```
 */
export function quantizeQ4Blocks(w: Tensor, blockSize = 32): Q4Quantized {
  const [K, N] = matrixDims(w, "quantizeQ4Blocks()");
  checkOptions({ blockSize });
  const kBlocks = Math.ceil(K / blockSize);
  const blobSize = blockSize / 2;
  const zpBytes = Math.ceil(kBlocks / 2);
  const data = new Uint8Array(N * kBlocks * blobSize);
  const scales = new Float32Array(N * kBlocks);
  const zeroPoints = new Uint8Array(N * zpBytes);
  const codes = new Uint8Array(blockSize);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * blockSize;
      const k1 = Math.min(k0 + blockSize, K);
      let min = 0;
      let max = 0;
      for (let k = k0; k < k1; k++) {
        const v = w.data[k * N + n];
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const scale = Math.fround(Math.fround(max - min) / 15);
      const zpFloat = scale !== 0 ? Math.fround(-Math.fround(min / scale)) : min;
      const zp = zpFloat < 0 ? 0 : zpFloat > 15 ? 15 : Math.round(zpFloat);
      const recip = scale !== 0 ? Math.fround(1 / scale) : 0;
      codes.fill(zp);
      for (let k = k0; k < k1; k++) {
        const v = w.data[k * N + n];
        codes[k - k0] = clamp(Math.round(Math.fround(Math.fround(v * recip) + zp)), 0, 15);
      }
      const base = (n * kBlocks + b) * blobSize;
      for (let j = 0; j < blobSize; j++) data[base + j] = codes[2 * j] | (codes[2 * j + 1] << 4);
      scales[n * kBlocks + b] = scale;
      const zi = n * zpBytes + (b >> 1);
      zeroPoints[zi] = b & 1 ? (zeroPoints[zi] & 0x0f) | (zp << 4) : zp | 0x80;
    }
  }
  return { data, dims: [N, kBlocks, blobSize], scales, zeroPoints, K, N, kBlocks, blockSize, blobSize };
}

// ------------------------------------------------------------ graphs

/** The learned matrices of a graph: MatMul nodes whose second input is a float32 rank-2 initializer. */
function matmulWeights(model: OnnxModel, infos: Map<string, InitializerInfo>): Set<string> {
  const found = new Set<string>();
  for (const n of model.nodes) {
    if (n.opType !== "MatMul" || (n.domain !== "" && n.domain !== "ai.onnx")) continue;
    const info = infos.get(n.inputs[1] ?? "");
    if (info && info.dataType === DataType.FLOAT && info.dims.length === 2 && info.elements > 0) found.add(info.name);
  }
  return found;
}

/** A float32 initializer's values as a tensor (copied, so the file's bytes are never aliased). */
function floatTensor(model: OnnxModel, info: InitializerInfo): Tensor {
  const v = tensorValues(model, info.name);
  return { data: Float32Array.from(v.data as Float32Array), dims: info.dims };
}

/** An initializer to carry over unchanged; external data is read and stored inline. */
function carryOver(model: OnnxModel, t: TensorProto, info: InitializerInfo): TensorProto {
  if (!info.external) return t;
  return { name: info.name, dims: info.dims, dataType: info.dataType, rawData: tensorBytes(model, info.name) };
}

/**
 * Builds one variant of a decoded fp32 model in memory (nothing is written).
 * See the module documentation for each format's layout; the exact names are:
 *
 * - fp16: every learned float initializer `W` (rank ≥ 1, not `const_*`, not a rotary table) keeps its name and
 *   is stored as FLOAT16; node `W_Cast` (`Cast`, to=FLOAT) with output `W_Cast_output_0`, which every former
 *   reader of `W` now reads. Nodes are otherwise unchanged.
 * - q8: initializers `W_quantized` (uint8 `[K, N]`; int8 with `weightType: "int8"`), `W_scale` (float, scalar or
 *   `[N]`), `W_zero_point` (same type as the codes, scalar or `[N]`); per activation `A` a node `A_QuantizeLinear` (`DynamicQuantizeLinear`) with
 *   outputs `A_quantized`, `A_scale`, `A_zero_point`; per MatMul node `M` with output `Y`: `M_quant`
 *   (`MatMulInteger`, → `Y_output_quantized`), `Y_output_quantized_cast` (`Cast` → `Y_output_quantized_cast_output`),
 *   `M_quant_scales_mul` (`Mul` of the two scales → `M_quant_scales_mul:0`), `M_quant_output_scale_mul` (`Mul` → `Y`).
 * - int8: initializers `W_quantized` (int8 `[K, N]`), `W_scale` (float `[N]`), `W_zero_point` (int8 `[N]`); node
 *   `W_DequantizeLinear` (axis=1) with output `W_DequantizeLinear_Output`, read by the MatMul.
 * - q4: initializers `W_Q4` (uint8 `[N, kBlocks, blockSize/2]`), `W_scales` (float `[N·kBlocks]`), `W_zero_points`
 *   (uint8 `[N·ceil(kBlocks/2)]`); the MatMul `M` becomes `M_Q4` (`com.microsoft::MatMulNBits`, attributes K, N,
 *   bits=4, block_size, and accuracy_level when given), output unchanged; opset import `com.microsoft` v1 added.
 *
 * @param model a decoded fp32 model from `readOnnx`
 * @param dtype the variant
 * @param options block size and accuracy level (q4), per-channel scales and weight type (q8)
 * @returns the variant's proto and the initializers converted
 * @throws {RangeError} for an unknown dtype, a bad option, or a model with nothing to quantize
 *
 * @example
 * ```ts
 * import { readOnnx, writeOnnx } from "@paramscope/kit/onnx";
 * import { quantizeOnnx } from "@paramscope/kit/quantize";
 * const fp32 = await readOnnx("models/paramscope-gpt2-tiny/onnx/model.onnx");
 * const { proto, converted } = quantizeOnnx(fp32, "q4", { blockSize: 32 });
 * console.log(converted.length);
 * await writeOnnx(proto, await Deno.makeTempFile({ suffix: ".onnx" }));
 * ```
 */
export function quantizeOnnx(
  model: OnnxModel,
  dtype: QuantDtype,
  options: QuantizeOnnxOptions = {},
): QuantizeOnnxResult {
  checkDtype(dtype);
  const opts = checkOptions(options);
  const graph = model.proto.graph;
  if (!graph) throw new OnnxFormatError(`${model.path ?? "<bytes>"} holds no graph.`);
  const infos = new Map(model.initializers.map((i) => [i.name, i]));
  if (dtype === "fp16") return toFp16(model, infos);
  const weights = matmulWeights(model, infos);
  if (weights.size === 0) {
    throw new RangeError(
      `${model.path ?? "The model"} has no MatMul whose weight is a float32 matrix initializer, so there is nothing ` +
        `to quantize to ${dtype}. Pass the fp32 model (onnx/model.onnx), not an already quantized one.`,
    );
  }
  const replaced = new Map<string, TensorProto[]>(); // source weight → its quantized initializers
  const nodes: NodeProto[] = [];
  const quantizedActivations = new Set<string>();
  const dequantized = new Map<string, string>(); // int8: weight → DequantizeLinear output
  for (const n of model.proto.graph!.node ?? []) {
    const isTarget = n.opType === "MatMul" && (!n.domain || n.domain === "ai.onnx") && weights.has(n.input?.[1] ?? "");
    if (!isTarget) {
      nodes.push(n);
      continue;
    }
    const a = n.input![0];
    const w = n.input![1];
    const y = n.output![0];
    const name = n.name ?? "";
    const info = infos.get(w)!;
    if (dtype === "q8") {
      if (!replaced.has(w)) {
        const t = floatTensor(model, info);
        const q = opts.weightType === "int8"
          ? quantizeInt8(t, { perChannel: opts.perChannel })
          : quantizeUint8(t, { perChannel: opts.perChannel });
        const sDims = opts.perChannel ? [q.dims[1]] : [];
        const type = opts.weightType === "int8" ? DataType.INT8 : DataType.UINT8;
        replaced.set(w, [
          makeTensor(`${w}_quantized`, q.dims, q.data, type),
          makeTensor(`${w}_scale`, sDims, q.scale),
          makeTensor(`${w}_zero_point`, sDims, q.zeroPoint, type),
        ]);
      }
      if (!quantizedActivations.has(a)) {
        quantizedActivations.add(a);
        nodes.push(
          makeNode(
            "DynamicQuantizeLinear",
            [a],
            [`${a}_quantized`, `${a}_scale`, `${a}_zero_point`],
            {},
            `${a}_QuantizeLinear`,
          ),
        );
      }
      const qName = name ? `${name}_quant` : "";
      const intOut = `${y}_output_quantized`;
      const castOut = `${intOut}_cast_output`;
      const mulName = qName ? `${qName}_scales_mul` : `${a}_scale_${w}_scale_mul`;
      nodes.push(
        makeNode(
          "MatMulInteger",
          [`${a}_quantized`, `${w}_quantized`, `${a}_zero_point`, `${w}_zero_point`],
          [intOut],
          {},
          qName,
        ),
        makeNode("Cast", [intOut], [castOut], { to: DataType.FLOAT }, `${intOut}_cast`),
        makeNode("Mul", [`${a}_scale`, `${w}_scale`], [`${mulName}:0`], {}, mulName),
        makeNode("Mul", [castOut, `${mulName}:0`], [y], {}, qName ? `${qName}_output_scale_mul` : ""),
      );
    } else if (dtype === "int8") {
      let out = dequantized.get(w);
      if (!out) {
        const q = quantizeInt8(floatTensor(model, info), { perChannel: true });
        replaced.set(w, [
          makeTensor(`${w}_quantized`, q.dims, q.data),
          makeTensor(`${w}_scale`, [q.dims[1]], q.scale),
          makeTensor(`${w}_zero_point`, [q.dims[1]], q.zeroPoint),
        ]);
        out = `${w}_DequantizeLinear_Output`;
        dequantized.set(w, out);
        nodes.push(
          makeNode(
            "DequantizeLinear",
            [`${w}_quantized`, `${w}_scale`, `${w}_zero_point`],
            [out],
            { axis: 1 },
            `${w}_DequantizeLinear`,
          ),
        );
      }
      nodes.push({ ...n, input: [a, out, ...(n.input!.slice(2))] });
    } else {
      if (!replaced.has(w)) {
        const q = quantizeQ4Blocks(floatTensor(model, info), opts.blockSize);
        replaced.set(w, [
          makeTensor(`${w}_Q4`, q.dims, q.data, DataType.UINT8),
          makeTensor(`${w}_scales`, [q.scales.length], q.scales),
          makeTensor(`${w}_zero_points`, [q.zeroPoints.length], q.zeroPoints, DataType.UINT8),
        ]);
      }
      const [K, N] = info.dims;
      const attrs: Record<string, number> = { K, N, bits: 4, block_size: opts.blockSize };
      if (opts.accuracyLevel !== undefined) attrs.accuracy_level = opts.accuracyLevel;
      nodes.push(
        makeNode(
          "MatMulNBits",
          [a, `${w}_Q4`, `${w}_scales`, `${w}_zero_points`],
          [y],
          attrs,
          name ? `${name}_Q4` : "",
          "com.microsoft",
        ),
      );
    }
  }
  // A weight that something other than a quantized MatMul still reads stays, beside its quantized form.
  const stillRead = new Set(nodes.flatMap((n) => n.input ?? []));
  const initializer: TensorProto[] = [];
  for (const t of graph.initializer ?? []) {
    const info = infos.get(t.name ?? "")!;
    const q = replaced.get(info.name);
    if (q && !stillRead.has(info.name)) initializer.push(...q);
    else {
      initializer.push(carryOver(model, t, info));
      if (q) initializer.push(...q);
    }
  }
  const removed = new Set([...replaced.keys()].filter((w) => !stillRead.has(w)));
  const opsetImport = [...(model.proto.opsetImport ?? [])];
  if (dtype === "q4" && !opsetImport.some((o) => o.domain === "com.microsoft")) {
    opsetImport.push({ domain: "com.microsoft", version: 1 });
  }
  const proto: ModelProto = {
    ...model.proto,
    opsetImport,
    graph: {
      ...graph,
      node: nodes,
      initializer,
      input: (graph.input ?? []).filter((v) => !removed.has(v.name ?? "")),
    },
  };
  return {
    proto,
    converted: model.initializers.filter((i) => replaced.has(i.name)).map((i) => i.name),
    keptFloat32: [],
  };
}

/**
 * Whether a float initializer holds learned values. Scalars and `const_*` tensors are graph constants
 * (epsilons, the mask's float32 minimum, shape values); rotary tables (`*rotary*`, e.g.
 * `model.rotary_emb.cos_cached`) are computed from the config, not trained, and keep full precision.
 */
function isLearned(info: InitializerInfo): boolean {
  return info.dims.length > 0 && !info.name.startsWith("const_") && !/rotary/i.test(info.name);
}

/** fp16: learned float tensors stored as FLOAT16 with a Cast back to float32 after each. */
function toFp16(model: OnnxModel, infos: Map<string, InitializerInfo>): QuantizeOnnxResult {
  const graph = model.proto.graph!;
  const converted: string[] = [];
  const keptFloat32: string[] = [];
  const initializer: TensorProto[] = [];
  const casts: NodeProto[] = [];
  const renamed = new Map<string, string>();
  for (const t of graph.initializer ?? []) {
    const info = infos.get(t.name ?? "")!;
    if (info.dataType !== DataType.FLOAT || !isLearned(info)) {
      initializer.push(carryOver(model, t, info));
      continue;
    }
    const values = tensorValues(model, info.name).data as Float32Array;
    let absMax = 0;
    for (let i = 0; i < values.length; i++) absMax = Math.max(absMax, Math.abs(values[i]));
    if (!(absMax <= HALF_MAX)) {
      keptFloat32.push(info.name);
      initializer.push(carryOver(model, t, info));
      continue;
    }
    initializer.push(makeTensor(info.name, info.dims, toFloat16Bits(values), DataType.FLOAT16));
    const out = `${info.name}_Cast_output_0`;
    casts.push(makeNode("Cast", [info.name], [out], { to: DataType.FLOAT }, `${info.name}_Cast`));
    renamed.set(info.name, out);
    converted.push(info.name);
  }
  const nodes = (graph.node ?? []).map((n) =>
    (n.input ?? []).some((i) => renamed.has(i)) ? { ...n, input: n.input!.map((i) => renamed.get(i) ?? i) } : n
  );
  const proto: ModelProto = { ...model.proto, graph: { ...graph, node: [...casts, ...nodes], initializer } };
  return { proto, converted, keptFloat32 };
}

// ------------------------------------------------------------ files

/**
 * Writes the requested variants of `dir/onnx/model.onnx` beside it
 * (`model_fp16.onnx`, `model_quantized.onnx`, `model_int8.onnx`, `model_q4.onnx`),
 * each loadable with `loadModel(dir, { dtype })`. Existing variant files are
 * replaced atomically. See {@linkcode quantizeOnnx} for the exact layouts and names.
 *
 * @param dir a model folder in the Hugging Face layout holding `onnx/model.onnx`
 * @param options `dtypes` to write; q4 `blockSize` (default 32) and `accuracyLevel`; q8 `perChannel` (default false)
 *   and `weightType` (default `"uint8"`)
 * @returns each file's path, size and size relative to fp32
 * @throws {RangeError} for an unknown dtype, no dtypes, or a bad option
 * @throws {TypeError} when `options.dtypes` is not an array
 * @throws {OnnxFormatError} when `dir/onnx/model.onnx` is missing or malformed
 *
 * @example
 * ```ts
 * import { bundledModelPath, loadModel } from "@paramscope/kit/load";
 * import { quantizeModel } from "@paramscope/kit/quantize";
 * const dir = await Deno.makeTempDir(); // a copy of the bundled model folder
 * await Deno.mkdir(`${dir}/onnx`);
 * for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"]) {
 *   await Deno.copyFile(`${bundledModelPath()}/${f}`, `${dir}/${f}`);
 * }
 * await quantizeModel(dir, { dtypes: ["q4"], blockSize: 32 });
 * const m = await loadModel(dir, { dtype: "q4" });
 * console.log(m.onnxPath); // …/onnx/model_q4.onnx
 * await m.dispose();
 * ```
 */
export async function quantizeModel(dir: string, options: QuantizeOptions): Promise<QuantizeResult> {
  if (!options || !Array.isArray(options.dtypes)) {
    throw new TypeError(`quantizeModel() needs options.dtypes, an array such as ["fp16", "q8", "q4"].`);
  }
  if (options.dtypes.length === 0) {
    throw new RangeError(`options.dtypes is empty: name at least one of ${QUANT_DTYPES.join(", ")}.`);
  }
  for (const d of options.dtypes) checkDtype(d);
  checkOptions(options);
  const source = join(dir, "onnx", DTYPE_FILES.fp32);
  let model: OnnxModel;
  try {
    model = await readOnnx(source);
  } catch (e) {
    if (e instanceof OnnxFormatError && /not found/.test(e.message)) {
      throw new OnnxFormatError(
        `No fp32 model at ${source}: quantizeModel() reads <dir>/onnx/model.onnx. ` +
          `Pass a model folder (Hugging Face layout), or export one first with exportModel().`,
      );
    }
    throw e;
  }
  let sourceBytes = model.fileBytes;
  const dataFiles = new Set(
    model.proto.graph?.initializer?.flatMap((t) => (t.externalData ?? []).filter((e) => e.key === "location")) ?? [],
  );
  for (const loc of new Set([...dataFiles].map((e) => e.value ?? ""))) {
    sourceBytes += (await Deno.stat(join(dir, "onnx", loc))).size;
  }
  const variants: QuantizedVariant[] = [];
  for (const dtype of [...new Set(options.dtypes)]) {
    const { proto, converted } = quantizeOnnx(model, dtype, options);
    const file = DTYPE_FILES[dtype];
    const path = join(dir, "onnx", file);
    const bytes = await writeOnnx(proto, path);
    variants.push({ dtype, path, file, bytes, ratio: bytes / sourceBytes, converted });
  }
  return { dir, source, sourceBytes, variants };
}
