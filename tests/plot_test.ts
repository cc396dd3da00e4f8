import {
  assert,
  assertEquals,
  assertFalse,
  assertGreater,
  assertLess,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  bar,
  Figure,
  heatmap,
  histogram,
  histogramBins,
  inlinePlotly,
  inlinePlotlyFile,
  type JUPYTER_DISPLAY,
  line,
  pageHtml,
  PLOTLY_CDN_URL,
  PLOTLY_VERSION,
  plotlyBundle,
  scatter,
} from "../lib/plot.ts";
import { createPrng } from "../lib/prng.ts";

const INLINE_TAG = "<script data-paramscope-plotly=";

function count(hay: string, needle: string): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + needle.length)) n++;
  return n;
}

Deno.test("plotlyBundle() reads the pinned plotly.js bundle without running it", () => {
  const text = plotlyBundle();
  assertGreater(text.length, 1_000_000);
  // The bundle's own header names its version: the same as the npm package we pinned.
  assertStringIncludes(text.slice(0, 200), `plotly.js v${PLOTLY_VERSION}`);
  assertEquals(count(text, "</script"), 0, "an inline bundle must not close its <script> early");
  assertEquals(PLOTLY_CDN_URL, `https://cdn.plot.ly/plotly-${PLOTLY_VERSION}.min.js`);
});

Deno.test("plotlyBundle() names the missing file and the fix", () => {
  const err = assertThrows(() => plotlyBundle({ plotlyPath: "/nonexistent/plotly.js" }), Error);
  assertStringIncludes(err.message, "/nonexistent/plotly.js");
  assertStringIncludes(err.message, "plotlyPath");
});

Deno.test("Figure displays in Jupyter as plotly JSON, a small HTML fallback and text", () => {
  const fig = scatter({ x: [1, 2], y: [3, 4] }, { labels: ["a", "b"], title: "two" });
  const mime = fig[Symbol.for("Jupyter.display") as typeof JUPYTER_DISPLAY]();
  assertEquals(Object.keys(mime).sort(), ["application/vnd.plotly.v1+json", "text/html", "text/plain"]);
  assertEquals(mime["application/vnd.plotly.v1+json"], { data: fig.data, layout: fig.layout, config: fig.config });
  const html = mime["text/html"] as string;
  assertLess(html.length, 5_000, "the notebook output must not carry the plotly bundle");
  assertFalse(html.includes(INLINE_TAG));
  assertFalse(html.includes(`plotly.js v${PLOTLY_VERSION}`));
  assertStringIncludes(html, JSON.stringify(PLOTLY_CDN_URL));
  assertStringIncludes(html, "window");
  assertEquals(mime["text/plain"], 'Figure "two" (1 trace: scatter)');
});

Deno.test("Figure MIME bundles use a fresh element id per display and honour plotlySrc", () => {
  const fig = bar([1, 2, 3]);
  const id = (html: string) => html.match(/id="([^"]+)"/)![1];
  const a = fig.toMimeBundle()["text/html"] as string;
  const b = fig.toMimeBundle({ plotlySrc: "plotly-local.js" })["text/html"] as string;
  assert(id(a) !== id(b));
  assertStringIncludes(b, '"plotly-local.js"');
});

Deno.test("Figure JSON embedded in HTML cannot close its script element", () => {
  const evil = "</script><script>alert(1)</script>";
  const fig = scatter({ x: [0], y: [0] }, { labels: [evil] });
  const html = fig.toMimeBundle()["text/html"] as string;
  assertEquals(count(html, "</script>"), 2, "only the two script elements of the snippet close");
  const spec = html.match(/<script type="application\/json" id="[^"]+">(.*?)<\/script>/s)![1];
  assertEquals(JSON.parse(spec).data[0].text, [evil]);
});

Deno.test("toHtml() and pageHtml() inline the bundle exactly once per page", () => {
  const figs = [bar([1, 2]), line([{ name: "a", y: [1, 2] }]), heatmap([[1, 2], [3, 4]])];
  const one = figs[0].toHtml();
  const page = pageHtml(figs, "three <plots>");
  for (const html of [one, page]) {
    assertEquals(count(html, INLINE_TAG), 1);
    assertEquals(count(html, `plotly.js v${PLOTLY_VERSION}`), 1);
    assertStringIncludes(html.slice(0, 200), '<meta charset="utf-8">');
  }
  assertEquals(count(page, 'class="ps-plot"'), 3);
  assertStringIncludes(page, "<title>three &lt;plots&gt;</title>");
  // The bundle precedes every figure, so each draws at once.
  assertLess(page.indexOf(INLINE_TAG), page.indexOf('class="ps-plot"'));
});

Deno.test("pageHtml() rejects things that are not figures", () => {
  assertThrows(() => pageHtml([{ data: [], layout: {} } as unknown as Figure]), TypeError, "Figure");
});

Deno.test("inlinePlotly() adds the bundle once, before </head>, and is idempotent", () => {
  const page = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>nb</title></head><body>x</body></html>`;
  const once = inlinePlotly(page);
  assertEquals(count(once, INLINE_TAG), 1);
  assertLess(once.indexOf(INLINE_TAG), once.indexOf("</head>"));
  assertGreater(once.indexOf(INLINE_TAG), once.indexOf("<title>"));
  assertEquals(inlinePlotly(once), once);
});

Deno.test("inlinePlotly() declares UTF-8 first when the page does not", () => {
  const out = inlinePlotly("<html><head><title>t</title></head><body></body></html>");
  assertLess(out.indexOf('<meta charset="utf-8">'), 100);
  const bare = inlinePlotly("<p>fragment</p>");
  assert(bare.startsWith('<meta charset="utf-8">'));
  assertEquals(count(bare, INLINE_TAG), 1);
  assertThrows(() => inlinePlotly(42 as unknown as string), TypeError, "string");
});

Deno.test("writeHtml() and inlinePlotlyFile() write the same page as the string forms", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fig = scatter({ x: [1, 2, 3], y: [1, 4, 9] });
    await fig.writeHtml(`${dir}/fig.html`);
    const written = await Deno.readTextFile(`${dir}/fig.html`);
    assertEquals(count(written, INLINE_TAG), 1);
    assertEquals(written.replace(/ps-plot-\d+/g, "ID"), fig.toHtml().replace(/ps-plot-\d+/g, "ID"));
    const nb = `<html><head><meta charset="utf-8"></head><body>${fig.toMimeBundle()["text/html"]}</body></html>`;
    await Deno.writeTextFile(`${dir}/nb.html`, nb);
    await inlinePlotlyFile(`${dir}/nb.html`, `${dir}/nb.offline.html`);
    assertEquals(await Deno.readTextFile(`${dir}/nb.offline.html`), inlinePlotly(nb));
    assertEquals(await Deno.readTextFile(`${dir}/nb.html`), nb, "the input is left alone");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scatter() puts each point in its group's trace with its label", () => {
  const x = [0.5, 1, 2, 3, 4], y = [5, 4, 3, 2, 1];
  const labels = ["king", "queen", "apple", "man", "pear"];
  const groups = ["royal", "royal", "fruit", "royal", "fruit"];
  const fig = scatter({ x, y }, { labels, groups, title: "words" });
  assertEquals(fig.data.map((t) => t.name), ["royal", "fruit"]);
  // Reference: every input point found once, in the trace named by its group.
  const seen: string[] = [];
  for (const t of fig.data) {
    const tx = t.x as number[], ty = t.y as number[], tt = t.text as string[];
    assertEquals(t.mode, "markers+text");
    for (let j = 0; j < tx.length; j++) {
      const i = labels.indexOf(tt[j]);
      assertEquals([tx[j], ty[j], groups[i]], [x[i], y[i], t.name]);
      seen.push(tt[j]);
    }
  }
  assertEquals(seen.sort(), [...labels].sort());
  assertEquals(fig.layout.showlegend, true);
});

Deno.test("scatter() reads an [n, 2] tensor and keeps float32 values exactly", () => {
  const rng = createPrng(3);
  const data = new Float32Array(20).map(() => rng.normal());
  const fig = scatter({ data, dims: [10, 2] });
  const t = fig.data[0];
  assertEquals(t.mode, "markers");
  const xs = t.x as number[], ys = t.y as number[];
  for (let i = 0; i < 10; i++) {
    assertEquals(Math.fround(xs[i]), data[2 * i]);
    assertEquals(Math.fround(ys[i]), data[2 * i + 1]);
    assertLess(String(xs[i]).length, 13, "shortest float32 decimal, not the float64 expansion");
  }
});

Deno.test("scatter() maps a numeric colour per point to a colour scale", () => {
  const fig = scatter({ x: [0, 1, 2], y: [0, 1, 2] }, { color: [0.1, 0.5, 0.9] });
  const marker = fig.data[0].marker as Record<string, unknown>;
  assertEquals(marker.color, [0.1, 0.5, 0.9]);
  assertEquals(marker.showscale, true);
});

Deno.test("scatter() rejects mismatched lengths and wrong tensor shapes", () => {
  assertThrows(() => scatter({ x: [1, 2], y: [1] }), RangeError, "x has 2 values but y has 1");
  assertThrows(() => scatter({ x: [1, 2], y: [1, 2] }, { labels: ["a"] }), RangeError, "labels has 1 entries");
  assertThrows(() => scatter({ x: [1, 2], y: [1, 2] }, { groups: ["a"] }), RangeError, "groups");
  assertThrows(() => scatter({ data: new Float32Array(6), dims: [2, 3] }), RangeError, "[n, 2]");
  assertThrows(() => scatter({ data: new Float32Array(6), dims: [2, 2] }), RangeError, "need 4");
  assertThrows(() => scatter({ x: [1, "2"], y: [1, 2] } as unknown as { x: number[]; y: number[] }), TypeError);
  assertThrows(() => scatter({ x: [1], y: [1] }, { height: -5 }), RangeError, "height");
});

Deno.test("heatmap() keeps every cell, labels the axes and reads rows top-down", () => {
  const rng = createPrng(11);
  const data = new Float32Array(12).map(() => rng.next());
  const fig = heatmap({ data, dims: [3, 4] }, { x: ["a", "b", "c", "d"], y: ["r0", "r1", "r2"], zmid: 0 });
  const t = fig.data[0];
  const z = t.z as number[][];
  assertEquals(z.length, 3);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) assertEquals(Math.fround(z[i][j]), data[i * 4 + j]);
  assertEquals(t.x, ["a", "b", "c", "d"]);
  assertEquals(t.zmid, 0);
  assertEquals((fig.layout.yaxis as Record<string, unknown>).autorange, "reversed");
  const plain = heatmap([[1, 2]], { matrixOrder: false });
  assertEquals((plain.layout.yaxis as Record<string, unknown>).autorange, undefined);
});

Deno.test("heatmap() keeps repeated labels as separate rows", () => {
  const fig = heatmap([[1, 0], [0, 1]], { x: ["the", "the"], y: ["the", "the"] });
  const x = fig.data[0].x as string[];
  assertEquals(new Set(x).size, 2);
  assertEquals(x.map((s) => s.replace(/\u200b/g, "")), ["the", "the"]);
});

Deno.test("heatmap() rejects ragged rows, mislabelled axes and non-2-D tensors", () => {
  assertThrows(() => heatmap([[1, 2], [3]]), RangeError, "row 1 has 1 values");
  assertThrows(() => heatmap([[1, 2]], { x: ["a"] }), RangeError, "x has 1 labels");
  assertThrows(() => heatmap([[1, 2]], { y: ["a", "b"] }), RangeError, "y has 2 labels");
  assertThrows(() => heatmap({ data: new Float32Array(8), dims: [2, 2, 2] }), RangeError, "2-D");
  assertThrows(() => heatmap("nope" as unknown as number[][]), TypeError);
});

Deno.test("bar() draws one bar per value, optionally horizontal", () => {
  const fig = bar(new Float32Array([1.5, 2.25, 3]), { labels: ["x", "y", "z"], yTitle: "n" });
  assertEquals(fig.data[0], { type: "bar", x: ["x", "y", "z"], y: [1.5, 2.25, 3] });
  assertEquals((fig.layout.yaxis as { title: { text: string } }).title.text, "n");
  const h = bar([1, 2], { horizontal: true });
  assertEquals(h.data[0].orientation, "h");
  assertEquals(h.data[0].x, [1, 2]);
  assertEquals(h.data[0].y, [0, 1]);
  assertThrows(() => bar([1, 2], { labels: ["a"] }), RangeError, "labels has 1 entries");
  assertThrows(() => bar(null as unknown as number[]), TypeError);
});

/** Naive reference: scan the edges for each value (half-open bins, the last one closed). */
function naiveBins(values: number[], lo: number, hi: number, bins: number): number[] {
  const counts = new Array(bins).fill(0);
  for (const v of values) {
    if (!Number.isFinite(v) || v < lo || v > hi) continue;
    for (let b = 0; b < bins; b++) {
      const a = lo + (hi - lo) * b / bins, z = b === bins - 1 ? hi : lo + (hi - lo) * (b + 1) / bins;
      if (v >= a && (v < z || (b === bins - 1 && v === hi))) {
        counts[b]++;
        break;
      }
    }
  }
  return counts;
}

Deno.test("histogramBins() matches a naive edge scan", () => {
  const rng = createPrng(5);
  const values = Array.from({ length: 5000 }, () => rng.normal());
  // Values exactly on edges are the hard case.
  values.push(-1, 0, 0.5, 1, 2);
  for (const bins of [1, 7, 50]) {
    const h = histogramBins(values, { bins, range: [-2, 2] });
    assertEquals(Array.from(h.counts), naiveBins(values, -2, 2, bins));
    assertEquals(h.edges.length, bins + 1);
    const inRange = values.filter((v) => v >= -2 && v <= 2).length;
    assertEquals(h.outside, values.length - inRange);
  }
  const auto = histogramBins(values, { bins: 13 });
  const lo = Math.min(...values), hi = Math.max(...values);
  assertEquals(Array.from(auto.counts), naiveBins(values, lo, hi, 13));
  assertEquals(auto.outside, 0);
});

Deno.test("histogramBins() skips NaN and infinities and handles constant data", () => {
  const h = histogramBins([1, NaN, Infinity, -Infinity, 1], { bins: 4 });
  assertEquals(h.nonFinite, 3);
  assertEquals(h.counts.reduce((a, b) => a + b, 0), 2);
  assertEquals([h.edges[0], h.edges[4]], [0.5, 1.5]);
  assertEquals(Array.from(histogramBins([], { bins: 2 }).counts), [0, 0]);
});

Deno.test("histogramBins() rejects bad bin counts and ranges", () => {
  assertThrows(() => histogramBins([1], { bins: 0 }), RangeError, "bins");
  assertThrows(() => histogramBins([1], { bins: 2.5 }), RangeError, "bins");
  assertThrows(() => histogramBins([1], { range: [1, 1] }), RangeError, "range");
  assertThrows(() => histogramBins([1], { range: [0, NaN] }), RangeError, "range");
});

Deno.test("histogram() overlays series on shared bins and normalises to fractions", () => {
  const a = [0, 0.1, 0.2, 0.9], b = [0.5, 0.6, 1, 1, 1, 1];
  const fig = histogram([{ name: "a", values: a }, { name: "b", values: b }], { bins: 4, normalize: true });
  assertEquals(fig.data.map((t) => t.name), ["a", "b"]);
  assertEquals(fig.data[0].x, fig.data[1].x, "shared bin centres");
  assertEquals(fig.data[0].x, [0.125, 0.375, 0.625, 0.875]);
  assertEquals(fig.data[0].y, naiveBins(a, 0, 1, 4).map((c) => c / a.length));
  assertEquals(fig.data[1].y, naiveBins(b, 0, 1, 4).map((c) => c / b.length));
  assertEquals(fig.layout.barmode, "overlay");
  const single = histogram(new Float32Array([1, 2, 3, 4]), { bins: 2, logY: true });
  assertEquals(single.data[0].y, [2, 2]);
  assertEquals((single.layout.yaxis as Record<string, unknown>).type, "log");
  assertThrows(() => histogram([{ name: "x" } as unknown as { name: string; values: number[] }]), TypeError);
});

Deno.test("line() draws each series with default x indices", () => {
  const fig = line([{ name: "train", y: [3, 2, 1] }, { name: "val", x: [0, 2, 4], y: [3.5, 2.5, 2] }], {
    markers: true,
    logY: true,
    xTitle: "step",
  });
  assertEquals(fig.data.map((t) => [t.name, t.x, t.mode]), [
    ["train", [0, 1, 2], "lines+markers"],
    ["val", [0, 2, 4], "lines+markers"],
  ]);
  assertEquals((fig.layout.yaxis as Record<string, unknown>).type, "log");
  assertEquals(line([5, 6]).data[0].y, [5, 6]);
  assertThrows(() => line([{ name: "bad", x: [1], y: [1, 2] }]), RangeError, "1 x values but 2 y values");
  assertThrows(() => line([{ name: "no y" } as unknown as { name: string; y: number[] }]), TypeError);
});

Deno.test("Figure JSON round-trips through JSON.stringify with NaN as null", () => {
  const fig = line([{ name: "l", y: new Float32Array([1, NaN, 0.25]) }], { title: "t" });
  const back = JSON.parse(JSON.stringify(fig));
  assertEquals(back.data[0].y, [1, null, 0.25]);
  assertEquals(back.layout.title.text, "t");
  assertEquals(String(new Figure([])), "Figure (0 traces)");
  assertThrows(() => new Figure({} as unknown as []), TypeError);
});
