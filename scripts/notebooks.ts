/**
 * Executes every notebook top to bottom under the Deno Jupyter kernel,
 * headlessly (Jupyter's nbconvert/nbclient), and fails on any error output.
 *
 *   deno task notebooks [NOTEBOOK.ipynb ...] [--inplace] [--html DIR] [--timeout SECONDS]
 *
 * `--inplace` stores the fresh outputs in the notebooks themselves (what is
 * committed); otherwise executed copies go to a temporary folder. `--html DIR`
 * also exports each executed notebook as HTML (used by the browser tests).
 *
 * Needs Debian's `python3-nbconvert`, `python3-nbclient` and `jupyter-client`
 * under `/usr/bin/python3` (or `PARAMSCOPE_PYTHON`), and the Deno kernel
 * (`deno jupyter --install`, done here when missing).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { findJupyterPython, runNotebook } from "./_jupyter.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    inplace: { type: "boolean", default: false },
    html: { type: "string" },
    timeout: { type: "string", default: "900" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log("deno task notebooks [NOTEBOOK.ipynb ...] [--inplace] [--html DIR] [--timeout SECONDS]");
  Deno.exit(0);
}
const python = await findJupyterPython();
if (!python) {
  console.error(
    "error: Jupyter is not installed. On Debian: sudo apt-get install python3-nbconvert python3-nbclient jupyter-client",
  );
  Deno.exit(2);
}
const dir = fileURLToPath(new URL("../notebooks/", import.meta.url));
const notebooks = positionals.length > 0
  ? positionals
  : [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".ipynb")).map((e) => join(dir, e.name)).sort();
let failed = 0;
for (const nb of notebooks) {
  const t0 = performance.now();
  const r = await runNotebook(python, nb, {
    inplace: values.inplace,
    htmlDir: values.html,
    timeoutSeconds: Number(values.timeout),
  });
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  const late = r.lateOutputs ? `, ${r.lateOutputs} late outputs kept` : "";
  if (r.ok) {
    console.log(`ok    ${basename(nb)} (${r.cells} cells, ${secs} s, ${(r.bytes / 1024).toFixed(0)} KiB${late})`);
  } else {
    failed++;
    console.log(`FAIL  ${basename(nb)} (${secs} s)\n${r.error}`);
  }
}
console.log(`${notebooks.length - failed} passed, ${failed} failed`);
Deno.exit(failed ? 1 : 0);
