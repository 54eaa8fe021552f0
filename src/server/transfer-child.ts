// A transfer process: moves file data between a data connection and a file for the server, so that bulk copies
// run on another CPU than the one answering control connections. It holds no session state and makes no
// decisions: the server resolves paths, opens files, accounts quota and replies; this process reopens the file the
// server names (through /proc, checked by device and inode) before the server hands it the data connection, moves
// the bytes and reports how many.

import * as fs from "node:fs";
import type { Socket } from "node:net";
import { OpenFile } from "../storage/local.js";
import { closeAfterPeer, ConnectionBroken, receiveFile, sendFile, TransferAborted, type Progress } from "./transfer-io.js";
import type { FailureKind, FromChild, SharedFile, ToChild } from "./transfer-protocol.js";

/** How often moved bytes are reported (the server's idle and stall timers only need to see movement). */
const REPORT_MS = 100;

interface Running {
  controller: AbortController;
  /** Bytes moved since the last report, and in all. */
  pending: number;
  moved: number;
  timer: NodeJS.Timeout;
  /** Waits for the server's answer to a "need". */
  grant: ((ok: boolean, granted: number) => void) | null;
}

const running = new Map<number, Running>();
/** Files reopened for transfers whose data connection has not come yet. */
const opened = new Map<number, OpenFile>();
/**
 * Data connections of failed transfers, kept open until the server has sent its final reply: closing one with data
 * unread resets it, and a client that sees the reset before the reply (552, say) reports the wrong failure.
 */
const lingering = new Map<number, { sock: Socket; refusedUpload: boolean }>();
/** A failed transfer's connection is closed after this even if the server never says so. */
const LINGER_MS = 10_000;

function post(m: FromChild): void {
  if (process.connected) process.send!(m);
}

class Denied extends Error {
  constructor() {
    super("the server refused more data");
    this.name = "Denied";
  }
}

/** Opens the server's descriptor anew and checks it is the same file. */
function reopen(file: SharedFile, write: boolean): OpenFile {
  const fd = fs.openSync(`/proc/${process.ppid}/fd/${file.fd}`, write ? fs.constants.O_WRONLY : fs.constants.O_RDONLY);
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile() || String(st.dev) !== file.dev || String(st.ino) !== file.ino) {
      throw Object.assign(new Error("not the file the server opened"), { code: "ESTALE" });
    }
    return new OpenFile(fd);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

function start(id: number): { r: Running; progress: Progress } {
  const controller = new AbortController();
  const r: Running = {
    controller,
    pending: 0,
    moved: 0,
    grant: null,
    timer: setInterval(() => flush(id, r), REPORT_MS),
  };
  running.set(id, r);
  const onBytes = (n: number) => {
    r.pending += n;
    r.moved += n;
  };
  const closing = () => {
    flush(id, r);
    post({ type: "closing", id });
  };
  return { r, progress: { signal: controller.signal, onBytes, closing } };
}

function flush(id: number, r: Running): void {
  if (r.pending === 0) return;
  post({ type: "bytes", id, n: r.pending });
  r.pending = 0;
}

function finish(
  id: number,
  r: Running,
  sock: Socket,
  result: { ok: true; bytes: number } | { ok: false; error: unknown; bytes: number },
  receiving = false,
): void {
  clearInterval(r.timer);
  flush(id, r);
  running.delete(id);
  if (result.ok) {
    sock.destroy();
    post({ type: "done", id, ok: true, bytes: result.bytes });
    return;
  }
  const e = result.error;
  let kind: FailureKind = "io";
  if (e instanceof TransferAborted) kind = "aborted";
  else if (e instanceof ConnectionBroken) kind = "broken";
  else if (e instanceof Denied) kind = "denied";
  sock.pause();
  lingering.set(id, { sock, refusedUpload: receiving && (kind === "denied" || kind === "io") });
  setTimeout(() => release(id), LINGER_MS).unref();
  post({
    type: "done",
    id,
    ok: false,
    bytes: result.bytes,
    kind,
    code: (e as NodeJS.ErrnoException)?.code,
    message: (e as Error)?.message ?? String(e),
  });
}

/**
 * The read-ahead ring of a download. Nothing else waits on this process's loop, so a few transfers get two 4 MiB
 * buffers each (fewer, larger writes: S1 went from about 1,900 to 2,300 MB/s); many share the memory in 1 MiB ones.
 */
function ringFor(transfers: number): { chunkBytes: number; buffers: number } {
  return transfers <= 4 ? { chunkBytes: 4 << 20, buffers: 2 } : { chunkBytes: 1 << 20, buffers: 4 };
}

async function runSend(m: Extract<ToChild, { op: "send" }>, file: OpenFile, sock: Socket): Promise<void> {
  const { r, progress } = start(m.id);
  try {
    const bytes = await sendFile(file, m.start, m.end, sock, false, progress, ringFor(running.size));
    finish(m.id, r, sock, { ok: true, bytes });
  } catch (error) {
    finish(m.id, r, sock, { ok: false, error, bytes: r.moved });
  } finally {
    await file.close().catch(() => undefined);
  }
}

async function runRecv(m: Extract<ToChild, { op: "recv" }>, file: OpenFile, sock: Socket): Promise<void> {
  const { r, progress } = start(m.id);
  let granted = m.granted;
  try {
    const written = await receiveFile(
      sock,
      {
        handle: file,
        position: m.position,
        beforeWrite: (end) => {
          if (end <= granted) return;
          return new Promise<void>((resolve, reject) => {
            r.grant = (ok, upTo) => {
              r.grant = null;
              if (!ok) return reject(r.controller.signal.aborted ? new TransferAborted() : new Denied());
              granted = upTo;
              resolve();
            };
            post({ type: "need", id: m.id, end });
          });
        },
      },
      false,
      progress,
    );
    finish(m.id, r, sock, { ok: true, bytes: written }, true);
  } catch (error) {
    finish(m.id, r, sock, { ok: false, error, bytes: (error as { written?: number }).written ?? 0 }, true);
  } finally {
    await file.close().catch(() => undefined);
  }
}

function release(id: number): void {
  const l = lingering.get(id);
  lingering.delete(id);
  // A refused upload's connection closes after the client's side (see closeAfterPeer); any other at once.
  if (l?.refusedUpload) closeAfterPeer(l.sock);
  else l?.sock.destroy();
  const file = opened.get(id);
  opened.delete(id);
  void file?.close().catch(() => undefined);
}

process.on("message", (m: ToChild, handle?: Socket) => {
  switch (m.op) {
    case "probe": {
      try {
        fs.closeSync(reopen(m.file, false).fd);
        post({ type: "probe", ok: true });
      } catch (err) {
        post({ type: "probe", ok: false, reason: (err as Error).message });
      }
      return;
    }
    case "open": {
      try {
        opened.set(m.id, reopen(m.file, m.write));
        post({ type: "opened", id: m.id, ok: true });
      } catch (err) {
        post({ type: "opened", id: m.id, ok: false, reason: (err as Error).message });
      }
      return;
    }
    case "send":
    case "recv": {
      const file = opened.get(m.id);
      opened.delete(m.id);
      if (!handle || !file) {
        handle?.destroy();
        void file?.close().catch(() => undefined);
        post({ type: "done", id: m.id, ok: false, bytes: 0, kind: "broken", message: "the transfer came without its file or connection" });
        return;
      }
      handle.on("error", () => undefined);
      // A client may end its side of a download's connection at once: the file still goes out on ours (the socket
      // made here would end it, and refuse every write, as soon as it read the client's end).
      if (m.op === "send") handle.allowHalfOpen = true;
      void (m.op === "send" ? runSend(m, file, handle) : runRecv(m, file, handle));
      return;
    }
    case "release":
      release(m.id);
      return;
    case "grant":
      running.get(m.id)?.grant?.(m.ok, m.granted);
      return;
    case "abort": {
      const r = running.get(m.id);
      r?.controller.abort();
      // A transfer waiting for more quota is refused, so it ends at once.
      r?.grant?.(false, 0);
      return;
    }
  }
});

// The server is gone: nothing here is worth finishing.
process.on("disconnect", () => process.exit(0));
// Ctrl-C in a terminal signals the whole process group: the server decides when transfers end (it gives running
// ones a grace period on SIGINT and SIGTERM), and ends this process itself, or by going away.
process.on("SIGINT", () => undefined);
process.on("SIGTERM", () => undefined);
