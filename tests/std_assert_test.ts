import { assertAlmostEquals, assertEquals, AssertionError, assertRejects, assertThrows } from "@std/assert";

Deno.test("assertEquals() compares typed arrays element by element", () => {
  assertEquals(new Float32Array([1, 2]), new Float32Array([1, 2]));
  assertThrows(() => assertEquals(new Float32Array([1, 2]), new Float32Array([1, 3])), AssertionError);
});

Deno.test("assertAlmostEquals() fails outside the tolerance", () => {
  assertAlmostEquals(1.0, 1.05, 0.1);
  assertThrows(() => assertAlmostEquals(1.0, 1.2, 0.1), AssertionError, "greater than");
});

Deno.test("assertThrows() checks class and message", () => {
  assertThrows(
    () => {
      throw new RangeError("bad temperature -1");
    },
    RangeError,
    "temperature",
  );
  assertThrows(() => assertThrows(() => {}), AssertionError, "Expected function to throw");
});

Deno.test("assertRejects() checks async errors", async () => {
  await assertRejects(() => Promise.reject(new TypeError("nope")), TypeError, "nope");
});
