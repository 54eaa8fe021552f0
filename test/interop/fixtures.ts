// Shared pieces of the interop tests: test files of the sizes issue 2 names, SHA-256, and running a client
// program with a time limit (killed by its PID when it overruns).
import { createHash, randomBytes } from "node:crypto";
import { accessSync, constants, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { runProcess, sha256File, type RunOptions, type RunResult } from "../helpers/util.js";

export const SIZES: Record<string, number> = {
  "zero.bin": 0,
  "one.bin": 1,
  "mib.bin": 1024 * 1024,
  "fifty.bin": 50 * 1024 * 1024,
};

/** Names that must survive every client: UTF-8, spaces, a leading dash. */
export const ODD_NAMES = ["测试文件.txt", "name with spaces.txt", "-leading-dash.txt"];

/** Writes the size fixtures (random bytes) and the odd-named files into dir; returns name → SHA-256. */
export function makeFixtures(dir: string, opts: { big?: boolean } = {}): Map<string, string> {
  mkdirSync(dir, { recursive: true });
  const out = new Map<string, string>();
  for (const [name, size] of Object.entries(SIZES)) {
    if (!opts.big && size > 8 * 1024 * 1024) continue;
    const data = randomBytes(size);
    writeFileSync(path.join(dir, name), data);
    out.set(name, sha256(data));
  }
  for (const name of ODD_NAMES) {
    const data = Buffer.from(`contents of ${name}\n`, "utf8");
    writeFileSync(path.join(dir, name), data);
    out.set(name, sha256(data));
  }
  return out;
}

export function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Runs a client program to its end with a UTF-8 locale (the odd names are UTF-8), killed after 60 s unless told
 * otherwise; a client that has to be killed fails the call. Never rejects for a non-zero exit.
 */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runProcess(cmd, args, { timeoutMs: 60_000, ...opts, env: { ...process.env, LC_ALL: "C.UTF-8", ...opts.env } });
  if (r.timedOut) throw new Error(`${cmd} ${args.join(" ")} did not finish in time\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Whether a program of that name is on the PATH (an interop test skips when its client is not installed). */
export function hasCommand(name: string): boolean {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Relative path → SHA-256 for every file below dir. */
export async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string, rel: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) await walk(p, rel + n + "/");
      else out.set(rel + n, await sha256File(p));
    }
  };
  await walk(dir, "");
  return out;
}
