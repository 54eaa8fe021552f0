// A raw FTPS client for the TLS tests: exact replies, AUTH TLS upgrade or implicit TLS, and passive data
// connections secured by hand with or without offering the control connection's TLS session. Every wait is bounded.

import { execFile } from "node:child_process";
import { chmodSync, mkdirSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { makeCertificate } from "../../src/cli/cert.js";
import { connectData, readAll, writeAll } from "../helpers/raw-ftp.js";
import { withTimeout } from "../helpers/util.js";
import { tempDir } from "../helpers/myftpd.js";

export interface Reply {
  code: number;
  lines: string[];
  text: string;
}

const WAIT_MS = 5000;

/** A certificate for localhost/127.0.0.1 made by `myftpd cert`'s code, in a fresh temp dir. */
export async function testCertificate(): Promise<{ dir: string; cert: string; key: string }> {
  const dir = tempDir("myftp-tls-");
  await makeCertificate(dir, { host: "localhost", days: 2 });
  return { dir, cert: path.join(dir, "tls", "cert.pem"), key: path.join(dir, "tls", "key.pem") };
}

const CLIENT_TLS: tls.ConnectionOptions = { rejectUnauthorized: false };

export interface ConnectOptions {
  implicit?: boolean;
  tls?: tls.ConnectionOptions;
  localAddress?: string;
}

/** A TCP connection to 127.0.0.1:port, from a chosen loopback source address. */
export function connectFrom(port: number, localAddress?: string): Promise<net.Socket> {
  if (!localAddress) return connectData("127.0.0.1", port);
  return withTimeout(
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port, localAddress });
      s.once("connect", () => {
        s.off("error", reject);
        s.on("error", () => undefined);
        resolve(s);
      });
      s.once("error", reject);
    }),
    WAIT_MS,
    "connect timed out",
  );
}

export class FtpsControl {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private ended = false;
  /** The latest TLS session the server gave this control connection (TLS 1.3 tickets arrive after the handshake). */
  session: Buffer | undefined;
  closed!: Promise<void>;

  private constructor(public sock: net.Socket) {
    this.listen(sock);
  }

  private readonly onData = (c: Buffer) => {
    this.buf = Buffer.concat([this.buf, c]);
    this.wake();
  };

  private listen(sock: net.Socket): void {
    sock.on("data", this.onData);
    sock.on("error", () => undefined);
    this.closed = new Promise((resolve) =>
      sock.once("close", () => {
        this.ended = true;
        this.wake();
        resolve();
      }),
    );
    if (sock instanceof tls.TLSSocket) sock.on("session", (s: Buffer) => (this.session = s));
  }

  /** Connects and reads the greeting (which must be 220); `implicit` speaks TLS from the first byte. */
  static async connect(port: number, opts: ConnectOptions = {}): Promise<FtpsControl> {
    const c = await FtpsControl.open(port, opts);
    const g = await c.read();
    if (g.code !== 220) throw new Error(`expected 220, got ${g.code} ${g.text}`);
    return c;
  }

  /** Connects without reading the greeting; `localAddress` picks the source address (e.g. 127.0.0.2). */
  static async open(port: number, opts: ConnectOptions = {}): Promise<FtpsControl> {
    const sock = opts.implicit
      ? await secureClient(tls.connect({ host: "127.0.0.1", port, localAddress: opts.localAddress, ...CLIENT_TLS, ...opts.tls }))
      : await connectFrom(port, opts.localAddress);
    return new FtpsControl(sock);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  send(line: string): void {
    this.sock.write(`${line}\r\n`);
  }

  async cmd(line: string, timeoutMs = WAIT_MS): Promise<Reply> {
    this.send(line);
    return this.read(timeoutMs);
  }

  private async nextLine(deadline: number): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf("\r\n");
      if (i !== -1) {
        const line = this.buf.subarray(0, i).toString("utf8");
        this.buf = this.buf.subarray(i + 2);
        return line;
      }
      if (this.ended) throw new Error(`connection closed while waiting for a reply (pending ${JSON.stringify(this.buf.toString())})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a reply (pending ${JSON.stringify(this.buf.toString())})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  async read(timeoutMs = WAIT_MS): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    const first = await this.nextLine(deadline);
    const m = /^(\d{3})([ -])(.*)$/.exec(first);
    if (!m) throw new Error(`malformed reply ${JSON.stringify(first)}`);
    const lines = [first];
    if (m[2] === "-") {
      for (;;) {
        const l = await this.nextLine(deadline);
        lines.push(l);
        if (l.startsWith(`${m[1]} `)) break;
      }
    }
    return { code: Number(m[1]), lines, text: m[3]! };
  }

  /** AUTH TLS, then the TLS handshake over the same socket. Returns the AUTH reply. */
  async authTls(opts: tls.ConnectionOptions = {}, verb = "AUTH TLS"): Promise<Reply> {
    const r = await this.cmd(verb);
    if (r.code !== 234) return r;
    const raw = this.sock;
    raw.off("data", this.onData);
    raw.removeAllListeners("close");
    const secure = await secureClient(tls.connect({ socket: raw, ...CLIENT_TLS, ...opts }));
    this.sock = secure;
    this.ended = false;
    this.listen(secure);
    return r;
  }

  async login(user: string, password: string): Promise<void> {
    const u = await this.cmd(`USER ${user}`);
    if (u.code !== 331) throw new Error(`USER: ${u.code} ${u.text}`);
    const p = await this.cmd(`PASS ${password}`);
    if (p.code !== 230) throw new Error(`PASS: ${p.code} ${p.text}`);
    const t = await this.cmd("TYPE I");
    if (t.code !== 200) throw new Error(`TYPE I: ${t.code} ${t.text}`);
  }

  /** PBSZ 0 and PROT P (both must succeed). */
  async protect(): Promise<void> {
    const a = await this.cmd("PBSZ 0");
    const b = await this.cmd("PROT P");
    if (a.code !== 200 || b.code !== 200) throw new Error(`PBSZ/PROT: ${a.code} ${b.code}`);
  }

  /** EPSV and a TCP connection to the announced port. */
  async epsv(): Promise<net.Socket> {
    const r = await this.cmd("EPSV");
    if (r.code !== 229) throw new Error(`EPSV: ${r.code} ${r.text}`);
    return connectData("127.0.0.1", Number(/\(\|\|\|(\d+)\|\)/.exec(r.text)![1]));
  }

  /**
   * Runs a download command over a passive connection. `secure`: wrap the data connection in TLS, offering the
   * control session when `resume` is true. A TLS failure on the data side is reported in `dataError`.
   */
  async retrieve(
    command: string,
    data: { secure: boolean; resume?: boolean; tls?: tls.ConnectionOptions } = { secure: true, resume: true },
  ): Promise<{ prelim: Reply; final: Reply; data: Buffer; reused: boolean | null; dataError: string | null }> {
    const raw = await this.epsv();
    const prelim = await this.cmd(command);
    if (prelim.code !== 150) {
      raw.destroy();
      return { prelim, final: prelim, data: Buffer.alloc(0), reused: null, dataError: null };
    }
    let sock: net.Socket = raw;
    let reused: boolean | null = null;
    let dataError: string | null = null;
    let bytes = Buffer.alloc(0);
    try {
      if (data.secure) {
        const t = await secureClient(tls.connect({ socket: raw, ...CLIENT_TLS, ...data.tls, session: data.resume ? this.session : undefined }));
        reused = t.isSessionReused();
        sock = t;
      }
      bytes = await readAll(sock);
    } catch (err) {
      dataError = (err as Error).message;
      raw.destroy();
    }
    const final = await this.read(30_000);
    return { prelim, final, data: bytes, reused, dataError };
  }

  /** Runs an upload command over a passive TLS connection that resumes the control session. */
  async store(command: string, payload: Buffer): Promise<{ prelim: Reply; final: Reply }> {
    const raw = await this.epsv();
    const prelim = await this.cmd(command);
    if (prelim.code !== 150) {
      raw.destroy();
      return { prelim, final: prelim };
    }
    const t = await secureClient(tls.connect({ socket: raw, ...CLIENT_TLS, session: this.session }));
    await writeAll(t, payload);
    const final = await this.read(30_000);
    return { prelim, final };
  }

  /** Waits until the server has sent a TLS session (ticket) for this control connection. */
  async waitSession(): Promise<Buffer> {
    // NOOP makes the client read, which is when a TLS 1.3 ticket sent after the handshake is taken in.
    // Under TLS 1.2 the session came with the handshake, possibly before our listener was attached.
    if (!this.session && (this.sock as tls.TLSSocket).getProtocol?.() === "TLSv1.2") {
      this.session = (this.sock as tls.TLSSocket).getSession();
    }
    for (let i = 0; i < 50 && !this.session; i++) await this.cmd("NOOP");
    if (!this.session) throw new Error("server sent no TLS session");
    return this.session;
  }

  async close(): Promise<void> {
    this.sock.destroy();
    await withTimeout(this.closed, WAIT_MS, "control connection did not close");
  }
}

/** Resolves once a client TLS socket finished its handshake. */
export function secureClient(sock: tls.TLSSocket, timeoutMs = WAIT_MS): Promise<tls.TLSSocket> {
  return withTimeout(
    new Promise<tls.TLSSocket>((resolve, reject) => {
      sock.once("secureConnect", () => {
        sock.off("error", reject);
        sock.on("error", () => undefined);
        resolve(sock);
      });
      sock.once("error", reject);
      sock.once("close", () => reject(new Error("closed during the TLS handshake")));
    }),
    timeoutMs,
    "TLS handshake timed out",
  );
}

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a client program with a time limit; never throws for a non-zero exit. */
export function runTool(cmd: string, args: string[], opts: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, cwd: opts.cwd, env: opts.env ?? process.env, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as NodeJS.ErrnoException).code === "number" ? ((err as unknown as { code: number }).code) : null) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** A private scratch directory for client-side files. */
export function clientDir(): string {
  const d = tempDir("myftp-client-");
  mkdirSync(d, { recursive: true });
  chmodSync(d, 0o700);
  return d;
}
