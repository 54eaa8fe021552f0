// Streams between the data connection and local files: a positional file sink that reports each
// write only once it reached the file (so recorded progress never runs ahead of the disk), a counting
// and optionally rate-limited pass-through for uploads.
import { Transform, Writable, type TransformCallback } from "node:stream";
import { finished } from "node:stream/promises";
import type { FileHandle } from "node:fs/promises";

/**
 * Spreads bytes over time so that at most `bytesPerSecond` pass on average. One limiter may be shared by every
 * transfer of a command (the ranges of `get -n`, the files of `mirror -P`): together they keep to the rate.
 */
export class RateLimiter {
  /** When the bytes taken so far may all have gone, in ms since the epoch. */
  private due: number;
  constructor(private readonly bytesPerSecond: number) {
    this.due = Date.now();
  }
  /** Resolves when `n` more bytes may go. */
  async take(n: number): Promise<void> {
    const now = Date.now();
    // A pause (a listing, a verification between files) earns at most one second's worth of bytes.
    if (this.due < now - 1000) this.due = now - 1000;
    this.due += (n / this.bytesPerSecond) * 1000;
    const wait = this.due - now;
    if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, 5000)));
  }
}

export interface FileSinkOptions {
  readonly handle: FileHandle;
  /** File position of the first byte written. */
  readonly position: number;
  /** Accept at most this many bytes, then emit "limit"; more bytes are dropped and emit "overflow". */
  readonly limit?: number;
  /** Called after each write reached the file, with the byte count of that write. */
  readonly onWritten?: (bytes: number) => void;
  readonly limiter?: RateLimiter;
}

export class FileSink extends Writable {
  private position: number;
  private remaining: number;
  private readonly opts: FileSinkOptions;
  written = 0;
  reachedLimit = false;

  constructor(opts: FileSinkOptions) {
    super({ highWaterMark: 1 << 20 });
    this.opts = opts;
    this.position = opts.position;
    this.remaining = opts.limit ?? Number.POSITIVE_INFINITY;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeChunk(chunk).then(() => cb(), cb);
  }

  private async writeChunk(chunk: Buffer): Promise<void> {
    const overflow = chunk.length > this.remaining;
    await this.writeWithin(chunk);
    // Only after the bytes that fit are written, so that listeners see the range complete.
    if (overflow) this.emit("overflow");
  }

  private async writeWithin(chunk: Buffer): Promise<void> {
    if (this.remaining <= 0) return;
    const n = Math.min(chunk.length, this.remaining);
    if (this.opts.limiter) await this.opts.limiter.take(n);
    let off = 0;
    while (off < n) {
      const { bytesWritten } = await this.opts.handle.write(chunk, off, n - off, this.position);
      off += bytesWritten;
      this.position += bytesWritten;
    }
    this.remaining -= n;
    this.written += n;
    this.opts.onWritten?.(n);
    if (this.remaining <= 0 && !this.reachedLimit) {
      this.reachedLimit = true;
      this.emit("limit");
    }
  }
}

/** Counts (and optionally throttles) bytes flowing through. */
export class Meter extends Transform {
  bytes = 0;
  constructor(
    private readonly onBytes: (n: number) => void,
    private readonly limiter?: RateLimiter,
  ) {
    super({ highWaterMark: 1 << 16 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes(chunk.length);
    if (this.limiter) this.limiter.take(chunk.length).then(() => cb(null, chunk), cb);
    else cb(null, chunk);
  }
}

/**
 * Passes bytes on to a stream that is not a file the client may position or truncate (standard output, a device, a
 * FIFO), in order; each chunk is reported only once that stream took it. Ending this sink leaves the target open.
 * An attempt given up (a dropped connection) is stopped: chunks still queued here are dropped, so that what reached
 * the target, and nothing after it, is what a retry continues from.
 */
export class PassSink extends Writable {
  private stopped = false;
  /** The chunk handed to the target and not yet taken. */
  private inflight: Promise<void> = Promise.resolve();

  constructor(
    private readonly target: NodeJS.WritableStream,
    private readonly onWritten: (chunk: Buffer) => void,
    private readonly limiter?: RateLimiter,
  ) {
    super({ highWaterMark: 1 << 16 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const pass = () => {
      if (this.stopped) return cb();
      this.inflight = new Promise<void>((taken) => {
        this.target.write(chunk, (err?: Error | null) => {
          taken();
          if (err) return cb(err);
          // Counted even when stopped meanwhile: these bytes are in the target.
          this.onWritten(chunk);
          cb();
        });
      });
    };
    if (this.limiter) this.limiter.take(chunk.length).then(pass, cb);
    else pass();
  }

  /** Drops what is still queued; resolves once the chunk already handed to the target was taken. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.inflight;
  }

  /** Resolves once every byte given to this sink reached the target. */
  async flushed(): Promise<void> {
    if (!this.writableEnded) this.end();
    await finished(this);
  }
}
