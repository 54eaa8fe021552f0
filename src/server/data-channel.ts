// A session's data connection: set up by PASV/EPSV (we listen) or PORT/EPRT (we connect), opened by the next
// transfer command, and torn down after it. At most one set-up is pending; a new one replaces the old. Passive
// connections are accepted only from the control connection's peer (one from elsewhere is closed at once, and the
// set-up waits on for the peer's); active ones go only to it.
//
// After a passive connection was accepted the listener stays open for a short while (KEEP_MS), so that a client
// fetching many files in a row gets the same port back from its next PASV instead of a new listener each time.
// A kept listener serves nobody: whatever connects to it while no set-up waits is closed, and the port is given up
// (whoever connected knows it), so the next PASV gets a fresh one. Before a kept port is handed out again, one loop
// turn lets everything already waiting in its accept queue arrive (and give it up): a connection made before the
// PASV is never taken for that PASV's transfer.

import * as net from "node:net";
import type { Duplex } from "node:stream";
import { MyftpError } from "../core/errors.js";
import { sameHost, toIPv4 } from "../protocol/address.js";
import type { PassiveListener, PassivePorts } from "./passive-ports.js";

export class DataConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DataConnectionError";
  }
}

export interface DataChannelContext {
  ports: PassivePorts;
  /** Address of the control connection's peer. */
  peerAddress: string;
  /** Local address of the control connection (passive listeners bind to it). */
  localAddress: string;
  /** How long to wait for the data connection to arrive or connect. */
  timeoutMs: number;
  /** Reports a refused passive connection from a foreign address. */
  onForeignPeer(address: string | undefined): void;
}

type Setup =
  | {
      kind: "passive";
      listener: PassiveListener;
      /** The accepted connection, once it arrived. */
      socket: net.Socket | null;
      /** A connection from a foreign address came and was logged: later ones are hung up on without a log line. */
      foreignLogged: boolean;
      /** Wakes a transfer that waits for the connection. */
      notify: (() => void) | null;
      /** Replaced or torn down: a late connection is refused. */
      closed: boolean;
    }
  | { kind: "active"; host: string; port: number; family: 4 | 6 };

/** How long a passive listener is kept for the session's next PASV after its connection was accepted. */
const KEEP_MS = 2000;

export class DataChannel {
  private setup: Setup | null = null;
  private open: Duplex | null = null;
  /** A listener kept for the next PASV, and the timer that closes it when none comes. */
  private kept: PassiveListener | null = null;
  private keepTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** The passive set-up whose listener takes the next connection (it stays so after a transfer consumed it). */
  private listening: Extract<Setup, { kind: "passive" }> | null = null;

  constructor(private readonly ctx: DataChannelContext) {}

  get pending(): boolean {
    return this.setup !== null;
  }

  /** Starts listening on a passive port; returns the port. Replaces any earlier set-up. */
  async listenPassive(): Promise<number> {
    this.reset();
    if (this.kept) await new Promise<void>((resolve) => setImmediate(resolve));
    const listener = this.takeKept() ?? (await this.openListener());
    if (this.closed) {
      listener.close();
      throw new MyftpError("busy", "Session closed");
    }
    const setup: Setup = { kind: "passive", listener, socket: null, foreignLogged: false, notify: null, closed: false };
    this.setup = setup;
    this.listening = setup;
    return listener.port;
  }

  private async openListener(): Promise<PassiveListener> {
    const listener = await this.ctx.ports.open(this.ctx.localAddress);
    listener.server.on("connection", (sock: net.Socket) => this.accept(listener, sock));
    return listener;
  }

  /** A connection to one of our passive listeners: taken by the set-up waiting on that listener, or refused. */
  private accept(listener: PassiveListener, sock: net.Socket): void {
    const setup = this.listening;
    if (!setup || setup.listener !== listener || setup.closed || setup.socket) {
      sock.destroy();
      if (listener === this.kept) this.dropKept();
      return;
    }
    if (!sameHost(sock.remoteAddress, this.ctx.peerAddress)) {
      // Someone else raced for our port: hung up on, and the set-up goes on waiting for the client's own connection
      // (until the data timeout). Failing the transfer instead would let anyone who can reach the passive range break
      // every user's transfers by connecting to its ports. Logged once per set-up: whoever knocks cannot turn each
      // connection into a warning in the log.
      if (!setup.foreignLogged) this.ctx.onForeignPeer(sock.remoteAddress);
      setup.foreignLogged = true;
      sock.destroy();
      return;
    }
    setup.socket = sock;
    sock.on("error", () => undefined);
    setup.notify?.();
  }

  /** Keeps a listener whose connection was taken for the next PASV, when the port range allows. */
  private keep(listener: PassiveListener): void {
    if (this.kept || this.closed || !this.ctx.ports.mayKeep) {
      listener.close();
      return;
    }
    this.kept = listener;
    // When the range runs out, another session's PASV may take the port back.
    this.ctx.ports.keep(listener, () => this.dropKept());
    if (this.keepTimer) this.keepTimer.refresh();
    else {
      this.keepTimer = setTimeout(() => this.dropKept(), KEEP_MS);
      this.keepTimer.unref();
    }
  }

  private takeKept(): PassiveListener | null {
    const l = this.kept;
    this.kept = null;
    if (!l) return null;
    this.ctx.ports.unkeep(l);
    if (!l.server.listening) {
      l.close();
      return null;
    }
    return l;
  }

  private dropKept(): void {
    const l = this.kept;
    this.kept = null;
    if (!l) return;
    this.ctx.ports.unkeep(l);
    l.close();
  }

  /** Records the target of an active connection. Replaces any earlier set-up. */
  setActive(host: string, port: number, family: 4 | 6): void {
    this.reset();
    this.setup = { kind: "active", host, port, family };
  }

  /**
   * Produces the connected data socket for a transfer, consuming the set-up. Rejects with DataConnectionError (425)
   * when there is no set-up, nobody connects in time, or the connection fails.
   */
  async connect(signal?: AbortSignal): Promise<net.Socket> {
    const setup = this.setup;
    if (!setup) throw new MyftpError("bad-sequence", "Use PORT, EPRT, PASV or EPSV first");
    this.setup = null;
    const sock = setup.kind === "passive" ? await this.awaitPassive(setup, signal) : await this.connectActive(setup, signal);
    // No TCP_NODELAY for plain data: it flows one way in large writes, and the kernel sends what Nagle holds back of
    // the last segment with the FIN (one setsockopt less per transfer, a few percent of a small file's cost). A TLS
    // handshake goes back and forth in small writes, so the transfer sets it for PROT P.
    this.open = sock;
    sock.once("close", () => {
      if (this.open === sock) this.open = null;
    });
    return sock;
  }

  private awaitPassive(setup: Extract<Setup, { kind: "passive" }>, signal?: AbortSignal): Promise<net.Socket> {
    return new Promise<net.Socket>((resolve, reject) => {
      let timer: NodeJS.Timeout | null = null;
      const settle = () => {
        if (setup.socket) return finish(null, setup.socket);
      };
      const finish = (err: Error | null, sock?: net.Socket) => {
        if (timer) clearTimeout(timer);
        setup.closed = true;
        setup.notify = null;
        if (this.listening === setup) this.listening = null;
        signal?.removeEventListener("abort", onAbort);
        if (err) {
          setup.listener.close();
          setup.socket?.destroy();
          reject(err);
        } else {
          this.keep(setup.listener);
          resolve(sock!);
        }
      };
      const onAbort = () => finish(new DataConnectionError("Transfer aborted"));
      setup.notify = settle;
      if (setup.socket) return settle();
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      timer = setTimeout(() => finish(new DataConnectionError("Data connection timed out")), this.ctx.timeoutMs);
    });
  }

  private connectActive(setup: Extract<Setup, { kind: "active" }>, signal?: AbortSignal): Promise<net.Socket> {
    return new Promise<net.Socket>((resolve, reject) => {
      const sock = net.connect({
        host: setup.host,
        port: setup.port,
        family: setup.family,
        // A dual-stack listener ("::") reports an IPv4 client's local address as "::ffff:a.b.c.d", which an IPv4
        // socket cannot bind; use the plain IPv4 form for IPv4 targets.
        localAddress: setup.family === 4 ? (toIPv4(this.ctx.localAddress) ?? undefined) : this.ctx.localAddress,
      });
      sock.pause();
      const timer = setTimeout(() => fail(new DataConnectionError("Data connection timed out")), this.ctx.timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        sock.off("connect", onConnect);
        sock.off("error", onError);
        signal?.removeEventListener("abort", onAbort);
      };
      const fail = (err: Error) => {
        cleanup();
        sock.destroy();
        reject(err);
      };
      const onConnect = () => {
        cleanup();
        sock.on("error", () => undefined);
        resolve(sock);
      };
      const onError = (e: Error) => fail(new DataConnectionError(`Can't open data connection: ${e.message}`));
      const onAbort = () => fail(new DataConnectionError("Transfer aborted"));
      sock.once("connect", onConnect);
      sock.once("error", onError);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Drops a pending set-up (closing its port) and the open connection, if any. */
  reset(): void {
    const s = this.setup;
    this.setup = null;
    if (s?.kind === "passive") {
      s.closed = true;
      if (this.listening === s) this.listening = null;
      s.listener.close();
      s.socket?.destroy();
    }
  }

  close(): void {
    this.closed = true;
    this.reset();
    this.dropKept();
    if (this.keepTimer) clearTimeout(this.keepTimer);
    this.open?.destroy();
    this.open = null;
  }
}
