// A figure that could not be saved while another process held the user store locked gets a last attempt when the
// server shuts down. That attempt waits for a short lock (as every usage write did before usage saving stopped
// waiting on the server's thread): failing at once would leave the store's older figure, marked clean, which the next
// start trusts.

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { ROOT, startServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { diskBytes, until, withTimeout } from "../helpers/util.js";

let lockers: ChildProcess[] = [];
let dirs: string[] = [];

afterEach(() => {
  for (const l of lockers) if (l.exitCode === null && l.signalCode === null) l.kill("SIGKILL");
  lockers = [];
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** Another process holding a write transaction on the store; once told, it commits a moment later. */
async function lockStore(file: string): Promise<{ releaseSoon(): Promise<void>; exited: Promise<void> }> {
  const script = `
    const Database = require("better-sqlite3");
    const db = new Database(process.argv[1]);
    db.exec("BEGIN IMMEDIATE");
    db.prepare("UPDATE users SET updated_at = updated_at").run();
    process.stdout.write("locked\\n");
    process.stdin.once("data", () => {
      process.stdout.write("soon\\n");
      setTimeout(() => { db.exec("COMMIT"); db.close(); process.exit(0); }, 400);
    });
  `;
  const child = spawn(process.execPath, ["-e", script, file], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
  lockers.push(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      child.stdout!.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`the lock holder exited with ${code}`)));
    }),
    10_000,
    "the store is locked",
  );
  return {
    exited,
    releaseSoon: () =>
      withTimeout(
        new Promise<void>((resolve) => {
          child.stdout!.once("data", () => resolve());
          child.stdin!.write("go\n");
        }),
        10_000,
        "the lock holder heard",
      ),
  };
}

describe("shutdown with an unsaved usage figure", () => {
  it("waits for a short lock to save it", { timeout: 30_000 }, async () => {
    const s = await startServer([{ name: "alice", password: "pw" }]);
    dirs.push(s.dataDir);
    const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    expect((await c.store("STOR one.bin", randomBytes(5000))).final.code).toBe(226);
    await until(async () => {
      const u = (await s.users.get("alice"))!;
      return u.usedBytes === 5000 && !u.usageDirty;
    }, 10_000, "the first figure is saved");

    const lock = await lockStore(path.join(s.dataDir, "users.db"));
    // An upload goes on while the store is locked (counted in memory): the store still says 5000, clean.
    expect((await c.store("STOR two.bin", randomBytes(3000))).final.code).toBe(226);
    await until(async () => (await s.server.quota.peek("alice"))?.unsaved === true, 10_000, "the figure is unsaved");
    await c.quit();
    await lock.releaseSoon();
    await s.server.close();
    s.users.close();
    await lock.exited;

    const store = new SqliteUserStore(path.join(s.dataDir, "users.db"));
    try {
      const u = (await store.get("alice"))!;
      // Either the exact figure, or one marked for a recount: never a wrong figure the next start would trust.
      expect(u.usageDirty || u.usedBytes === diskBytes(s.homeOf("alice"))).toBe(true);
      expect(diskBytes(s.homeOf("alice"))).toBe(8000);
    } finally {
      store.close();
    }
  });
});
