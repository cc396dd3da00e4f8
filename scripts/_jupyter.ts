/**
 * Runs notebooks through Jupyter's nbclient with the Deno kernel (and exports
 * HTML with nbconvert). Shared by `scripts/notebooks.ts` and the notebook tests.
 *
 * Why not `jupyter nbconvert --execute`: the Deno kernel sometimes publishes a
 * cell's last outputs (a `display_data`, a `stream`) a fraction of a millisecond
 * *after* the `idle` status that ends the cell, and nbclient stops listening at
 * `idle`, so those outputs were silently lost. {@linkcode RUNNER} keeps
 * listening after `idle` until the kernel has been quiet for
 * {@linkcode LATE_OUTPUT_WINDOW_S} (late outputs measured here arrive within
 * 1 ms), and reports how many outputs came late.
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";

/** The Python with nbconvert + nbclient, or `undefined` when there is none. */
export async function findJupyterPython(): Promise<string | undefined> {
  const candidates = [Deno.env.get("PARAMSCOPE_PYTHON"), "/usr/bin/python3"].filter((p): p is string => !!p);
  for (const py of candidates) {
    try {
      const out = await new Deno.Command(py, {
        args: ["-c", "import nbconvert, nbclient, jupyter_client"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) {
        await ensureDenoKernel(py);
        return py;
      }
    } catch {
      // Not installed at this path.
    }
  }
  return undefined;
}

async function ensureDenoKernel(python: string): Promise<void> {
  const list = await new Deno.Command(python, {
    args: ["-m", "jupyter", "kernelspec", "list", "--json"],
    stderr: "null",
  })
    .output();
  const text = new TextDecoder().decode(list.stdout);
  if (text.includes('"deno"')) return;
  const install = await new Deno.Command(Deno.execPath(), { args: ["jupyter", "--install"] }).output();
  if (!install.success) throw new Error(`deno jupyter --install failed: ${new TextDecoder().decode(install.stderr)}`);
}

/** Quiet time after a cell's `idle` status that ends it (seconds). */
const LATE_OUTPUT_WINDOW_S = 0.1;

/**
 * `python -c RUNNER notebook output timeout window`: executes `notebook` with nbclient on the Deno
 * kernel (errors are kept as outputs), writes it to `output`, and prints `late N`.
 */
const RUNNER = `
import os, queue, sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from nbclient.util import ensure_async

src, dst, timeout, window = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
late = 0

class Client(NotebookClient):
    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        global late
        done = False
        while True:
            try:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=window if done else None))
            except queue.Empty:
                return
            if msg["parent_header"].get("msg_id") != parent_msg_id:
                continue
            if done:
                late += 1
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                done = True

nb = nbformat.read(src, as_version=4)
Client(nb, kernel_name="deno", timeout=timeout, allow_errors=True,
       resources={"metadata": {"path": os.path.dirname(os.path.abspath(src))}}).execute()
# One output per run of stdout (or stderr) text, as nbconvert writes them.
for cell in nb.cells:
    merged = []
    for out in cell.get("outputs", []):
        last = merged[-1] if merged else None
        if out.output_type == "stream" and last is not None and last.output_type == "stream" and last.name == out.name:
            last.text += out.text
        else:
            merged.append(out)
    if cell.cell_type == "code":
        cell.outputs = merged
nbformat.write(nb, dst)
print("late", late)
`;

/** Result of one notebook run. */
export interface NotebookRun {
  /** True when every cell ran without an error output. */
  ok: boolean;
  /** Code cells executed. */
  cells: number;
  /** Outputs of each code cell, in order. */
  outputs: number[];
  /** Outputs the kernel published after the status that ended their cell (kept, not lost). */
  lateOutputs: number;
  /** Size of the executed notebook in bytes. */
  bytes: number;
  /** The first error's name, value and traceback. */
  error?: string;
  /** Path of the executed notebook. */
  output: string;
}

/** Executes one notebook; returns whether it ran clean. */
export async function runNotebook(
  python: string,
  notebook: string,
  options: { inplace?: boolean; htmlDir?: string; timeoutSeconds?: number } = {},
): Promise<NotebookRun> {
  notebook = resolve(notebook);
  const outDir = options.inplace ? dirname(notebook) : await Deno.makeTempDir({ prefix: "paramscope-nb-" });
  const output = join(outDir, basename(notebook));
  const args = ["-c", RUNNER, notebook, output, String(options.timeoutSeconds ?? 900), String(LATE_OUTPUT_WINDOW_S)];
  const r = await new Deno.Command(python, { args, cwd: dirname(notebook), stdout: "piped", stderr: "piped" }).output();
  if (!r.success) {
    return {
      ok: false,
      cells: 0,
      outputs: [],
      bytes: 0,
      lateOutputs: 0,
      output,
      error: `nbclient failed:\n${new TextDecoder().decode(r.stderr).slice(-4000)}`,
    };
  }
  const lateOutputs = Number(/late (\d+)/.exec(new TextDecoder().decode(r.stdout))?.[1] ?? 0);
  const text = await Deno.readTextFile(output);
  const nb = JSON.parse(text) as {
    cells: {
      cell_type: string;
      outputs?: { output_type: string; ename?: string; evalue?: string; traceback?: string[] }[];
    }[];
  };
  const code = nb.cells.filter((c) => c.cell_type === "code");
  let error: string | undefined;
  code.forEach((c, i) => {
    for (const o of c.outputs ?? []) {
      if (o.output_type === "error" && !error) {
        error = `cell ${i + 1}: ${o.ename}: ${o.evalue}\n${(o.traceback ?? []).join("\n").slice(0, 3000)}`;
      }
    }
  });
  if (!error && options.htmlDir) {
    await Deno.mkdir(options.htmlDir, { recursive: true });
    const h = await new Deno.Command(python, {
      args: ["-m", "nbconvert", "--to", "html", "--output-dir", options.htmlDir, output],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!h.success) error = `HTML export failed:\n${new TextDecoder().decode(h.stderr).slice(-2000)}`;
  }
  return {
    ok: !error,
    cells: code.length,
    outputs: code.map((c) => c.outputs?.length ?? 0),
    bytes: new TextEncoder().encode(text).length,
    lateOutputs,
    error,
    output,
  };
}
