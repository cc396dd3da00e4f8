/**
 * Plotly figure specs that display themselves in a Deno Jupyter notebook and
 * write self-contained HTML files from scripts.
 *
 * Every builder (`heatmap`, `scatter`, `bar`, `histogram`, `line`) returns a
 * {@linkcode Figure}: plain JSON `{ data, layout }` in plotly's schema plus
 * three ways to show it.
 *
 * ## Where plotly.js comes from (the choice, and why)
 * The plotly.js bundle is ~10 MB (`plotly.js-dist` 4.1.1 is unminified; a
 * minified build is still several MB), and a notebook must stay well under
 * 1 MB, so no notebook output ever carries the bundle. Instead:
 *
 * - **In Jupyter** `figure[Symbol.for("Jupyter.display")]()` returns a MIME
 *   bundle with `application/vnd.plotly.v1+json` (drawn natively and offline by
 *   VS Code and by JupyterLab with the plotly extension), a small `text/html`
 *   fallback (~2 KB plus the figure JSON) and `text/plain`. The `text/html`
 *   part draws with `window.Plotly` when the page already has it; otherwise it
 *   loads the pinned version from plotly's CDN **once per page** (a guarded
 *   `<script src>` shared by every figure on the page, as plotly's own
 *   `include_plotlyjs="cdn"` does). This works online in JupyterLab, classic
 *   Notebook, VS Code and an nbconvert HTML export. Offline, the figure says so
 *   in place instead of failing silently.
 * - **Offline viewing of an exported notebook**: run {@linkcode inlinePlotly}
 *   (or {@linkcode inlinePlotlyFile}) on the nbconvert HTML page. It inlines the
 *   bundle once in `<head>`, so every figure on the page finds `window.Plotly`
 *   and never touches the network. The notebook itself stays small.
 * - **From scripts** {@linkcode Figure.toHtml}, {@linkcode Figure.writeHtml} and
 *   {@linkcode pageHtml} write one self-contained offline page with the bundle
 *   inlined once, however many figures it holds.
 *
 * Rejected alternatives: inlining the bundle in the first figure of a kernel
 * session (the notebook would carry 10 MB) and a `<script src>` to a local file
 * (breaks as soon as the notebook or export moves).
 *
 * plotly.js is never `import`ed (it touches `navigator` and fails in Deno): the
 * bundle file is located through the npm specifier in `deno.json`
 * (`import.meta.resolve`, else `createRequire().resolve`; works with
 * `nodeModulesDir: none` under `deno run`, `deno test` and the Jupyter kernel)
 * and read as text once per process. Large numeric arrays from `Float32Array`s
 * are written with the shortest decimal that reads back as the same float32.
 *
 * @example
 * ```ts
 * import { JUPYTER_DISPLAY, scatter } from "./plot.ts";
 * const fig = scatter({ x: [0, 1, 2], y: [1, 0, 1] }, { labels: ["a", "b", "c"], title: "three words" });
 * // A notebook cell ending in `fig` shows it; this is the call the Deno kernel makes:
 * console.log(fig.data.length, Object.keys(fig[JUPYTER_DISPLAY]()));
 * ```
 *
 * @module
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
// Importing the package's package.json (not its code) pins the version for the CDN
// URL and makes `deno run`/`deno test`/the Jupyter kernel fetch the package, so the
// bundle file exists in the npm cache when it is read.
import plotlyPackage from "plotly.js-dist/package.json" with { type: "json" };
import { writeFileAtomic } from "./_fs.ts";
import type { Tensor } from "./types.ts";

/** The plotly.js version whose bundle is inlined and loaded from the CDN (from the pinned npm package). */
export const PLOTLY_VERSION: string = plotlyPackage.version;

/** Default URL the Jupyter `text/html` fallback loads plotly.js from when the page has no `window.Plotly`. */
export const PLOTLY_CDN_URL: string = `https://cdn.plot.ly/plotly-${PLOTLY_VERSION}.min.js`;

/** The symbol the Deno Jupyter kernel calls to get an object's MIME bundle. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display");

/** One plotly trace as plain JSON (`{ type: "scatter", x: [...], ... }`). */
export type PlotlyTrace = Record<string, unknown>;

/** A plotly layout or config object as plain JSON. */
export type PlotlyObject = Record<string, unknown>;

/** The plain-JSON form of a figure, as plotly's `application/vnd.plotly.v1+json` expects. */
export interface FigureJson {
  /** Traces. */
  data: PlotlyTrace[];
  /** Layout. */
  layout: PlotlyObject;
  /** Plotly config (`responsive`, `displaylogo`, ...). */
  config?: PlotlyObject;
}

/** Options shared by {@linkcode Figure.toHtml}, {@linkcode pageHtml} and {@linkcode inlinePlotly}. */
export interface HtmlOptions {
  /** Path of the plotly.js bundle to inline. Default: the file of the `plotly.js-dist` npm package. */
  plotlyPath?: string;
}

/** Options for {@linkcode Figure.toMimeBundle}. */
export interface MimeBundleOptions {
  /** Where the `text/html` fallback loads plotly.js from if the page has none. Default {@linkcode PLOTLY_CDN_URL}. */
  plotlySrc?: string;
}

/** A Jupyter MIME bundle: MIME type to content. */
export type MimeBundle = Record<string, unknown>;

const DEFAULT_CONFIG: PlotlyObject = { responsive: true, displaylogo: false };

/**
 * A plotly figure: plain JSON `data` and `layout`, displayable in Jupyter and
 * writable as an offline HTML page. Build one with a builder ({@linkcode scatter},
 * {@linkcode heatmap}, ...) or directly from plotly JSON.
 *
 * @example
 * ```ts
 * import { Figure } from "./plot.ts";
 * const fig = new Figure([{ type: "bar", x: ["a", "b"], y: [3, 5] }], { title: { text: "counts" } });
 * console.log(JSON.stringify(fig.toJSON()).length > 0);
 * ```
 */
export class Figure {
  /** Traces (plain JSON). */
  readonly data: PlotlyTrace[];
  /** Layout (plain JSON). */
  readonly layout: PlotlyObject;
  /** Plotly config (plain JSON); default `{ responsive: true, displaylogo: false }`. */
  readonly config: PlotlyObject;

  /**
   * A figure from plotly traces, layout and config.
   *
   * @param data plotly traces
   * @param layout plotly layout (default `{}`)
   * @param config plotly config (default `{ responsive: true, displaylogo: false }`)
   */
  constructor(data: PlotlyTrace[], layout: PlotlyObject = {}, config: PlotlyObject = DEFAULT_CONFIG) {
    if (!Array.isArray(data)) throw new TypeError(`Figure data must be an array of traces, got ${typeof data}`);
    this.data = data;
    this.layout = layout;
    this.config = { ...config };
  }

  /**
   * The figure as plain JSON (used by `JSON.stringify`).
   *
   * @returns `{ data, layout, config }`
   * @example
   * ```ts
   * import { bar } from "./plot.ts";
   * console.log(JSON.stringify(bar([1, 2])));
   * ```
   */
  toJSON(): FigureJson {
    return { data: this.data, layout: this.layout, config: this.config };
  }

  /**
   * The MIME bundle shown in Jupyter: `application/vnd.plotly.v1+json`, a small
   * `text/html` fallback that draws with `window.Plotly` or loads it once per
   * page from `plotlySrc`, and a `text/plain` summary. The bundle never
   * contains plotly.js itself.
   *
   * @param options where the fallback loads plotly.js from
   * @returns MIME type → content
   * @example
   * ```ts
   * import { line } from "./plot.ts";
   * const mime = line([{ name: "loss", y: [3, 2, 1.5] }]).toMimeBundle();
   * console.log(Object.keys(mime));
   * ```
   */
  toMimeBundle(options: MimeBundleOptions = {}): MimeBundle {
    const src = options.plotlySrc ?? PLOTLY_CDN_URL;
    return {
      "application/vnd.plotly.v1+json": { data: this.data, layout: this.layout, config: this.config },
      "text/html": figureSnippet(this, `ps-plot-${crypto.randomUUID()}`, src),
      "text/plain": this.toString(),
    };
  }

  /**
   * Called by the Deno Jupyter kernel to display the figure.
   *
   * @returns the default {@linkcode Figure.toMimeBundle}
   * @example
   * ```ts
   * import { bar, JUPYTER_DISPLAY } from "./plot.ts";
   * const mime = bar([1, 2])[JUPYTER_DISPLAY]();
   * console.log("text/html" in mime);
   * ```
   */
  [JUPYTER_DISPLAY](): MimeBundle {
    return this.toMimeBundle();
  }

  /**
   * A short text description (the `text/plain` part of the MIME bundle).
   *
   * @returns e.g. `Figure "title" (2 traces: scatter, scatter)`
   * @example
   * ```ts
   * import { bar } from "./plot.ts";
   * console.log(String(bar([1, 2], { title: "t" })));
   * ```
   */
  toString(): string {
    const title = titleText(this.layout);
    const types = this.data.map((t) => String(t.type ?? "scatter")).join(", ");
    const n = this.data.length;
    return `Figure${title ? ` "${title}"` : ""} (${n} trace${n === 1 ? "" : "s"}${n ? `: ${types}` : ""})`;
  }

  /**
   * A self-contained offline HTML page showing this figure, with the plotly.js
   * bundle inlined once.
   *
   * @param options bundle location
   * @returns the page
   * @example
   * ```ts ignore
   * import { bar } from "./plot.ts";
   * const html = bar([1, 2]).toHtml();
   * console.log(html.length > 1_000_000);
   * ```
   */
  toHtml(options: HtmlOptions = {}): string {
    return pageHtml([this], titleText(this.layout) || "paramscope figure", options);
  }

  /**
   * Writes {@linkcode Figure.toHtml} to `path` atomically.
   *
   * @param path destination `.html` file
   * @param options bundle location
   * @returns resolves when the file is in place
   * @example
   * ```ts ignore
   * import { bar } from "./plot.ts";
   * await bar([1, 2]).writeHtml("counts.html");
   * ```
   */
  async writeHtml(path: string, options: HtmlOptions = {}): Promise<void> {
    await writeFileAtomic(path, this.toHtml(options));
  }
}

/**
 * A full offline HTML page holding several figures, the plotly.js bundle
 * inlined once.
 *
 * @param figures figures, drawn top to bottom
 * @param title page title (default `"paramscope figures"`)
 * @param options bundle location
 * @returns the page
 * @example
 * ```ts ignore
 * import { bar, line, pageHtml } from "./plot.ts";
 * const html = pageHtml([bar([1, 2]), line([{ name: "y", y: [1, 3] }])], "two plots");
 * await Deno.writeTextFile("page.html", html);
 * ```
 */
export function pageHtml(figures: readonly Figure[], title = "paramscope figures", options: HtmlOptions = {}): string {
  if (!Array.isArray(figures) || figures.some((f) => !(f instanceof Figure))) {
    throw new TypeError("pageHtml() needs an array of Figure objects (from heatmap(), scatter(), ...)");
  }
  const body = figures.map((f, i) => figureSnippet(f, `ps-plot-${i}`, PLOTLY_CDN_URL)).join("\n");
  const page = `<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
</head>
<body style="margin: 16px; font-family: sans-serif">
${body}
</body>
</html>
`;
  return inlinePlotly(page, options);
}

const INLINE_MARKER = "data-paramscope-plotly";

/**
 * Makes an HTML page (e.g. an nbconvert export of a notebook) draw its figures
 * offline: inlines the plotly.js bundle once, at the end of `<head>`, so every
 * figure's loader finds `window.Plotly` and never reaches for the CDN. A page
 * that already carries the bundle is returned unchanged.
 *
 * @param html the page
 * @param options bundle location
 * @returns the page with plotly.js inlined once
 * @example
 * ```ts ignore
 * import { inlinePlotly } from "./plot.ts";
 * const page = await Deno.readTextFile("notebook.html");
 * await Deno.writeTextFile("notebook.offline.html", inlinePlotly(page));
 * ```
 */
export function inlinePlotly(html: string, options: HtmlOptions = {}): string {
  if (typeof html !== "string") throw new TypeError(`inlinePlotly() needs the page as a string, got ${typeof html}`);
  if (html.includes(INLINE_MARKER)) return html;
  const bundle = plotlyBundle(options);
  const tag = `<script ${INLINE_MARKER}="${PLOTLY_VERSION}">\n${bundle}\n</script>\n`;
  // The bundle has non-ASCII characters: the page must be read as UTF-8, and the
  // charset declaration must come within the first 1024 bytes, so it goes first.
  let page = html;
  if (!/<meta[^>]+charset/i.test(page.slice(0, 1024))) {
    page = /<head[^>]*>/i.test(page)
      ? page.replace(/<head[^>]*>/i, (m) => `${m}\n<meta charset="utf-8">`)
      : `<meta charset="utf-8">\n${page}`;
  }
  const close = page.search(/<\/head>/i);
  if (close >= 0) return page.slice(0, close) + tag + page.slice(close);
  const bodyOpen = page.search(/<body[^>]*>/i);
  if (bodyOpen >= 0) return page.slice(0, bodyOpen) + tag + page.slice(bodyOpen);
  const meta = page.indexOf(">") + 1;
  return page.slice(0, meta) + "\n" + tag + page.slice(meta);
}

/**
 * File form of {@linkcode inlinePlotly}: reads `inPath`, inlines plotly.js once
 * and writes the result atomically to `outPath`.
 *
 * @param inPath HTML page to read (e.g. `jupyter nbconvert --to html` output)
 * @param outPath destination (default: overwrite `inPath`)
 * @param options bundle location
 * @returns resolves when the file is in place
 * @example
 * ```ts ignore
 * import { inlinePlotlyFile } from "./plot.ts";
 * await inlinePlotlyFile("notebooks/embeddings.html", "notebooks/embeddings.offline.html");
 * ```
 */
export async function inlinePlotlyFile(
  inPath: string,
  outPath: string = inPath,
  options: HtmlOptions = {},
): Promise<void> {
  const html = await Deno.readTextFile(inPath);
  await writeFileAtomic(outPath, inlinePlotly(html, options));
}

const bundleCache = new Map<string, string>();

/**
 * The plotly.js bundle as text, read once per path and cached. Never executed in Deno.
 *
 * @param options `plotlyPath` to read instead of the npm package's file
 * @returns the bundle source, safe to put inside a `<script>` element
 * @example
 * ```ts ignore
 * import { plotlyBundle } from "./plot.ts";
 * console.log(plotlyBundle().slice(0, 40));
 * ```
 */
export function plotlyBundle(options: HtmlOptions = {}): string {
  const path = options.plotlyPath ?? plotlyBundlePath();
  let text = bundleCache.get(path);
  if (text === undefined) {
    try {
      text = Deno.readTextFileSync(path);
    } catch (e) {
      throw new Error(
        `Could not read the plotly.js bundle at ${path} (${e instanceof Error ? e.message : e}); ` +
          `run \`deno install\` so the npm package is cached, or pass { plotlyPath }`,
      );
    }
    // "</script" would end the inline element early; "<\/script" means the same inside JS strings and regexes.
    text = text.replace(/<\/script/gi, "<\\/script");
    bundleCache.set(path, text);
  }
  return text;
}

/**
 * Finds the bundle file of the `plotly.js-dist` npm package without importing it
 * (works with `nodeModulesDir: none`, under `deno run`, `deno test` and the Jupyter kernel).
 */
function plotlyBundlePath(): string {
  const resolved = import.meta.resolve("plotly.js-dist");
  if (resolved.startsWith("file:")) return fileURLToPath(resolved);
  try {
    return createRequire(import.meta.url).resolve("plotly.js-dist");
  } catch (e) {
    throw new Error(
      `Could not locate the plotly.js-dist bundle (resolved to ${resolved}: ${e instanceof Error ? e.message : e}); ` +
        `run \`deno install\` in the project, or pass { plotlyPath } to the HTML functions`,
    );
  }
}

// The loader every figure snippet carries (~1 KB): draw now if the page has plotly.js,
// else queue the figure and insert one shared <script src> per page.
const LOADER = `(function load(id, src, tries) {
  var w = window, el = document.getElementById(id);
  if (!el) {
    // Some frontends run output scripts just before attaching the output: look again shortly.
    if (tries < 50) setTimeout(function () { load(id, src, tries + 1); }, 100);
    return;
  }
  function draw() {
    var spec = JSON.parse(document.getElementById(id + "-spec").textContent);
    el.innerHTML = "";
    w.Plotly.newPlot(el, spec.data, spec.layout, spec.config);
  }
  function fail() {
    el.querySelector(".ps-plot-msg").textContent = "plotly.js could not be loaded from " + src +
      " (offline?). The figure's data is in this output's application/vnd.plotly.v1+json; " +
      "run inlinePlotly() on an exported page, or write the figure with figure.writeHtml(), to view it offline.";
  }
  if (w.Plotly) return draw();
  var q = w.__paramscopePlotly = w.__paramscopePlotly || { state: "idle", waiting: [] };
  if (q.state === "failed") return fail();
  q.waiting.push({ draw: draw, fail: fail });
  if (q.state !== "idle") return;
  q.state = "loading";
  function settle(ok) {
    q.state = ok ? "ready" : "failed";
    var list = q.waiting; q.waiting = [];
    for (var i = 0; i < list.length; i++) {
      try { (ok ? list[i].draw : list[i].fail)(); } catch (e) { console.error(e); }
    }
  }
  var s = document.createElement("script");
  s.src = src;
  s.onload = function () { settle(!!w.Plotly); };
  s.onerror = function () { settle(false); };
  document.head.appendChild(s);
})`;

/** The HTML of one figure: its div, its JSON and the loader call. */
function figureSnippet(fig: Figure, id: string, src: string): string {
  const height = typeof fig.layout.height === "number" ? fig.layout.height : 450;
  const spec = scriptJson({ data: fig.data, layout: fig.layout, config: fig.config });
  return `<div class="ps-plot" id="${id}" style="width: 100%; min-height: ${height}px">` +
    `<div class="ps-plot-msg" style="font: 12px sans-serif; color: #888">loading plotly.js…</div></div>\n` +
    `<script type="application/json" id="${id}-spec">${spec}</script>\n` +
    `<script>${LOADER}(${JSON.stringify(id)}, ${scriptJson(src)}, 0);</script>`;
}

/** JSON safe inside a `<script>` element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function titleText(layout: PlotlyObject): string {
  const t = layout.title;
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof (t as { text?: unknown }).text === "string") {
    return (t as { text: string }).text;
  }
  return "";
}

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

/** Options every builder accepts. */
export interface CommonPlotOptions {
  /** Figure title. Default: none. */
  title?: string;
  /** x axis title. Default: none. */
  xTitle?: string;
  /** y axis title. Default: none. */
  yTitle?: string;
  /** Width in pixels. Default: the container's width. */
  width?: number;
  /** Height in pixels. Default 450. */
  height?: number;
}

/** Options for {@linkcode heatmap}. */
export interface HeatmapOptions extends CommonPlotOptions {
  /** Column labels, one per column. Default: column indices. */
  x?: readonly (string | number)[];
  /** Row labels, one per row. Default: row indices. */
  y?: readonly (string | number)[];
  /** Plotly colorscale name or `[[0, "#fff"], [1, "#000"]]`. Default `"RdBu"` (plotly's: blue low, red high). */
  colorscale?: string | readonly (readonly [number, string])[];
  /** Value at the bottom of the colour scale. Default: the data minimum. */
  zmin?: number;
  /** Value at the top of the colour scale. Default: the data maximum. */
  zmax?: number;
  /** Value at the middle of the colour scale (e.g. 0 for similarities). Default: none. */
  zmid?: number;
  /** Draw row 0 at the top, as a matrix is read. Default true. */
  matrixOrder?: boolean;
}

/**
 * A heatmap of a matrix (e.g. a cosine-similarity matrix or an attention pattern).
 *
 * @param z `[rows, cols]` tensor or an array of equal-length rows
 * @param options labels, colour scale, titles
 * @returns the figure
 * @example
 * ```ts
 * import { heatmap } from "./plot.ts";
 * const fig = heatmap([[1, 0.2], [0.2, 1]], { x: ["cat", "dog"], y: ["cat", "dog"], zmid: 0 });
 * console.log(fig.data[0].type);
 * ```
 */
export function heatmap(
  z: Tensor | readonly (readonly number[])[] | readonly Float32Array[],
  options: HeatmapOptions = {},
): Figure {
  const rows = matrixRows(z, "heatmap()");
  const nRows = rows.length;
  const nCols = nRows ? rows[0].length : 0;
  if (options.x && options.x.length !== nCols) {
    throw new RangeError(
      `heatmap(): x has ${options.x.length} labels but the matrix has ${nCols} columns; pass one per column`,
    );
  }
  if (options.y && options.y.length !== nRows) {
    throw new RangeError(
      `heatmap(): y has ${options.y.length} labels but the matrix has ${nRows} rows; pass one per row`,
    );
  }
  const trace: PlotlyTrace = {
    type: "heatmap",
    z: rows,
    colorscale: options.colorscale ?? "RdBu",
  };
  // Category labels that repeat (e.g. the same token twice) would merge cells: index them instead.
  if (options.x) trace.x = uniqueLabels(options.x);
  if (options.y) trace.y = uniqueLabels(options.y);
  if (options.zmin !== undefined) trace.zmin = options.zmin;
  if (options.zmax !== undefined) trace.zmax = options.zmax;
  if (options.zmid !== undefined) trace.zmid = options.zmid;
  const layout = baseLayout(options);
  if (options.matrixOrder ?? true) layout.yaxis = { ...(layout.yaxis as PlotlyObject), autorange: "reversed" };
  return new Figure([trace], layout);
}

/** Options for {@linkcode scatter}. */
export interface ScatterOptions extends CommonPlotOptions {
  /** Text label per point (e.g. the word), drawn beside it and shown on hover. Default: none. */
  labels?: readonly string[];
  /** Group per point: one trace (colour and legend entry) per distinct group, in order of first appearance. */
  groups?: readonly (string | number)[];
  /** Numeric value per point mapped to a continuous colour scale (Viridis). Default: none. */
  color?: ArrayLike<number>;
  /** Marker diameter in pixels. Default 8. */
  markerSize?: number;
  /** Draw the labels beside the points (else hover only). Default true when `labels` is given. */
  showLabels?: boolean;
}

/**
 * A 2-D scatter plot, e.g. of word vectors projected with PCA.
 *
 * @param points `[n, 2]` tensor (x, y per row) or `{ x, y }` arrays of equal length
 * @param options labels, groups, colours, titles
 * @returns the figure
 * @example
 * ```ts
 * import { scatter } from "./plot.ts";
 * const fig = scatter({ x: [0, 1, 2, 3], y: [0, 1, 0, 1] }, {
 *   labels: ["king", "queen", "apple", "pear"],
 *   groups: ["royal", "royal", "fruit", "fruit"],
 * });
 * console.log(fig.data.length); // one trace per group
 * ```
 */
export function scatter(
  points: Tensor | { x: ArrayLike<number>; y: ArrayLike<number> },
  options: ScatterOptions = {},
): Figure {
  const [xs, ys] = xyOf(points);
  const n = xs.length;
  const check = (name: string, len: number | undefined) => {
    if (len !== undefined && len !== n) {
      throw new RangeError(`scatter(): ${name} has ${len} entries but there are ${n} points; pass one per point`);
    }
  };
  check("labels", options.labels?.length);
  check("groups", options.groups?.length);
  check("color", options.color?.length);
  const showLabels = options.showLabels ?? options.labels !== undefined;
  const groupOf = options.groups ?? new Array<string>(n).fill("");
  const order: (string | number)[] = [];
  const members = new Map<string | number, number[]>();
  for (let i = 0; i < n; i++) {
    const g = groupOf[i];
    if (!members.has(g)) {
      members.set(g, []);
      order.push(g);
    }
    members.get(g)!.push(i);
  }
  const data: PlotlyTrace[] = order.map((g) => {
    const idx = members.get(g)!;
    const trace: PlotlyTrace = {
      type: "scatter",
      mode: showLabels ? "markers+text" : "markers",
      x: idx.map((i) => xs[i]),
      y: idx.map((i) => ys[i]),
      marker: { size: options.markerSize ?? 8 } as PlotlyObject,
    };
    if (options.groups) trace.name = String(g);
    if (options.labels) {
      trace.text = idx.map((i) => options.labels![i]);
      trace.textposition = "top center";
      trace.hovertemplate = "%{text}<br>(%{x:.4g}, %{y:.4g})<extra></extra>";
    }
    if (options.color) {
      const marker = trace.marker as PlotlyObject;
      marker.color = idx.map((i) => jsonNumber(options.color![i], true));
      marker.colorscale = "Viridis";
      marker.showscale = g === order[0];
    }
    return trace;
  });
  const layout = baseLayout(options);
  layout.showlegend = options.groups !== undefined;
  return new Figure(data, layout);
}

/** Options for {@linkcode bar}. */
export interface BarOptions extends CommonPlotOptions {
  /** Category label per bar. Default: indices. */
  labels?: readonly (string | number)[];
  /** Horizontal bars (labels on the y axis, first label at the top). Default false. */
  horizontal?: boolean;
}

/**
 * A bar chart of one value per category (e.g. parameter counts per component).
 *
 * @param values bar heights
 * @param options labels, orientation, titles
 * @returns the figure
 * @example
 * ```ts
 * import { bar } from "./plot.ts";
 * const fig = bar([38_597_376, 7_087_872], { labels: ["embed", "blocks"], yTitle: "parameters" });
 * console.log(fig.data[0].type);
 * ```
 */
export function bar(values: ArrayLike<number>, options: BarOptions = {}): Figure {
  const v = numbers(values, "bar() values");
  if (options.labels && options.labels.length !== v.length) {
    throw new RangeError(
      `bar(): labels has ${options.labels.length} entries but there are ${v.length} values; pass one per value`,
    );
  }
  const cats = options.labels ? uniqueLabels(options.labels) : v.map((_, i) => i);
  const horizontal = options.horizontal ?? false;
  const trace: PlotlyTrace = horizontal
    ? { type: "bar", orientation: "h", x: v, y: cats }
    : { type: "bar", x: cats, y: v };
  const layout = baseLayout(options);
  if (horizontal) layout.yaxis = { ...(layout.yaxis as PlotlyObject), autorange: "reversed" };
  return new Figure([trace], layout);
}

/** One named series of values for {@linkcode histogram}. */
export interface HistogramSeries {
  /** Legend name. */
  name: string;
  /** Values to bin. */
  values: ArrayLike<number>;
}

/** Options for {@linkcode histogramBins}. */
export interface HistogramBinsOptions {
  /** Number of equal-width bins. Default 50. */
  bins?: number;
  /** `[lo, hi]` covered by the bins. Default: the finite minimum and maximum of the values. */
  range?: readonly [number, number];
}

/** Result of {@linkcode histogramBins}. */
export interface HistogramBinsResult {
  /** `bins + 1` bin edges, ascending. */
  edges: Float64Array;
  /** Count per bin; bin `i` is `[edges[i], edges[i+1])`, the last bin also holds `hi`. */
  counts: Float64Array;
  /** Finite values outside `range`, not counted in any bin. */
  outside: number;
  /** NaN and ±Infinity values, not counted. */
  nonFinite: number;
}

/** Options for {@linkcode histogram}. */
export interface HistogramOptions extends CommonPlotOptions, HistogramBinsOptions {
  /** Divide counts by the number of binned values (fractions instead of counts). Default false. */
  normalize?: boolean;
  /** Logarithmic count axis (weight distributions have long tails). Default false. */
  logY?: boolean;
}

/**
 * Bins values into equal-width bins (what {@linkcode histogram} draws). Binning
 * here instead of in the browser keeps the figure JSON small for millions of
 * values (e.g. every weight of a matrix).
 *
 * @param values values to bin
 * @param options bin count and range
 * @returns edges, counts and what was left out
 * @example
 * ```ts
 * import { histogramBins } from "./plot.ts";
 * const { counts } = histogramBins([0, 0.5, 1, 1], { bins: 2 });
 * console.log(Array.from(counts)); // [1, 3]
 * ```
 */
export function histogramBins(values: ArrayLike<number>, options: HistogramBinsOptions = {}): HistogramBinsResult {
  const bins = options.bins ?? 50;
  if (!Number.isInteger(bins) || bins < 1) {
    throw new RangeError(`histogramBins(): bins must be a positive integer, got ${bins}`);
  }
  let lo: number, hi: number;
  let nonFinite = 0;
  if (options.range) {
    [lo, hi] = options.range;
    if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(hi > lo)) {
      throw new RangeError(`histogramBins(): range must be finite [lo, hi] with hi > lo, got [${lo}, ${hi}]`);
    }
  } else {
    lo = Infinity;
    hi = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo === Infinity) lo = hi = 0;
    if (hi === lo) {
      // All values equal: one unit-wide span centred on them.
      lo -= 0.5;
      hi += 0.5;
    }
  }
  const edges = new Float64Array(bins + 1);
  const width = (hi - lo) / bins;
  for (let i = 0; i <= bins; i++) edges[i] = lo + i * width;
  edges[bins] = hi;
  const counts = new Float64Array(bins);
  let outside = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      nonFinite++;
      continue;
    }
    if (v < lo || v > hi) {
      outside++;
      continue;
    }
    let b = Math.floor((v - lo) / width);
    if (b >= bins) b = bins - 1;
    // Guard the floating-point boundary: keep bin b's half-open interval exact.
    if (v < edges[b]) b--;
    else if (b + 1 < bins && v >= edges[b + 1]) b++;
    counts[b]++;
  }
  return { edges, counts, outside, nonFinite };
}

/**
 * A histogram of one or several series sharing the same bins (overlaid).
 *
 * @param values values, or named series to overlay
 * @param options bins, range, normalisation, titles
 * @returns the figure (bars at bin centres with bin widths)
 * @example
 * ```ts
 * import { histogram } from "./plot.ts";
 * const fig = histogram([{ name: "a", values: [0, 1, 1] }, { name: "b", values: [2, 2, 3] }], { bins: 4 });
 * console.log(fig.data.length);
 * ```
 */
export function histogram(
  values: ArrayLike<number> | readonly HistogramSeries[],
  options: HistogramOptions = {},
): Figure {
  const series: HistogramSeries[] = isSeriesList(values)
    ? values.map((s) => ({ name: s.name, values: s.values }))
    : [{ name: "", values: values as ArrayLike<number> }];
  for (const s of series) {
    if (!s || typeof s.values?.length !== "number") {
      throw new TypeError("histogram(): each series needs { name, values } with an array of numbers");
    }
  }
  let range = options.range;
  if (!range) {
    let lo = Infinity, hi = -Infinity;
    for (const s of series) {
      for (let i = 0; i < s.values.length; i++) {
        const v = s.values[i];
        if (Number.isFinite(v)) {
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
    }
    if (lo === Infinity) lo = hi = 0;
    range = hi > lo ? [lo, hi] : [lo - 0.5, hi + 0.5];
  }
  const overlay = series.length > 1;
  const data = series.map((s) => {
    const h = histogramBins(s.values, { bins: options.bins, range });
    const binned = h.counts.reduce((a, b) => a + b, 0);
    const scale = options.normalize && binned > 0 ? 1 / binned : 1;
    const centres: number[] = [], heights: number[] = [];
    for (let i = 0; i < h.counts.length; i++) {
      centres.push(jsonNumber((h.edges[i] + h.edges[i + 1]) / 2, false));
      heights.push(jsonNumber(h.counts[i] * scale, false));
    }
    const trace: PlotlyTrace = {
      type: "bar",
      x: centres,
      y: heights,
      width: jsonNumber(h.edges[1] - h.edges[0], false),
    };
    if (overlay) {
      trace.name = s.name;
      trace.opacity = 0.6;
    }
    return trace;
  });
  const layout = baseLayout(options);
  layout.bargap = 0;
  if (overlay) layout.barmode = "overlay";
  layout.showlegend = overlay;
  if (options.logY) layout.yaxis = { ...(layout.yaxis as PlotlyObject), type: "log" };
  return new Figure(data, layout);
}

/** One named line for {@linkcode line}. */
export interface LineSeries {
  /** Legend name. */
  name: string;
  /** y values. */
  y: ArrayLike<number>;
  /** x values, same length as `y`. Default `0, 1, 2, ...`. */
  x?: ArrayLike<number>;
}

/** Options for {@linkcode line}. */
export interface LineOptions extends CommonPlotOptions {
  /** Logarithmic y axis. Default false. */
  logY?: boolean;
  /** Draw a marker at each point. Default false. */
  markers?: boolean;
}

/**
 * A line chart of one or more series (e.g. training loss, or a quantity per layer).
 *
 * @param series named series, or one array of y values
 * @param options axis scale, markers, titles
 * @returns the figure
 * @example
 * ```ts
 * import { line } from "./plot.ts";
 * const fig = line([{ name: "train", y: [3.1, 2.4, 2.0] }, { name: "val", y: [3.2, 2.6, 2.3] }], { logY: true });
 * console.log(fig.data.length);
 * ```
 */
export function line(series: readonly LineSeries[] | ArrayLike<number>, options: LineOptions = {}): Figure {
  const list: LineSeries[] = isSeriesList(series) ? [...series] : [{ name: "", y: series as ArrayLike<number> }];
  const data = list.map((s, k) => {
    if (!s || typeof s.y?.length !== "number") {
      throw new TypeError(`line(): series ${k} needs { name, y } with an array of numbers`);
    }
    const y = numbers(s.y, `line() series ${JSON.stringify(s.name)} y`);
    let x: number[];
    if (s.x !== undefined) {
      x = numbers(s.x, `line() series ${JSON.stringify(s.name)} x`);
      if (x.length !== y.length) {
        throw new RangeError(
          `line(): series ${
            JSON.stringify(s.name)
          } has ${x.length} x values but ${y.length} y values; give both the same length`,
        );
      }
    } else x = y.map((_, i) => i);
    const trace: PlotlyTrace = { type: "scatter", mode: options.markers ? "lines+markers" : "lines", x, y };
    if (list.length > 1 || s.name) trace.name = s.name;
    return trace;
  });
  const layout = baseLayout(options);
  layout.showlegend = list.length > 1;
  if (options.logY) layout.yaxis = { ...(layout.yaxis as PlotlyObject), type: "log" };
  return new Figure(data, layout);
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function baseLayout(o: CommonPlotOptions): PlotlyObject {
  const layout: PlotlyObject = { margin: { t: o.title ? 50 : 20, r: 20, b: 50, l: 60 } };
  if (o.title) layout.title = { text: o.title };
  if (o.width !== undefined) layout.width = positive(o.width, "width");
  layout.height = positive(o.height ?? 450, "height");
  layout.xaxis = o.xTitle ? { title: { text: o.xTitle } } : {};
  layout.yaxis = o.yTitle ? { title: { text: o.yTitle } } : {};
  return layout;
}

function positive(v: number, name: string): number {
  if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`${name} must be a positive number of pixels, got ${v}`);
  return v;
}

function isSeriesList<T extends object>(v: unknown): v is readonly T[] {
  return Array.isArray(v) && v.length > 0 && typeof v[0] === "object" && v[0] !== null;
}

/**
 * A number as it goes into JSON: NaN/±Infinity become null (plotly draws a gap);
 * values from a Float32Array get the shortest decimal that reads back as the
 * same float32, which keeps notebook outputs about half the size.
 */
function jsonNumber(v: number, float32: boolean): number {
  if (!Number.isFinite(v)) return null as unknown as number;
  if (!float32 || Number.isInteger(v)) return v;
  for (let p = 1; p < 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return s;
  }
  return Number(v.toPrecision(9));
}

function numbers(values: ArrayLike<number>, what: string): number[] {
  if (values === null || typeof values !== "object" || typeof values.length !== "number") {
    throw new TypeError(
      `${what} must be an array or typed array of numbers, got ${values === null ? "null" : typeof values}`,
    );
  }
  const f32 = values instanceof Float32Array;
  const out = new Array<number>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== "number") throw new TypeError(`${what}[${i}] must be a number, got ${typeof v}`);
    out[i] = jsonNumber(v, f32);
  }
  return out;
}

function matrixRows(
  z: Tensor | readonly (readonly number[])[] | readonly Float32Array[],
  who: string,
): number[][] {
  if (z && !Array.isArray(z) && (z as Tensor).data instanceof Float32Array) {
    const t = z as Tensor;
    if (t.dims.length !== 2) {
      throw new RangeError(`${who}: the tensor must be 2-D [rows, cols], got dims [${t.dims.join(", ")}]`);
    }
    const [r, c] = t.dims;
    if (t.data.length !== r * c) {
      throw new RangeError(`${who}: tensor data has ${t.data.length} values but dims [${r}, ${c}] need ${r * c}`);
    }
    const rows: number[][] = [];
    for (let i = 0; i < r; i++) rows.push(numbers(t.data.subarray(i * c, (i + 1) * c), `${who} row ${i}`));
    return rows;
  }
  if (!Array.isArray(z)) throw new TypeError(`${who}: needs a 2-D Tensor or an array of rows`);
  const rows = (z as readonly ArrayLike<number>[]).map((row, i) => numbers(row, `${who} row ${i}`));
  for (let i = 1; i < rows.length; i++) {
    if (rows[i].length !== rows[0].length) {
      throw new RangeError(
        `${who}: row ${i} has ${rows[i].length} values but row 0 has ${rows[0].length}; rows must be equal length`,
      );
    }
  }
  return rows;
}

function xyOf(points: Tensor | { x: ArrayLike<number>; y: ArrayLike<number> }): [number[], number[]] {
  if (points && (points as Tensor).data instanceof Float32Array && Array.isArray((points as Tensor).dims)) {
    const t = points as Tensor;
    if (t.dims.length !== 2 || t.dims[1] !== 2) {
      throw new RangeError(`scatter(): a tensor of points must be [n, 2], got dims [${t.dims.join(", ")}]`);
    }
    const n = t.dims[0];
    if (t.data.length !== n * 2) {
      throw new RangeError(`scatter(): tensor data has ${t.data.length} values but dims [${n}, 2] need ${n * 2}`);
    }
    const x = new Array<number>(n), y = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      x[i] = jsonNumber(t.data[2 * i], true);
      y[i] = jsonNumber(t.data[2 * i + 1], true);
    }
    return [x, y];
  }
  const p = points as { x: ArrayLike<number>; y: ArrayLike<number> };
  if (!p || p.x === undefined || p.y === undefined) {
    throw new TypeError("scatter(): points must be an [n, 2] Tensor or { x, y } arrays");
  }
  const x = numbers(p.x, "scatter() x"), y = numbers(p.y, "scatter() y");
  if (x.length !== y.length) {
    throw new RangeError(`scatter(): x has ${x.length} values but y has ${y.length}; give both the same length`);
  }
  return [x, y];
}

/** Category labels made distinct (plotly merges equal categories): repeats get a zero-width-space suffix. */
function uniqueLabels(labels: readonly (string | number)[]): (string | number)[] {
  const seen = new Map<string, number>();
  return labels.map((l) => {
    const key = String(l);
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    return n === 0 ? l : key + "\u200b".repeat(n);
  });
}
