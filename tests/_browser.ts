/**
 * Drives the system's headless Chromium over the DevTools protocol (Deno's own
 * WebSocket, no npm-downloaded browser) to check that a page really draws.
 *
 * The browser runs offline: every host name resolves to nothing
 * (`--host-resolver-rules`), so a page that draws here draws without a network.
 *
 * @module
 */

/** Where Debian installs Chromium. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/**
 * Whether {@linkcode CHROMIUM_PATH} exists (browser tests are ignored otherwise).
 *
 * @returns true when Chromium is installed
 */
export function hasChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM_PATH).isFile;
  } catch {
    return false;
  }
}

/** Options for {@linkcode renderPage}. */
export interface RenderPageOptions {
  /** Write a PNG screenshot of the viewport here (folders are created). Default: no screenshot. */
  screenshot?: string;
  /**
   * JavaScript expression polled in the page until it is truthy (e.g.
   * `document.querySelectorAll(".main-svg").length >= 2`). Default: wait for the load event only.
   */
  waitFor?: string;
  /** Give up (and throw) after this many milliseconds overall. Default 30000. */
  timeoutMs?: number;
  /** Viewport width in CSS pixels. Default 1000. */
  width?: number;
  /** Viewport height in CSS pixels. Default 800. */
  height?: number;
  /** Extra time after `waitFor` holds, for animations to settle before the screenshot. Default 300 ms. */
  settleMs?: number;
  /**
   * JavaScript expression evaluated in the page after it settled; its JSON value is returned as
   * `value` (e.g. `document.querySelectorAll(".scatterlayer .point").length`). Default: none.
   */
  evaluate?: string;
}

/** Result of {@linkcode renderPage}. */
export interface RenderPageResult {
  /** `document.documentElement.outerHTML` after the page ran its scripts. */
  dom: string;
  /** Uncaught exceptions and `console.error` messages seen while rendering. */
  errors: string[];
  /** Whether the `waitFor` expression became truthy before the timeout (true when none was given). */
  ready: boolean;
  /** The JSON value of the `evaluate` expression (undefined when none was given). */
  value: unknown;
}

/**
 * Opens a local HTML file in headless Chromium (offline), runs its scripts,
 * optionally waits for a condition, saves a screenshot and returns the DOM.
 *
 * @param htmlPath path of the page (relative to the working directory or absolute)
 * @param options screenshot path, wait condition, expression to evaluate, timeout, viewport
 * @returns the rendered DOM, errors seen, whether `waitFor` held, and the evaluated value
 * @example
 * ```ts ignore
 * const { dom } = await renderPage("out/fig.html", {
 *   waitFor: "document.querySelector('.main-svg')",
 *   screenshot: "tests/artifacts/fig.png",
 * });
 * ```
 */
export async function renderPage(htmlPath: string, options: RenderPageOptions = {}): Promise<RenderPageResult> {
  const timeoutMs = options.timeoutMs ?? 90_000;
  const deadline = Date.now() + timeoutMs;
  const abs = await Deno.realPath(htmlPath);
  const url = new URL(`file://${abs}`).href;
  const profile = await Deno.makeTempDir({ prefix: "paramscope-chromium-" });
  const child = new Deno.Command(CHROMIUM_PATH, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-extensions",
      "--host-resolver-rules=MAP * ~NOTFOUND",
      "--allow-file-access-from-files",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "about:blank",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let ws: WebSocket | undefined;
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutMs + 5_000);
  try {
    const endpoint = await devtoolsEndpoint(child.stderr, deadline);
    ws = new WebSocket(endpoint);
    const cdp = new Cdp(ws, deadline);
    await cdp.opened;
    const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" }) as { targetId: string };
    const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true }) as {
      sessionId: string;
    };
    const errors: string[] = [];
    cdp.on("Runtime.exceptionThrown", sessionId, (p) => {
      const d = (p as { exceptionDetails: { text: string; exception?: { description?: string } } }).exceptionDetails;
      errors.push(d.exception?.description ?? d.text);
    });
    cdp.on("Runtime.consoleAPICalled", sessionId, (p) => {
      const e = p as { type: string; args: { value?: unknown; description?: string }[] };
      if (e.type === "error") errors.push(e.args.map((a) => a.value ?? a.description).join(" "));
    });
    await cdp.send("Runtime.enable", {}, sessionId);
    await cdp.send("Page.enable", {}, sessionId);
    await cdp.send("Emulation.setDeviceMetricsOverride", {
      width: options.width ?? 1000,
      height: options.height ?? 800,
      deviceScaleFactor: 1,
      mobile: false,
    }, sessionId);
    const loaded = cdp.once("Page.loadEventFired", sessionId);
    await cdp.send("Page.navigate", { url }, sessionId);
    await loaded;
    let ready = true;
    if (options.waitFor) {
      ready = false;
      while (Date.now() < deadline) {
        const r = await cdp.send("Runtime.evaluate", {
          expression: `Boolean(${options.waitFor})`,
          returnByValue: true,
        }, sessionId) as { result: { value?: unknown } };
        if (r.result.value === true) {
          ready = true;
          break;
        }
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    await new Promise((res) => setTimeout(res, options.settleMs ?? 300));
    if (options.screenshot) {
      const shot = await cdp.send("Page.captureScreenshot", { format: "png" }, sessionId) as { data: string };
      const dir = options.screenshot.replace(/[/\\][^/\\]*$/, "");
      if (dir && dir !== options.screenshot) await Deno.mkdir(dir, { recursive: true });
      await Deno.writeFile(options.screenshot, decodeBase64(shot.data));
    }
    let value: unknown;
    if (options.evaluate) {
      const r = await cdp.send("Runtime.evaluate", {
        expression: options.evaluate,
        returnByValue: true,
      }, sessionId) as { result: { value?: unknown }; exceptionDetails?: { text: string } };
      if (r.exceptionDetails) throw new Error(`renderPage(): evaluate threw: ${r.exceptionDetails.text}`);
      value = r.result.value;
    }
    const html = await cdp.send("Runtime.evaluate", {
      expression: "document.documentElement.outerHTML",
      returnByValue: true,
    }, sessionId) as { result: { value: string } };
    await cdp.send("Browser.close", {}).catch(() => {});
    return { dom: html.result.value, errors, ready, value };
  } finally {
    clearTimeout(timer);
    try {
      ws?.close();
    } catch { /* already closed */ }
    const exited = await Promise.race([
      child.status.then(() => true),
      new Promise<boolean>((res) => setTimeout(() => res(false), 3_000)),
    ]);
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
    }
    await child.stderr.cancel().catch(() => {});
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

/** Reads Chromium's stderr until it prints its DevTools WebSocket address. */
async function devtoolsEndpoint(stderr: ReadableStream<Uint8Array>, deadline: number): Promise<string> {
  const reader = stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (Date.now() < deadline) {
      const timeout = new Promise<{ done: true; value: undefined }>((res) =>
        setTimeout(() => res({ done: true, value: undefined }), Math.max(0, deadline - Date.now()))
      );
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) break;
      text += value;
      const m = text.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) {
        // Keep draining stderr in the background so Chromium never blocks on a full pipe.
        (async () => {
          try {
            while (!(await reader.read()).done) { /* discard */ }
          } catch { /* closed */ }
        })();
        return m[1];
      }
    }
  } catch (e) {
    throw new Error(`Chromium did not start: ${e instanceof Error ? e.message : e}\n${text}`);
  }
  reader.releaseLock();
  throw new Error(`Chromium did not print a DevTools address in time:\n${text.slice(-2000)}`);
}

type Listener = (params: unknown) => void;

/** A minimal DevTools protocol client over one WebSocket (flat sessions). */
class Cdp {
  readonly opened: Promise<void>;
  #ws: WebSocket;
  #deadline: number;
  #next = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #listeners: { method: string; sessionId: string | undefined; fn: Listener }[] = [];

  constructor(ws: WebSocket, deadline: number) {
    this.#ws = ws;
    this.#deadline = deadline;
    this.opened = new Promise((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = (e) => reject(new Error(`DevTools WebSocket error: ${(e as ErrorEvent).message ?? e}`));
    });
    ws.onmessage = (ev) => {
      const msg = JSON.parse(String(ev.data));
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        if (!p) return;
        this.#pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`DevTools error: ${JSON.stringify(msg.error)}`));
        else p.resolve(msg.result);
      } else {
        for (const l of this.#listeners) {
          if (l.method === msg.method && l.sessionId === msg.sessionId) l.fn(msg.params);
        }
      }
    };
    ws.onclose = () => {
      for (const p of this.#pending.values()) p.reject(new Error("DevTools connection closed"));
      this.#pending.clear();
    };
  }

  send(method: string, params: Record<string, unknown>, sessionId?: string): Promise<unknown> {
    const id = this.#next++;
    const left = this.#deadline - Date.now();
    return new Promise((resolve, reject) => {
      if (left <= 0) return reject(new Error(`renderPage() timed out before ${method}`));
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`renderPage() timed out waiting for ${method}`));
      }, left);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.#ws.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
    });
  }

  on(method: string, sessionId: string | undefined, fn: Listener): void {
    this.#listeners.push({ method, sessionId, fn });
  }

  once(method: string, sessionId: string | undefined): Promise<unknown> {
    const left = this.#deadline - Date.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`renderPage() timed out waiting for ${method}`)), left);
      const entry = {
        method,
        sessionId,
        fn: (p: unknown) => {
          clearTimeout(timer);
          this.#listeners.splice(this.#listeners.indexOf(entry), 1);
          resolve(p);
        },
      };
      this.#listeners.push(entry);
    });
  }
}

function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
