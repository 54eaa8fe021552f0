// Bulk transfers in separate processes. A Node process answers every control connection on one thread; when that
// thread also copies gigabytes between files and sockets, each command waits behind the copies (and behind every
// other process the kernel schedules meanwhile). So plain-TCP binary transfers of any size worth it go to a few
// transfer processes, and this process keeps every decision: paths, quota (the transfer process asks before writing
// past what was granted), replies, logs. A transfer goes over in two steps: the transfer process first reopens the
// file from this process's descriptor (/proc/PID/fd, checked by device and inode) and says so; only then is the data
// socket handed over (SCM_RIGHTS). Whatever fails before the hand-over (no process could start, the file cannot be
// reopened there) leaves the transfer to run here. TLS data connections, ASCII mode and small files stay here. The
// processes start on first use, so an idle server has none.

import { fork, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { availableParallelism } from "node:os";
import type { Duplex } from "node:stream";
import { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { workerScript } from "../workers/pool.js";
import { ConnectionBroken, TransferAborted, type Progress } from "./transfer-io.js";
import { isErrorCode, MyftpError, messageFor } from "../core/errors.js";
import type { FromChild, SharedFile, ToChild } from "./transfer-protocol.js";

/** Downloads shorter than this run here: handing them over costs more than it saves. */
export const OFFLOAD_MIN_BYTES = 256 << 10;
/** Longest wait for a starting transfer process to answer its probe, or for any process to answer "open". */
const ANSWER_MS = 10_000;
/** After a transfer process failed to start, transfers run here for this long before another start is tried. */
const RETRY_START_MS = 10_000;
/** An aborted transfer whose process does not confirm the end within this is given up (its process may be stuck). */
const ABORT_CONFIRM_MS = 5_000;

type Done = Extract<FromChild, { type: "done" }>;

interface Pending {
  onBytes(n: number): void;
  /** The download sent every byte and waits for the client to close its side. */
  onClosing?(): void;
  /**
   * Answers a request to write up to `end`: the offset now granted, or throws (or rejects) to refuse. A promise
   * (quota a younger upload may give back) is awaited; `cancel` fires when the transfer ends or is aborted first.
   */
  onNeed?(end: number, cancel: AbortSignal): number | Promise<number>;
  /** Fires when the transfer ends (or is aborted): an answer still being waited for is not wanted any more. */
  needs: AbortController;
  onDone(m: Done): void;
  /** The child died under the transfer. */
  onLost(): void;
  /** Why the server refused more data, when it did. */
  denial?: unknown;
}

/** One transfer's file, reopened in a transfer process and waiting for its data connection. */
export interface Lease {
  readonly child: TransferChild;
  readonly id: number;
  readonly fd: number;
}

/** A transfer's failure as the session's transfer code knows it, with the bytes that made it. */
function failure(m: Done, denial: unknown): Error {
  let e: Error;
  if (m.kind === "aborted") e = new TransferAborted();
  else if (m.kind === "broken") e = new ConnectionBroken();
  else if (m.kind === "denied") e = denial instanceof Error ? denial : new TransferAborted();
  // One of myftp's own errors (a file that shrank while it was sent, say) keeps its reply.
  else if (m.code !== undefined && isErrorCode(m.code)) e = new MyftpError(m.code, m.message ?? messageFor(m.code));
  else e = Object.assign(new Error(m.message ?? "transfer failed"), m.code ? { code: m.code } : {});
  return Object.assign(e, { written: m.bytes });
}

function share(fd: number): SharedFile {
  const st = fs.fstatSync(fd, { bigint: true });
  return { fd, dev: String(st.dev), ino: String(st.ino) };
}

function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise<T>((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

class TransferChild {
  readonly running = new Map<number, Pending>();
  /** Resolves with the probe's answer: true (ready), false (cannot reopen files here), null (never started). */
  readonly ready: Promise<boolean | null>;
  private readonly opening = new Map<number, (ok: boolean) => void>();
  private settleReady!: (ok: boolean | null) => void;
  private gone = false;
  /** The process has exited (or never started): it can no longer touch any file. */
  private exited = false;
  private readonly afterExit: (() => void)[] = [];

  constructor(
    private readonly proc: ChildProcess,
    probe: SharedFile,
    private readonly onGone: (child: TransferChild, why: string) => void,
  ) {
    this.ready = new Promise((r) => (this.settleReady = r));
    proc.on("message", (m: FromChild) => this.onMessage(m));
    // A process that could not be started reports 'error' and never 'exit'; one whose channel broke reports
    // 'disconnect'. Each of them ends this child for good.
    proc.on("error", (err) => {
      // Also what a failed spawn reports: then there is no process that could exit.
      if (proc.pid === undefined) this.markExited();
      this.end(`error: ${err.message}`);
    });
    proc.on("disconnect", () => this.end("disconnected"));
    proc.on("exit", (code, signal) => {
      this.markExited();
      this.end(signal ?? `exit code ${code}`);
    });
    this.post({ op: "probe", file: probe });
  }

  private onMessage(m: FromChild): void {
    if (m.type === "probe") return this.settleReady(m.ok);
    if (m.type === "opened") {
      const wake = this.opening.get(m.id);
      this.opening.delete(m.id);
      return wake?.(m.ok);
    }
    const p = this.running.get(m.id);
    if (!p) return;
    if (m.type === "bytes") p.onBytes(m.n);
    else if (m.type === "closing") p.onClosing?.();
    else if (m.type === "need") this.answerNeed(m.id, p, m.end);
    else if (m.type === "done") {
      this.running.delete(m.id);
      p.onDone(m);
    }
  }

  private markExited(): void {
    if (this.exited) return;
    this.exited = true;
    for (const f of this.afterExit.splice(0)) f();
  }

  /**
   * Ends this child for good (it exited, broke its channel, stopped answering, or the server closes): it is killed,
   * and its transfers fail once it has exited, so the bytes they count from their files are final.
   */
  private end(why: string): void {
    if (this.gone) return;
    this.gone = true;
    this.settleReady(null);
    for (const wake of this.opening.values()) wake(false);
    this.opening.clear();
    this.proc.kill("SIGKILL");
    const lost = [...this.running.values()];
    this.running.clear();
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      for (const p of lost) p.onLost();
    };
    if (this.exited) settle();
    else {
      this.afterExit.push(settle);
      // SIGKILL cannot be refused; this only guards against never hearing of the exit.
      setTimeout(settle, 2000).unref();
    }
    this.onGone(this, why);
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get alive(): boolean {
    return !this.gone && this.proc.connected;
  }

  /** Outstanding work: transfers running and files being opened. */
  get load(): number {
    return this.running.size + this.opening.size;
  }

  post(m: ToChild, handle?: Socket): void {
    if (!this.alive) return;
    this.proc.send(m, handle, { keepOpen: false }, () => undefined);
  }

  /**
   * Asks the child to reopen the file for transfer `id`; resolves true once it has. A child that does not answer in
   * time is ended (it would hold up every transfer given to it); an abort stops the wait.
   */
  open(id: number, file: SharedFile, write: boolean, signal: AbortSignal): Promise<boolean> {
    if (!this.alive || signal.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.opening.delete(id);
        resolve(ok);
      };
      const onAbort = () => finish(false);
      const timer = setTimeout(() => {
        finish(false);
        this.end("did not answer an open");
      }, ANSWER_MS);
      signal.addEventListener("abort", onAbort, { once: true });
      this.opening.set(id, finish);
      this.post({ op: "open", id, file, write });
    });
  }

  private answerNeed(id: number, p: Pending, end: number): void {
    const answer = (granted: number) => this.post({ op: "grant", id, ok: granted >= end, granted });
    const refuse = (err: unknown) => {
      p.denial = err;
      this.post({ op: "grant", id, ok: false, granted: 0 });
    };
    try {
      const granted = p.onNeed ? p.onNeed(end, p.needs.signal) : 0;
      // The transfer process waits for the answer, reading its connection on meanwhile (see receiveFile).
      if (typeof granted === "number") answer(granted);
      else granted.then(answer, refuse);
    } catch (err) {
      refuse(err);
    }
  }

  /** Hands the data socket over and runs the transfer the lease was opened for. Resolves with the bytes moved. */
  run(
    lease: Lease,
    sock: Socket,
    request: { op: "send"; start: number; end: number } | { op: "recv"; position: number; granted: number },
    progress: Progress,
    hooks: { onNeed?(end: number, cancel: AbortSignal): number | Promise<number>; writtenIfLost(): number },
  ): Promise<number> {
    const id = lease.id;
    if (progress.signal.aborted || !this.alive) {
      this.post({ op: "release", id });
      return Promise.reject(Object.assign(progress.signal.aborted ? new TransferAborted() : new ConnectionBroken(), { written: 0 }));
    }
    return new Promise<number>((resolve, reject) => {
      let confirm: NodeJS.Timeout | null = null;
      const needs = new AbortController();
      const settle = () => {
        // Before the transfer's end is reported: no room is reserved for it after that.
        needs.abort();
        progress.signal.removeEventListener("abort", onAbort);
        if (confirm) clearTimeout(confirm);
      };
      const onAbort = () => {
        this.post({ op: "abort", id });
        // After the abort: the transfer process, told first, ends the transfer as aborted, not as refused.
        needs.abort();
        // A process that never got the transfer (its hand-over was dropped) or is stuck cannot confirm the end. It
        // is ended: its transfers then fail once it can no longer write, and the next transfer gets a fresh one.
        confirm = setTimeout(() => {
          if (this.running.get(id) === pending) this.end("did not confirm an abort");
        }, ABORT_CONFIRM_MS);
        confirm.unref();
      };
      progress.signal.addEventListener("abort", onAbort, { once: true });
      const pending: Pending = {
        onBytes: (n) => progress.onBytes(n),
        onClosing: () => progress.closing?.(),
        onNeed: hooks.onNeed,
        needs,
        onDone: (m) => {
          settle();
          if (m.ok) return resolve(m.bytes);
          // The child keeps a failed transfer's connection open until the final reply is out: the session destroys
          // its (handed-over) socket object right after that reply, which is the signal to let it go.
          if (sock.destroyed) this.post({ op: "release", id });
          else sock.once("close", () => this.post({ op: "release", id }));
          reject(failure(m, pending.denial));
        },
        onLost: () => {
          settle();
          reject(Object.assign(new ConnectionBroken(new Error("transfer process ended")), { written: hooks.writtenIfLost() }));
        },
      };
      this.running.set(id, pending);
      // A socket a net.Server accepted would be tracked for that server's close() (a list per listening address,
      // kept for the life of the channel); the passive listener is closed already and waits for nothing.
      (sock as unknown as { server: unknown }).server = null;
      this.post({ ...request, id } as ToChild, sock);
      progress.handedOver?.();
    });
  }

  kill(): void {
    this.end("closed");
  }
}

/** One per core beyond the first (the control thread's), at least one, at most four. */
export function defaultTransferProcesses(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

export class TransferProcesses {
  private readonly children: TransferChild[] = [];
  private starting: Promise<TransferChild | null> | null = null;
  private disabled: string | null = null;
  /** No new start before this (a start failed). */
  private retryAt = 0;
  private nextId = 1;
  private closed = false;
  /** Transfers handed to a transfer process so far. */
  handedOver = 0;

  constructor(
    private readonly max: number,
    private readonly log: Logger,
  ) {
    if (max <= 0) this.disabled = "off by configuration";
    else if (process.platform !== "linux") this.disabled = "needs Linux (/proc)";
  }

  /** Process ids of the running transfer processes. */
  get processIds(): number[] {
    return this.children.filter((c) => c.alive).map((c) => c.pid);
  }

  /**
   * Prepares a transfer on `sock` of the file open here as `fd` in a transfer process: the file is reopened there
   * before anything is handed over. Null when the transfer must run here (TLS, turned off, no process could start,
   * the file cannot be reopened there); the socket is then untouched.
   */
  async acquire(sock: Duplex, fd: number, write: boolean, signal: AbortSignal): Promise<Lease | null> {
    if (this.disabled || this.closed || !(sock instanceof Socket) || sock instanceof TLSSocket) return null;
    const child = await this.pick();
    if (!child) return null;
    const id = this.nextId++;
    let file: SharedFile;
    try {
      file = share(fd);
    } catch {
      return null;
    }
    if (await child.open(id, file, write, signal)) return { child, id, fd };
    child.post({ op: "release", id });
    return null;
  }

  /** An idle transfer process; else a new one while fewer than the maximum run; else the least busy. */
  private async pick(): Promise<TransferChild | null> {
    const live = this.children.filter((c) => c.alive);
    const idle = live.find((c) => c.load === 0);
    if (idle) return idle;
    if (live.length < this.max && Date.now() >= this.retryAt) {
      const started = await this.spawn();
      if (started) return started;
    }
    const ready = this.children.filter((c) => c.alive);
    if (ready.length === 0) return null;
    return ready.reduce((a, b) => (b.load < a.load ? b : a));
  }

  private spawn(): Promise<TransferChild | null> {
    this.starting ??= this.start().finally(() => (this.starting = null));
    return this.starting;
  }

  private async start(): Promise<TransferChild | null> {
    const script = fileURLToPath(workerScript("../server/transfer-child"));
    const failed = (why: string): null => {
      this.retryAt = Date.now() + RETRY_START_MS;
      this.log.warn({ event: "transfer-process-start-failed", why }, "could not start a transfer process");
      return null;
    };
    // The probe: a file this process holds open, which the child must be able to reopen and recognise.
    let probeFd: number;
    try {
      probeFd = fs.openSync(script, fs.constants.O_RDONLY);
    } catch (err) {
      this.disable(`cannot open ${script}: ${(err as Error).message}`);
      return null;
    }
    try {
      let proc: ChildProcess;
      try {
        proc = fork(script, [], { execArgv: [], stdio: ["ignore", "ignore", "inherit", "ipc"], serialization: "json" });
      } catch (err) {
        return failed((err as Error).message);
      }
      const child = new TransferChild(proc, share(probeFd), (c, why) => {
        const i = this.children.indexOf(c);
        if (i >= 0) this.children.splice(i, 1);
        if (!this.closed) this.log.warn({ event: "transfer-process-exit", why }, "transfer process ended");
      });
      const ok = await within(child.ready, ANSWER_MS, null);
      if (ok !== true) {
        child.kill();
        // A process that runs but cannot reopen this process's files never will: stop trying. Anything else (it did
        // not start, or did not answer) may pass.
        if (ok === false) this.disable("a transfer process cannot reopen this process's files (/proc)");
        else return failed("no answer from the new process");
        return null;
      }
      proc.unref();
      proc.channel?.unref();
      if (this.closed) {
        child.kill();
        return null;
      }
      this.children.push(child);
      return child;
    } finally {
      fs.closeSync(probeFd);
    }
  }

  private disable(why: string): void {
    this.disabled = why;
    this.log.warn({ event: "transfer-processes-off", why }, "transfers run in the server process");
  }

  /** Sends bytes [start, end) of the leased file on the socket. */
  send(lease: Lease, sock: Socket, start: number, end: number, progress: Progress): Promise<number> {
    this.handedOver++;
    return lease.child.run(lease, sock, { op: "send", start, end }, progress, { writtenIfLost: () => 0 });
  }

  /**
   * Receives into the leased file from `position` on. `grant(end)` is asked before anything past `granted` is
   * written; it returns the offset now allowed (or a promise of it, while the transfer process waits) or throws or
   * rejects to refuse (the transfer then fails with that error); its `cancel` fires when the transfer ends first.
   * Failures carry `written`, the bytes that reached the file.
   */
  receive(
    lease: Lease,
    sock: Socket,
    position: number,
    granted: number,
    grant: (end: number, cancel: AbortSignal) => number | Promise<number>,
    progress: Progress,
  ): Promise<number> {
    this.handedOver++;
    return lease.child.run(lease, sock, { op: "recv", position, granted }, progress, {
      onNeed: grant,
      writtenIfLost: () => {
        try {
          return Math.max(0, fs.fstatSync(lease.fd).size - position);
        } catch {
          return 0;
        }
      },
    });
  }

  close(): void {
    this.closed = true;
    for (const c of [...this.children]) c.kill();
    this.children.length = 0;
  }
}
