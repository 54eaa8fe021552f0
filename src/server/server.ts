// The FTP server: listeners, per-address limits, the admission queue, and the sessions it runs.

import { realpathSync } from "node:fs";
import * as net from "node:net";
import type { SecureContext } from "node:tls";
import type { Duplex } from "node:stream";
import pino, { type Logger } from "pino";
import { Admission } from "../core/admission.js";
import { LoginDefender } from "../core/login-defender.js";
import { QuotaManager } from "../core/quota.js";
import { canonicalAddress } from "../protocol/address.js";
import { formatReply } from "../protocol/reply.js";
import { verifyPassword } from "../users/password.js";
import { isValidUserName, type UserRecord, type UserStore } from "../users/store.js";
import { WorkerPool, workerScript } from "../workers/pool.js";
import type { HashRequest, HashResult } from "../workers/hash-types.js";
import type { CommandSpec } from "./commands/table.js";
import type { ServerContext, SessionOptions } from "./context.js";
import { PassivePorts } from "./passive-ports.js";
import { Session, type LoggedInUser } from "./session.js";
import { TlsSupport, type TlsMaterial } from "./tls.js";
import { defaultTransferProcesses, TransferProcesses } from "./transfer-processes.js";

export interface ServerOptions {
  host: string;
  port: number;
  users: UserStore;
  /** How often the user store is checked for changes made by the `myftpd user` commands (ms; default 1000). */
  accountSyncMs?: number;
  pasvRange: [number, number];
  pasvAddress?: string | null;
  idleTimeoutMs?: number;
  /** How long a session may go on without logging in, commands or not (ms; default 60 s; 0 = no limit). */
  loginTimeoutMs?: number;
  dataTimeoutMs?: number;
  maxSessions?: number;
  maxQueue?: number;
  queueTimeoutMs?: number;
  maxSessionsPerUser?: number;
  maxConnectionsPerIp?: number;
  hashWorkers?: number;
  /** Processes that copy binary file data (0 = copy in this process); default defaultTransferProcesses(). */
  transferProcesses?: number;
  maxLoginFailures?: number;
  banMs?: number;
  loginFailureDelayMs?: number;
  greeting?: string;
  logger?: Logger;
  /** How long running transfers may go on after close() before they are cut. */
  shutdownGraceMs?: number;
  /** Certificate and key for AUTH TLS, PROT P and implicit FTPS; without them the server speaks plain FTP only. */
  tls?: TlsMaterial | null;
  /** Also listen for implicit FTPS on this port (0 = any free port); needs `tls`. */
  implicitTlsPort?: number | null;
  /** Refuse USER/PASS before AUTH TLS (530) and transfers under PROT C (521); needs `tls`. */
  requireTls?: boolean;
  /** Refuse PROT P data connections that do not resume the control connection's TLS session (425). */
  requireTlsSessionReuse?: boolean;
  /**
   * The server's own files and directories (the data directory with the user store, the TLS key and certificate). A
   * user whose home holds one of them is refused at login, since the session could read or replace it.
   */
  protectedPaths?: readonly string[];
}

/** Counts `sock` under `key` in `counts` until it closes. */
function countWhileOpen(counts: Map<string, number>, key: string, sock: net.Socket): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
  sock.once("close", () => {
    const n = (counts.get(key) ?? 1) - 1;
    if (n <= 0) counts.delete(key);
    else counts.set(key, n);
  });
}

/** Refusals on the implicit FTPS port waiting for their TLS handshake at once, per address (see accept). */
const MAX_TLS_REFUSALS_PER_IP = 4;

/** Bytes a queued client may send before it is paused (it gets no reply until its turn). */
const QUEUED_INPUT_LIMIT = 16 * 1024;

export class FtpServer implements ServerContext {
  readonly options: SessionOptions;
  readonly log: Logger;
  readonly passivePorts: PassivePorts;
  readonly users: UserStore;
  readonly quota: QuotaManager;
  readonly hashPool: WorkerPool<HashRequest, HashResult>;
  readonly transfers: TransferProcesses;
  readonly defender: LoginDefender;
  readonly admission: Admission;
  tls: { context: SecureContext } | null = null;
  transfersRunning = 0;
  policy?: (session: Session, verb: string, spec: CommandSpec) => { code: number; text: string } | null;
  secureData?: (session: Session, sock: net.Socket) => Promise<Duplex>;
  upgradeControl?: (session: Session) => Promise<void>;

  private readonly listeners: net.Server[] = [];
  private readonly sessions = new Set<Session>();
  /** Looks at the user store for changes made by `myftpd user` commands (see syncAccounts). */
  private accountWatch: NodeJS.Timeout | null = null;
  private syncing = false;
  /** The last look at a changed store could not be applied (the store could not be read). */
  private syncPending = false;
  private readonly perIp = new Map<string, number>();
  /** Refused connections on the implicit FTPS port still in their TLS handshake, per address. */
  private readonly refusingTls = new Map<string, number>();
  private readonly perUser = new Map<string, number>();
  private readonly pendingSockets = new Set<net.Socket>();
  private readonly maxConnectionsPerIp: number;
  private readonly shutdownGraceMs: number;
  private closing: Promise<void> | null = null;
  /** Set the moment close() is called, before any session is told: nothing new starts after it. */
  private stopping = false;
  private readonly tlsSupport: TlsSupport | null = null;
  /** Port of the implicit FTPS listener, once listening. */
  implicitTlsPort: number | null = null;

  constructor(private readonly opts: ServerOptions) {
    this.log = opts.logger ?? pino({ level: "silent" });
    this.users = opts.users;
    this.options = {
      greeting: opts.greeting ?? "myftpd ready",
      idleTimeoutMs: opts.idleTimeoutMs ?? 300_000,
      loginTimeoutMs: opts.loginTimeoutMs ?? 60_000,
      dataTimeoutMs: opts.dataTimeoutMs ?? 30_000,
      pasvAddress: opts.pasvAddress ?? null,
      maxSessionsPerUser: opts.maxSessionsPerUser ?? 10,
      loginFailureDelayMs: opts.loginFailureDelayMs ?? 1000,
      requireTls: opts.requireTls ?? false,
      requireTlsSessionReuse: opts.requireTlsSessionReuse ?? false,
      protectedPaths: opts.protectedPaths ?? [],
    };
    if (opts.tls) {
      const t = new TlsSupport(opts.tls, this.options, this.log);
      this.tlsSupport = t;
      this.tls = { context: t.context };
      this.upgradeControl = (s) => t.upgradeControl(s);
      this.secureData = (s, sock) => t.secureData(s, sock);
      this.policy = (s, verb, spec) => t.policy(s, verb, spec);
    } else if (this.options.requireTls || opts.implicitTlsPort != null) {
      throw new Error("requireTls and implicitTlsPort need a TLS certificate and key");
    }
    this.passivePorts = new PassivePorts(opts.pasvRange[0], opts.pasvRange[1]);
    this.quota = new QuotaManager(this.users, this.log);
    this.hashPool = new WorkerPool(workerScript("hash-worker"), opts.hashWorkers ?? 2);
    this.transfers = new TransferProcesses(opts.transferProcesses ?? defaultTransferProcesses(), this.log);
    this.admission = new Admission({
      maxActive: opts.maxSessions ?? 100,
      maxQueue: opts.maxQueue ?? 100,
      queueTimeoutMs: opts.queueTimeoutMs ?? 60_000,
    });
    this.maxConnectionsPerIp = opts.maxConnectionsPerIp ?? 20;
    this.shutdownGraceMs = opts.shutdownGraceMs ?? 3000;
    this.defender = new LoginDefender(
      {
        maxFailures: opts.maxLoginFailures ?? 5,
        banMs: opts.banMs ?? 900_000,
        baseDelayMs: this.options.loginFailureDelayMs,
        maxDelayMs: Math.max(this.options.loginFailureDelayMs, 8000),
      },
      (e) => this.log.warn(e, e.event),
    );
  }

  /** Starts listening on the control port; resolves with the bound port. */
  async listen(): Promise<number> {
    const server = net.createServer({ pauseOnConnect: false, noDelay: true }, (sock) => this.accept(sock));
    await this.bind(server, this.opts.host, this.opts.port);
    this.listeners.push(server);
    if (!this.accountWatch && this.users.changedElsewhere) {
      this.users.changedElsewhere();
      this.accountWatch = setInterval(() => void this.syncAccounts(), this.opts.accountSyncMs ?? 1000);
      this.accountWatch.unref();
    }
    if (this.tlsSupport && this.opts.implicitTlsPort != null) {
      const implicit = this.tlsSupport.implicitListener((raw, secure) => this.accept(raw, secure));
      await this.bind(implicit, this.opts.host, this.opts.implicitTlsPort);
      this.implicitTlsPort = (implicit.address() as net.AddressInfo).port;
    }
    return (server.address() as net.AddressInfo).port;
  }

  /** Binds an extra listener (e.g. implicit TLS) whose sockets go through the same admission path. */
  async bind(server: net.Server, host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (err) => this.log.error({ err }, "listener error"));
    if (!this.listeners.includes(server)) this.listeners.push(server);
  }

  get port(): number {
    return (this.listeners[0]?.address() as net.AddressInfo | null)?.port ?? 0;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Entry for every new control connection. On the implicit FTPS port `secure` does the TLS handshake: the
   * connection counts against its address from the moment it is accepted, so connections that never finish a
   * handshake cannot get round the limit, and a refusal is sent once TLS is up.
   */
  accept(sock: net.Socket, secure?: (raw: net.Socket) => Promise<net.Socket>): void {
    if (this.stopping) {
      sock.destroy();
      return;
    }
    sock.on("error", () => undefined);
    const ip = canonicalAddress(sock.remoteAddress ?? "");
    const refuse = (text: string) => {
      if (!secure) return this.refuse(sock, text);
      // On the implicit port the 421 can only be read after a TLS handshake, and a refused connection counts
      // against no limit while it waits for one: a few at a time per address, the others are closed unanswered, so
      // connections that never start a handshake cannot pile up past the very limits being enforced.
      const refusing = this.refusingTls.get(ip) ?? 0;
      if (refusing >= MAX_TLS_REFUSALS_PER_IP) {
        sock.destroy();
        return;
      }
      countWhileOpen(this.refusingTls, ip, sock);
      secure(sock).then(
        (tls) => {
          tls.on("error", () => undefined);
          this.refuse(tls, text);
        },
        () => sock.destroy(),
      );
    };
    const banned = this.defender.bannedFor(ip);
    if (banned > 0) {
      this.log.info({ event: "refused-banned", peer: ip }, "connection from banned address refused");
      refuse(`Too many failed logins from your address; try again in ${Math.ceil(banned / 1000)} seconds`);
      return;
    }
    const count = this.perIp.get(ip) ?? 0;
    if (count >= this.maxConnectionsPerIp) {
      this.log.info({ event: "refused-per-ip", peer: ip }, "too many connections from address");
      refuse(`Too many connections from your address (limit ${this.maxConnectionsPerIp})`);
      return;
    }
    countWhileOpen(this.perIp, ip, sock);
    if (!secure) {
      this.admit(sock);
      return;
    }
    secure(sock).then(
      (tls) => {
        tls.on("error", () => undefined);
        if (this.stopping) tls.destroy();
        else this.admit(tls);
      },
      (err: Error) => this.log.debug({ event: "tls-failed", peer: ip, err: err.message }, "implicit TLS handshake failed"),
    );
  }

  private refuse(sock: net.Socket, text: string): void {
    sock.end(formatReply(421, text));
    setTimeout(() => sock.destroy(), 1000).unref();
  }

  /** Runs the session now, or queues the connection (silently) until a slot frees. */
  private admit(sock: net.Socket): void {
    const early: Buffer[] = [];
    let earlyBytes = 0;
    const onData = (chunk: Buffer) => {
      early.push(chunk);
      earlyBytes += chunk.length;
      if (earlyBytes >= QUEUED_INPUT_LIMIT) sock.pause();
    };
    const onGone = () => {
      waiter?.cancel();
      this.pendingSockets.delete(sock);
    };
    let waiter: { cancel(): void } | null = null;
    const result = this.admission.admit(
      () => {
        sock.off("data", onData);
        sock.off("close", onGone);
        this.pendingSockets.delete(sock);
        this.startSession(sock, early);
      },
      () => {
        sock.off("data", onData);
        sock.off("close", onGone);
        this.pendingSockets.delete(sock);
        this.log.info({ event: "queue-timeout", peer: sock.remoteAddress }, "queued connection timed out");
        this.refuse(sock, "No free session slot in time; try again later");
      },
    );
    if (result.kind === "granted") {
      this.startSession(sock, early);
    } else if (result.kind === "full") {
      this.log.info({ event: "refused-queue-full", peer: sock.remoteAddress }, "admission queue full");
      this.refuse(sock, "Too many users; try again later");
    } else {
      waiter = result.waiter;
      this.pendingSockets.add(sock);
      this.log.debug({ event: "queued", peer: sock.remoteAddress, position: result.position }, "connection queued");
      sock.on("data", onData);
      sock.once("close", onGone);
    }
  }

  private startSession(sock: net.Socket, early: Buffer[]): void {
    if (sock.destroyed || this.stopping) {
      this.admission.release();
      sock.destroy();
      return;
    }
    const s = new Session(this, sock);
    this.sessions.add(s);
    s.onClose(() => {
      this.sessions.delete(s);
      this.admission.release();
    });
    try {
      s.start(early);
      if (sock.isPaused()) sock.resume();
    } catch (err) {
      this.log.error({ err }, "session failed to start");
      s.close("start failed");
    }
  }

  // ---- ServerContext ----

  async authenticate(session: Session, name: string, password: string): Promise<UserRecord | null> {
    const ip = canonicalAddress(session.peerAddress);
    if (this.defender.bannedFor(ip) > 0) {
      // Banned while this connection was already open: no more guesses from it, right or wrong.
      session.log.info({ event: "refused-banned", user: name }, "login from banned address refused");
      session.reply(421, "Too many failed logins from your address; closing connection");
      session.close("banned");
      return null;
    }
    const record = isValidUserName(name) ? await this.users.get(name) : undefined;
    const ok = await verifyPassword(record?.passwordHash, password);
    if (ok && record) {
      if (this.defender.bannedFor(ip) > 0) {
        // Banned while this password was being checked, by guesses sent on other connections at the same time: a
        // right guess among them must not get through, or an address would have as many guesses per ban as it may
        // open connections instead of --max-login-failures.
        session.log.info({ event: "refused-banned", user: name }, "login from banned address refused");
        session.reply(421, "Too many failed logins from your address; closing connection");
        session.close("banned");
        return null;
      }
      this.defender.success(ip, name);
      return record;
    }
    // The defender logs the failure (address, user, score, delay) once.
    const delay = this.defender.failure(ip, name);
    await new Promise((r) => setTimeout(r, delay).unref());
    if (this.defender.bannedFor(ip) > 0 && !session.isClosed) {
      session.reply(421, "Too many failed logins; closing connection");
      session.close("banned");
    }
    return null;
  }

  sessionsOf(name: string): number {
    return this.perUser.get(name) ?? 0;
  }

  registerLogin(session: Session, name: string): void {
    this.perUser.set(name, (this.perUser.get(name) ?? 0) + 1);
    session.onClose(() => {
      const n = (this.perUser.get(name) ?? 1) - 1;
      if (n <= 0) this.perUser.delete(name);
      else this.perUser.set(name, n);
    });
  }

  // ---- shutdown ----

  /**
   * Stops accepting, lets running transfers finish for a short grace, tells every session 421, and resolves when
   * all are closed and usage is persisted.
   */
  close(): Promise<void> {
    this.stopping = true;
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /**
   * Applies what an admin changed in the user store to the sessions already logged in: a new quota holds at once
   * (for uploads running too, from their next write); a user deleted, or given another home, is told 421 and
   * disconnected (the session works in the old home, which is no longer the user's), and the usage counter of the
   * old home stops writing to the user's figure; a figure an admin recounted (`user rescan`) is taken over. A new
   * password leaves sessions already logged in alone.
   */
  private async syncAccounts(): Promise<void> {
    if (this.syncing || this.stopping) return;
    const changed = this.users.changedElsewhere?.() ?? false;
    if (!changed && !this.syncPending) return;
    this.syncPending = false;
    this.syncing = true;
    let done = false;
    let retry = false;
    try {
      const byUser = new Map<string, Session[]>();
      for (const s of this.sessions) {
        if (!s.user) continue;
        const list = byUser.get(s.user.name);
        if (list) list.push(s);
        else byUser.set(s.user.name, [s]);
      }
      for (const [name, sessions] of byUser) {
        const record = await this.users.get(name);
        // The home as it resolves now; where it cannot be resolved (a volume gone for a moment), the home as written
        // decides, and the next tick looks again.
        const home = record ? canonicalHome(record.home) : null;
        if (record && home === null) retry = true;
        const moved = (u: LoggedInUser) => (home !== null ? u.storage.root !== home : u.home !== record!.home);
        const gone = sessions.filter((s) => s.user && (!record || moved(s.user)));
        if (gone.length > 0) {
          // The ledgers of the old home (a login since the change may hold a new one for the new home, which stays).
          for (const ledger of new Set(gone.map((s) => s.user!.ledger))) this.quota.retire(ledger);
          this.log.warn(
            { event: record ? "account-home-changed" : "account-removed", user: name, sessions: gone.length },
            record ? "the user's home changed: closing the sessions working in the old one" : "the user was removed: closing the user's sessions",
          );
          for (const s of gone) {
            s.reply(421, record ? "Your home directory changed; log in again" : "Your account was removed; closing control connection");
            s.close(record ? "home changed" : "account removed");
          }
        }
        for (const s of sessions) {
          if (gone.includes(s) || !s.user || !record) continue;
          s.user.ledger.limit = record.quotaBytes;
          void s.user.ledger.refresh();
        }
      }
      done = !retry;
    } catch (err) {
      this.log.error({ err }, "cannot read the user store to apply account changes; trying again");
    } finally {
      this.syncing = false;
      // Not applied: the next tick tries again, changed store or not.
      if (!done) this.syncPending = true;
    }
  }

  private async shutdown(): Promise<void> {
    if (this.accountWatch) clearInterval(this.accountWatch);
    for (const l of this.listeners) l.close();
    for (const sock of this.pendingSockets) this.refuse(sock, "Server shutting down");
    this.pendingSockets.clear();
    const deadline = Date.now() + this.shutdownGraceMs;
    const idle = [...this.sessions].filter((s) => !s.transfer);
    for (const s of idle) {
      s.reply(421, "Server shutting down");
      s.close("shutdown");
    }
    while (Date.now() < deadline && [...this.sessions].some((s) => s.transfer)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const remaining = [...this.sessions];
    for (const s of remaining) {
      s.reply(421, "Server shutting down");
      s.close("shutdown");
    }
    // Let cut-off uploads put their files and the quota ledger in order before usage is persisted.
    await Promise.race([
      Promise.all([...idle, ...remaining].map((s) => s.settled())),
      new Promise((r) => setTimeout(r, 1000)),
    ]);
    await this.quota.stopAll();
    await this.hashPool.close();
    this.transfers.close();
  }
}

/** A home as the sessions' storage knows it (links resolved); null when it cannot be resolved. */
function canonicalHome(home: string): string | null {
  try {
    return realpathSync.native(home);
  } catch {
    return null;
  }
}
