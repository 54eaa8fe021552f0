// One control connection: reads command lines, enforces the command table, runs handlers one at a time, and keeps
// the session's state (login, directory, transfer parameters, data channel).
//
// Commands run strictly in order. While a transfer runs, ABOR acts at once, also when it came in before the
// transfer began (sent in one packet with RETR, say), and so are STAT and NOOP answered when no other command waits
// ahead of them (else they wait their turn too, so that replies keep the order of the commands); all others wait
// their turn. A client that floods lines is paused once enough are waiting, so memory stays bounded.

import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { errorReply, MyftpError } from "../core/errors.js";
import type { QuotaLedger } from "../core/quota.js";
import { parseCommand } from "../protocol/command.js";
import { LineSplitter, type SplitLine } from "../protocol/line-splitter.js";
import { DEFAULT_MLST_FACTS, type MlstFact } from "../protocol/listing.js";
import { formatReply } from "../protocol/reply.js";
import { BadPathError, resolveVirtual } from "../protocol/vpath.js";
import type { StorageBackend } from "../storage/backend.js";
import type { HashAlgorithm } from "../workers/hash-types.js";
import { COMMANDS, PRE_LOGIN_ALLOWED } from "./commands/table.js";
import { DataChannel } from "./data-channel.js";
import type { ServerContext } from "./context.js";

const MAX_QUEUED_LINES = 32;
/** How long a line left on a CR (or CR NUL) waits for more before it ends there. */
const LINE_END_WAIT_MS = 200;

export interface LoggedInUser {
  name: string;
  /** The home as the user store gave it at login. */
  home: string;
  storage: StorageBackend;
  ledger: QuotaLedger;
}

export interface RunningTransfer {
  verb: string;
  path: string;
  bytes: number;
  startedAt: number;
  controller: AbortController;
  /** Set by ABOR so the transfer's end is reported as aborted. */
  abortedByClient: boolean;
  /** Set when no byte moved for too long and the transfer was cut. */
  stalled: boolean;
  /** Settles once the transfer has sent its final reply. */
  done: Promise<void>;
}

let nextSessionId = 1;

export class Session {
  readonly id = nextSessionId++;
  readonly log: Logger;
  readonly peerAddress: string;
  readonly localAddress: string;
  socket: Socket | TLSSocket;

  // Login
  user: LoggedInUser | null = null;
  pendingUser: string | null = null;
  // Directory and transfer parameters
  cwd = "/";
  type: "A" | "I" = "A";
  restOffset = 0;
  renameFrom: string | null = null;
  allocate: number | null = null;
  mlstFacts: readonly MlstFact[] = DEFAULT_MLST_FACTS;
  hashAlgorithm: HashAlgorithm = "SHA-256";
  hashRange: { start: number; end: number } | null = null;
  epsvAll = false;
  // TLS (RFC 4217)
  tlsControl = false;
  pbszSet = false;
  protectData = false;

  readonly data: DataChannel;
  transfer: RunningTransfer | null = null;

  private splitter = new LineSplitter();
  /** Lines waiting their turn; null stands for a line that was too long. */
  private queue: (Buffer | null)[] = [];
  private running = false;
  /** The pump waits for the client to read its replies (that is idle time, not work). */
  private awaitingDrain = false;
  private pumping: Promise<void> = Promise.resolve();
  /** An ABOR answered out of turn that has not replied yet: later lines wait for it, so replies keep their order. */
  private aborting: Promise<void> | null = null;
  private closed = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private loginTimer: NodeJS.Timeout | null = null;
  /** The login timeout passed while a command was being answered: the session ends after it, unless logged in. */
  private loginExpired = false;
  private lastActivity = Date.now();
  private readonly closeListeners: (() => void)[] = [];
  private readonly ended = new AbortController();

  constructor(
    readonly server: ServerContext,
    socket: Socket | TLSSocket,
  ) {
    this.socket = socket;
    this.peerAddress = socket.remoteAddress ?? "";
    this.localAddress = socket.localAddress ?? "";
    this.log = server.log.child({ session: this.id, peer: this.peerAddress });
    this.tlsControl = (socket as TLSSocket).encrypted === true;
    // Implicit FTPS: data connections are private unless the client asks for PROT C.
    this.pbszSet = this.tlsControl;
    this.protectData = this.tlsControl;
    this.data = new DataChannel({
      ports: server.passivePorts,
      peerAddress: this.peerAddress,
      localAddress: this.localAddress,
      timeoutMs: server.options.dataTimeoutMs,
      onForeignPeer: (addr) => this.log.warn({ event: "data-foreign-peer", from: addr }, "foreign data connection refused"),
    });
  }

  /** Sends the greeting and starts reading; `early` holds bytes the client sent while it waited in the queue. */
  start(early: Buffer[]): void {
    this.log.info({ event: "session-open" }, "session opened");
    this.attach(this.socket);
    this.reply(220, this.server.options.greeting);
    this.armLogin(this.server.options.loginTimeoutMs);
    for (const chunk of early) this.onData(chunk);
    this.touch();
  }

  private readonly onSocketData = (chunk: Buffer) => this.onData(chunk);
  private readonly onSocketError = (err: Error) => this.log.debug({ err: err.message }, "control connection error");
  private readonly onSocketClose = () => this.close("peer closed");

  /** Wires the control socket's events (called again when AUTH TLS replaces the socket). */
  attach(sock: Socket | TLSSocket): void {
    this.socket = sock;
    sock.on("data", this.onSocketData);
    sock.on("error", this.onSocketError);
    sock.on("close", this.onSocketClose);
  }

  /** Stops reading lines from the current socket (before AUTH TLS swaps it); other listeners stay. */
  detach(sock: Socket | TLSSocket): void {
    sock.off("data", this.onSocketData);
    sock.off("close", this.onSocketClose);
  }

  /** Drops lines received but not yet run, and any partial line (what came in clear before AUTH TLS took over). */
  discardInput(): void {
    if (this.crTimer) {
      clearTimeout(this.crTimer);
      this.crTimer = null;
    }
    this.queue.length = 0;
    this.splitter = new LineSplitter();
  }

  onClose(fn: () => void): void {
    this.closeListeners.push(fn);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Aborts when the session ends: work done for it alone (a queued hash) is withdrawn. */
  get lifetime(): AbortSignal {
    return this.ended.signal;
  }

  // ---- replies ----

  reply(code: number, text: string | readonly string[]): void {
    this.write(formatReply(code, text));
  }

  /** Writes a preformatted reply. */
  write(text: string): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(text);
  }

  replyError(err: unknown): void {
    const r = errorReply(err);
    this.reply(r.code, r.text);
  }

  // ---- input ----

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      if (this.crTimer) {
        clearTimeout(this.crTimer);
        this.crTimer = null;
      }
      for (const line of this.splitter.push(chunk)) this.takeLine(line);
      // A line left on a CR (or CR NUL) ends there if nothing more comes soon: a Telnet-style client ends lines so.
      if (this.splitter.awaitingAfterCr) this.crTimer = setTimeout(() => this.endPendingLine(), LINE_END_WAIT_MS);
      if (this.queue.length >= MAX_QUEUED_LINES && !this.socket.isPaused()) this.socket.pause();
    } catch (err) {
      this.internalError(err, "input");
    }
  }

  private crTimer: NodeJS.Timeout | null = null;

  private endPendingLine(): void {
    this.crTimer = null;
    if (this.closed) return;
    try {
      const line = this.splitter.endPending();
      if (line) this.takeLine(line);
    } catch (err) {
      this.internalError(err, "input");
    }
  }

  private takeLine(line: SplitLine): void {
    if (!line.ok) {
      this.enqueue(null);
      return;
    }
    if (this.transfer && this.trySpecial(line.line)) return;
    this.enqueue(line.line);
  }

  /**
   * During a transfer, answers a special command at once: ABOR always, STAT and NOOP when no command waits ahead of
   * them. Returns false for anything else.
   */
  private trySpecial(line: Buffer): boolean {
    if (line.includes(0x0d)) return false;
    const parsed = parseCommand(line);
    if (!parsed.ok) return false;
    const spec = COMMANDS[parsed.command.verb];
    if (!spec?.special) return false;
    // Replies the client has not read yet: STAT and NOOP wait their turn in the queue, which pauses the input once
    // it is full, so a client that sends them without reading cannot pile up replies in memory.
    // A STAT or NOOP behind an ABOR that has not replied yet waits its turn as well.
    if (parsed.command.verb !== "ABOR" && (this.queue.length > 0 || this.socket.writableNeedDrain || this.aborting)) return false;
    this.touch();
    this.log.debug({ cmd: parsed.command.verb }, "command during transfer");
    const run = this.runHandler(parsed.command.verb, parsed.command.arg, parsed.command.hasArg);
    if (parsed.command.verb === "ABOR") {
      this.aborting = run;
      void run.finally(() => {
        if (this.aborting === run) this.aborting = null;
      });
    }
    return true;
  }

  /**
   * Called as a transfer begins: an ABOR that came in before it (behind the transfer command in the queue) acts on
   * it now, as it would have had it come a moment later.
   */
  transferStarted(): void {
    const i = this.queue.findIndex((l) => l !== null && !l.includes(0x0d) && isAbor(l));
    if (i < 0) return;
    const [line] = this.queue.splice(i, 1);
    this.trySpecial(line!);
  }

  private enqueue(line: Buffer | null): void {
    this.queue.push(line);
    if (!this.running) this.pumping = this.pump();
  }

  /** Resolves once the command being handled (if any) has finished, including its clean-up. */
  settled(): Promise<void> {
    return this.pumping;
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        // An ABOR sent ahead of the next line answers before it, as the transfer it stopped has.
        if (this.aborting) {
          await this.aborting;
          continue;
        }
        const line = this.queue.shift()!;
        if (this.queue.length < MAX_QUEUED_LINES / 2 && this.socket.isPaused() && !this.closed) this.socket.resume();
        this.touch();
        if (line === null) {
          // A line in between ends a pending rename, as every other does (see dispatch).
          this.renameFrom = null;
          this.reply(500, "Command line too long");
          continue;
        }
        await this.dispatch(line);
        if (this.loginExpired && !this.user && !this.closed) {
          this.endLoginTimeout();
          break;
        }
        // A client that does not read its replies: the next command waits until they are taken, so the replies
        // cannot pile up in memory (the input is paused once enough lines wait).
        if (this.socket.writableNeedDrain) await this.outputDrained();
        // The idle time counts from the reply, not from the command.
        this.touch();
      }
    } finally {
      this.running = false;
    }
  }

  /** Resolves when the control connection's replies have been taken by the client, or the session ends. */
  private outputDrained(): Promise<void> {
    const sock = this.socket;
    if (this.closed || sock.destroyed) return Promise.resolve();
    this.awaitingDrain = true;
    return new Promise<void>((resolve) => {
      const done = () => {
        sock.off("drain", done);
        sock.off("close", done);
        this.ended.signal.removeEventListener("abort", done);
        this.awaitingDrain = false;
        resolve();
      };
      sock.on("drain", done);
      sock.on("close", done);
      this.ended.signal.addEventListener("abort", done);
    });
  }

  private async dispatch(line: Buffer): Promise<void> {
    // RFC 959 §4.1.3: RNTO must follow its RNFR at once. Any other line in between ends the rename, a refused one too
    // (a RNFR of a missing name, a syntax error): a later RNTO would otherwise move the earlier RNFR's file.
    const renameFrom = this.renameFrom;
    this.renameFrom = null;
    if (line.includes(0x0d)) {
      // A CR inside a command (see LineSplitter): acting on the line as far as the CR would act on another name.
      this.reply(501, "Invalid character (CR) in command line");
      return;
    }
    const parsed = parseCommand(line);
    if (!parsed.ok) {
      if (parsed.reason === "bad-utf8") this.reply(501, "Invalid UTF-8 in command");
      else this.reply(500, "Syntax error, command unrecognized");
      return;
    }
    const { verb, arg, hasArg } = parsed.command;
    this.log.debug({ cmd: verb, arg: verb === "PASS" ? "****" : arg }, "command");
    if (verb !== "RNTO") return await this.runHandler(verb, arg, hasArg);
    // The RNTO right after its RNFR gets the name; refused or not, the rename is over once it is answered.
    this.renameFrom = renameFrom;
    try {
      await this.runHandler(verb, arg, hasArg);
    } finally {
      this.renameFrom = null;
    }
  }

  /** Enforces the command table row, then runs the handler. Never rejects: a failure ends in a reply. */
  private async runHandler(verb: string, arg: string, hasArg: boolean): Promise<void> {
    try {
      await this.checkAndRun(verb, arg, hasArg);
    } catch (err) {
      this.handleError(err, verb);
    }
  }

  private async checkAndRun(verb: string, arg: string, hasArg: boolean): Promise<void> {
    const spec = COMMANDS[verb];
    if (!spec) {
      this.reply(502, `Command ${verb} not implemented`);
      return;
    }
    // Without a certificate the security commands are not implemented (502) whatever their argument, as FEAT and HELP
    // leave them out; a syntax check first would answer 501 for some of them.
    if (spec.needsTls && !(this.server.tls && this.server.upgradeControl)) {
      this.reply(502, `${verb} not available: the server has no TLS certificate`);
      return;
    }
    if (!this.user && !PRE_LOGIN_ALLOWED.has(verb)) {
      this.reply(530, "Please login with USER and PASS");
      return;
    }
    if (spec.arg === "required" && arg.length === 0) {
      this.reply(501, `Syntax error: ${spec.help}`);
      return;
    }
    if (spec.arg === "none" && hasArg && arg.trim().length > 0) {
      this.reply(501, `Syntax error: ${verb} takes no argument`);
      return;
    }
    const policy = this.server.policy?.(this, verb, spec);
    if (policy) {
      this.reply(policy.code, policy.text);
      return;
    }
    if (spec.transfer && !this.data.pending) {
      this.reply(425, "Use PORT, EPRT, PASV or EPSV first");
      return;
    }
    await spec.handler(this, arg);
  }

  private handleError(err: unknown, verb: string): void {
    if (err instanceof MyftpError || err instanceof BadPathError || typeof (err as { code?: unknown })?.code === "string") {
      if (err instanceof BadPathError) this.reply(553, "File name not allowed");
      else this.replyError(err);
      return;
    }
    this.internalError(err, verb);
  }

  /** A bug: close this session only, keep the server running. */
  private internalError(err: unknown, where: string): void {
    this.log.error({ event: "internal-error", err, cmd: where }, "internal error; closing session");
    this.reply(421, "Internal error; closing control connection");
    this.close("internal error");
  }

  // ---- paths ----

  /** The virtual path for a client argument, normalised against the current directory. */
  vpath(arg: string): string {
    return resolveVirtual(this.cwd, arg);
  }

  get storage(): StorageBackend {
    if (!this.user) throw new MyftpError("bad-sequence", "Not logged in");
    return this.user.storage;
  }

  // ---- idle timeout ----

  touch(): void {
    this.lastActivity = Date.now();
    if (this.idleTimer || this.closed) return;
    this.armIdle(this.server.options.idleTimeoutMs);
  }

  private armIdle(ms: number): void {
    if (ms <= 0) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      const idle = Date.now() - this.lastActivity;
      const limit = this.server.options.idleTimeoutMs;
      const busy = this.transfer !== null || (this.running && !this.awaitingDrain);
      if (busy || idle < limit) {
        // A transfer, or a command the server is still answering (a login held back by the defender's delay, a
        // long HASH), keeps the session alive; check again later.
        this.armIdle(busy ? limit : limit - idle);
        return;
      }
      this.log.info({ event: "idle-timeout" }, "idle timeout");
      this.reply(421, "Idle timeout; closing control connection");
      this.close("idle timeout");
    }, ms);
    this.idleTimer.unref();
  }

  // ---- login timeout ----

  /**
   * A session that has not logged in is closed once the login timeout has passed since its greeting. Commands do not
   * put it off, as they do the idle timeout: else a peer without an account could hold session slots for ever by
   * sending NOOP now and then, and clients waiting in the admission queue would never get one.
   */
  private armLogin(ms: number): void {
    if (ms <= 0) return;
    this.loginTimer = setTimeout(() => {
      this.loginTimer = null;
      if (this.closed || this.user) return;
      // A command under way (a password check, a failure held back by the defender, a TLS handshake) gets its
      // answer first; the session ends after it unless it was a login that succeeded (see pump).
      if (this.running && !this.awaitingDrain) this.loginExpired = true;
      else this.endLoginTimeout();
    }, ms);
    this.loginTimer.unref();
  }

  private endLoginTimeout(): void {
    this.log.info({ event: "login-timeout" }, "login timeout");
    this.reply(421, "Login timeout; closing control connection");
    this.close("login timeout");
  }

  // ---- end ----

  /** Ends the session: aborts any transfer, frees the data channel, closes the socket. Idempotent. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.ended.abort();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.loginTimer) clearTimeout(this.loginTimer);
    if (this.crTimer) clearTimeout(this.crTimer);
    this.transfer?.controller.abort();
    this.data.close();
    this.queue.length = 0;
    const sock = this.socket;
    if (!sock.destroyed) {
      sock.end();
      setTimeout(() => sock.destroy(), 2000).unref();
    }
    this.log.info({ event: "session-close", user: this.user?.name, reason }, "session closed");
    for (const fn of this.closeListeners.splice(0)) {
      try {
        fn();
      } catch (err) {
        this.log.error({ err }, "session close listener failed");
      }
    }
  }
}

function isAbor(line: Buffer): boolean {
  const parsed = parseCommand(line);
  return parsed.ok && parsed.command.verb === "ABOR";
}
