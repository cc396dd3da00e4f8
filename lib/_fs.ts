/**
 * File helpers shared by every module that writes: a file is written under a
 * temporary name beside its target and renamed into place, so an interrupted
 * run never leaves a half-written file where a good one was.
 *
 * @module
 */

/**
 * Writes `data` to `path` atomically (temporary file + rename in the same folder).
 *
 * @param path destination file
 * @param data bytes or text
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
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
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
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
