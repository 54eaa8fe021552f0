// Single-file get and put: automatic resume after checking the part already there, retries on dropped
// connections, and verification of the whole file once it is complete.
import { createReadStream } from "node:fs";
import { open, rename, stat, unlink, utimes, type FileHandle } from "node:fs/promises";
import { basename } from "node:path";
import { ClientError, isFtpReplyError, replyText, toClientError } from "./errors.js";
import { createHasher, hashLocalFile, type HashAlgorithm, HASH_PREFERENCE } from "./hashing.js";
import type { ProgressHandle, ProgressReporter } from "./progress.js";
import { isHashRefusal, shouldRetry, type FtpSession } from "./session.js";
import { FileSink, Meter, PassSink, RateLimiter } from "./streams.js";

export interface TransferOptions {
  /** Continue a partial file (default); false starts over. */
  readonly resume: boolean;
  /** Reconnect-and-resume attempts after a dropped connection. */
  readonly retries: number;
  /** Bytes per second, for slow links and tests. */
  readonly limitRate?: number;
  /** A limiter shared with other transfers of the same command (mirror -P); without it each transfer keeps to limitRate alone. */
  readonly limiter?: RateLimiter;
  readonly progress: ProgressReporter;
  /** One line of information for the user (resume decisions, verification method). */
  readonly note: (line: string) => void;
}

export interface TransferResult {
  readonly size: number;
  readonly transferred: number;
  readonly resumedFrom: number;
  readonly verified: string;
  readonly skipped: boolean;
}

/** The command's shared limiter, or one for this transfer alone, or none. */
export function rateLimiter(opts: Pick<TransferOptions, "limitRate" | "limiter">): RateLimiter | undefined {
  return opts.limiter ?? (opts.limitRate ? new RateLimiter(opts.limitRate) : undefined);
}

/** Suffix for a file set aside after a failed verification. */
export const MISMATCH_SUFFIX = ".myftp-mismatch";

function algorithmOf(name: string): HashAlgorithm | undefined {
  return HASH_PREFERENCE.find((a) => a === name.toUpperCase());
}

async function localSize(path: string): Promise<number | undefined> {
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw new ClientError("local", `${path} is a directory`);
    return st.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export type PrefixCheck = "hash" | "size" | "mismatch" | "unavailable";

/** Where a segmented download keeps its progress: next to the local file, with this suffix. */
export const SEGMENT_STATE_SUFFIX = ".myftp-segments";

/** What the previous attempt of a transfer did to the partial file: where it began and at most how many bytes it moved. */
export interface AttemptTrace {
  readonly offset: number;
  moved: number;
}

/**
 * Is a partial file of `have` bytes what our own previous attempt left? Only if that attempt moved bytes into it and
 * the size is within what it could have produced; anything else (an attempt refused before sending a byte, a file
 * another client wrote in between) gets the normal checks.
 */
export function leftByUs(last: AttemptTrace | undefined, have: number): boolean {
  return last !== undefined && last.moved > 0 && have >= last.offset && have <= last.offset + last.moved;
}

/** The note for another try: a refusal the server may lift (450 busy, 425/426 data trouble) is not a lost connection. */
function retryNote(verb: string, name: string, err: unknown, n: number, retries: number): string {
  if (isFtpReplyError(err) && err.code !== 421) {
    const what = err.code === 450 ? "the server is busy" : "the server answered";
    return `${verb} ${name}: ${what} (${err.code} ${replyText(err.message)}); retry ${n}/${retries}`;
  }
  return `connection lost during ${verb} ${name} (${toClientError(err).message}); retry ${n}/${retries}`;
}

/**
 * Does the remote file start with the same `length` bytes as the local one? Uses HASH over the range
 * where the server offers it ("hash"), else only sizes can be compared ("size").
 */
export async function checkPrefix(session: FtpSession, remote: string, local: string, length: number): Promise<PrefixCheck> {
  return await checkRange(session, remote, local, 0, length);
}

/** Are bytes [start, endExclusive) the same in the remote and the local file? As checkPrefix, for any range. */
export async function checkRange(session: FtpSession, remote: string, local: string, start: number, endExclusive: number): Promise<PrefixCheck> {
  if (endExclusive <= start) return "hash";
  if (!session.hasRangedHash) return "size";
  let reply;
  try {
    reply = await session.remoteHash(remote, { start, endExclusive });
  } catch (err) {
    if (isHashRefusal(err)) return "size";
    throw err;
  }
  if (!reply) return "size";
  const algo = algorithmOf(reply.algorithm);
  if (!algo) return "size";
  const mine = await hashLocalFile(local, algo, start, endExclusive);
  return mine === reply.hex ? "hash" : "mismatch";
}

/** Times within this many milliseconds count as equal: MDTM has whole seconds. */
const TIME_SLACK_MS = 2000;

async function localMtime(path: string): Promise<Date | undefined> {
  return (await stat(path).catch(() => undefined))?.mtime;
}

/** Is time `a` clearly later than time `b` (both known)? */
async function newerThan(a: Promise<Date | undefined>, b: Promise<Date | undefined>): Promise<boolean> {
  const [x, y] = await Promise.all([a.catch(() => undefined), b.catch(() => undefined)]);
  return x !== undefined && y !== undefined && x.getTime() > y.getTime() + TIME_SLACK_MS;
}

/** Was the remote file modified clearly after the local file (both times known)? */
export async function remoteIsNewer(session: FtpSession, remote: string, local: string): Promise<boolean> {
  return await newerThan(session.mtime(remote), localMtime(local));
}

/** Compare the whole remote file with the local one; throws a verify error on mismatch. */
export async function verifyWhole(
  session: FtpSession,
  remote: string,
  local: string,
  opts: Pick<TransferOptions, "note">,
): Promise<string> {
  const size = (await localSize(local)) ?? 0;
  return await verifyBytes(session, remote, size, (algo) => hashLocalFile(local, algo), "local", opts);
}

/**
 * Checks `count` bytes against the server's file `remote`: by the server's HASH where it has one and `hashOf` can
 * give theirs by the algorithm the server answered with, else by the size (SIZE, else the listing). `label` names
 * where the bytes are, in the messages. Throws a verify error on a mismatch.
 */
async function verifyBytes(
  session: FtpSession,
  remote: string,
  count: number,
  hashOf: (algo: HashAlgorithm) => Promise<string | undefined>,
  label: string,
  opts: Pick<TransferOptions, "note">,
): Promise<string> {
  if (session.hasHash) {
    let reply;
    try {
      reply = await session.remoteHash(remote);
    } catch (err) {
      if (!isHashRefusal(err)) throw err;
      opts.note(`note: ${(err as Error).message}; checking its size only`);
    }
    const algo = reply ? algorithmOf(reply.algorithm) : undefined;
    const mine = reply && algo ? await hashOf(algo) : undefined;
    if (reply && algo && mine !== undefined) {
      if (mine !== reply.hex)
        throw new ClientError("verify", `verification failed: ${algo} differs (${label} ${mine.slice(0, 16)}…, server ${reply.hex.slice(0, 16)}…)`);
      return `${algo} verified`;
    }
  }
  if (!session.hasHash && !session.saidOnce.has("no-hash")) {
    session.saidOnce.add("no-hash");
    opts.note("note: the server has no HASH command; transfers are verified by size only");
  }
  const remoteSize = (await session.size(remote)) ?? (await session.listedSize(remote));
  if (remoteSize === undefined) {
    // SIZE is optional (RFC 3659) and not every listing shows a file: nothing to compare, which is not a mismatch.
    opts.note(`note: the server tells the size of ${remote} neither by SIZE nor in a listing; the transfer is not verified`);
    return "not verified";
  }
  if (remoteSize !== count) throw new ClientError("verify", `verification failed: sizes differ (${label} ${count} bytes, server ${remoteSize} bytes)`);
  return "size verified";
}

/** Download one file. */
export async function getFile(session: FtpSession, remote: string, local: string, opts: TransferOptions): Promise<TransferResult> {
  const name = remote.replace(/^\.\//, "") || basename(local);
  const started = Date.now();
  let transferred = 0;
  let resumedFrom = 0;
  let bar: ProgressHandle | undefined;
  const limiter = rateLimiter(opts);
  const existed = (await localSize(local).catch(() => undefined)) !== undefined;
  let last: AttemptTrace | undefined;
  try {
    const outcome = await session.withReconnect(
      opts.retries,
      async (attempt) => {
        const remoteSize = await session.size(remote, true);
        const have = (await localSize(local)) ?? 0;
        const ours = attempt > 0 && leftByUs(last, have);
        last = undefined;
        let offset = 0;
        if (have > 0 && opts.resume) {
          offset = await planGetResume(session, remote, local, have, remoteSize, ours, opts);
        }
        if (attempt === 0) resumedFrom = offset;
        if (remoteSize !== undefined && offset === remoteSize && offset > 0) return "complete" as const;
        bar ??= opts.progress.start("get", name, remoteSize, offset);
        bar.setTotal(remoteSize);
        let done = offset;
        const handle: FileHandle = await open(local, offset > 0 ? "r+" : "w");
        const trace: AttemptTrace = { offset, moved: 0 };
        last = trace;
        try {
          if (offset === 0) await handle.truncate(0);
          const sink = new FileSink({
            handle,
            position: offset,
            limiter,
            onWritten: (n) => {
              done += n;
              trace.moved += n;
              transferred += n;
              bar?.update(done);
            },
          });
          await session.transfer(() => session.client.downloadTo(sink, remote, offset));
          await handle.truncate(done);
        } finally {
          await handle.close();
        }
        return "transferred" as const;
      },
      (err, n) => opts.note(retryNote("get", remote, err, n, opts.retries)),
    );
    const verified = await verifyOrSetAside(session, remote, local, opts, "get");
    // The file is whole now: progress saved by an earlier segmented run of it means nothing any more.
    await unlink(local + SEGMENT_STATE_SUFFIX).catch(() => undefined);
    const size = (await localSize(local)) ?? 0;
    const when = await session.mtime(remote).catch(() => undefined);
    if (when) await utimes(local, new Date(), when).catch(() => undefined);
    const result = { size, transferred, resumedFrom, verified, skipped: outcome === "complete" };
    if (result.skipped) {
      bar?.abort();
      opts.note(`get ${name}: already complete (${verified})`);
    } else {
      bar ??= opts.progress.start("get", name, size, size);
      bar.finish({ ...result, seconds: (Date.now() - started) / 1000 });
    }
    return result;
  } catch (err) {
    bar?.abort();
    // Do not leave an empty file behind for a download that never started.
    if (!existed && transferred === 0) await unlink(local).catch(() => undefined);
    throw toClientError(err, { action: `get ${remote}` });
  }
}

/**
 * Download one file into a stream the client cannot position or truncate: standard output, or a device or FIFO
 * (`label` names it). The bytes go out in order, so nothing is resumed from before the run, and a retry continues at
 * the count already written (REST). The whole is verified by hashing the bytes as they pass where the server has
 * HASH, else by their count against the server's size; a mismatch cannot be taken back, so it is reported (exit 7).
 */
export async function getStream(session: FtpSession, remote: string, out: NodeJS.WritableStream, label: string, opts: TransferOptions): Promise<TransferResult> {
  const name = remote.replace(/^\.\//, "");
  const started = Date.now();
  const limiter = rateLimiter(opts);
  const algo = session.hashAlgorithm;
  const hasher = algo ? createHasher(algo) : undefined;
  let done = 0;
  let bar: ProgressHandle | undefined;
  try {
    await session.withReconnect(
      opts.retries,
      async () => {
        const remoteSize = await session.size(remote, true);
        if (done > 0 && !session.features.restStream)
          throw new ClientError("remote", `the connection was lost after ${done} bytes went to ${label}, and the server cannot restart a transfer there (no REST STREAM)`);
        bar ??= opts.progress.start("get", name, remoteSize, 0);
        bar.setTotal(remoteSize);
        const sink = new PassSink(
          out,
          (chunk) => {
            hasher?.update(chunk);
            done += chunk.length;
            bar?.update(done);
          },
          limiter,
        );
        try {
          await session.transfer(() => session.client.downloadTo(sink, remote, done));
        } catch (err) {
          // Nothing more of this attempt goes out: the retry's REST is the count that reached the target.
          await sink.stop();
          throw err;
        }
        await sink.flushed();
      },
      (err, n) => opts.note(retryNote("get", remote, err, n, opts.retries)),
    );
    const mine = hasher?.digestHex();
    const verified = await session.withReconnect(
      opts.retries,
      () => verifyBytes(session, remote, done, async (a) => (a === algo ? mine : undefined), label, opts),
      (err, n) => opts.note(retryNote("get", remote, err, n, opts.retries)),
    );
    const result = { size: done, transferred: done, resumedFrom: 0, verified, skipped: false };
    bar ??= opts.progress.start("get", name, done, done);
    bar.finish({ ...result, seconds: (Date.now() - started) / 1000 });
    return result;
  } catch (err) {
    bar?.abort();
    throw toClientError(err, { action: `get ${remote}` });
  }
}

async function planGetResume(
  session: FtpSession,
  remote: string,
  local: string,
  have: number,
  remoteSize: number | undefined,
  ownPartial: boolean,
  opts: TransferOptions,
): Promise<number> {
  if (remoteSize === undefined) {
    opts.note(`get ${remote}: the server does not tell the file's size, so the local part cannot be resumed; starting over`);
    return 0;
  }
  if (have > remoteSize) {
    opts.note(`get ${remote}: the local file is larger than the remote one; starting over`);
    return 0;
  }
  if (have < remoteSize && !session.features.restStream) {
    opts.note(`get ${remote}: the server cannot restart transfers (no REST STREAM); starting over`);
    return 0;
  }
  if (ownPartial) return have;
  const check = await checkPrefix(session, remote, local, have);
  if (check === "mismatch") {
    opts.note(`get ${remote}: the local file's first ${have} bytes differ from the remote file; starting over`);
    return 0;
  }
  // Without a hash, times are the only other hint: a remote file changed after the local part was
  // written is another file now.
  if (check === "size" && (await remoteIsNewer(session, remote, local))) {
    opts.note(`get ${remote}: the remote file changed after the local copy was written; starting over`);
    return 0;
  }
  if (have === remoteSize) return have;
  if (check === "hash") opts.note(`get ${remote}: resuming at byte ${have} (existing part checked by HASH)`);
  else opts.note(`get ${remote}: resuming at byte ${have} (sizes only: the server cannot hash a range to check the existing part)`);
  return have;
}

/** verifyWhole, reconnecting when the connection drops during the check, as a transfer does (--retries). */
export async function verifyWithRetries(
  session: FtpSession,
  remote: string,
  local: string,
  opts: Pick<TransferOptions, "note" | "retries">,
  name = remote,
  verb = "get",
): Promise<string> {
  return await session.withReconnect(
    opts.retries,
    () => verifyWhole(session, remote, local, opts),
    (err, n) => opts.note(retryNote(verb, name, err, n, opts.retries)),
  );
}

async function verifyOrSetAside(
  session: FtpSession,
  remote: string,
  local: string,
  opts: TransferOptions,
  direction: "get" | "put",
): Promise<string> {
  try {
    return await verifyWithRetries(session, remote, local, opts, direction === "get" ? remote : local, direction);
  } catch (err) {
    if (err instanceof ClientError && err.kind === "verify") {
      if (direction === "get") {
        const aside = local + MISMATCH_SUFFIX;
        await rename(local, aside).catch(() => undefined);
        throw new ClientError("verify", `${err.message}; the local file was kept aside as ${aside}`);
      }
      const aside = remote + MISMATCH_SUFFIX;
      const moved = await session.client.rename(remote, aside).then(
        () => true,
        () => false,
      );
      throw new ClientError("verify", moved ? `${err.message}; the remote file was kept aside as ${aside}` : err.message);
    }
    throw err;
  }
}

/** Upload one file. */
export async function putFile(session: FtpSession, local: string, remote: string, opts: TransferOptions): Promise<TransferResult> {
  const name = local;
  const started = Date.now();
  let transferred = 0;
  let resumedFrom = 0;
  let bar: ProgressHandle | undefined;
  const limiter = rateLimiter(opts);
  try {
    const size = await localSize(local);
    if (size === undefined) throw new ClientError("local", `no such local file: ${local}`);
    let last: AttemptTrace | undefined;
    const outcome = await session.withReconnect(
      opts.retries,
      async (attempt) => {
        const have = opts.resume || attempt > 0 ? ((await session.size(remote)) ?? 0) : 0;
        const ours = attempt > 0 && leftByUs(last, have);
        last = undefined;
        let offset = 0;
        if (have > 0) offset = await planPutResume(session, local, remote, have, size, ours, opts);
        if (attempt === 0) resumedFrom = offset;
        if (offset === size && size > 0) return "complete" as const;
        bar ??= opts.progress.start("put", name, size, offset);
        let done = offset;
        const source = createReadStream(local, { start: offset, highWaterMark: 1 << 16 });
        const meter = new Meter((n) => {
          done += n;
          transferred += n;
          bar?.update(done);
        }, limiter);
        source.on("error", (e) => meter.destroy(e));
        source.pipe(meter);
        const trace: AttemptTrace = { offset, moved: 0 };
        last = trace;
        try {
          await session.transfer(async () => {
            if (offset === 0) await session.upload(meter, remote, "STOR");
            else if (session.features.restStream) await session.upload(meter, remote, "STOR", offset);
            else await session.upload(meter, remote, "APPE");
          });
        } finally {
          // What left the meter went to the data connection; what still waits in it never did (a refused STOR).
          trace.moved = meter.bytes - meter.readableLength;
          source.destroy();
        }
        if (meter.bytes !== size - offset)
          throw new ClientError("local", `${local} changed while it was being sent (${meter.bytes} of ${size - offset} bytes read)`);
        return "transferred" as const;
      },
      (err, n) => opts.note(retryNote("put", local, err, n, opts.retries)),
    );
    const verified = await verifyOrSetAside(session, remote, local, opts, "put");
    const result = { size, transferred, resumedFrom, verified, skipped: outcome === "complete" };
    const st = await stat(local);
    await session.setMtime(remote, st.mtime).catch(() => false);
    if (result.skipped) {
      bar?.abort();
      opts.note(`put ${name}: already complete (${verified})`);
    } else {
      bar ??= opts.progress.start("put", name, size, size);
      bar.finish({ ...result, seconds: (Date.now() - started) / 1000 });
    }
    return result;
  } catch (err) {
    bar?.abort();
    // What the server refused is the remote file: named when it is not simply the local file's name.
    const e = toClientError(err);
    const target = e.kind !== "local" && remote !== basename(local) ? ` to ${remote}` : "";
    throw toClientError(err, { action: `put ${local}${target}` });
  }
}

/**
 * Upload what `input` gives (standard input, named `label`) as `remote`, from its start: the bytes are read once, so
 * there is nothing to resume from and no retry once the transfer began. The whole is verified as getStream does, and
 * a remote file that does not match is set aside as `REMOTE.myftp-mismatch`.
 */
export async function putStream(session: FtpSession, input: NodeJS.ReadableStream, remote: string, label: string, opts: TransferOptions): Promise<TransferResult> {
  const started = Date.now();
  const algo = session.hashAlgorithm;
  const hasher = algo ? createHasher(algo) : undefined;
  const bar = opts.progress.start("put", label, undefined, 0);
  let sent = 0;
  try {
    const meter = new Meter((n) => {
      sent += n;
      bar.update(sent);
    }, rateLimiter(opts));
    input.on("data", (chunk: Buffer) => hasher?.update(chunk));
    input.on("error", (e: Error) => meter.destroy(e));
    input.pipe(meter);
    try {
      await session.transfer(() => session.upload(meter, remote, "STOR"));
    } catch (err) {
      const e = toClientError(err, { action: `put ${label}` });
      if (!shouldRetry(err)) throw e;
      throw new ClientError(e.kind, `${e.message} (${label} cannot be read again, so this is not retried)`, { cause: err, ftpCode: e.ftpCode });
    }
    let verified;
    try {
      const mine = hasher?.digestHex();
      verified = await session.withReconnect(
        opts.retries,
        () => verifyBytes(session, remote, meter.bytes, async (a) => (a === algo ? mine : undefined), label, opts),
        (err, n) => opts.note(retryNote("put", label, err, n, opts.retries)),
      );
    } catch (err) {
      if (!(err instanceof ClientError && err.kind === "verify")) throw err;
      const aside = remote + MISMATCH_SUFFIX;
      const moved = await session.client.rename(remote, aside).then(() => true, () => false);
      throw new ClientError("verify", moved ? `${err.message}; the remote file was kept aside as ${aside}` : err.message);
    }
    const result = { size: meter.bytes, transferred: meter.bytes, resumedFrom: 0, verified, skipped: false };
    bar.finish({ ...result, seconds: (Date.now() - started) / 1000 });
    return result;
  } catch (err) {
    bar.abort();
    throw toClientError(err, { action: `put ${label}` });
  }
}

async function planPutResume(
  session: FtpSession,
  local: string,
  remote: string,
  have: number,
  size: number,
  ownPartial: boolean,
  opts: TransferOptions,
): Promise<number> {
  if (have > size) {
    opts.note(`put ${local}: the remote file is larger than the local one; starting over`);
    return 0;
  }
  if (ownPartial) return have;
  const check = await checkPrefix(session, remote, local, have);
  if (check === "mismatch") {
    opts.note(`put ${local}: the remote file's first ${have} bytes differ from the local file; starting over`);
    return 0;
  }
  if (check === "size" && (await newerThan(localMtime(local), session.mtime(remote)))) {
    opts.note(`put ${local}: the local file changed after the remote copy was written; starting over`);
    return 0;
  }
  if (have === size) return have;
  const how = session.features.restStream ? "REST+STOR" : "APPE";
  if (check === "hash") opts.note(`put ${local}: resuming at byte ${have} with ${how} (existing part checked by HASH)`);
  else opts.note(`put ${local}: resuming at byte ${have} with ${how} (sizes only: the server cannot hash a range to check the existing part)`);
  return have;
}
