// QA test utilities kept private to test/qa: a raw control connection, bounded waits, running the built bins and
// third-party clients with a time limit, and counting bytes on disk independently of the server's code.

import { spawn } from "node:child_process";
import { lstatSync, readdirSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { MYFTPD_BIN, MYFTP_BIN } from "../helpers/myftpd.js";

export { sleep, until } from "../helpers/util.js";
import { sleep } from "../helpers/util.js";

export interface Reply {
  code: number;
  text: string;
}

/** A control connection that reads whole (multi-line) replies; every wait is bounded. */
export class Ctl {
  private buf = "";
  private waiters: (() => void)[] = [];
  private closed = false;

  private constructor(readonly sock: net.Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.buf += d;
      this.wake();
    });
    sock.on("close", () => {
      this.closed = true;
      this.wake();
    });
    sock.on("error", () => undefined);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  static async connect(port: number, host = "127.0.0.1"): Promise<Ctl> {
    const sock = net.connect({ port, host });
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    return new Ctl(sock);
  }

  /** Connects, reads the greeting, logs in (TYPE I unless told otherwise). */
  static async login(port: number, user = "alice", password = "secret", type: "I" | "A" = "I"): Promise<Ctl> {
    const c = await Ctl.connect(port);
    const hello = await c.read();
    if (hello.code !== 220) throw new Error(`greeting: ${hello.code} ${hello.text}`);
    await c.expect(`USER ${user}`, 331);
    await c.expect(`PASS ${password}`, 230);
    await c.expect(`TYPE ${type}`, 200);
    return c;
  }

  /** The next complete reply. */
  async read(ms = 10_000): Promise<Reply> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = this.take();
      if (r) return r;
      if (this.closed) throw new Error(`connection closed; pending: ${JSON.stringify(this.buf)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${ms} ms; pending: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private take(): Reply | null {
    const lines = this.buf.split("\r\n");
    if (lines.length < 2) return null;
    const first = lines[0]!;
    const m = /^(\d{3})([ -])/.exec(first);
    if (!m) throw new Error(`bad reply line ${JSON.stringify(first)}`);
    let end = 0;
    if (m[2] === "-") {
      end = lines.findIndex((l, i) => i > 0 && l.startsWith(`${m[1]} `));
      if (end < 0 || end === lines.length - 1) return null;
    }
    const text = lines.slice(0, end + 1).join("\n");
    this.buf = lines.slice(end + 1).join("\r\n");
    return { code: Number(m[1]), text };
  }

  send(line: string): void {
    this.sock.write(`${line}\r\n`);
  }

  async cmd(line: string): Promise<Reply> {
    this.send(line);
    return this.read();
  }

  async expect(line: string, code: number): Promise<Reply> {
    const r = await this.cmd(line);
    if (r.code !== code) throw new Error(`${line}: expected ${code}, got ${r.code} ${r.text}`);
    return r;
  }

  /** EPSV, then opens the data connection. */
  async data(): Promise<net.Socket> {
    const r = await this.expect("EPSV", 229);
    const port = Number(/\|\|\|(\d+)\|/.exec(r.text)![1]);
    const d = net.connect({ port, host: "127.0.0.1" });
    d.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => {
      d.once("connect", resolve);
      d.once("error", reject);
    });
    return d;
  }

  /** A whole download or listing: returns the bytes and the final reply. */
  async fetch(line: string): Promise<{ body: Buffer; opening: Reply; final: Reply }> {
    const d = await this.data();
    const chunks: Buffer[] = [];
    d.on("data", (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve) => d.once("close", () => resolve()));
    const opening = await this.cmd(line);
    if (opening.code !== 150) {
      d.destroy();
      return { body: Buffer.alloc(0), opening, final: opening };
    }
    await Promise.race([ended, sleep(10_000)]);
    const final = await this.read();
    return { body: Buffer.concat(chunks), opening, final };
  }

  /** A whole upload of `data` with `verb path`. */
  async store(line: string, data: Buffer | string): Promise<{ opening: Reply; final: Reply }> {
    const d = await this.data();
    const opening = await this.cmd(line);
    if (opening.code !== 150) {
      d.destroy();
      return { opening, final: opening };
    }
    d.end(data);
    const final = await this.read();
    return { opening, final };
  }

  async names(dir = ""): Promise<string[]> {
    const r = await this.fetch(dir ? `NLST ${dir}` : "NLST");
    if (r.final.code !== 226) throw new Error(`NLST ${dir}: ${r.final.code} ${r.final.text}`);
    return r.body.toString("utf8").split("\r\n").filter((l) => l !== "");
  }

  /** Bytes used according to SITE QUOTA. */
  async used(): Promise<number> {
    const r = await this.expect("SITE QUOTA", 200);
    return Number(/used (\d+)/.exec(r.text)![1]);
  }

  close(): void {
    this.sock.destroy();
  }
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program with a time limit (killed by its PID after it); stdin gets `input` then closes. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Run> {
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdin.on("error", () => undefined);
  child.stdin.end(opts.input ?? "");
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGKILL");
      reject(new Error(`${cmd} ${args.join(" ")} did not finish in time\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The environment for myftp: no user credentials, netrc or history from the machine. */
export function clientEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  delete env.MYFTP_PASSWORD;
  delete env.MYFTP_USER;
  delete env.NETRC;
  return env;
}

export function myftp(args: readonly string[], opts: { input?: string; cwd?: string; home: string; timeoutMs?: number }): Promise<Run> {
  return run(process.execPath, [MYFTP_BIN, ...args], { ...opts, env: clientEnv(opts.home) });
}

export function myftpd(args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<Run> {
  return run(process.execPath, [MYFTPD_BIN, ...args], opts);
}

/** Sum of regular file sizes under dir (links not followed): what a user really has on disk. */
export function bytesOnDisk(dir: string): number {
  let total = 0;
  const stack = [dir];
  for (let guard = 0; stack.length > 0 && guard < 100_000; guard++) {
    const d = stack.pop()!;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) stack.push(full);
      else if (e.isFile()) total += lstatSync(full).size;
    }
  }
  return total;
}

/** Every file below dir, relative, sorted. */
export function filesBelow(dir: string): string[] {
  const out: string[] = [];
  const stack = [""];
  for (let guard = 0; stack.length > 0 && guard < 100_000; guard++) {
    const rel = stack.pop()!;
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) stack.push(r);
      else out.push(r);
    }
  }
  return out.sort();
}
