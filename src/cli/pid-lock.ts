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

export function pidFilePath(dataDir: string): string {
  return path.join(dataDir, "myftpd.pid");
}

export function lockFilePath(dataDir: string): string {
  return path.join(dataDir, "myftpd.lock");
}

function readPid(file: string): number | null {
  try {
    const text = readFileSync(file, "utf8").trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

/**
 * Takes the data directory for this process, or throws DataDirBusyError. Returns the release function (also run
 * when the process exits), which lets the lock go and removes the PID file if it still names this process.
 */
export function lockDataDir(dataDir: string): () => void {
  const lockFile = lockFilePath(dataDir);
  const pidFile = pidFilePath(dataDir);
  // Made 0600 before SQLite opens it, like the user store.
  try {
    closeSync(openSync(lockFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
      throw new Error(`cannot create ${lockFile}, which marks the data directory as served: ${(err as Error).message}`);
    }
  }
  let db: Database.Database;
  try {
    db = new Database(lockFile, { timeout: 0 });
  } catch (err) {
    throw new Error(`cannot open ${lockFile}, which marks the data directory as served: ${(err as Error).message}`);
  }
  try {
    db.exec("BEGIN EXCLUSIVE");
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code?.startsWith("SQLITE_BUSY")) {
      const pid = readPid(pidFile);
      throw new DataDirBusyError(
        `another myftpd${pid === null ? "" : ` (PID ${pid})`} is serving the data directory ${dataDir}; one server per ` +
          "data directory (two would each keep their own quota count). Stop it first, or give this one another --data",
        pid,
      );
    }
    throw new Error(`cannot lock ${lockFile}: ${(err as Error).message}`);
  }
  // The PID file is written whole under another name, then moved into place.
  const temp = `${pidFile}.${process.pid}`;
  try {
    writeFileSync(temp, `${process.pid}\n`, { mode: 0o644 });
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
