// Another process holding a write transaction on a user store (as an admin's sqlite3 shell or a backup would), for
// the tests of a server that must not wait for such a lock on its own thread.

import { spawn, type ChildProcess } from "node:child_process";
import { ROOT } from "./myftpd.js";
import { withTimeout } from "./util.js";

export interface StoreLock {
  /** Commits at once (running `sql` first, when given) and resolves once the holder has exited. */
  release(): Promise<void>;
  /** Has the holder commit `afterMs` from now; resolves once it has heard. */
  releaseSoon(afterMs: number): Promise<void>;
  /** Resolves when the holder has exited. */
  readonly exited: Promise<void>;
}

const holders: ChildProcess[] = [];

// On a line "go MS", the holder runs the statement it was given (with its one parameter, if it has a "?"), waits MS
// and commits.
const SCRIPT = `
  const Database = require("better-sqlite3");
  const [file, sql, param] = process.argv.slice(1);
  const db = new Database(file);
  db.exec("BEGIN IMMEDIATE");
  db.prepare("UPDATE users SET updated_at = updated_at").run();
  process.stdout.write("locked\\n");
  process.stdin.once("data", (d) => {
    const ms = Number(String(d).split(" ")[1]) || 0;
    if (sql) db.prepare(sql).run(...(sql.includes("?") ? [param] : []));
    process.stdout.write("soon\\n");
    setTimeout(() => { db.exec("COMMIT"); db.close(); process.exit(0); }, ms);
  });
`;

/** Locks the store at `file`; `sql` (with `param`) is run in the same transaction when it is released. */
export async function lockStore(file: string, sql = "", param = ""): Promise<StoreLock> {
  const child = spawn(process.execPath, ["-e", SCRIPT, file, sql, param], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
  holders.push(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      child.stdout!.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`the lock holder exited with ${code}`)));
    }),
    10_000,
    "the store is locked",
  );
  const heard = (ms: number) =>
    new Promise<void>((resolve) => {
      child.stdout!.once("data", () => resolve());
      child.stdin!.write(`go ${ms}\n`);
    });
  return {
    exited,
    release: () => withTimeout(heard(0).then(() => exited), 10_000, "the lock is released"),
    releaseSoon: (afterMs) => withTimeout(heard(afterMs), 10_000, "the lock holder heard"),
  };
}

/** Ends every lock holder still running (for afterEach). */
export function killLockHolders(): void {
  for (const c of holders.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}
