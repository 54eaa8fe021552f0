// Local-disk storage jailed in one home directory.
//
// Every virtual path is mapped by resolve(): the normalised virtual path is joined under the home, symlinks are
// resolved with realpath, and anything that resolves outside the home is refused. Operations on an entry itself
// (delete, rename) resolve only its parent, so removing a link never touches what it points to. Files are opened
// with O_NOFOLLOW so a link swapped in after the check is not followed either.
//
// What the kernel answers from its name and inode caches (realpath, stat, open, close, rename, mkdir) runs inline:
// each such call takes microseconds, while a round trip through libuv's thread pool costs two context switches
// and more. Listings read their directory inline too, a bounded batch per loop turn: queued on the pool they waited
// behind every bulk read and write of the other sessions. So does the one read of a small file (readNow, up to
// 64 KiB), which the page cache nearly always answers; a read over 50 ms, or a second read over 2 ms within a
// second, turns inline reads off for 30 s (one read of a few ms alone may be the thread being descheduled on a busy
// machine, not the device). What may wait on the device for long (other file data, the usage scan, freeing blocks
// with unlink or truncate, and the file a rename replaces) goes through the thread pool, so a slow disk cannot keep
// stalling the other sessions.
//
// A path checked on the loop must not be looked up again on the pool: the call may wait there while the client renames
// a directory away and puts one holding a link to the outside in its place. So what is read or removed on the pool is
// reached through something opened or renamed inline: a descriptor, a directory handle, a temporary name. The same
// swap made between the check and an inline call is caught too: a file opened is checked to lie inside the home once
// open (openInside), and entries are made, removed, renamed and listed through their directory pinned by a descriptor
// at the check (pinDir).

import * as fs from "node:fs";
import { constants, type Dirent } from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { MyftpError } from "../core/errors.js";
import { isWithin } from "../core/paths.js";
import { currentAccessor, stickyPermits, type EntryType } from "../protocol/listing.js";
import type { FileIdent, FileReader, FileWriter, ReadOpen, StatResult, StorageBackend, WriteOpen } from "./backend.js";

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = constants;
/** Linux's O_PATH (not among Node's constants): a descriptor that only locates a file. */
const O_PATH = 0o10000000;
const STAT_BATCH = 128;
/**
 * Reads up to this size may run inline (readNow). One that takes longer than INLINE_READ_STALL_MS, or two within
 * INLINE_READ_SLOW_WINDOW_MS that take longer than INLINE_READ_SLOW_MS, turn them off for INLINE_READS_OFF_MS.
 */
const INLINE_READ_MAX = 64 * 1024;
const INLINE_READ_SLOW_MS = 2;
const INLINE_READ_STALL_MS = 50;
const INLINE_READ_SLOW_WINDOW_MS = 1000;
const INLINE_READS_OFF_MS = 30_000;
let inlineReadsOffUntil = 0;
let lastSlowInlineRead = Number.NEGATIVE_INFINITY;

/** Forgets slow inline reads seen so far and turns inline reads back on (a fresh start, as for tests). */
export function resetInlineReads(): void {
  inlineReadsOffUntil = 0;
  lastSlowInlineRead = Number.NEGATIVE_INFINITY;
}
export const TEMP_PREFIX = ".myftp-upload-";

/**
 * The modification time (ms since the epoch) an overwrite's temporary file that starts with a copy of the old bytes
 * before a REST offset is given once that copy is whole: the first byte the upload writes makes it the current time.
 * So after a crash, such a file still at this time received nothing, and the recount at the next login removes it,
 * keeping the old file whole (as a failure that received nothing does), rather than putting the bare copy, the old file
 * cut at the offset, in its place. (Where the file system cannot keep this time, such a file is put in place as before.)
 */
const UNWRITTEN_MTIME_MS = 0;

function outside(): MyftpError {
  return new MyftpError("outside-home", "Permission denied");
}

/** The home's own mode is the admin's business: it decides who else on the machine may reach the user's files. */
function homeMode(): MyftpError {
  return new MyftpError("denied", "Can't change the mode of the home directory");
}

/**
 * The owner's read and search bits, which a directory's mode keeps (chmod refuses one without them): a server that is
 * not root runs as the owner of what it made, and a directory it may not read or search could not be listed, and its
 * files would drop out of the usage at the next recount, letting the user pass the quota.
 */
const DIR_OWNER_BITS = 0o500;

/** The home was removed, renamed or replaced under a logged-in session: said as such, not as a denied path. */
function homeGone(): MyftpError {
  return new MyftpError("not-found", "Your home directory is no longer available");
}

function entryType(st: fs.Stats): EntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "link";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  return "other";
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Bytes copied per read and write when a file's prefix is copied (copyPrefix). */
const COPY_CHUNK = 1 << 20;

const fdCall = <T = void>(run: (cb: (err: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> =>
  new Promise<T>((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value as T))));

/**
 * Makes the new, empty file open at `dst` hold the first `keep` bytes of the file open at `src`, with permission bits
 * `mode`, on the thread pool: a clone cut to size where the file system shares blocks (no data moves); elsewhere a whole
 * copy cut to size when the prefix is most of the file (the kernel's copy is the fastest way there), else those bytes
 * alone, read and written a chunk at a time (a REST near the start of a large file copies little). A source that is
 * shorter than `keep` by then (it shrank meanwhile) fails the copy rather than leaving zeros in its place.
 *
 * Both files are reached through their descriptors, opened on the event loop where their paths were checked: looked up
 * by path on the pool, a directory of the home swapped meanwhile for a link to the outside would have the copy read a
 * file outside the home and write one there. The kernel's copy and clone take paths: /proc/self/fd names the very
 * files open here (Linux); elsewhere the bytes are copied through the descriptors.
 */
async function copyPrefix(src: number, dst: number, keep: number, mode: number): Promise<void> {
  const viaProc = process.platform === "linux";
  const whole = async (flags: number): Promise<void> => {
    // No COPYFILE_EXCL: the destination is the file already created (and open) under its temporary name.
    await fsp.copyFile(`/proc/self/fd/${src}`, `/proc/self/fd/${dst}`, flags);
    const st = await fdCall<fs.Stats>((cb) => fs.fstat(dst, cb));
    if (st.size < keep) throw new MyftpError("io", "the file shrank while its start was copied");
    await fdCall((cb) => fs.ftruncate(dst, keep, cb));
  };
  let copied = false;
  if (viaProc) {
    try {
      await whole(constants.COPYFILE_FICLONE_FORCE);
      copied = true;
    } catch (err) {
      // No cloning here (or between these two files): copy the bytes. Anything else is a real failure.
      if (!["ENOTSUP", "EOPNOTSUPP", "EXDEV", "EINVAL", "ENOSYS"].includes(errno(err) ?? "")) throw err;
    }
    if (!copied && keep * 2 > (await fdCall<fs.Stats>((cb) => fs.fstat(src, cb))).size) {
      await whole(0);
      copied = true;
    }
  }
  if (!copied) {
    // A failed whole copy may have left bytes: start from an empty file.
    await fdCall((cb) => fs.ftruncate(dst, 0, cb));
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(COPY_CHUNK, keep)));
    for (let pos = 0; pos < keep; ) {
      const bytesRead = await fdCall<number>((cb) => fs.read(src, buf, 0, Math.min(buf.length, keep - pos), pos, cb));
      if (bytesRead === 0) throw new MyftpError("io", "the file shrank while its start was copied");
      // A short write on a regular file means the disk is full; the next write says so (or writes nothing).
      for (let done = 0; done < bytesRead; ) {
        const bytesWritten = await fdCall<number>((cb) => fs.write(dst, buf, done, bytesRead - done, pos + done, cb));
        if (bytesWritten === 0) throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
        done += bytesWritten;
      }
      pos += bytesRead;
    }
  }
  // The same permission bits whichever way the copy went (a copy takes the source's).
  await fdCall((cb) => fs.fchmod(dst, mode, cb));
}

/** A fresh temporary name in the directory of `p` (hidden from clients, never counted, removed after a crash). */
function tempNameBeside(p: string): string {
  return path.join(path.dirname(p), `${TEMP_PREFIX}${randomBytes(6).toString("hex")}`);
}

/** The longest file name, in bytes (NAME_MAX of the file systems a home lives on). */
const MAX_NAME = 255;

/** An upload's temporary file that names its target: `.myftp-upload-<12 hex>.<the target's name>`. */
const UPLOAD_TEMP = /^\.myftp-upload-[0-9a-f]{12}\.(.+)$/s;
/** ...or, where that name would pass NAME_MAX, one that holds a digest of it: `.myftp-upload-<12 hex>#<32 hex>`. */
const UPLOAD_TEMP_DIGEST = /^\.myftp-upload-[0-9a-f]{12}#([0-9a-f]{32})$/;

/** The digest of a target's name that a temporary file of an upload over it holds when the name itself does not fit. */
function nameDigest(name: string): string {
  return createHash("sha256").update(name).digest("hex").slice(0, 32);
}

/**
 * A fresh name for the temporary file of an upload that replaces `p`, beside it: it names the target (or, for a name
 * too long to fit, holds its digest), so that after a crash the recount at the next login puts what arrived in place of
 * the target, as a broken connection would (see recoverLeftovers).
 */
function uploadTempBeside(p: string): string {
  const base = path.basename(p);
  const tag = randomBytes(6).toString("hex");
  const name = `${TEMP_PREFIX}${tag}.${base}`;
  const full = path.join(path.dirname(p), name);
  if (Buffer.byteLength(name) <= MAX_NAME && Buffer.byteLength(full) <= MAX_DISK_PATH) return full;
  const digested = path.join(path.dirname(p), `${TEMP_PREFIX}${tag}#${nameDigest(base)}`);
  // Where even that path is too long (a short name deep down), a plain temporary name: removed after a crash.
  return Buffer.byteLength(digested) <= MAX_DISK_PATH ? digested : tempNameBeside(p);
}

function identOf(st: fs.Stats): FileIdent {
  return { dev: st.dev, ino: st.ino };
}

/** Whether two stats (or identities) are of one file; a missing one is of none. */
function sameFile(a: FileIdent | null, b: FileIdent): boolean {
  return a !== null && a.dev === b.dev && a.ino === b.ino;
}

/** Where the kernel says the file open at `fd` is (/proc/self/fd, Linux); null where it cannot tell. */
function fdPath(fd: number): string | null {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if (errno(err) === "ENOENT") return null;
    throw err;
  }
}

/**
 * An open file descriptor. Reads and writes run on the thread pool; close waits until none is in flight, so the
 * descriptor number is never reused under a pending operation.
 */
export class OpenFile implements FileReader, FileWriter {
  private pending = 0;
  private idle: (() => void) | null = null;
  private closed = false;

  constructor(readonly fd: number) {}

  private track<T>(run: (done: (err: Error | null, value?: T) => void) => void): Promise<T> {
    if (this.closed) return Promise.reject(Object.assign(new Error("file is closed"), { code: "EBADF" }));
    this.pending++;
    return new Promise<T>((resolve, reject) => {
      run((err, value) => {
        if (--this.pending === 0) this.idle?.();
        if (err) reject(err);
        else resolve(value as T);
      });
    });
  }

  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return this.track((done) => fs.read(this.fd, buffer, offset, length, position, (err, n) => done(err, { bytesRead: n })));
  }

  readNow(buffer: Buffer, offset: number, length: number, position: number): number | null {
    if (this.closed) throw Object.assign(new Error("file is closed"), { code: "EBADF" });
    if (length > INLINE_READ_MAX || performance.now() < inlineReadsOffUntil) return null;
    const t0 = performance.now();
    const n = fs.readSync(this.fd, buffer, offset, length, position);
    const t1 = performance.now();
    if (t1 - t0 > INLINE_READ_SLOW_MS) {
      // A read of a few ms may be this thread descheduled by a busy machine mid-call, which says nothing about the
      // device (3-9 ms under the small-file bench, 32 clients on two cores). A much longer one, or a second slow one
      // within a second, means the device is slow right now (not in the page cache, a busy disk, a network mount):
      // no more inline reads for a while, so it cannot hold up the other sessions again and again.
      if (t1 - t0 > INLINE_READ_STALL_MS || t0 - lastSlowInlineRead < INLINE_READ_SLOW_WINDOW_MS) {
        inlineReadsOffUntil = t1 + INLINE_READS_OFF_MS;
      }
      lastSlowInlineRead = t1;
    }
    return n;
  }

  /** Cuts the file at `size` at once (an in-place overwrite as its first byte comes). */
  truncateNow(size: number): void {
    if (this.closed) throw Object.assign(new Error("file is closed"), { code: "EBADF" });
    fs.ftruncateSync(this.fd, size);
  }

  truncate(size: number): Promise<void> {
    return this.track((done) => fs.ftruncate(this.fd, size, (err) => done(err)));
  }

  sizeNow(): number {
    if (this.closed) throw Object.assign(new Error("file is closed"), { code: "EBADF" });
    return fs.fstatSync(this.fd).size;
  }

  writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }> {
    return this.track((done) => fs.writev(this.fd, buffers, position, (err, n) => done(err, { bytesWritten: n })));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pending > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    fs.closeSync(this.fd);
  }
}

/** Opens a file and checks it is a regular file; the descriptor is closed again when it is not. */
function openRegular(p: string, flags: number, mode?: number): { file: OpenFile; st: fs.Stats } {
  const fd = fs.openSync(p, flags, mode);
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new MyftpError("is-dir", "Is a directory");
    if (!st.isFile()) throw new MyftpError("denied", "Not a regular file");
    return { file: new OpenFile(fd), st };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

export class LocalStorage implements StorageBackend {
  private constructor(
    readonly root: string,
    /** The home directory itself, as found when the storage was opened (see homeUnmoved). */
    private readonly rootIdent: FileIdent,
  ) {}

  /** Opens the storage for a home directory, creating it when missing. */
  static async open(home: string): Promise<LocalStorage> {
    await fsp.mkdir(home, { recursive: true });
    const root = await fsp.realpath(home);
    return new LocalStorage(root, identOf(await fsp.stat(root)));
  }

  /**
   * Whether the home's path still leads to the home directory itself: a local process may since have renamed it (or
   * a directory above it) away and put a link, or another directory, in its place.
   */
  private homeUnmoved(): boolean {
    return sameFile(statOrNull(this.root), this.rootIdent);
  }

  /**
   * Whether the home's path still leads to a directory (not removed, moved away, or replaced by a file). One made anew
   * in its place is the home from then on: a name missing there is simply missing.
   */
  private homeThere(): boolean {
    return statOrNull(this.root)?.isDirectory() === true;
  }

  private contains(p: string): boolean {
    return isWithin(p, this.root);
  }

  /**
   * openRegular, and then the file actually opened must lie inside the home. The path was checked just before, but
   * a local process that swaps a directory of it for a link to the outside between that check and the open would
   * have it open a file outside: the kernel says where the descriptor's file is (/proc/self/fd, Linux), and one
   * outside is closed again (and removed, when this open created it) and refused.
   */
  private openInside(p: string, flags: number, mode?: number): { file: OpenFile; st: fs.Stats } {
    const opened = openRegular(p, flags, mode);
    // Directly in the home: no directory between the home and the file to swap, and O_NOFOLLOW holds the name itself.
    if (process.platform !== "linux" || path.dirname(p) === this.root) return opened;
    const where = fdPath(opened.file.fd);
    if (where === null || this.contains(where)) return opened;
    fs.closeSync(opened.file.fd);
    if (flags & O_CREAT && flags & O_EXCL) {
      try {
        const now = fs.lstatSync(where);
        if (sameFile(now, opened.st)) fs.unlinkSync(where);
      } catch {
        // gone already
      }
    }
    throw outside();
  }

  /**
   * The directory at `dir` (a disk path resolved inside the home), opened, with a path that reaches it through that
   * descriptor: `/proc/self/fd/N` (Linux). A name joined to it is looked up in that very directory, even if a local
   * process renames the directory away and puts a link to the outside in its place after the path was checked; so
   * what removes, renames, creates or lists entries acts inside the home. Where the kernel cannot tell where the
   * descriptor's directory is, the path itself. `close()` once done, also after calls on the pool through it.
   */
  private pinDir(dir: string): { at: string; close(): void } {
    // The home itself is where every check leads from: nothing to pin.
    if (process.platform !== "linux" || dir === this.root) return { at: dir, close: () => undefined };
    // O_PATH: a directory that may be searched but not read is pinned too.
    let fd: number;
    try {
      fd = fs.openSync(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    } catch (err) {
      // Resolved as a directory a moment ago, now something else (a link put in its place, say).
      if ((errno(err) === "ENOTDIR" || errno(err) === "ELOOP") && lstatOrNull(dir)?.isSymbolicLink())
        throw new MyftpError("busy", "A directory changed while the command was checked; try again");
      throw err;
    }
    const where = fdPath(fd);
    if (where === null || !this.contains(where)) {
      fs.closeSync(fd);
      if (where === null) return { at: dir, close: () => undefined };
      throw outside();
    }
    let open = true;
    return {
      at: `/proc/self/fd/${fd}`,
      close: () => {
        if (open) fs.closeSync(fd);
        open = false;
      },
    };
  }

  /** Runs `op` with the entry `entry` (a disk path) reached through its pinned directory (see pinDir). */
  private async inPinned<T>(entry: string, op: (at: string) => T | Promise<T>): Promise<T> {
    // The home itself has no directory inside it to pin; it is where every check leads from.
    if (entry === this.root) return await op(entry);
    const dir = this.pinDir(path.dirname(entry));
    try {
      return await op(path.join(dir.at, path.basename(entry)));
    } finally {
      dir.close();
    }
  }

  private lexical(vpath: string): string {
    // Names with the temporary-upload prefix belong to the server: a client that could list, delete or rename one
    // would break the overwrite it holds, and one it made itself would be swept away as a leftover after a crash.
    if (
      !vpath.startsWith("/") ||
      /[\r\n\0]/.test(vpath) ||
      vpath.split("/").some((s) => s === ".." || s === "." || s.startsWith(TEMP_PREFIX))
    )
      throw new MyftpError("bad-path", "Invalid path");
    return vpath === "/" ? this.root : path.join(this.root, vpath);
  }

  /** Disk path of an existing entry with every link resolved; refused if it leads outside. */
  private resolveExisting(vpath: string): string {
    const lex = this.lexical(vpath);
    const real = this.realpathInside(lex);
    if (!this.contains(real)) throw outside();
    return real;
  }

  /** Disk path of the entry itself: its parent resolved, its own name kept (it may be missing or a link). */
  private resolveEntry(vpath: string): string {
    if (vpath === "/") throw new MyftpError("denied", "Permission denied");
    const lex = this.lexical(vpath);
    const parent = this.realpathInside(path.dirname(lex));
    if (!this.contains(parent)) throw outside();
    return path.join(parent, path.basename(lex));
  }

  /**
   * realpath, except that a path which does not resolve because something is missing below a link leading outside
   * the home (or because a link leading outside is dangling) is refused as outside: answering "no such file" there
   * but "permission denied" for what exists would tell the user what exists outside.
   */
  private realpathInside(p: string): string {
    try {
      // The home itself with a trailing slash: one replaced by a file then fails to resolve (ENOTDIR) instead of
      // resolving to no home to list or work in, without a look of its own at every use.
      return fs.realpathSync.native(p === this.root ? `${p}/` : p);
    } catch (err) {
      const code = errno(err);
      // A missing name is common (a new file's path, a probe): the home is looked at only where the answer would
      // otherwise be a refusal, or where something in the path is not a directory (as a home replaced by a file).
      if (code === "ENOTDIR" && !this.homeThere()) throw homeGone();
      if ((code === "ENOENT" || code === "ENOTDIR") && this.leadsOutside(p)) {
        if (!this.homeThere()) throw homeGone();
        throw outside();
      }
      throw err;
    }
  }


  /** Whether a path that does not resolve goes through a part (a directory, or a link's target) that lies outside. */
  private leadsOutside(p: string): boolean {
    for (let depth = 0; depth < 256; depth++) {
      try {
        return !this.contains(fs.realpathSync.native(p));
      } catch {
        // missing: look at what leads to it
      }
      let next = path.dirname(p);
      try {
        if (fs.lstatSync(p).isSymbolicLink()) next = path.resolve(path.dirname(p), fs.readlinkSync(p));
      } catch {
        // not there at all: its directory
      }
      if (next === p) return false;
      p = next;
    }
    return false;
  }

  /** Disk path to write a file at: an existing target is resolved; a missing one must not be a dangling link. */
  private resolveForWrite(vpath: string): string {
    try {
      return this.resolveExisting(vpath);
    } catch (err) {
      if (errno(err) !== "ENOENT") throw err;
    }
    const entry = this.resolveEntry(vpath);
    // A dangling link: writing through it would create its target wherever it points.
    if (lstatOrNull(entry)) throw outside();
    return entry;
  }

  private toStat(name: string, st: fs.Stats): StatResult {
    return { name, type: entryType(st), size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  }

  async stat(vpath: string): Promise<StatResult> {
    // Through the pinned directory, not following the last name (resolved already: a link there now was swapped in).
    const st = await this.inPinned(this.resolveExisting(vpath), (entry) => fs.lstatSync(entry));
    if (st.isSymbolicLink()) throw new MyftpError("busy", "The file changed while the command was checked; try again");
    return this.toStat(path.basename(vpath) || "/", st);
  }

  async linkOwner(vpath: string): Promise<number | null> {
    if (vpath === "/") return null;
    const own = lstatOrNull(this.resolveEntry(vpath));
    return own?.isSymbolicLink() ? own.uid : null;
  }

  async enterDir(vpath: string): Promise<void> {
    const real = this.resolveExisting(vpath);
    if (!fs.statSync(real).isDirectory()) throw new MyftpError("not-dir", "Not a directory");
    // Without search (x) permission nothing under it could be reached: every relative command would fail.
    fs.accessSync(real, constants.X_OK);
  }

  async list(vpath: string): Promise<StatResult[]> {
    const pinned = this.pinDir(this.resolveExisting(vpath));
    try {
      return await this.listPinned(pinned.at);
    } finally {
      pinned.close();
    }
  }

  /** The entries of the directory at `dir`, a path reaching it through its descriptor (see pinDir). */
  private async listPinned(dir: string): Promise<StatResult[]> {
    // Read through a handle opened here: the names are this directory's, wherever its path leads when the pool reads.
    const handle = fs.opendirSync(dir, { bufferSize: 1024 });
    let read: fs.Stats;
    try {
      // Names could be read without search permission, but nothing about them: refused rather than listed as empty.
      fs.accessSync(dir, constants.X_OK);
      read = fs.statSync(dir);
    } catch (err) {
      handle.closeSync();
      throw err;
    }
    const dirents: Dirent[] = [];
    // Read inline, a bounded batch per loop turn: a listing then never queues behind bulk file I/O on the pool.
    try {
      for (let turn = 0; ; turn++) {
        if (turn > 0) await new Promise((resolve) => setImmediate(resolve));
        let d: Dirent | null = null;
        for (let n = 0; n < STAT_BATCH && (d = handle.readSync()) !== null; n++) dirents.push(d);
        if (d === null) break;
      }
    } finally {
      handle.closeSync();
    }
    // The entries' stats are metadata calls: made inline, a batch per loop turn so a huge directory never holds the
    // loop for long. They go by path, so only while the path still leads to the directory that was read.
    const out: StatResult[] = [];
    for (let i = 0; i < dirents.length; i += STAT_BATCH) {
      if (i > 0) await new Promise((resolve) => setImmediate(resolve));
      const now = fs.statSync(dir);
      if (!sameFile(now, read)) throw new MyftpError("not-found", "Directory moved while it was listed");
      for (const d of dirents.slice(i, i + STAT_BATCH)) {
        const st = this.statDirent(dir, d);
        if (st) out.push(st);
      }
    }
    return out;
  }

  private statDirent(dir: string, d: Dirent): StatResult | null {
    // A name with CR or LF (made on the disk, never through FTP) could not be addressed by any client, and written
    // into a listing or a STAT reply it would forge lines.
    if (/[\r\n]/.test(d.name) || d.name.startsWith(TEMP_PREFIX)) return null;
    const full = path.join(dir, d.name);
    try {
      if (d.isSymbolicLink()) {
        const target = fs.realpathSync.native(full);
        if (!this.contains(target)) return null;
        // The file's facts, but the link's own owner: it decides who may remove or rename the name.
        return { ...this.toStat(d.name, fs.statSync(target)), nameUid: fs.lstatSync(full).uid };
      }
      return this.toStat(d.name, fs.lstatSync(full));
    } catch {
      return null; // vanished meanwhile, or a dangling link
    }
  }

  // Entries are created, removed and renamed through their pinned directory (see pinDir).

  async mkdir(vpath: string): Promise<void> {
    const entry = this.resolveEntry(vpath);
    refuseTooLong(entry);
    await this.inPinned(entry, (at) => fs.mkdirSync(at));
  }

  async rmdir(vpath: string): Promise<void> {
    await this.inPinned(this.resolveEntry(vpath), (entry) => {
      if (!fs.lstatSync(entry).isDirectory()) throw new MyftpError("not-dir", "Not a directory");
      fs.rmdirSync(entry);
    });
  }

  async unlink(vpath: string): Promise<number> {
    return await this.inPinned(this.resolveEntry(vpath), async (entry) => {
      const st = fs.lstatSync(entry);
      if (st.isDirectory()) throw new MyftpError("is-dir", "Is a directory");
      // The name goes at once; the blocks are freed off the event loop under a temporary name.
      const doomed = tempNameBeside(entry);
      fs.renameSync(entry, doomed);
      await fsp.unlink(doomed).catch(() => undefined);
      return st.isFile() ? st.size : 0;
    });
  }

  async rename(from: string, to: string, recheck?: () => void): Promise<number> {
    const src = this.resolveEntry(from);
    const dst = this.resolveEntry(to);
    const srcSt = fs.lstatSync(src);
    if (dst !== src) refuseTooLong(dst);
    // A rename to the same entry (same path, or one reached through a link to its directory) is a no-op, as in
    // rename(2); only a move below itself is refused.
    if (srcSt.isDirectory() && dst !== src && (dst + path.sep).startsWith(src + path.sep))
      throw new MyftpError("denied", "Cannot move a directory into itself");
    const dstBytes = Buffer.byteLength(dst);
    if (srcSt.isDirectory() && dstBytes > Buffer.byteLength(src)) {
      // Every path below a directory grows by what its own path grows. One past the system's limit could no longer
      // be opened, listed or counted (the files would drop out of the usage at the next recount), so refuse it.
      const dstDirSt = fs.statSync(path.dirname(dst));
      const longest = await longestPathBelow(src);
      if (dstBytes + longest > MAX_DISK_PATH) {
        throw new MyftpError("bad-path", `Paths below ${path.basename(to)} would be longer than ${MAX_DISK_PATH} bytes`);
      }
      // The walk may have let other commands run: the caller's checks hold again before anything moves, and both
      // paths must still lead where they led (a directory renamed meanwhile, or another moved into its place, would
      // make the rename act on something else).
      recheck?.();
      if (
        this.resolveEntry(from) !== src ||
        this.resolveEntry(to) !== dst ||
        !sameFile(lstatOrNull(src), srcSt) ||
        !sameFile(statOrNull(path.dirname(dst)), dstDirSt)
      ) {
        throw new MyftpError("busy", `${from} or ${to} changed while the rename was checked; try again`);
      }
    }
    const srcDir = this.pinDir(path.dirname(src));
    try {
      const dstDir = this.pinDir(path.dirname(dst));
      try {
        return await this.renamePinned(from, to, path.join(srcDir.at, path.basename(src)), path.join(dstDir.at, path.basename(dst)));
      } finally {
        dstDir.close();
      }
    } finally {
      srcDir.close();
    }
  }

  /** The last part of rename: `src` and `dst` reach the entries through their pinned directories (see pinDir). */
  private async renamePinned(from: string, to: string, src: string, dst: string): Promise<number> {
    const srcSt = fs.lstatSync(src);
    const dstSt = lstatOrNull(dst);
    if (dstSt?.isDirectory() && !srcSt.isDirectory()) throw new MyftpError("is-dir", "Is a directory");
    if (srcSt.isSymbolicLink() && dstSt && !dstSt.isSymbolicLink()) {
      // A link renamed over the file it leads to would replace that file with a link to itself: the data would be
      // gone. Refused, as mv refuses two names of the same file.
      const target = statOrNull(src);
      if (sameFile(target, dstSt)) {
        throw new MyftpError("denied", `${from} leads to ${to}: renaming it over its own target would destroy the file`);
      }
    }
    // Two names of one file: rename(2) leaves both, and nothing is freed.
    const twoNames = sameFile(dstSt, srcSt);
    await renameOver(src, dst, dstSt?.isFile() === true && !twoNames);
    return dstSt?.isFile() && !twoNames ? dstSt.size : 0;
  }

  async openRead(vpath: string): Promise<ReadOpen> {
    const direct = this.openReadDirect(vpath);
    if (direct) return direct;
    const real = this.resolveExisting(vpath);
    // O_NONBLOCK: opening a FIFO found in a home would otherwise block until a writer comes; it changes nothing
    // for regular files, and anything that is not one is refused.
    const { file, st } = this.openInside(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    return { handle: file, size: st.size, diskPath: real, fd: file.fd };
  }

  /**
   * openRead's common case without resolving every link of the path beforehand (Linux). Null when this does not give
   * a regular file inside the home (a link as the last name, a link leading outside, a missing file, anything
   * unusual): the full resolution then decides, and gives the error.
   *
   * Nothing outside the home is opened on the way, not even to be refused: opening is not harmless for everything
   * (a FIFO's writer wakes, a device acts on its open). A name directly in the home is opened as it is (O_NOFOLLOW
   * holds the name itself) once the home's path is seen to lead to the home still. A deeper path may go through links
   * anywhere: it is first opened with O_PATH, which only locates the file, and the kernel's word on where that is
   * (/proc/self/fd) decides; only a regular file inside the home is then opened for reading, through that very
   * descriptor.
   */
  private openReadDirect(vpath: string): ReadOpen | null {
    if (process.platform !== "linux") return null;
    const lex = this.lexical(vpath);
    if (path.dirname(lex) === this.root) {
      if (!this.homeUnmoved()) return null;
      try {
        const { file, st } = openRegular(lex, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
        return { handle: file, size: st.size, diskPath: lex, fd: file.fd };
      } catch {
        return null; // left to the full resolution
      }
    }
    let located: number;
    try {
      located = fs.openSync(lex, O_PATH | O_NOFOLLOW);
    } catch {
      return null;
    }
    try {
      const where = fdPath(located);
      if (where === null || !this.contains(where) || where.endsWith(" (deleted)")) return null;
      const st = fs.fstatSync(located);
      if (!st.isFile()) return null;
      // The magic link leads to the very file located, wherever its path leads by now.
      const fd = fs.openSync(`/proc/self/fd/${located}`, O_RDONLY | O_NONBLOCK);
      return { handle: new OpenFile(fd), size: st.size, diskPath: where, fd };
    } catch {
      // left to the full resolution
      return null;
    } finally {
      fs.closeSync(located);
    }
  }

  async openWrite(vpath: string): Promise<WriteOpen> {
    const target = this.resolveForWrite(vpath);
    try {
      const { file, st } = this.openInside(target, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
      return { handle: file, sizeBefore: st.size, existed: true, diskPath: target, fd: file.fd, ident: identOf(st) };
    } catch (err) {
      if (errno(err) === "ENXIO") throw new MyftpError("denied", "Not a regular file"); // a FIFO with no reader
      if (errno(err) !== "ENOENT") throw err;
    }
    const { file, st } = this.openInside(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
    return { handle: file, sizeBefore: 0, existed: false, diskPath: target, fd: file.fd, ident: identOf(st) };
  }

  async createNew(vpath: string): Promise<WriteOpen | null> {
    // The entry itself, its parent resolved inside the home: a link of that name is taken like any other entry, never
    // followed (O_EXCL with O_CREAT fails on a link whatever it leads to).
    const target = this.resolveEntry(vpath);
    let opened: { file: OpenFile; st: fs.Stats };
    try {
      opened = this.openInside(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
    } catch (err) {
      if (errno(err) === "EEXIST") return null;
      throw err;
    }
    const { file, st } = opened;
    return { handle: file, sizeBefore: 0, existed: false, diskPath: target, fd: file.fd, ident: identOf(st) };
  }

  async openTemp(vpath: string, keep = 0): Promise<WriteOpen & { tempPath: string }> {
    const copy = keep > 0;
    const target = this.resolveForWrite(vpath);
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(target);
    } catch {
      st = null;
    }
    if (st?.isDirectory()) throw new MyftpError("is-dir", "Is a directory");
    if (copy && !st?.isFile()) throw new MyftpError("not-found", "No such file or directory");
    // The new content replaces the file by a rename, which the directory alone would allow: a file this server may
    // not write is refused, as writing it in place would be. (Whether the directory allows the rename, the sticky
    // rule included, the caller asked mayReplace; commitTemp checks the sticky rule again when it renames.)
    if (st) fs.accessSync(target, constants.W_OK);
    const tempPath = uploadTempBeside(target);
    const mode = st ? st.mode & 0o777 : 0o644;
    if (copy) {
      // A clone where the file system can share blocks, a plain copy elsewhere; either way on the thread pool. It is
      // made under a plain temporary name and takes the one that names the target only once whole: a copy cut short
      // by a crash is removed at the next login, never put in place of the file it holds a part of. Both files are
      // opened here, where their paths were checked, and the copy goes through those descriptors (see copyPrefix).
      const old = st as fs.Stats; // a file: checked above
      const source = this.openInside(target, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      let made: { file: OpenFile; st: fs.Stats } | null = null;
      const copying = tempNameBeside(target);
      try {
        if (!sameFile(source.st, old)) {
          throw new MyftpError("busy", "The file changed while the upload was prepared; try again");
        }
        // Owner-only until the copy is whole (copyPrefix sets `mode` at its end).
        made = this.openInside(copying, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
        // Only the part before the offset: the upload replaces the rest, so what stands in the file at any moment (a
        // crash, a failure) is the old prefix and what arrived, which a resume continues.
        await copyPrefix(source.file.fd, made.file.fd, keep, mode);
        // Marked as holding nothing of the upload yet (see UNWRITTEN_MTIME_MS), before it takes the name that names
        // the target: from then on a crash puts it in place of the target only once a byte of the upload came.
        const marked = made;
        await fdCall((cb) => fs.futimes(marked.file.fd, new Date(), new Date(UNWRITTEN_MTIME_MS), cb));
        // The copy's own name still leads to it (nothing was swapped in its directory meanwhile): it takes the name
        // that names the target.
        const copied = made;
        await this.inPinned(copying, (entry) => {
          const now = lstatOrNull(entry);
          if (!sameFile(now, copied.st)) {
            throw new MyftpError("busy", "The directory changed while the upload was prepared; try again");
          }
          fs.renameSync(entry, path.join(path.dirname(entry), path.basename(tempPath)));
        });
      } catch (err) {
        if (made) {
          await made.file.close();
          await this.removeOpened(copying, identOf(made.st)).catch(() => undefined);
        }
        throw err;
      } finally {
        await source.file.close();
      }
      return {
        handle: made.file,
        tempPath,
        diskPath: tempPath,
        sizeBefore: old.size,
        existed: true,
        fd: made.file.fd,
        ident: identOf(made.st),
      };
    }
    const opened = this.openInside(tempPath, O_WRONLY | O_NOFOLLOW | O_CREAT | O_EXCL, mode);
    const { file } = opened;
    return {
      handle: file,
      tempPath,
      diskPath: tempPath,
      sizeBefore: st?.size ?? 0,
      existed: st !== null,
      fd: file.fd,
      ident: identOf(opened.st),
    };
  }

  async mayReplace(vpath: string): Promise<boolean> {
    const target = this.resolveForWrite(vpath);
    const dir = path.dirname(target);
    try {
      fs.accessSync(dir, constants.W_OK | constants.X_OK);
    } catch {
      return false;
    }
    const st = lstatOrNull(target);
    return !st || stickyAllows(dir, st);
  }

  async commitTemp(tempPath: string, vpath: string): Promise<void> {
    const target = this.resolveForWrite(vpath);
    if (!this.contains(tempPath)) throw outside();
    await this.inPinned(tempPath, (temp) =>
      this.inPinned(target, (to) => {
        // An upload that ended without a byte (a REST inside the file and no data: the file ends at the offset) did
        // change the file: it takes the current time rather than the mark.
        // The name itself (not followed): a link a local process swapped in for it meanwhile is no way out of the home.
        if (lstatOrNull(temp)?.mtimeMs === UNWRITTEN_MTIME_MS) {
          const now = new Date();
          fs.lutimesSync(temp, now, now);
        }
        return renameOver(temp, to, lstatOrNull(to)?.isFile() === true);
      }),
    );
  }

  async removeTemp(tempPath: string): Promise<void> {
    if (!this.contains(tempPath)) throw outside();
    await this.inPinned(tempPath, (temp) => fsp.unlink(temp).catch(() => undefined)).catch(() => undefined);
  }

  async truncateOpened(diskPath: string, size: number, ident: FileIdent): Promise<void> {
    if (!this.contains(diskPath)) throw outside();
    // The path is looked up once, here on the loop, and the file it opens must be the one the upload opened: a
    // truncate by path on the pool would follow whatever the path leads to by then (a directory of it renamed away and
    // a link to the outside put in its place by a local process), and cut a file outside the home.
    const fd = fs.openSync(diskPath, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
    try {
      if (!sameFile(fs.fstatSync(fd), ident)) throw new MyftpError("io", "The file was moved while it was uploaded");
      await new Promise<void>((resolve, reject) => fs.ftruncate(fd, size, (err) => (err ? reject(err) : resolve())));
    } finally {
      fs.closeSync(fd);
    }
  }

  async removeOpened(diskPath: string, ident: FileIdent): Promise<void> {
    if (!this.contains(diskPath)) throw outside();
    // Only while the name still leads to the file the upload created, checked and renamed through the pinned directory
    // (as unlink does): by path it could reach a file outside the home through a link put in a directory's place.
    await this.inPinned(diskPath, async (entry) => {
      const st = lstatOrNull(entry);
      if (!sameFile(st, ident)) return;
      const doomed = tempNameBeside(entry);
      try {
        fs.renameSync(entry, doomed);
      } catch {
        return;
      }
      await fsp.unlink(doomed).catch(() => undefined);
    }).catch(() => undefined);
  }

  async setMtime(vpath: string, mtimeMs: number): Promise<void> {
    const t = new Date(mtimeMs);
    // Not following the last name (it was resolved already): one swapped for a link meanwhile changes only the link.
    await this.inPinned(this.resolveExisting(vpath), (entry) => fs.lutimesSync(entry, t, t));
  }

  /**
   * The entry is located with O_PATH (which opens nothing, so a FIFO or a device is not woken) and the kernel's word on
   * where that is (/proc/self/fd) decides, as for openReadDirect; the mode is then set through that very descriptor
   * (chmod of /proc/self/fd/N: fchmod refuses an O_PATH descriptor), so a directory of the path swapped for a link to
   * the outside between the check and the change cannot make it reach a file there. Where the kernel cannot tell
   * (not Linux, no /proc), the entry is reached through its pinned directory and checked not to be a link first.
   */
  async chmod(vpath: string, mode: number): Promise<void> {
    const real = this.resolveExisting(vpath);
    if (real === this.root) throw homeMode();
    const change = (st: fs.Stats, set: () => void): void => {
      // Resolved already: a link as the last name now was swapped in, and chmod would follow it.
      if (st.isSymbolicLink()) throw new MyftpError("busy", "The file changed while the command was checked; try again");
      if (sameFile(st, this.rootIdent)) throw homeMode();
      if (st.isDirectory() && (mode & DIR_OWNER_BITS) !== DIR_OWNER_BITS) {
        throw new MyftpError(
          "denied",
          "A directory must keep its owner's read and search permission (0500): without them the server could not list it or count its files",
        );
      }
      try {
        set();
      } catch (err) {
        if (errno(err) !== "EPERM") throw err;
        // Only the owner (or root) may change a mode; an immutable file refuses even them.
        const who = currentAccessor();
        const notOwner = who !== null && who.uid !== 0 && who.uid !== st.uid;
        throw new MyftpError(
          "denied",
          notOwner ? "Operation not permitted: the server's user does not own it" : "Operation not permitted",
          { cause: err },
        );
      }
    };
    if (process.platform === "linux") {
      const located = fs.openSync(real, O_PATH | O_NOFOLLOW);
      try {
        const where = fdPath(located);
        if (where !== null) {
          if (!this.contains(where)) throw outside();
          change(fs.fstatSync(located), () => fs.chmodSync(`/proc/self/fd/${located}`, mode));
          return;
        }
      } finally {
        fs.closeSync(located);
      }
    }
    await this.inPinned(real, (entry) => change(fs.lstatSync(entry), () => fs.chmodSync(entry, mode)));
  }

  async usage(opts: { removeLeftovers?: boolean; onUnreadable?: (dir: string, err: unknown) => void } = {}): Promise<number> {
    return sumTree(this.root, opts.removeLeftovers === true, opts.onUnreadable);
  }

  async freeSpace(): Promise<number> {
    const st = await fsp.statfs(this.root);
    return st.bavail * st.bsize;
  }

  async diskPathOf(vpath: string): Promise<string> {
    return this.resolveExisting(vpath);
  }

  async claimKey(vpath: string): Promise<string> {
    try {
      return this.resolveExisting(vpath);
    } catch {
      // not there, or not inside: its parent resolved, else the virtual path
    }
    try {
      return this.resolveEntry(vpath);
    } catch {
      return vpath;
    }
  }
}

/**
 * rename(src, dst), with the file it replaces (if any) freed on the thread pool: the old content first gets a second,
 * temporary name, so the rename drops only a name, and freeing the blocks (milliseconds for a large file, which would
 * stall every session) happens off the event loop, as for DELE. Where the file system has no hard links, a plain
 * rename.
 */
async function renameOver(src: string, dst: string, replacesFile: boolean): Promise<void> {
  let alias: string | null = null;
  if (replacesFile) {
    // In a sticky directory only the owner of a file (or of the directory) may replace it. The rename would fail
    // after the extra name was made, and that name could not be removed either: refused first.
    const dstSt = lstatOrNull(dst);
    if (dstSt && !stickyAllows(path.dirname(dst), dstSt)) throw new MyftpError("denied", "Permission denied");
    alias = tempNameBeside(dst);
    try {
      fs.linkSync(dst, alias);
    } catch {
      alias = null;
    }
  }
  try {
    fs.renameSync(src, dst);
  } catch (err) {
    // dst still names the old content: dropping the extra name frees nothing.
    if (alias) fs.unlinkSync(alias);
    throw err;
  }
  if (alias) await fsp.unlink(alias).catch(() => undefined);
}

/** Whether this process may remove or replace the entry `st` in directory `dir` as far as the sticky bit goes. */
function stickyAllows(dir: string, st: { uid: number }): boolean {
  const who = currentAccessor();
  // Root and the entry's owner need not look at the directory.
  return !who || who.uid === 0 || st.uid === who.uid || stickyPermits(fs.statSync(dir), st.uid, who);
}

/** The longest path on Linux, in bytes, without its terminating NUL (PATH_MAX is 4096 with it). */
export const MAX_DISK_PATH = 4095;

/**
 * Refuses to make a name (MKD, RNTO) whose disk path would be longer than the system allows. Such names are made
 * through their pinned directory's short path, so the kernel does not refuse them; but nothing could reach them by their
 * path afterwards: the usage count would leave them out (bytes past the quota), and the user could not use them.
 */
function refuseTooLong(entry: string): void {
  if (Buffer.byteLength(entry) > MAX_DISK_PATH) {
    throw new MyftpError("bad-path", `Path would be longer than ${MAX_DISK_PATH} bytes`);
  }
}

/** Entries a directory walk reads inline before it goes on through the thread pool (see longestPathBelow). */
const INLINE_WALK_ENTRIES = 4096;

/**
 * Length in bytes of the longest "/name/name..." below a directory (0 when it is empty); links are not followed.
 * The first few thousand entries are read inline, like every other name lookup here, so a rename does not wait
 * behind other sessions' bulk reads and writes; the rest of a larger tree (a large directory included) is read
 * through the thread pool so it cannot stall the loop.
 */
async function longestPathBelow(dir: string): Promise<number> {
  let longest = 0;
  let inline = INLINE_WALK_ENTRIES;
  const stack: { disk: string; rel: number }[] = [{ disk: dir, rel: 0 }];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let handle: fs.Dir;
    try {
      handle = fs.opendirSync(d.disk, { bufferSize: 256 });
    } catch {
      continue;
    }
    try {
      for (;;) {
        const e = inline > 0 ? handle.readSync() : await handle.read();
        if (e === null) break;
        inline--;
        const rel = d.rel + 1 + Buffer.byteLength(e.name);
        if (rel > longest) longest = rel;
        if (e.isDirectory()) stack.push({ disk: path.join(d.disk, e.name), rel });
      }
    } catch {
      // unreadable part way: what was read counts
    } finally {
      if (inline > 0) handle.closeSync();
      else await handle.close().catch(() => undefined);
    }
  }
  return longest;
}

/**
 * What a crash left in directory `d` (`entries`, as read from it) under temporary names, put right as the server would
 * have had it lived: an upload's temporary file that names its target and received something takes the target's place
 * (what arrived is kept, as after a broken connection, so a client can resume; one for a REST inside the file starts
 * with the old bytes before the offset), the newest one where there are several; every other temporary name
 * (the old content of a file being deleted or replaced, an upload's file that received nothing or whose target is no
 * longer there to be found by its digest) is removed. Only safe while no upload of the home runs.
 */
async function recoverLeftovers(d: string, entries: Dirent[]): Promise<void> {
  const uploads: { temp: string; target: string; mtimeMs: number }[] = [];
  // The names a digest may stand for: this directory's, made only when a temporary name holds one.
  let byDigest: Map<string, string> | undefined;
  const digestTarget = (digest: string): string | undefined => {
    byDigest ??= new Map(entries.filter((e) => !e.name.startsWith(TEMP_PREFIX)).map((e) => [nameDigest(e.name), e.name]));
    return byDigest.get(digest);
  };
  for (const e of entries) {
    if (!e.name.startsWith(TEMP_PREFIX) || e.isDirectory()) continue;
    const full = path.join(d, e.name);
    const digest = UPLOAD_TEMP_DIGEST.exec(e.name)?.[1];
    const target = digest !== undefined ? digestTarget(digest) : UPLOAD_TEMP.exec(e.name)?.[1];
    if (e.isFile() && target !== undefined && target !== "." && target !== ".." && !target.startsWith(TEMP_PREFIX)) {
      const st = await fsp.lstat(full).catch(() => null);
      // Received something: bytes of its own, and (for a REST inside the file) a write since its copy of the old bytes.
      if (st && st.size > 0 && st.mtimeMs !== UNWRITTEN_MTIME_MS) {
        uploads.push({ temp: full, target: path.join(d, target), mtimeMs: st.mtimeMs });
        continue;
      }
    }
    await fsp.unlink(full).catch(() => undefined);
  }
  uploads.sort((a, b) => a.mtimeMs - b.mtimeMs);
  for (const u of uploads) {
    // In place of a file, or of nothing; not of what took the name since (a directory, a link).
    const now = await fsp.lstat(u.target).then(
      (st) => (st.isFile() ? "file" : "other"),
      (err: NodeJS.ErrnoException) => (err.code === "ENOENT" ? "none" : "other"),
    );
    const put = now !== "other" && (await fsp.rename(u.temp, u.target).then(() => true, () => false));
    if (!put) await fsp.unlink(u.temp).catch(() => undefined);
  }
}

/**
 * Bytes of regular files below a directory; links are not followed. Temporary upload files are never counted. With
 * removeLeftovers (the recount after a crash, while no upload of the home runs) what a crash left under temporary
 * names is put right first (see recoverLeftovers), and the directory read again to be counted as it is then.
 */
export async function sumTree(
  dir: string,
  removeLeftovers = false,
  onUnreadable?: (dir: string, err: unknown) => void,
): Promise<number> {
  let total = 0;
  const stack = [dir];
  const read = async (d: string): Promise<Dirent[] | null> => {
    try {
      return await fsp.readdir(d, { withFileTypes: true });
    } catch (err) {
      // Gone since it was listed: nothing to count. Anything else (no permission, a path too long) hides bytes that
      // are there, so the caller hears of it.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") onUnreadable?.(d, err);
      return null;
    }
  };
  while (stack.length > 0) {
    const d = stack.pop()!;
    let entries = await read(d);
    if (entries && removeLeftovers && entries.some((e) => e.name.startsWith(TEMP_PREFIX))) {
      await recoverLeftovers(d, entries);
      entries = await read(d);
    }
    if (!entries) continue;
    // Files listed here but not reachable (a directory without search permission, a path too long) are bytes that
    // are there: the caller hears of the directory once.
    let unreachable: unknown = null;
    for (let i = 0; i < entries.length; i += STAT_BATCH) {
      const batch = entries.slice(i, i + STAT_BATCH);
      const sizes = await Promise.all(
        batch.map(async (e) => {
          const full = path.join(d, e.name);
          if (e.isDirectory()) {
            stack.push(full);
            return 0;
          }
          if (!e.isFile()) return 0;
          if (e.name.startsWith(TEMP_PREFIX)) {
            // A running overwrite's growth is counted on its target; a leftover that could not be put right is not
            // the user's.
            if (removeLeftovers) await fsp.unlink(full).catch(() => undefined);
            return 0;
          }
          return fsp.lstat(full).then(
            (s) => s.size,
            (err: NodeJS.ErrnoException) => {
              if (err.code !== "ENOENT") unreachable ??= err; // ENOENT: gone meanwhile, nothing to count
              return 0;
            },
          );
        }),
      );
      for (const s of sizes) total += s;
    }
    if (unreachable !== null) onUnreadable?.(d, unreachable);
  }
  return total;
}
