// A small raw FTP client for the quota, admission and HASH suites: exact replies over a plain socket, passive data
// connections opened by hand, and helpers to compare the quota figures with the disk. Every wait is bounded.

import { spawn } from "node:child_process";
import { readdirSync, lstatSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";

export interface FtpReply {
  code: number;
  /** All lines, CRLF removed. */
  lines: string[];
  /** Text of the first line after the code. */
  text: string;
}

const WAIT_MS = 5000;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
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

export class RawClient {
  private buf = "";
  private wakeUp: (() => void) | null = null;
  private ended = false;
  /** Times (Date.now()) at which each complete reply line arrived, for ordering checks. */
  readonly closed: Promise<void>;
  firstByteAt: number | null = null;

  private constructor(readonly sock: net.Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (c: string) => {
      this.firstByteAt ??= Date.now();
      this.buf += c;
      this.wake();
    });
    sock.on("error", () => undefined);
    this.closed = new Promise((resolve) =>
      sock.once("close", () => {
        this.ended = true;
        this.wake();
        resolve();
      }),
    );
  }

  /** Opens a TCP connection; reads nothing. */
  static open(port: number): Promise<RawClient> {
    return bounded(
      new Promise<RawClient>((resolve, reject) => {
        const sock = net.connect({ host: "127.0.0.1", port });
        sock.once("connect", () => resolve(new RawClient(sock)));
        sock.once("error", reject);
      }),
      WAIT_MS,
      "connect",
    );
  }

  /** Connects and expects the 220 greeting. */
  static async greeted(port: number): Promise<RawClient> {
    const c = await RawClient.open(port);
    const g = await c.read();
    if (g.code !== 220) throw new Error(`greeting: ${g.lines.join("\n")}`);
    return c;
  }

  /** Connects, logs in and switches to TYPE I. */
  static async login(port: number, user: string, password: string): Promise<RawClient> {
    const c = await RawClient.greeted(port);
    await c.expect(`USER ${user}`, 331);
    await c.expect(`PASS ${password}`, 230);
    await c.expect("TYPE I", 200);
    return c;
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Whatever arrived and has not been read as a reply. */
  get unread(): string {
    return this.buf;
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  send(line: string): void {
    this.sock.write(`${line}\r\n`);
  }

  private async line(deadline: number): Promise<string> {
    for (let i = 0; i < 1_000_000; i++) {
      const at = this.buf.indexOf("\r\n");
      if (at !== -1) {
        const l = this.buf.slice(0, at);
        this.buf = this.buf.slice(at + 2);
        return l;
      }
      if (this.ended) throw new Error(`connection closed (unread ${JSON.stringify(this.buf)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply in time (unread ${JSON.stringify(this.buf)})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wakeUp = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    throw new Error("unreachable");
  }

  /** Reads one complete reply (multi-line replies end with "CODE "). */
  async read(ms = WAIT_MS): Promise<FtpReply> {
    const deadline = Date.now() + ms;
    const first = await this.line(deadline);
    const m = /^(\d{3})([ -])(.*)$/.exec(first);
    if (!m) throw new Error(`not a reply line: ${JSON.stringify(first)}`);
    const lines = [first];
    if (m[2] === "-") {
      for (let i = 0; i < 100_000; i++) {
        const l = await this.line(deadline);
        lines.push(l);
        if (l.startsWith(`${m[1]} `)) break;
      }
    }
    return { code: Number(m[1]), lines, text: m[3]! };
  }

  async cmd(line: string, ms = WAIT_MS): Promise<FtpReply> {
    this.send(line);
    return this.read(ms);
  }

  /** Sends a command and fails unless the reply has the given code. */
  async expect(line: string, code: number, ms = WAIT_MS): Promise<FtpReply> {
    const r = await this.cmd(line, ms);
    if (r.code !== code) throw new Error(`${line}: expected ${code}, got ${r.lines.join("\n")}`);
    return r;
  }

  /** True when nothing at all arrives for ms. */
  async silentFor(ms: number): Promise<boolean> {
    await sleep(ms);
    return this.buf.length === 0 && this.firstByteAt === null;
  }

  /** EPSV and a connected data socket. */
  async passive(): Promise<net.Socket> {
    const r = await this.expect("EPSV", 229);
    const port = Number(/\(\|\|\|(\d+)\|\)/.exec(r.text)![1]);
    return bounded(
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: "127.0.0.1", port });
        s.once("connect", () => {
          s.on("error", () => undefined);
          resolve(s);
        });
        s.once("error", reject);
      }),
      WAIT_MS,
      "data connect",
    );
  }

  /**
   * Uploads `data` with `verb` (STOR/APPE) and returns the final reply (after 150), or the first reply when it is
   * not 150. The data socket is closed either way.
   */
  async upload(verb: string, file: string, data: Buffer, ms = 20_000): Promise<FtpReply> {
    const d = await this.passive();
    const first = await this.cmd(`${verb} ${file}`);
    if (first.code !== 150) {
      d.destroy();
      return first;
    }
    const done = new Promise<void>((resolve) => {
      d.once("close", () => resolve());
      d.end(data);
    });
    const final = await this.read(ms);
    await bounded(done, ms, "data socket close").catch(() => d.destroy());
    d.destroy();
    return final;
  }

  /** Downloads with RETR (or a listing verb) and returns the bytes and the final reply. */
  async download(line: string, ms = 20_000): Promise<{ data: Buffer; reply: FtpReply; first: FtpReply }> {
    const d = await this.passive();
    const chunks: Buffer[] = [];
    const ended = new Promise<void>((resolve) => {
      d.on("data", (c: Buffer) => chunks.push(c));
      d.once("close", () => resolve());
    });
    const first = await this.cmd(line);
    if (first.code !== 150 && first.code !== 125) {
      d.destroy();
      return { data: Buffer.alloc(0), reply: first, first };
    }
    const reply = await this.read(ms);
    await bounded(ended, ms, "data end");
    return { data: Buffer.concat(chunks), reply, first };
  }

  async quit(): Promise<void> {
    if (!this.ended) {
      this.send("QUIT");
      await bounded(this.closed, WAIT_MS, "close after QUIT");
    }
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** Bytes of regular files under a directory, counted independently of the server's code. */
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

/** Runs a Python script (stdlib only) with arguments; resolves with exit code and output. */
export function python(script: string, args: string[], ms = 30_000): Promise<{ code: number | null; out: string }> {
  return runProcess("python3", ["-c", script, ...args], ms);
}

/** Runs a program with a hard timeout (the child is killed by its PID when it passes). */
export function runProcess(
  cmd: string,
  args: string[],
  ms = 30_000,
  input?: string,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const t = setTimeout(() => child.kill("SIGKILL"), ms);
    child.once("close", (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
    child.stdin.on("error", () => undefined); // the program may exit without reading its input
    child.stdin.end(input ?? "");
  });
}
