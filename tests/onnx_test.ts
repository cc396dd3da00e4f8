import { assert, assertEquals, assertThrows } from "@std/assert";
import { join } from "node:path";
import {
  DataType,
  encodeOnnx,
  floatToHalf,
  halfToFloat,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  OnnxFormatError,
  readOnnx,
  readOnnxBytes,
  tensorBytes,
  tensorValues,
  writeOnnx,
} from "../lib/onnx.ts";
import { tinyModelDir } from "./_fixtures.ts";

function tinyGraph(values: Float32Array) {
  return makeModel({
    name: "t",
    nodes: [makeNode("Add", ["x", "w"], ["y"], {}, "/add")],
    inputs: [makeValueInfo("x", DataType.FLOAT, ["n", values.length])],
    outputs: [makeValueInfo("y", DataType.FLOAT, ["n", values.length])],
    initializers: [makeTensor("w", [values.length], values)],
  });
}

Deno.test("readOnnx() reads back initializers written by writeOnnx() bit-exactly", async () => {
  const { dir, params, names } = await tinyModelDir();
  const m = await readOnnx(join(dir, "onnx", "model.onnx"));
  assertEquals(m.opset, 17);
  let compared = 0;
  for (const [stored, readable] of Object.entries(names)) {
    const v = tensorValues(m, stored);
    const want = params.get(readable)!;
    assertEquals(v.dims, [...want.dims]);
    // Compare bit patterns, not float values, so -0 vs 0 or NaN payloads would fail.
    assertEquals(
      new Uint32Array(new Float32Array(v.data as Float32Array).buffer),
      new Uint32Array(want.data.slice().buffer),
    );
    compared++;
  }
  assertEquals(compared, params.size);
  assertEquals(m.inputs.map((i) => i.name).slice(0, 3), ["input_ids", "attention_mask", "position_ids"]);
  assert(m.outputs.some((o) => o.name === "present.1.value"));
});

Deno.test("readOnnx() keeps initializer bytes as views into the file (no second copy)", async () => {
  const { dir } = await tinyModelDir();
  const m = await readOnnx(join(dir, "onnx", "model.onnx"));
  const big = m.initializers.reduce((a, b) => (a.elements > b.elements ? a : b));
  const raw = tensorBytes(m, big.name);
  assertEquals(raw.buffer.byteLength, m.fileBytes);
});

Deno.test("writeOnnx() moves large tensors to external data and reads them back", async () => {
  const { dir, params, names } = await tinyModelDir(undefined, { externalDataThreshold: 1024 });
  const m = await readOnnx(join(dir, "onnx", "model.onnx"));
  const external = m.initializers.filter((i) => i.external);
  assert(external.length > 0, "some tensors should be external");
  for (const info of external) {
    const v = tensorValues(m, info.name);
    assertEquals(Array.from(v.data as Float32Array), Array.from(params.get(names[info.name])!.data));
  }
  assert((await Deno.stat(join(dir, "onnx", "model.onnx_data"))).size > 0);
});

Deno.test("readOnnx() refuses external data that escapes the model folder", async () => {
  const dir = await Deno.makeTempDir();
  const proto = tinyGraph(new Float32Array([1, 2, 3]));
  const t = proto.graph!.initializer![0];
  proto.graph!.initializer![0] = {
    ...t,
    rawData: new Uint8Array(),
    dataLocation: 1,
    externalData: [{ key: "location", value: "../secret.bin" }, { key: "offset", value: "0" }],
  };
  await writeOnnx(proto, join(dir, "m.onnx"));
  const e = await readOnnx(join(dir, "m.onnx")).catch((e) => e);
  assert(e instanceof OnnxFormatError);
  assert(e.message.includes("outside the model folder"), e.message);
  proto.graph!.initializer![0].externalData![0].value = "/etc/passwd";
  await writeOnnx(proto, join(dir, "m2.onnx"));
  const e2 = await readOnnx(join(dir, "m2.onnx")).catch((e) => e);
  assert(e2 instanceof OnnxFormatError && e2.message.includes("absolute"), String(e2));
});

Deno.test("readOnnx() refuses an external-data symlink that points out of the folder", async () => {
  const outside = await Deno.makeTempFile();
  await Deno.writeFile(outside, new Uint8Array(12));
  const dir = await Deno.makeTempDir();
  await Deno.symlink(outside, join(dir, "data.bin"));
  const proto = tinyGraph(new Float32Array([1, 2, 3]));
  const t = proto.graph!.initializer![0];
  proto.graph!.initializer![0] = {
    ...t,
    rawData: new Uint8Array(),
    dataLocation: 1,
    externalData: [{ key: "location", value: "data.bin" }, { key: "offset", value: "0" }],
  };
  await writeOnnx(proto, join(dir, "m.onnx"));
  const e = await readOnnx(join(dir, "m.onnx")).catch((e) => e);
  assert(e instanceof OnnxFormatError && e.message.includes("link out"), String(e));
});

Deno.test("readOnnxBytes() names the tensor whose raw data is shorter than its shape", () => {
  const proto = tinyGraph(new Float32Array([1, 2, 3]));
  proto.graph!.initializer![0].dims = [4];
  const bytes = encodeOnnx(proto);
  assertThrows(
    () => readOnnxBytes(bytes),
    OnnxFormatError,
    `tensor "w" [4] of type float32 needs 16 bytes but holds 12`,
  );
});

Deno.test("readOnnxBytes() rejects an unknown data type, naming the tensor", () => {
  const proto = tinyGraph(new Float32Array([1, 2, 3]));
  proto.graph!.initializer![0].dataType = 99;
  assertThrows(() => readOnnxBytes(encodeOnnx(proto)), OnnxFormatError, `tensor "w" has unknown data type 99`);
});

Deno.test("readOnnx() gives a clear error for a truncated file", async () => {
  const { dir } = await tinyModelDir();
  const path = join(dir, "onnx", "model.onnx");
  const bytes = await Deno.readFile(path);
  await Deno.writeFile(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const e = await readOnnx(path).catch((e) => e);
  assert(e instanceof OnnxFormatError, String(e));
  assert(/truncated|corrupt/.test(e.message), e.message);
});

Deno.test("readOnnx() names a missing file", async () => {
  const e = await readOnnx("/nonexistent/model.onnx").catch((e) => e);
  assert(e instanceof OnnxFormatError && e.message.includes("/nonexistent/model.onnx"), String(e));
});

Deno.test("halfToFloat() and floatToHalf() round-trip every finite half", () => {
  for (let h = 0; h < 0x10000; h++) {
    const e = (h >> 10) & 0x1f;
    if (e === 31) continue;
    const f = halfToFloat(h);
    const back = floatToHalf(f);
    // +0 and -0 keep their sign bit; every other finite half maps back to itself.
    assertEquals(back, h, `half 0x${h.toString(16)} → ${f} → 0x${back.toString(16)}`);
  }
});

Deno.test("floatToHalf() rounds to nearest even like numpy", () => {
  // 1 + 2^-11 is exactly halfway between 1 and the next half (1 + 2^-10): ties to even → 1.
  assertEquals(floatToHalf(1 + 2 ** -11), 0x3c00);
  // 1 + 3·2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even) → 1+2^-9.
  assertEquals(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
  assertEquals(floatToHalf(65520), 0x7c00); // overflows to +inf
  assertEquals(floatToHalf(-2), 0xc000);
});

Deno.test("readOnnx() reads a 500 MB model from one copy of the file", async () => {
  const n = 131_072_000; // 500 MiB of float32
  const data = new Float32Array(n);
  data[0] = 1.5;
  data[n - 1] = -2.25;
  const dir = await Deno.makeTempDir({ prefix: "paramscope-big-" });
  const path = join(dir, "big.onnx");
  try {
    await writeOnnx(tinyGraph(data), path);
    const m = await readOnnx(path);
    assertEquals(m.initializers[0].elements, n);
    const v = tensorValues(m, "w").data as Float32Array;
    assertEquals([v[0], v[n - 1]], [1.5, -2.25]);
    // The raw bytes are a view into the file's one buffer; decoding copies at most this tensor
    // (when protobuf left it misaligned for a Float32Array), never the whole file again.
    assertEquals(tensorBytes(m, "w").buffer.byteLength, m.fileBytes);
    assert(v.buffer.byteLength === m.fileBytes || v.buffer.byteLength === n * 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
