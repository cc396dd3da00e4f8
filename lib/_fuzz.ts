/**
 * Seeded mutation fuzzing of the kit's readers (private; used by `tests/fuzz_test.ts` and
 * `scripts/fuzz.ts`). Each case mutates one file of the bundled model — `onnx/model.onnx`,
 * `config.json`, `tokenizer.json` or `tokenizer_config.json` — and feeds it to the kit's own
 * readers: `readOnnxBytes` + `tensorValues` + `validateOnnx(…, { expect: "decoder" })` for ONNX;
 * `JSON.parse` + `archFromConfig` + `loadModel(…, { tokenizerOnly: true })` + `tokenize` for the
 * JSON files (and transformers.js `new PreTrainedTokenizer(json, config)` for the tokenizer).
 *
 * Cases run in a child Deno process with narrow permissions (read: the scratch model folder, the
 * case folders and the bundled model; write: the case folders), so that a crash, a hang or a read
 * outside the allowed folders shows up as a failed case instead of taking the runner down: the
 * parent kills a case that exceeds its time bound and starts a fresh child.
 *
 * ONNX mutations are protobuf-aware: the file is parsed into a wire-level tree (field numbers,
 * wire types, lengths; ONNX's message schema tells which length-delimited fields are messages),
 * mutated copy-on-write, and serialized again with consistent enclosing lengths. Byte-level
 * mutations (bit flips, overwrites, insertions, truncation) aim at field headers more often than at
 * the tensor payloads that make up most of the file.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "./_fs.ts";
import { archFromConfig, bundledModelPath, checkTokenizerJson, loadModel, ModelLoadError } from "./load.ts";
import { OnnxFormatError, type OnnxModel, readOnnxBytes, tensorValues, validateOnnx } from "./onnx.ts";
import { createPrng, type Prng } from "./prng.ts";
import { tokenize } from "./tokenize.ts";

// ---------------------------------------------------------------------------------------------
// Wire-level protobuf tree
// ---------------------------------------------------------------------------------------------

/** One protobuf field as it sits on the wire; `kids` when the schema says it is a message. */
interface WireField {
  /** Field number. */
  no: number;
  /** Wire type of the payload (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32). */
  wire: number;
  /** Offset of the tag in the base file (-1 for fields made by a mutation). */
  start: number;
  /** Varint payload. */
  v?: bigint;
  /** Fixed-size payload. */
  fixed?: Uint8Array;
  /** Length-delimited payload that is not parsed further. */
  bytes?: Uint8Array;
  /** Length-delimited payload parsed as a message of type `msg`. */
  kids?: WireField[];
  /** Message type of `kids`. */
  msg?: string;
  /** Wire type written in the tag instead of `wire` (a wrong-wire-type mutation). */
  tagWire?: number;
  /** Field number written in the tag instead of `no`. */
  tagNo?: number;
  /** Length written instead of the payload's real length. */
  len?: bigint;
}

/** Which length-delimited fields of each ONNX message are messages themselves (onnx.proto numbering). */
const SCHEMA: Record<string, Record<number, string>> = {
  Model: { 7: "Graph", 8: "Opset", 14: "Entry" },
  Graph: { 1: "Node", 5: "Tensor", 11: "ValueInfo", 12: "ValueInfo", 13: "ValueInfo" },
  Node: { 5: "Attribute" },
  Attribute: { 5: "Tensor", 6: "Graph" },
  Tensor: { 13: "Entry" },
  ValueInfo: { 2: "Type" },
  Type: { 1: "TensorType" },
  TensorType: { 2: "Shape" },
  Shape: { 1: "Dim" },
  Opset: {},
  Entry: {},
  Dim: {},
};

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let v = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new RangeError("varint runs past the end of the buffer");
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [v, pos];
    shift += 7n;
  }
  throw new RangeError("varint longer than 10 bytes");
}

function encodeVarint(value: bigint): Uint8Array {
  let x = BigInt.asUintN(64, value);
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    out.push(b);
  } while (x);
  return Uint8Array.from(out);
}

/** Parses `buf` as message `msg`; `base` is `buf`'s offset in the file; `hot` collects header offsets. */
function parseMessage(buf: Uint8Array, msg: string, base: number, hot: number[]): WireField[] {
  const fields: WireField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    hot.push(base + pos);
    const [tag, p1] = readVarint(buf, pos);
    const no = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    pos = p1;
    if (wire === 0) {
      const [v, p2] = readVarint(buf, pos);
      fields.push({ no, wire, start: base + start, v });
      pos = p2;
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      fields.push({ no, wire, start: base + start, fixed: buf.subarray(pos, pos + n) });
      pos += n;
    } else if (wire === 2) {
      hot.push(base + pos);
      const [len, p2] = readVarint(buf, pos);
      const body = buf.subarray(p2, p2 + Number(len));
      const sub = SCHEMA[msg]?.[no];
      fields.push(
        sub
          ? { no, wire, start: base + start, kids: parseMessage(body, sub, base + p2, hot), msg: sub }
          : { no, wire, start: base + start, bytes: body },
      );
      pos = p2 + Number(len);
    } else {
      throw new RangeError(`unsupported wire type ${wire} in the base file`);
    }
  }
  return fields;
}

function serialize(fields: readonly WireField[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  const push = (u: Uint8Array) => {
    parts.push(u);
    total += u.length;
  };
  for (const f of fields) {
    push(encodeVarint(BigInt(f.tagNo ?? f.no) * 8n + BigInt(f.tagWire ?? f.wire)));
    if (f.wire === 0) push(encodeVarint(f.v ?? 0n));
    else if (f.wire === 1 || f.wire === 5) push(f.fixed ?? new Uint8Array(f.wire === 1 ? 8 : 4));
    else {
      const body = f.kids ? serialize(f.kids) : (f.bytes ?? new Uint8Array());
      push(encodeVarint(f.len ?? BigInt(body.length)));
      push(body);
    }
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A copy of `fields` with the field at `path` replaced by `fn`'s fields (copy-on-write along the path). */
function edit(fields: readonly WireField[], path: readonly number[], fn: (f: WireField) => WireField[]): WireField[] {
  const [i, ...rest] = path;
  const out = fields.slice();
  if (rest.length === 0) out.splice(i, 1, ...fn(fields[i]));
  else out[i] = { ...fields[i], kids: edit(fields[i].kids!, rest, fn) };
  return out;
}

interface Located {
  path: number[];
  field: WireField;
}

/** Every field (at any depth) for which `pred` holds, with its path. */
function findAll(fields: readonly WireField[], pred: (f: WireField) => boolean, prefix: number[] = []): Located[] {
  const out: Located[] = [];
  fields.forEach((f, i) => {
    const path = [...prefix, i];
    if (pred(f)) out.push({ path, field: f });
    if (f.kids) out.push(...findAll(f.kids, pred, path));
  });
  return out;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const vField = (no: number, v: bigint): WireField => ({ no, wire: 0, start: -1, v });
const sField = (no: number, text: string): WireField => ({ no, wire: 2, start: -1, bytes: enc.encode(text) });
const mField = (no: number, msg: string, kids: WireField[]): WireField => ({ no, wire: 2, start: -1, kids, msg });
const textOf = (f: WireField | undefined): string => (f?.bytes ? dec.decode(f.bytes) : "");

// ---------------------------------------------------------------------------------------------
// The base files
// ---------------------------------------------------------------------------------------------

/**
 * The unmutated inputs, read once per process.
 *
 * @example
 * ```ts ignore
 * import { loadFuzzBase } from "./_fuzz.ts";
 * const base = await loadFuzzBase();
 * console.log(base.onnx.length, base.layers);
 * ```
 */
export interface FuzzBase {
  /** Folder the files came from. */
  dir: string;
  /** `onnx/model.onnx`. */
  onnx: Uint8Array;
  /** Its wire-level tree. */
  tree: WireField[];
  /** File offsets of field tags and length prefixes (where byte mutations do the most harm). */
  hot: number[];
  /** `config.json` text. */
  config: string;
  /** `tokenizer.json` text. */
  tokenizer: string;
  /** `tokenizer_config.json` text. */
  tokenizerConfig: string;
  /** `generation_config.json` text, or `undefined` when the folder has none. */
  generationConfig?: string;
  /** `n_layer` of the config (the decoder interface check uses it). */
  layers: number;
}

/**
 * Reads the model folder the fuzzer mutates (default: the bundled model).
 *
 * @param dir a model folder in the Hugging Face layout
 * @returns the files and the ONNX wire tree
 * @example
 * ```ts ignore
 * import { loadFuzzBase } from "./_fuzz.ts";
 * const base = await loadFuzzBase();
 * console.log(base.hot.length > 100);
 * ```
 */
export async function loadFuzzBase(dir: string = bundledModelPath()): Promise<FuzzBase> {
  const onnx = await Deno.readFile(join(dir, "onnx", "model.onnx"));
  const hot: number[] = [];
  const tree = parseMessage(onnx, "Model", 0, hot);
  const config = await Deno.readTextFile(join(dir, "config.json"));
  const generationConfig = await Deno.readTextFile(join(dir, "generation_config.json")).catch(() => undefined);
  const layers = Number((JSON.parse(config) as Record<string, unknown>).n_layer ?? 0);
  return {
    dir,
    onnx,
    tree,
    hot,
    config,
    tokenizer: await Deno.readTextFile(join(dir, "tokenizer.json")),
    tokenizerConfig: await Deno.readTextFile(join(dir, "tokenizer_config.json")),
    generationConfig,
    layers,
  };
}

// ---------------------------------------------------------------------------------------------
// ONNX mutations
// ---------------------------------------------------------------------------------------------

/** What one mutation produced. */
interface Mutant {
  bytes: Uint8Array;
  label: string;
  /** The mutant points external data outside the model folder: any result but a refusal is a failure. */
  escapes?: boolean;
}

const pick = <T>(r: Prng, xs: readonly T[]): T => xs[r.nextInt(xs.length)];
const INTERESTING = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x08, 0x0a, 0x12, 0x1a, 0x22, 0x3a, 0x42];

/** A header offset most of the time, any offset otherwise. */
function aim(base: FuzzBase, r: Prng): number {
  return r.next() < 0.7
    ? Math.min(base.onnx.length - 1, pick(r, base.hot) + r.nextInt(3))
    : r.nextInt(base.onnx.length);
}

/** Graph-level initializers (path `[graph, k]`), with their decoded name, dims and type. */
function initializers(base: FuzzBase): { path: number[]; name: string; dims: bigint[]; type: number; raw: number }[] {
  const g = base.tree.findIndex((f) => f.no === 7);
  return base.tree[g].kids!.flatMap((f, k) => {
    if (f.no !== 5 || !f.kids) return [];
    const dims = f.kids.filter((x) => x.no === 1).flatMap((x) => x.wire === 0 ? [x.v!] : packedVarints(x.bytes!));
    return [{
      path: [g, k],
      name: textOf(f.kids.find((x) => x.no === 8)),
      dims,
      type: Number(f.kids.find((x) => x.no === 2)?.v ?? 0n),
      raw: f.kids.find((x) => x.no === 9)?.bytes?.length ?? 0,
    }];
  });
}

function packedVarints(buf: Uint8Array): bigint[] {
  const out: bigint[] = [];
  for (let pos = 0; pos < buf.length;) {
    const [v, p] = readVarint(buf, pos);
    out.push(BigInt.asIntN(64, v));
    pos = p;
  }
  return out;
}

/** Graph-level fields with number `no` (nodes 1, initializers 5, inputs 11, outputs 12). */
function graphFields(base: FuzzBase, no: number): Located[] {
  const g = base.tree.findIndex((f) => f.no === 7);
  return base.tree[g].kids!.flatMap((f, k) => (f.no === no ? [{ path: [g, k], field: f }] : []));
}

function pickInit(base: FuzzBase, r: Prng, small = false) {
  const all = initializers(base);
  const pool = small ? all.filter((i) => i.raw > 0 && i.raw <= 4096) : all;
  // Half the time the largest tensor (the embedding), which dominates the file.
  if (!small && r.next() < 0.4) return all.reduce((a, b) => (a.raw >= b.raw ? a : b));
  return pick(r, pool.length ? pool : all);
}

const HUGE_LENGTHS = [2n ** 31n - 1n, 2n ** 32n, 2n ** 32n + 5n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];

const DIM_PRESETS: ((orig: bigint[]) => bigint[])[] = [
  () => [2n ** 40n],
  () => [2n ** 62n],
  () => [-1n],
  () => [-(2n ** 63n)],
  (o) => [-(o[0] ?? 1n), ...o.slice(1)],
  () => [2n ** 31n, 2n ** 31n, 2n ** 31n],
  () => [2n ** 26n, 2n ** 26n],
  () => [2n ** 53n + 1n],
  () => [2n ** 63n - 1n],
  () => [2n ** 64n - 1n],
  (o) => [2n ** 32n + (o[0] ?? 1n), ...o.slice(1)],
  (o) => [(o[0] ?? 1n) * 2n, ...o.slice(1)],
  (o) => [...o, 1n],
  (o) => o.slice(1),
  () => [0n],
  (o) => [...o].reverse(),
];

/** ONNX mutations by name; byte-level ones aim at field headers more often than at payloads. */
const ONNX_MUTATIONS: Record<string, (base: FuzzBase, r: Prng, outside: string) => Mutant> = {
  bitflip(base, r) {
    const out = base.onnx.slice();
    const k = 1 + r.nextInt(8);
    const at = aim(base, r);
    out[at] ^= 1 << r.nextInt(8);
    for (let i = 1; i < k; i++) out[aim(base, r)] ^= 1 << r.nextInt(8);
    return { bytes: out, label: `bitflip x${k} at ${at}` };
  },
  overwrite(base, r) {
    const out = base.onnx.slice();
    const at = aim(base, r);
    const k = 1 + r.nextInt(16);
    for (let i = 0; i < k && at + i < out.length; i++) {
      out[at + i] = r.next() < 0.5 ? pick(r, INTERESTING) : r.nextInt(256);
    }
    return { bytes: out, label: `overwrite ${k} bytes at ${at}` };
  },
  insert(base, r) {
    const at = aim(base, r);
    const k = 1 + r.nextInt(8);
    const out = new Uint8Array(base.onnx.length + k);
    out.set(base.onnx.subarray(0, at));
    for (let i = 0; i < k; i++) out[at + i] = pick(r, INTERESTING);
    out.set(base.onnx.subarray(at), at + k);
    return { bytes: out, label: `insert ${k} bytes at ${at}` };
  },
  truncate(base, r) {
    const at = r.next() < 0.5 ? pick(r, base.hot) : r.nextInt(base.onnx.length);
    return { bytes: base.onnx.subarray(0, at), label: `truncate at ${at} of ${base.onnx.length}` };
  },
  length(base, r) {
    const { path, field } = pick(r, findAll(base.tree, (f) => f.wire === 2));
    const actual = BigInt(field.kids ? serialize(field.kids).length : field.bytes!.length);
    const len = r.next() < 0.5 ? pick(r, HUGE_LENGTHS) : actual + pick(r, [1n, 9n, 1000n, -1n, -actual]);
    const bytes = serialize(edit(base.tree, path, (f) => [{ ...f, len: len < 0n ? 0n : len }]));
    return { bytes, label: `length of ${field.msg ?? "bytes"} field ${field.no}: ${actual} -> ${len}` };
  },
  wiretype(base, r) {
    const { path, field } = pick(r, findAll(base.tree, () => true));
    const tagWire = pick(r, [0, 1, 2, 3, 4, 5, 6, 7].filter((w) => w !== field.wire));
    return {
      bytes: serialize(edit(base.tree, path, (f) => [{ ...f, tagWire }])),
      label: `wire type ${field.wire} -> ${tagWire}`,
    };
  },
  fieldno(base, r) {
    const { path, field } = pick(r, findAll(base.tree, () => true));
    const tagNo = pick(r, [0, 2 ** 29 - 1, 19000, field.no + 1]);
    return {
      bytes: serialize(edit(base.tree, path, (f) => [{ ...f, tagNo }])),
      label: `field number ${field.no} -> ${tagNo}`,
    };
  },
  dims(base, r) {
    const init = pickInit(base, r);
    const dims = pick(r, DIM_PRESETS)(init.dims);
    const packed = r.next() < 0.3;
    const bytes = serialize(edit(base.tree, init.path, (f) => {
      const rest = f.kids!.filter((x) => x.no !== 1);
      const dimFields = packed
        ? [{ no: 1, wire: 2, start: -1, bytes: Uint8Array.from(dims.flatMap((d) => [...encodeVarint(d)])) }]
        : dims.map((d) => vField(1, d));
      return [{ ...f, kids: [...dimFields, ...rest] }];
    }));
    return { bytes, label: `dims of "${init.name}" [${init.dims}] -> [${dims}]${packed ? " packed" : ""}` };
  },
  datatype(base, r) {
    const init = pickInit(base, r);
    const type = pick(r, [0n, 8n, BigInt(2 + r.nextInt(15)), BigInt(17 + r.nextInt(14)), 2n ** 31n - 1n, -1n, 1000n]);
    const bytes = serialize(
      edit(base.tree, init.path, (f) => [{ ...f, kids: [...f.kids!.filter((x) => x.no !== 2), vField(2, type)] }]),
    );
    return { bytes, label: `data_type of "${init.name}" ${init.type} -> ${type}` };
  },
  external(base, r, outside) {
    const init = r.next() < 0.7 ? pickInit(base, r, true) : pickInit(base, r);
    const [placeholder, escapes] = pick(r, EXTERNAL_LOCATIONS);
    const location = placeholder === OUTSIDE_ABSOLUTE ? outside : placeholder;
    const offset = pick(r, [
      "0",
      "0",
      "4096",
      "-1",
      "NaN",
      "1e3",
      "abc",
      "99999999999999999999",
      "0x10",
      " 0",
      "4.5",
      "",
    ]);
    const length = pick(r, [undefined, undefined, String(init.raw), "0", "-4", "18446744073709551615", "NaN", "65536"]);
    const entries: [string, string | undefined][] = [
      ["location", r.next() < 0.9 ? location : undefined],
      ["offset", r.next() < 0.8 ? offset : undefined],
      ["length", length],
    ];
    const bytes = serialize(edit(base.tree, init.path, (f) => [{
      ...f,
      kids: [
        ...f.kids!.filter((x) => x.no !== 9 && x.no !== 13 && x.no !== 14),
        ...entries.filter(([, v]) => v !== undefined).map(([k, v]) =>
          mField(13, "Entry", [sField(1, k), sField(2, v!)])
        ),
        vField(14, 1n),
      ],
    }]));
    return {
      bytes,
      label: `external "${init.name}" -> ${JSON.stringify(entries.filter(([, v]) => v !== undefined))}`,
      escapes: escapes && entries[0][1] !== undefined,
    };
  },
  externalflag(base, r) {
    const init = pickInit(base, r, true);
    const bytes = serialize(edit(base.tree, init.path, (f) => [{ ...f, kids: [...f.kids!, vField(14, 1n)] }]));
    return { bytes, label: `data_location EXTERNAL on "${init.name}" with no entries` };
  },
  dupname(base, r) {
    const all = initializers(base);
    const a = pick(r, all);
    const b = pick(r, all.filter((x) => x !== a));
    const bytes = serialize(
      edit(base.tree, b.path, (f) => [{ ...f, kids: [...f.kids!.filter((x) => x.no !== 8), sField(8, a.name)] }]),
    );
    return { bytes, label: `initializer "${b.name}" renamed to the existing "${a.name}"` };
  },
  graphio(base, r) {
    const ios = [...graphFields(base, 11), ...graphFields(base, 12)];
    const named = (n: string) => ios.find((x) => textOf(x.field.kids!.find((k) => k.no === 1)) === n);
    const target = r.next() < 0.5
      ? named(pick(r, ["input_ids", "attention_mask", "logits", "past_key_values.0.key", "present.3.value"])) ??
        pick(r, ios)
      : pick(r, ios);
    const name = textOf(target.field.kids!.find((k) => k.no === 1));
    const op = pick(r, ["remove", "rename", "retype"]);
    const bytes = serialize(edit(base.tree, target.path, (f) => {
      if (op === "remove") return [];
      if (op === "rename") return [{ ...f, kids: [sField(1, `${name}_x`), ...f.kids!.filter((k) => k.no !== 1)] }];
      // retype: elem_type of the tensor type becomes float32
      return [{
        ...f,
        kids: [...f.kids!.filter((k) => k.no !== 2), mField(2, "Type", [mField(1, "TensorType", [vField(1, 1n)])])],
      }];
    }));
    return { bytes, label: `graph ${target.field.no === 11 ? "input" : "output"} "${name}": ${op}` };
  },
  nodeinput(base, r) {
    const { path, field } = pick(r, graphFields(base, 1));
    const which = pick(r, [1, 2]);
    const ins = field.kids!.map((k, i) => [k, i] as const).filter(([k]) => k.no === which);
    if (ins.length === 0) return { bytes: base.onnx, label: "node without inputs (unchanged)" };
    const [, i] = pick(r, ins);
    const bytes = serialize(
      edit(base.tree, [...path, i], () => which === 1 ? [sField(1, `nowhere.${r.nextInt(100)}`)] : []),
    );
    return {
      bytes,
      label: `node "${textOf(field.kids!.find((k) => k.no === 3))}": ${
        which === 1 ? "input renamed" : "output removed"
      }`,
    };
  },
  rawsize(base, r) {
    const init = pickInit(base, r);
    const delta = pick(r, [-1, -2, -4, -8, 1, 3, 8]);
    const bytes = serialize(edit(base.tree, init.path, (f) => [{
      ...f,
      kids: f.kids!.map((x) => {
        if (x.no !== 9) return x;
        const b = x.bytes!;
        if (delta < 0) return { ...x, bytes: b.subarray(0, Math.max(0, b.length + delta)) };
        const grown = new Uint8Array(b.length + delta);
        grown.set(b);
        return { ...x, bytes: grown };
      }),
    }]));
    return { bytes, label: `raw_data of "${init.name}" ${delta > 0 ? "+" : ""}${delta} bytes` };
  },
  typedfield(base, r) {
    const init = pickInit(base, r, true);
    const n = Math.max(0, Math.floor(init.raw / 4) + pick(r, [-1, 0, 0, 1, -1000]));
    const floats = new Uint8Array(4 * n);
    const field = pick(r, [4, 5, 7]); // float_data, int32_data, int64_data
    const body = field === 4 ? floats : Uint8Array.from(Array.from({ length: n }, () => [...encodeVarint(1n)]).flat());
    const bytes = serialize(edit(base.tree, init.path, (f) => [{
      ...f,
      kids: [...f.kids!.filter((x) => x.no !== 9), { no: field, wire: 2, start: -1, bytes: body }],
    }]));
    return { bytes, label: `raw_data of "${init.name}" -> ${n} values in field ${field}` };
  },
  optype(base, r) {
    const { path, field } = pick(r, graphFields(base, 1));
    const op = pick(r, ["NoSuchOp", "Relu", "", "MatMul", "Reshape", "Loop"]);
    const bytes = serialize(
      edit(base.tree, path, (f) => [{ ...f, kids: [...f.kids!.filter((k) => k.no !== 4), sField(4, op)] }]),
    );
    return { bytes, label: `op_type ${textOf(field.kids!.find((k) => k.no === 4))} -> ${JSON.stringify(op)}` };
  },
  attribute(base, r) {
    const attrs = findAll(base.tree, (f) => f.msg === "Attribute" && !!f.kids?.some((k) => k.no === 3));
    if (attrs.length === 0) return { bytes: base.onnx, label: "no int attribute (unchanged)" };
    const { path, field } = pick(r, attrs);
    const v = pick(r, [-1n, 2n ** 62n, -(2n ** 63n), 0n, 2n ** 31n]);
    const bytes = serialize(
      edit(base.tree, path, (f) => [{ ...f, kids: [...f.kids!.filter((k) => k.no !== 3), vField(3, v)] }]),
    );
    return { bytes, label: `attribute ${textOf(field.kids!.find((k) => k.no === 1))} = ${v}` };
  },
  value(base, r) {
    // Flip bits inside the embedding's floats: a valid model with different weights.
    const out = base.onnx.slice();
    const init = initializers(base).reduce((a, b) => (a.raw >= b.raw ? a : b));
    const rawField = findAll(base.tree, (f) => f.no === 9 && f.bytes?.length === init.raw)[0].field;
    const start = rawField.bytes!.byteOffset - base.onnx.byteOffset;
    const k = 1 + r.nextInt(32);
    for (let i = 0; i < k; i++) out[start + r.nextInt(init.raw)] ^= 1 << r.nextInt(8);
    return { bytes: out, label: `value bits x${k} in "${init.name}"` };
  },
  opset(base, r) {
    const at = base.tree.findIndex((f) => f.no === 8);
    const v = pick(r, [0n, 1n, 1000n, -1n, 2n ** 40n]);
    const bytes = serialize(
      edit(base.tree, [at], (f) => [{ ...f, kids: [...f.kids!.filter((k) => k.no !== 2), vField(2, v)] }]),
    );
    return { bytes, label: `opset version -> ${v}` };
  },
  nesting(base, r) {
    const depth = pick(r, [64, 2000, 20000]);
    const { path } = pick(r, graphFields(base, 1));
    const bytes = serialize(
      edit(
        base.tree,
        path,
        (f) => [{ ...f, kids: [...f.kids!, { no: 5, wire: 2, start: -1, bytes: nestedAttribute(depth) }] }],
      ),
    );
    return { bytes, label: `attribute nested ${depth} graphs deep` };
  },
};

/** Stands for the absolute path of the file outside the model folder. */
const OUTSIDE_ABSOLUTE = "<outside, absolute>";

/** [location, escapes the model folder]. The scratch folder layout is made by `makeScratch`. */
const EXTERNAL_LOCATIONS: readonly [string, boolean][] = [
  ["model.onnx_data", false],
  ["sub/../model.onnx_data", false],
  ["./model.onnx_data", false],
  ["dir.bin", false],
  ["missing.bin", false],
  ["", false],
  ["model.onnx_data\u0000../../outside.bin", false],
  ["C:\\outside.bin", false],
  ["\\\\server\\share\\outside.bin", false],
  ["../outside.bin", true],
  ["sub/../../outside.bin", true],
  ["./../outside.bin", true],
  ["link.bin", true],
  ["sub/../link.bin", true],
  [OUTSIDE_ABSOLUTE, true],
];

/**
 * An AttributeProto holding a graph whose one node holds such an attribute, `depth` levels deep,
 * built inside-out in linear time (protobuf lengths only prefix their payload).
 */
function nestedAttribute(depth: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  // innermost: { name: "g", type: INT (2), i: 1 }
  const inner = Uint8Array.from([0x0a, 1, 0x67, 0xa0, 0x01, 2, 0x18, 1]);
  chunks.push(inner);
  let size = inner.length;
  for (let i = 0; i < depth; i++) {
    // Node { op_type: "If", attribute: <inner> }
    const nodeHead = Uint8Array.from([0x22, 2, 0x49, 0x66, 0x2a, ...encodeVarint(BigInt(size))]);
    size += nodeHead.length;
    // Graph { node: <node> }
    const graphHead = Uint8Array.from([0x0a, ...encodeVarint(BigInt(size))]);
    size += graphHead.length;
    // Attribute { name: "g", type: GRAPH (5), g: <graph> }
    const attrHead = Uint8Array.from([0x0a, 1, 0x67, 0xa0, 0x01, 5, 0x32, ...encodeVarint(BigInt(size))]);
    size += attrHead.length;
    chunks.push(nodeHead, graphHead, attrHead);
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (let i = chunks.length - 1; i >= 0; i--) {
    out.set(chunks[i], o);
    o += chunks[i].length;
  }
  return out;
}

/** Mutation names, in the order a case draws them from. */
export const ONNX_MUTATION_NAMES: readonly string[] = Object.keys(ONNX_MUTATIONS);

/**
 * One mutant of the base ONNX file.
 *
 * @param base the base files
 * @param kind a name from {@linkcode ONNX_MUTATION_NAMES}
 * @param r the case's generator
 * @param outside absolute path the `OUTSIDE_ABSOLUTE` external location stands for
 * @returns the bytes, a label, and whether the mutant points outside the model folder
 * @example
 * ```ts ignore
 * import { createPrng } from "./prng.ts";
 * import { loadFuzzBase, mutateOnnx } from "./_fuzz.ts";
 * const m = mutateOnnx(await loadFuzzBase(), "dims", createPrng(1), "/tmp/outside.bin");
 * console.log(m.label);
 * ```
 */
export function mutateOnnx(
  base: FuzzBase,
  kind: string,
  r: Prng,
  outside: string,
): { bytes: Uint8Array; label: string; escapes: boolean } {
  const fn = ONNX_MUTATIONS[kind];
  if (!fn) throw new RangeError(`unknown ONNX mutation "${kind}"; use one of ${ONNX_MUTATION_NAMES.join(", ")}`);
  const m = fn(base, r, outside);
  return { bytes: m.bytes, label: m.label, escapes: m.escapes ?? false };
}

// ---------------------------------------------------------------------------------------------
// JSON mutations
// ---------------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const HOT_PATHS: Record<string, (string | number)[][]> = {
  config: [
    ["model_type"],
    ["vocab_size"],
    ["n_positions"],
    ["n_ctx"],
    ["n_embd"],
    ["n_layer"],
    ["n_head"],
    ["n_inner"],
    ["layer_norm_epsilon"],
    ["bos_token_id"],
    ["architectures"],
    ["tie_word_embeddings"],
  ],
  tokenizer: [
    ["model"],
    ["model", "type"],
    ["model", "vocab"],
    ["model", "merges"],
    ["model", "merges", 0],
    ["model", "unk_token"],
    ["model", "byte_fallback"],
    ["model", "continuing_subword_prefix"],
    ["model", "end_of_word_suffix"],
    ["model", "dropout"],
    ["pre_tokenizer"],
    ["pre_tokenizer", "type"],
    ["pre_tokenizer", "use_regex"],
    ["decoder"],
    ["decoder", "type"],
    ["post_processor"],
    ["post_processor", "type"],
    ["normalizer"],
    ["added_tokens"],
    ["added_tokens", 0],
    ["added_tokens", 0, "id"],
    ["added_tokens", 0, "content"],
    ["added_tokens", 0, "special"],
    ["truncation"],
    ["padding"],
  ],
  tokenizer_config: [
    ["tokenizer_class"],
    ["bos_token"],
    ["eos_token"],
    ["unk_token"],
    ["pad_token"],
    ["model_max_length"],
    ["added_tokens_decoder"],
    ["added_tokens_decoder", "12287"],
    ["added_tokens_decoder", "12287", "content"],
    ["clean_up_tokenization_spaces"],
    ["add_bos_token"],
    ["chat_template"],
  ],
};

const WEIRD_VALUES: Json[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  1e308,
  -1e308,
  2 ** 53 + 2,
  2 ** 64,
  2 ** 31,
  5e-324,
  "",
  "12",
  "NaN",
  "Infinity",
  "-Infinity",
  "-0",
  "1e999",
  "0x10",
  " 12 ",
  "null",
  [],
  [1, 2, 3],
  {},
  { type: "Nope" },
  "\u0000",
  "\ud800",
];

function walk(root: Json, r: Prng): (string | number)[] {
  const path: (string | number)[] = [];
  let node = root;
  for (let depth = 0; depth < 8; depth++) {
    if (depth > 0 && r.next() < 0.35) break;
    if (Array.isArray(node) && node.length) {
      const i = r.nextInt(node.length);
      path.push(i);
      node = node[i];
    } else if (node && typeof node === "object" && !Array.isArray(node)) {
      const keys = Object.keys(node);
      if (!keys.length) break;
      const k = pick(r, keys);
      path.push(k);
      node = node[k];
    } else break;
  }
  return path;
}

function setAt(root: Json, path: readonly (string | number)[], value: Json | undefined): boolean {
  if (path.length === 0) return false;
  let node: Json = root;
  for (const key of path.slice(0, -1)) {
    if (node === null || typeof node !== "object") return false;
    node = (node as Record<string, Json>)[key as string];
  }
  if (node === null || typeof node !== "object") return false;
  const last = path[path.length - 1];
  if (value === undefined) {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete (node as Record<string, Json>)[last as string];
  } else (node as Record<string, Json>)[last as string] = value;
  return true;
}

const DEEP = "__paramscope_fuzz_deep__";

/** JSON mutants: bytes as a file would hold them. */
const JSON_MUTATIONS: Record<string, (text: string, target: string, r: Prng) => { bytes: Uint8Array; label: string }> =
  {
    truncate(text, _t, r) {
      const b = enc.encode(text);
      const at = r.nextInt(b.length);
      return { bytes: b.subarray(0, at), label: `truncate at ${at} of ${b.length}` };
    },
    bitflip(text, _t, r) {
      const b = enc.encode(text);
      const k = 1 + r.nextInt(4);
      let first = -1;
      for (let i = 0; i < k; i++) {
        const at = r.nextInt(b.length);
        if (first < 0) first = at;
        b[at] ^= 1 << r.nextInt(8);
      }
      return { bytes: b, label: `bitflip x${k} at ${first}` };
    },
    type(text, target, r) {
      const obj = JSON.parse(text) as Json;
      const path = r.next() < 0.6 ? pick(r, HOT_PATHS[target]) : walk(obj, r);
      const v = pick(r, WEIRD_VALUES);
      setAt(obj, path, structuredClone(v));
      return { bytes: enc.encode(JSON.stringify(obj)), label: `${path.join(".")} = ${JSON.stringify(v)}` };
    },
    missing(text, target, r) {
      const obj = JSON.parse(text) as Json;
      const path = r.next() < 0.6 ? pick(r, HOT_PATHS[target]) : walk(obj, r);
      setAt(obj, path, undefined);
      return { bytes: enc.encode(JSON.stringify(obj)), label: `delete ${path.join(".")}` };
    },
    huge(text, target, r) {
      const obj = JSON.parse(text) as Json;
      const path = pick(r, HOT_PATHS[target]);
      const v = pick(r, [1e308, -1e308, 2 ** 53 + 2, 2 ** 64, -1, 0, 0.5, 1e-320, 2 ** 31, 2 ** 32 - 1, 1e15]);
      setAt(obj, path, v);
      return { bytes: enc.encode(JSON.stringify(obj)), label: `${path.join(".")} = ${v}` };
    },
    nanlike(text, target, r) {
      // Not valid JSON numbers, written into the text as a careless hand edit would.
      const obj = JSON.parse(text) as Json;
      const path = pick(r, HOT_PATHS[target]);
      const token = pick(r, ["NaN", "Infinity", "-Infinity", "1e999", "-0", "0x10", "01", "+1", "undefined"]);
      setAt(obj, path, DEEP);
      return {
        bytes: enc.encode(JSON.stringify(obj).replace(JSON.stringify(DEEP), token)),
        label: `${path.join(".")} = ${token} (bare)`,
      };
    },
    deep(text, target, r) {
      const obj = JSON.parse(text) as Json;
      const path = r.next() < 0.6 ? pick(r, HOT_PATHS[target]) : walk(obj, r);
      const depth = pick(r, [100, 10_000, 100_000]);
      const arrays = r.next() < 0.5;
      setAt(obj, path, DEEP);
      const nested = arrays ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
      return {
        bytes: enc.encode(JSON.stringify(obj).replace(JSON.stringify(DEEP), nested)),
        label: `${path.join(".")} nested ${depth} ${arrays ? "arrays" : "objects"} deep`,
      };
    },
    root(_text, _t, r) {
      const doc = pick(r, ["", "[]", "null", "42", '"text"', "\ufeff{}", "{", "{}", '{"a":1}{"b":2}']);
      return { bytes: enc.encode(doc), label: `document = ${JSON.stringify(doc)}` };
    },
    hugestring(text, target, r) {
      const obj = JSON.parse(text) as Json;
      const path = pick(r, HOT_PATHS[target]);
      setAt(obj, path, "x".repeat(1 << 22));
      return { bytes: enc.encode(JSON.stringify(obj)), label: `${path.join(".")} = 4 MiB string` };
    },
    dupkey(text, target, r) {
      const [key] = pick(r, HOT_PATHS[target]);
      const v = pick(r, WEIRD_VALUES);
      return {
        bytes: enc.encode(text.replace("{", `{${JSON.stringify(key)}: ${JSON.stringify(v)}, `)),
        label: `duplicate key ${key} = ${JSON.stringify(v)}`,
      };
    },
  };

/** JSON mutation names. */
export const JSON_MUTATION_NAMES: readonly string[] = Object.keys(JSON_MUTATIONS);

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/** Which file a case mutates. */
export type FuzzTarget = "onnx" | "config" | "tokenizer" | "tokenizer_config";

/**
 * One generated case.
 *
 * @example
 * ```ts ignore
 * import { loadFuzzBase, makeCase } from "./_fuzz.ts";
 * const c = makeCase(await loadFuzzBase(), 1, 0, "/tmp/outside.bin");
 * console.log(c.target, c.mutation);
 * ```
 */
export interface FuzzCase {
  /** Case number within the run. */
  index: number;
  /** File mutated. */
  target: FuzzTarget;
  /** What was done, e.g. `dims of "transformer.wte.weight" [12288,96] -> [-1]`. */
  mutation: string;
  /** The mutated file's bytes. */
  bytes: Uint8Array;
  /** Whether the mutant points outside the model folder (must be refused). */
  escapes: boolean;
}

/** Seed of case `index` of a run seeded `seed`: distinct for distinct pairs, a safe integer. */
function caseSeed(seed: number, index: number): number {
  return (Math.abs(Math.trunc(seed)) % 2 ** 20) * 2 ** 32 + index;
}

/**
 * Builds case `index` of a run: the same `(seed, index)` always gives the same bytes.
 *
 * @param base the base files
 * @param seed run seed
 * @param index case number
 * @param outside absolute path of a file outside the model folder (for escaping external data)
 * @returns the case
 * @example
 * ```ts ignore
 * import { loadFuzzBase, makeCase } from "./_fuzz.ts";
 * const base = await loadFuzzBase();
 * console.log(makeCase(base, 7, 3, "/tmp/o.bin").mutation === makeCase(base, 7, 3, "/tmp/o.bin").mutation);
 * ```
 */
export function makeCase(base: FuzzBase, seed: number, index: number, outside: string): FuzzCase {
  const r = createPrng(caseSeed(seed, index));
  const u = r.next();
  const target: FuzzTarget = u < 0.5 ? "onnx" : u < 0.7 ? "config" : u < 0.95 ? "tokenizer" : "tokenizer_config";
  if (target === "onnx") {
    const kind = pick(r, ONNX_MUTATION_NAMES);
    const m = mutateOnnx(base, kind, r, outside);
    return { index, target, mutation: `${kind}: ${m.label}`, bytes: m.bytes, escapes: m.escapes };
  }
  const text = target === "config" ? base.config : target === "tokenizer" ? base.tokenizer : base.tokenizerConfig;
  const kind = pick(r, JSON_MUTATION_NAMES);
  const m = JSON_MUTATIONS[kind](text, target, r);
  return { index, target, mutation: `${kind}: ${m.label}`, bytes: m.bytes, escapes: false };
}

// ---------------------------------------------------------------------------------------------
// Running one case (in the child process)
// ---------------------------------------------------------------------------------------------

/**
 * How one case ended. `pass` is false for a crash, a hang, an untyped error, an accepted escape or
 * an allocation larger than the file.
 *
 * @example
 * ```ts ignore
 * import type { CaseResult } from "./_fuzz.ts";
 * const r: CaseResult = { index: 0, target: "onnx", mutation: "truncate", outcome: "OnnxFormatError", stages: [], message: "", ms: 3, pass: true };
 * console.log(r.pass);
 * ```
 */
export interface CaseResult {
  /** Case number. */
  index: number;
  /** File mutated. */
  target: FuzzTarget;
  /** What was done. */
  mutation: string;
  /** `ok`, the error class the kit threw, or `FAIL …`. */
  outcome: string;
  /** Each reader's outcome, e.g. `["JSON.parse: ok", "archFromConfig: RangeError", "loadModel: ModelLoadError"]`. */
  stages: string[];
  /** The deciding error's message (first 300 characters). */
  message: string;
  /** Milliseconds the case took. */
  ms: number;
  /** Whether the outcome is acceptable. */
  pass: boolean;
}

/** Folders the child works in; made by the parent, which alone may read `outside`. */
interface Scratch {
  /** Whether `model/link.bin` (a symlink to `outside`) could be made. */
  symlinks: boolean;
  root: string;
  model: string;
  cases: string;
  outside: string;
}

const SAMPLE = "The king and the queen sat at the table. 参数 🚀 \u0007 \ud800 ok";

type Stage = { name: string; outcome: string; message: string; pass: boolean };

/** What `tokenize` itself throws for input it refuses. */
const TOKENIZE_ERRORS = ["TypeError", "RangeError"];

function errorName(e: unknown): string {
  if (e instanceof OnnxFormatError) return "OnnxFormatError";
  if (e instanceof ModelLoadError) return "ModelLoadError";
  if (e instanceof SyntaxError) return "SyntaxError";
  if (e instanceof TypeError) return "TypeError";
  if (e instanceof RangeError) return "RangeError";
  if (e instanceof Error) return e.constructor === Error ? "Error" : `${e.constructor.name}`;
  return `non-Error ${typeof e}`;
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e)).slice(0, 300);

/**
 * Runs `fn` as one stage. An error passes if its class is in `allowed` (and `check` accepts it);
 * with `library`, any other Error passes too but is counted as `library <class>`: transformers.js's
 * own errors about a tokenizer it was handed, which the kit does not type.
 */
async function stage<T>(
  stages: Stage[],
  name: string,
  allowed: readonly string[],
  fn: () => T | Promise<T>,
  options: { check?: (e: Error) => boolean; library?: boolean } = {},
): Promise<{ ok: true; value: T } | { ok: false }> {
  try {
    const value = await fn();
    stages.push({ name, outcome: "ok", message: "", pass: true });
    return { ok: true, value };
  } catch (e) {
    const cls = errorName(e);
    const typed = allowed.includes(cls) && (!options.check || options.check(e as Error));
    const library = !typed && options.library === true && e instanceof Error;
    const outcome = typed ? cls : library ? `library ${cls}` : `FAIL untyped ${cls}`;
    stages.push({ name, outcome, message: messageOf(e), pass: typed || library });
    return { ok: false };
  }
}

async function runOnnxCase(c: FuzzCase, base: FuzzBase, s: Scratch, stages: Stage[]): Promise<void> {
  const dataBytes = (await Deno.stat(join(s.model, "model.onnx_data"))).size;
  // float16 widens to float32: twice the stored bytes is the most the values of all tensors may take.
  const budget = 2 * (c.bytes.length + dataBytes) + (1 << 20);
  /** Reads every tensor's values; each may fail only with OnnxFormatError; the total is held to the budget. */
  const readValues = (name: string, model: OnnxModel): boolean => {
    let bytes = 0;
    let all = true;
    let bad: Stage | undefined;
    for (const info of model.initializers) {
      try {
        bytes += tensorValues(model, info.name).data.byteLength;
      } catch (e) {
        all = false;
        if (!(e instanceof OnnxFormatError)) {
          bad ??= {
            name,
            outcome: `FAIL untyped ${errorName(e)}`,
            message: `"${info.name}": ${messageOf(e)}`,
            pass: false,
          };
        }
      }
    }
    stages.push(bad ?? { name, outcome: all ? "ok" : "OnnxFormatError", message: "", pass: true });
    if (bytes > budget) {
      stages.push({ name, outcome: "FAIL overalloc", message: `${bytes} bytes > ${budget}`, pass: false });
    }
    return all && !bad;
  };
  // What a caller that skips validation gets: every tensor read must still be refused or safe.
  const raw = await stage(
    stages,
    "readOnnxBytes(validate: false)",
    ["OnnxFormatError"],
    () => readOnnxBytes(c.bytes, { baseDir: s.model, validate: false }, "fuzz.onnx"),
  );
  const rawAll = raw.ok ? readValues("tensorValues(unvalidated)", raw.value) : false;
  const read = await stage(
    stages,
    "readOnnxBytes",
    ["OnnxFormatError"],
    () => readOnnxBytes(c.bytes, { baseDir: s.model }, "fuzz.onnx"),
  );
  if (read.ok) {
    readValues("tensorValues", read.value);
    await stage(
      stages,
      "validateOnnx(decoder)",
      ["OnnxFormatError"],
      () => validateOnnx(read.value, { expect: "decoder", layers: base.layers }),
    );
  }
  if (c.escapes && (read.ok || rawAll)) {
    stages.push({
      name: "escape",
      outcome: "FAIL escape",
      message: `external data outside the folder was ${read.ok ? "accepted by validation" : "read"}`,
      pass: false,
    });
  }
}

async function writeCaseFolder(c: FuzzCase, base: FuzzBase, s: Scratch): Promise<string> {
  const dir = join(s.cases, `case-${c.index}`);
  await Deno.mkdir(dir, { recursive: true });
  const files: Record<string, Uint8Array | string> = {
    "config.json": c.target === "config" ? c.bytes : base.config,
    "tokenizer.json": c.target === "tokenizer" ? c.bytes : base.tokenizer,
    "tokenizer_config.json": c.target === "tokenizer_config" ? c.bytes : base.tokenizerConfig,
  };
  if (base.generationConfig !== undefined) files["generation_config.json"] = base.generationConfig;
  for (const [name, data] of Object.entries(files)) {
    await writeFileAtomic(join(dir, name), data);
  }
  return dir;
}

async function runJsonCase(c: FuzzCase, base: FuzzBase, s: Scratch, stages: Stage[]): Promise<void> {
  const text = dec.decode(c.bytes);
  const parsed = await stage(stages, "JSON.parse", ["SyntaxError", "RangeError"], () => JSON.parse(text) as unknown);
  const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
  if (c.target === "config" && parsed.ok && isObject(parsed.value)) {
    const cfg = parsed.value;
    await stage(
      stages,
      "archFromConfig",
      ["TypeError", "RangeError"],
      () => archFromConfig(cfg),
      { check: (e) => e.message.includes("config.json") },
    );
  }
  if ((c.target === "tokenizer" || c.target === "tokenizer_config") && parsed.ok) {
    const { PreTrainedTokenizer } = await import("@huggingface/transformers");
    const json = c.target === "tokenizer" ? parsed.value : JSON.parse(base.tokenizer);
    const cfg = c.target === "tokenizer_config" ? parsed.value : JSON.parse(base.tokenizerConfig);
    // As loadModel does: the kit's checks first, then transformers.js builds the tokenizer.
    const checked = await stage(stages, "checkTokenizerJson", ["ModelLoadError"], () => checkTokenizerJson(json));
    if (checked.ok && isObject(cfg)) {
      const made = await stage(stages, "new PreTrainedTokenizer", [], () => new PreTrainedTokenizer(json, cfg), {
        library: true,
      });
      if (made.ok) {
        await stage(stages, "tokenize(direct)", TOKENIZE_ERRORS, () => tokenize(made.value, SAMPLE), {
          library: true,
        });
      }
    }
  }
  const dir = await writeCaseFolder(c, base, s);
  try {
    const loaded = await stage(
      stages,
      "loadModel",
      ["ModelLoadError"],
      () => loadModel(dir, { tokenizerOnly: true, offline: true }),
    );
    if (loaded.ok) {
      // A config mutant leaves the tokenizer intact: tokenize must just work. A tokenizer mutant that
      // transformers.js accepted may still fail inside its encoder (its error, counted as library).
      await stage(
        stages,
        "tokenize(model)",
        c.target === "config" ? [] : TOKENIZE_ERRORS,
        () => tokenize(loaded.value, SAMPLE),
        { library: c.target !== "config" },
      );
      await loaded.value.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs one case through the kit's readers (in the child process) and classifies the outcome.
 *
 * @param c the case
 * @param base the base files
 * @param s the scratch folders
 * @returns the outcome; never throws for anything the mutant does
 * @example
 * ```ts ignore
 * const result = await runCase(makeCase(base, 1, 0, scratch.outside), base, scratch);
 * ```
 */
async function runCase(c: FuzzCase, base: FuzzBase, s: Scratch, limitMs: number): Promise<CaseResult> {
  const t0 = performance.now();
  const stages: Stage[] = [];
  try {
    if (c.target === "onnx") await runOnnxCase(c, base, s, stages);
    else await runJsonCase(c, base, s, stages);
  } catch (e) {
    stages.push({ name: "harness", outcome: `FAIL untyped ${errorName(e)}`, message: messageOf(e), pass: false });
  }
  const ms = Math.round(performance.now() - t0);
  if (ms > limitMs) {
    stages.push({ name: "time", outcome: `FAIL slow (> ${limitMs} ms)`, message: `${ms} ms`, pass: false });
  }
  const failed = stages.find((x) => !x.pass);
  // The outcome is the last kit-level reader's verdict (loadModel for JSON files), or the first failure.
  const deciding = failed ??
    [...stages].reverse().find((x) => !x.outcome.startsWith("library") && x.outcome !== "ok") ??
    stages.find((x) => x.outcome !== "ok") ?? { outcome: "ok", message: "" };
  return {
    index: c.index,
    target: c.target,
    mutation: c.mutation.slice(0, 200),
    outcome: deciding.outcome,
    stages: stages.map((x) => `${x.name}: ${x.outcome}`),
    message: deciding.message,
    ms,
    pass: !failed,
  };
}

// ---------------------------------------------------------------------------------------------
// The child process
// ---------------------------------------------------------------------------------------------

const PREFIX = "FUZZ:";

function writeLine(line: string): void {
  const bytes = enc.encode(line + "\n");
  for (let o = 0; o < bytes.length;) o += Deno.stdout.writeSync(bytes.subarray(o));
}

async function serve(seed: number, root: string, limitMs: number): Promise<void> {
  const s = scratchPaths(root);
  const base = await loadFuzzBase();
  // Load transformers.js before the first timed case.
  await import("@huggingface/transformers");
  writeLine(`${PREFIX}${JSON.stringify({ ready: true })}`);
  let buffered = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.trim()) continue;
      const { index } = JSON.parse(line) as { index: number };
      const c = makeCase(base, seed, index, s.outside);
      writeLine(`${PREFIX}${JSON.stringify(await runCase(c, base, s, limitMs))}`);
    }
  }
}

function scratchPaths(root: string): Scratch {
  return {
    symlinks: false,
    root,
    model: join(root, "model"),
    cases: join(root, "cases"),
    outside: join(root, "outside.bin"),
  };
}

/** Lays out the scratch folder: a model folder with a data file, a link out, a sub-folder and a folder named like a file. */
async function makeScratch(): Promise<Scratch> {
  const root = await Deno.makeTempDir({ prefix: "paramscope-fuzz-" });
  const s = scratchPaths(root);
  await Deno.mkdir(s.model);
  await Deno.mkdir(join(s.model, "sub"));
  await Deno.mkdir(join(s.model, "dir.bin"));
  await Deno.mkdir(s.cases);
  await writeFileAtomic(s.outside, new Uint8Array(1 << 16).fill(0x5a));
  await writeFileAtomic(join(s.model, "model.onnx_data"), new Uint8Array(1 << 16).fill(0x3c));
  try {
    await Deno.symlink(s.outside, join(s.model, "link.bin"));
    s.symlinks = true;
  } catch (e) {
    // Deno grants symlink creation only with unscoped --allow-read/--allow-write; without it the
    // link cases still run and meet a missing file.
    if (!(e instanceof Deno.errors.NotCapable)) throw e;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------------------------

/**
 * Options of {@linkcode runFuzz}.
 *
 * @example
 * ```ts ignore
 * import type { FuzzOptions } from "./_fuzz.ts";
 * const o: FuzzOptions = { cases: 300, seed: 1, timeoutMs: 2000 };
 * ```
 */
export interface FuzzOptions {
  /** Number of cases (default 300). */
  cases?: number;
  /** Run seed (default 1). */
  seed?: number;
  /**
   * Time bound of one case in milliseconds (default 2000): a case whose readers take longer fails as
   * slow; one that does not answer within twice that plus 3 s is killed and fails as a hang. Either
   * verdict needs two runs of the case in a row, so that a busy machine does not fail a case.
   */
  timeoutMs?: number;
  /** Time allowed for the child to start and load transformers.js (default 120000 ms). */
  startTimeoutMs?: number;
  /** Run only these case numbers (to reproduce a failure); default `0 .. cases - 1`. */
  only?: readonly number[];
  /** Called after each case. */
  onResult?: (r: CaseResult) => void;
}

/**
 * What {@linkcode runFuzz} returns.
 *
 * @example
 * ```ts ignore
 * const report = await runFuzz({ cases: 100 });
 * console.log(report.byOutcome, report.failures.length);
 * ```
 */
export interface FuzzReport {
  /** Cases run. */
  cases: number;
  /** Run seed. */
  seed: number;
  /** Count of each outcome over all cases. */
  byOutcome: Record<string, number>;
  /** Count of each outcome per target file. */
  byTarget: Record<string, Record<string, number>>;
  /** Count of each mutation kind. */
  byMutation: Record<string, number>;
  /** Cases that failed (crash, hang, untyped error, escape, over-allocation). */
  failures: CaseResult[];
  /** Slowest case, milliseconds (as the child measured it). */
  slowestMs: number;
  /** The five slowest cases. */
  slowest: { index: number; mutation: string; ms: number }[];
  /** Wall time of the run, milliseconds. */
  ms: number;
  /** Times the child had to be restarted after a hang or crash. */
  restarts: number;
  /** Cases run a second time because the first run was over the time bound (they fail only if slow twice). */
  retries: number;
  /** Whether the symlink-out-of-the-folder cases ran with a real symlink (needs unscoped --allow-write). */
  symlinks: boolean;
}

/** Lines the child prints with the protocol prefix, awaited one at a time with a timeout. */
class LineChannel {
  #lines: string[] = [];
  #waiter: ((line: string | null) => void) | null = null;
  #closed = false;
  push(line: string): void {
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w(line);
    } else this.#lines.push(line);
  }
  close(): void {
    this.#closed = true;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w(null);
    }
  }
  next(ms: number): Promise<string | null | "timeout"> {
    if (this.#lines.length) return Promise.resolve(this.#lines.shift()!);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        resolve("timeout");
      }, ms);
      this.#waiter = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
    });
  }
}

interface ChildLink {
  child: Deno.ChildProcess;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  lines: LineChannel;
  stderr: () => string;
  done: Promise<void>;
}

/**
 * What the child may touch besides its folders, found by running with each permission named one by
 * one: transformers.js's import loads `sharp` and `onnxruntime-node` (FFI), `sharp` reads three
 * variables, `detect-libc` reads `/usr/bin/ldd` (without it, it asks for `cpus`,
 * `networkInterfaces` and `hostname` instead), and `loadModel` reads `PARAMSCOPE_CACHE`/`HOME` for
 * its cache folder.
 */
const CHILD_ENV = [
  "npm_package_config_libvips",
  "MALLOC_ARENA_MAX",
  "ORT_DISABLE_TELEMETRY",
  "PARAMSCOPE_CACHE",
  "HOME",
];

/**
 * The Deno binary to start children with: this one, or `deno` from PATH when the run was granted
 * `--allow-run=deno` (which names the PATH entry, possibly a link to this binary).
 *
 * @returns a command name or path for `Deno.Command`
 * @example
 * ```ts ignore
 * import { denoCommand } from "./_fuzz.ts";
 * await new Deno.Command(denoCommand(), { args: ["--version"] }).output();
 * ```
 */
export function denoCommand(): string {
  const state = Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state;
  return state === "granted" ? Deno.execPath() : "deno";
}

/**
 * Permissions a `loadModel` + ONNX Runtime run needs for a model folder: read the folder and
 * `/usr/bin/ldd` (sharp's libc check), FFI for the native add-ons, and the variables they read.
 *
 * @param dir the model folder
 * @returns `deno run` flags
 * @example
 * ```ts ignore
 * import { loadPermissions } from "./_fuzz.ts";
 * console.log(loadPermissions("/tmp/m"));
 * ```
 */
export function loadPermissions(dir: string): string[] {
  return [`--allow-read=${dir},/usr/bin/ldd`, "--allow-ffi", `--allow-env=${TRANSFORMERS_ENV.join(",")}`];
}

/** Variables read when transformers.js is imported (`sharp`, `onnxruntime-node`). */
const TRANSFORMERS_ENV = ["npm_package_config_libvips", "MALLOC_ARENA_MAX", "ORT_DISABLE_TELEMETRY"];

function spawnChild(seed: number, s: Scratch, limitMs: number): ChildLink {
  const self = fileURLToPath(import.meta.url);
  const config = fileURLToPath(new URL("../deno.json", import.meta.url));
  const cmd = new Deno.Command(denoCommand(), {
    args: [
      "run",
      "--quiet",
      `--config=${config}`,
      `--allow-read=${s.model},${s.cases},${bundledModelPath()},/usr/bin/ldd`,
      `--allow-write=${s.cases}`,
      `--allow-env=${CHILD_ENV.join(",")}`,
      "--allow-ffi",
      // V8 runs out of heap as a clean failure rather than eating the machine.
      "--v8-flags=--max-old-space-size=2048",
      self,
      "--serve",
      `--seed=${seed}`,
      `--scratch=${s.root}`,
      `--limit=${limitMs}`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
  const child = cmd.spawn();
  const lines = new LineChannel();
  let errTail = "";
  const pumpOut = (async () => {
    let buffered = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith(PREFIX)) lines.push(line.slice(PREFIX.length));
      }
    }
    lines.close();
  })();
  const pumpErr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      errTail = (errTail + chunk).slice(-2000);
    }
  })();
  return {
    child,
    writer: child.stdin.getWriter(),
    lines,
    stderr: () => errTail,
    done: Promise.all([pumpOut, pumpErr]).then(() => {}),
  };
}

async function stopChild(link: ChildLink, kill: boolean): Promise<Deno.CommandStatus> {
  if (kill) {
    try {
      link.child.kill("SIGKILL");
    } catch { /* already gone */ }
  } else {
    await link.writer.close().catch(() => {});
  }
  const status = await link.child.status;
  await link.done.catch(() => {});
  return status;
}

/**
 * Runs a seeded fuzzing campaign: case after case in a child process with narrow permissions,
 * each within `timeoutMs`; a case that hangs or crashes the child is recorded and the child
 * replaced.
 *
 * @param options case count, seed, time bounds, progress callback
 * @returns the outcome breakdown and every failing case
 * @example
 * ```ts ignore
 * import { runFuzz } from "./_fuzz.ts";
 * const report = await runFuzz({ cases: 50, seed: 3 });
 * console.log(report.byOutcome);
 * ```
 */
export async function runFuzz(options: FuzzOptions = {}): Promise<FuzzReport> {
  const cases = options.cases ?? 300;
  const seed = options.seed ?? 1;
  const timeoutMs = options.timeoutMs ?? 2000;
  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  if (!Number.isSafeInteger(cases) || cases < 0) throw new RangeError(`cases is ${cases}; pass a whole number >= 0`);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed is ${seed}; pass a safe integer`);
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs is ${timeoutMs}; pass a positive number of milliseconds`);
  const t0 = performance.now();
  const s = await makeScratch();
  const base = await loadFuzzBase();
  const report: FuzzReport = {
    cases: 0,
    seed,
    byOutcome: {},
    byTarget: {},
    byMutation: {},
    failures: [],
    slowestMs: 0,
    slowest: [],
    ms: 0,
    restarts: 0,
    retries: 0,
    symlinks: s.symlinks,
  };
  const record = (r: CaseResult) => {
    report.cases++;
    report.byOutcome[r.outcome] = (report.byOutcome[r.outcome] ?? 0) + 1;
    const t = (report.byTarget[r.target] ??= {});
    t[r.outcome] = (t[r.outcome] ?? 0) + 1;
    const kind = r.mutation.split(":")[0];
    report.byMutation[`${r.target} ${kind}`] = (report.byMutation[`${r.target} ${kind}`] ?? 0) + 1;
    report.slowestMs = Math.max(report.slowestMs, r.ms);
    report.slowest = [...report.slowest, { index: r.index, mutation: `${r.target} ${r.mutation}`, ms: r.ms }]
      .sort((a, b) => b.ms - a.ms).slice(0, 5);
    if (!r.pass) report.failures.push(r);
    options.onResult?.(r);
  };
  const start = async (): Promise<ChildLink> => {
    const link = spawnChild(seed, s, timeoutMs);
    const ready = await link.lines.next(startTimeoutMs);
    if (ready === null || ready === "timeout") {
      await stopChild(link, true);
      throw new Error(`the fuzz child did not start: ${ready ?? "exited"}\n${link.stderr()}`);
    }
    return link;
  };
  let link: ChildLink | undefined;
  try {
    link = await start();
    const indices = options.only ?? Array.from({ length: cases }, (_, i) => i);
    // The child fails a case whose readers run over `timeoutMs`; the parent kills a child that
    // does not answer by `deadline`. Either may be a busy machine rather than the case, so a case
    // is run a second time before it is failed as slow, hung or crashed.
    const deadline = 2 * timeoutMs + 3000;
    for (const index of indices) {
      for (let attempt = 0;; attempt++) {
        await link.writer.write(enc.encode(JSON.stringify({ index }) + "\n")).catch(() => {});
        const line = await link.lines.next(deadline);
        if (typeof line === "string" && line !== "timeout") {
          const result = JSON.parse(line) as CaseResult;
          if (result.outcome.startsWith("FAIL slow") && attempt === 0) {
            report.retries++;
            continue;
          }
          record(result);
          break;
        }
        const status = await stopChild(link, line === "timeout");
        const stderr = link.stderr();
        report.restarts++;
        link = await start();
        if (attempt === 0) {
          report.retries++;
          continue;
        }
        // Describe the case from its seed (no need to run it again).
        const c = makeCase(base, seed, index, s.outside);
        record({
          index,
          target: c.target,
          mutation: c.mutation.slice(0, 200),
          outcome: line === "timeout"
            ? `FAIL hang (> ${deadline} ms)`
            : `FAIL crash (exit ${status.code}${status.signal ? `, signal ${status.signal}` : ""})`,
          stages: [],
          message: line === "timeout" ? "" : stderr.slice(-300),
          ms: line === "timeout" ? deadline : 0,
          pass: false,
        });
        break;
      }
    }
  } finally {
    if (link) await stopChild(link, false);
    await Deno.remove(s.root, { recursive: true }).catch(() => {});
  }
  report.ms = Math.round(performance.now() - t0);
  return report;
}

/**
 * Writes a copy of a model folder whose `onnx/model.onnx` is mutated by `kind` (for end-to-end
 * checks of `loadModel` in a subprocess).
 *
 * @param dest folder to create
 * @param kind a name from {@linkcode ONNX_MUTATION_NAMES}
 * @param seed seed of the mutation
 * @param base the base files (default: the bundled model's)
 * @returns the mutation's label
 * @example
 * ```ts ignore
 * import { writeMutatedModel } from "./_fuzz.ts";
 * console.log(await writeMutatedModel(await Deno.makeTempDir(), "optype", 1));
 * ```
 */
export async function writeMutatedModel(dest: string, kind: string, seed: number, base?: FuzzBase): Promise<string> {
  const b = base ?? await loadFuzzBase();
  const m = mutateOnnx(b, kind, createPrng(seed), join(dest, "..", "outside.bin"));
  await Deno.mkdir(join(dest, "onnx"), { recursive: true });
  await writeFileAtomic(join(dest, "config.json"), b.config);
  await writeFileAtomic(join(dest, "tokenizer.json"), b.tokenizer);
  await writeFileAtomic(join(dest, "tokenizer_config.json"), b.tokenizerConfig);
  if (b.generationConfig !== undefined) {
    await writeFileAtomic(join(dest, "generation_config.json"), b.generationConfig);
  }
  await writeFileAtomic(join(dest, "onnx", "model.onnx"), m.bytes);
  return `${kind}: ${m.label}`;
}

if (import.meta.main && Deno.args.includes("--serve")) {
  const arg = (name: string) => Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  await serve(Number(arg("seed") ?? 1), arg("scratch")!, Number(arg("limit") ?? 2000));
}
