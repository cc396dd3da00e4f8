/**
 * Notebook 05 (tokens and embeddings) as a reader sees it: executed under the
 * Deno kernel, exported to HTML by nbconvert, plotly.js inlined with
 * `inlinePlotlyFile`, then opened offline in headless Chromium. Its cosine
 * heatmaps and its PCA map of word groups must really draw: plotly's SVG
 * layers, every cell of each heatmap and every word of the map, as the
 * figure JSON stored in the executed notebook describes them. The screenshot
 * goes to `tests/artifacts/notebook05.png`.
 *
 * Ignored, with the reason in the test name, where Jupyter (nbconvert with the
 * Deno kernel) or `/usr/bin/chromium` is missing, unless
 * `PARAMSCOPE_REQUIRE_JUPYTER=1` / `PARAMSCOPE_REQUIRE_BROWSER=1` (as in CI) make it run and fail.
 */
import { assert, assertEquals, assertGreater, assertLess } from "@std/assert";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { inlinePlotlyFile } from "../lib/plot.ts";
import { findJupyterPython, runNotebook } from "../scripts/_jupyter.ts";
import { CHROMIUM_PATH, hasChromium, renderPage } from "./_browser.ts";

const NOTEBOOK = fileURLToPath(new URL("../notebooks/05_tokens_and_embeddings.ipynb", import.meta.url));
const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const requireBrowser = Deno.env.get("PARAMSCOPE_REQUIRE_BROWSER") === "1";
const requireJupyter = Deno.env.get("PARAMSCOPE_REQUIRE_JUPYTER") === "1";
const chromium = hasChromium() || requireBrowser;
const python = chromium ? await findJupyterPython() : undefined;
const jupyter = python !== undefined || requireJupyter;
const reason = !chromium
  ? ` (ignored: ${CHROMIUM_PATH} is not installed)`
  : !jupyter
  ? " (ignored: Jupyter not installed; apt-get install python3-nbconvert python3-nbclient jupyter-client)"
  : "";

/** What a plotly output of the executed notebook holds: trace types, heatmap sizes, scatter points and labels. */
interface FigureSummary {
  types: string[];
  heatmap?: { rows: number; cols: number; labels: string[] };
  points?: number;
  labels?: string[];
  groups?: string[];
}

function figuresOf(executed: string): FigureSummary[] {
  const nb = JSON.parse(executed) as {
    cells: { cell_type: string; outputs?: { data?: Record<string, unknown> }[] }[];
  };
  const out: FigureSummary[] = [];
  for (const cell of nb.cells) {
    for (const o of cell.outputs ?? []) {
      const fig = o.data?.["application/vnd.plotly.v1+json"] as { data: Record<string, unknown>[] } | undefined;
      if (!fig) continue;
      const types = fig.data.map((t) => String(t.type));
      const s: FigureSummary = { types };
      if (types[0] === "heatmap") {
        const z = fig.data[0].z as number[][];
        s.heatmap = { rows: z.length, cols: z[0].length, labels: (fig.data[0].x as string[]).map(String) };
      } else {
        s.points = fig.data.reduce((n, t) => n + (t.x as number[]).length, 0);
        s.labels = fig.data.flatMap((t) => t.text as string[]);
        s.groups = fig.data.map((t) => String(t.name));
      }
      out.push(s);
    }
  }
  return out;
}

Deno.test({
  name: `notebook 05's exported cosine heatmaps and PCA word map draw offline in Chromium${reason}`,
  ignore: !chromium || !jupyter,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assert(python, "PARAMSCOPE_REQUIRE_JUPYTER=1 but /usr/bin/python3 lacks nbconvert/nbclient/jupyter_client");
    const htmlDir = await Deno.makeTempDir({ prefix: "paramscope-nb05-" });
    try {
      const run = await runNotebook(python, NOTEBOOK, { htmlDir, timeoutSeconds: 300 });
      assert(run.ok, run.error);
      assertLess(run.bytes, 1024 * 1024, "the executed notebook stays under 1 MB");

      // What the notebook's figures hold, read from the executed notebook itself.
      const figures = figuresOf(await Deno.readTextFile(run.output));
      const heatmaps = figures.filter((f) => f.heatmap);
      const maps = figures.filter((f) => f.points !== undefined);
      assertEquals(heatmaps.length, 2, "a word heatmap and a sentence heatmap");
      assertEquals(maps.length, 2, "a PCA map and a UMAP map");
      assertEquals(heatmaps.map((h) => [h.heatmap!.rows, h.heatmap!.cols]), [[16, 16], [3, 3]]);
      for (const map of maps) {
        assertEquals(map.groups, ["days", "months", "numbers", "colours", "family", "table · astronaut"]);
        assertEquals(map.points, map.labels!.length);
      }

      const exported = join(htmlDir, basename(NOTEBOOK).replace(/\.ipynb$/, ".html"));
      assertLess((await Deno.stat(exported)).size, 2_000_000, "the export before inlining carries no plotly bundle");
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      const offline = join(ARTIFACTS, "notebook05.offline.html");
      await inlinePlotlyFile(exported, offline);
      const shot = join(ARTIFACTS, "notebook05.png");
      // Once everything drew, scroll the first heatmap to the top so the screenshot shows it and the map below.
      const { errors, ready, value } = await renderPage(offline, {
        waitFor: `(() => {
          const plots = document.querySelectorAll('.js-plotly-plot');
          if (plots.length !== ${figures.length}) return false;
          if (document.querySelectorAll('.heatmaplayer image').length !== 2) return false;
          if (document.querySelectorAll('.scatterlayer .point').length < ${
          maps[0].points! + maps[1].points!
        }) return false;
          plots[0].scrollIntoView();
          return true;
        })()`,
        evaluate: `[...document.querySelectorAll('.js-plotly-plot')].map((p) => ({
          svgs: p.querySelectorAll('.main-svg').length,
          images: [...p.querySelectorAll('.heatmaplayer image')].map((im) => im.getBBox().width * im.getBBox().height),
          cells: p.calcdata && p.calcdata[0][0].z ? [p.calcdata[0][0].z.length, p.calcdata[0][0].z[0].length] : null,
          points: p.querySelectorAll('.scatterlayer .point').length,
          texts: [...p.querySelectorAll('.scatterlayer .textpoint text')].map((t) => t.textContent),
          legend: p.querySelectorAll('.legend .traces').length,
        }))`,
        screenshot: shot,
        height: 1300,
        timeoutMs: 120_000,
      });
      assert(ready, "every plot of the export drew before the timeout");
      assertEquals(errors.filter((e) => !/require|MathJax/i.test(e)), []);
      const plots = value as {
        svgs: number;
        images: number[];
        cells: [number, number] | null;
        points: number;
        texts: string[];
        legend: number;
      }[];
      assertEquals(plots.length, figures.length);
      plots.forEach((p, i) => {
        assertGreater(p.svgs, 0, `plot ${i} has plotly's SVG layers`);
        const f = figures[i];
        if (f.heatmap) {
          assertEquals(p.images.length, 1, `heatmap ${i} is drawn as one image`);
          assertGreater(p.images[0], 10_000, `heatmap ${i} covers an area`);
          assertEquals(p.cells, [f.heatmap.rows, f.heatmap.cols], `heatmap ${i} has every cell`);
        } else {
          assertEquals(p.points, f.points, "one marker per word");
          assertEquals(p.texts.sort(), [...f.labels!].sort(), "every word is labelled");
          assertEquals(p.legend, f.groups!.length, "one legend entry per group");
        }
      });
      const png = await Deno.readFile(shot);
      assertEquals(Array.from(png.subarray(0, 4)), [0x89, 0x50, 0x4e, 0x47], "the screenshot is a PNG");
      assertGreater(png.length, 20_000, "the screenshot shows more than a blank page");
    } finally {
      await Deno.remove(htmlDir, { recursive: true });
    }
  },
});
