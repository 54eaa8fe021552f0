// Segmented download: N byte ranges fetched over N connections at once (REST to each range's start,
// then the connection is closed once the range is complete), written in place into one file. Progress
// of each range is kept in a small state file next to the download, so a killed run continues where
// it stopped. A server answering 421 at its connection limit makes us go on with fewer connections.
import { open, readFile, rename, stat, unlink, utimes, writeFile, type FileHandle } from "node:fs/promises";
import { basename } from "node:path";
import { ClientError, toClientError } from "./errors.js";
import type { ProgressHandle } from "./progress.js";
import { shouldRetry, sleep, type FtpSession } from "./session.js";
import { FileSink } from "./streams.js";
import {
  checkPrefix,
  checkRange,
  getFile,
  rateLimiter,
  remoteIsNewer,
  verifyWithRetries,
  MISMATCH_SUFFIX,
  SEGMENT_STATE_SUFFIX,
  type TransferOptions,
  type TransferResult,
} from "./transfer.js";

export { SEGMENT_STATE_SUFFIX };
/** Ranges smaller than this are not worth a connection of their own. */
export const MIN_SEGMENT = 256 * 1024;
const MAX_CONNECTIONS = 16;

export interface Segment {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
  /** Next byte to fetch; start ≤ pos ≤ end. */
  pos: number;
}

export interface SegmentState {
  readonly version: 1;
  readonly remote: string;
  readonly size: number;
  /** The remote file's modification time (MDTM, ms since the epoch) when the download began, where known. */
  readonly mtime?: number;
  readonly segments: Segment[];
}

/** Split [from, size) into at most n ranges of nearly equal length (none empty). */
export function splitRanges(from: number, size: number, n: number): Segment[] {
  const len = size - from;
  if (len <= 0) return [];
  const count = Math.max(1, Math.min(n, Math.ceil(len / MIN_SEGMENT)));
  const base = Math.floor(len / count);
  const extra = len % count;
  const out: Segment[] = [];
  let at = from;
  for (let i = 0; i < count; i++) {
    const l = base + (i < extra ? 1 : 0);
    out.push({ start: at, end: at + l, pos: at });
    at += l;
  }
  return out;
}

export function parseSegmentState(text: string): SegmentState | undefined {
  try {
    const v = JSON.parse(text) as SegmentState;
    if (v.version !== 1 || typeof v.remote !== "string" || !Number.isSafeInteger(v.size) || !Array.isArray(v.segments)) return undefined;
    if (v.mtime !== undefined && !Number.isSafeInteger(v.mtime)) return undefined;
    for (const s of v.segments) {
      if (!Number.isSafeInteger(s.start) || !Number.isSafeInteger(s.end) || !Number.isSafeInteger(s.pos)) return undefined;
      if (!(s.start <= s.pos && s.pos <= s.end && s.end <= v.size)) return undefined;
    }
    return v;
  } catch {
    return undefined;
  }
}

async function loadState(file: string): Promise<SegmentState | undefined> {
  try {
    return parseSegmentState(await readFile(file, "utf8"));
  } catch {
    return undefined;
  }
}

async function saveState(file: string, state: SegmentState): Promise<void> {
  const tmp = `${file}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify(state));
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Is there an unfinished segmented download for this local file? */
export async function hasSegmentState(local: string): Promise<boolean> {
  return (await loadState(local + SEGMENT_STATE_SUFFIX)) !== undefined;
}

/**
 * Refuses to upload a local file a killed `get -n` left unfinished (the record `hasSegmentState` reads is beside it,
 * as `mirror --reverse` skips such a file): it is full size with zeros where ranges are still missing, and sent as it
 * is those holes would be stored as data. The error (exit 8, a local file problem) names the file and the way out.
 */
export async function refuseUnfinished(local: string, action: string): Promise<void> {
  if (!(await hasSegmentState(local))) return;
  const record = local + SEGMENT_STATE_SUFFIX;
  throw new ClientError(
    "local",
    `${action}: not uploaded: ${local} is an unfinished segmented download (${record} beside it lists ranges still missing); ` +
      `finish it with myftp get into the same local path, or remove ${record} if the file is known to be whole`,
  );
}

function is421(err: unknown): boolean {
  if (err instanceof ClientError) return err.ftpCode === 421;
  return (err as { code?: unknown })?.code === 421;
}

/**
 * Is the remote file still the one the saved state was taken from? The ranges already fetched are checked by HASH
 * where the server can hash a range; otherwise its modification time must be the one saved (or, for a state saved
 * without one, not later than the local file's).
 */
async function stateStillFits(session: FtpSession, remote: string, local: string, state: SegmentState, remoteMtime: Date | undefined): Promise<boolean> {
  if (session.hasRangedHash) {
    let checked = true;
    for (const s of state.segments) {
      if (s.pos === s.start) continue;
      const check = await checkRange(session, remote, local, s.start, s.pos);
      if (check === "mismatch") return false;
      if (check !== "hash") checked = false;
    }
    if (checked) return true;
  }
  if (state.mtime !== undefined && remoteMtime !== undefined) return state.mtime === remoteMtime.getTime();
  return !(await remoteIsNewer(session, remote, local));
}

export async function getSegmented(
  session: FtpSession,
  remote: string,
  local: string,
  requested: number,
  opts: TransferOptions,
): Promise<TransferResult> {
  const name = remote.replace(/^\.\//, "") || basename(local);
  const stateFile = local + SEGMENT_STATE_SUFFIX;
  const started = Date.now();
  const size = await session.size(remote, true).catch((err) => {
    throw toClientError(err, { action: `get ${remote}` });
  });
  if (size === undefined || !session.features.restStream) {
    opts.note(`get ${remote}: the server cannot ${size === undefined ? "tell the file size" : "restart transfers"}; downloading over one connection`);
    await unlink(stateFile).catch(() => undefined);
    return await getFile(session, remote, local, opts);
  }
  const n = Math.max(1, Math.min(requested, MAX_CONNECTIONS));

  const remoteMtime = await session.mtime(remote).catch(() => undefined);
  const saved = opts.resume ? await loadState(stateFile) : undefined;
  let state = saved;
  const localSt = await stat(local).catch(() => undefined);
  if (state && (state.remote !== remote || state.size !== size || localSt?.size !== size)) {
    opts.note(`get ${remote}: the saved segment state does not match the remote file any more; starting over`);
    state = undefined;
  }
  if (state && !(await stateStillFits(session, remote, local, state, remoteMtime))) {
    opts.note(`get ${remote}: the remote file changed after the segmented download began; starting over`);
    state = undefined;
  }
  let prefix = 0;
  const continuing = state !== undefined;
  if (state) {
    const left = state.segments.reduce((a, s) => a + (s.end - s.pos), 0);
    opts.note(`get ${remote}: continuing a segmented download, ${left} of ${size} bytes left`);
  } else {
    // A local file with a saved state is preallocated, its ranges partly filled: never a prefix to keep.
    if (opts.resume && !saved && localSt && localSt.size > 0 && localSt.size <= size) {
      const check = await checkPrefix(session, remote, local, localSt.size);
      if (check === "mismatch") opts.note(`get ${remote}: the local file's first ${localSt.size} bytes differ from the remote file; starting over`);
      else if (check === "size" && (await remoteIsNewer(session, remote, local)))
        opts.note(`get ${remote}: the remote file changed after the local copy was written; starting over`);
      else {
        prefix = localSt.size;
        if (prefix < size)
          opts.note(`get ${remote}: resuming at byte ${prefix} (${check === "hash" ? "existing part checked by HASH" : "sizes only: the server cannot hash a range to check the existing part"})`);
      }
    }
    state = { version: 1, remote, size, mtime: remoteMtime?.getTime(), segments: splitRanges(prefix, size, n) };
  }
  const segments = state.segments;
  const doneBytes = () => size - segments.reduce((a, s) => a + (s.end - s.pos), 0);
  const resumedFrom = doneBytes();

  // The state is written before the file is sized: a full-size file must never be left without the record of which
  // ranges it still lacks, or a later run would take its holes for data (a server without HASH can only compare
  // sizes). If setting up fails, a file this run created goes again; a state just written stays with a file that was
  // there before, saying everything after the checked prefix is still missing.
  const created = localSt === undefined;
  let handle: FileHandle | undefined;
  try {
    await saveState(stateFile, state);
    handle = await open(local, created ? "wx" : "r+");
    // A fresh start keeps only the checked prefix; the ranges then fill the rest in place.
    if (!continuing) await handle.truncate(prefix);
    await handle.truncate(size);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    if (created) {
      if (handle) await unlink(local).catch(() => undefined);
      await unlink(stateFile).catch(() => undefined);
    }
    throw toClientError(err, { action: `get ${remote}` });
  }
  let bar: ProgressHandle | undefined;
  let saving: Promise<void> | undefined;
  const persist = () => {
    saving ??= saveState(stateFile, state!).finally(() => {
      saving = undefined;
    });
    return saving;
  };
  const timer = setInterval(() => void persist().catch(() => undefined), 500);
  let transferred = 0;
  try {
    bar = opts.progress.start("get", name, size, resumedFrom);
    const limiter = rateLimiter(opts);
    const queue = segments.filter((s) => s.pos < s.end);
    let active = 0;
    let firstError: unknown;

    const fetchSegment = async (conn: FtpSession, seg: Segment): Promise<void> => {
      const sink = new FileSink({
        handle,
        position: seg.pos,
        limit: seg.end - seg.pos,
        limiter,
        onWritten: (k) => {
          seg.pos += k;
          transferred += k;
          bar?.update(doneBytes());
        },
      });
      // Without RANG the server sends to the end of the file: once our range is in, hang up on it.
      let serverStops = false;
      sink.once("limit", () => serverStops || conn.close());
      sink.once("overflow", () => conn.close());
      try {
        await conn.retrieveRange(sink, remote, seg.pos, seg.end, (ranged) => (serverStops = ranged));
      } catch (err) {
        if (!sink.reachedLimit) throw err;
      }
      if (seg.pos < seg.end) throw new ClientError("remote", `${remote} ended at byte ${seg.pos}, before the expected ${seg.end}: it changed on the server`);
    };

    // Lost connections per range, so that a range that keeps failing ends the download.
    const losses = new Map<Segment, number>();
    const interrupted = () => new ClientError("failed", "interrupted");

    const worker = async (id: number): Promise<void> => {
      let conn: FtpSession | undefined;
      let refusals = 0;
      try {
        while (queue.length > 0 && firstError === undefined) {
          if (session.aborted) throw interrupted();
          if (!conn || conn.closed) {
            try {
              conn?.close();
              conn = await session.clone();
              refusals = 0;
            } catch (err) {
              conn = undefined;
              if (session.aborted) throw interrupted();
              const refused = is421(err);
              if (!refused && !shouldRetry(err) && !(err instanceof ClientError && err.kind === "connect")) throw err;
              refusals++;
              // Others are still working: leave our ranges to them. Alone: wait and try again.
              if (active > 0 && refusals >= 2) return;
              if (refusals > Math.max(3, opts.retries)) throw err;
              if (refusals === 1 && id > 0 && refused) opts.note(`get ${remote}: the server refused connection ${id + 1} (421); backing off`);
              await sleep(Math.min(250 * 2 ** refusals, 3000));
              continue;
            }
          }
          const seg = queue.shift();
          if (!seg) break;
          active++;
          try {
            await fetchSegment(conn, seg);
          } catch (err) {
            queue.unshift(seg);
            if (session.aborted) throw interrupted();
            const lost = (losses.get(seg) ?? 0) + 1;
            if (!shouldRetry(err) || lost > opts.retries) throw err;
            losses.set(seg, lost);
            opts.note(`get ${remote}: connection ${id + 1} lost at byte ${seg.pos} (${toClientError(err).message}); retry ${lost}/${opts.retries}`);
            conn.close();
            conn = undefined;
            await sleep(Math.min(200 * 2 ** lost, 2000));
          } finally {
            active--;
          }
        }
      } catch (err) {
        firstError ??= err;
      } finally {
        conn?.close();
      }
    };

    // Free our own control connection's slot for the duration: servers count connections per user.
    session.close();
    const workers = Array.from({ length: Math.min(n, queue.length) }, (_, i) => worker(i));
    await Promise.all(workers);
    if (session.aborted) throw new ClientError("failed", "interrupted");
    await session.reconnect();
    if (firstError !== undefined) throw firstError;
    if (segments.some((s) => s.pos < s.end)) throw new ClientError("failed", `get ${remote}: some ranges could not be fetched`);
    clearInterval(timer);
    await saving?.catch(() => undefined);
    await handle.close().catch(() => undefined);
    let verified: string;
    try {
      verified = await verifyWithRetries(session, remote, local, opts);
    } catch (err) {
      if (err instanceof ClientError && err.kind === "verify") {
        await rename(local, local + MISMATCH_SUFFIX).catch(() => undefined);
        await unlink(stateFile).catch(() => undefined);
        throw new ClientError("verify", `${err.message}; the local file was kept aside as ${local + MISMATCH_SUFFIX}`);
      }
      throw err;
    }
    await unlink(stateFile).catch(() => undefined);
    const when = await session.mtime(remote).catch(() => undefined);
    if (when) await utimes(local, new Date(), when).catch(() => undefined);
    const result = { size, transferred, resumedFrom, verified, skipped: !created && transferred === 0 && resumedFrom === size };
    if (result.skipped) {
      bar.abort();
      opts.note(`get ${name}: already complete (${verified})`);
    } else bar.finish({ ...result, seconds: (Date.now() - started) / 1000 });
    return result;
  } catch (err) {
    bar?.abort();
    throw toClientError(err, { action: `get ${remote}` });
  } finally {
    clearInterval(timer);
    await saving?.catch(() => undefined);
    // Record where each range stopped so that the next run continues from there.
    if (segments.some((s) => s.pos < s.end)) await saveState(stateFile, state).catch(() => undefined);
    await handle.close().catch(() => undefined);
  }
}
