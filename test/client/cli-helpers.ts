// Helpers for driving the built `myftp` binary in tests: run it with a script on stdin, run it until
// a condition holds and then kill it, make random files.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, afterEach, beforeAll } from "vitest";
import { until } from "../helpers/util.js";

export const BIN = resolve(import.meta.dirname, "../../dist/cli/myftp.js");

export function assertBuilt(): void {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build first`);
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly stdin?: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
}

const live = new Set<ChildProcess>();

/** Kill every myftp child still running (for afterEach/afterAll). */
export function killAll(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL");
  live.clear();
}

function baseEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  // Keep the user's own credentials and history out of the tests.
  if (!extra?.HOME) env.HOME = tmpdir();
  if (!extra || !("MYFTP_PASSWORD" in extra)) delete env.MYFTP_PASSWORD;
  if (!extra || !("MYFTP_USER" in extra)) delete env.MYFTP_USER;
  delete env.NETRC;
  return env;
}

export function spawnMyftp(args: readonly string[], opts: RunOptions = {}): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd,
    env: baseEnv(opts.env),
    stdio: ["pipe", "pipe", "pipe"],
  });
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
  else child.stdin!.end();
  return child;
}

export function collect(child: ChildProcess, timeoutMs = 50_000): Promise<RunResult> {
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
      reject(new Error(`myftp did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export async function runMyftp(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return await collect(spawnMyftp(args, opts), opts.timeoutMs);
}

/**
 * Start myftp, wait until `until()` holds (polled every 20 ms, for at most `withinMs`), then SIGKILL it.
 * Returns what it printed before dying.
 */
export async function runAndKill(args: readonly string[], until: () => Promise<boolean>, opts: RunOptions & { withinMs?: number } = {}): Promise<RunResult> {
  const child = spawnMyftp(args, opts);
  const result = collect(child, 60_000);
  const deadline = Date.now() + (opts.withinMs ?? 30_000);
  let fired = false;
  while (Date.now() < deadline && child.exitCode === null) {
    if (await until()) {
      fired = true;
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const r = await result;
  if (!fired) throw new Error(`the condition never held before myftp ended (code ${r.code})\n${r.stdout}\n${r.stderr}`);
  return r;
}

export async function sizeOf(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.size ?? -1;
}

/** Write `size` random bytes to `path`. */
export async function makeFile(path: string, size: number): Promise<void> {
  const fh = await open(path, "w");
  try {
    let left = size;
    while (left > 0) {
      const n = Math.min(left, 4 << 20);
      await fh.write(randomBytes(n));
      left -= n;
    }
  } finally {
    await fh.close();
  }
}

export async function tempDir(prefix = "myftp-client-"): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * The usual hooks of a client test file: the built client checked and a work directory made before all tests, the
 * myftp processes killed after each, and at the end `cleanup` (servers to stop) then the directory removed. `path`
 * is the work directory once the tests run.
 */
export function clientWorkDir(cleanup?: () => Promise<void>): { readonly path: string } {
  let work: { path: string; remove(): Promise<void> } | undefined;
  beforeAll(async () => {
    assertBuilt();
    work = await tempDir();
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await cleanup?.();
    await work?.remove();
  });
  return {
    get path() {
      if (!work) throw new Error("the work directory exists only while the tests run");
      return work.path;
    },
  };
}

/** Wait until `cond()` holds, polling every 20 ms for at most `ms`; false if it never did. */
export async function waitFor(cond: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  return until(cond, ms, "waitFor").then(
    () => true,
    () => false,
  );
}

/** Lines of output that are not notes about missing server features. */
export function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.length > 0);
}

export interface Pty {
  /** Everything the terminal showed so far. */
  output(): string;
  /** Type into the terminal. */
  send(text: string): void;
  /** Wait until the output (after `from`) matches; throws with the output on timeout. */
  expect(re: RegExp, opts?: { from?: number; timeoutMs?: number }): Promise<RegExpExecArray>;
  /** Wait for the program to end. */
  exit(timeoutMs?: number): Promise<number | null>;
}

/** Run myftp in a pseudo-terminal (util-linux `script`), so it sees a terminal on every side. */
export function spawnPty(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; /** Another built bin than myftp. */ bin?: string } = {}): Pty {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = [process.execPath, opts.bin ?? BIN, ...args].map(quote).join(" ");
  const child = spawn("script", ["-qec", cmd, "/dev/null"], { cwd: opts.cwd, env: { ...baseEnv(opts.env), COLUMNS: opts.env?.COLUMNS ?? "100", LINES: "30" }, stdio: ["pipe", "pipe", "pipe"] });
  live.add(child);
  child.once("exit", () => live.delete(child));
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  // "close" comes once the output has been read to its end; "exit" may come before the last of it.
  let exitCode: number | null | undefined;
  const closed = new Promise<number | null>((resolve) =>
    child.once("close", (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  return {
    output: () => out,
    send: (text) => void child.stdin!.write(text),
    async expect(re, o = {}) {
      const deadline = Date.now() + (o.timeoutMs ?? 15_000);
      while (Date.now() < deadline) {
        const m = re.exec(out.slice(o.from ?? 0));
        if (m) return m;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`terminal never showed ${re}; it shows:\n${JSON.stringify(out)}`);
    },
    async exit(timeoutMs = 15_000) {
      if (exitCode !== undefined) return exitCode;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`still running:\n${JSON.stringify(out)}`)), timeoutMs);
      });
      try {
        return await Promise.race([closed, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** `dst` as a killed `get -n 2` of `remoteName` leaves it: full size, each range filled to `filled` bytes, the rest zeros. */
export function unfinishedDownload(dst: string, remoteName: string, content: Buffer, filled: number): void {
  const half = content.length / 2;
  const local = Buffer.alloc(content.length);
  content.copy(local, 0, 0, filled);
  content.copy(local, half, half, half + filled);
  writeFileSync(dst, local);
  writeFileSync(
    `${dst}.myftp-segments`,
    JSON.stringify({
      version: 1,
      remote: remoteName,
      size: content.length,
      segments: [
        { start: 0, end: half, pos: filled },
        { start: half, end: content.length, pos: half + filled },
      ],
    }),
  );
}
