// One server per data directory. Two servers on one directory would each keep their own quota ledger, so together
// they would let a user pass the quota. `serve` therefore holds an exclusive lock on DATA/myftpd.lock (an SQLite
// database it keeps an exclusive transaction open on, so the lock is the file system's own record lock): the kernel
// drops it when the process ends, however it ends, so a crash never leaves a stale lock behind, and the lock is
// seen from every process on this machine whatever PID namespace (container) it runs in. DATA/myftpd.pid names the
// PID of the holder, for people and for the refusal message; it decides nothing.

import { closeSync, constants, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import Database from "better-sqlite3";

/** Another myftpd runs on the data directory. */
export class DataDirBusyError extends Error {
  constructor(
    message: string,
    readonly pid: number | null,
  ) {
    super(message);
    this.name = "DataDirBusyError";
  }
}

/** How long taking the lock waits for a holder to let go (only two starts at once need it). */
const START_RACE_MS = 250;

export function pidFilePath(dataDir: string): string {
  return path.join(dataDir, "myftpd.pid");
}

export function lockFilePath(dataDir: string): string {
  return path.join(dataDir, "myftpd.lock");
}

/** Who holds the data directory: a server, or `myftpd user rescan` settling what a crash left while none runs. */
export type LockRole = "serve" | "rescan";

/** The PID file: "PID" for a server, "PID rescan" for a rescan. */
function readHolder(file: string): { pid: number; role: LockRole } | null {
  try {
    const m = /^(\d+)(?: (rescan))?$/.exec(readFileSync(file, "utf8").trim());
    return m ? { pid: Number(m[1]), role: m[2] === "rescan" ? "rescan" : "serve" } : null;
  } catch {
    return null;
  }
}

function readPid(file: string): number | null {
  return readHolder(file)?.pid ?? null;
}

/** Why taking the lock failed for want of permission, for the message; "" for another cause. */
function permissionHint(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const c = typeof code === "string" ? code : "";
  return c === "EACCES" || c === "EPERM" || c === "EROFS" || c.startsWith("SQLITE_CANTOPEN") || c.startsWith("SQLITE_READONLY") || c.startsWith("SQLITE_PERM")
    ? " (the data directory and this file must be writable by the user myftpd runs as, on a file system mounted read-write)"
    : "";
}

export interface LockOptions {
  role?: LockRole;
  /** When a rescan holds the directory, wait up to this long for it (a server start; 0: do not wait). */
  waitForRescanMs?: number;
  /** Told once before such a wait, with the rescan's PID. */
  onWait?: (pid: number) => void;
}

/**
 * Takes the data directory for this process, or throws DataDirBusyError. Returns the release function (also run
 * when the process exits), which lets the lock go and removes the PID file if it still names this process.
 */
export function lockDataDir(dataDir: string, opts: LockOptions = {}): () => void {
  const role = opts.role ?? "serve";
  const lockFile = lockFilePath(dataDir);
  const pidFile = pidFilePath(dataDir);
  // Made 0600 before SQLite opens it, like the user store.
  try {
    closeSync(openSync(lockFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
      throw new Error(`cannot create ${lockFile}, which marks the data directory as served: ${(err as Error).message}${permissionHint(err)}`);
    }
  }
  let db: Database.Database;
  try {
    // A short busy timeout: two servers starting at the same instant can each hold a step of the lock the other
    // needs, and with none both would give up; with it, one waits for the other to give up, then takes the lock.
    db = new Database(lockFile, { timeout: START_RACE_MS });
  } catch (err) {
    throw new Error(`cannot open ${lockFile}, which marks the data directory as served: ${(err as Error).message}${permissionHint(err)}`);
  }
  const busy = (err: unknown) => (err as { code?: string }).code?.startsWith("SQLITE_BUSY") === true;
  try {
    // A rescan is short, and a server started meanwhile (by a service manager, say) should not fail for it: with
    // waitForRescanMs, it waits for the lock a second at a time (SQLite's busy timeout retries within each), within
    // that bound and for as long as a rescan holds it (no PID file for a moment, as the rescan lets go, means: wait
    // on); a server that holds it is refused at once.
    let deadline: number | null = null;
    for (;;) {
      try {
        db.exec("BEGIN EXCLUSIVE");
        break;
      } catch (err) {
        const holder = readHolder(pidFile);
        const rescan = holder === null ? deadline !== null : holder.role === "rescan";
        if (!busy(err) || !opts.waitForRescanMs || !rescan || (deadline !== null && Date.now() >= deadline)) throw err;
        if (deadline === null) {
          deadline = Date.now() + opts.waitForRescanMs;
          opts.onWait?.(holder!.pid);
        }
        db.pragma(`busy_timeout = ${Math.max(1, Math.min(1000, deadline - Date.now()))}`);
      }
    }
  } catch (err) {
    db.close();
    if (busy(err)) {
      const holder = readHolder(pidFile);
      const pid = holder?.pid ?? null;
      if (holder?.role === "rescan") {
        throw new DataDirBusyError(`myftpd user rescan (PID ${holder.pid}) holds the data directory ${dataDir}; try again when it is done`, pid);
      }
      throw new DataDirBusyError(
        `another myftpd${pid === null ? "" : ` (PID ${pid})`} is serving the data directory ${dataDir}; one server per ` +
          "data directory (two would each keep their own quota count). Stop it first, or give this one another --data",
        pid,
      );
    }
    throw new Error(`cannot lock ${lockFile}: ${(err as Error).message}${permissionHint(err)}`);
  }
  // The PID file is written whole under another name, then moved into place.
  const temp = `${pidFile}.${process.pid}`;
  try {
    writeFileSync(temp, role === "rescan" ? `${process.pid} rescan\n` : `${process.pid}\n`, { mode: 0o644 });
    renameSync(temp, pidFile);
  } catch (err) {
    db.close();
    throw new Error(
      `cannot write ${pidFile}: the server needs a data directory it can write (it keeps the usage figures there too): ${(err as Error).message}`,
    );
  }

  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off("exit", release);
    try {
      if (readPid(pidFile) === process.pid) unlinkSync(pidFile);
    } catch {
      // already gone, or the directory went away
    }
    try {
      db.exec("ROLLBACK");
      db.close();
    } catch {
      // the process is ending: the kernel lets the lock go anyway
    }
  };
  process.on("exit", release);
  return release;
}
