/**
 * File helpers shared by every module that writes: a file is written under a
 * temporary name beside its target and renamed into place, so an interrupted
 * run never leaves a half-written file where a good one was.
 *
 * @module
 */

/** `<path>.<tag>-<pid>-<8 hex>`: a temporary name beside `path`, unique to this process and call. */
function tempName(path: string, tag: string): string {
  return `${path}.${tag}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Creates a new, empty temporary file beside `path`, for data that arrives in pieces (a download):
 * the caller writes it, then renames it onto `path` when it is complete, or removes it.
 *
 * @param path the file it will become
 * @param tag the middle of the temporary name (default `"tmp"`)
 * @returns the open file and its path
 */
export async function createTempBeside(path: string, tag = "tmp"): Promise<{ file: Deno.FsFile; path: string }> {
  const tmp = tempName(path, tag);
  return { file: await Deno.open(tmp, { write: true, createNew: true }), path: tmp };
}

/**
 * Writes `data` to `path` atomically (temporary file + rename in the same folder).
 *
 * @param path destination file
 * @param data bytes or text
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempName(path, "tmp");
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Synchronous {@linkcode writeFileAtomic}.
 *
 * @param path destination file
 * @param data bytes or text
 */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const tmp = tempName(path, "tmp");
  try {
    if (typeof data === "string") Deno.writeTextFileSync(tmp, data);
    else Deno.writeFileSync(tmp, data);
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* the temporary file was never created */ }
    throw e;
  }
}
