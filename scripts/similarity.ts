/**
 * Cosine similarity of word vectors: which words sit close together in a
 * model's embedding space. Prints the matrix (a table, or JSON) and can write
 * a heatmap plus a 2-D map (PCA, or UMAP with `--map umap`) as one self-contained HTML page.
 *
 * ```sh
 * deno run --allow-read --allow-env --allow-ffi scripts/similarity.ts --words "table,chair,astronaut,moon,king,queen"
 * deno run --allow-read --allow-env --allow-ffi scripts/similarity.ts --words "bank,river,money" --layer 2 --json
 * deno run --allow-read --allow-env --allow-ffi --allow-write=out scripts/similarity.ts --out out/similarity.html
 * deno run --allow-read --allow-env --allow-ffi --allow-write=out scripts/similarity.ts --map umap --seed 3 --out out/umap.html
 * ```
 *
 * Vectors: without `--layer`, each word's row of the input embedding matrix
 * `embed.tokens` (the mean of its rows if it takes several tokens); with
 * `--layer K`, each word is run through the model on its own and its hidden
 * states at block K are mean-pooled (`norm_f.normalized` for the last block).
 * Byte-level BPE tokenizers (GPT-2) look words up with a leading space
 * (`" table"`), as they appear inside a sentence; `--no-leading-space` turns
 * that off. The model defaults to the bundled one, loaded with `tokenizerOnly`
 * (`--allow-ffi` is needed because importing transformers.js loads a native addon).
 *
 * `--json` prints `{ words, matrix, tokens, source, leadingSpace }`: the words
 * as given, the `[n][n]` cosine matrix (6 decimals), each word's tokens, and
 * which vectors were compared. Exit codes: 0 ok; 2 bad input (fewer than two
 * words, an empty word or one the vocabulary cannot represent, a layer out of
 * range, `--map` other than pca/umap, UMAP with fewer than three words, an unknown flag) or a
 * model that cannot be loaded.
 *
 * @module
 */
import { contextualEmbeddings, cosineSimilarityMatrix, embeddingMap, tokenEmbeddings } from "../lib/embed.ts";
import { loadModel, ModelLoadError } from "../lib/load.ts";
import { OnnxFormatError } from "../lib/onnx.ts";
import { heatmap, pageHtml } from "../lib/plot.ts";
import { writeFileAtomic } from "../lib/_fs.ts";
import { fail, parseFlags } from "./_cli.ts";

const DEFAULT_WORDS = "table,chair,astronaut,moon,king,queen,man,woman,Monday,Tuesday,red,blue";

const USAGE =
  `usage: similarity.ts [--words W1,W2,...] [--model ID|PATH] [--layer K] [--no-leading-space] [--json] [--out FILE.html]
                     [--map pca|umap] [--seed S]
  --words LIST        comma-separated words, at least two (default: ${DEFAULT_WORDS})
  --model ID|PATH     a model folder or hub id (default: the bundled model)
  --layer K           compare hidden states after block K (0-based; negative counts from the end, as --layer=-1)
                      instead of the input embeddings
  --no-leading-space  look words up without the leading space byte-level BPE uses inside sentences
  --json              print { words, matrix, tokens, source, leadingSpace }
  --out FILE.html     write the heatmap and the 2-D map as one self-contained page
  --map pca|umap      the 2-D map in --out: principal components (default) or UMAP (neighbourhoods, cosine)
  --seed S            UMAP's seed, an integer (default 0): the same seed draws the same map`;

function isInputError(e: unknown): e is Error {
  return e instanceof RangeError || e instanceof TypeError || e instanceof ModelLoadError ||
    e instanceof OnnxFormatError;
}

function formatMatrix(words: string[], matrix: number[][]): string {
  const w = Math.max(...words.map((x) => x.length), 4);
  const cell = Math.max(6, ...words.map((x) => Math.min(x.length, 10) + 1));
  const head = " ".repeat(w) + words.map((x) => x.slice(0, 10).padStart(cell)).join("");
  const rows = matrix.map((row, i) => words[i].padEnd(w) + row.map((v) => v.toFixed(2).padStart(cell)).join(""));
  return [head, ...rows].join("\n");
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    words: { type: "string", default: DEFAULT_WORDS },
    model: { type: "string" },
    layer: { type: "string" },
    "no-leading-space": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    out: { type: "string" },
    map: { type: "string", default: "pca" },
    seed: { type: "string", default: "0" },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  const words = flags.words.split(",").map((w) => w.trim());
  if (words.length < 2) {
    fail(`--words needs at least two comma-separated words to compare, got ${JSON.stringify(flags.words)}`);
  }
  if (words.some((w) => w.length === 0)) {
    fail(`--words ${JSON.stringify(flags.words)} has an empty word (commas with nothing between them); remove it`);
  }
  let layer: number | undefined;
  if (flags.layer !== undefined) {
    layer = Number(flags.layer);
    if (flags.layer.trim() === "" || !Number.isInteger(layer)) fail(`--layer must be an integer, got "${flags.layer}"`);
  }
  if (flags.out !== undefined && flags.out.length === 0) fail("--out needs a file name");
  const projection = flags.map;
  if (projection !== "pca" && projection !== "umap") fail(`--map must be "pca" or "umap", got "${flags.map}"`);
  const seed = Number(flags.seed);
  if (flags.seed.trim() === "" || !Number.isInteger(seed)) fail(`--seed must be an integer, got "${flags.seed}"`);
  if (projection === "umap" && words.length < 3) fail(`--map umap needs at least three words, got ${words.length}`);
  const leadingSpace = flags["no-leading-space"] ? false : undefined;

  let model;
  try {
    model = await loadModel(flags.model, { tokenizerOnly: true });
  } catch (e) {
    fail(`cannot load ${flags.model ?? "the bundled model"}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    const stat = await tokenEmbeddings(model, words, { leadingSpace });
    let vectors = stat.vectors, source = "embed.tokens";
    if (layer !== undefined) {
      const ctx = await contextualEmbeddings(model, stat.words.map((w) => w.text), { layer, pool: "mean" });
      vectors = ctx.vectors;
      source = ctx.source;
    }
    const sim = cosineSimilarityMatrix(vectors);
    const n = words.length;
    const matrix = Array.from(
      { length: n },
      (_, i) => Array.from(sim.data.subarray(i * n, (i + 1) * n), (v) => Math.round(v * 1e6) / 1e6),
    );
    if (flags.out !== undefined) {
      const what = source === "embed.tokens" ? "input embeddings" : source;
      const figures = [
        heatmap(sim, { x: words, y: words, zmid: 0, zmin: -1, zmax: 1, title: `Cosine similarity (${what})` }),
        await embeddingMap(model, { words }, { layer, leadingSpace, projection, seed }),
      ];
      await writeFileAtomic(flags.out, pageHtml(figures, `Word similarity · ${model.id}`));
    }
    if (flags.json) {
      const tokens = stat.words.map((w) => w.tokens);
      console.log(JSON.stringify({ words, matrix, tokens, source, leadingSpace: stat.leadingSpace }, null, 2));
    } else {
      console.log(`${model.id} · cosine similarity of ${source === "embed.tokens" ? "input embeddings" : source}`);
      console.log(formatMatrix(words, matrix));
      if (flags.out !== undefined) console.log(`wrote ${flags.out}`);
    }
  } catch (e) {
    if (isInputError(e)) fail(e.message);
    throw e;
  }
}

if (import.meta.main) await main(Deno.args);
