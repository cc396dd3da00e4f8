import { assert, assertEquals, assertFalse, assertGreater, assertRejects, assertStringIncludes } from "@std/assert";
import { join } from "node:path";
import {
  archFromConfig,
  bundledModelPath,
  loadModel,
  type LoadOptions,
  type LoadProgress,
  type Model,
  ModelLoadError,
} from "../lib/load.ts";
import { TINY_GPT2, TINY_LLAMA, tinyModelDir } from "./_fixtures.ts";
import { type MockHub, type MockHubOptions, startMockHub } from "./_mock_hub.ts";

Deno.test("loadModel() loads the bundled model offline and generate() returns tokens", async () => {
  const m = await loadModel(undefined, { offline: true });
  try {
    assertEquals(m.source, "bundled");
    assertEquals(m.config.model_type, "gpt2");
    assertEquals(m.arch?.family, "gpt2");
    assert(m.files.some((f) => f.endsWith(join("onnx", "model.onnx"))));
    const inputs = m.tokenizer("The king and the queen");
    const out = await m.model!.generate({ ...inputs, max_new_tokens: 5, do_sample: false });
    const ids = (out as { tolist(): bigint[][] }).tolist()[0];
    assertEquals(ids.length, (inputs.input_ids.dims as number[])[1] + 5);
  } finally {
    await m.dispose();
  }
});

Deno.test("the bundled tokenizer round-trips English, Chinese, emoji and code", async () => {
  const m = await loadModel(undefined, { tokenizerOnly: true });
  for (
    const text of ["The table and the chair.", "参数是模型的核心", "emoji 🚀 ok", "const x = f(a, b);\n\treturn x;"]
  ) {
    const ids = m.tokenizer.encode(text);
    assertEquals(m.tokenizer.decode(ids), text);
  }
});

Deno.test("loadModel() loads a local LLaMA-family folder exported by the kit", async () => {
  const { dir } = await tinyModelDir(TINY_LLAMA);
  const m = await loadModel(dir);
  try {
    assertEquals(m.source, "local");
    assertEquals(m.arch?.family, "llama");
    const out = await m.model!(m.tokenizer("hi there"));
    assertEquals(out.logits.dims, [1, 8, TINY_LLAMA.vocabSize]);
  } finally {
    await m.dispose();
  }
});

Deno.test("loadModel() names a path that does not exist", async () => {
  const e = await assertRejects(() => loadModel("./no/such/model-folder"), ModelLoadError);
  assertStringIncludes(e.message, "./no/such/model-folder");
});

Deno.test("loadModel() names the missing config.json of a folder", async () => {
  const dir = await Deno.makeTempDir();
  const e = await assertRejects(() => loadModel(dir), ModelLoadError);
  assertStringIncludes(e.message, "config.json is missing");
});

Deno.test("loadModel() reports invalid JSON in config.json", async () => {
  const { dir } = await tinyModelDir();
  await Deno.writeTextFile(join(dir, "config.json"), '{"model_type": "gpt2", ');
  const e = await assertRejects(() => loadModel(dir), ModelLoadError);
  assertStringIncludes(e.message, "not valid JSON");
});

Deno.test("loadModel() reports a truncated onnx/model.onnx before ONNX Runtime sees it", async () => {
  const { dir } = await tinyModelDir();
  const path = join(dir, "onnx", "model.onnx");
  const bytes = await Deno.readFile(path);
  await Deno.writeFile(path, bytes.subarray(0, bytes.length - 1000));
  const e = await assertRejects(() => loadModel(dir), ModelLoadError);
  assertStringIncludes(e.message, "model.onnx");
});

Deno.test("loadModel() reports a corrupt onnx/model.onnx", async () => {
  const { dir } = await tinyModelDir();
  await Deno.writeTextFile(join(dir, "onnx", "model.onnx"), "this is not a protobuf at all, just text");
  const e = await assertRejects(() => loadModel(dir), ModelLoadError);
  assert(/not a valid ONNX model|holds no graph|corrupt/.test(e.message), e.message);
});

Deno.test("loadModel() lists the known dtypes for an unknown one", async () => {
  // deno-lint-ignore no-explicit-any
  const e = await assertRejects(() => loadModel(undefined, { dtype: "fp8" as any }), ModelLoadError);
  assertStringIncludes(e.message, 'Unknown dtype "fp8"');
  assertStringIncludes(e.message, "q4");
});

Deno.test("loadModel() names a dtype file the folder does not have", async () => {
  const { dir } = await tinyModelDir();
  const e = await assertRejects(() => loadModel(dir, { dtype: "q4" }), ModelLoadError);
  assertStringIncludes(e.message, "model_q4.onnx");
});

Deno.test("loadModel() explains an offline cache miss for a hub id", async () => {
  const cacheDir = await Deno.makeTempDir();
  const e = await assertRejects(() => loadModel("Xenova/gpt2", { offline: true, cacheDir }), ModelLoadError);
  assertStringIncludes(e.message, "not in the cache");
  assertStringIncludes(e.message, "offline");
});

Deno.test("loadModel() uses a hub model already in the cache without the network", async () => {
  const { dir } = await tinyModelDir();
  const cacheDir = await Deno.makeTempDir();
  await Deno.mkdir(join(cacheDir, "someone"), { recursive: true });
  await Deno.rename(dir, join(cacheDir, "someone", "tiny-gpt2"));
  const m = await loadModel("someone/tiny-gpt2", { offline: true, cacheDir });
  try {
    assertEquals(m.source, "hub");
    assertEquals(m.dir, join(cacheDir, "someone", "tiny-gpt2"));
  } finally {
    await m.dispose();
  }
});

Deno.test("archFromConfig() names a missing field", () => {
  try {
    archFromConfig({ model_type: "gpt2", vocab_size: 10, n_layer: 1, n_head: 1 });
    throw new Error("expected a TypeError");
  } catch (e) {
    assert(e instanceof TypeError);
    assertStringIncludes(e.message, '"n_embd"');
  }
});

Deno.test("the demo runs without network permission for the bundled model, and says what a hub id needs", async () => {
  const cache = await Deno.makeTempDir();
  const base = [
    "run",
    "--quiet",
    "--allow-read",
    `--allow-write=${cache}`,
    "--allow-env",
    "--allow-ffi",
    "--allow-sys",
    new URL("../scripts/demo.ts", import.meta.url).pathname,
  ];
  const env = { PARAMSCOPE_CACHE: cache, NO_COLOR: "1" };
  const ok = await new Deno.Command(Deno.execPath(), { args: base, env, stdout: "piped", stderr: "piped" }).output();
  const okOut = new TextDecoder().decode(ok.stdout);
  assert(ok.success, new TextDecoder().decode(ok.stderr));
  assertStringIncludes(okOut, "next token (top 5)");
  const hub = await new Deno.Command(Deno.execPath(), {
    args: [...base, "--model", "Xenova/gpt2"],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(hub.code, 1);
  assertStringIncludes(new TextDecoder().decode(hub.stderr), "needs network permission");
});

Deno.test("the bundled model folder stays well under 20 MB", () => {
  let bytes = 0;
  const walk = (d: string) => {
    for (const e of Deno.readDirSync(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) walk(p);
      else bytes += Deno.statSync(p).size;
    }
  };
  walk(bundledModelPath());
  assertGreater(bytes, 1e6);
  assert(bytes < 20e6, `bundled model is ${(bytes / 1e6).toFixed(1)} MB`);
});

// ---- Hub downloads, against a mock hub on 127.0.0.1 (tests/_mock_hub.ts) ----

const REPO = "someone/tiny-gpt2";
const HUB_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"];
/** A token that appears in no model file by chance. */
const TOKEN = "hf_mockTokenZx81QvLp3";

/** Runs `fn` with environment variables set (a value) or removed (`undefined`), restoring them after. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  const set = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) x === undefined ? Deno.env.delete(k) : Deno.env.set(k, x);
  };
  set(vars);
  try {
    return await fn();
  } finally {
    set(saved);
  }
}

/** Every file and folder under `dir`, relative to it (folders end in `/`). */
function listTree(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(e.isDirectory ? `${rel}/` : rel);
    if (e.isDirectory) out.push(...listTree(dir, rel));
  }
  return out.sort();
}

interface HubFixture {
  /** The folder the mock serves (a tiny GPT-2 exported by the kit). */
  src: string;
  hub: MockHub;
  /** An empty temporary cache folder. */
  cacheDir: string;
}

/**
 * Runs `fn` with a mock hub serving a tiny exported GPT-2 (with external data past `externalDataThreshold`
 * bytes) as REPO, an empty cache, and no HF_TOKEN or HF_ENDPOINT from the developer's environment; closes
 * the servers and removes the folders after.
 */
async function withHub(
  hubOptions: Omit<MockHubOptions, "repos">,
  fn: (f: HubFixture) => Promise<void>,
  externalDataThreshold?: number,
): Promise<void> {
  const { dir: src } = await tinyModelDir(TINY_GPT2, { externalDataThreshold });
  const hub = startMockHub({ ...hubOptions, repos: { [REPO]: src } });
  const cacheDir = await Deno.makeTempDir({ prefix: "paramscope-cache-" });
  try {
    await withEnv({ HF_TOKEN: undefined, HF_ENDPOINT: undefined }, () => fn({ src, hub, cacheDir }));
  } finally {
    await hub.close();
    await Deno.remove(src, { recursive: true });
    await Deno.remove(cacheDir, { recursive: true });
  }
}

/** Loads REPO from the mock hub into the cache, collecting progress events. */
async function loadFromHub(
  f: HubFixture,
  options: LoadOptions = {},
): Promise<{ m: Model; events: LoadProgress[] }> {
  const events: LoadProgress[] = [];
  const m = await loadModel(REPO, {
    hubUrl: f.hub.url,
    cacheDir: f.cacheDir,
    onProgress: (p) => events.push({ ...p }),
    ...options,
  });
  return { m, events };
}

/** Per file: `download` at 0, then `progress` with loaded never falling, then `done` with loaded = total = size. */
function assertSaneProgress(events: LoadProgress[], sizes: Record<string, number>): void {
  assertEquals([...new Set(events.map((e) => e.file))].sort(), Object.keys(sizes).sort());
  for (const [file, size] of Object.entries(sizes)) {
    const ev = events.filter((e) => e.file === file);
    assertEquals([ev[0].status, ev[0].loaded, ev[0].total], ["download", 0, size], file);
    assertEquals([ev.at(-1)!.status, ev.at(-1)!.loaded, ev.at(-1)!.total], ["done", size, size], file);
    const middle = ev.slice(1, -1);
    assert(middle.length > 0 && middle.every((e) => e.status === "progress" && e.total === size), file);
    for (let i = 1; i < ev.length; i++) {
      assert(ev[i].loaded! >= ev[i - 1].loaded!, `${file}: loaded fell at event ${i}`);
      assert(ev[i].loaded! <= size, `${file}: loaded ${ev[i].loaded} > ${size}`);
    }
    assertEquals(middle.at(-1)!.loaded, size);
    assertEquals(middle.at(-1)!.progress, 100);
  }
}

/** The cache holds exactly the served bytes of each file, and nothing else (no temporary file). */
function assertCacheHolds(f: HubFixture, files: string[]): void {
  const dir = join(f.cacheDir, REPO);
  for (const file of files) {
    assertEquals(Deno.readFileSync(join(dir, file)), f.hub.file(REPO, file), `${file} differs from the served file`);
  }
  const folders = ["someone/", `${REPO}/`, `${REPO}/onnx/`];
  assertEquals(listTree(f.cacheDir), [...folders, ...files.map((x) => `${REPO}/${x}`)].sort());
}

/** Loads REPO expecting a ModelLoadError; checks that the cache is left empty and the token is not in the message. */
async function assertFailsClean(f: HubFixture, options: LoadOptions = {}): Promise<string> {
  const e = await assertRejects(() => loadFromHub(f, options), ModelLoadError);
  assertEquals(listTree(f.cacheDir), [], "a failed download leaves nothing in the cache");
  assertFalse(e.message.includes(TOKEN), "the token must never appear in an error");
  return e.message;
}

Deno.test("loadModel() downloads a hub model from hubUrl byte for byte, then loads it offline with no request", () =>
  withHub({}, async (f) => {
    const { m, events } = await loadFromHub(f);
    try {
      assertEquals(m.source, "hub");
      assertEquals(m.dir, join(f.cacheDir, REPO));
      assertCacheHolds(f, HUB_FILES);
      assertSaneProgress(events, Object.fromEntries(HUB_FILES.map((x) => [x, f.hub.file(REPO, x).byteLength])));
      assertEquals(
        f.hub.requests.map((r) => `${r.server} ${r.path}`),
        HUB_FILES.map((x) => `hub /${REPO}/resolve/main/${x}`),
      );
      assert(f.hub.requests.every((r) => r.authorization === null), "no token given, so none may be sent");
      // The downloaded model runs and gives what the served folder gives.
      const local = await loadModel(f.src);
      try {
        const a = await m.model!(m.tokenizer("hi there")), b = await local.model!(local.tokenizer("hi there"));
        assertEquals(Array.from(a.logits.data as Float32Array), Array.from(b.logits.data as Float32Array));
      } finally {
        await local.dispose();
      }
    } finally {
      await m.dispose();
    }
    const before = f.hub.requests.length;
    for (const offline of [true, false]) {
      const again = await loadModel(REPO, { hubUrl: f.hub.url, cacheDir: f.cacheDir, offline });
      assertEquals([again.source, again.dir], ["hub", join(f.cacheDir, REPO)]);
      await again.dispose();
    }
    assertEquals(f.hub.requests.length, before, "a cached model needs no request, offline or not");
  }));

Deno.test("loadModel() takes the hub endpoint from HF_ENDPOINT when no hubUrl is given, leaving transformers.js env alone", () =>
  withHub({}, async (f) => {
    const m = await withEnv(
      { HF_ENDPOINT: `${f.hub.url}/` },
      () => loadModel(REPO, { cacheDir: f.cacheDir, tokenizerOnly: true }),
    );
    try {
      assertEquals(m.source, "hub");
      assertCacheHolds(f, HUB_FILES);
      assertEquals(f.hub.requests.length, HUB_FILES.length);
    } finally {
      await m.dispose();
    }
    // transformers.js' own endpoint is untouched by a per-call endpoint.
    const { env } = await import("@huggingface/transformers");
    assertEquals(env.remoteHost, "https://huggingface.co/");
  }));

Deno.test("loadModel() sends the token to the hub only: not to the host a download redirects to", () =>
  withHub({ token: TOKEN, redirect: true }, async (f) => {
    const { m, events } = await loadFromHub(f, { token: TOKEN, tokenizerOnly: true });
    await m.dispose();
    assertCacheHolds(f, HUB_FILES);
    const hubReqs = f.hub.requests.filter((r) => r.server === "hub");
    const cdnReqs = f.hub.requests.filter((r) => r.server === "cdn");
    assertEquals(hubReqs.length, HUB_FILES.length);
    assertEquals(cdnReqs.length, HUB_FILES.length, "every file came through the redirect");
    assert(f.hub.cdnUrl !== f.hub.url);
    assert(hubReqs.every((r) => r.authorization === `Bearer ${TOKEN}`), "the hub gets the token on every request");
    assertEquals(cdnReqs.map((r) => r.authorization), cdnReqs.map(() => null), "the redirect target never sees it");
    assertFalse(JSON.stringify(events).includes(TOKEN), "progress events never carry the token");
    // Byte for byte (latin1 maps each byte to one character): no cached file holds the token.
    for (const file of listTree(f.cacheDir).filter((x) => !x.endsWith("/"))) {
      const text = new TextDecoder("latin1").decode(Deno.readFileSync(join(f.cacheDir, file)));
      assertFalse(text.includes(TOKEN), `${file} holds the token`);
    }
  }));

Deno.test("loadModel() sends HF_TOKEN when no token option is given", () =>
  withHub({ token: TOKEN }, async (f) => {
    const m = await withEnv({ HF_TOKEN: TOKEN }, () => loadFromHub(f, { tokenizerOnly: true }).then((r) => r.m));
    await m.dispose();
    assertCacheHolds(f, HUB_FILES);
    assert(f.hub.requests.every((r) => r.authorization === `Bearer ${TOKEN}`));
  }));

Deno.test("loadModel() explains HTTP 401 for a gated model, says whether a token was sent, and keeps nothing", async () => {
  await withHub({ token: TOKEN }, async (f) => {
    const msg = await assertFailsClean(f);
    assertStringIncludes(msg, `${REPO} is gated or private (HTTP 401)`);
    assertStringIncludes(
      msg,
      `accept its licence at ${f.hub.url}/${REPO} and pass a token (options.token, or set HF_TOKEN)`,
    );
    assertStringIncludes(msg, "no token was sent");
    // token: "" overrides HF_TOKEN: nothing is sent.
    const msg2 = await withEnv({ HF_TOKEN: TOKEN }, () => assertFailsClean(f, { token: "" }));
    assertStringIncludes(msg2, "no token was sent");
    assert(f.hub.requests.every((r) => r.authorization === null));
  });
  await withHub({ token: TOKEN, badTokenStatus: 401 }, async (f) => {
    const msg = await assertFailsClean(f, { token: "hf_wrongWrongWrong" });
    assertStringIncludes(msg, `${REPO} is gated or private (HTTP 401)`);
    assertStringIncludes(msg, "the token from options.token was sent and not accepted");
    assertFalse(msg.includes("hf_wrongWrongWrong"));
  });
});

Deno.test("loadModel() explains HTTP 403 for a token without access, and keeps nothing", () =>
  withHub({ token: TOKEN }, async (f) => {
    const msg = await withEnv({ HF_TOKEN: "hf_wrongWrongWrong" }, () => assertFailsClean(f));
    assertStringIncludes(msg, `your token has no access to ${REPO} (HTTP 403): request access at ${f.hub.url}/${REPO}`);
    assertFalse(msg.includes("hf_wrongWrongWrong"));
    assertEquals(f.hub.requests.map((r) => r.authorization), ["Bearer hf_wrongWrongWrong"]);
  }));

Deno.test("loadModel() reports a 404 for the ONNX file and drops the files that had already arrived", () =>
  withHub({ missing: ["onnx/model.onnx"] }, async (f) => {
    const msg = await assertFailsClean(f);
    assertStringIncludes(msg, `${REPO} has no file onnx/model.onnx on the hub (HTTP 404`);
    assertStringIncludes(msg, "Check the id");
    // config.json and the tokenizer files did arrive before the 404, and were not kept.
    assertEquals(f.hub.requests.length, HUB_FILES.length);
  }));

Deno.test("loadModel() reports a download that breaks off mid-stream and leaves no partial or temporary file", async () => {
  for (const redirect of [false, true]) {
    await withHub({ truncate: ["onnx/model.onnx"], redirect }, async (f) => {
      const events: LoadProgress[] = [];
      const msg = await assertFailsClean(f, { onProgress: (p) => events.push({ ...p }) });
      const size = f.hub.file(REPO, "onnx/model.onnx").byteLength;
      assertStringIncludes(msg, "Downloading onnx/model.onnx of someone/tiny-gpt2 broke off after");
      assertStringIncludes(msg, `of ${size} bytes`);
      assertStringIncludes(msg, "Nothing was kept in the cache");
      assertFalse(events.some((e) => e.file === "onnx/model.onnx" && e.status === "done"));
    });
  }
});

Deno.test("loadModel() downloads external data (onnx/model.onnx_data) with the model, or nothing when it breaks off", async () => {
  const files = [...HUB_FILES, "onnx/model.onnx_data"];
  await withHub({ redirect: true }, async (f) => {
    assert(f.hub.file(REPO, "onnx/model.onnx_data").byteLength > 0);
    const { m, events } = await loadFromHub(f);
    try {
      assertCacheHolds(f, files);
      assertSaneProgress(events, Object.fromEntries(files.map((x) => [x, f.hub.file(REPO, x).byteLength])));
      const out = await m.model!(m.tokenizer("hi"));
      assertEquals(out.logits.dims, [1, 2, TINY_GPT2.vocabSize]);
    } finally {
      await m.dispose();
    }
  }, 1024);
  await withHub({ truncate: ["onnx/model.onnx_data"] }, async (f) => {
    const msg = await assertFailsClean(f);
    assertStringIncludes(msg, "onnx/model.onnx_data");
    assertStringIncludes(msg, "broke off");
  }, 1024);
});

Deno.test("loadModel() refuses a hubUrl or HF_ENDPOINT that is not an http(s) URL, with an example", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    for (const hubUrl of ["hf-mirror.com", "ftp://hf-mirror.com", "not a url", "https://hf-mirror.com/?x=1"]) {
      const e = await assertRejects(() => loadModel(REPO, { hubUrl, cacheDir }), RangeError);
      assertStringIncludes(e.message, "options.hubUrl");
      assertStringIncludes(e.message, JSON.stringify(hubUrl));
      assertStringIncludes(e.message, "https://hf-mirror.com");
    }
    const e = await assertRejects(
      () => loadModel(REPO, { hubUrl: "https://me:s3cret@hf-mirror.com", cacheDir }),
      RangeError,
    );
    assertStringIncludes(e.message, "user name or password");
    assertFalse(e.message.includes("s3cret"));
    // HF_ENDPOINT is read (and checked) only when a download is needed.
    await withEnv({ HF_ENDPOINT: "hf-mirror.com" }, async () => {
      const e = await assertRejects(() => loadModel(REPO, { cacheDir }), RangeError);
      assertStringIncludes(e.message, "HF_ENDPOINT");
      const m = await loadModel(undefined, { tokenizerOnly: true });
      await m.dispose();
    });
    assertEquals(listTree(cacheDir), []);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("loadModel() refuses a token with spaces or line breaks without showing it", async () => {
  const e = await assertRejects(() => loadModel(undefined, { token: "hf_abc def" }), TypeError);
  assertStringIncludes(e.message, "options.token");
  assertFalse(e.message.includes("hf_abc"));
});

/** Runs a loadModel() call in a child deno with the given permissions; returns what it printed. */
async function childLoad(
  permissions: string[],
  args: { id: string; hubUrl?: string; cacheDir: string },
  env: Record<string, string> = {},
): Promise<string> {
  const dir = await Deno.makeTempDir();
  const script = join(dir, "child.ts");
  await Deno.writeTextFile(
    script,
    `import { loadModel } from ${JSON.stringify(new URL("../lib/load.ts", import.meta.url).href)};
const a = JSON.parse(Deno.args[0]);
try {
  const m = await loadModel(a.id, { hubUrl: a.hubUrl, cacheDir: a.cacheDir, tokenizerOnly: true });
  console.log("loaded", m.source);
} catch (e) {
  console.log(\`\${(e as Error).name}: \${(e as Error).message}\`);
}
`,
  );
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        `--config=${new URL("../deno.json", import.meta.url).pathname}`,
        ...permissions,
        script,
        JSON.stringify(args),
      ],
      env: { ...env, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.success, text);
    return text;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("without net permission, the error names the mirror's host (or huggingface.co's for the default hub)", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    const perms = ["--allow-read", `--allow-write=${cacheDir}`, "--allow-env=HOME,HF_TOKEN,HF_ENDPOINT"];
    const mirror = await childLoad(perms, { id: "meta-llama/Llama-3.2-1B", hubUrl: "https://hf-mirror.com", cacheDir });
    assertStringIncludes(
      mirror,
      "ModelLoadError: Loading meta-llama/Llama-3.2-1B from the hub (https://hf-mirror.com)",
    );
    assertStringIncludes(mirror, "--allow-net=hf-mirror.com ");
    assertFalse(mirror.includes("huggingface.co"));
    const viaEnv = await childLoad(perms, { id: "meta-llama/Llama-3.2-1B", cacheDir }, {
      HF_ENDPOINT: "http://127.0.0.1:9/hf",
    });
    assertStringIncludes(
      viaEnv,
      "from the hub (http://127.0.0.1:9/hf) needs network permission: run with --allow-net=127.0.0.1:9 ",
    );
    for (const hubUrl of ["https://huggingface.co", undefined]) {
      // With no hubUrl and no env permission at all, HF_ENDPOINT is unreadable and transformers.js cannot even
      // be imported (to read env.remoteHost): the network is still what the message asks for first.
      const hub = await childLoad(hubUrl ? perms : ["--allow-read"], {
        id: "meta-llama/Llama-3.2-1B",
        hubUrl,
        cacheDir,
      });
      assertStringIncludes(hub, "from the hub (https://huggingface.co) needs network permission");
      assertStringIncludes(hub, "--allow-net=huggingface.co,cdn-lfs.huggingface.co");
    }
    assertEquals(listTree(cacheDir), []);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a run that may not read HF_TOKEN sends no token and says how to allow it, without a crash", () =>
  withHub({ token: TOKEN }, async (f) => {
    const out = await childLoad(
      ["--allow-read", `--allow-write=${f.cacheDir}`, "--allow-env=HOME", "--allow-net=127.0.0.1"],
      { id: REPO, hubUrl: f.hub.url, cacheDir: f.cacheDir },
      { HF_TOKEN: TOKEN },
    );
    assertStringIncludes(out, `ModelLoadError: Model ${REPO} is gated or private (HTTP 401)`);
    assertStringIncludes(out, "this run may not read HF_TOKEN: allow it with --allow-env=HF_TOKEN");
    assertFalse(out.includes(TOKEN));
    assertEquals(f.hub.requests.map((r) => r.authorization), [null]);
    assertEquals(listTree(f.cacheDir), []);
  }));

Deno.test("a run that may not write the cache folder gets a ModelLoadError naming --allow-write", () =>
  withHub({}, async (f) => {
    const out = await childLoad(
      ["--allow-read", "--allow-env=HOME,HF_TOKEN,HF_ENDPOINT", "--allow-net=127.0.0.1"],
      { id: REPO, hubUrl: f.hub.url, cacheDir: f.cacheDir },
    );
    assertStringIncludes(
      out,
      `ModelLoadError: Cannot write the download cache for ${REPO} at ${join(f.cacheDir, REPO)}`,
    );
    assertStringIncludes(out, "--allow-write on the cache folder");
    assertEquals(listTree(f.cacheDir), []);
  }));
