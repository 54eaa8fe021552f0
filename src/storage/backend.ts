// The storage a session works on, addressed by normalised virtual paths ("/" is the user's home).
// Implementations enforce the jail: nothing outside the home is ever read, listed, written, renamed or deleted.

import type { ListEntry } from "../protocol/listing.js";

export interface StatResult extends ListEntry {}

/** An open file's data side; reads and writes go at explicit positions. */
export interface FileReader {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  /**
   * Reads at once on the calling thread, for a small read the page cache is likely to answer; null when the
   * backend wants this read to go through read() (too large, or the device has been slow lately).
   */
  readNow?(buffer: Buffer, offset: number, length: number, position: number): number | null;
  close(): Promise<void>;
}

export interface FileWriter {
  writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }>;
  /** Cuts the file at `size` before the call returns. */
  truncateNow(size: number): void;
  /** Cuts the file at `size` (off the calling thread where the backend can: freeing blocks may take a while). */
  truncate(size: number): Promise<void>;
  /** The file's size now. */
  sizeNow(): number;
  close(): Promise<void>;
}

export interface ReadOpen {
  handle: FileReader;
  size: number;
  /** The open descriptor, for a worker thread of this process to read (absent where the backend has none). */
  fd?: number;
  /** Absolute disk path (for hashing off the main thread). */
  diskPath: string;
}

export interface WriteOpen {
  handle: FileWriter;
  /** Size of the file before this open (0 when it did not exist). */
  sizeBefore: number;
  existed: boolean;
  diskPath: string;
  /** The open descriptor, for a transfer process to reopen (absent where the backend has none). */
  fd?: number;
  /** Which file was opened (device and inode): truncateOpened and removeOpened act only on that file. */
  ident: FileIdent;
}

/** A file's identity on its file system. */
export interface FileIdent {
  dev: number;
  ino: number;
}

export interface StorageBackend {
  /** The home's absolute disk path (after symlink resolution). */
  readonly root: string;
  stat(vpath: string): Promise<StatResult>;
  /** The owner of the entry itself when it is a link (whose stat gives its target's facts); null otherwise. */
  linkOwner(vpath: string): Promise<number | null>;
  /** Checks that a directory can be made the working directory: it is one, and the server may search it. */
  enterDir(vpath: string): Promise<void>;
  /** Entries of a directory ("." and ".." not included; entries leading outside the home left out); ENOTDIR for a file. */
  list(vpath: string): Promise<StatResult[]>;
  mkdir(vpath: string): Promise<void>;
  rmdir(vpath: string): Promise<void>;
  /** Removes a file and returns its size. */
  unlink(vpath: string): Promise<number>;
  /**
   * Renames; returns the size of a file that the rename replaced (0 if none). recheck, if given, runs after anything
   * the rename awaits and before it moves anything; it throws to call the rename off.
   */
  rename(from: string, to: string, recheck?: () => void): Promise<number>;
  openRead(vpath: string): Promise<ReadOpen>;
  /** Opens a file for writing without truncating it; creates it when missing. */
  openWrite(vpath: string): Promise<WriteOpen>;
  /**
   * Creates a new, empty file at `vpath` and opens it for writing, in one step that fails when any entry of that name
   * exists (a file, a directory, a link, dangling or not): no other upload or process can have made it in between.
   * Null when the name is taken.
   */
  createNew(vpath: string): Promise<WriteOpen | null>;
  /**
   * Opens a temporary file beside `vpath` for an upload that replaces its content, to be committed with commitTemp,
   * so a refused upload leaves the old file untouched. With `keep`, the temporary file starts with the old file's
   * first `keep` bytes (a REST inside it: the upload continues from there); otherwise it starts empty. For a path
   * mayReplace allows.
   */
  openTemp(vpath: string, keep?: number): Promise<WriteOpen & { tempPath: string }>;
  /**
   * Whether the directory of `vpath` lets this server put a new file in place of the entry by a rename (write and
   * search permission on it, and the sticky rule); what openTemp and commitTemp need.
   */
  mayReplace(vpath: string): Promise<boolean>;
  /** Moves a temporary file over its target. */
  commitTemp(tempPath: string, vpath: string): Promise<void>;
  removeTemp(tempPath: string): Promise<void>;
  /**
   * Truncates the file at a disk path this backend opened (restore after a refused upload), as long as the path still
   * leads to that file (`ident`); fails otherwise, touching nothing.
   */
  truncateOpened(diskPath: string, size: number, ident: FileIdent): Promise<void>;
  /** Removes a file this backend created for an upload that was refused, if the path still leads to it (`ident`). */
  removeOpened(diskPath: string, ident: FileIdent): Promise<void>;
  setMtime(vpath: string, mtimeMs: number): Promise<void>;
  /**
   * Sets the permission bits (`mode`, at most 0o777) of an existing entry; a link is followed to its target, as
   * chmod(1) does. Refused for the home itself, for anything the path reaches outside the home, and for a directory
   * mode without the owner's read and search bits (see DIR_OWNER_BITS).
   */
  chmod(vpath: string, mode: number): Promise<void>;
  /**
   * Total bytes of regular files below the home, temporary upload files left out. removeLeftovers (the recount after a
   * crash) first puts right what a crash left under temporary names: an upload's temporary file that received
   * something takes its target's place, as after a broken connection, and every other one is deleted; only safe when
   * no upload of this home is running. onUnreadable hears of each directory that could not be read (its bytes are not
   * in the total).
   */
  usage(opts?: { removeLeftovers?: boolean; onUnreadable?: (dir: string, err: unknown) => void }): Promise<number>;
  /** Bytes free on the file system that holds the home. */
  freeSpace(): Promise<number>;
  /** Absolute disk path of an existing file (for hashing). */
  diskPathOf(vpath: string): Promise<string>;
  /**
   * The key under which uploads, deletes and renames of one file meet, whatever name reaches it: the disk path with
   * every link resolved (for a missing entry, its parent's), or the virtual path when neither resolves.
   */
  claimKey(vpath: string): Promise<string>;
}
