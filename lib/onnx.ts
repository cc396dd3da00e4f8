/**
 * Read, validate and write ONNX models with the `onnx-proto` package (the
 * ONNX protobuf schema compiled by protobufjs), never a hand-written codec.
 *
 * Reading decodes the file once: initializer `rawData` stays a view into the
 * file's bytes (no second copy), and tensors stored as external data
 * (`model.onnx_data`) are read only when asked for, one tensor at a time.
 *
 * @example
 * ```ts
 * import { readOnnx } from "@paramscope/kit/onnx";
 * const m = await readOnnx("models/paramscope-gpt2-tiny/onnx/model.onnx");
 * console.log(m.opset, m.initializers.length, m.inputs.map((i) => i.name));
 * ```
 *
 * @module
 */
import onnxProto from "onnx-proto";
import { dirname, isAbsolute, join, normalize, relative, resolve } from "node:path";
import { writeFileAtomic } from "./_fs.ts";

const { onnx } = onnxProto;

/** The decoded protobuf types, for callers that build graphs by hand. */
export type ModelProto = onnxProto.onnx.IModelProto;
/** A decoded ONNX tensor (initializer). */
export type TensorProto = onnxProto.onnx.ITensorProto;
/** A decoded ONNX node. */
export type NodeProto = onnxProto.onnx.INodeProto;
/** A decoded ONNX value description (graph input or output). */
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

/**
 * ONNX `TensorProto.DataType` codes for the element types this kit reads.
 *
 * @example
 * ```ts
 * import { DataType } from "@paramscope/kit/onnx";
 * console.log(DataType.FLOAT16); // 10
 * ```
 */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
  UINT4: 21,
  INT4: 22,
} as const;

/** Bytes per element for each fixed-size type (4-bit types: 0.5). */
const ELEMENT_BYTES: Record<number, number> = {
  1: 4,
  2: 1,
  3: 1,
  4: 2,
  5: 2,
  6: 4,
  7: 8,
  9: 1,
  10: 2,
  11: 8,
  12: 4,
  13: 8,
  16: 2,
  21: 0.5,
  22: 0.5,
};

/**
 * Name of an ONNX data type code (`1` → `"float32"`).
 *
 * @param code `TensorProto.DataType` value
 * @returns a short name, or `"type<code>"` when unknown
 *
 * @example
 * ```ts
 * import { dataTypeName } from "@paramscope/kit/onnx";
 * console.log(dataTypeName(10)); // "float16"
 * ```
 */
export function dataTypeName(code: number): string {
  const names: Record<number, string> = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
    21: "uint4",
    22: "int4",
  };
  return names[code] ?? `type${code}`;
}

/**
 * Error raised for a model file that cannot be read or is malformed. The
 * message names the file (and tensor, where one is at fault) and what to do.
 *
 * @example
 * ```ts
 * import { OnnxFormatError, readOnnxBytes } from "@paramscope/kit/onnx";
 * try { readOnnxBytes(new Uint8Array([0xff, 0xff, 0xff])); } catch (e) { console.log(e instanceof OnnxFormatError); }
 * ```
 */
export class OnnxFormatError extends Error {
  /**
   * Makes the error.
   *
   * @param message what is wrong and what to do
   */
  constructor(message: string) {
    super(message);
    this.name = "OnnxFormatError";
  }
}

/** One initializer, described without decoding its values. */
export interface InitializerInfo {
  /** Name as stored in the file (may be anonymous, e.g. `onnx::MatMul_1234`). */
  name: string;
  /** Shape. */
  dims: number[];
  /** ONNX data type code (see {@linkcode DataType}). */
  dataType: number;
  /** Number of elements (product of dims). */
  elements: number;
  /** Whether the values live in an external-data file. */
  external: boolean;
}

/** One node of the graph, with attributes decoded to plain values. */
export interface NodeInfo {
  /** Node name (exporters put the module scope here, e.g. `/transformer/h.0/attn/c_attn/MatMul`). */
  name: string;
  /** Operator, e.g. `MatMul`. */
  opType: string;
  /** Operator domain (`""` for standard ONNX, `com.microsoft` for contrib ops). */
  domain: string;
  /** Input value names (`""` for an omitted optional input). */
  inputs: string[];
  /** Output value names. */
  outputs: string[];
  /** Attributes by name. */
  attributes: Record<string, number | string | number[] | string[] | TensorProto>;
}

/** A graph input or output. */
export interface ValueInfo {
  /** Name, e.g. `input_ids`. */
  name: string;
  /** Element type code. */
  elemType: number;
  /** Dimensions: numbers, or symbolic names such as `"batch_size"`. */
  shape: (number | string)[];
}

/**
 * A decoded ONNX model with lazy access to tensor values.
 */
export interface OnnxModel {
  /** Where it was read from, if it came from a file. */
  path?: string;
  /** The decoded protobuf (initializer `rawData` are views into the file bytes). */
  proto: ModelProto;
  /** Default-domain opset version. */
  opset: number;
  /** IR version. */
  irVersion: number;
  /** Initializers, in file order. */
  initializers: InitializerInfo[];
  /** Nodes, in graph order. */
  nodes: NodeInfo[];
  /** Graph inputs that are not initializers. */
  inputs: ValueInfo[];
  /** Graph outputs. */
  outputs: ValueInfo[];
  /** Total bytes of the `.onnx` file (0 when decoded from memory). */
  fileBytes: number;
}

/**
 * Options for {@linkcode validateOnnx}.
 *
 * @example
 * ```ts
 * import type { ValidateOnnxOptions } from "@paramscope/kit/onnx";
 * const o: ValidateOnnxOptions = { expect: "decoder", layers: 4 };
 * console.log(o.expect);
 * ```
 */
export interface ValidateOnnxOptions {
  /**
   * Also check the graph's interface. `"decoder"` (a causal language model as transformers.js runs it)
   * requires the inputs `input_ids` (int32/int64) and `attention_mask`, the output `logits`, and
   * `past_key_values.N.key|value` inputs that pair one to one with `present.N.key|value` outputs for
   * N = 0, 1, ... (a model with neither is accepted). Default: no interface check.
   */
  expect?: "decoder";
  /** With `expect: "decoder"`: the layer count the config states; past/present pairs must match it. Default: not checked. */
  layers?: number;
}

/** Options for {@linkcode readOnnx} and {@linkcode readOnnxBytes}. */
export interface ReadOnnxOptions extends ValidateOnnxOptions {
  /** Folder that external-data locations are resolved against (default: the file's folder). */
  baseDir?: string;
  /** Validate tensor sizes and external-data paths while reading (default `true`). */
  validate?: boolean;
}

// Internal bookkeeping kept off the public shape.
const PROTO_INDEX = new WeakMap<OnnxModel, { byName: Map<string, TensorProto>; baseDir?: string }>();

/** protobufjs returns int64 as `Long` objects (or numbers); convert safely. */
function toNumber(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (v && typeof v === "object" && "toNumber" in v) return (v as { toNumber(): number }).toNumber();
  return Number(v ?? 0);
}

/**
 * Reads an ONNX file. The file is read once; initializer bytes are views into it.
 *
 * @param path path to a `.onnx` file
 * @param options where external data lives; whether to validate
 * @returns the decoded model
 * @throws {OnnxFormatError} when the file is missing, truncated or malformed
 *
 * @example
 * ```ts
 * import { readOnnx } from "@paramscope/kit/onnx";
 * const m = await readOnnx("models/paramscope-gpt2-tiny/onnx/model.onnx");
 * console.log(m.nodes.length > 0);
 * ```
 */
export async function readOnnx(path: string, options: ReadOnnxOptions = {}): Promise<OnnxModel> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new OnnxFormatError(`ONNX file not found: ${path}. Check the path, or export a model first.`);
    }
    throw new OnnxFormatError(`Cannot read ONNX file ${path}: ${(e as Error).message}`);
  }
  return readOnnxBytes(bytes, { ...options, baseDir: options.baseDir ?? dirname(path) }, path);
}

/**
 * Decodes an ONNX model from bytes already in memory.
 *
 * @param bytes the `.onnx` file's contents
 * @param options where external data lives; whether to validate
 * @param label name used in error messages (default `"<bytes>"`)
 * @returns the decoded model
 * @throws {OnnxFormatError} when the bytes are not a well-formed ONNX model
 *
 * @example
 * ```ts
 * import { readOnnxBytes } from "@paramscope/kit/onnx";
 * const bytes = await Deno.readFile("models/paramscope-gpt2-tiny/onnx/model.onnx");
 * console.log(readOnnxBytes(bytes).opset);
 * ```
 */
export function readOnnxBytes(bytes: Uint8Array, options: ReadOnnxOptions = {}, label = "<bytes>"): OnnxModel {
  let proto: onnxProto.onnx.ModelProto;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new OnnxFormatError(
      `${label} is not a valid ONNX model (protobuf decoding failed: ${(e as Error).message}). ` +
        `The file may be truncated or corrupt: download or export it again.`,
    );
  }
  const graph = proto.graph;
  if (!graph) {
    throw new OnnxFormatError(`${label} holds no graph: it is not an ONNX model, or it is truncated.`);
  }
  const opsetEntry = (proto.opsetImport ?? []).find((o) => !o.domain || o.domain === "ai.onnx");
  const byName = new Map<string, TensorProto>();
  const initializers: InitializerInfo[] = [];
  for (const t of graph.initializer ?? []) {
    const name = t.name ?? "";
    const dims = (t.dims ?? []).map(toNumber);
    const elements = dims.reduce((a, b) => a * b, 1);
    byName.set(name, t);
    initializers.push({
      name,
      dims,
      dataType: t.dataType ?? 0,
      elements,
      external: t.dataLocation === 1,
    });
  }
  const initNames = new Set(byName.keys());
  const model: OnnxModel = {
    path: label === "<bytes>" ? undefined : label,
    proto,
    opset: toNumber(opsetEntry?.version ?? 0),
    irVersion: toNumber(proto.irVersion ?? 0),
    initializers,
    nodes: (graph.node ?? []).map(nodeInfo),
    inputs: (graph.input ?? []).filter((v) => !initNames.has(v.name ?? "")).map(valueInfo),
    outputs: (graph.output ?? []).map(valueInfo),
    fileBytes: bytes.byteLength,
  };
  PROTO_INDEX.set(model, { byName, baseDir: options.baseDir });
  if (options.validate ?? true) validateOnnx(model, { expect: options.expect, layers: options.layers });
  return model;
}

function nodeInfo(n: NodeProto): NodeInfo {
  const attributes: NodeInfo["attributes"] = {};
  for (const a of n.attribute ?? []) {
    const name = a.name ?? "";
    switch (a.type) {
      case 1:
        attributes[name] = a.f ?? 0;
        break;
      case 2:
        attributes[name] = toNumber(a.i);
        break;
      case 3:
        attributes[name] = new TextDecoder().decode(a.s ?? new Uint8Array());
        break;
      case 4:
        if (a.t) attributes[name] = a.t;
        break;
      case 6:
        attributes[name] = a.floats ?? [];
        break;
      case 7:
        attributes[name] = (a.ints ?? []).map(toNumber);
        break;
      case 8:
        attributes[name] = (a.strings ?? []).map((s) => new TextDecoder().decode(s));
        break;
    }
  }
  return {
    name: n.name ?? "",
    opType: n.opType ?? "",
    domain: n.domain ?? "",
    inputs: n.input ?? [],
    outputs: n.output ?? [],
    attributes,
  };
}

function valueInfo(v: ValueInfoProto): ValueInfo {
  const tt = v.type?.tensorType;
  return {
    name: v.name ?? "",
    elemType: tt?.elemType ?? 0,
    shape: (tt?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : toNumber(d.dimValue))),
  };
}

/** Expected byte length of a tensor's raw data, from its type and shape. */
function expectedBytes(info: InitializerInfo): number | undefined {
  const per = ELEMENT_BYTES[info.dataType];
  if (per === undefined) return undefined;
  return Math.ceil(info.elements * per);
}

/**
 * Refuses shapes no real tensor has: negative or fractional dims, or more elements (or bytes) than
 * a JavaScript number counts exactly. Run before any size is used, so that no allocation is ever
 * sized from a corrupt shape.
 */
function checkShape(info: InitializerInfo, label: string): void {
  if (info.dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new OnnxFormatError(
      `${label}: tensor "${info.name}" has an invalid shape [${info.dims}] (dims must be integers >= 0). ` +
        `The file is corrupt: download or export it again.`,
    );
  }
  const bytes = (ELEMENT_BYTES[info.dataType] ?? 1) * info.elements;
  if (!Number.isSafeInteger(info.elements) || !Number.isSafeInteger(Math.ceil(bytes))) {
    throw new OnnxFormatError(
      `${label}: tensor "${info.name}" has shape [${info.dims}], more elements than any file can hold. ` +
        `The file is corrupt: download or export it again.`,
    );
  }
}

/** A non-negative integer written in decimal digits only (external-data offsets and lengths). */
function parseUint(text: string | undefined, what: string, tensor: string, label: string): number | undefined {
  if (text === undefined) return undefined;
  const v = /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(v)) {
    throw new OnnxFormatError(
      `${label}: tensor "${tensor}" has external-data ${what} ${JSON.stringify(text)}; it must be a whole number ` +
        `of bytes. The file is corrupt.`,
    );
  }
  return v;
}

function externalEntry(
  t: TensorProto,
  tensor: string,
  label: string,
): { location: string; offset: number; length?: number } {
  const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? "", e.value ?? ""]));
  return {
    location: kv.get("location") ?? "",
    offset: parseUint(kv.get("offset"), "offset", tensor, label) ?? 0,
    length: parseUint(kv.get("length"), "length", tensor, label),
  };
}

/** Whether a path relative to the model folder leaves it (`..` as its first segment, or another drive). */
function escapes(rel: string): boolean {
  return rel.split(/[\\/]/)[0] === ".." || isAbsolute(rel);
}

/**
 * Resolves an external-data location, refusing any that would leave the model folder
 * (absolute paths, `..`).
 */
function resolveExternal(baseDir: string, location: string, tensor: string, label: string): string {
  if (!location) throw new OnnxFormatError(`${label}: tensor "${tensor}" is external but names no location.`);
  if (isAbsolute(location) || /^[a-zA-Z]:[\\/]/.test(location) || location.startsWith("\\")) {
    throw new OnnxFormatError(
      `${label}: tensor "${tensor}" points at an absolute external-data path "${location}". ` +
        `Refused: external data must stay inside the model folder.`,
    );
  }
  if (location.includes("\0")) {
    throw new OnnxFormatError(`${label}: tensor "${tensor}" has an external-data location with a NUL byte. Refused.`);
  }
  const full = resolve(baseDir, normalize(location));
  const rel = relative(resolve(baseDir), full);
  if (escapes(rel)) {
    throw new OnnxFormatError(
      `${label}: tensor "${tensor}" points outside the model folder ("${location}"). Refused.`,
    );
  }
  return full;
}

/**
 * Where one external tensor's bytes are: the real file (inside the model folder, symlinks
 * resolved before anything is read), the offset and the length, checked against the file's size so
 * that a reader never allocates more than the file holds.
 */
function externalRange(
  baseDir: string | undefined,
  t: TensorProto,
  info: InitializerInfo,
  label: string,
): { file: string; offset: number; length: number } {
  if (!baseDir) {
    throw new OnnxFormatError(`${label}: tensor "${info.name}" uses external data but no folder was given.`);
  }
  const want = expectedBytes(info) ?? 0;
  const ext = externalEntry(t, info.name, label);
  const file = resolveExternal(baseDir, ext.location, info.name, label);
  let baseReal: string;
  try {
    baseReal = Deno.realPathSync(baseDir);
  } catch (e) {
    throw new OnnxFormatError(`${label}: model folder ${baseDir} cannot be read: ${(e as Error).message}`);
  }
  let real: string;
  try {
    real = Deno.realPathSync(file);
  } catch {
    throw new OnnxFormatError(
      `${label}: external data file "${ext.location}" for tensor "${info.name}" is missing. ` +
        `Copy it beside the .onnx file.`,
    );
  }
  // Containment is decided on the resolved path before the target is even stat'ed.
  const rel = relative(baseReal, real);
  if (escapes(rel)) {
    throw new OnnxFormatError(
      `${label}: external data "${ext.location}" for tensor "${info.name}" is a link out of the model folder. Refused.`,
    );
  }
  let stat: Deno.FileInfo;
  try {
    stat = Deno.statSync(real);
  } catch (e) {
    throw new OnnxFormatError(`${label}: external data "${ext.location}" cannot be read: ${(e as Error).message}`);
  }
  if (!stat.isFile) {
    throw new OnnxFormatError(
      `${label}: external data "${ext.location}" for tensor "${info.name}" is not a regular file. Refused.`,
    );
  }
  const length = ext.length ?? want;
  if (length !== want || ext.offset + length > stat.size) {
    throw new OnnxFormatError(
      `${label}: tensor "${info.name}" needs ${want} bytes at offset ${ext.offset} of "${ext.location}", ` +
        `but the entry says ${length} bytes and the file has ${stat.size}. The data file is truncated or does not match.`,
    );
  }
  return { file: real, offset: ext.offset, length };
}

const PAST = /^past_key_values\.(\d+)\.(key|value)$/;
const PRESENT = /^present\.(\d+)\.(key|value)$/;

/** The graph interface transformers.js feeds a causal language model. */
function checkDecoderInterface(model: OnnxModel, label: string, layers: number | undefined): void {
  const inputs = new Map(model.inputs.map((v) => [v.name, v]));
  const outputs = new Set(model.outputs.map((v) => v.name));
  const missing = ["input_ids", "attention_mask"].filter((n) => !inputs.has(n)).map((n) => `input ${n}`);
  if (!outputs.has("logits")) missing.push("output logits");
  if (missing.length > 0) {
    throw new OnnxFormatError(
      `${label}: a decoder model needs the inputs input_ids and attention_mask and the output logits; ` +
        `this graph lacks ${missing.join(", ")}. It is not a causal language model export (or the file is corrupt).`,
    );
  }
  const idsType = inputs.get("input_ids")!.elemType;
  if (idsType !== DataType.INT64 && idsType !== DataType.INT32) {
    throw new OnnxFormatError(
      `${label}: input_ids has element type ${dataTypeName(idsType)}; a decoder takes int64 (or int32) token ids.`,
    );
  }
  const past = new Set(model.inputs.map((v) => PAST.exec(v.name)).filter((m) => m).map((m) => `${m![1]}.${m![2]}`));
  const present = new Set(
    model.outputs.map((v) => PRESENT.exec(v.name)).filter((m) => m).map((m) => `${m![1]}.${m![2]}`),
  );
  if (past.size === 0 && present.size === 0) return;
  const unpaired = [
    ...[...past].filter((k) => !present.has(k)).map((k) => `past_key_values.${k} has no present.${k}`),
    ...[...present].filter((k) => !past.has(k)).map((k) => `present.${k} has no past_key_values.${k}`),
  ];
  const count = Math.max(past.size, present.size) / 2;
  for (let i = 0; i < count && unpaired.length === 0; i++) {
    for (const kind of ["key", "value"]) {
      if (!past.has(`${i}.${kind}`)) unpaired.push(`layer ${i} has no past_key_values.${i}.${kind}`);
    }
  }
  if (unpaired.length > 0) {
    throw new OnnxFormatError(
      `${label}: the KV-cache inputs and outputs do not pair up (${unpaired.slice(0, 3).join("; ")}). ` +
        `The file is corrupt or was not exported as a decoder with past.`,
    );
  }
  if (layers !== undefined && count !== layers) {
    throw new OnnxFormatError(
      `${label}: the graph caches ${count} layers but config.json says ${layers}. ` +
        `The model file and config.json do not belong together.`,
    );
  }
}

/**
 * Checks a decoded model before native code sees it: unique initializer names, sane shapes (no
 * negative dims, no element count past 2^53), known element types, raw data lengths that agree
 * with shapes, external-data locations inside the model folder (symlinks resolved before the target
 * is touched), whole-number offsets within the external file's size, node inputs and graph outputs
 * that name something defined, and, with `expect: "decoder"`, the inputs and outputs a causal
 * language model needs.
 *
 * @param model a model from {@linkcode readOnnx}
 * @param options interface to expect (default: none)
 * @throws {OnnxFormatError} naming the first tensor, node or value at fault
 *
 * @example
 * ```ts
 * import { readOnnx, validateOnnx } from "@paramscope/kit/onnx";
 * const m = await readOnnx("models/paramscope-gpt2-tiny/onnx/model.onnx", { validate: false });
 * validateOnnx(m, { expect: "decoder", layers: 4 });
 * ```
 */
export function validateOnnx(model: OnnxModel, options: ValidateOnnxOptions = {}): void {
  const index = PROTO_INDEX.get(model);
  if (!index) throw new TypeError("validateOnnx() needs a model returned by readOnnx() or readOnnxBytes().");
  if (options.expect !== undefined && options.expect !== "decoder") {
    throw new TypeError(
      `validateOnnx(): unknown expect ${JSON.stringify(options.expect)}; use "decoder" or leave it out.`,
    );
  }
  if (options.layers !== undefined && !(Number.isSafeInteger(options.layers) && options.layers >= 0)) {
    throw new RangeError(`validateOnnx(): layers is ${String(options.layers)}; pass a whole number >= 0.`);
  }
  const label = model.path ?? "<bytes>";
  const seen = new Set<string>();
  for (const info of model.initializers) {
    if (seen.has(info.name)) {
      throw new OnnxFormatError(
        `${label}: two initializers are named "${info.name}"; names must be unique. The file is corrupt.`,
      );
    }
    seen.add(info.name);
  }
  for (const info of model.initializers) {
    const t = index.byName.get(info.name)!;
    checkShape(info, label);
    if (info.dataType === DataType.STRING) continue;
    const want = expectedBytes(info);
    if (want === undefined) {
      throw new OnnxFormatError(
        `${label}: tensor "${info.name}" has unknown data type ${info.dataType}. ` +
          `Supported: ${Object.keys(ELEMENT_BYTES).map((c) => dataTypeName(Number(c))).join(", ")}.`,
      );
    }
    if (info.external) {
      externalRange(index.baseDir, t, info, label);
      continue;
    }
    const have = storedBytes(t, info.dataType);
    if (have !== want) {
      throw new OnnxFormatError(
        `${label}: tensor "${info.name}" [${info.dims}] of type ${dataTypeName(info.dataType)} ` +
          `needs ${want} bytes but holds ${have}. The file is truncated or corrupt.`,
      );
    }
  }
  // The interface first: "this graph has no input_ids" says more than "a node reads an undefined value".
  if (options.expect === "decoder") checkDecoderInterface(model, label, options.layers);
  const defined = new Set<string>([
    ...model.initializers.map((i) => i.name),
    ...model.inputs.map((i) => i.name),
    "",
  ]);
  for (const n of model.nodes) {
    for (const i of n.inputs) {
      if (!defined.has(i)) {
        throw new OnnxFormatError(
          `${label}: node "${n.name}" (${n.opType}) reads "${i}", which nothing defines earlier. The graph is corrupt.`,
        );
      }
    }
    for (const o of n.outputs) defined.add(o);
  }
  for (const o of model.outputs) {
    if (!defined.has(o.name)) {
      throw new OnnxFormatError(`${label}: graph output "${o.name}" is produced by no node. The graph is corrupt.`);
    }
  }
}

/** Bytes held inline for a tensor: raw data, or typed repeated fields converted to bytes. */
function storedBytes(t: TensorProto, dataType: number): number {
  if (t.rawData && t.rawData.byteLength > 0) return t.rawData.byteLength;
  const per = ELEMENT_BYTES[dataType] ?? 0;
  if (t.floatData?.length) return t.floatData.length * 4;
  if (t.doubleData?.length) return t.doubleData.length * 8;
  if (t.int64Data?.length) return t.int64Data.length * 8;
  if (t.uint64Data?.length) return t.uint64Data.length * 8;
  // int32_data carries int32, int16, int8, uint8, uint16, bool, float16 (one element per entry).
  if (t.int32Data?.length) return Math.ceil(t.int32Data.length * per);
  return 0;
}

/**
 * The raw little-endian bytes of one initializer, from inline raw data, typed
 * fields, or its external-data file (read on demand, only that tensor's range).
 *
 * @param model a model from {@linkcode readOnnx}
 * @param name initializer name
 * @returns the bytes (a view when stored inline as raw data)
 * @throws {OnnxFormatError} when the tensor is missing or its data is short
 *
 * @example
 * ```ts
 * import { readOnnx, tensorBytes } from "@paramscope/kit/onnx";
 * const m = await readOnnx("models/paramscope-gpt2-tiny/onnx/model.onnx");
 * console.log(tensorBytes(m, m.initializers[0].name).byteLength);
 * ```
 */
export function tensorBytes(model: OnnxModel, name: string): Uint8Array {
  const index = PROTO_INDEX.get(model);
  const t = index?.byName.get(name);
  const info = model.initializers.find((i) => i.name === name);
  if (!index || !t || !info) {
    throw new OnnxFormatError(`No initializer named "${name}" in ${model.path ?? "<bytes>"}.`);
  }
  const label = model.path ?? "<bytes>";
  checkShape(info, label);
  const want = expectedBytes(info);
  if (info.external) {
    // Checked again here (not only in validateOnnx), so that an unvalidated model cannot make
    // this read leave the folder or allocate more than the file holds.
    const { file, offset, length } = externalRange(index.baseDir, t, info, label);
    const out = new Uint8Array(length);
    let fh: Deno.FsFile;
    try {
      fh = Deno.openSync(file, { read: true });
    } catch (e) {
      throw new OnnxFormatError(`${label}: external data for tensor "${name}" cannot be read: ${(e as Error).message}`);
    }
    try {
      fh.seekSync(offset, Deno.SeekMode.Start);
      let got = 0;
      while (got < length) {
        const n = fh.readSync(out.subarray(got));
        if (n === null || n === 0) break;
        got += n;
      }
      if (got < length) {
        throw new OnnxFormatError(
          `${label}: tensor "${name}" needs ${length} bytes from its external data but only ${got} are there.`,
        );
      }
    } finally {
      fh.close();
    }
    return out;
  }
  if (t.rawData && t.rawData.byteLength > 0) {
    if (want !== undefined && t.rawData.byteLength !== want) {
      throw new OnnxFormatError(
        `${label}: tensor "${name}" [${info.dims}] needs ${want} bytes but holds ${t.rawData.byteLength}.`,
      );
    }
    return t.rawData;
  }
  return typedFieldBytes(t, info, label);
}

function typedFieldBytes(t: TensorProto, info: InitializerInfo, label: string): Uint8Array {
  const n = info.elements;
  // The values must be there before anything is allocated: the output is sized from the shape.
  const stored = t.floatData?.length || t.doubleData?.length || t.int64Data?.length || t.int32Data?.length || 0;
  if (n > stored && info.dataType !== DataType.STRING) {
    throw new OnnxFormatError(
      `${label}: tensor "${info.name}" of type ${dataTypeName(info.dataType)} has ${stored} values ` +
        `but its shape [${info.dims}] needs ${n}. The file is truncated or corrupt.`,
    );
  }
  const out = new Uint8Array(expectedBytes(info) ?? 0);
  const dv = new DataView(out.buffer);
  const need = (len: number) => {
    if (len < n) {
      throw new OnnxFormatError(`${label}: tensor "${info.name}" has ${len} values but its shape needs ${n}.`);
    }
  };
  switch (info.dataType) {
    case DataType.FLOAT:
      need(t.floatData?.length ?? 0);
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, t.floatData![i], true);
      break;
    case DataType.DOUBLE:
      need(t.doubleData?.length ?? 0);
      for (let i = 0; i < n; i++) dv.setFloat64(i * 8, t.doubleData![i], true);
      break;
    case DataType.INT64:
      need(t.int64Data?.length ?? 0);
      for (let i = 0; i < n; i++) dv.setBigInt64(i * 8, BigInt(toNumber(t.int64Data![i])), true);
      break;
    case DataType.INT32:
      need(t.int32Data?.length ?? 0);
      for (let i = 0; i < n; i++) dv.setInt32(i * 4, t.int32Data![i], true);
      break;
    case DataType.UINT8:
    case DataType.INT8:
    case DataType.BOOL:
      need(t.int32Data?.length ?? 0);
      for (let i = 0; i < n; i++) out[i] = t.int32Data![i] & 0xff;
      break;
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
    case DataType.UINT16:
    case DataType.INT16:
      need(t.int32Data?.length ?? 0);
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, t.int32Data![i] & 0xffff, true);
      break;
    default:
      if (n > 0) {
        throw new OnnxFormatError(
          `${label}: tensor "${info.name}" of type ${dataTypeName(info.dataType)} has no raw data.`,
        );
      }
  }
  return out;
}

/**
 * Decodes an initializer of a plain numeric type into a typed array
 * (float32 → Float32Array, float16/bfloat16 → Float32Array, int64 →
 * BigInt64Array, int32 → Int32Array, int8/uint8 → Int8Array/Uint8Array).
 * Quantized layouts are interpreted by the weights module, not here.
 *
 * @param model a model from {@linkcode readOnnx}
 * @param name initializer name
 * @returns the values and shape
 *
 * @example
 * ```ts
 * import { readOnnx, tensorValues } from "@paramscope/kit/onnx";
 * const m = await readOnnx("models/paramscope-gpt2-tiny/onnx/model.onnx");
 * const v = tensorValues(m, "transformer.ln_f.weight");
 * console.log(v.dims, v.data.length);
 * ```
 */
export function tensorValues(model: OnnxModel, name: string): {
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Int8Array | Uint8Array | Uint16Array | Int16Array;
  dims: number[];
  dataType: number;
} {
  const info = model.initializers.find((i) => i.name === name);
  if (!info) throw new OnnxFormatError(`No initializer named "${name}" in ${model.path ?? "<bytes>"}.`);
  const raw = tensorBytes(model, name);
  // Copy into an aligned buffer only when the view is misaligned for the element type.
  const aligned = (bytesPer: number) => raw.byteOffset % bytesPer === 0 ? raw : new Uint8Array(raw);
  const n = info.elements;
  const dims = info.dims;
  switch (info.dataType) {
    case DataType.FLOAT: {
      const b = aligned(4);
      return { data: new Float32Array(b.buffer, b.byteOffset, n), dims, dataType: info.dataType };
    }
    case DataType.DOUBLE: {
      const b = aligned(8);
      return { data: new Float64Array(b.buffer, b.byteOffset, n), dims, dataType: info.dataType };
    }
    case DataType.FLOAT16:
    case DataType.BFLOAT16: {
      const b = aligned(2);
      const h = new Uint16Array(b.buffer, b.byteOffset, n);
      const out = new Float32Array(n);
      if (info.dataType === DataType.FLOAT16) { for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]); }
      else {
        const u = new Uint32Array(out.buffer);
        for (let i = 0; i < n; i++) u[i] = h[i] << 16;
      }
      return { data: out, dims, dataType: info.dataType };
    }
    case DataType.INT32: {
      const b = aligned(4);
      return { data: new Int32Array(b.buffer, b.byteOffset, n), dims, dataType: info.dataType };
    }
    case DataType.INT64: {
      const b = aligned(8);
      return { data: new BigInt64Array(b.buffer, b.byteOffset, n), dims, dataType: info.dataType };
    }
    case DataType.INT8:
      return { data: new Int8Array(raw.buffer, raw.byteOffset, n), dims, dataType: info.dataType };
    case DataType.UINT8:
    case DataType.BOOL:
      return { data: new Uint8Array(raw.buffer, raw.byteOffset, n), dims, dataType: info.dataType };
    case DataType.UINT16: {
      const b = aligned(2);
      return { data: new Uint16Array(b.buffer, b.byteOffset, n), dims, dataType: info.dataType };
    }
    case DataType.INT16: {
      const b = aligned(2);
      return { data: new Int16Array(b.buffer, b.byteOffset, n), dims, dataType: info.dataType };
    }
    default:
      // 4-bit and other packed types are returned as their bytes.
      return { data: raw, dims, dataType: info.dataType };
  }
}

/**
 * IEEE 754 half → float.
 *
 * @param h the 16-bit pattern
 * @returns the value as a JS number
 *
 * @example
 * ```ts
 * import { halfToFloat } from "@paramscope/kit/onnx";
 * console.log(halfToFloat(0x3c00)); // 1
 * ```
 */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * float → IEEE 754 half, rounding to nearest even (as `numpy.float16` does).
 *
 * @param v the value
 * @returns the 16-bit pattern
 *
 * @example
 * ```ts
 * import { floatToHalf } from "@paramscope/kit/onnx";
 * console.log(floatToHalf(1).toString(16)); // "3c00"
 * ```
 */
export function floatToHalf(v: number): number {
  const f32 = new Float32Array([v]);
  const x = new Uint32Array(f32.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  e = half >> 10;
  return sign | half;
}

// ---------------------------------------------------------------- building

/** Attribute values accepted by {@linkcode makeNode}. */
export type AttributeValue = number | string | number[] | TensorProto | { ints: number[] } | { float: number };

/**
 * Builds a node. Integers become INT attributes, other numbers FLOAT (wrap as
 * `{float: 1}` to force a float), arrays of integers INTS.
 *
 * @param opType operator, e.g. `"MatMul"`
 * @param inputs input value names
 * @param outputs output value names
 * @param attributes attribute values by name
 * @param name node name (the exporter's scope, e.g. `/transformer/h.0/attn/c_attn/MatMul`)
 * @param domain operator domain (default standard ONNX)
 * @returns the node
 *
 * @example
 * ```ts
 * import { makeNode } from "@paramscope/kit/onnx";
 * const n = makeNode("Transpose", ["x"], ["y"], { perm: [1, 0] }, "/t");
 * console.log(n.opType);
 * ```
 */
export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: Record<string, AttributeValue> = {},
  name = "",
  domain = "",
): NodeProto {
  const attribute = Object.entries(attributes).map(([k, v]) => {
    if (typeof v === "string") return { name: k, type: 3, s: new TextEncoder().encode(v) };
    if (typeof v === "number") {
      return Number.isInteger(v) ? { name: k, type: 2, i: v } : { name: k, type: 1, f: v };
    }
    if (Array.isArray(v)) return { name: k, type: 7, ints: v };
    if ("ints" in v) return { name: k, type: 7, ints: v.ints };
    if ("float" in v) return { name: k, type: 1, f: v.float };
    return { name: k, type: 4, t: v as TensorProto };
  });
  return { opType, input: inputs, output: outputs, attribute, name, domain };
}

/**
 * Builds an initializer from a typed array, stored as little-endian raw data.
 *
 * @param name tensor name
 * @param dims shape
 * @param data values; the data type follows the array type unless `dataType` is given
 * @param dataType ONNX type code override (e.g. FLOAT16 for a Uint16Array of halves, UINT4 for packed bytes)
 * @returns the tensor
 *
 * @example
 * ```ts
 * import { makeTensor } from "@paramscope/kit/onnx";
 * const t = makeTensor("w", [2, 2], new Float32Array([1, 2, 3, 4]));
 * console.log(t.dataType); // 1
 * ```
 */
export function makeTensor(
  name: string,
  dims: readonly number[],
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Uint16Array,
  dataType?: number,
): TensorProto {
  const type = dataType ??
    (data instanceof Float32Array
      ? DataType.FLOAT
      : data instanceof Int32Array
      ? DataType.INT32
      : data instanceof BigInt64Array
      ? DataType.INT64
      : data instanceof Int8Array
      ? DataType.INT8
      : data instanceof Uint16Array
      ? DataType.FLOAT16
      : DataType.UINT8);
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { name, dims: [...dims], dataType: type, rawData: raw };
}

/**
 * Describes a graph input or output.
 *
 * @param name value name
 * @param elemType element type code
 * @param shape dims: numbers or symbolic names
 * @returns the value info
 *
 * @example
 * ```ts
 * import { DataType, makeValueInfo } from "@paramscope/kit/onnx";
 * const v = makeValueInfo("input_ids", DataType.INT64, ["batch_size", "sequence_length"]);
 * console.log(v.name);
 * ```
 */
export function makeValueInfo(name: string, elemType: number, shape: (number | string)[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** A graph to assemble with {@linkcode makeModel}. */
export interface GraphSpec {
  /** Graph name. */
  name: string;
  /** Nodes in topological order. */
  nodes: NodeProto[];
  /** Graph inputs. */
  inputs: ValueInfoProto[];
  /** Graph outputs. */
  outputs: ValueInfoProto[];
  /** Initializers. */
  initializers: TensorProto[];
  /** Default-domain opset (default 17). */
  opset?: number;
  /** Extra opset imports, e.g. `{ "com.microsoft": 1 }` for contrib ops. */
  extraOpsets?: Record<string, number>;
  /** Free-form metadata stored in the model. */
  metadata?: Record<string, string>;
}

/**
 * Assembles a model proto.
 *
 * @param spec graph, opset and metadata
 * @returns the model proto
 *
 * @example
 * ```ts
 * import { DataType, makeModel, makeNode, makeValueInfo } from "@paramscope/kit/onnx";
 * const m = makeModel({
 *   name: "id", nodes: [makeNode("Identity", ["x"], ["y"])], initializers: [],
 *   inputs: [makeValueInfo("x", DataType.FLOAT, [1])], outputs: [makeValueInfo("y", DataType.FLOAT, [1])],
 * });
 * console.log(m.opsetImport?.[0].version);
 * ```
 */
export function makeModel(spec: GraphSpec): ModelProto {
  const opsetImport = [{ domain: "", version: spec.opset ?? 17 }];
  for (const [domain, version] of Object.entries(spec.extraOpsets ?? {})) opsetImport.push({ domain, version });
  return {
    irVersion: 8,
    producerName: "paramscope",
    producerVersion: "0.1.0",
    opsetImport,
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: spec.name,
      node: spec.nodes,
      input: spec.inputs,
      output: spec.outputs,
      initializer: spec.initializers,
    },
  };
}

/** Options for {@linkcode writeOnnx}. */
export interface WriteOnnxOptions {
  /**
   * Move initializers of at least this many bytes to an external-data file
   * `<name>.onnx_data` beside the model (default: never; ONNX files over 2 GB need it).
   */
  externalDataThreshold?: number;
}

/**
 * Encodes and writes a model, atomically (temporary name, then rename).
 * With `externalDataThreshold`, large tensors go to `<file>_data`.
 *
 * @param proto the model
 * @param path destination `.onnx` path
 * @param options external-data settings
 * @returns bytes written to the `.onnx` file
 *
 * @example
 * ```ts
 * import { DataType, makeModel, makeNode, makeValueInfo, writeOnnx } from "@paramscope/kit/onnx";
 * const m = makeModel({
 *   name: "id", nodes: [makeNode("Identity", ["x"], ["y"])], initializers: [],
 *   inputs: [makeValueInfo("x", DataType.FLOAT, [1])], outputs: [makeValueInfo("y", DataType.FLOAT, [1])],
 * });
 * await writeOnnx(m, await Deno.makeTempFile({ suffix: ".onnx" }));
 * ```
 */
export async function writeOnnx(proto: ModelProto, path: string, options: WriteOnnxOptions = {}): Promise<number> {
  let toWrite = proto;
  const threshold = options.externalDataThreshold;
  if (threshold !== undefined) {
    const dataName = `${path.split(/[\\/]/).pop()}_data`;
    const chunks: Uint8Array[] = [];
    let offset = 0;
    const initializer = (proto.graph?.initializer ?? []).map((t) => {
      const raw = t.rawData;
      if (!raw || raw.byteLength < threshold) return t;
      // Align each tensor to 4 KiB as onnx's external-data writer does, so it can be mapped.
      const pad = (4096 - (offset % 4096)) % 4096;
      if (pad) chunks.push(new Uint8Array(pad));
      offset += pad;
      chunks.push(raw);
      const entry = {
        ...t,
        rawData: new Uint8Array(),
        dataLocation: 1,
        externalData: [
          { key: "location", value: dataName },
          { key: "offset", value: String(offset) },
          { key: "length", value: String(raw.byteLength) },
        ],
      };
      offset += raw.byteLength;
      return entry;
    });
    const all = new Uint8Array(offset);
    let o = 0;
    for (const c of chunks) {
      all.set(c, o);
      o += c.byteLength;
    }
    await writeFileAtomic(join(dirname(path), dataName), all);
    toWrite = { ...proto, graph: { ...proto.graph, initializer } };
  }
  const bytes = onnx.ModelProto.encode(toWrite).finish();
  await writeFileAtomic(path, bytes);
  return bytes.byteLength;
}

/**
 * Encodes a model to bytes without writing it.
 *
 * @param proto the model
 * @returns the serialized model
 *
 * @example
 * ```ts
 * import { DataType, encodeOnnx, makeModel, makeNode, makeValueInfo } from "@paramscope/kit/onnx";
 * const m = makeModel({
 *   name: "id", nodes: [makeNode("Identity", ["x"], ["y"])], initializers: [],
 *   inputs: [makeValueInfo("x", DataType.FLOAT, [1])], outputs: [makeValueInfo("y", DataType.FLOAT, [1])],
 * });
 * console.log(encodeOnnx(m).byteLength > 0);
 * ```
 */
export function encodeOnnx(proto: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(proto).finish();
}
