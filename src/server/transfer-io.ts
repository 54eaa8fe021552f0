// Moving bytes between a file and a data connection, with backpressure both ways.
//
// Downloads read the file into a small ring of large buffers and hand them to the socket; a buffer is reused only
// once the socket reports it written, so nothing is copied or allocated per chunk. Uploads gather what the socket
// delivers while the previous write is in flight and write it with one writev, so large transfers make few
// syscalls. Either side ends as soon as the abort signal fires.

import type { FileReader, FileWriter } from "../storage/backend.js";
import type { Duplex } from "node:stream";
import { FromNetworkAscii, ToNetworkAscii } from "../protocol/ascii.js";
import { MyftpError, messageFor } from "../core/errors.js";

export const CHUNK_BYTES = 1 << 20;
const RING = 4;
/** Bytes an upload may hold in memory before the socket is paused. */
const UPLOAD_BUFFER_BYTES = 8 << 20;

export class TransferAborted extends Error {
  constructor() {
    super("transfer aborted");
    this.name = "TransferAborted";
  }
}

export class ConnectionBroken extends Error {
  constructor(cause?: unknown) {
    super("data connection broken", { cause });
    this.name = "ConnectionBroken";
  }
}

export interface Progress {
  /** Called with the byte count of each piece moved (network side). */
  onBytes(n: number): void;
  signal: AbortSignal;
  /**
   * Bytes to move per step (at most CHUNK_BYTES). Each step is copied into the socket on the event loop, so when
   * many transfers share the loop, smaller steps keep the control connections answering promptly.
   */
  stepBytes?: () => number;
  /** Called when the transfer's data moves to a transfer process (it no longer shares the event loop). */
  handedOver?: () => void;
  /**
   * Called when every byte has gone and the end of a download waits for the client to close its side (see finish):
   * that wait moves nothing, yet it is no stall, and it ends by itself.
   */
  closing?: () => void;
}

/** The step for `running` transfers sharing one event loop: 4 MiB in all, between 128 KiB and CHUNK_BYTES each. */
export function stepFor(running: number): number {
  const share = Math.floor((4 << 20) / Math.max(1, running));
  return Math.max(128 << 10, Math.min(CHUNK_BYTES, share - (share % (64 << 10))));
}

function abortable<T>(signal: AbortSignal, p: Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(new TransferAborted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new TransferAborted());
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

/** Resolves when the socket can take more, rejects when it breaks. */
function waitDrain(sock: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      sock.off("drain", onDrain);
      sock.off("error", onErr);
      sock.off("close", onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onErr = (e: Error) => done(new ConnectionBroken(e));
    const onClose = () => done(new ConnectionBroken());
    sock.on("drain", onDrain);
    sock.on("error", onErr);
    sock.on("close", onClose);
  });
}

/**
 * How long the end of a download waits for the client to close its side of the data connection before the final
 * reply goes out anyway (a client that holds it open until the reply comes is served after this).
 */
export const CLIENT_CLOSE_WAIT_MS = 1000;

/**
 * Ends the socket and resolves once everything written has been handed to the network. On a plain TCP socket whose
 * writes have all completed, the kernel holds every byte and delivers it, then the FIN, even if the socket is closed
 * at once, so there is no need to wait a loop turn for the shutdown; TLS keeps buffers of its own below the stream,
 * so there the end itself is awaited.
 *
 * On a plain socket it then waits (at most CLIENT_CLOSE_WAIT_MS) until the client has read to the end and closed its
 * side, so that the final reply reaches the client after the 150, never in the same read: a client that reads the
 * 150, takes the data and only then waits for its control connection to be readable (aria2c) would otherwise not
 * see a 226 that came along with the 150 until its timeout. Whatever the client sends meanwhile is read and dropped,
 * so closing the connection afterwards cannot reset it.
 */
export function finish(sock: Duplex, closing?: () => void): Promise<void> {
  if (!(sock as { encrypted?: boolean }).encrypted && sock.writableLength === 0 && !sock.destroyed) {
    sock.end();
    closing?.();
    return peerClosed(sock, CLIENT_CLOSE_WAIT_MS);
  }
  return new Promise((resolve, reject) => {
    if (sock.writableFinished) return resolve();
    const onFinish = () => {
      cleanup();
      resolve();
    };
    const onErr = (e: Error) => {
      cleanup();
      reject(new ConnectionBroken(e));
    };
    const onClose = () => {
      cleanup();
      if (sock.writableFinished) resolve();
      else reject(new ConnectionBroken());
    };
    const cleanup = () => {
      sock.off("finish", onFinish);
      sock.off("error", onErr);
      sock.off("close", onClose);
    };
    sock.on("finish", onFinish);
    sock.on("error", onErr);
    sock.on("close", onClose);
    sock.end();
  });
}

/** Resolves once the peer has ended its side of the socket (or it closed or failed), or after `ms`. */
/** How long a refused upload's data connection stays open after the reply, for the client to close it first. */
export const REFUSED_UPLOAD_LINGER_MS = 2000;

/**
 * Closes the data connection of an upload the server refused (quota, disk) once the client has closed its side, or
 * after REFUSED_UPLOAD_LINGER_MS, reading and dropping what it still sends meanwhile. Closed at once with data
 * unread, the connection would be reset, and a client still writing (Python's ftplib with a file larger than the
 * socket buffers) reports that reset instead of the 552 it has not read yet.
 */
export function closeAfterPeer(sock: Duplex): void {
  void peerClosed(sock, REFUSED_UPLOAD_LINGER_MS).then(() => sock.destroy());
}

function peerClosed(sock: Duplex, ms: number): Promise<void> {
  if (sock.readableEnded || sock.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      sock.off("end", done);
      sock.off("close", done);
      sock.off("error", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    sock.on("end", done);
    sock.on("close", done);
    sock.on("error", done);
    // Flowing with no data listener: what the client sends is read and dropped.
    sock.resume();
  });
}

/** Counts a socket's writes in flight; settled() resolves once every one has completed (or one failed). */
class WriteTracker {
  private inFlight = 0;
  private waiter: (() => void) | null = null;
  error: Error | null = null;

  write(sock: Duplex, chunk: Buffer, onDone?: () => void): boolean {
    this.inFlight++;
    return sock.write(chunk, (err) => {
      if (err) this.error ??= new ConnectionBroken(err);
      this.inFlight--;
      onDone?.();
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Resolves at the next completion. */
  next(): Promise<void> {
    return new Promise((resolve) => (this.waiter = resolve));
  }

  async settled(signal: AbortSignal): Promise<void> {
    for (let i = 0; this.inFlight > 0 && !this.error && i < 1_000_000; i++) await abortable(signal, this.next());
    if (this.error) throw this.error;
  }
}

/** Sends bytes [start, size) of a file. Returns the bytes sent on the wire. */
export async function sendFile(
  handle: FileReader,
  start: number,
  size: number,
  sock: Duplex,
  ascii: boolean,
  progress: Progress,
  ring: { chunkBytes: number; buffers: number } = { chunkBytes: CHUNK_BYTES, buffers: RING },
): Promise<number> {
  // Buffers are made as the ring needs them, so a small file costs one buffer of its own size.
  const free: Buffer[] = [];
  let made = 0;
  const chunkBytes = Math.max(1, Math.min(ring.chunkBytes, size - start));
  const writes = new WriteTracker();
  const conv = ascii ? new ToNetworkAscii() : null;
  let pos = start;
  let sent = 0;
  while (pos < size) {
    if (writes.error) throw writes.error;
    if (free.length === 0 && made < ring.buffers) {
      free.push(Buffer.allocUnsafe(chunkBytes));
      made++;
    }
    if (free.length === 0) {
      await abortable(progress.signal, writes.next());
      continue;
    }
    const buf = free.pop()!;
    const step = progress.stepBytes ? Math.min(buf.length, progress.stepBytes()) : buf.length;
    const want = Math.min(step, size - pos);
    // A small file is read in one go; the backend may do that at once instead of on the thread pool.
    const bytesRead =
      (want === size - start ? handle.readNow?.(buf, 0, want, pos) : null) ??
      (await abortable(progress.signal, handle.read(buf, 0, want, pos))).bytesRead;
    // The file shrank while it was sent: what went is not the file the 150 announced, and a 226 would have the
    // client take a cut file for a whole one.
    if (bytesRead === 0) throw new MyftpError("changed", messageFor("changed"));
    pos += bytesRead;
    const piece = conv ? conv.convert(buf.subarray(0, bytesRead)) : buf.subarray(0, bytesRead);
    sent += piece.length;
    // Backpressure is the ring itself: at most RING buffers are in the socket at once, and reading ahead into a
    // free one overlaps the disk read with the network write.
    writes.write(sock, piece, () => free.push(buf));
    progress.onBytes(piece.length);
  }
  await writes.settled(progress.signal);
  await abortable(progress.signal, finish(sock, progress.closing));
  return sent;
}

/** Sends text (a listing) in pieces with backpressure. */
export async function sendText(pieces: Iterable<string>, sock: Duplex, progress: Progress): Promise<number> {
  const writes = new WriteTracker();
  let sent = 0;
  for (const p of pieces) {
    if (progress.signal.aborted) throw new TransferAborted();
    if (writes.error) throw writes.error;
    const b = Buffer.from(p, "utf8");
    sent += b.length;
    progress.onBytes(b.length);
    if (!writes.write(sock, b)) await abortable(progress.signal, waitDrain(sock));
  }
  await writes.settled(progress.signal);
  await abortable(progress.signal, finish(sock, progress.closing));
  return sent;
}

export interface ReceiveTarget {
  handle: FileWriter;
  /** File offset of the first byte. */
  position: number;
  /**
   * Called before bytes reaching up to file offset `end` are written; throws or rejects (e.g. quota) to refuse
   * them, in which case nothing of that batch is written. A promise is awaited (reading goes on meanwhile, with
   * backpressure); if the transfer fails meanwhile (abort, broken connection) it is not awaited further, and `cancel`
   * fires the moment it is given up: whatever it was waiting for must then not happen.
   */
  beforeWrite(end: number, cancel: AbortSignal): void | Promise<void>;
}

/**
 * Receives until the peer ends the stream, writing as it goes. Returns the bytes written to the file. On failure
 * the error carries `written` (bytes safely in the file) so the caller can account and restore exactly.
 */
export async function receiveFile(
  sock: Duplex,
  target: ReceiveTarget,
  ascii: boolean,
  progress: Progress,
): Promise<number> {
  const conv = ascii ? new FromNetworkAscii() : null;
  let chunks: Buffer[] = [];
  let buffered = 0;
  let ended = false;
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  let paused = false;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const onData = (chunk: Buffer) => {
    progress.onBytes(chunk.length);
    const piece = conv ? conv.convert(chunk) : chunk;
    if (piece.length > 0) {
      chunks.push(piece);
      buffered += piece.length;
    }
    if (buffered >= UPLOAD_BUFFER_BYTES && !paused) {
      paused = true;
      sock.pause();
    }
    notify();
  };
  const onEnd = () => {
    if (conv) {
      const tail = conv.flush();
      if (tail.length > 0) {
        chunks.push(tail);
        buffered += tail.length;
      }
    }
    ended = true;
    notify();
  };
  const onError = (e: Error) => {
    failure ??= new ConnectionBroken(e);
    notify();
  };
  const onClose = () => {
    if (!ended) failure ??= new ConnectionBroken();
    notify();
  };
  const onAbort = () => {
    failure ??= new TransferAborted();
    notify();
  };
  sock.on("data", onData);
  sock.on("end", onEnd);
  sock.on("error", onError);
  sock.on("close", onClose);
  progress.signal.addEventListener("abort", onAbort, { once: true });
  if (progress.signal.aborted) onAbort();
  sock.resume(); // data sockets start paused so nothing is read before the transfer is ready
  // Fires when a wait in beforeWrite is given up (the transfer failed meanwhile); the loop ends then, so one serves all.
  const giveUp = new AbortController();

  let pos = target.position;
  try {
    for (;;) {
      if (chunks.length > 0 && !failure) {
        const batch = chunks;
        const bytes = buffered;
        chunks = [];
        buffered = 0;
        if (paused) {
          paused = false;
          sock.resume();
        }
        const allowed = target.beforeWrite(pos + bytes, giveUp.signal);
        if (allowed) {
          // Waits for the answer while the connection is read on; a failure meanwhile ends the wait at once.
          let answer: { error: unknown } | null = null;
          void Promise.resolve(allowed).then(
            () => (answer = { error: null }),
            (error: unknown) => (answer = { error: error ?? new Error("refused") }),
          ).then(notify);
          while (answer === null && !failure) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
          }
          if (answer === null) {
            giveUp.abort();
            throw failure!;
          }
          const { error } = answer as { error: unknown };
          if (error) throw error;
        }
        let off = 0;
        while (off < bytes) {
          const { bytesWritten } = await target.handle.writev(off === 0 ? batch : sliceFrom(batch, off), pos);
          if (bytesWritten <= 0) throw new Error("write made no progress");
          off += bytesWritten;
          pos += bytesWritten;
        }
        continue;
      }
      if (failure) throw failure;
      if (ended) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    return pos - target.position;
  } catch (err) {
    throw Object.assign(err as Error, { written: pos - target.position });
  } finally {
    sock.off("data", onData);
    sock.off("end", onEnd);
    sock.off("error", onError);
    sock.off("close", onClose);
    progress.signal.removeEventListener("abort", onAbort);
  }
}

/** The buffers of a list from byte offset `off` on (after a short write). */
function sliceFrom(list: Buffer[], off: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = off;
  for (const b of list) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
