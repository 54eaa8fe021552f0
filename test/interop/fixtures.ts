// Shared pieces of the interop tests: test files of the sizes issue 2 names, SHA-256, and running a client
// program with a time limit (killed by its PID when it overruns).
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";

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

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(file)
      .on("data", (c) => h.update(c))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject);
  });
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

/** Runs a program to its end (killed after timeoutMs); never rejects for a non-zero exit. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; cwd?: string; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C.UTF-8" } });
    running.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) child.kill("SIGKILL");
      reject(new Error(`${cmd} ${args.join(" ")} did not finish in time\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.once("error", (e) => {
      clearTimeout(timer);
      running.delete(child);
      reject(e);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
    child.stdin!.on("error", () => undefined);
    child.stdin!.end(opts.input ?? "");
  });
}

/** Kills every client still running (for afterEach/afterAll). */
export function killRunning(): void {
  for (const c of running) if (c.exitCode === null && c.pid !== undefined) c.kill("SIGKILL");
  running.clear();
}
