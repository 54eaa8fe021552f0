// One server per data directory: `serve` holds DATA/myftpd.pid (created with O_EXCL, holding its PID) while it runs.
// Two servers on one directory would each keep their own quota ledger, so together they would let a user pass the
// quota. A file left by a server that crashed names a process that is gone (or one that is not myftpd, once its PID
// is reused): the next start takes it over.

import { closeSync, constants, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import * as path from "node:path";

/** Another myftpd runs on the data directory. */
export class DataDirBusyError extends Error {
  constructor(
    message: string,
    readonly pid: number,
  ) {
    super(message);
    this.name = "DataDirBusyError";
  }
}

export function pidFilePath(dataDir: string): string {
  return path.join(dataDir, "myftpd.pid");
}

function readPid(file: string): number | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  const pid = /^\s*(\d+)\s*$/.exec(text) ? Number(text.trim()) : NaN;
  return Number.isSafeInteger(pid) && pid > 0 ? pid : 0;
}

/** True when `pid` is a live process, other than this one, whose command line names myftpd. */
export function isLiveMyftpd(pid: number): boolean {
  if (pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else, so its command line decides.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.some((a) => path.basename(a).startsWith("myftpd"));
  } catch {
    // Gone meanwhile, or no /proc: a live process we cannot look at is taken for a server, to be safe.
    return process.platform !== "linux";
  }
}

function createExclusive(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw new Error(`cannot create ${file}, which marks the data directory as served: ${(err as Error).message}`);
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

function busy(dataDir: string, pid: number): DataDirBusyError {
  return new DataDirBusyError(
    `another myftpd (PID ${pid}) is serving the data directory ${dataDir}; one server per data directory (two would each keep their own quota count). Stop it first, or give this one another --data`,
    pid,
  );
}

/**
 * Takes the data directory for this process, or throws DataDirBusyError. Returns the release function, which removes
 * the PID file if it still holds this process's PID (it is also called when the process exits).
 */
export function lockDataDir(dataDir: string): () => void {
  const file = pidFilePath(dataDir);
  for (let attempt = 0; attempt < 3; attempt++) {
    if (createExclusive(file)) {
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        process.off("exit", release);
        try {
          if (readPid(file) === process.pid) unlinkSync(file);
        } catch {
          // already gone, or the directory went away: nothing to release
        }
      };
      process.on("exit", release);
      return release;
    }
    const pid = readPid(file);
    if (pid === null) continue; // removed meanwhile: try again
    if (isLiveMyftpd(pid)) throw busy(dataDir, pid);
    // Stale. Another server starting at this moment may have found it stale too, and may already have replaced it
    // with its own file: so the file is first moved aside (atomically, under a name of this process's own) and looked
    // at again there. If it turns out to be a live server's, it is put back, and this start gives way.
    const aside = `${file}.stale-${process.pid}`;
    try {
      renameSync(file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw err;
    }
    const movedPid = readPid(aside);
    if (movedPid !== null && movedPid !== pid && isLiveMyftpd(movedPid)) {
      try {
        linkSync(aside, file);
      } catch {
        // someone else holds the name now; they will be told of each other
      }
      unlinkSync(aside);
      throw busy(dataDir, movedPid);
    }
    unlinkSync(aside);
  }
  throw new Error(`cannot take ${file}: other processes keep replacing it; is another myftpd starting on ${dataDir}?`);
}
