/**
 * What every script shares: a usage error that exits with code 2, and strict
 * flag parsing that reports an unknown or malformed flag with the usage text.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** Prints `error: message` to stderr and exits with code 2 (bad usage or bad input). */
export function fail(message: string): never {
  console.error(`error: ${message}`);
  Deno.exit(2);
}

/** Parses `args` strictly (no positionals); a bad flag fails with the usage text. */
export function parseFlags<O extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: O,
  usage: string,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>>["values"] {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    fail(`${e instanceof Error ? e.message : String(e)}\n${usage}`);
  }
}
