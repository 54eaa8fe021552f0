// Generic test utilities, each kept once: bounded waits, polling, running a program with a time limit, and counting
// the bytes of files on disk independently of the server's code.

import { spawn } from "node:child_process";
import { lstatSync, readdirSync } from "node:fs";
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
  /** The exit code; null when the child was killed by a signal (a timeout) or could not start. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end; never rejects for a non-zero exit, a timeout or a program that cannot start. */
export function runProcess(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let done = false;
    const finish = (code: number | null) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    };
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const t = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    child.once("error", (e) => {
      stderr += e.message;
      finish(null);
    });
    child.once("close", (code) => finish(code));
    child.stdin.on("error", () => undefined); // the program may exit without reading its input
    child.stdin.end(opts.input ?? "");
  });
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
