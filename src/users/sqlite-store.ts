// UserStore on an embedded SQLite file, with versioned schema migrations (PRAGMA user_version).

import { chmodSync, closeSync, constants, copyFileSync, existsSync, fchmodSync, mkdtempSync, openSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import type { NewUser, UserRecord, UserStore } from "./store.js";
import { UserExistsError } from "./store.js";

/** Each entry moves the schema from version i to i+1. Never edit a released migration; append a new one. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE users (
     id INTEGER PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     password_hash TEXT NOT NULL,
     home TEXT NOT NULL,
     quota_bytes INTEGER,
     used_bytes INTEGER,
     usage_dirty INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
     updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
   )`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** How long a write waits for a lock another connection holds (SQLite waits in the calling thread). */
const BUSY_TIMEOUT_MS = 5000;

interface Row {
  name: string;
  password_hash: string;
  home: string;
  quota_bytes: number | null;
  used_bytes: number | null;
  usage_dirty: number;
}

function toRecord(r: Row): UserRecord {
  return {
    name: r.name,
    passwordHash: r.password_hash,
    home: r.home,
    quotaBytes: r.quota_bytes,
    usedBytes: r.used_bytes,
    usageDirty: r.usage_dirty !== 0,
  };
}

/** A store file whose mode let others than its owner read it, and what was done about it. */
export interface LoosenedFile {
  file: string;
  /** The permission bits it had. */
  mode: number;
  /** Set when it could not be changed to 0600. */
  error?: string;
}

/**
 * The store file holds the password hashes: creates it empty with mode 0600 when it is missing (whatever the umask,
 * and before SQLite opens it, which would create it with the umask), and takes group and world access off an existing
 * one and off its -wal and -shm files. SQLite creates those two with the mode of the database file. Returns the files
 * that had to be tightened.
 */
export function secureStoreFile(file: string): LoosenedFile[] {
  return looseStoreFiles(file, true);
}

/**
 * The store's files that others than the owner can read, changed to 0600. That is a change of mode, which a read-only
 * opening may make too: it writes nothing in the store, and SQLite then gives the -wal and -shm it creates the same
 * 0600. `create` makes a missing store file first.
 */
function looseStoreFiles(file: string, create: boolean): LoosenedFile[] {
  if (create) createPrivate(file);
  const loosened: LoosenedFile[] = [];
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    let mode: number;
    try {
      mode = statSync(f).mode & 0o7777;
    } catch {
      continue; // no such file (the -wal and -shm come and go)
    }
    if ((mode & 0o077) === 0) continue;
    try {
      chmodSync(f, 0o600);
      loosened.push({ file: f, mode });
    } catch (err) {
      loosened.push({ file: f, mode, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message });
    }
  }
  return loosened;
}

function createPrivate(file: string): void {
  try {
    const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      fchmodSync(fd, 0o600);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}

export interface StoreOpenOptions {
  /** Open for reading only: the file must exist, and nothing is created or written (no migration either). */
  readonly?: boolean;
}

export class SqliteUserStore implements UserStore {
  private readonly db: Database.Database;
  private readonly stmts;
  /** Files of this store that were readable by others when it was opened (see secureStoreFile). */
  readonly loosened: LoosenedFile[];
  /** The temporary directory of the private copy a read-only store is read from, if any (see openReadonly). */
  private copyDir: string | null = null;

  constructor(file: string, opts: StoreOpenOptions = {}) {
    if (opts.readonly) {
      this.loosened = looseStoreFiles(file, false);
      this.db = this.openReadonly(file);
    } else {
      this.loosened = secureStoreFile(file);
      this.db = new Database(file);
      this.db.pragma("journal_mode = WAL");
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.db.pragma("synchronous = NORMAL");
      this.migrate();
    }
    const cols = "name, password_hash, home, quota_bytes, used_bytes, usage_dirty";
    this.stmts = {
      get: this.db.prepare<[string], Row>(`SELECT ${cols} FROM users WHERE name = ?`),
      list: this.db.prepare<[], Row>(`SELECT ${cols} FROM users ORDER BY name`),
      count: this.db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM users`),
      add: this.db.prepare(
        `INSERT INTO users (name, password_hash, home, quota_bytes) VALUES (@name, @passwordHash, @home, @quotaBytes)`,
      ),
      remove: this.db.prepare(`DELETE FROM users WHERE name = ?`),
      usage: this.db.prepare(
        `UPDATE users SET used_bytes = ?, usage_dirty = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE name = ?`,
      ),
    };
  }

  /**
   * Opens the file read-only. SQLite reads a WAL database only where it can create the -shm file next to it, or where
   * one exists: with no server running there is none, so in a directory this user cannot write (or on a read-only
   * mount) the store is read from a private copy instead, made in a fresh 0700 temporary directory and removed by
   * close().
   */
  private openReadonly(file: string): Database.Database {
    try {
      return SqliteUserStore.readonlyDb(file);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code !== "string" || !(code.startsWith("SQLITE_READONLY") || code.startsWith("SQLITE_CANTOPEN"))) throw err;
      const dir = mkdtempSync(path.join(tmpdir(), "myftpd-store-"));
      this.copyDir = dir;
      try {
        const copy = path.join(dir, path.basename(file));
        copyFileSync(file, copy);
        if (existsSync(`${file}-wal`)) copyFileSync(`${file}-wal`, `${copy}-wal`);
        return SqliteUserStore.readonlyDb(copy);
      } catch (copyErr) {
        rmSync(dir, { recursive: true, force: true });
        this.copyDir = null;
        throw (copyErr as { code?: unknown }).code === "ENOENT" ? copyErr : err;
      }
    }
  }

  private static readonlyDb(file: string): Database.Database {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      db.pragma("busy_timeout = 5000");
      const version = db.pragma("user_version", { simple: true }) as number;
      if (version !== SCHEMA_VERSION) {
        throw new Error(
          `user store ${file} has schema version ${version}, this myftpd reads ${SCHEMA_VERSION}: open it for writing once (e.g. myftpd serve) to migrate it`,
        );
      }
      return db;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private migrate(): void {
    const current = this.db.pragma("user_version", { simple: true }) as number;
    if (current > SCHEMA_VERSION) {
      throw new Error(`user store schema version ${current} is newer than this myftpd (${SCHEMA_VERSION})`);
    }
    for (let v = current; v < SCHEMA_VERSION; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  async get(name: string): Promise<UserRecord | undefined> {
    const r = this.stmts.get.get(name);
    return r ? toRecord(r) : undefined;
  }

  async list(): Promise<UserRecord[]> {
    return this.stmts.list.all().map(toRecord);
  }

  async count(): Promise<number> {
    return this.stmts.count.get()!.n;
  }

  async add(user: NewUser): Promise<void> {
    try {
      this.stmts.add.run(user);
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") throw new UserExistsError(user.name);
      throw err;
    }
  }

  async remove(name: string): Promise<boolean> {
    return this.stmts.remove.run(name).changes > 0;
  }

  async update(
    name: string,
    changes: Partial<Pick<UserRecord, "passwordHash" | "home" | "quotaBytes">>,
  ): Promise<boolean> {
    const sets: string[] = [];
    const params: Record<string, unknown> = { name };
    if (changes.passwordHash !== undefined) {
      sets.push("password_hash = @passwordHash");
      params.passwordHash = changes.passwordHash;
    }
    if (changes.home !== undefined) {
      // A new home means the recorded usage no longer describes it.
      sets.push("home = @home", "used_bytes = NULL");
      params.home = changes.home;
    }
    if (changes.quotaBytes !== undefined) {
      sets.push("quota_bytes = @quotaBytes");
      params.quotaBytes = changes.quotaBytes;
    }
    if (sets.length === 0) return (await this.get(name)) !== undefined;
    sets.push("updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')");
    return this.db.prepare(`UPDATE users SET ${sets.join(", ")} WHERE name = @name`).run(params).changes > 0;
  }

  private dataVersion: number | null = null;

  /** SQLite's data_version moves when another connection commits, and only then (not for this one's own writes). */
  changedElsewhere(): boolean {
    const v = this.db.pragma("data_version", { simple: true }) as number;
    const changed = this.dataVersion !== null && v !== this.dataVersion;
    this.dataVersion = v;
    return changed;
  }

  async setUsage(name: string, usedBytes: number | null, dirty: boolean, opts: { wait?: boolean } = {}): Promise<void> {
    if (opts.wait !== false) {
      this.stmts.usage.run(usedBytes, dirty ? 1 : 0, name);
      return;
    }
    // better-sqlite3 is synchronous: waiting out a lock held by another process (an admin's sqlite3 shell, a backup)
    // would stop the server's thread, every session with it, for up to the busy timeout on every write. Fail at once
    // instead (SQLITE_BUSY); the server keeps the figure in memory and saves it again later.
    this.db.pragma("busy_timeout = 0");
    try {
      this.stmts.usage.run(usedBytes, dirty ? 1 : 0, name);
    } finally {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  close(): void {
    this.db.close();
    if (this.copyDir !== null) rmSync(this.copyDir, { recursive: true, force: true });
  }
}
