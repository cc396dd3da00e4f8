/**
 * A mock Hugging Face hub for the download tests: `Deno.serve` on 127.0.0.1 (port chosen by the system)
 * serving model folders under `/<org>/<name>/resolve/<revision>/<file>`, the way huggingface.co does, with
 * switches for what the real hub does to a client: a token requirement (401 without one, 403 with a wrong
 * one), redirects of file downloads to a second server on another port (another origin, like the hub's
 * CDN), 404s, and a body that stops short of its content-length. Every request is logged, with its
 * `Authorization` header, so tests can count requests and see where a token went.
 *
 * Only loopback addresses are used: tests need `--allow-net=127.0.0.1` and nothing else.
 */
import { join } from "node:path";

/** Switches for {@linkcode startMockHub}. */
export interface MockHubOptions {
  /** Repository id (`org/name`) → local model folder served for it, read once at start. */
  repos: Record<string, string>;
  /** When set, the hub answers 401 to a request without `Authorization: Bearer <token>` and
   * `badTokenStatus` to one with another token. */
  token?: string;
  /** Status for a wrong token (default 403, as huggingface.co answers a valid token without access). */
  badTokenStatus?: 401 | 403;
  /** Redirect file downloads (302) to the second server, which serves the bytes (default `false`). */
  redirect?: boolean;
  /** Files (`onnx/model.onnx`) answered with 404 by the hub. */
  missing?: string[];
  /** Files whose body stops after half the bytes while content-length announces them all. */
  truncate?: string[];
}

/** One request a server saw. */
export interface MockRequest {
  /** `hub` or `cdn` (the redirect target). */
  server: "hub" | "cdn";
  /** Path of the request, e.g. `/org/name/resolve/main/config.json`. */
  path: string;
  /** The `Authorization` header, or `null`. */
  authorization: string | null;
}

/** A running mock hub. */
export interface MockHub {
  /** The hub's endpoint, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** The redirect target's origin (another port, so another origin). */
  cdnUrl: string;
  /** Every request, in order. */
  requests: MockRequest[];
  /** The bytes served for a repository's file. */
  file(repo: string, path: string): Uint8Array;
  /** Stops both servers. */
  close(): Promise<void>;
}

/**
 * Every file under `dir`, by path relative to it with `/` separators.
 *
 * @example
 * ```ts
 * import { readTree } from "./_mock_hub.ts";
 * console.log([...readTree("models/paramscope-gpt2-tiny").keys()]); // ["config.json", ..., "onnx/model.onnx"]
 * ```
 */
export function readTree(dir: string, prefix = ""): Map<string, Uint8Array<ArrayBuffer>> {
  const out = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const e of Deno.readDirSync(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) { for (const [k, v] of readTree(dir, rel)) out.set(k, v); }
    else if (e.isFile) out.set(rel, Deno.readFileSync(join(dir, rel)));
  }
  return out;
}

/** A body of `bytes`, with a content-length for all of `bytes`, that ends after half of them when `short`. */
function body(bytes: Uint8Array<ArrayBuffer>, short: boolean): Response {
  const headers = { "content-type": "application/octet-stream", "content-length": String(bytes.byteLength) };
  if (!short) return new Response(bytes, { headers });
  const half = bytes.subarray(0, Math.floor(bytes.byteLength / 2));
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(half);
      c.close();
    },
  });
  return new Response(stream, { headers });
}

/**
 * Starts the hub and its redirect target on 127.0.0.1.
 *
 * @param options repositories to serve and switches
 * @returns the endpoint, the request log and `close()`
 *
 * @example
 * ```ts
 * import { startMockHub } from "./_mock_hub.ts";
 * import { loadModel } from "../lib/load.ts";
 * const hub = startMockHub({ repos: { "org/tiny": "models/paramscope-gpt2-tiny" }, token: "hf_x", redirect: true });
 * const m = await loadModel("org/tiny", { hubUrl: hub.url, token: "hf_x", cacheDir: await Deno.makeTempDir() });
 * console.log(hub.requests.filter((r) => r.server === "cdn").every((r) => r.authorization === null)); // true
 * await m.dispose();
 * await hub.close();
 * ```
 */
export function startMockHub(options: MockHubOptions): MockHub {
  const repos = new Map(Object.entries(options.repos).map(([id, dir]) => [id, readTree(dir)]));
  const requests: MockRequest[] = [];
  const lookup = (repo: string, file: string) => repos.get(repo)?.get(file);
  const listen = { hostname: "127.0.0.1", port: 0, onListen() {} };

  // The redirect target: serves /blobs/<org>/<name>/<file> without any authentication, like a signed CDN URL.
  const cdn = Deno.serve(listen, (req) => {
    const path = new URL(req.url).pathname;
    requests.push({ server: "cdn", path, authorization: req.headers.get("authorization") });
    const m = /^\/blobs\/([^/]+\/[^/]+)\/(.+)$/.exec(path);
    const bytes = m && lookup(m[1], m[2]);
    if (!m || !bytes) return new Response("Entry not found", { status: 404 });
    return body(bytes, options.truncate?.includes(m[2]) ?? false);
  });
  const cdnUrl = `http://127.0.0.1:${cdn.addr.port}`;

  const hub = Deno.serve(listen, (req) => {
    const path = new URL(req.url).pathname;
    const authorization = req.headers.get("authorization");
    requests.push({ server: "hub", path, authorization });
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (!m || !repos.has(m[1])) return new Response("Repository not found", { status: 404 });
    const [, repo, , file] = m;
    if (options.token !== undefined) {
      if (authorization === null) return new Response("Access to this model is restricted", { status: 401 });
      if (authorization !== `Bearer ${options.token}`) {
        return new Response("Not authorized for this model", { status: options.badTokenStatus ?? 403 });
      }
    }
    const bytes = lookup(repo, file);
    if (!bytes || options.missing?.includes(file)) return new Response("Entry not found", { status: 404 });
    if (options.redirect) {
      return new Response(null, { status: 302, headers: { location: `${cdnUrl}/blobs/${repo}/${file}?sig=x` } });
    }
    return body(bytes, options.truncate?.includes(file) ?? false);
  });

  return {
    url: `http://127.0.0.1:${hub.addr.port}`,
    cdnUrl,
    requests,
    file(repo: string, path: string): Uint8Array {
      const bytes = lookup(repo, path);
      if (!bytes) throw new Error(`the mock hub serves no ${path} for ${repo}`);
      return bytes;
    },
    async close() {
      await Promise.all([hub.shutdown(), cdn.shutdown()]);
    },
  };
}
