// Local-disk storage jailed in one home directory.
//
// Every virtual path is mapped by resolve(): the normalised virtual path is joined under the home, symlinks are
// resolved with realpath, and anything that resolves outside the home is refused. Operations on an entry itself
// (delete, rename) resolve only its parent, so removing a link never touches what it points to. Files are opened
// with O_NOFOLLOW so a link swapped in after the check is not followed either.

import { constants, type Dirent } from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { MyftpError } from "../core/errors.js";
import type { EntryType } from "../protocol/listing.js";
import type { ReadOpen, StatResult, StorageBackend, WriteOpen } from "./backend.js";

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;
const STAT_BATCH = 64;
export const TEMP_PREFIX = ".myftp-upload-";

function outside(): MyftpError {
  return new MyftpError("outside-home", "Permission denied");
}

function entryType(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "link";
  return "other";
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export class LocalStorage implements StorageBackend {
  private constructor(readonly root: string) {}

  /** Opens the storage for a home directory, creating it when missing. */
  static async open(home: string): Promise<LocalStorage> {
    await fsp.mkdir(home, { recursive: true });
    return new LocalStorage(await fsp.realpath(home));
  }

  private contains(p: string): boolean {
    return p === this.root || p.startsWith(this.root + path.sep);
  }

  private lexical(vpath: string): string {
    if (!vpath.startsWith("/") || /[\r\n\0]/.test(vpath) || vpath.split("/").some((s) => s === ".." || s === "."))
      throw new MyftpError("bad-path", "Invalid path");
    return vpath === "/" ? this.root : path.join(this.root, vpath);
  }

  /** Disk path of an existing entry with every link resolved; refused if it leads outside. */
  private async resolveExisting(vpath: string): Promise<string> {
    const real = await fsp.realpath(this.lexical(vpath));
    if (!this.contains(real)) throw outside();
    return real;
  }

  /** Disk path of the entry itself: its parent resolved, its own name kept (it may be missing or a link). */
  private async resolveEntry(vpath: string): Promise<string> {
    if (vpath === "/") throw new MyftpError("denied", "Permission denied");
    const lex = this.lexical(vpath);
    const parent = await fsp.realpath(path.dirname(lex));
    if (!this.contains(parent)) throw outside();
    return path.join(parent, path.basename(lex));
  }

  /** Disk path to write a file at: an existing target is resolved; a missing one must not be a dangling link. */
  private async resolveForWrite(vpath: string): Promise<string> {
    try {
      return await this.resolveExisting(vpath);
    } catch (err) {
      if (errno(err) !== "ENOENT") throw err;
    }
    const entry = await this.resolveEntry(vpath);
    const st = await fsp.lstat(entry).catch((e: unknown) => {
      if (errno(e) === "ENOENT") return null;
      throw e;
    });
    if (st) throw outside(); // a dangling link: writing through it would create its target wherever it points
    return entry;
  }

  private toStat(name: string, st: import("node:fs").Stats): StatResult {
    return { name, type: entryType(st), size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 };
  }

  async stat(vpath: string): Promise<StatResult> {
    const real = await this.resolveExisting(vpath);
    const st = await fsp.stat(real);
    return this.toStat(path.basename(vpath) || "/", st);
  }

  async list(vpath: string): Promise<StatResult[]> {
    const dir = await this.resolveExisting(vpath);
    let dirents: Dirent[];
    dirents = await fsp.readdir(dir, { withFileTypes: true });
    const out: StatResult[] = [];
    for (let i = 0; i < dirents.length; i += STAT_BATCH) {
      const batch = dirents.slice(i, i + STAT_BATCH);
      const stats = await Promise.all(batch.map((d) => this.statDirent(dir, d)));
      for (const s of stats) if (s) out.push(s);
    }
    return out;
  }

  private async statDirent(dir: string, d: Dirent): Promise<StatResult | null> {
    // A name with CR or LF (made on the disk, never through FTP) could not be addressed by any client, and written
    // into a listing or a STAT reply it would forge lines.
    if (/[\r\n]/.test(d.name)) return null;
    const full = path.join(dir, d.name);
    try {
      if (d.isSymbolicLink()) {
        const target = await fsp.realpath(full);
        if (!this.contains(target)) return null;
        return this.toStat(d.name, await fsp.stat(target));
      }
      return this.toStat(d.name, await fsp.lstat(full));
    } catch {
      return null; // vanished meanwhile, or a dangling link
    }
  }

  async mkdir(vpath: string): Promise<void> {
    await fsp.mkdir(await this.resolveEntry(vpath));
  }

  async rmdir(vpath: string): Promise<void> {
    const entry = await this.resolveEntry(vpath);
    const st = await fsp.lstat(entry);
    if (!st.isDirectory()) throw new MyftpError("not-dir", "Not a directory");
    await fsp.rmdir(entry);
  }

  async unlink(vpath: string): Promise<number> {
    const entry = await this.resolveEntry(vpath);
    const st = await fsp.lstat(entry);
    if (st.isDirectory()) throw new MyftpError("is-dir", "Is a directory");
    await fsp.unlink(entry);
    return st.isFile() ? st.size : 0;
  }

  async rename(from: string, to: string): Promise<number> {
    const src = await this.resolveEntry(from);
    const dst = await this.resolveEntry(to);
    const srcSt = await fsp.lstat(src);
    if (srcSt.isDirectory() && (dst + path.sep).startsWith(src + path.sep))
      throw new MyftpError("denied", "Cannot move a directory into itself");
    const dstSt = await fsp.lstat(dst).catch(() => null);
    if (dstSt?.isDirectory() && !srcSt.isDirectory()) throw new MyftpError("is-dir", "Is a directory");
    await fsp.rename(src, dst);
    return dstSt?.isFile() && dst !== src ? dstSt.size : 0;
  }

  async openRead(vpath: string): Promise<ReadOpen> {
    const real = await this.resolveExisting(vpath);
    // O_NONBLOCK: opening a FIFO found in a home would otherwise block a thread-pool thread until a writer comes;
    // it changes nothing for regular files, and anything that is not one is refused below.
    const handle = await fsp.open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    try {
      const st = await handle.stat();
      if (st.isDirectory()) throw new MyftpError("is-dir", "Is a directory");
      if (!st.isFile()) throw new MyftpError("denied", "Not a regular file");
      return { handle, size: st.size, diskPath: real };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async openWrite(vpath: string): Promise<WriteOpen> {
    const target = await this.resolveForWrite(vpath);
    let existed = true;
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(target, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (err) {
      if (errno(err) === "ENXIO") throw new MyftpError("denied", "Not a regular file"); // a FIFO with no reader
      if (errno(err) !== "ENOENT") throw err;
      existed = false;
      handle = await fsp.open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
    }
    try {
      const st = await handle.stat();
      if (st.isDirectory()) throw new MyftpError("is-dir", "Is a directory");
      if (!st.isFile()) throw new MyftpError("denied", "Not a regular file");
      return { handle, sizeBefore: existed ? st.size : 0, existed, diskPath: target };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async openTemp(vpath: string): Promise<WriteOpen & { tempPath: string }> {
    const target = await this.resolveForWrite(vpath);
    const st = await fsp.stat(target).catch(() => null);
    if (st?.isDirectory()) throw new MyftpError("is-dir", "Is a directory");
    const tempPath = path.join(path.dirname(target), `${TEMP_PREFIX}${randomBytes(6).toString("hex")}`);
    const handle = await fsp.open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, st ? st.mode & 0o777 : 0o644);
    return { handle, tempPath, diskPath: tempPath, sizeBefore: st?.size ?? 0, existed: st !== null };
  }

  async commitTemp(tempPath: string, vpath: string): Promise<void> {
    const target = await this.resolveForWrite(vpath);
    await fsp.rename(tempPath, target);
  }

  async removeTemp(tempPath: string): Promise<void> {
    if (!this.contains(tempPath)) throw outside();
    await fsp.unlink(tempPath).catch(() => undefined);
  }

  async truncateOpened(diskPath: string, size: number): Promise<void> {
    if (!this.contains(diskPath)) throw outside();
    await fsp.truncate(diskPath, size);
  }

  async removeOpened(diskPath: string): Promise<void> {
    if (!this.contains(diskPath)) throw outside();
    await fsp.unlink(diskPath).catch(() => undefined);
  }

  async setMtime(vpath: string, mtimeMs: number): Promise<void> {
    const real = await this.resolveExisting(vpath);
    const t = new Date(mtimeMs);
    await fsp.utimes(real, t, t);
  }

  async usage(opts: { removeLeftovers?: boolean } = {}): Promise<number> {
    return sumTree(this.root, opts.removeLeftovers === true);
  }

  async freeSpace(): Promise<number> {
    const st = await fsp.statfs(this.root);
    return st.bavail * st.bsize;
  }

  async diskPathOf(vpath: string): Promise<string> {
    return this.resolveExisting(vpath);
  }
}

/**
 * Bytes of regular files below a directory; links are not followed. With removeLeftovers, temporary upload files
 * (left behind when the server died in the middle of an overwrite) are deleted instead of counted.
 */
export async function sumTree(dir: string, removeLeftovers = false): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch {
      continue;
    }
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
          if (removeLeftovers && e.name.startsWith(TEMP_PREFIX)) {
            await fsp.unlink(full).catch(() => undefined);
            return 0;
          }
          return fsp.lstat(full).then(
            (s) => s.size,
            () => 0,
          );
        }),
      );
      for (const s of sizes) total += s;
    }
  }
  return total;
}
