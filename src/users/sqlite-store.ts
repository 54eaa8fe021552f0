// UserStore on an embedded SQLite file, with versioned schema migrations (PRAGMA user_version).

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

export class SqliteUserStore implements UserStore {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("synchronous = NORMAL");
    this.migrate();
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

  async setUsage(name: string, usedBytes: number | null, dirty: boolean): Promise<void> {
    this.stmts.usage.run(usedBytes, dirty ? 1 : 0, name);
  }

  close(): void {
    this.db.close();
  }
}
