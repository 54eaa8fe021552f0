// Generic test utilities, each kept once: bounded waits, polling, running a program with a time limit, a free port,
// hashing a file, and counting the bytes of files on disk independently of the server's code.

import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, lstatSync, readdirSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Settles as p does, or rejects once ms have passed (the message starts with `what`). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} (timed out after ${ms} ms)`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Polls `check` every 20 ms until it returns true, failing after `ms`. */
export async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`condition not met within ${ms} ms: ${what}`);
}

export interface RunOptions {
  /** The child is killed (SIGKILL, by its PID) when it runs longer; default 30 s. */
  timeoutMs?: number;
  /** Written to the child's stdin, which is then closed (closed at once without it). */
  input?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  /** The exit code; null when the child ended by a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** The child was killed because it passed its time limit. */
  timedOut: boolean;
}

const running = new Set<ChildProcess>();

/**
 * Runs a program to its end and resolves with what it printed; a non-zero exit or a timeout is a result, not an
 * error. Rejects only when the program cannot be started.
 */
export function runProcess(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    running.add(child);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const t = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? 30_000);
    child.once("error", (e) => {
      clearTimeout(t);
      running.delete(child);
      reject(e);
    });
    child.once("close", (code) => {
      clearTimeout(t);
      running.delete(child);
      resolve({ code, stdout, stderr, timedOut });
    });
    child.stdin.on("error", () => undefined); // the program may exit without reading its input
    child.stdin.end(opts.input ?? "");
  });
}

/** Kills (SIGKILL, by PID) every program runProcess started that is still running, for afterEach/afterAll. */
export function killRunning(): void {
  for (const c of running) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) c.kill("SIGKILL");
  running.clear();
}

/** A TCP port on 127.0.0.1 that nothing listens on right now (bound, then released). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** SHA-256 (hex) of a file's content, read as a stream. */
export async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Bytes of regular files under a directory (links are not followed). */
export function diskBytes(dir: string): number {
  let total = 0;
  const stack = [dir];
  for (let guard = 0; stack.length > 0 && guard < 100_000; guard++) {
    const d = stack.pop()!;
    for (const name of readdirSync(d)) {
      const full = path.join(d, name);
      const st = lstatSync(full);
      if (st.isDirectory()) stack.push(full);
      else if (st.isFile()) total += st.size;
    }
  }
  return total;
}
