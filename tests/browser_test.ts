/**
 * Browser rendering tests: figure pages and exported notebook pages are opened
 * in the system's headless Chromium, offline, and must actually draw (plotly's
 * SVG layers with the expected number of points). Screenshots go to
 * `tests/artifacts/` (created here, git-ignored). Ignored, with the reason in
 * the test name, where `/usr/bin/chromium` or nbconvert is missing, unless
 * `PARAMSCOPE_REQUIRE_BROWSER=1` / `PARAMSCOPE_REQUIRE_JUPYTER=1` (as in CI) make them run and fail.
 */
import { assert, assertEquals, assertGreater, assertLess, assertStringIncludes } from "@std/assert";
import { bar, heatmap, histogram, inlinePlotly, inlinePlotlyFile, line, pageHtml, scatter } from "../lib/plot.ts";
import { CHROMIUM_PATH, hasChromium, renderPage } from "./_browser.ts";

const ARTIFACTS = new URL("./artifacts/", import.meta.url).pathname;
// CI sets these so a missing browser or nbconvert fails the run instead of being ignored.
const requireBrowser = Deno.env.get("PARAMSCOPE_REQUIRE_BROWSER") === "1";
const requireJupyter = Deno.env.get("PARAMSCOPE_REQUIRE_JUPYTER") === "1";
const chromium = hasChromium() || requireBrowser;
const noChromium = chromium ? "" : ` (ignored: ${CHROMIUM_PATH} is not installed)`;

/** How to run nbconvert here, if at all: `jupyter nbconvert`, or a Python that has the module. */
function findNbconvert(): string[] | null {
  for (
    const cmd of [["jupyter", "nbconvert"], ["/usr/bin/python3", "-m", "nbconvert"], ["python3", "-m", "nbconvert"]]
  ) {
    try {
      const out = new Deno.Command(cmd[0], { args: [...cmd.slice(1), "--version"], stdout: "null", stderr: "null" })
        .outputSync();
      if (out.success) return cmd;
    } catch { /* not installed */ }
  }
  return null;
}
const nbconvert = chromium ? findNbconvert() ?? (requireJupyter ? ["jupyter", "nbconvert"] : null) : null;

function count(hay: string, re: RegExp): number {
  return (hay.match(re) ?? []).length;
}

async function assertPng(path: string): Promise<void> {
  const png = await Deno.readFile(path);
  assertEquals(Array.from(png.subarray(0, 8)), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${path} is a PNG`);
  assertGreater(png.length, 5_000, `${path} shows more than a blank page`);
}

async function artifact(name: string): Promise<string> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  return ARTIFACTS + name;
}

Deno.test({
  name: `scatter figure page draws every labelled point offline in Chromium${noChromium}`,
  ignore: !chromium,
  fn: async () => {
    const labels = ["king", "queen", "man", "woman", "apple"];
    const fig = scatter({ x: [1, 1.2, 3, 3.1, -2], y: [2, 2.5, 0, 0.4, -1] }, {
      labels,
      groups: ["royal", "royal", "person", "person", "fruit"],
      title: "word vectors",
    });
    const html = await artifact("scatter.html");
    await fig.writeHtml(html);
    const shot = await artifact("scatter.png");
    const { dom, errors, ready } = await renderPage(html, {
      waitFor: "document.querySelectorAll('.scatterlayer .point').length >= 5",
      screenshot: shot,
    });
    assert(ready, "the plot drew before the timeout");
    assertEquals(errors, []);
    assertGreater(count(dom, /class="main-svg"/g), 0);
    assertEquals(count(dom, /class="point"/g), 5);
    assertEquals(count(dom, /class="traces"/g), 3, "one legend entry per group");
    for (const l of labels) assertStringIncludes(dom, `>${l}</text>`);
    await assertPng(shot);
  },
});

Deno.test({
  name: `heatmap figure page draws its cells offline in Chromium${noChromium}`,
  ignore: !chromium,
  fn: async () => {
    const words = ["cat", "dog", "car"];
    const fig = heatmap([[1, 0.8, 0.1], [0.8, 1, 0.2], [0.1, 0.2, 1]], {
      x: words,
      y: words,
      zmid: 0,
      title: "cosine",
    });
    const html = await artifact("heatmap.html");
    await fig.writeHtml(html);
    const shot = await artifact("heatmap.png");
    const { dom, errors, ready } = await renderPage(html, {
      waitFor: "document.querySelector('.heatmaplayer image')",
      screenshot: shot,
    });
    assert(ready, "the heatmap drew before the timeout");
    assertEquals(errors, []);
    assertEquals(count(dom, /<image\b/g), 1, "plotly draws the cells as one image");
    for (const w of words) assertStringIncludes(dom, `>${w}</text>`);
    await assertPng(shot);
  },
});

Deno.test({
  name: `pageHtml() draws several figures from one inlined bundle offline in Chromium${noChromium}`,
  ignore: !chromium,
  fn: async () => {
    const figs = [
      bar([5, 3, 8, 1], { labels: ["embed", "attn", "mlp", "norm"], title: "parameters" }),
      line([{ name: "train", y: [4, 3, 2.5, 2.2, 2] }, { name: "val", y: [4.1, 3.3, 2.9, 2.7, 2.6] }], {
        title: "loss",
      }),
      histogram([0.1, 0.2, 0.2, 0.3, 0.9], { bins: 4, title: "weights" }),
    ];
    const page = pageHtml(figs, "three figures");
    assertEquals(count(page, /<script data-paramscope-plotly=/g), 1);
    const html = await artifact("page.html");
    await Deno.writeTextFile(html, page);
    const shot = await artifact("page.png");
    const { errors, ready, value } = await renderPage(html, {
      waitFor: "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 6",
      evaluate: `[...document.querySelectorAll('.js-plotly-plot')].map((p) => ({
        bars: p.querySelectorAll('.barlayer .point').length,
        lines: p.querySelectorAll('.scatterlayer .js-line').length,
      }))`,
      screenshot: shot,
      height: 1500,
    });
    assert(ready, "all three plots drew before the timeout");
    assertEquals(errors, []);
    assertEquals(value, [{ bars: 4, lines: 0 }, { bars: 0, lines: 2 }, { bars: 4, lines: 0 }]);
    await assertPng(shot);
  },
});

Deno.test({
  name: `Jupyter outputs say plotly.js is unreachable offline, then draw once inlinePlotly() adds it${noChromium}`,
  ignore: !chromium,
  fn: async () => {
    // The page a notebook export produces: each output's text/html in document order.
    const outputs = [scatter({ x: [0, 1, 2], y: [2, 1, 0] }), bar([1, 2])].map((f) => f.toMimeBundle()["text/html"]);
    const page = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>nb</title></head><body>` +
      outputs.map((o) => `<div class="output">${o}</div>`).join("\n") + `</body></html>`;
    assertLess(page.length, 20_000, "outputs carry no bundle");
    const online = await artifact("outputs.html");
    await Deno.writeTextFile(online, page);
    const before = await renderPage(online, {
      waitFor: "[...document.querySelectorAll('.ps-plot-msg')].every((m) => /could not be loaded/.test(m.textContent))",
      screenshot: await artifact("outputs-offline.png"),
    });
    assert(before.ready, "every output explains why it cannot draw");
    assertEquals(count(before.dom, /class="main-svg"/g), 0);
    assertEquals(before.errors, []);

    const offline = await artifact("outputs.offline.html");
    await Deno.writeTextFile(offline, inlinePlotly(page));
    const shot = await artifact("outputs-inlined.png");
    const after = await renderPage(offline, {
      waitFor: "document.querySelectorAll('.js-plotly-plot').length === 2",
      screenshot: shot,
    });
    assert(after.ready, "both outputs drew from the inlined bundle");
    assertEquals(after.errors, []);
    assertEquals(count(after.dom, /class="point"/g), 3 + 2);
    await assertPng(shot);
  },
});

Deno.test({
  name: `an nbconvert HTML export of figure outputs draws offline after inlinePlotlyFile()${
    noChromium || (nbconvert ? "" : " (ignored: nbconvert is not installed)")
  }`,
  ignore: !chromium || !nbconvert,
  fn: async () => {
    const figs = [
      scatter({ x: [0, 1, 2, 3], y: [1, 3, 2, 4] }, { labels: ["a", "b", "c", "d"] }),
      heatmap([[1, 0], [0, 1]], { x: ["x", "y"], y: ["x", "y"] }),
    ];
    const notebook = {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: { kernelspec: { name: "deno", display_name: "Deno", language: "typescript" } },
      cells: figs.map((f, i) => ({
        cell_type: "code",
        id: `cell-${i}`,
        metadata: {},
        execution_count: i + 1,
        source: `fig${i}`,
        outputs: [{ output_type: "execute_result", execution_count: i + 1, metadata: {}, data: f.toMimeBundle() }],
      })),
    };
    const dir = await Deno.makeTempDir({ prefix: "paramscope-nbconvert-" });
    try {
      const ipynb = `${dir}/figures.ipynb`;
      await Deno.writeTextFile(ipynb, JSON.stringify(notebook));
      assertLess((await Deno.stat(ipynb)).size, 1_000_000, "the notebook stays small");
      const [cmd, ...args] = nbconvert!;
      const run = await new Deno.Command(cmd, {
        args: [...args, "--to", "html", "--output-dir", dir, ipynb],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(run.success, new TextDecoder().decode(run.stderr));
      const exported = `${dir}/figures.html`;
      assertLess((await Deno.stat(exported)).size, 1_000_000, "the export before inlining carries no bundle");
      const offline = await artifact("nbconvert.offline.html");
      await inlinePlotlyFile(exported, offline);
      const shot = await artifact("nbconvert.png");
      const { dom, errors, ready } = await renderPage(offline, {
        waitFor:
          "document.querySelectorAll('.js-plotly-plot').length === 2 && document.querySelector('.heatmaplayer image')",
        screenshot: shot,
        height: 1200,
      });
      assert(ready, "both exported outputs drew offline");
      assertEquals(errors.filter((e) => !/require|MathJax/i.test(e)), []);
      assertEquals(count(dom, /class="point"/g), 4);
      await assertPng(shot);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
