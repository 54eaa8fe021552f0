// Transfer commands: RETR, STOR, STOU, APPE, LIST, NLST (RFC 959 §4.1.3), MLSD (RFC 3659 §7), ABOR (RFC 959 §4.1.3).

import { randomBytes } from "node:crypto";
import { MyftpError, toMyftpError } from "../../core/errors.js";
import { currentAccessor, formatLsLine, formatMlsxLine, listingLines, MAY_SEARCH, MAY_WRITE, mayAccess, sortByName, stickyOf, type ListEntry, type StickyDir } from "../../protocol/listing.js";
import { compileNamePattern } from "../../protocol/glob.js";
import { virtualBase, virtualParent } from "../../protocol/vpath.js";
import { runTransfer } from "../data-transfer.js";
import type { Session } from "../session.js";
import type { Socket } from "node:net";
import { sendFile, sendText } from "../transfer-io.js";
import { OFFLOAD_MIN_BYTES } from "../transfer-processes.js";
import { upload, uploadUnique } from "../upload.js";
import { requireUser } from "./auth.js";
import { takeRange } from "./hash.js";

/** The REST offset applies to the next RETR or STOR only. */
function takeRest(s: Session): number {
  const off = s.restOffset;
  s.restOffset = 0;
  return off;
}

function modeName(s: Session): string {
  return s.type === "A" ? "ASCII" : "BINARY";
}

/**
 * REST and RANG count bytes of the file; in ASCII mode the bytes on the wire differ (each LF goes as CRLF), so a
 * client's offset would land elsewhere in the file: refused, as SIZE is.
 */
function refuseAsciiOffset(s: Session, offset: number, range: unknown): void {
  if (s.type !== "A" || (offset === 0 && !range)) return;
  s.data.reset();
  throw new MyftpError("denied", "Resuming in ASCII mode is not supported; use TYPE I");
}

export async function retr(s: Session, arg: string): Promise<void> {
  const range = takeRange(s);
  const offset = range ? range.start : takeRest(s);
  refuseAsciiOffset(s, offset, range);
  const target = s.vpath(arg);
  let opened;
  try {
    opened = await s.storage.openRead(target);
  } catch (err) {
    s.data.reset();
    throw err;
  }
  const { handle } = opened;
  // RANG selects [start, end] inclusive and sends nothing when it starts past the end (draft-bryan-ftp-range §4.3).
  const size = range ? Math.min(opened.size, range.end + 1) : opened.size;
  const start = range ? Math.min(offset, size) : offset;
  try {
    if (start > size) {
      s.data.reset();
      throw new MyftpError("bad-offset", `REST offset ${offset} is past the end of the file (${size} bytes)`);
    }
    await runTransfer(s, {
      verb: "RETR",
      path: target,
      // In ASCII mode the bytes sent are not the file's (each LF goes as CRLF), so no count is announced.
      opening: `Opening ${modeName(s)} mode data connection for ${target}${s.type === "A" ? "" : ` (${size - start} bytes)`}`,
      run: async (sock, progress) => {
        // Binary downloads worth it go to a transfer process, so the copy does not hold up the control connections.
        const lease =
          opened.fd !== undefined && s.type === "I" && size - start >= OFFLOAD_MIN_BYTES
            ? await s.server.transfers.acquire(sock, opened.fd, false, progress.signal)
            : null;
        if (lease) return s.server.transfers.send(lease, sock as Socket, start, size, progress);
        return sendFile(handle, start, size, sock, s.type === "A", progress);
      },
    });
  } finally {
    await handle.close().catch(() => undefined);
  }
}

export async function stor(s: Session, arg: string): Promise<void> {
  const user = requireUser(s);
  const range = takeRange(s);
  const offset = range ? range.start : takeRest(s);
  const announced = s.allocate;
  s.allocate = null;
  refuseAsciiOffset(s, offset, range);
  await upload(s, { vpath: s.vpath(arg), mode: "stor", offset, announced, range }, user.ledger);
}

/** STOU with a name tries it, then name.1 up to name.STOU_VARIANTS; without one, this many names of its own. */
const STOU_VARIANTS = 99;

/**
 * The names a STOU tries, in order: `vpath` where the file goes, `shown` as the client is told it (the argument with
 * the chosen last segment, so it names the file from the current directory exactly as the argument did).
 */
function* stouNames(s: Session, arg: string): Generator<{ vpath: string; shown: string; variant: number }> {
  if (arg.length === 0) {
    // In the current directory, a name no one is likely to have chosen: a collision needs millions of such files, and
    // the exclusive create still catches it.
    for (let i = 0; i <= STOU_VARIANTS; i++) {
      const name = `stou-${randomBytes(6).toString("hex")}`;
      yield { vpath: s.vpath(name), shown: name, variant: 0 };
    }
    return;
  }
  for (let i = 0; i <= STOU_VARIANTS; i++) {
    const shown = i === 0 ? arg : `${arg}.${i}`;
    yield { vpath: s.vpath(shown), shown, variant: i };
  }
}

/**
 * STOU (RFC 959 §4.1.3): stores the upload as a new file, never replacing or extending one. With a name, under that
 * name if no entry has it, else under the first free one of name.1 to name.99. The client's whole name stays a
 * prefix (no guess at where an extension starts: "a.tar.gz" gives "a.tar.gz.1"), so the copies sort beside the
 * original; the bound keeps one command's work small (each try is a few name lookups on the event loop), and a client
 * storing one name a hundred times over is better served by STOU without a name. Without one, the server picks
 * "stou-" and 12 random hex digits, in the current directory. The name goes in the 150 as RFC 1123 §4.1.2.9 has it,
 * "150 FILE: name", unquoted like every name in a reply but 257's (RFC 959 Appendix II): it runs to the end of the line.
 */
export async function stou(s: Session, arg: string): Promise<void> {
  const user = requireUser(s);
  const range = takeRange(s);
  const offset = takeRest(s);
  const announced = s.allocate;
  s.allocate = null;
  try {
    // A REST (or RANG) means the data that follows starts past the file's first byte, which a new file does not
    // have: stored as the whole file, it would lack its start under a 226. Refused rather than ignored, and used up,
    // so that a STOU sent again goes. (REST 0 starts at the first byte: nothing to refuse.)
    if (offset > 0 || range) {
      throw new MyftpError("bad-sequence", "REST and RANG do not apply to STOU, which always stores a new file; send STOU again");
    }
    if (arg.length > 0) {
      const base = arg.slice(arg.lastIndexOf("/") + 1);
      // The variants are of a file name: "dir/", "." or ".." names no file (STOU alone picks a name).
      if (base === "" || base === "." || base === "..") throw new MyftpError("bad-path", "STOU needs a file name, or none to have one chosen");
      s.vpath(arg);
    }
  } catch (err) {
    s.data.reset();
    throw err;
  }
  const exhausted = (tooLong?: number) => {
    if (arg.length === 0) return new MyftpError("bad-path", "No unique name found; try again");
    if (tooLong === undefined) return new MyftpError("bad-path", `No unique name left: ${arg} and ${arg}.1 to ${arg}.${STOU_VARIANTS} are taken`);
    // A name near the longest a file name (or its path) may be: its variants soon grow too long.
    const taken = tooLong === 1 ? `${arg} is taken` : `${arg} and ${arg}.1 to ${arg}.${tooLong - 1} are taken`;
    return new MyftpError("bad-path", `No unique name left: ${taken}, and ${arg}.${tooLong} would be too long`);
  };
  await uploadUnique(s, { names: stouNames(s, arg), announced, exhausted }, user.ledger);
}

export async function appe(s: Session, arg: string): Promise<void> {
  const user = requireUser(s);
  s.restOffset = 0;
  const range = takeRange(s);
  const announced = s.allocate;
  s.allocate = null;
  refuseAsciiOffset(s, 0, range);
  // With a range APPE acts as STOR (draft-bryan-ftp-range §4.3).
  const mode = range ? "stor" : "appe";
  await upload(s, { vpath: s.vpath(arg), mode, offset: range?.start ?? 0, announced, range }, user.ledger);
}

/**
 * Splits "LIST -la path" into options and path. A leading "-word" is taken as ls options only when no entry of
 * that name exists, so a file named "-x" can still be listed.
 */
async function listTarget(s: Session, arg: string): Promise<string> {
  const m = /^(-[A-Za-z0-9]+)(?:\s+(.*))?$/.exec(arg);
  if (!m) return arg;
  const asIs = await s.storage
    .stat(s.vpath(arg))
    .then(() => true)
    .catch(() => false);
  return asIs ? arg : (m[2] ?? "");
}

/** Entries for a listing of `target`: a directory's entries, or the one file itself. */
async function entriesOf(s: Session, target: string): Promise<{ entries: ListEntry[]; isDir: boolean }> {
  // Listing first and stat only when it is not a directory: the common case costs one path resolution, not two.
  let entries: ListEntry[];
  try {
    entries = await s.storage.list(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOTDIR") throw err;
    const st = await s.storage.stat(target);
    return { entries: [{ ...st, name: virtualBase(target) }], isDir: false };
  }
  return { entries: await sortByName(entries), isDir: true };
}

async function sendListing(s: Session, verb: string, target: string, pieces: Iterable<string>): Promise<void> {
  await runTransfer(s, {
    verb,
    path: target,
    opening: `Opening ASCII mode data connection for ${verb} ${target}`,
    run: (sock, progress) => sendText(pieces, sock, progress),
  });
}

/**
 * The entries a pattern in the last segment of a LIST/NLST argument matches ("*.txt", "dir/a?[0-9]*"), sorted;
 * null when that segment holds no wildcard. The directory is read through the storage like any listing, so a
 * pattern never reaches outside the home. Names starting with "." match only a pattern that starts with one.
 */
async function globEntries(s: Session, text: string, target: string): Promise<ListEntry[] | null> {
  const base = virtualBase(target);
  // Only when the argument's own last segment is the pattern ("*.txt/.." names the directory, not a pattern).
  if (base === "" || text.slice(text.lastIndexOf("/") + 1) !== base) return null;
  const pattern = compileNamePattern(base);
  if (!pattern.isGlob) return null;
  const dotted = base.startsWith(".");
  const entries = await s.storage.list(virtualParent(target));
  // A pattern may cost tens of microseconds per long name: the other sessions get a turn between batches.
  const matched: ListEntry[] = [];
  for (let i = 0; i < entries.length; i += GLOB_BATCH) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    for (const e of entries.slice(i, i + GLOB_BATCH)) {
      if ((dotted || !e.name.startsWith(".")) && pattern.matches(e.name)) matched.push(e);
    }
  }
  return await sortByName(matched);
}

/** Names matched against a pattern between two turns of the event loop. */
const GLOB_BATCH = 256;

async function listing(
  s: Session,
  verb: string,
  arg: string,
  line: (e: ListEntry) => string,
  opts: { globWithDir?: boolean } = {},
): Promise<void> {
  let target: string;
  let entries: ListEntry[];
  try {
    const text = await listTarget(s, arg);
    target = s.vpath(text);
    try {
      let isDir: boolean;
      ({ entries, isDir } = await entriesOf(s, target));
      // NLST of a file names it as the client wrote it ("sub/d.txt"), like a pattern's matches below, so that mget
      // can send it back in a RETR.
      if (!isDir && opts.globWithDir) entries = entries.map((e) => ({ ...e, name: text }));
    } catch (err) {
      // A name that exists is listed as it is, wildcards or not; only a missing one is read as a pattern.
      if (toMyftpError(err).code !== "not-found") throw err;
      const matched = await globEntries(s, text, target);
      if (matched === null) throw err;
      if (matched.length === 0) {
        s.data.reset();
        // RFC 959 §4.2 lists 450 (file unavailable), not 550, among LIST's and NLST's replies.
        s.reply(450, `${text}: No files found`);
        return;
      }
      // NLST names come back as the client wrote their directory ("dir/*.txt" -> "dir/a.txt"), so that each can be
      // sent back in a RETR, as mget does; LIST lines carry the bare name, as for a directory listed.
      const dir = text.slice(0, text.lastIndexOf("/") + 1);
      entries = opts.globWithDir && dir !== "" ? matched.map((e) => ({ ...e, name: dir + e.name })) : matched;
    }
  } catch (err) {
    s.data.reset();
    throw err;
  }
  await sendListing(s, verb, target, listingLines(entries, line));
}

export async function list(s: Session, arg: string): Promise<void> {
  const now = Date.now();
  const owner = requireUser(s).name;
  await listing(s, "LIST", arg, (e) => formatLsLine(e, owner, now));
}

export async function nlst(s: Session, arg: string): Promise<void> {
  await listing(s, "NLST", arg, (e) => e.name, { globWithDir: true });
}

export async function mlsd(s: Session, arg: string): Promise<void> {
  let target: string;
  let entries: ListEntry[];
  let writable: boolean;
  let sticky: StickyDir | undefined;
  const who = currentAccessor();
  try {
    target = arg.length > 0 ? s.vpath(arg) : s.cwd;
    const r = await entriesOf(s, target);
    if (!r.isDir) {
      s.data.reset();
      s.reply(501, `${target} is not a directory`);
      return;
    }
    entries = r.entries;
    // The entries' perm facts: renames and deletes in this directory need write and search permission on it.
    const dirSt = await s.storage.stat(target);
    writable = mayAccess(dirSt, who, MAY_WRITE | MAY_SEARCH);
    sticky = stickyOf(dirSt);
  } catch (err) {
    s.data.reset();
    throw err;
  }
  await sendListing(s, "MLSD", target, listingLines(entries, (e) => formatMlsxLine(e, s.mlstFacts, { writable, who, sticky })));
}

export async function abor(s: Session): Promise<void> {
  const t = s.transfer;
  if (!t) {
    s.data.reset();
    s.reply(225, "No transfer to abort");
    return;
  }
  t.abortedByClient = true;
  t.controller.abort();
  await t.done;
  s.reply(226, "ABOR successful");
}
