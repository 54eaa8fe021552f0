// A raw FTP control connection for protocol tests: send exact bytes, read exactly one complete reply (multi-line
// replies included, RFC 959 §4.2), and open data connections by hand (PASV, EPSV, PORT, EPRT). FTPS (RFC 4217) too:
// AUTH TLS upgrades the control socket, implicit TLS speaks it from the first byte, and PROT P data connections are
// secured by hand, offering the control connection's TLS session or not. Every wait has a timeout.

import { mkdirSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { withTimeout } from "./util.js";

export interface Reply {
  code: number;
  /** Every line of the reply without its CRLF. */
  lines: string[];
  /** The text after "CODE " / "CODE-" of the first line. */
  text: string;
  /** All lines joined with "\n". */
  all: string;
}

export type DataHow = "PASV" | "EPSV" | "PORT" | "EPRT";

export interface ConnectOptions {
  /** The server's address; default 127.0.0.1. */
  host?: string;
  /** The source address of the control connection and of its passive data connections (e.g. 127.0.0.2). */
  localAddress?: string;
  /** Speak TLS from the first byte (implicit FTPS). */
  implicit?: boolean;
  /** TLS options for implicit TLS (the certificate is not checked unless these say so). */
  tls?: tls.ConnectionOptions;
}

export interface LoginOptions {
  /** Sends TYPE with this type after the login (and expects 200). */
  type?: "A" | "I";
}

export interface DataOptions {
  /** How the data connection is set up; default EPSV. */
  how?: DataHow;
  /** Speak TLS on the data connection (for PROT P); default false. */
  secure?: boolean;
  /** With `secure`: offer the control connection's TLS session for resumption; default true. */
  resume?: boolean;
  /** With `secure`: more TLS options for the data connection. */
  tls?: tls.ConnectionOptions;
  /** How long to wait for the final reply; default 30 s. */
  timeoutMs?: number;
}

export interface Retrieved {
  /** The reply to the command (150 or 125 when the transfer ran). */
  prelim: Reply;
  /** The reply that ends the transfer (the same as `prelim` when the transfer did not start). */
  final: Reply;
  data: Buffer;
  /** With `secure`: whether the data connection resumed a TLS session; else null. */
  reused: boolean | null;
  /** Why the data connection failed (a TLS handshake, a reset), or null. */
  dataError: string | null;
}

export interface Stored {
  prelim: Reply;
  final: Reply;
  dataError: string | null;
}

const WAIT_MS = 5000;
const TRANSFER_MS = 30_000;
/** The tests' certificates are self-signed: a client checks them only where a test says so. */
const CLIENT_TLS: tls.ConnectionOptions = { rejectUnauthorized: false };

export class RawFtp {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private ended = false;
  private markClosed!: () => void;
  /** Resolves once the control connection has closed, whichever side closed it. */
  readonly closed: Promise<void>;
  /** When (Date.now()) the first byte arrived, for ordering checks between connections. */
  firstByteAt: number | null = null;
  /** The latest TLS session the server gave this control connection (TLS 1.3 tickets arrive after the handshake). */
  session: Buffer | undefined;

  private constructor(
    /** The control socket: a TLS socket after AUTH TLS or with implicit TLS. */
    public sock: net.Socket,
    private readonly host: string,
    private readonly localAddress: string | undefined,
  ) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.attach(sock);
  }

  private readonly onData = (c: Buffer): void => {
    this.firstByteAt ??= Date.now();
    this.buf = Buffer.concat([this.buf, c]);
    this.wake();
  };

  private readonly onClose = (): void => {
    this.ended = true;
    this.wake();
    this.markClosed();
  };

  private attach(sock: net.Socket): void {
    sock.on("data", this.onData);
    sock.on("error", () => undefined);
    sock.once("close", this.onClose);
    if (sock instanceof tls.TLSSocket) sock.on("session", (s: Buffer) => (this.session = s));
  }

  /** Connects; does not read the greeting (call read()). */
  static async open(port: number, opts: ConnectOptions = {}): Promise<RawFtp> {
    const host = opts.host ?? "127.0.0.1";
    const implicit: tls.ConnectionOptions & { localAddress?: string } = { host, port, localAddress: opts.localAddress, ...CLIENT_TLS, ...opts.tls };
    const sock = opts.implicit ? await secureClient(tls.connect(implicit)) : await connectData(host, port, opts.localAddress);
    return new RawFtp(sock, host, opts.localAddress);
  }

  /** Connects and reads the greeting, which must be 220. */
  static async connect(port: number, opts: ConnectOptions = {}): Promise<RawFtp> {
    const c = await RawFtp.open(port, opts);
    try {
      const g = await c.read();
      if (g.code !== 220) throw new Error(`expected a 220 greeting, got ${g.all}`);
      return c;
    } catch (err) {
      c.sock.destroy();
      throw err;
    }
  }

  /** Connects, reads the greeting and logs in (see login()). */
  static async login(port: number, user: string, password: string, opts: ConnectOptions & LoginOptions = {}): Promise<RawFtp> {
    const c = await RawFtp.connect(port, opts);
    try {
      await c.login(user, password, opts);
      return c;
    } catch (err) {
      c.sock.destroy();
      throw err;
    }
  }

  /** USER then PASS, expecting 331 then 230; then TYPE when asked for. */
  async login(user: string, password: string, opts: LoginOptions = {}): Promise<void> {
    await this.expect(`USER ${user}`, 331);
    await this.expect(`PASS ${password}`, 230);
    if (opts.type) await this.expect(`TYPE ${opts.type}`, 200);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Sends a line with CRLF. */
  send(line: string): void {
    this.sock.write(Buffer.concat([Buffer.from(line, "utf8"), Buffer.from("\r\n")]));
  }

  /** Sends bytes exactly as given. */
  sendRaw(bytes: Buffer | string): void {
    this.sock.write(bytes);
  }

  /** Sends a line and reads its reply. */
  async cmd(line: string, timeoutMs = WAIT_MS): Promise<Reply> {
    this.send(line);
    return this.read(timeoutMs);
  }

  /** Sends a line and fails unless its reply has the given code. */
  async expect(line: string, code: number, timeoutMs = WAIT_MS): Promise<Reply> {
    const r = await this.cmd(line, timeoutMs);
    if (r.code !== code) throw new Error(`${line}: expected ${code}, got ${r.all}`);
    return r;
  }

  /** Takes one line (without CRLF) from the buffer, or null when none is complete. */
  private takeLine(): string | null {
    const i = this.buf.indexOf("\r\n");
    if (i === -1) return null;
    const line = this.buf.subarray(0, i).toString("utf8");
    this.buf = this.buf.subarray(i + 2);
    return line;
  }

  private async nextLine(deadline: number): Promise<string> {
    for (;;) {
      const l = this.takeLine();
      if (l !== null) return l;
      if (this.ended) throw new Error(`connection closed while waiting for a reply (pending: ${JSON.stringify(this.pending)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a reply (pending: ${JSON.stringify(this.pending)})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** The user's usage in bytes, as SITE QUOTA reports it. */
  async usedBytes(): Promise<number> {
    const r = await this.expect("SITE QUOTA", 200);
    return Number(/used (\d+)/.exec(r.text)![1]);
  }

  /** Reads exactly one complete reply. */
  async read(timeoutMs = WAIT_MS): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    const first = await this.nextLine(deadline);
    const m = /^(\d{3})([ -])(.*)$/.exec(first);
    if (!m) throw new Error(`malformed reply line: ${JSON.stringify(first)}`);
    const lines = [first];
    if (m[2] === "-") {
      // RFC 959 §4.2: the reply ends with a line that starts with the same code followed by a space.
      for (let i = 0; i < 100_000; i++) {
        const l = await this.nextLine(deadline);
        lines.push(l);
        if (l.startsWith(`${m[1]} `)) break;
      }
    }
    return { code: Number(m[1]), lines, text: m[3]!, all: lines.join("\n") };
  }

  /** Resolves true if no byte is waiting to be read after ms (nothing unexpected was sent). */
  async silentFor(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.buf.length === 0;
  }

  /** Bytes received but not yet read as a reply. */
  get pending(): string {
    return this.buf.toString("utf8");
  }

  /** True once the control connection has closed. */
  get isClosed(): boolean {
    return this.ended;
  }

  /** AUTH TLS (or `verb`); on 234, the TLS handshake over the same socket. Returns the AUTH reply. */
  async authTls(opts: tls.ConnectionOptions = {}, verb = "AUTH TLS"): Promise<Reply> {
    const r = await this.cmd(verb);
    if (r.code !== 234) return r;
    const raw = this.sock;
    raw.off("data", this.onData);
    raw.off("close", this.onClose);
    let secure: tls.TLSSocket;
    try {
      secure = await secureClient(tls.connect({ socket: raw, ...CLIENT_TLS, ...opts }));
    } catch (err) {
      if (raw.closed) this.onClose();
      else raw.once("close", this.onClose);
      throw err;
    }
    this.sock = secure;
    this.attach(secure);
    return r;
  }

  /** PBSZ 0 and PROT P (both must be answered 200). */
  async protect(): Promise<void> {
    const a = await this.cmd("PBSZ 0");
    const b = await this.cmd("PROT P");
    if (a.code !== 200 || b.code !== 200) throw new Error(`PBSZ/PROT: ${a.all} / ${b.all}`);
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

  /** Sends PASV and connects to the announced address and port. */
  async pasv(): Promise<net.Socket> {
    const r = await this.expect("PASV", 227);
    const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(r.text);
    if (!m) throw new Error(`bad 227: ${r.text}`);
    const host = m.slice(1, 5).join(".");
    const port = Number(m[5]) * 256 + Number(m[6]);
    return connectData(host, port, this.localAddress);
  }

  /** Sends EPSV and connects to the announced port. */
  async epsv(): Promise<net.Socket> {
    return connectData(this.host, await this.epsvPort(), this.localAddress);
  }

  /** EPSV, but only returns the port (for tests that connect late, from elsewhere, or never). */
  async epsvPort(): Promise<number> {
    const r = await this.expect("EPSV", 229);
    const m = /\(\|\|\|(\d+)\|\)/.exec(r.text);
    if (!m) throw new Error(`bad 229: ${r.text}`);
    return Number(m[1]);
  }

  /** Listens on 127.0.0.1, announces it with PORT or EPRT; the returned promise gives the accepted socket. */
  async active(kind: "PORT" | "EPRT" = "PORT"): Promise<{ reply: Reply; socket: Promise<net.Socket>; close(): void }> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    const socket = new Promise<net.Socket>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no active data connection")), WAIT_MS);
      server.once("connection", (s) => {
        clearTimeout(t);
        s.on("error", () => undefined);
        server.close();
        resolve(s);
      });
    });
    socket.catch(() => undefined);
    const arg = kind === "PORT" ? `127,0,0,1,${port >> 8},${port & 255}` : `|1|127.0.0.1|${port}|`;
    const reply = await this.cmd(`${kind} ${arg}`);
    return { reply, socket, close: () => server.close() };
  }

  /** Sets up a data connection the given way (passive: connected now; active: accepted later). */
  async dataConnection(how: DataHow = "EPSV"): Promise<{ get(): Promise<net.Socket>; cancel(): void }> {
    if (how === "PASV" || how === "EPSV") {
      const sock = how === "PASV" ? await this.pasv() : await this.epsv();
      return { get: async () => sock, cancel: () => sock.destroy() };
    }
    const a = await this.active(how);
    if (a.reply.code !== 200) {
      a.close();
      throw new Error(`${how}: ${a.reply.all}`);
    }
    return {
      get: () => a.socket,
      cancel: () => {
        a.close();
        a.socket.then((s) => s.destroy(), () => undefined);
      },
    };
  }

  /** Starts TLS as the client on a data connection, offering the control session unless `resume` is false. */
  private secureData(raw: net.Socket, opts: DataOptions): Promise<tls.TLSSocket> {
    const session = opts.resume === false ? undefined : this.session;
    return secureClient(tls.connect({ socket: raw, ...CLIENT_TLS, ...opts.tls, session }));
  }

  /** Runs a download command (RETR, LIST, NLST, MLSD) and collects the data and both replies. */
  async retrieve(command: string, opts: DataOptions = {}): Promise<Retrieved> {
    const dc = await this.dataConnection(opts.how);
    const prelim = await this.cmd(command);
    if (prelim.code !== 150 && prelim.code !== 125) {
      dc.cancel();
      return { prelim, final: prelim, data: Buffer.alloc(0), reused: null, dataError: null };
    }
    const raw = await dc.get();
    let data: Buffer = Buffer.alloc(0);
    let reused: boolean | null = null;
    let dataError: string | null = null;
    try {
      let sock = raw;
      if (opts.secure) {
        const t = await this.secureData(raw, opts);
        reused = t.isSessionReused();
        sock = t;
      }
      data = await readAll(sock);
    } catch (err) {
      dataError = (err as Error).message;
      raw.destroy();
    }
    const final = await this.read(opts.timeoutMs ?? TRANSFER_MS);
    return { prelim, final, data, reused, dataError };
  }

  /**
   * Runs an upload command (STOR, APPE) sending `data`, and collects both replies. The final reply is read while the
   * data goes out, so a transfer the server ends early (552 over quota, 426) is seen as the server answers it.
   */
  async store(command: string, data: Buffer | string, opts: DataOptions = {}): Promise<Stored> {
    const dc = await this.dataConnection(opts.how);
    const prelim = await this.cmd(command);
    if (prelim.code !== 150 && prelim.code !== 125) {
      dc.cancel();
      return { prelim, final: prelim, dataError: null };
    }
    const raw = await dc.get();
    const writing = (async () => writeAll(opts.secure ? await this.secureData(raw, opts) : raw, data))().then(
      () => null,
      (err: Error) => err.message,
    );
    const final = await this.read(opts.timeoutMs ?? TRANSFER_MS);
    const dataError = await withTimeout(writing, WAIT_MS, "data write did not end after the final reply").catch((err: Error) => err.message);
    if (dataError !== null) raw.destroy();
    return { prelim, final, dataError };
  }

  /** Ends the connection (without QUIT) and waits for the close. */
  async close(): Promise<void> {
    this.sock.destroy();
    await withTimeout(this.closed, WAIT_MS, "control connection did not close");
  }

  /** QUIT, then wait for the server to close. */
  async quit(): Promise<Reply> {
    const r = await this.cmd("QUIT");
    await withTimeout(this.closed, WAIT_MS, "server did not close after QUIT");
    return r;
  }
}

/** Logs in as alice (password "secret") in binary mode, and adds the connection to `clients` for the clean-up. */
export async function loginBinary(port: number, clients: RawFtp[]): Promise<RawFtp> {
  const c = await RawFtp.login(port, "alice", "secret");
  clients.push(c);
  await c.expect("TYPE I", 200);
  return c;
}

/** The port a 227 (PASV) or 229 (EPSV) reply announces. */
export function announcedPort(text: string): number {
  const e = /\(\|\|\|(\d+)\|\)/.exec(text);
  if (e) return Number(e[1]);
  const p = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(text);
  if (!p) throw new Error(`no port announced in: ${text}`);
  return Number(p[5]) * 256 + Number(p[6]);
}

/**
 * Connects to a passive port on 127.0.0.1 (from `from`), sends RETR, and reads the data; gives the final reply's code,
 * or the refusal's when the transfer did not start.
 */
export async function retrieveOn(c: RawFtp, port: number, name: string, from?: string): Promise<{ code: number; data: Buffer }> {
  const data = await connectData("127.0.0.1", port, from);
  const prelim = await c.cmd(`RETR ${name}`);
  if (prelim.code !== 150) {
    data.destroy();
    return { code: prelim.code, data: Buffer.alloc(0) };
  }
  const got = await readAll(data, 10_000);
  return { code: (await c.read()).code, data: got };
}

/** True when a TCP connect to the port on 127.0.0.1 is refused (nothing listens), false when something accepts it. */
export async function portRefused(port: number): Promise<boolean> {
  try {
    const sock = await connectData("127.0.0.1", port);
    sock.destroy();
    return false;
  } catch {
    return true;
  }
}

/** A TCP connection to host:port, optionally from a given local address. */
export function connectData(host: string, port: number, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error("connect timed out"));
    }, WAIT_MS);
    s.once("connect", () => {
      clearTimeout(t);
      s.on("error", () => undefined);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
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
    "TLS handshake",
  );
}

/** Reads a data socket to its end. */
export function readAll(sock: net.Socket, timeoutMs = TRANSFER_MS): Promise<Buffer> {
  return withTimeout(
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      sock.on("data", (c: Buffer) => chunks.push(c));
      sock.once("end", () => resolve(Buffer.concat(chunks)));
      sock.once("error", reject);
      sock.once("close", () => resolve(Buffer.concat(chunks)));
    }),
    timeoutMs,
    "data connection did not end",
  );
}

/** Writes everything and ends the socket; resolves once the peer has it all. */
export function writeAll(sock: net.Socket, data: Buffer | string, timeoutMs = TRANSFER_MS): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      sock.end(data, () => resolve());
    }),
    timeoutMs,
    "data write did not finish",
  );
}

/**
 * A new directory `name` in `home`, and a session from `login` whose working directory it is: a test of its own
 * directory on a server the tests of a file share.
 */
export async function sessionInNewDir(login: () => Promise<RawFtp>, home: string, name: string): Promise<{ c: RawFtp; dir: string; vdir: string }> {
  const dir = path.join(home, name);
  mkdirSync(dir);
  const c = await login();
  await c.expect(`CWD /${name}`, 250);
  return { c, dir, vdir: `/${name}` };
}
