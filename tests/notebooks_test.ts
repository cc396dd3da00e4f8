/**
 * Executes every notebook under the Deno Jupyter kernel. Without Jupyter the
 * tests are reported as ignored, with the reason in their names, unless
 * PARAMSCOPE_REQUIRE_JUPYTER=1 (as in CI), where a missing Jupyter fails.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { findJupyterPython, runNotebook } from "../scripts/_jupyter.ts";

/** The parts of an .ipynb file the tests read. */
interface Notebook {
  cells: { cell_type: string; outputs?: { output_type: string }[] }[];
}

const dir = fileURLToPath(new URL("../notebooks/", import.meta.url));
const notebooks = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".ipynb")).map((e) => e.name).sort();
const python = await findJupyterPython();
const required = Deno.env.get("PARAMSCOPE_REQUIRE_JUPYTER") === "1";
const reason = python ? "" : " (ignored: Jupyter not installed; apt-get install python3-nbconvert jupyter-client)";

if (!python && required) {
  Deno.test("Jupyter is installed (PARAMSCOPE_REQUIRE_JUPYTER=1)", () => {
    throw new Error("PARAMSCOPE_REQUIRE_JUPYTER=1 but /usr/bin/python3 lacks nbconvert/nbclient/jupyter_client");
  });
}

for (const name of notebooks) {
  Deno.test({
    name: `notebook ${name} runs top to bottom under the Deno kernel${reason}`,
    ignore: !python,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const r = await runNotebook(python!, join(dir, name), { timeoutSeconds: 600 });
      assert(r.ok, `${name}: ${r.error}`);
      assert(r.cells > 0, `${name} has no code cells`);
      assertLess(r.bytes, 1024 * 1024, `${name} output is ${r.bytes} bytes; keep notebooks under 1 MB`);
      // Every cell that shows something in the committed notebook shows something when run again:
      // no output may be lost on the way from the kernel (see scripts/_jupyter.ts).
      const committed = (JSON.parse(await Deno.readTextFile(join(dir, name))) as Notebook).cells
        .filter((c) => c.cell_type === "code").map((c) => c.outputs?.length ?? 0);
      assertEquals(r.outputs.length, committed.length, `${name}: code cells`);
      const lost = committed.flatMap((n, i) => n > 0 && r.outputs[i] === 0 ? [i + 1] : []);
      assertEquals(lost, [], `${name}: code cells with outputs when committed but none when run`);
    },
  });
}

Deno.test("committed notebooks hold no error outputs and stay under 1 MB", () => {
  for (const name of notebooks) {
    const text = Deno.readTextFileSync(join(dir, name));
    assertLess(text.length, 1024 * 1024, `${name} is ${text.length} bytes`);
    const nb = JSON.parse(text) as Notebook;
    for (const c of nb.cells) {
      for (const o of c.outputs ?? []) assert(o.output_type !== "error", `${name} holds an error output`);
    }
  }
});
