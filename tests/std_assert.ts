/**
 * A stand-in for `jsr:@std/assert` built on `node:assert`, for machines that
 * cannot reach JSR. `tests/import_map.json` maps `@std/assert` here; on a
 * machine with JSR the real package is used through `deno.json`. Names and
 * signatures follow `@std/assert` 1.x so tests run unchanged against either.
 *
 * @module
 */
import nodeAssert from "node:assert";

/** Error thrown by every assertion here, as in `@std/assert`. */
export class AssertionError extends Error {
  /** @param message what failed */
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

function wrap(fn: () => void, msg?: string): void {
  try {
    fn();
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    throw new AssertionError(msg ? `${msg}: ${detail}` : detail);
  }
}

/** Asserts that `expr` is truthy. */
export function assert(expr: unknown, msg = ""): asserts expr {
  if (!expr) throw new AssertionError(msg || "Expected expression to be truthy");
}

/** Asserts that `expr` is falsy. */
export function assertFalse(expr: unknown, msg = ""): void {
  if (expr) throw new AssertionError(msg || "Expected expression to be falsy");
}

/** Always fails. */
export function fail(msg?: string): never {
  throw new AssertionError(msg ?? "Failed assertion");
}

/** Deep structural equality (typed arrays compared element by element). */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  wrap(() => nodeAssert.deepStrictEqual(actual, expected), msg);
}

/** Deep structural inequality. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  wrap(() => nodeAssert.notDeepStrictEqual(actual, expected), msg);
}

/** `Object.is` equality. */
export function assertStrictEquals<T>(actual: unknown, expected: T, msg?: string): asserts actual is T {
  wrap(() => nodeAssert.strictEqual(actual, expected), msg);
}

/** Asserts `actual` is neither null nor undefined. */
export function assertExists<T>(actual: T, msg?: string): asserts actual is NonNullable<T> {
  if (actual === null || actual === undefined) {
    throw new AssertionError(msg ?? `Expected actual: "${actual}" to not be null or undefined`);
  }
}

/** Asserts `|actual - expected| <= tolerance` (default 1e-7, relative to `expected` as in `@std/assert`). */
export function assertAlmostEquals(actual: number, expected: number, tolerance?: number, msg?: string): void {
  if (Object.is(actual, expected)) return;
  const tol = tolerance ?? Math.abs(expected) * 1e-7;
  const delta = Math.abs(expected - actual);
  if (!(delta <= tol)) {
    throw new AssertionError(
      msg ?? `Expected actual: "${actual}" to be close to "${expected}": delta "${delta}" is greater than "${tol}"`,
    );
  }
}

/** Asserts `actual > expected`. */
export function assertGreater<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual > expected)) throw new AssertionError(msg ?? `Expect ${actual} > ${expected}`);
}

/** Asserts `actual >= expected`. */
export function assertGreaterOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual >= expected)) throw new AssertionError(msg ?? `Expect ${actual} >= ${expected}`);
}

/** Asserts `actual < expected`. */
export function assertLess<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual < expected)) throw new AssertionError(msg ?? `Expect ${actual} < ${expected}`);
}

/** Asserts `actual <= expected`. */
export function assertLessOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual <= expected)) throw new AssertionError(msg ?? `Expect ${actual} <= ${expected}`);
}

/** Asserts a string matches a pattern. */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  if (!expected.test(actual)) throw new AssertionError(msg ?? `Expected actual: "${actual}" to match: "${expected}"`);
}

/** Asserts a string contains a substring. */
export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (!actual.includes(expected)) {
    throw new AssertionError(msg ?? `Expected actual: "${actual}" to contain: "${expected}"`);
  }
}

/** Asserts an array contains every listed value (deep equality). */
export function assertArrayIncludes<T>(actual: ArrayLike<T>, expected: ArrayLike<T>, msg?: string): void {
  const arr = Array.from(actual);
  for (const e of Array.from(expected)) {
    if (!arr.some((a) => isDeepEqual(a, e))) {
      throw new AssertionError(msg ?? `Expected actual to include ${JSON.stringify(e)}`);
    }
  }
}

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    nodeAssert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

/** Asserts `actual` is an instance of `expectedType`. */
export function assertInstanceOf<T extends abstract new (...args: never[]) => unknown>(
  actual: unknown,
  expectedType: T,
  msg?: string,
): asserts actual is InstanceType<T> {
  if (!(actual instanceof expectedType)) {
    throw new AssertionError(msg ?? `Expected object to be an instance of "${expectedType.name}"`);
  }
}

type ErrorClass<E extends Error> = abstract new (...args: never[]) => E;

/**
 * Asserts `fn` throws; optionally of a class and with a message substring.
 * Returns the thrown error.
 */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
  msg?: string,
): E {
  let thrown: unknown;
  let did = false;
  try {
    fn();
  } catch (e) {
    thrown = e;
    did = true;
  }
  if (!did) throw new AssertionError(msg ?? "Expected function to throw.");
  checkError(thrown, ErrorClass, msgIncludes, msg);
  return thrown as E;
}

/** Async version of {@linkcode assertThrows}. */
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
  msg?: string,
): Promise<E> {
  let thrown: unknown;
  let did = false;
  try {
    await fn();
  } catch (e) {
    thrown = e;
    did = true;
  }
  if (!did) throw new AssertionError(msg ?? "Expected function to reject.");
  checkError(thrown, ErrorClass, msgIncludes, msg);
  return thrown as E;
}

function checkError<E extends Error>(
  thrown: unknown,
  ErrorClass: ErrorClass<E> | undefined,
  msgIncludes: string | undefined,
  msg: string | undefined,
): void {
  if (ErrorClass && !(thrown instanceof ErrorClass)) {
    const got = thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown);
    throw new AssertionError(msg ?? `Expected error to be instance of "${ErrorClass.name}", but got ${got}`);
  }
  if (msgIncludes !== undefined) {
    const text = thrown instanceof Error ? thrown.message : String(thrown);
    if (!text.includes(msgIncludes)) {
      throw new AssertionError(msg ?? `Expected error message to include "${msgIncludes}", but got "${text}"`);
    }
  }
}
