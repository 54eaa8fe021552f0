// A figure that could not be saved (the store locked by another process) is kept in memory after the user's last
// session ended, and saved once the lock is gone. If meanwhile an admin gave the user another home (which clears the
// stored figure) or removed the user, that figure counts a home that is no longer the user's: it must not be written
// over the cleared one, or the next login would trust it for the new home.

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ROOT, startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { until, withTimeout } from "../helpers/util.js";

let servers: RunningServer[] = [];
let clients: RawFtp[] = [];
let lockers: ChildProcess[] = [];

afterEach(async () => {
  for (const l of lockers) if (l.exitCode === null && l.signalCode === null) l.kill("SIGKILL");
  lockers = [];
  for (const c of clients) await c.close();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
});

/** Another process holding a write transaction on the store; release() runs `sql` (with `home`) in it, then commits. */
async function lockStore(file: string, sql: string, home: string): Promise<{ release(): Promise<void> }> {
  const script = `
    const Database = require("better-sqlite3");
    const db = new Database(process.argv[1]);
    db.exec("BEGIN IMMEDIATE");
    db.prepare("UPDATE users SET updated_at = updated_at").run();
    process.stdout.write("locked\\n");
    process.stdin.once("data", () => {
      db.prepare(process.argv[2]).run(...(process.argv[2].includes("?") ? [process.argv[3]] : []));
      db.exec("COMMIT");
      db.close();
      process.exit(0);
    });
  `;
  const child = spawn(process.execPath, ["-e", script, file, sql, home], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
  lockers.push(child);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      child.stdout!.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`the lock holder exited with ${code}`)));
    }),
    10_000,
    "the store is locked",
  );
  return {
    release: () =>
      withTimeout(
        new Promise<void>((resolve) => {
          child.once("exit", () => resolve());
          child.stdin!.write("go\n");
        }),
        10_000,
        "the lock is released",
      ),
  };
}

async function usedOf(c: RawFtp): Promise<number> {
  return Number(/used (\d+)/.exec((await c.expect("SITE QUOTA", 200)).text)![1]);
}

describe("an unsaved figure of a user an admin changed meanwhile", () => {
  it("is not saved over the cleared figure of the user's new home", { timeout: 30_000 }, async () => {
    const s = await startServer([{ name: "alice", password: "pw" }]);
    servers.push(s);
    const newHome = path.join(s.dataDir, "elsewhere");
    mkdirSync(newHome);
    const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    clients.push(c);
    expect((await c.store("STOR one.bin", randomBytes(1000))).final.code).toBe(226);
    await until(async () => (await s.users.get("alice"))!.usedBytes === 1000, 10_000, "the first figure is saved");

    // The admin's change (as `myftpd user set --home` writes it) is made in the transaction that locks the store.
    const lock = await lockStore(
      path.join(s.dataDir, "users.db"),
      "UPDATE users SET home = ?, used_bytes = NULL WHERE name = 'alice'",
      newHome,
    );
    expect((await c.store("STOR two.bin", randomBytes(3000))).final.code).toBe(226);
    await c.quit();
    await until(async () => (await s.server.quota.peek("alice"))?.unsaved === true, 10_000, "the figure is unsaved");
    await lock.release();
    const row = (await s.users.get("alice"))!;
    expect(row.home).toBe(newHome);
    // Until the server has let the old figure go, or written it.
    await until(
      async () => (await s.server.quota.peek("alice")) === undefined || (await s.users.get("alice"))!.usedBytes !== null,
      10_000,
      "the old figure is dealt with",
    );
    expect((await s.users.get("alice"))!.usedBytes).toBeNull();

    // The new home is empty: its login counts nothing.
    const d = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    clients.push(d);
    expect(await usedOf(d)).toBe(0);
    await until(async () => (await s.users.get("alice"))!.usedBytes === 0, 10_000, "the new home's figure is saved");
  });

  it("is not saved over a rescan's figure of the user's new home", { timeout: 30_000 }, async () => {
    const s = await startServer([{ name: "alice", password: "pw" }]);
    servers.push(s);
    const newHome = path.join(s.dataDir, "elsewhere");
    mkdirSync(newHome);
    const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    clients.push(c);
    expect((await c.store("STOR one.bin", randomBytes(1000))).final.code).toBe(226);
    await until(async () => (await s.users.get("alice"))!.usedBytes === 1000, 10_000, "the first figure is saved");

    // `myftpd user set --home` and then `myftpd user rescan` (the new home is empty), made while the server cannot save.
    const lock = await lockStore(
      path.join(s.dataDir, "users.db"),
      "UPDATE users SET home = ?, used_bytes = 0, usage_dirty = 0 WHERE name = 'alice'",
      newHome,
    );
    expect((await c.store("STOR two.bin", randomBytes(3000))).final.code).toBe(226);
    await c.quit();
    await until(async () => (await s.server.quota.peek("alice"))?.unsaved === true, 10_000, "the figure is unsaved");
    await lock.release();
    await until(
      async () => (await s.server.quota.peek("alice")) === undefined || (await s.users.get("alice"))!.usedBytes !== 0,
      10_000,
      "the old figure is dealt with",
    );
    expect((await s.users.get("alice"))!.usedBytes).toBe(0);
    const d = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    clients.push(d);
    expect(await usedOf(d)).toBe(0);
  });

  it("of a removed user is not kept for good", { timeout: 30_000 }, async () => {
    const s = await startServer([{ name: "alice", password: "pw" }]);
    servers.push(s);
    const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    clients.push(c);
    const lock = await lockStore(path.join(s.dataDir, "users.db"), "DELETE FROM users WHERE name = 'alice'", "");
    expect((await c.store("STOR two.bin", randomBytes(3000))).final.code).toBe(226);
    await c.quit();
    await until(async () => (await s.server.quota.peek("alice"))?.unsaved === true, 10_000, "the figure is unsaved");
    await lock.release();
    await until(async () => (await s.server.quota.peek("alice")) === undefined, 10_000, "the old ledger is let go");
  });
});
