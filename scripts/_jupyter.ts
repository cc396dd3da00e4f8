/**
 * Runs notebooks through Jupyter's nbconvert with the Deno kernel. Shared by
 * `scripts/notebooks.ts` and the notebook tests.
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

/** Result of one notebook run. */
export interface NotebookRun {
  /** True when every cell ran without an error output. */
  ok: boolean;
  /** Code cells executed. */
  cells: number;
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
  const args = [
    "-m",
    "nbconvert",
    "--to",
    "notebook",
    "--execute",
    "--ExecutePreprocessor.kernel_name=deno",
    `--ExecutePreprocessor.timeout=${options.timeoutSeconds ?? 900}`,
    "--allow-errors",
    "--output-dir",
    outDir,
    notebook,
  ];
  if (options.inplace) args.splice(args.indexOf("--output-dir"), 2, "--inplace");
  const r = await new Deno.Command(python, { args, cwd: dirname(notebook), stdout: "piped", stderr: "piped" }).output();
  if (!r.success) {
    return {
      ok: false,
      cells: 0,
      bytes: 0,
      output,
      error: `nbconvert failed:\n${new TextDecoder().decode(r.stderr).slice(-4000)}`,
    };
  }
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
  return { ok: !error, cells: code.length, bytes: new TextEncoder().encode(text).length, error, output };
}
