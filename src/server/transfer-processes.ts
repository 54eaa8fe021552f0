// Bulk transfers in separate processes. A Node process answers every control connection on one thread; when that
// thread also copies gigabytes between files and sockets, each command waits behind the copies (and behind every
// other process the kernel schedules meanwhile). So plain-TCP binary transfers of any size worth it go to a few
// transfer processes: the data socket is handed over (SCM_RIGHTS), the file is reopened there from this process's
// descriptor (/proc/PID/fd, checked by device and inode), and this process keeps every decision: paths, quota
// (the transfer process asks before writing past what was granted), replies, logs. TLS data connections, ASCII
// mode and small files stay here. The processes start on first use, so an idle server has none.

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
import type { FromChild, SharedFile, ToChild } from "./transfer-protocol.js";

/** Downloads shorter than this run here: handing them over costs more than it saves. */
export const OFFLOAD_MIN_BYTES = 256 << 10;

type Done = Extract<FromChild, { type: "done" }>;

interface Pending {
  onBytes(n: number): void;
  /** Answers a request to write up to `end`: the offset now granted, or throws to refuse. */
  onNeed?(end: number): number;
  onDone(m: Done): void;
  /** The child died under the transfer. */
  onLost(): void;
}

function share(fd: number): SharedFile {
  const st = fs.fstatSync(fd, { bigint: true });
  return { fd, dev: String(st.dev), ino: String(st.ino) };
}

/** A transfer's failure as the session's transfer code knows it, with the bytes that made it. */
function failure(m: Done, denial: unknown): Error {
  let e: Error;
  if (m.kind === "aborted") e = new TransferAborted();
  else if (m.kind === "broken") e = new ConnectionBroken();
  else if (m.kind === "denied") e = denial instanceof Error ? denial : new TransferAborted();
  else e = Object.assign(new Error(m.message ?? "transfer failed"), m.code ? { code: m.code } : {});
  return Object.assign(e, { written: m.bytes });
}

class TransferChild {
  readonly running = new Map<number, Pending>();
  readonly ready: Promise<boolean>;
  private exited = false;

  constructor(
    private readonly proc: ChildProcess,
    probe: SharedFile,
    private readonly onExit: (child: TransferChild, why: string) => void,
  ) {
    let settle!: (ok: boolean) => void;
    this.ready = new Promise((r) => (settle = r));
    proc.on("message", (m: FromChild) => {
      if (m.type === "probe") return settle(m.ok);
      const p = this.running.get(m.id);
      if (!p) return;
      if (m.type === "bytes") p.onBytes(m.n);
      else if (m.type === "need") this.answerNeed(m.id, p, m.end);
      else if (m.type === "done") {
        this.running.delete(m.id);
        p.onDone(m);
      }
    });
    proc.on("error", () => undefined);
    proc.on("exit", (code, signal) => {
      this.exited = true;
      settle(false);
      const lost = [...this.running.values()];
      this.running.clear();
      for (const p of lost) p.onLost();
      this.onExit(this, signal ?? `exit code ${code}`);
    });
    this.post({ op: "probe", file: probe });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get alive(): boolean {
    return !this.exited && this.proc.connected;
  }

  post(m: ToChild, handle?: Socket): void {
    if (!this.alive) return;
    this.proc.send(m, handle, { keepOpen: false }, () => undefined);
  }

  private answerNeed(id: number, p: Pending, end: number): void {
    try {
      const granted = p.onNeed ? p.onNeed(end) : 0;
      this.post({ op: "grant", id, ok: granted >= end, granted });
    } catch (err) {
      (p as { denial?: unknown }).denial = err;
      this.post({ op: "grant", id, ok: false, granted: 0 });
    }
  }

  /** Runs one transfer here; `extra` completes the request. Resolves with the bytes moved. */
  run(
    sock: Socket,
    request: { op: "send"; file: SharedFile; start: number; end: number } | { op: "recv"; file: SharedFile; position: number; granted: number },
    id: number,
    progress: Progress,
    hooks: { onNeed?(end: number): number; writtenIfLost(): number },
  ): Promise<number> {
    if (progress.signal.aborted) return Promise.reject(Object.assign(new TransferAborted(), { written: 0 }));
    return new Promise<number>((resolve, reject) => {
      const onAbort = () => this.post({ op: "abort", id });
      progress.signal.addEventListener("abort", onAbort, { once: true });
      const pending: Pending & { denial?: unknown } = {
        onBytes: (n) => progress.onBytes(n),
        onNeed: hooks.onNeed,
        onDone: (m) => {
          progress.signal.removeEventListener("abort", onAbort);
          if (m.ok) return resolve(m.bytes);
          // The child keeps a failed transfer's connection open until the final reply is out: the session destroys
          // its (handed-over) socket object right after that reply, which is the signal to let it go.
          if (sock.destroyed) this.post({ op: "release", id });
          else sock.once("close", () => this.post({ op: "release", id }));
          reject(failure(m, pending.denial));
        },
        onLost: () => {
          progress.signal.removeEventListener("abort", onAbort);
          reject(Object.assign(new ConnectionBroken(new Error("transfer process ended")), { written: hooks.writtenIfLost() }));
        },
      };
      this.running.set(id, pending);
      // A socket a net.Server accepted would be tracked for that server's close() (a list per listening address,
      // kept for the life of the channel); the passive listener is closed already and waits for nothing.
      (sock as unknown as { server: unknown }).server = null;
      this.post({ ...request, id } as ToChild, sock);
    });
  }

  kill(): void {
    if (!this.exited) this.proc.kill("SIGKILL");
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

  /**
   * A transfer process for a transfer on `sock`, or null when it must run here (TLS, turned off, unavailable).
   * Starts one when every running process is busy and fewer than the maximum exist.
   */
  async acquire(sock: Duplex): Promise<TransferChild | null> {
    if (this.disabled || this.closed || !(sock instanceof Socket) || sock instanceof TLSSocket) return null;
    const live = this.children.filter((c) => c.alive);
    const idle = live.find((c) => c.running.size === 0);
    if (idle) return idle;
    if (live.length < this.max) {
      const started = await this.spawn();
      if (started) return started;
    }
    const ready = this.children.filter((c) => c.alive);
    if (ready.length === 0) return null;
    return ready.reduce((a, b) => (b.running.size < a.running.size ? b : a));
  }

  private spawn(): Promise<TransferChild | null> {
    this.starting ??= this.start().finally(() => (this.starting = null));
    return this.starting;
  }

  private async start(): Promise<TransferChild | null> {
    const script = fileURLToPath(workerScript("../server/transfer-child"));
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
        // Out of processes, say: this transfer runs here, and a later one tries again.
        this.log.warn({ event: "transfer-process-start-failed", err: (err as Error).message }, "could not start a transfer process");
        return null;
      }
      const child = new TransferChild(proc, share(probeFd), (c, why) => {
        const i = this.children.indexOf(c);
        if (i >= 0) this.children.splice(i, 1);
        if (!this.closed) this.log.warn({ event: "transfer-process-exit", why }, "transfer process ended");
      });
      const ok = await child.ready;
      if (!ok) {
        child.kill();
        this.disable("a transfer process did not start, or could not reopen this process's files");
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

  /** Process ids of the running transfer processes. */
  get processIds(): number[] {
    return this.children.filter((c) => c.alive).map((c) => c.pid);
  }

  /** Sends bytes [start, end) of the file open as `fd` on the socket, in `child`. */
  send(child: TransferChild, sock: Socket, fd: number, start: number, end: number, progress: Progress): Promise<number> {
    this.handedOver++;
    return child.run(sock, { op: "send", file: share(fd), start, end }, this.nextId++, progress, { writtenIfLost: () => 0 });
  }

  /**
   * Receives into the file open as `fd` from `position` on, in `child`. `grant(end)` is asked before anything past
   * `granted` is written; it returns the offset now allowed or throws to refuse (the transfer then fails with that
   * error). Failures carry `written`, the bytes that reached the file.
   */
  receive(
    child: TransferChild,
    sock: Socket,
    fd: number,
    position: number,
    granted: number,
    grant: (end: number) => number,
    progress: Progress,
  ): Promise<number> {
    this.handedOver++;
    return child.run(sock, { op: "recv", file: share(fd), position, granted }, this.nextId++, progress, {
      onNeed: grant,
      writtenIfLost: () => {
        try {
          return Math.max(0, fs.fstatSync(fd).size - position);
        } catch {
          return 0;
        }
      },
    });
  }

  close(): void {
    this.closed = true;
    for (const c of this.children) c.kill();
    this.children.length = 0;
  }
}
