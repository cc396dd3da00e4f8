/**
 * Private kernels for lib/weights.ts: half and bfloat16 to float, linear
 * dequantization (per tensor, per axis, per block), 4-bit unpacking,
 * `com.microsoft::MatMulNBits` blocks, and a 2-D transpose. Every kernel
 * writes a fresh Float32Array, or the `out` array given (of the result's
 * length: inspectWeights() passes one inside the statistics kernels' memory
 * to skip a copy), and never mutates its inputs.
 *
 * @module
 */
import { halfToFloat } from "./onnx.ts";

let halfTable: Float32Array | undefined;

/** All 65536 half values as floats, built once (256 KiB) so a conversion is one lookup. */
function halfLut(): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** IEEE half bit patterns → floats. `out` has `src.length` values. */
export function halfToFloat32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  const lut = halfLut();
  const n = src.length;
  for (let i = 0; i < n; i++) out[i] = lut[src[i]];
  return out;
}

/** bfloat16 bit patterns → floats (the high half of a float32). */
export function bfloatToFloat32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  const n = src.length;
  const u = new Uint32Array(out.buffer, out.byteOffset, n);
  for (let i = 0; i < n; i++) u[i] = src[i] << 16;
  return out;
}

/**
 * Unpacks `n` 4-bit codes stored two per byte, low nibble first (ONNX int4/uint4 order).
 * Signed codes are sign-extended to −8..7.
 */
export function unpackNibbles(bytes: Uint8Array, n: number, signed: boolean): Int8Array | Uint8Array {
  const out = signed ? new Int8Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const b = bytes[i >> 1];
    const v = (i & 1) === 0 ? b & 0x0f : b >> 4;
    out[i] = signed && v >= 8 ? v - 16 : v;
  }
  return out;
}

/** Where per-axis or per-block scales apply, in the layout of the stored codes. */
export interface LinearQuantLayout {
  /** Shape of the codes (and of the result). */
  dims: readonly number[];
  /** Axis the scales run along (ignored for a single scale). */
  axis: number;
  /** Block length along `axis`; 0 means one scale per index along `axis` (or one for the tensor). */
  blockSize: number;
}

/**
 * `DequantizeLinear`: `value = (code − zeroPoint) · scale`, with one scale for
 * the tensor (`scale.length === 1`), one per index along `axis`, or one per
 * block of `blockSize` indices along `axis` (scale shape = dims with
 * `dims[axis]` → `ceil(dims[axis] / blockSize)`). A missing zero point is 0.
 *
 * @throws {RangeError} when the scale or zero-point length fits none of these layouts
 */
export function dequantizeLinear(
  codes: ArrayLike<number>,
  scale: Float32Array,
  zeroPoint: ArrayLike<number> | null,
  layout: LinearQuantLayout,
  label: string,
  out: Float32Array = new Float32Array(codes.length),
): Float32Array {
  const n = codes.length;
  if (zeroPoint !== null && zeroPoint.length !== scale.length) {
    throw new RangeError(
      `${label}: zero point has ${zeroPoint.length} values but scale has ${scale.length}; they must match`,
    );
  }
  if (scale.length === 1 && layout.blockSize === 0) {
    const s = scale[0];
    const z = zeroPoint === null ? 0 : zeroPoint[0];
    for (let i = 0; i < n; i++) out[i] = (codes[i] - z) * s;
    return out;
  }
  const dims = layout.dims;
  const rank = dims.length;
  const axis = layout.axis < 0 ? layout.axis + rank : layout.axis;
  if (axis < 0 || axis >= rank) {
    throw new RangeError(`${label}: quantization axis ${layout.axis} is outside a rank-${rank} tensor`);
  }
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i];
  let inner = 1;
  for (let i = axis + 1; i < rank; i++) inner *= dims[i];
  const mid = dims[axis];
  const bs = layout.blockSize;
  const groups = bs > 0 ? Math.ceil(mid / bs) : mid;
  const want = bs > 0 ? outer * groups * inner : mid;
  if (scale.length !== want) {
    throw new RangeError(
      `${label}: ${scale.length} scales do not fit shape [${dims}] with axis ${axis}` +
        (bs > 0 ? ` and block size ${bs} (expected ${want})` : ` (expected ${mid}, one per index along the axis)`),
    );
  }
  let i = 0;
  for (let o = 0; o < outer; o++) {
    for (let m = 0; m < mid; m++) {
      const g = bs > 0 ? (o * groups + Math.floor(m / bs)) * inner : m;
      if (bs > 0) {
        for (let k = 0; k < inner; k++, i++) {
          const z = zeroPoint === null ? 0 : zeroPoint[g + k];
          out[i] = (codes[i] - z) * scale[g + k];
        }
      } else {
        const s = scale[g];
        const z = zeroPoint === null ? 0 : zeroPoint[g];
        for (let k = 0; k < inner; k++, i++) out[i] = (codes[i] - z) * s;
      }
    }
  }
  return out;
}

/** Attributes and optional inputs of one `com.microsoft::MatMulNBits` node. */
export interface NBitsLayout {
  /** Input features (rows of the canonical `[K, N]` weight). */
  K: number;
  /** Output features. */
  N: number;
  /** Bits per code (2..8). */
  bits: number;
  /** Codes per block along K (a power of two ≥ 16). */
  blockSize: number;
  /** Act-order group of each k (`g_idx`), when present. */
  gIdx?: Int32Array;
}

/**
 * Dequantizes a MatMulNBits weight to its canonical `[K, N]` (`[in, out]`) layout.
 *
 * `b` is `[N, kBlocks, blobSize]` with `blobSize = blockSize · bits / 8`, codes
 * packed least-significant bits first along K; `scales` is `[N · kBlocks]`;
 * `zeroPoints` is either packed codes `[N · ceil(kBlocks · bits / 8)]` (same
 * packing), floats `[N · kBlocks]`, or null (default `2^(bits−1)`, 8 for
 * 4 bits). `value = (code − zp) · scale`, and the result is the transpose of
 * the stored `[N, K]` matrix.
 *
 * @throws {RangeError} when a buffer is shorter than the attributes say
 */
export function dequantizeNBits(
  b: Uint8Array,
  scales: Float32Array,
  zeroPoints: Uint8Array | Float32Array | null,
  p: NBitsLayout,
  label: string,
  out?: Float32Array,
): Float32Array {
  const { K, N, bits, blockSize } = p;
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) {
    throw new RangeError(`${label}: MatMulNBits bits = ${bits}; only 2..8 are defined`);
  }
  if (!Number.isInteger(blockSize) || blockSize < 1 || (blockSize * bits) % 8 !== 0) {
    throw new RangeError(`${label}: MatMulNBits block_size = ${blockSize} does not pack into whole bytes`);
  }
  const kBlocks = Math.ceil(K / blockSize);
  const blob = (blockSize * bits) / 8;
  if (b.length < N * kBlocks * blob) {
    throw new RangeError(
      `${label}: MatMulNBits weight has ${b.length} bytes but N=${N}, K=${K}, block_size=${blockSize} need ${
        N * kBlocks * blob
      }`,
    );
  }
  if (scales.length !== N * kBlocks) {
    throw new RangeError(`${label}: MatMulNBits has ${scales.length} scales; N · k_blocks = ${N * kBlocks}`);
  }
  const zpStride = Math.ceil((kBlocks * bits) / 8);
  const packedZp = zeroPoints instanceof Uint8Array;
  if (packedZp && zeroPoints.length < N * zpStride) {
    throw new RangeError(`${label}: MatMulNBits zero points have ${zeroPoints.length} bytes; need ${N * zpStride}`);
  }
  if (zeroPoints instanceof Float32Array && zeroPoints.length !== N * kBlocks) {
    throw new RangeError(`${label}: MatMulNBits has ${zeroPoints.length} float zero points; need ${N * kBlocks}`);
  }
  const mask = (1 << bits) - 1;
  const defaultZp = 1 << (bits - 1);
  out ??= new Float32Array(K * N);
  const zpOf = (n: number, g: number): number => {
    if (zeroPoints === null) return defaultZp;
    if (!packedZp) return zeroPoints[n * kBlocks + g];
    const bit = g * bits;
    const at = n * zpStride + (bit >> 3);
    const word = zeroPoints[at] | ((bit & 7) + bits > 8 ? zeroPoints[at + 1] << 8 : 0);
    return (word >> (bit & 7)) & mask;
  };
  const gIdx = p.gIdx;
  if (gIdx !== undefined && gIdx.length !== K) {
    throw new RangeError(`${label}: MatMulNBits g_idx has ${gIdx.length} entries; K = ${K}`);
  }
  for (let n = 0; n < N; n++) {
    const row = n * kBlocks * blob;
    if (bits === 4 && gIdx === undefined) {
      for (let g = 0; g < kBlocks; g++) {
        const s = scales[n * kBlocks + g];
        const z = zpOf(n, g);
        const base = row + g * blob;
        const k0 = g * blockSize;
        const kEnd = Math.min(K, k0 + blockSize);
        for (let k = k0; k < kEnd; k += 2) {
          const byte = b[base + ((k - k0) >> 1)];
          out[k * N + n] = ((byte & 0x0f) - z) * s;
          if (k + 1 < kEnd) out[(k + 1) * N + n] = ((byte >> 4) - z) * s;
        }
      }
      continue;
    }
    for (let k = 0; k < K; k++) {
      const g = gIdx === undefined ? Math.floor(k / blockSize) : gIdx[k];
      if (g < 0 || g >= kBlocks) throw new RangeError(`${label}: MatMulNBits g_idx[${k}] = ${g} is out of range`);
      const bit = (k % blockSize) * bits;
      const at = row + Math.floor(k / blockSize) * blob + (bit >> 3);
      const word = b[at] | ((bit & 7) + bits > 8 ? b[at + 1] << 8 : 0);
      const code = (word >> (bit & 7)) & mask;
      out[k * N + n] = (code - zpOf(n, g)) * scales[n * kBlocks + g];
    }
  }
  return out;
}

/** Transposes a row-major `[rows, cols]` matrix into a new `[cols, rows]` one (tiled for cache locality). */
export function transpose2d(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) {
        const rowBase = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = src[rowBase + c];
      }
    }
  }
  return out;
}
