/**
 * A tiny WebAssembly assembler for the SIMD kernels of `lib/` (no toolchain: the
 * modules are written here as bytes of the binary format). Each instruction
 * helper returns the bytes of one instruction (or of a small construct such as a
 * counted loop); a kernel is a function body made by concatenating them, and
 * {@linkcode wasmModule} wraps bodies into a module that imports its memory as
 * `env.memory` and exports the functions by name.
 *
 * Compile with {@linkcode compileWasm} (synchronous, so callers stay synchronous
 * and it works the same in Web Workers); it returns `null` where the runtime
 * rejects the module (e.g. no SIMD), so callers can fall back to JavaScript.
 *
 * Opcodes follow the WebAssembly core specification 2.0 (SIMD proposal
 * merged); addresses are i32 byte offsets into the imported memory.
 *
 * @module
 */

/** Instruction bytes. */
export type Code = number[];

/**
 * Unsigned LEB128 encoding.
 *
 * @param v a non-negative integer below 2³²
 * @returns its bytes
 * @example
 * ```ts
 * import { uleb } from "./_wasm.ts";
 * console.log(uleb(624485)); // [0xe5, 0x8e, 0x26]
 * ```
 */
export function uleb(v: number): Code {
  const o: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v) b |= 0x80;
    o.push(b);
  } while (v);
  return o;
}

/**
 * Signed LEB128 encoding (for i32 constants).
 *
 * @param v an integer in the i32 range
 * @returns its bytes
 * @example
 * ```ts
 * import { sleb } from "./_wasm.ts";
 * console.log(sleb(-123456)); // [0xc0, 0xbb, 0x78]
 * ```
 */
export function sleb(v: number): Code {
  const o: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return [...o, b];
    o.push(b | 0x80);
  }
}

/**
 * `local.get l`.
 *
 * @param l local index (parameters first)
 * @returns the instruction
 * @example
 * ```ts
 * import { get } from "./_wasm.ts";
 * console.log(get(3)); // [0x20, 3]
 * ```
 */
export const get = (l: number): Code => [0x20, ...uleb(l)];

/**
 * `local.set l`.
 *
 * @param l local index
 * @returns the instruction
 * @example
 * ```ts
 * import { set } from "./_wasm.ts";
 * console.log(set(3)); // [0x21, 3]
 * ```
 */
export const set = (l: number): Code => [0x21, ...uleb(l)];

/**
 * `local.tee l` (set and keep the value on the stack).
 *
 * @param l local index
 * @returns the instruction
 * @example
 * ```ts
 * import { tee } from "./_wasm.ts";
 * console.log(tee(3)); // [0x22, 3]
 * ```
 */
export const tee = (l: number): Code => [0x22, ...uleb(l)];

/**
 * `i32.const v`.
 *
 * @param v an integer in the i32 range
 * @returns the instruction
 * @example
 * ```ts
 * import { i32 } from "./_wasm.ts";
 * console.log(i32(-1)); // [0x41, 0x7f]
 * ```
 */
export const i32 = (v: number): Code => [0x41, ...sleb(v)];

/** Single-byte numeric and control opcodes used by the kernels. */
export const OP = {
  I32_ADD: 0x6a,
  I32_SUB: 0x6b,
  I32_MUL: 0x6c,
  I32_AND: 0x71,
  I32_SHR_U: 0x76,
  I32_EQZ: 0x45,
  I32_LT_U: 0x49,
  F32_ADD: 0x92,
  BR: 0x0c,
  BR_IF: 0x0d,
  BLOCK: 0x02,
  LOOP: 0x03,
  IF: 0x04,
  ELSE: 0x05,
  END: 0x0b,
  /** Block type of a block/loop/if that leaves nothing on the stack. */
  VOID: 0x40,
} as const;

/** Memory argument: alignment exponent then byte offset. */
const memarg = (align: number, offset: number): Code => [align, ...uleb(offset)];

/**
 * `v128.load` with a constant byte offset added to the address on the stack.
 *
 * @param offset byte offset (default 0)
 * @returns the instruction
 * @example
 * ```ts
 * import { v128Load } from "./_wasm.ts";
 * console.log(v128Load(16)); // [0xfd, 0x00, 4, 16]
 * ```
 */
export const v128Load = (offset = 0): Code => [0xfd, 0x00, ...memarg(4, offset)];

/**
 * `v128.store` (stack: address, value) with a constant byte offset.
 *
 * @param offset byte offset (default 0)
 * @returns the instruction
 * @example
 * ```ts
 * import { v128Store } from "./_wasm.ts";
 * console.log(v128Store(0)); // [0xfd, 0x0b, 4, 0]
 * ```
 */
export const v128Store = (offset = 0): Code => [0xfd, 0x0b, ...memarg(4, offset)];

/**
 * `v128.load32_splat`: one 32-bit value copied to all four lanes.
 *
 * @param offset byte offset (default 0)
 * @returns the instruction
 * @example
 * ```ts
 * import { v128Load32Splat } from "./_wasm.ts";
 * console.log(v128Load32Splat(4)); // [0xfd, 0x09, 2, 4]
 * ```
 */
export const v128Load32Splat = (offset = 0): Code => [0xfd, 0x09, ...memarg(2, offset)];

/**
 * `f32.load` with a constant byte offset.
 *
 * @param offset byte offset (default 0)
 * @returns the instruction
 * @example
 * ```ts
 * import { f32Load } from "./_wasm.ts";
 * console.log(f32Load(8)); // [0x2a, 2, 8]
 * ```
 */
export const f32Load = (offset = 0): Code => [0x2a, ...memarg(2, offset)];

/**
 * `f32.store` (stack: address, value) with a constant byte offset.
 *
 * @param offset byte offset (default 0)
 * @returns the instruction
 * @example
 * ```ts
 * import { f32Store } from "./_wasm.ts";
 * console.log(f32Store(4)); // [0x38, 2, 4]
 * ```
 */
export const f32Store = (offset = 0): Code => [0x38, ...memarg(2, offset)];

/**
 * `i32.store` (stack: address, value) with a constant byte offset.
 *
 * @param offset byte offset (default 0)
 * @returns the instruction
 * @example
 * ```ts
 * import { i32Store } from "./_wasm.ts";
 * console.log(i32Store(12)); // [0x36, 2, 12]
 * ```
 */
export const i32Store = (offset = 0): Code => [0x36, ...memarg(2, offset)];

/** Prefixed SIMD opcodes used by the kernels (each array is one complete instruction). */
export const SIMD = {
  V128_ZERO: [0xfd, 0x0c, ...new Array<number>(16).fill(0)],
  /** `i8x16.shuffle` needs its 16 lane indices (0–15 first operand, 16–31 second) appended. */
  I8X16_SHUFFLE: [0xfd, 0x0d],
  F32X4_ADD: [0xfd, 0xe4, 0x01],
  F32X4_MUL: [0xfd, 0xe6, 0x01],
  I32X4_ADD: [0xfd, 0xae, 0x01],
  I32X4_DOT_I16X8_S: [0xfd, 0xba, 0x01],
  I16X8_EXTEND_LOW_I8X16_S: [0xfd, 0x87, 0x01],
  I16X8_EXTEND_HIGH_I8X16_S: [0xfd, 0x88, 0x01],
  /** `f32x4.extract_lane` needs its lane index appended. */
  F32X4_EXTRACT_LANE: [0xfd, 0x1f],
  /** `i32x4.extract_lane` needs its lane index appended. */
  I32X4_EXTRACT_LANE: [0xfd, 0x1b],
  /**
   * `f32x4.relaxed_madd` (relaxed SIMD; stack: a, b, c → a·b + c), fused or not as the
   * platform decides (V8 on x86-64 with FMA3 fuses it, in every tier).
   */
  F32X4_RELAXED_MADD: [0xfd, 0x85, 0x02],
} as const;

/**
 * `for (v = from; v < to; v += step) body` (unsigned compare) as a block around a loop.
 * `body` must leave the stack empty; inside it, `br 1` leaves the loop.
 *
 * @param v loop variable (an i32 local)
 * @param from code pushing the start value
 * @param to code pushing the (exclusive) bound, evaluated each iteration
 * @param step increment: a constant, or code pushing it (evaluated each iteration)
 * @param body loop body
 * @returns the loop's code
 * @example
 * ```ts
 * import { forLoop, get, i32 } from "./_wasm.ts";
 * // for (l2 = 0; l2 < l0; l2 += 4) {}
 * console.log(forLoop(2, i32(0), get(0), 4, []).length); // 27
 * ```
 */
export function forLoop(v: number, from: Code, to: Code, step: number | Code, body: Code): Code {
  // deno-fmt-ignore
  return [
    ...from, ...set(v), OP.BLOCK, OP.VOID, OP.LOOP, OP.VOID,
    ...get(v), ...to, OP.I32_LT_U, OP.I32_EQZ, OP.BR_IF, 1,
    ...body,
    ...get(v), ...(typeof step === "number" ? i32(step) : step), OP.I32_ADD, ...set(v), OP.BR, 0, OP.END, OP.END,
  ];
}

/**
 * `if (cond) then else otherwise` with no result value.
 *
 * @param cond code pushing an i32 condition
 * @param then code run when it is non-zero
 * @param otherwise code run when it is zero (omit for none)
 * @returns the construct's code
 * @example
 * ```ts
 * import { get, ifElse } from "./_wasm.ts";
 * console.log(ifElse(get(0), [], [])); // [0x20, 0, 0x04, 0x40, 0x0b]
 * ```
 */
export function ifElse(cond: Code, then: Code, otherwise: Code = []): Code {
  return [...cond, OP.IF, OP.VOID, ...then, ...(otherwise.length ? [OP.ELSE, ...otherwise] : []), OP.END];
}

/**
 * Sum of the four lanes of v128 local `a`, `(lane0 + lane1) + (lane2 + lane3)`, as f32 or i32.
 *
 * @param a the local holding the vector
 * @param float true for `f32x4` lanes, false for `i32x4`
 * @returns code pushing the sum
 * @example
 * ```ts
 * import { hsum } from "./_wasm.ts";
 * console.log(hsum(5, true).length); // 23
 * ```
 */
export function hsum(a: number, float: boolean): Code {
  const lane = (l: number) => [...get(a), ...(float ? SIMD.F32X4_EXTRACT_LANE : SIMD.I32X4_EXTRACT_LANE), l];
  const add = float ? OP.F32_ADD : OP.I32_ADD;
  return [...lane(0), ...lane(1), add, ...lane(2), ...lane(3), add, add];
}

/** One exported function of a module built by {@linkcode wasmModule}. */
export interface WasmFunction {
  /** Export name. */
  name: string;
  /** Number of i32 parameters (locals `0 .. params-1`); the function returns nothing. */
  params: number;
  /** Number of further i32 locals (indices right after the parameters). */
  i32Locals: number;
  /** Number of v128 locals (indices after the i32 locals). */
  v128Locals: number;
  /** Function body, without the final `end`. */
  body: Code;
}

/**
 * A module importing its memory as `env.memory` (at least one 64 KiB page) and
 * exporting each function by name. Functions take only i32 parameters and return nothing.
 *
 * @param functions the functions, in export order
 * @returns the module's bytes
 * @example
 * ```ts
 * import { get, i32, OP, wasmModule } from "./_wasm.ts";
 * // store(p): memory[p] = 7 (as i32)
 * const bytes = wasmModule([{ name: "store", params: 1, i32Locals: 0, v128Locals: 0, body: [...get(0), ...i32(7), 0x36, 2, 0] }]);
 * console.log(WebAssembly.validate(bytes)); // true
 * ```
 */
export function wasmModule(functions: WasmFunction[]): Uint8Array<ArrayBuffer> {
  const vec = (items: Code[]): Code => [...uleb(items.length), ...items.flat()];
  const name = (s: string): Code => [...uleb(s.length), ...new TextEncoder().encode(s)];
  const section = (id: number, content: Code): Code => [id, ...uleb(content.length), ...content];
  const types = functions.map((f) => [0x60, ...vec(new Array(f.params).fill([0x7f])), 0x00]);
  const codes = functions.map((f) => {
    const code = [...vec([[...uleb(f.i32Locals), 0x7f], [...uleb(f.v128Locals), 0x7b]]), ...f.body, OP.END];
    return [...uleb(code.length), ...code];
  });
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // magic, version 1
    ...section(1, vec(types)), // one type per function: (params × i32) → ()
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, 0x01]])), // import memory, min 1 page
    ...section(3, vec(functions.map((_, i) => uleb(i)))), // function i has type i
    ...section(7, vec(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))), // exports
    ...section(10, vec(codes)),
  ]);
}

/**
 * Builds and compiles a module synchronously, or returns `null` when the runtime
 * rejects it (no WebAssembly, no SIMD, or an invalid module), so the caller can
 * fall back to JavaScript. Synchronous compilation is allowed for modules of any
 * size in Deno and in Web Workers; browsers' main threads cap it at 4 KB
 * (these kernels are a few hundred bytes).
 *
 * @param build returns the module's bytes (called once)
 * @returns the compiled module, or `null`
 * @example
 * ```ts
 * import { compileWasm, wasmModule } from "./_wasm.ts";
 * const module = compileWasm(() => wasmModule([{ name: "nop", params: 0, i32Locals: 0, v128Locals: 0, body: [] }]));
 * console.log(module !== null); // true
 * ```
 */
export function compileWasm(build: () => Uint8Array<ArrayBuffer>): WebAssembly.Module | null {
  try {
    const bytes = build();
    return WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  } catch {
    return null;
  }
}
