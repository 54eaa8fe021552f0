// A raw control connection for protocol tests: send exact bytes, read exactly one complete reply (multi-line
// replies included, RFC 959 §4.2), and open data connections by hand. Every wait has a timeout.

import * as net from "node:net";

export interface Reply {
  code: number;
  /** Every line of the reply without its CRLF. */
  lines: string[];
  /** The text after "CODE " / "CODE-" of the first line. */
  text: string;
  /** All lines joined with "\n". */
  all: string;
}

const DEFAULT_TIMEOUT_MS = 5000;

export type DataHow = "PASV" | "EPSV" | "PORT" | "EPRT";

export class RawFtp {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly sock: net.Socket) {
    sock.on("data", (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
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

  /** Connects; does not read the greeting (call read()). */
  static async open(port: number, host = "127.0.0.1"): Promise<RawFtp> {
    const sock = net.connect({ host, port });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("connect timed out")), DEFAULT_TIMEOUT_MS);
      sock.once("connect", () => {
        clearTimeout(t);
        resolve();
      });
      sock.once("error", (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
    return new RawFtp(sock);
  }

  /** Connects and reads the greeting, which must be 220. */
  static async connect(port: number, host = "127.0.0.1"): Promise<RawFtp> {
    const c = await RawFtp.open(port, host);
    const g = await c.read();
    if (g.code !== 220) throw new Error(`expected 220 greeting, got ${g.all}`);
    return c;
  }

  /** Connects, reads the greeting and logs in (expects 331 then 230). */
  static async login(port: number, user: string, password: string): Promise<RawFtp> {
    const c = await RawFtp.connect(port);
    const u = await c.cmd(`USER ${user}`);
    if (u.code !== 331) throw new Error(`USER: ${u.all}`);
    const p = await c.cmd(`PASS ${password}`);
    if (p.code !== 230) throw new Error(`PASS: ${p.all}`);
    return c;
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
  async cmd(line: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Reply> {
    this.send(line);
    return this.read(timeoutMs);
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
      if (this.ended) throw new Error(`connection closed while waiting for a reply (pending: ${JSON.stringify(this.buf.toString())})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a reply (pending: ${JSON.stringify(this.buf.toString())})`);
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

  /** Reads exactly one complete reply. */
  async read(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    const first = await this.nextLine(deadline);
    const m = /^(\d{3})([ -])(.*)$/.exec(first);
    if (!m) throw new Error(`malformed reply line: ${JSON.stringify(first)}`);
    const code = Number(m[1]);
    const lines = [first];
    if (m[2] === "-") {
      // RFC 959 §4.2: the reply ends with a line that starts with the same code followed by a space.
      for (let i = 0; i < 100_000; i++) {
        const l = await this.nextLine(deadline);
        lines.push(l);
        if (l.startsWith(`${m[1]} `)) break;
      }
    }
    return { code, lines, text: m[3]!, all: lines.join("\n") };
  }

  /** Resolves true if no byte arrives within ms (nothing unexpected was sent). */
  async silentFor(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.buf.length === 0;
  }

  /** Bytes received but not yet read as a reply. */
  get pending(): string {
    return this.buf.toString("utf8");
  }

  /** Sends PASV and connects to the announced port. */
  async pasv(): Promise<net.Socket> {
    const r = await this.cmd("PASV");
    if (r.code !== 227) throw new Error(`PASV: ${r.all}`);
    const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(r.text);
    if (!m) throw new Error(`bad 227: ${r.text}`);
    const host = m.slice(1, 5).join(".");
    const port = Number(m[5]) * 256 + Number(m[6]);
    return connectData(host, port);
  }

  /** Sends EPSV and connects to the announced port. */
  async epsv(): Promise<net.Socket> {
    const r = await this.cmd("EPSV");
    if (r.code !== 229) throw new Error(`EPSV: ${r.all}`);
    const m = /\(\|\|\|(\d+)\|\)/.exec(r.text);
    if (!m) throw new Error(`bad 229: ${r.text}`);
    return connectData(this.sock.remoteAddress ?? "127.0.0.1", Number(m[1]));
  }

  /** EPSV, but only returns the port (for tests that connect late or never). */
  async epsvPort(): Promise<number> {
    const r = await this.cmd("EPSV");
    if (r.code !== 229) throw new Error(`EPSV: ${r.all}`);
    return Number(/\(\|\|\|(\d+)\|\)/.exec(r.text)![1]);
  }

  /** Listens on 127.0.0.1, announces it with PORT or EPRT; the returned promise gives the accepted socket. */
  async active(kind: "PORT" | "EPRT" = "PORT"): Promise<{ reply: Reply; socket: Promise<net.Socket>; close(): void }> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    const socket = new Promise<net.Socket>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no active data connection")), DEFAULT_TIMEOUT_MS);
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

  /** Runs a download command (RETR, LIST, NLST, MLSD) and collects the data and both replies. */
  async retrieve(command: string, how: DataHow = "EPSV"): Promise<{ prelim: Reply; final: Reply; data: Buffer }> {
    const dc = await this.dataConnection(how);
    const prelim = await this.cmd(command);
    if (prelim.code !== 150 && prelim.code !== 125) {
      dc.cancel();
      return { prelim, final: prelim, data: Buffer.alloc(0) };
    }
    const data = await readAll(await dc.get());
    const final = await this.read(30_000);
    return { prelim, final, data };
  }

  /** Runs an upload command (STOR, APPE) sending data, and collects both replies. */
  async store(command: string, data: Buffer | string, how: DataHow = "EPSV"): Promise<{ prelim: Reply; final: Reply }> {
    const dc = await this.dataConnection(how);
    const prelim = await this.cmd(command);
    if (prelim.code !== 150 && prelim.code !== 125) {
      dc.cancel();
      return { prelim, final: prelim };
    }
    await writeAll(await dc.get(), data);
    const final = await this.read(30_000);
    return { prelim, final };
  }

  /** Ends the connection (without QUIT) and waits for the close. */
  async close(): Promise<void> {
    this.sock.destroy();
    await this.closed;
  }

  /** QUIT, then wait for the server to close. */
  async quit(): Promise<Reply> {
    const r = await this.cmd("QUIT");
    await withTimeout(this.closed, DEFAULT_TIMEOUT_MS, "server did not close after QUIT");
    return r;
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(what)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

export function connectData(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error("data connect timed out"));
    }, DEFAULT_TIMEOUT_MS);
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

/** Reads a data socket to its end. */
export function readAll(sock: net.Socket, timeoutMs = 30_000): Promise<Buffer> {
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
export function writeAll(sock: net.Socket, data: Buffer | string, timeoutMs = 30_000): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      sock.end(data, () => resolve());
    }),
    timeoutMs,
    "data write did not finish",
  );
}
