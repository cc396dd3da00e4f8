/**
 * Loads a model through transformers.js: the bundled model, a local folder in
 * the Hugging Face layout, or a hub id such as `Xenova/gpt2`. This is the one
 * module that touches transformers.js `env`; everything else in the kit sees
 * the typed {@linkcode Model} handle.
 *
 * Before ONNX Runtime sees a model file, the loader checks it with
 * `lib/onnx.ts` (well-formed protobuf, tensor sizes, external-data paths), so a
 * corrupt download gives a clear error instead of a native crash.
 *
 * @example
 * ```ts
 * import { loadModel } from "@paramscope/kit/load";
 * const m = await loadModel(); // the bundled model, offline
 * console.log(m.config.model_type, m.files);
 * await m.dispose();
 * ```
 *
 * @module
 */
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "./_fs.ts";
import { OnnxFormatError, readOnnx } from "./onnx.ts";
import type { ArchConfig } from "./types.ts";

// transformers.js is imported lazily so that modules which only need a type
// (or a script's --help) do not pay for loading ONNX Runtime.
type Transformers = typeof import("@huggingface/transformers");
let transformersPromise: Promise<Transformers> | undefined;
function transformers(): Promise<Transformers> {
  transformersPromise ??= import("@huggingface/transformers");
  return transformersPromise;
}

/** Weight formats a hub repository may carry, with the file each one loads. */
export const DTYPE_FILES: Readonly<Record<string, string>> = Object.freeze({
  fp32: "model.onnx",
  fp16: "model_fp16.onnx",
  q8: "model_quantized.onnx",
  int8: "model_int8.onnx",
  uint8: "model_uint8.onnx",
  q4: "model_q4.onnx",
  q4f16: "model_q4f16.onnx",
  bnb4: "model_bnb4.onnx",
});

/** One of the keys of {@linkcode DTYPE_FILES}. */
export type Dtype = "fp32" | "fp16" | "q8" | "int8" | "uint8" | "q4" | "q4f16" | "bnb4";

/** Name of the model that ships with the kit. */
export const BUNDLED_MODEL_NAME = "paramscope-gpt2-tiny";

/**
 * Absolute path of the bundled model folder.
 *
 * @returns the folder holding `config.json`, `tokenizer.json` and `onnx/model.onnx`
 *
 * @example
 * ```ts
 * import { bundledModelPath } from "@paramscope/kit/load";
 * console.log(bundledModelPath().endsWith("paramscope-gpt2-tiny"));
 * ```
 */
export function bundledModelPath(): string {
  return fileURLToPath(new URL(`../models/${BUNDLED_MODEL_NAME}`, import.meta.url));
}

/** Progress of one file while a model loads (as transformers.js reports it). */
export interface LoadProgress {
  /** `initiate`, `download`, `progress`, `done` or `ready`. */
  status: string;
  /** File within the repository, e.g. `onnx/model.onnx`. */
  file?: string;
  /** Percentage 0–100, while downloading. */
  progress?: number;
  /** Bytes so far. */
  loaded?: number;
  /** Bytes in all. */
  total?: number;
}

/** Options for {@linkcode loadModel}. */
export interface LoadOptions {
  /** Weight format (default `"fp32"`); picks `onnx/model.onnx`, `onnx/model_fp16.onnx`, `model_quantized.onnx` (q8), `model_q4.onnx`, … */
  dtype?: Dtype;
  /** Never contact the hub; use only local folders and the cache (default `false`). */
  offline?: boolean;
  /** Where hub downloads are cached (default `$PARAMSCOPE_CACHE`, else `~/.cache/paramscope`). */
  cacheDir?: string;
  /** Called as files load or download. Scripts pass {@linkcode progressBar}. */
  onProgress?: (p: LoadProgress) => void;
  /** Hub revision (default `"main"`). */
  revision?: string;
  /** Skip loading the ONNX Runtime session (config, tokenizer and file paths only; default `false`). */
  tokenizerOnly?: boolean;
}

/** Where a model came from. */
export type ModelSource = "bundled" | "local" | "hub";

/**
 * A loaded model: config, tokenizer, transformers.js model, and the files read.
 */
export interface Model {
  /** The id or path asked for (the bundled model's name when none was). */
  id: string;
  /** Bundled, local folder, or hub download. */
  source: ModelSource;
  /** Folder holding the files (the cache folder for hub models). */
  dir: string;
  /** `config.json` as parsed. */
  config: Record<string, unknown>;
  /** The decoder architecture, when the config is a GPT-2 or LLaMA-family model. */
  arch?: ArchConfig;
  /** Weight format loaded. */
  dtype: Dtype;
  /** transformers.js tokenizer. */
  tokenizer: import("@huggingface/transformers").PreTrainedTokenizer;
  /** transformers.js model (`null` with `tokenizerOnly`). */
  model: import("@huggingface/transformers").PreTrainedModel | null;
  /** The ONNX file holding the weights that run. */
  onnxPath: string;
  /** Every file read, as absolute paths. */
  files: string[];
  /** Releases the ONNX Runtime session. */
  dispose(): Promise<void>;
}

/**
 * Error for a model that cannot be found or loaded. The message says what is
 * missing and what to do.
 *
 * @example
 * ```ts
 * import { loadModel, ModelLoadError } from "@paramscope/kit/load";
 * try { await loadModel("./no-such-folder"); } catch (e) { console.log(e instanceof ModelLoadError); }
 * ```
 */
export class ModelLoadError extends Error {
  /** @param message what is missing and what to do */
  constructor(message: string) {
    super(message);
    this.name = "ModelLoadError";
  }
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

function defaultCacheDir(): string {
  try {
    const explicit = Deno.env.get("PARAMSCOPE_CACHE");
    if (explicit) return explicit;
    const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
    if (home) return join(home, ".cache", "paramscope");
  } catch {
    // No env permission: fall back to a folder beside the working directory.
  }
  return resolve(".paramscope-cache");
}

function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

function readJson(path: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ModelLoadError(`${what} is missing: ${path}. A model folder needs it (Hugging Face layout).`);
    }
    throw new ModelLoadError(`Cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new SyntaxError("not a JSON object");
    return v as Record<string, unknown>;
  } catch (e) {
    throw new ModelLoadError(
      `${what} ${path} is not valid JSON (${(e as Error).message}). Fix the file or download the model again.`,
    );
  }
}

/**
 * The decoder architecture described by a Hugging Face config, if it is one the
 * reference forward pass supports (GPT-2 or LLaMA family).
 *
 * @param config parsed `config.json`
 * @returns the typed architecture, or `undefined` for other model types
 * @throws {TypeError} when a GPT-2/LLaMA config lacks a needed field (named)
 *
 * @example
 * ```ts
 * import { archFromConfig } from "@paramscope/kit/load";
 * const a = archFromConfig({ model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 });
 * console.log(a?.dModel); // 768
 * ```
 */
export function archFromConfig(config: Record<string, unknown>): ArchConfig | undefined {
  const type = String(config.model_type ?? "");
  const num = (field: string, fallback?: number): number => {
    const v = config[field];
    if (typeof v === "number" && Number.isFinite(v)) return v;
    if (fallback !== undefined) return fallback;
    throw new TypeError(`config.json (model_type "${type}") is missing the number field "${field}".`);
  };
  if (type === "gpt2") {
    const d = num("n_embd");
    const inner = config.n_inner;
    return {
      family: "gpt2",
      vocabSize: num("vocab_size"),
      maxPositions: num("n_positions", num("n_ctx", 1024)),
      dModel: d,
      nLayer: num("n_layer"),
      nHead: num("n_head"),
      dMlp: typeof inner === "number" ? inner : 4 * d,
      normEps: num("layer_norm_epsilon", 1e-5),
    };
  }
  if (["llama", "mistral", "qwen2", "smollm", "smollm2"].includes(type)) {
    const d = num("hidden_size");
    const heads = num("num_attention_heads");
    return {
      family: "llama",
      vocabSize: num("vocab_size"),
      maxPositions: num("max_position_embeddings", 2048),
      dModel: d,
      nLayer: num("num_hidden_layers"),
      nHead: heads,
      nKvHead: num("num_key_value_heads", heads),
      dHead: num("head_dim", d / heads),
      dMlp: num("intermediate_size"),
      normEps: num("rms_norm_eps", 1e-6),
      ropeTheta: num("rope_theta", 10000),
      tieWordEmbeddings: config.tie_word_embeddings === true,
    };
  }
  return undefined;
}

const CAUSAL_TYPES = new Set(["gpt2", "llama", "mistral", "qwen2", "gpt_neo", "gpt_neox", "phi", "phi3", "gemma"]);

/**
 * Loads a model.
 *
 * @param idOrPath a hub id (`"Xenova/gpt2"`), a local folder in the Hugging Face layout, or nothing for the bundled model
 * @param options dtype, offline, cache folder, progress callback
 * @returns the model handle; call `dispose()` when done
 * @throws {ModelLoadError} for a missing model or file, invalid JSON, an unknown dtype, an offline cache miss, or a corrupt ONNX file
 *
 * @example
 * ```ts
 * import { loadModel } from "@paramscope/kit/load";
 * const m = await loadModel(undefined, { dtype: "fp32" });
 * console.log(m.tokenizer.encode("Hello world"));
 * await m.dispose();
 * ```
 */
export async function loadModel(idOrPath?: string, options: LoadOptions = {}): Promise<Model> {
  const dtype = options.dtype ?? "fp32";
  if (!(dtype in DTYPE_FILES)) {
    throw new ModelLoadError(`Unknown dtype "${dtype}". Use one of: ${Object.keys(DTYPE_FILES).join(", ")}.`);
  }
  const onnxFile = `onnx/${DTYPE_FILES[dtype]}`;
  let source: ModelSource;
  let dir: string;
  const id = idOrPath ?? BUNDLED_MODEL_NAME;
  if (idOrPath === undefined || idOrPath === "" || idOrPath === BUNDLED_MODEL_NAME) {
    source = "bundled";
    dir = bundledModelPath();
    if (!isDir(dir)) {
      throw new ModelLoadError(`The bundled model is missing at ${dir}. Run \`deno task make-model\` to create it.`);
    }
  } else if (isDir(idOrPath)) {
    source = "local";
    dir = resolve(idOrPath);
  } else if (HUB_ID.test(idOrPath) && !idOrPath.startsWith(".") && !isAbsolute(idOrPath)) {
    source = "hub";
    dir = join(options.cacheDir ?? defaultCacheDir(), idOrPath);
  } else {
    throw new ModelLoadError(
      `No model folder at "${idOrPath}", and it is not a hub id of the form "owner/name". ` +
        `Pass a folder holding config.json, a hub id such as Xenova/gpt2, or nothing for the bundled model.`,
    );
  }

  const t = await transformers();
  configureEnv(t, source, options);
  const files: string[] = [];

  if (source === "hub") {
    await fetchHubFiles(t, id, dir, onnxFile, options);
  }
  const configPath = join(dir, "config.json");
  const config = readJson(configPath, "config.json");
  files.push(configPath);
  for (const name of ["tokenizer.json", "tokenizer_config.json"]) {
    const p = join(dir, name);
    if (name === "tokenizer.json") readJson(p, name);
    files.push(p);
  }
  const onnxPath = join(dir, onnxFile);
  if (!options.tokenizerOnly) {
    try {
      await readOnnx(onnxPath);
    } catch (e) {
      if (e instanceof OnnxFormatError) {
        const hint = dtype === "fp32" ? "" : ` (dtype "${dtype}"; try dtype "fp32" if this repository lacks it)`;
        throw new ModelLoadError(`Model ${id}: ${e.message}${hint}`);
      }
      throw e;
    }
    files.push(onnxPath);
  }
  let arch: ArchConfig | undefined;
  try {
    arch = archFromConfig(config);
  } catch (e) {
    throw new ModelLoadError(`Model ${id}: ${(e as Error).message}`);
  }

  const loadId = dir;
  let tokenizer: Model["tokenizer"];
  try {
    tokenizer = await t.AutoTokenizer.from_pretrained(loadId, { local_files_only: true });
  } catch (e) {
    throw new ModelLoadError(`Model ${id}: the tokenizer in ${dir} could not be loaded: ${(e as Error).message}`);
  }
  let model: Model["model"] = null;
  if (!options.tokenizerOnly) {
    const Auto = CAUSAL_TYPES.has(String(config.model_type)) ? t.AutoModelForCausalLM : t.AutoModel;
    try {
      model = await Auto.from_pretrained(loadId, {
        dtype,
        local_files_only: true,
      });
    } catch (e) {
      throw new ModelLoadError(
        `Model ${id}: ONNX Runtime could not load ${onnxPath}: ${(e as Error).message}. ` +
          `The file may be corrupt or use operators this runtime lacks; re-export or download it again.`,
      );
    }
  }
  const m = model;
  return {
    id,
    source,
    dir,
    config,
    arch,
    dtype,
    tokenizer,
    model: m,
    onnxPath,
    files,
    async dispose() {
      await m?.dispose();
    },
  };
}

/** Sets transformers.js `env` for one load: local folders always, the hub only when allowed. */
function configureEnv(t: Transformers, source: ModelSource, options: LoadOptions): void {
  const env = t.env;
  env.allowLocalModels = true;
  env.allowRemoteModels = source === "hub" && !options.offline;
  env.useFSCache = true;
  env.cacheDir = options.cacheDir ?? defaultCacheDir();
  // Quiet ONNX Runtime's per-session warnings (3 = errors only).
  const onnxEnv = env.backends.onnx as { logLevel?: string } | undefined;
  if (onnxEnv) onnxEnv.logLevel = "error";
}

/**
 * Makes sure a hub model's files are in the cache folder, downloading them
 * when allowed (with progress), so that everything after this point loads a
 * local folder that `lib/onnx.ts` has checked. Files already cached are used
 * offline.
 */
async function fetchHubFiles(
  t: Transformers,
  id: string,
  dir: string,
  onnxFile: string,
  options: LoadOptions,
): Promise<void> {
  const needed = ["config.json", "tokenizer.json", "tokenizer_config.json", onnxFile];
  const missing = needed.filter((f) => !isFile(join(dir, f)));
  if (missing.length === 0) return;
  if (options.offline) {
    throw new ModelLoadError(
      `Model ${id} is not in the cache (${dir}) and offline mode is on: missing ${missing.join(", ")}. ` +
        `Run once with network access, or pass a local folder.`,
    );
  }
  const base = `${t.env.remoteHost.replace(/\/$/, "")}/${id}/resolve/${encodeURIComponent(options.revision ?? "main")}`;
  for (const file of missing) {
    await download(`${base}/${file}`, join(dir, file), id, file, options.onProgress);
  }
  // External data named by the ONNX file (e.g. model.onnx_data) comes along.
  const model = await readOnnx(join(dir, onnxFile), { validate: false });
  const locations = new Set<string>();
  for (const t of model.proto.graph?.initializer ?? []) {
    for (const e of t.externalData ?? []) if (e.key === "location" && e.value) locations.add(e.value);
  }
  for (const loc of locations) {
    const rel = `onnx/${loc}`;
    if (!/^[\w.-]+$/.test(loc)) {
      throw new ModelLoadError(`Model ${id}: refusing external-data location "${loc}" (it must be a plain file name).`);
    }
    if (!isFile(join(dir, rel))) await download(`${base}/${rel}`, join(dir, rel), id, rel, options.onProgress);
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Downloads one file to `dest` (atomically), reporting progress. */
async function download(
  url: string,
  dest: string,
  id: string,
  file: string,
  onProgress?: (p: LoadProgress) => void,
): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    const err = e as Error;
    const denied = err.name === "NotCapable" || err.name === "PermissionDenied" || /--allow-net/.test(err.message);
    throw new ModelLoadError(
      denied
        ? `Loading ${id} from the hub needs network permission: run with ` +
          `--allow-net=huggingface.co,cdn-lfs.huggingface.co,cas-bridge.xethub.hf.co, or pass a local folder.`
        : `Could not reach the hub for ${id} (${err.message}). Check your network, use --offline with a cached ` +
          `model, or pass a local folder.`,
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new ModelLoadError(
      res.status === 404
        ? `${id} has no file ${file} on the hub (HTTP 404). Check the id (e.g. Xenova/gpt2) and the dtype.`
        : `Downloading ${file} of ${id} failed with HTTP ${res.status}. Try again later, or pass a local folder.`,
    );
  }
  const total = Number(res.headers.get("content-length") ?? 0);
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  onProgress?.({ status: "download", file, loaded: 0, total });
  for await (const chunk of res.body ?? new ReadableStream<Uint8Array>()) {
    chunks.push(chunk);
    loaded += chunk.byteLength;
    onProgress?.({ status: "progress", file, loaded, total, progress: total ? (100 * loaded) / total : 0 });
  }
  const bytes = new Uint8Array(loaded);
  let o = 0;
  for (const c of chunks) {
    bytes.set(c, o);
    o += c.byteLength;
  }
  await Deno.mkdir(dirname(dest), { recursive: true });
  await writeFileAtomic(dest, bytes);
  onProgress?.({ status: "done", file, loaded, total });
}

/**
 * A terminal progress bar for {@linkcode LoadOptions.onProgress}: one line per
 * file, redrawn in place, written to stderr.
 *
 * @param write where to write (default: stderr)
 * @returns a callback for `onProgress`
 *
 * @example
 * ```ts
 * import { loadModel, progressBar } from "@paramscope/kit/load";
 * const m = await loadModel(undefined, { onProgress: progressBar() });
 * await m.dispose();
 * ```
 */
export function progressBar(
  write: (s: string) => void = (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)),
): (p: LoadProgress) => void {
  return (p: LoadProgress): void => {
    if (p.status === "progress" && p.file) {
      const pct = Math.max(0, Math.min(100, p.progress ?? 0));
      const width = 30;
      const filled = Math.round((pct / 100) * width);
      const mb = (n?: number) => ((n ?? 0) / 1e6).toFixed(1);
      write(
        `\r${basename(p.file).padEnd(24)} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${
          pct.toFixed(0).padStart(3)
        }% ${mb(p.loaded)}/${mb(p.total)} MB`,
      );
    } else if (p.status === "done" && p.file) {
      write(`\r${basename(p.file).padEnd(24)} done${" ".repeat(50)}\n`);
    }
  };
}
