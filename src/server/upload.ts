// STOR, APPE, REST+STOR and STOU with exact quota accounting.
//
// Bytes are reserved from the user's ledger before each write, counting only growth past what the file already
// held; a size announced by ALLO is reserved up front, before the 150 (refused there with 552 when it cannot fit).
// A fresh STOR over an existing file writes to a temporary file beside it, so a refused upload leaves the old
// file untouched. Where the directory does not let the server replace the file (no write permission on it, or a
// sticky directory and another owner's file) but the file itself may be written, the upload writes it in place
// instead, as other servers always do: then a failed upload that received anything leaves the file cut at its last
// byte (a prefix of the upload, which a resume continues), and one that received nothing leaves it as it was. When
// the upload ends:
//   success            → the file is final (temp moved over, REST+STOR cut at its last byte); surplus released;
//   quota / ALLO / no data connection (none, or one refused once open) → the file goes back to what it was (new file
//                        removed, temp dropped, appended file truncated back) and every reserved byte released;
//   disk full during an overwrite (old and new content need room at once) → as for quota: the old file is kept;
//   abort, broken connection, disk full otherwise → what arrived is kept for a later resume, and the ledger matches it.
// After a crash, the recount at the user's next login does the same with an overwrite's temporary file left behind
// (its name names the target): what arrived takes the target's place (see recoverLeftovers in storage/local.ts).
// STOU writes only a file it has just created (never an existing one), so it ends as a STOR of a new file does.
//
// Uploads of one user racing near the quota: a reservation that does not fit while a younger upload of the user (one
// that started later) holds reserved bytes that would make it fit waits for them (QuotaLedger.reserveFor). The
// youngest never waits: it fails at once and gives its bytes back, and the older takes them and goes on; so of two
// uploads with room for one, exactly one gets 226 and the other 552. The wait reads the data connection on (with
// backpressure) and lasts at most RESERVE_WAIT_MS; the transfer's end (ABOR, QUIT, a broken data connection, the stall
// watchdog, the server's shutdown) ends it at once, reserving nothing, and the upload ends as it would have without
// the wait. An ALLO that does not fit but would after such a wait is not refused: its upload reserves as it writes,
// waiting there. An upload copied by a transfer process waits the same way: the process's request for room is
// answered when the wait ends, and it reads its connection on meanwhile.

import { MyftpError, toMyftpError } from "../core/errors.js";
import type { QuotaLedger } from "../core/quota.js";
import type { FileIdent, FileWriter, StorageBackend } from "../storage/backend.js";
import { DataConnectionError } from "./data-channel.js";
import { runTransfer } from "./data-transfer.js";
import type { Session } from "./session.js";
import { receiveFile } from "./transfer-io.js";
import type { Socket } from "node:net";

export interface UploadRequest {
  vpath: string;
  mode: "stor" | "appe";
  /** REST offset for STOR; 0 otherwise. */
  offset: number;
  /** Size announced by ALLO, if any. */
  announced: number | null;
  /** A RANG range: data lands in [start, end] and the file is never cut short. */
  range?: { start: number; end: number } | null;
}

/** STOU: the names to try in turn, and what to say when every one is taken. */
export interface UniqueRequest {
  /**
   * `vpath` is where the file goes; `shown` is the name as the client is told it (see stou in commands/transfer.ts);
   * `variant` is its place among the names tried after the first (1 for the first variant).
   */
  names: Iterable<{ vpath: string; shown: string; variant: number }>;
  /** Size announced by ALLO, if any. */
  announced: number | null;
  /**
   * The error for a STOU whose every name was taken; `tooLong` is the variant whose name was too long for the file
   * system (the ones after it are longer still), when that ended the search.
   */
  exhausted: (tooLong?: number) => MyftpError;
}

interface Target {
  /** The file's virtual path (for STOU, the name chosen). */
  vpath: string;
  /** STOU: the chosen name as the client is told it. */
  shown?: string;
  handle: FileWriter;
  /** Bytes of the file before this upload (counted in the ledger already). */
  sizeBefore: number;
  existed: boolean;
  /** Where the first byte goes. */
  start: number;
  diskPath: string;
  /** The file opened at diskPath: what is truncated or removed there, never whatever the path leads to by then. */
  ident: FileIdent;
  tempPath: string | null;
  /** The open descriptor, for a transfer process. */
  fd?: number;
  /** An overwrite written in place (the directory does not allow a replacement): the old bytes go as new ones come. */
  inPlace?: boolean;
  /** In place: the file was cut at the offset (as the first byte came); the old bytes past it are gone. */
  cut?: boolean;
}

/** A transfer process asks for room this far ahead of what it is about to write, when there is plenty of room. */
const GRANT_AHEAD = 8 << 20;
/** ...and the user has at least this much left beyond it; near the quota every batch is reserved exactly. */
const GRANT_MARGIN = 64 << 20;

async function openTarget(storage: StorageBackend, req: UploadRequest): Promise<Target> {
  if (req.mode === "stor" && !req.range) {
    const existing = await storage.stat(req.vpath).catch(() => null);
    if (existing?.type === "dir") throw new MyftpError("is-dir", "Is a directory");
    // Replacing bytes the file already has (a fresh STOR over it, or a REST inside it) goes through a temporary
    // file, so a refused upload can leave the old content as it was.
    if (existing && existing.size > req.offset && !(await storage.mayReplace(req.vpath))) {
      const w = await storage.openWrite(req.vpath);
      return { vpath: req.vpath, handle: w.handle, sizeBefore: w.sizeBefore, existed: w.existed, start: req.offset, diskPath: w.diskPath, ident: w.ident, tempPath: null, fd: w.fd, inPlace: true };
    }
    if (existing && existing.size > req.offset) {
      const t = await storage.openTemp(req.vpath, req.offset);
      return {
        vpath: req.vpath,
        handle: t.handle,
        sizeBefore: t.sizeBefore,
        existed: true,
        start: req.offset,
        diskPath: t.diskPath,
        ident: t.ident,
        tempPath: t.tempPath,
        fd: t.fd,
      };
    }
  }
  const w = await storage.openWrite(req.vpath);
  const start = req.mode === "appe" ? w.sizeBefore : req.offset;
  if (start > w.sizeBefore) {
    await w.handle.close();
    if (!w.existed) await storage.removeOpened(w.diskPath, w.ident);
    throw new MyftpError("bad-offset", `${req.range ? "RANG start" : "REST offset"} ${start} is past the end of the file (${w.sizeBefore} bytes)`);
  }
  return { vpath: req.vpath, handle: w.handle, sizeBefore: w.sizeBefore, existed: w.existed, start, diskPath: w.diskPath, ident: w.ident, tempPath: null, fd: w.fd };
}

/**
 * Puts the file back as it was before the upload. While its descriptor is open (`open`) the file is cut through it: by
 * path, the cut would reach whatever the path leads to by then, not the file the upload wrote.
 */
async function restore(storage: StorageBackend, t: Target, open: boolean): Promise<void> {
  if (t.tempPath) await storage.removeTemp(t.tempPath);
  else {
    if (open) await t.handle.truncate(t.existed ? t.sizeBefore : 0);
    else if (t.existed) await storage.truncateOpened(t.diskPath, t.sizeBefore, t.ident);
    if (!t.existed) await storage.removeOpened(t.diskPath, t.ident);
  }
}

export async function upload(s: Session, req: UploadRequest, ledger: QuotaLedger): Promise<void> {
  // Claimed by the file it reaches, so that two names of one file (a link beside its target) cannot be written at once.
  const key = await s.storage.claimKey(req.vpath);
  if (!ledger.claimPath(key)) {
    s.data.reset();
    throw new MyftpError("busy", `${req.vpath} is being uploaded by another session; try again later`);
  }
  // The upload holds the ledger itself, so that if its session ends first, its last bytes are still counted in the
  // one live ledger of the user rather than in a dropped copy.
  s.server.quota.retain(ledger);
  try {
    await uploadClaimed(s, req, ledger, () => openTarget(s.storage, req));
  } finally {
    ledger.releasePath(key);
    s.server.quota.release(ledger);
  }
}

/**
 * STOU: stores a new file under the first of `req.names` that no entry has. Each name is claimed as STOR claims its
 * path (so the file is not deleted, renamed or written by another of the user's sessions while it is uploaded) and
 * then created exclusively; a name another upload holds, or that exists, is passed over for the next. The exclusive
 * create decides: a name that a process outside the server, or another user with the same home, made meanwhile is
 * never opened. Then the upload runs as a STOR of a new file does.
 */
export async function uploadUnique(s: Session, req: UniqueRequest, ledger: QuotaLedger): Promise<void> {
  const storage = s.storage;
  let key: string | null = null;
  const create = async (): Promise<Target> => {
    for (const name of req.names) {
      const k = await storage.claimKey(name.vpath);
      if (!ledger.claimPath(k)) continue;
      let w;
      try {
        w = await storage.createNew(name.vpath);
      } catch (err) {
        ledger.releasePath(k);
        // A variant too long for the file system (its name, or its whole path; the name itself fitted, or creating it
        // would have failed alike): the names left are longer still, so none is free.
        if (name.variant > 0 && (err as NodeJS.ErrnoException).code === "ENAMETOOLONG") throw req.exhausted(name.variant);
        throw err;
      }
      if (!w) {
        ledger.releasePath(k);
        continue;
      }
      key = k;
      return {
        vpath: name.vpath,
        shown: name.shown,
        handle: w.handle,
        sizeBefore: 0,
        existed: false,
        start: 0,
        diskPath: w.diskPath,
        ident: w.ident,
        tempPath: null,
        fd: w.fd,
      };
    }
    throw req.exhausted();
  };
  s.server.quota.retain(ledger);
  try {
    await uploadClaimed(s, { mode: "stou", offset: 0, announced: req.announced }, ledger, create);
  } finally {
    if (key !== null) ledger.releasePath(key);
    s.server.quota.release(ledger);
  }
}

/** What uploadClaimed needs to know of the upload besides its target. */
type UploadKind = Pick<UploadRequest, "offset" | "announced" | "range"> & { mode: UploadRequest["mode"] | "stou" };

async function uploadClaimed(s: Session, req: UploadKind, ledger: QuotaLedger, open: () => Promise<Target>): Promise<void> {
  const storage = s.storage;
  // The stored figure is marked dirty before anything changes on disk (a REST inside a file copies the old prefix to
  // a temporary file first): a crash from here on has the next login count the home and put right what the upload
  // left, instead of trusting a clean figure beside a leftover temporary file.
  const ticket = ledger.startUpload();
  let t: Target;
  try {
    await ledger.flush();
    t = await open();
  } catch (err) {
    ledger.endUpload(ticket);
    s.data.reset();
    throw err;
  }
  // Bytes of this file the ledger holds: the old size, then every reservation past it.
  let accounted = t.sizeBefore;
  let restored = false;
  let handleClosed = false;
  const closeHandle = async () => {
    if (handleClosed) return;
    handleClosed = true;
    await t.handle.close().catch(() => undefined);
  };
  const refuse = async () => {
    if (t.inPlace && t.cut) {
      // The old bytes past the offset went with the cut and nothing brings them back: the file keeps what it holds
      // (the old prefix and what arrived, which a resume continues; never the old size filled with zeros), and the
      // ledger counts that.
      const size = handleClosed ? (await storage.stat(t.vpath)).size : t.handle.sizeNow();
      await closeHandle();
      ledger.release(accounted - size, ticket);
      accounted = size;
      restored = true;
      return;
    }
    await restore(storage, t, !handleClosed);
    await closeHandle();
    ledger.release(accounted - t.sizeBefore, ticket);
    accounted = t.sizeBefore;
    restored = true;
  };

  try {
    if (req.announced !== null && ledger.limit !== null) {
      // The announced size is reserved up front, so that what ALLO let through is not refused halfway by another
      // upload of the user. Where it does not fit but a younger upload holds room that would make it fit (see
      // QuotaLedger.reserveFor), the upload goes on without it and reserves as it writes, waiting its turn there.
      const end = t.start + req.announced;
      const growth = end - accounted;
      if (growth > 0 && ledger.tryReserveFor(ticket, growth)) accounted = end;
      else if (growth > 0 && !ledger.mayWait(ticket, growth)) {
        await refuse();
        s.data.reset();
        s.reply(552, `Insufficient quota: ${req.announced} bytes announced, ${ledger.available} available`);
        return;
      }
    }
    let finalizing = false;
    // Puts the file in its final state (whole or partial) before the final reply, so a 226 means the file is there.
    const finalize = async (ok: boolean, written: number) => {
      finalizing = true;
      const end = t.start + written;
      if (t.tempPath) {
        await closeHandle();
        // Success, or a partial upload kept for resume: either way the temporary file replaces the old one. It holds
        // the old bytes before the offset (a REST inside the file) and what arrived, so the file ends where the data
        // did, as REST+STOR ends it when complete and as a resume expects when not.
        const finalSize = end;
        await storage.commitTemp(t.tempPath, t.vpath);
        ledger.release(accounted - finalSize, ticket);
        accounted = finalSize;
      } else {
        // In place, a failed overwrite keeps only what arrived: past it are old bytes no resume would expect.
        const finalSize = ok && !req.range ? end : t.inPlace ? end : Math.max(t.sizeBefore, end);
        if (finalSize < accounted || (ok && finalSize < t.sizeBefore)) {
          // Through the descriptor: by path, the cut would reach whatever the path leads to by then.
          if (handleClosed) await storage.truncateOpened(t.diskPath, finalSize, t.ident);
          else await t.handle.truncate(finalSize);
        }
        await closeHandle();
        ledger.release(accounted - finalSize, ticket);
        accounted = finalSize;
      }
    };
    // RFC 1123 §4.1.2.9: STOU's preliminary reply is exactly "150 FILE: <name>", the name it stores under.
    const shown = t.shown;
    await runTransfer(
      s,
      {
        verb: req.mode.toUpperCase(),
        path: t.vpath,
        opening: shown !== undefined ? `FILE: ${shown}` : `Opening ${s.type === "A" ? "ASCII" : "BINARY"} mode data connection for ${t.vpath}`,
        ...(shown !== undefined ? { complete: (bytes: number) => `Transfer complete (${bytes} bytes); stored as ${shown}` } : {}),
        run: async (sock, progress) => {
          // In place, the old bytes past the offset go once the first new byte is taken (not before: an upload
          // that receives nothing leaves the file as it was), so what stands in the file at any moment, a crash
          // included, is the old prefix and what arrived, which a resume continues. The ledger keeps the old size
          // counted until the end.
          const cutInPlace = () => {
            if (t.inPlace && !t.cut) {
              if (t.sizeBefore > t.start) t.handle.truncateNow(t.start);
              t.cut = true;
            }
          };
          // Reserves up to `end` before it is written. Where that must wait for a younger upload of the user to give
          // room back (see QuotaLedger.reserveFor), a promise; `cancel` (the transfer ended first) reserves nothing.
          const beforeWrite = (end: number, cancel: AbortSignal): void | Promise<void> => {
            if (req.range && end > req.range.end + 1) {
              throw new MyftpError("bad-argument", "More data than the RANG range holds");
            }
            if (end > accounted) {
              const n = end - accounted;
              const waiting = ledger.reserveFor(ticket, n, () => (accounted += n), cancel);
              // The wait may have been given up after the bytes were reserved: they are counted (and given back
              // as the upload ends), but nothing is written and the file is not cut.
              if (waiting) {
                return waiting.then(() => {
                  if (cancel.aborted) throw new MyftpError("io", "the transfer ended while it waited for quota");
                  cutInPlace();
                });
              }
            }
            cutInPlace();
          };
          // Binary uploads go to a transfer process, which asks before it writes past what was reserved (but writes
          // below that without asking: an in-place overwrite, whose first byte must first cut the file, stays here).
          const lease =
            t.fd !== undefined && s.type === "I" && !t.inPlace ? await s.server.transfers.acquire(sock, t.fd, true, progress.signal) : null;
          // With RANG nothing past the range is granted, even below the old size (where no quota is needed).
          const granted = () => (req.range ? Math.min(accounted, req.range.end + 1) : accounted);
          const written = lease
            ? await s.server.transfers.receive(lease, sock as Socket, t.start, granted(), (end: number, cancel: AbortSignal) => {
                const ahead = req.range ? Math.min(end + GRANT_AHEAD, req.range.end + 1) : end + GRANT_AHEAD;
                const waiting = beforeWrite(ahead > end && ledger.available - (ahead - accounted) >= GRANT_MARGIN ? ahead : end, cancel);
                return waiting ? waiting.then(granted) : granted();
              }, progress)
            : await receiveFile(sock, { handle: t.handle, position: t.start, beforeWrite }, s.type === "A", progress);
          await finalize(true, written);
          return written;
        },
      },
      async (failure) => {
        const code = toMyftpError(failure.error).code;
        const written = ((failure.error as { written?: number }).written ?? 0) as number;
        // A data connection refused once open (its TLS handshake failed, or did not resume the control session) is
        // one the upload never had.
        const noData = failure.stage === "connect" || failure.error instanceof DataConnectionError;
        // An overwrite that ran out of disk needed room for the old and the new content at once: dropping the new
        // frees it and keeps the old content, as a quota refusal does.
        // (In place, the old content is gone once bytes came: what arrived is kept, as for any other failure.)
        const noRoom = (code === "quota-exceeded" && !(t.inPlace && written > 0)) || (t.tempPath !== null && code === "disk-full");
        if (noData || noRoom || finalizing || ((t.tempPath || t.inPlace) && written === 0)) {
          // Refused, never started, could not be put in place, or an overwrite that received nothing: the file
          // goes back to what it was.
          await refuse();
          return false;
        }
        await finalize(false, written);
        return false;
      },
    );
  } catch (err) {
    // Something failed around the transfer itself: leave the file as it was.
    if (!restored) await refuse().catch((e) => s.log.error({ err: e }, "could not restore file after failed upload"));
    throw err;
  } finally {
    await closeHandle();
    ledger.endUpload(ticket);
  }
}
