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
 * Hub downloads use the kit's own `fetch`: gated and private models get an access token (`token`, default the
 * `HF_TOKEN` environment variable, sent to the hub only), mirrors an endpoint (`hubUrl`, default `HF_ENDPOINT`),
 * and a download that fails leaves nothing in the cache.
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
import { createTempBeside } from "./_fs.ts";
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

/** Environment variables read when transformers.js is imported (by `sharp` and `onnxruntime-node`). */
const TRANSFORMERS_ENV = "npm_package_config_libvips,MALLOC_ARENA_MAX,ORT_DISABLE_TELEMETRY";

/** Hosts a hub download talks to (the API, then the LFS and Xet CDNs it redirects to). */
const HUB_HOSTS = "huggingface.co,cdn-lfs.huggingface.co,cdn-lfs.hf.co,cdn-lfs-us-1.hf.co,cas-bridge.xethub.hf.co";

/** transformers.js, or a ModelLoadError naming the permissions its import needs when one is missing. */
async function loadTransformers(): Promise<Transformers> {
  try {
    return await transformers();
  } catch (e) {
    transformersPromise = undefined;
    const err = e as Error;
    if (err?.name === "NotCapable" || err?.name === "PermissionDenied" || /Requires \w+ access/.test(err?.message)) {
      throw new ModelLoadError(
        `Loading a model starts transformers.js, whose import needs permissions this run lacks ` +
          `(${(/Requires \w+ access to [^,\n]+/.exec(err.message) ?? [err.message.split("\n")[0]])[0]}). ` +
          (/Requires sys access/.test(err.message)
            ? `Its libc check reads /usr/bin/ldd: allow reading it (or --allow-sys=cpus,networkInterfaces,hostname).`
            : `Run with --allow-ffi --allow-env=${TRANSFORMERS_ENV} as well (see the README's "Permissions" table).`),
      );
    }
    throw e;
  }
}

/**
 * The network-permission error for a hub download: names the hub's own hosts for huggingface.co, the host actually
 * used for a mirror, and any other host a redirect was refused for.
 */
function needsNetwork(id: string, hub: HubEndpoint, deniedHost?: string): ModelLoadError {
  const hosts = hub.isDefault ? HUB_HOSTS.split(",") : [hub.host];
  if (deniedHost && !hosts.includes(deniedHost) && !hosts.includes(deniedHost.replace(/:443$/, ""))) {
    hosts.push(deniedHost);
  }
  return new ModelLoadError(
    `Loading ${id} from the hub (${hub.base}) needs network permission: run with --allow-net=${hosts.join(",")} ` +
      (hub.isDefault ? "" : "(and any host the mirror redirects downloads to) ") +
      `and --allow-write on the cache folder, or pass a local folder.`,
  );
}

/** Whether this run can never reach `host`: net denied, or not granted with no terminal to ask on. */
function networkRefused(host: string): boolean {
  try {
    const state = Deno.permissions.querySync({ name: "net", host }).state;
    return state === "denied" || (state === "prompt" && !Deno.stdin.isTerminal());
  } catch {
    return false;
  }
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
  /**
   * Hugging Face access token, for gated models (meta-llama/*, ...) and private repositories: sent as
   * `Authorization: Bearer <token>` on every request to the hub, and never to another host (the file
   * downloads that the hub redirects to a CDN go without it, as `fetch` drops it on cross-origin redirects).
   * Default: the `HF_TOKEN` environment variable, read only when a download is needed and only when this run
   * may read it (`--allow-env=HF_TOKEN`; otherwise no token is sent and an HTTP 401 error says why, without a
   * permission prompt). `""` sends no token even when `HF_TOKEN` is set. The token is never printed, stored, or
   * put in an error or progress event.
   *
   * @example
   * ```ts
   * import { loadModel, ModelLoadError } from "@paramscope/kit/load";
   * // A gated model: accept its licence on the hub first, then pass a read token (or set HF_TOKEN).
   * try {
   *   const m = await loadModel("meta-llama/Llama-3.2-1B", { token: "hf_example", dtype: "q4", offline: true });
   *   await m.dispose();
   * } catch (e) {
   *   console.log(e instanceof ModelLoadError); // offline and not cached: true
   * }
   * ```
   */
  token?: string;
  /**
   * The hub endpoint to download from, for mirrors: an `http(s)` URL such as `"https://hf-mirror.com"`
   * (files come from `<hubUrl>/<id>/resolve/<revision>/<file>`, as on huggingface.co). Default: the
   * `HF_ENDPOINT` environment variable (read only when a download is needed), else transformers.js
   * `env.remoteHost` (`https://huggingface.co/`). Run with `--allow-net=<the mirror's host>`. Only this
   * call uses it: transformers.js `env` is not changed.
   *
   * @example
   * ```ts
   * import { loadModel, ModelLoadError } from "@paramscope/kit/load";
   * try {
   *   const m = await loadModel("Xenova/gpt2", { hubUrl: "https://hf-mirror.com", offline: true });
   *   await m.dispose();
   * } catch (e) {
   *   console.log(e instanceof ModelLoadError); // offline and not cached: true
   * }
   * try {
   *   await loadModel("Xenova/gpt2", { hubUrl: "hf-mirror.com" });
   * } catch (e) {
   *   console.log(e instanceof RangeError); // true: the scheme is missing
   * }
   * ```
   */
  hubUrl?: string;
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
  /**
   * Makes the error.
   *
   * @param message what is missing and what to do
   */
  constructor(message: string) {
    super(message);
    this.name = "ModelLoadError";
  }
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** `owner/name` with no `..` and no part starting with a dot, so the cache path stays inside the cache. */
function isHubId(id: string): boolean {
  return HUB_ID.test(id) && !id.includes("..") && !id.split("/").some((part) => part.startsWith("."));
}

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
    // Resolved first, as Deno's permission checks do, so "a/.." means the same with or without -A.
    return Deno.statSync(resolve(path)).isDirectory;
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

/** A short description of a JSON value for an error message; never recurses (the value may be nested 10^5 deep). */
function describeJson(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return String(v);
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** Longest added-token text or tokenizer-model string accepted; real ones are short (`<|endoftext|>`, `##`). */
const MAX_ADDED_TOKEN_CHARS = 1000;

/**
 * Checks the parts of a parsed `tokenizer.json` that size what transformers.js builds from it,
 * before it builds anything: `model` is an object whose `vocab` is a token → id object
 * (BPE, WordPiece, WordLevel) or an array of `[token, score]` pairs (Unigram); every id is a
 * whole number below the vocabulary size plus a margin (an id of 2^31 would make transformers.js
 * walk a 2-billion-slot array); the model's own strings (`unk_token`, `continuing_subword_prefix`,
 * `end_of_word_suffix`, ...) and the `added_tokens` contents are at most 1000 characters.
 * Everything else is left to transformers.js, which reports its own errors.
 *
 * @param json the parsed file
 * @param label name used in messages (default `"tokenizer.json"`)
 * @throws {ModelLoadError} naming the field at fault and what it must be
 *
 * @example
 * ```ts
 * import { bundledModelPath, checkTokenizerJson } from "@paramscope/kit/load";
 * checkTokenizerJson(JSON.parse(await Deno.readTextFile(`${bundledModelPath()}/tokenizer.json`)));
 * try {
 *   checkTokenizerJson({ model: { type: "BPE", vocab: { a: 0 } }, added_tokens: [{ id: 2 ** 31, content: "<x>" }] });
 * } catch (e) {
 *   console.log((e as Error).message);
 * }
 * ```
 */
export function checkTokenizerJson(json: unknown, label = "tokenizer.json"): void {
  const fail = (what: string): never => {
    throw new ModelLoadError(`${label}: ${what}. Fix the file or download the model again.`);
  };
  if (!isObject(json)) return fail(`the file must hold a JSON object, not ${describeJson(json)}`);
  const model = json.model;
  if (!isObject(model)) {
    return fail(`"model" is ${describeJson(model)}; it must be an object describing the tokenizer model (BPE, ...)`);
  }
  for (const [key, value] of Object.entries(model)) {
    // Prefixes and suffixes are pasted onto every word: a megabyte of one makes encoding crawl.
    if (key !== "vocab" && typeof value === "string" && value.length > MAX_ADDED_TOKEN_CHARS) {
      fail(
        `model.${key} is ${
          describeJson(value)
        } (${value.length} characters); it must be at most ${MAX_ADDED_TOKEN_CHARS}`,
      );
    }
  }
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) return fail(`"added_tokens" is ${describeJson(added)}; it must be an array`);
  const vocab = model.vocab;
  const ids: [string, unknown][] = [];
  if (Array.isArray(vocab)) {
    vocab.forEach((entry, i) => {
      if (!Array.isArray(entry) || typeof entry[0] !== "string" || typeof entry[1] !== "number") {
        fail(`model.vocab[${i}] is ${describeJson(entry)}; a Unigram vocabulary holds [token, score] pairs`);
      }
    });
    if (model.unk_id !== undefined && model.unk_id !== null) ids.push(["model.unk_id", model.unk_id]);
  } else if (isObject(vocab)) {
    for (const [token, id] of Object.entries(vocab)) ids.push([`model.vocab[${describeJson(token)}]`, id]);
  } else if (vocab !== undefined) {
    return fail(`"model.vocab" is ${describeJson(vocab)}; it must map tokens to ids (or list [token, score] pairs)`);
  }
  const entries = Array.isArray(vocab) ? vocab.length : ids.length;
  added.forEach((t, i) => {
    if (!isObject(t)) return fail(`added_tokens[${i}] is ${describeJson(t)}; it must be an object { id, content }`);
    if (typeof t.content !== "string" || t.content.length === 0 || t.content.length > MAX_ADDED_TOKEN_CHARS) {
      fail(
        `added_tokens[${i}].content is ${
          describeJson(t.content)
        }; it must be text of 1 to ${MAX_ADDED_TOKEN_CHARS} characters`,
      );
    }
    ids.push([`added_tokens[${i}].id`, t.id]);
  });
  const limit = entries + added.length + 65536;
  for (const [where, id] of ids) {
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0 || id >= limit) {
      fail(
        `${where} is ${describeJson(id)}; token ids must be whole numbers from 0 to ${limit - 1} ` +
          `(the vocabulary has ${entries} entries and ${added.length} added tokens)`,
      );
    }
  }
}

/**
 * The decoder architecture described by a Hugging Face config, if it is one the
 * reference forward pass supports (GPT-2 or LLaMA family).
 *
 * @param config parsed `config.json`
 * @returns the typed architecture, or `undefined` for other model types
 * @throws {TypeError} when a GPT-2/LLaMA config lacks a needed field or gives it a non-number (named)
 * @throws {RangeError} when a size is not a whole number from 1 to 2^31 - 1, a head count does not
 *   divide its width, or an epsilon or rope theta is not positive (named)
 *
 * @example
 * ```ts
 * import { archFromConfig } from "@paramscope/kit/load";
 * const a = archFromConfig({ model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 });
 * console.log(a?.dModel); // 768
 * ```
 */
export function archFromConfig(config: Record<string, unknown>): ArchConfig | undefined {
  const rawType = config.model_type;
  if (rawType !== undefined && rawType !== null && typeof rawType !== "string") {
    throw new TypeError(
      `config.json field "model_type" is ${describeJson(rawType)}; it must be a string such as "gpt2" or "llama".`,
    );
  }
  const type = rawType ?? "";
  const num = (field: string, fallback?: number): number => {
    const v = config[field];
    if (typeof v === "number" && Number.isFinite(v)) return v;
    if (fallback !== undefined && (v === undefined || v === null)) return fallback;
    if (v !== undefined && v !== null) {
      throw new TypeError(
        `config.json (model_type "${type}") field "${field}" is ${describeJson(v)}; it must be a number.`,
      );
    }
    throw new TypeError(`config.json (model_type "${type}") is missing the number field "${field}".`);
  };
  // Sizes become array lengths downstream: whole numbers from 1 to 2^31 - 1, or a clear error now.
  const size = (field: string, fallback?: number): number => {
    const v = num(field, fallback);
    if (!Number.isSafeInteger(v) || v < 1 || v > 2 ** 31 - 1) {
      throw new RangeError(
        `config.json (model_type "${type}") field "${field}" is ${v}; it must be a whole number from 1 to 2^31 - 1.`,
      );
    }
    return v;
  };
  const positive = (field: string, fallback: number): number => {
    const v = num(field, fallback);
    if (!(v > 0)) {
      throw new RangeError(`config.json (model_type "${type}") field "${field}" is ${v}; it must be greater than 0.`);
    }
    return v;
  };
  const divides = (whole: number, wholeField: string, part: number, partField: string): void => {
    if (whole % part !== 0) {
      throw new RangeError(
        `config.json (model_type "${type}"): ${wholeField} ${whole} is not a multiple of ${partField} ${part}.`,
      );
    }
  };
  if (type === "gpt2") {
    const d = size("n_embd");
    const nHead = size("n_head");
    divides(d, "n_embd", nHead, "n_head");
    return {
      family: "gpt2",
      vocabSize: size("vocab_size"),
      maxPositions: config.n_positions === undefined ? size("n_ctx", 1024) : size("n_positions"),
      dModel: d,
      nLayer: size("n_layer"),
      nHead,
      dMlp: size("n_inner", 4 * d),
      normEps: positive("layer_norm_epsilon", 1e-5),
    };
  }
  if (["llama", "mistral", "qwen2", "smollm", "smollm2"].includes(type)) {
    const d = size("hidden_size");
    const heads = size("num_attention_heads");
    const kvHeads = size("num_key_value_heads", heads);
    divides(heads, "num_attention_heads", kvHeads, "num_key_value_heads");
    if (config.head_dim === undefined || config.head_dim === null) {
      divides(d, "hidden_size", heads, "num_attention_heads");
    }
    return {
      family: "llama",
      vocabSize: size("vocab_size"),
      maxPositions: size("max_position_embeddings", 2048),
      dModel: d,
      nLayer: size("num_hidden_layers"),
      nHead: heads,
      nKvHead: kvHeads,
      dHead: size("head_dim", d / heads),
      dMlp: size("intermediate_size"),
      normEps: positive("rms_norm_eps", 1e-6),
      ropeTheta: positive("rope_theta", 10000),
      tieWordEmbeddings: config.tie_word_embeddings === true,
    };
  }
  return undefined;
}

const CAUSAL_TYPES = new Set(["gpt2", "llama", "mistral", "qwen2", "gpt_neo", "gpt_neox", "phi", "phi3", "gemma"]);

/**
 * Loads a model.
 *
 * A hub id that is not in the cache folder yet is downloaded first, with the kit's own `fetch`, from
 * `options.hubUrl` (default `HF_ENDPOINT`, else huggingface.co), sending `options.token` (default `HF_TOKEN`)
 * to the hub only. The files are staged under temporary names and moved into place only when every one
 * has arrived whole, so a failed download leaves nothing in the cache. The folder is then loaded like a
 * local one.
 *
 * @param idOrPath a hub id (`"Xenova/gpt2"`), a local folder in the Hugging Face layout, or nothing for the bundled model
 * @param options dtype, offline, cache folder, progress callback, hub token and endpoint
 * @returns the model handle; call `dispose()` when done
 * @throws {ModelLoadError} for a missing model or file, invalid JSON, an unknown dtype, an offline cache miss, a
 *   gated or private model (HTTP 401/403, with what to do), a download that breaks off, missing network
 *   permission, or a corrupt ONNX file
 * @throws {RangeError} for a `hubUrl` (or `HF_ENDPOINT`) that is not an http(s) URL
 * @throws {TypeError} for a `token` that is not a string of visible ASCII characters
 *
 * @example
 * ```ts
 * import { loadModel } from "@paramscope/kit/load";
 * const m = await loadModel(undefined, { dtype: "fp32" });
 * console.log(m.tokenizer.encode("Hello world"));
 * await m.dispose();
 * // A gated hub model through a mirror (needs --allow-net=hf-mirror.com and a token with access):
 * // await loadModel("meta-llama/Llama-3.2-1B", { hubUrl: "https://hf-mirror.com", token: Deno.env.get("HF_TOKEN") });
 * ```
 */
export async function loadModel(idOrPath?: string, options: LoadOptions = {}): Promise<Model> {
  const dtype = options.dtype ?? "fp32";
  if (!(dtype in DTYPE_FILES)) {
    throw new ModelLoadError(`Unknown dtype "${dtype}". Use one of: ${Object.keys(DTYPE_FILES).join(", ")}.`);
  }
  // Bad options fail the same way whether or not a download turns out to be needed.
  if (options.hubUrl !== undefined) parseHubUrl(options.hubUrl, "options.hubUrl");
  if (options.token !== undefined) checkToken(options.token);
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
  } else if (isHubId(idOrPath) && !isAbsolute(idOrPath)) {
    source = "hub";
    dir = join(options.cacheDir ?? defaultCacheDir(), idOrPath);
  } else if (HUB_ID.test(idOrPath)) {
    throw new ModelLoadError(
      `"${idOrPath}" is not a valid hub id (no ".." and no part starting with a dot), and no folder by that name ` +
        `exists. Refused, so that the download cache cannot be left.`,
    );
  } else {
    throw new ModelLoadError(
      `No model folder at "${idOrPath}", and it is not a hub id of the form "owner/name". ` +
        `Pass a folder holding config.json, a hub id such as Xenova/gpt2, or nothing for the bundled model.`,
    );
  }

  if (source === "hub") {
    const missing = ["config.json", "tokenizer.json", "tokenizer_config.json", onnxFile].filter(
      (f) => !isFile(join(dir, f)),
    );
    if (missing.length > 0) {
      if (options.offline) {
        throw new ModelLoadError(
          `Model ${id} is not in the cache (${dir}) and offline mode is on: missing ${missing.join(", ")}. ` +
            `Run once with network access, or pass a local folder.`,
        );
      }
      // The endpoint and token are looked up only now that a download is needed.
      const hub = await resolveHub(id, options);
      if (networkRefused(hub.host)) throw needsNetwork(id, hub);
      await fetchHubFiles(hub, id, dir, missing, onnxFile, options);
    }
  }
  const t = await loadTransformers();
  configureEnv(t, source, options);
  const files: string[] = [];

  const configPath = join(dir, "config.json");
  const config = readJson(configPath, "config.json");
  files.push(configPath);
  let arch: ArchConfig | undefined;
  try {
    arch = archFromConfig(config);
  } catch (e) {
    throw new ModelLoadError(`Model ${id}: ${(e as Error).message}`);
  }
  const tokenizerPath = join(dir, "tokenizer.json");
  try {
    checkTokenizerJson(readJson(tokenizerPath, "tokenizer.json"), tokenizerPath);
  } catch (e) {
    throw e instanceof ModelLoadError ? new ModelLoadError(`Model ${id}: ${e.message}`) : e;
  }
  const tokenizerConfigPath = join(dir, "tokenizer_config.json");
  if (isFile(tokenizerConfigPath)) readJson(tokenizerConfigPath, "tokenizer_config.json");
  files.push(tokenizerPath, tokenizerConfigPath);
  const onnxPath = join(dir, onnxFile);
  const causal = CAUSAL_TYPES.has(String(config.model_type));
  if (!options.tokenizerOnly) {
    try {
      // A causal LM must also have the interface transformers.js feeds it, before ONNX Runtime sees it.
      await readOnnx(onnxPath, causal ? { expect: "decoder", layers: arch?.nLayer } : {});
    } catch (e) {
      if (e instanceof OnnxFormatError) {
        const hint = dtype === "fp32" ? "" : ` (dtype "${dtype}"; try dtype "fp32" if this repository lacks it)`;
        throw new ModelLoadError(`Model ${id}: ${e.message}${hint}`);
      }
      throw e;
    }
    files.push(onnxPath);
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
    const Auto = causal ? t.AutoModelForCausalLM : t.AutoModel;
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

/** A hub endpoint. */
interface HubEndpoint {
  /** The endpoint without a trailing slash, e.g. `https://huggingface.co` (a mirror's may carry a path). */
  base: string;
  /** Its origin, to tell the hub's own answers from those of a host it redirected to. */
  origin: string;
  /** `host[:port]`, as `--allow-net` takes it. */
  host: string;
  /** Whether this is huggingface.co, whose CDN hosts are known. */
  isDefault: boolean;
}

/** The hub one download talks to, and the token it gets: resolved once, when a download is needed. */
interface Hub extends HubEndpoint {
  /** The access token to send to the hub, if any. Never printed. */
  token?: string;
  /** Which token was sent, or why none was, for error messages (never the token itself). */
  tokenNote: string;
  /** Said when a connection fails and `HF_ENDPOINT` could not be read (empty otherwise). */
  endpointNote: string;
}

const HUB_URL_EXAMPLE = `an http(s) URL such as "https://hf-mirror.com"`;

/**
 * Checks a hub endpoint: an http(s) URL with no user name, password, query or fragment.
 *
 * @throws {TypeError} for a non-string
 * @throws {RangeError} naming what was given (credentials masked) and an example
 */
function parseHubUrl(value: unknown, what: string): URL {
  if (typeof value !== "string") {
    throw new TypeError(`${what} must be a string, ${HUB_URL_EXAMPLE}, not ${describeJson(value)}.`);
  }
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // Reported below with what was given.
  }
  if (url && (url.username || url.password)) {
    url.username = url.username && "***";
    url.password = url.password && "***";
    throw new RangeError(
      `${what} is "${url.href}": it must not carry a user name or password. Give the bare endpoint, ` +
        `${HUB_URL_EXAMPLE}, and pass the access token as options.token (or set HF_TOKEN).`,
    );
  }
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) {
    throw new RangeError(
      `${what} is ${describeJson(value)}; it must be ${HUB_URL_EXAMPLE}` +
        `${url ? ` (not ${url.protocol})` : " (with its scheme)"}.`,
    );
  }
  if (url.search || url.hash) {
    throw new RangeError(
      `${what} is ${describeJson(value)}; it must be the endpoint alone, with no "?query" or "#fragment": ` +
        `${HUB_URL_EXAMPLE}.`,
    );
  }
  return url;
}

/**
 * Checks an access token without ever showing it: a string of visible ASCII once surrounding white space
 * (a pasted line break) is trimmed. Returns the trimmed token (`""` for none).
 *
 * @throws {TypeError} for a non-string or a token with spaces, control or non-ASCII characters
 */
function checkToken(token: unknown, what = "options.token"): string {
  if (typeof token !== "string") {
    throw new TypeError(`${what} must be a string (a Hugging Face access token, hf_...), not a ${typeof token}.`);
  }
  const t = token.trim();
  if (t !== "" && !/^[\x21-\x7e]+$/.test(t)) {
    throw new TypeError(
      `${what} has characters no access token has (spaces, control or non-ASCII characters; ${t.length} ` +
        `characters, value not shown). Copy the token again from the hub's settings page (Access Tokens).`,
    );
  }
  return t;
}

/**
 * An environment variable, read only when this run may read it: no permission prompt, and a read that throws
 * (NotCapable, PermissionDenied) counts as unreadable.
 */
function readEnv(name: string): { value?: string; readable: boolean } {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return { readable: false };
    return { value: Deno.env.get(name), readable: true };
  } catch {
    return { readable: false };
  }
}

/** The endpoint (`options.hubUrl`, `HF_ENDPOINT`, transformers.js `env.remoteHost`) and the token to send. */
async function resolveHub(id: string, options: LoadOptions): Promise<Hub> {
  let url: URL;
  let endpointNote = "";
  if (options.hubUrl !== undefined) {
    url = parseHubUrl(options.hubUrl, "options.hubUrl");
  } else {
    const env = readEnv("HF_ENDPOINT");
    if (env.value) {
      url = parseHubUrl(env.value, "The HF_ENDPOINT environment variable");
    } else {
      if (!env.readable) {
        endpointNote = "; HF_ENDPOINT could not be read, so the default hub was used: for a mirror, pass " +
          "options.hubUrl or run with --allow-env=HF_ENDPOINT";
      }
      // Read, never written: a per-call endpoint must not change transformers.js for everyone else.
      let remoteHost: string;
      try {
        remoteHost = (await loadTransformers()).env.remoteHost;
      } catch (e) {
        // A run that can reach neither: the network is what it needs first (transformers.js' import comes after).
        if (networkRefused(DEFAULT_HUB.host)) throw needsNetwork(id, DEFAULT_HUB);
        throw e;
      }
      url = parseHubUrl(remoteHost, "transformers.js env.remoteHost");
    }
  }
  let token: string | undefined;
  let tokenNote: string;
  if (options.token !== undefined) {
    token = checkToken(options.token) || undefined;
    tokenNote = token
      ? "the token from options.token was sent and not accepted"
      : `no token was sent (options.token is "")`;
  } else {
    const env = readEnv("HF_TOKEN");
    token = env.value ? checkToken(env.value, "The HF_TOKEN environment variable") || undefined : undefined;
    tokenNote = token
      ? "the token from HF_TOKEN was sent and not accepted"
      : env.readable
      ? "no token was sent (options.token is not given and HF_TOKEN is not set)"
      : "no token was sent (options.token is not given, and this run may not read HF_TOKEN: " +
        "allow it with --allow-env=HF_TOKEN)";
  }
  return { ...hubEndpoint(url), token, tokenNote, endpointNote };
}

/** Where a hub endpoint URL points, for building file URLs and naming hosts in messages. */
function hubEndpoint(url: URL): HubEndpoint {
  return {
    base: url.origin + url.pathname.replace(/\/+$/, ""),
    origin: url.origin,
    host: url.host,
    isDefault: url.hostname === "huggingface.co",
  };
}

/** huggingface.co, transformers.js' default `env.remoteHost`. */
const DEFAULT_HUB: HubEndpoint = hubEndpoint(new URL("https://huggingface.co/"));

/** Folders among `targets` (and their parents) that do not exist yet, deepest first. */
function missingDirs(targets: string[]): string[] {
  const out = new Set<string>();
  for (let d of targets) {
    while (!isDir(d) && dirname(d) !== d) {
      out.add(d);
      d = dirname(d);
    }
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/**
 * Downloads a hub model's missing files into its cache folder (with progress) so that everything after this
 * point loads a local folder that `lib/onnx.ts` checks. External data named by the ONNX file comes along. All
 * files are staged under temporary names and moved into place (the ONNX file last) only when every one has
 * arrived whole: after any failure the cache holds nothing from this call, not even an empty folder.
 */
async function fetchHubFiles(
  hub: Hub,
  id: string,
  dir: string,
  missing: string[],
  onnxFile: string,
  options: LoadOptions,
): Promise<void> {
  const revision = options.revision ?? "main";
  const base = `${hub.base}/${id}/resolve/${encodeURIComponent(revision)}`;
  const get = (file: string) =>
    download(hub, `${base}/${file}`, join(dir, file), { id, file, revision, onProgress: options.onProgress });
  const created = missingDirs([join(dir, "onnx")]);
  const staged = new Map<string, string>();
  try {
    for (const file of missing) staged.set(file, await get(file));
    const onnxPath = staged.get(onnxFile) ?? join(dir, onnxFile);
    let model;
    try {
      model = await readOnnx(onnxPath, { validate: false });
    } catch (e) {
      if (!(e instanceof OnnxFormatError)) throw e;
      throw new ModelLoadError(
        `Model ${id}: ${onnxFile} from ${hub.base} is not a valid ONNX file (${e.message}). ` +
          `Nothing was kept in the cache; try again, or pass a local folder.`,
      );
    }
    const locations = new Set<string>();
    for (const t of model.proto.graph?.initializer ?? []) {
      for (const e of t.externalData ?? []) if (e.key === "location" && e.value) locations.add(e.value);
    }
    for (const loc of locations) {
      if (!/^[\w-][\w.-]*$/.test(loc) || loc.includes("..")) {
        throw new ModelLoadError(
          `Model ${id}: refusing external-data location "${loc}" (it must be a plain file name, without "..").`,
        );
      }
      // A freshly downloaded ONNX file gets its own external data, never an older copy's.
      const rel = `onnx/${loc}`;
      if (!staged.has(rel) && (staged.has(onnxFile) || !isFile(join(dir, rel)))) staged.set(rel, await get(rel));
    }
    // The ONNX file goes last: a run stopped in between leaves it missing, so the next run downloads again.
    const order = [...staged.keys()].sort((a, b) => Number(a === onnxFile) - Number(b === onnxFile));
    for (const file of order) {
      await Deno.rename(staged.get(file)!, join(dir, file));
      staged.delete(file);
    }
  } catch (e) {
    for (const tmp of staged.values()) await Deno.remove(tmp).catch(() => {});
    // Only folders this call made, and only when empty (non-recursive remove).
    for (const d of created) await Deno.remove(d).catch(() => {});
    throw e;
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** What {@linkcode download} needs to report on one file. */
interface DownloadContext {
  id: string;
  file: string;
  revision: string;
  onProgress?: (p: LoadProgress) => void;
}

/**
 * Streams one file to a temporary file beside `dest`, reporting progress, and returns the temporary file's
 * path (the caller moves it into place). Sends the token to the hub only: on a redirect to another origin
 * (the hub's CDN) `fetch` drops the `Authorization` header, as the Fetch standard requires. On any failure
 * the temporary file is removed.
 */
async function download(hub: Hub, url: string, dest: string, ctx: DownloadContext): Promise<string> {
  const { id, file, onProgress } = ctx;
  let res: Response;
  try {
    res = await fetch(url, { headers: hub.token ? { authorization: `Bearer ${hub.token}` } : {} });
  } catch (e) {
    const err = e as Error;
    const denied = err.name === "NotCapable" || err.name === "PermissionDenied" || /--allow-net/.test(err.message);
    if (denied) throw needsNetwork(id, hub, /Requires net access to "([^"]+)"/.exec(err.message)?.[1]);
    throw new ModelLoadError(
      `Could not reach the hub (${hub.base}) for ${id} (${err.message}${hub.endpointNote}). Check your network, ` +
        `use --offline with a cached model, or pass a local folder.`,
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw httpError(res, hub, ctx);
  }
  // A compressed body's content-length counts compressed bytes, not the bytes fetch hands over.
  const encoded = (res.headers.get("content-encoding") ?? "identity").toLowerCase() !== "identity";
  const length = Number(res.headers.get("content-length") ?? NaN);
  const total = !encoded && Number.isSafeInteger(length) && length >= 0 ? length : undefined;
  const reader = (res.body ?? new ReadableStream<Uint8Array>()).getReader();
  let tmp = "";
  let loaded = 0;
  let f: Deno.FsFile | undefined;
  try {
    try {
      await Deno.mkdir(dirname(dest), { recursive: true });
      ({ file: f, path: tmp } = await createTempBeside(dest, "download"));
    } catch (e) {
      throw new ModelLoadError(
        `Cannot write the download cache for ${id} at ${dirname(dest)} (${(e as Error).message}). Run with ` +
          `--allow-write on the cache folder, or choose another with options.cacheDir or PARAMSCOPE_CACHE.`,
      );
    }
    onProgress?.({ status: "download", file, loaded: 0, total });
    while (true) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw brokeOff(ctx, loaded, total, (e as Error).message);
      }
      if (chunk.done) break;
      for (let o = 0; o < chunk.value.byteLength;) o += await f.write(chunk.value.subarray(o));
      loaded += chunk.value.byteLength;
      onProgress?.({ status: "progress", file, loaded, total, progress: total ? (100 * loaded) / total : 0 });
    }
    if (total !== undefined && loaded !== total) throw brokeOff(ctx, loaded, total, "the connection closed early");
    f.close();
    f = undefined;
  } catch (e) {
    await reader.cancel().catch(() => {});
    f?.close();
    if (tmp) await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  onProgress?.({ status: "done", file, loaded, total: loaded });
  return tmp;
}

function brokeOff(ctx: DownloadContext, loaded: number, total: number | undefined, why: string): ModelLoadError {
  return new ModelLoadError(
    `Downloading ${ctx.file} of ${ctx.id} broke off after ${loaded}${total === undefined ? "" : ` of ${total}`} ` +
      `bytes (${why}). Nothing was kept in the cache; try again.`,
  );
}

/** The error for a non-2xx answer: what it means for this model and what to do. Never shows the token. */
function httpError(res: Response, hub: Hub, ctx: DownloadContext): ModelLoadError {
  const { id, file, revision } = ctx;
  const status = res.status;
  const page = `${hub.base}/${id}`;
  let origin = hub.origin;
  try {
    origin = new URL(res.url).origin;
  } catch {
    // No final URL: the answer came from the hub.
  }
  if ((status === 401 || status === 403) && origin !== hub.origin) {
    return new ModelLoadError(
      `Downloading ${file} of ${id}: the hub sent the download to ${new URL(res.url).host}, which refused it ` +
        `(HTTP ${status}). Try again (download links expire), or pass a local folder.`,
    );
  }
  if (status === 401 || (status === 403 && !hub.token)) {
    return new ModelLoadError(
      `Model ${id} is gated or private (HTTP ${status}): accept its licence at ${page} and pass a token ` +
        `(options.token, or set HF_TOKEN); ${hub.tokenNote}. (A misspelled id gets the same answer; ` +
        `the request was for ${file}.)`,
    );
  }
  if (status === 403) {
    return new ModelLoadError(
      `Model ${id}: your token has no access to ${id} (HTTP 403): request access at ${page} (accept the licence ` +
        `with the account that made the token; a fine-grained token also needs read access to gated repositories).`,
    );
  }
  if (status === 404) {
    return new ModelLoadError(
      `${id} has no file ${file} on the hub (HTTP 404 from ${hub.base}). Check the id (e.g. Xenova/gpt2) and the ` +
        `dtype${revision === "main" ? "" : `, and the revision "${revision}"`}.`,
    );
  }
  return new ModelLoadError(
    `Downloading ${file} of ${id} from ${hub.base} failed with HTTP ${status}. Try again later, or pass a local folder.`,
  );
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
