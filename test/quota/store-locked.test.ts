// The user store locked by another process (an admin's sqlite3 shell or a backup holding a write transaction) while
// users upload: the server must not wait for the lock on its own thread (better-sqlite3 is synchronous, so every
// session would stall with it, for up to SQLite's busy timeout on every usage write), and the figure it could not
// save must reach the store once the lock is gone, not stay behind as a stale figure marked clean that the next
// start would trust.

import { randomBytes } from "node:crypto";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { killLockHolders, lockStore } from "../helpers/store-lock.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { diskBytes, until } from "../helpers/util.js";

let servers: RunningServer[] = [];
let clients: RawFtp[] = [];

afterEach(async () => {
  killLockHolders();
  for (const c of clients) await c.close();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
});


describe("user store locked by another process", () => {
  it("uploads and other sessions go on without waiting for the lock", { timeout: 20_000 }, async () => {
    const s = await startServer([{ name: "alice", password: "pw" }], { transferProcesses: 0 });
    servers.push(s);
    const a = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    const b = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    clients.push(a, b);
    await a.expect("NOOP", 200);
    const lock = await lockStore(path.join(s.dataDir, "users.db"));
    // Each upload saves the usage at least twice (marked dirty at its start, the figure at its end). Waiting out
    // SQLite's 5 s busy timeout on the server's thread for each would take far past this test's time.
    for (let i = 0; i < 6; i++) {
      expect((await a.store(`STOR f${i}.bin`, randomBytes(1000))).final.code).toBe(226);
      await b.expect("NOOP", 200);
    }
    expect(await b.usedBytes()).toBe(6000);
    await lock.release();
    await until(async () => {
      const u = (await s.users.get("alice"))!;
      return u.usedBytes === 6000 && !u.usageDirty;
    }, 10_000, "the figure is saved once the lock is gone");
  });

  it("a figure that could not be saved is saved once the lock is gone, also after the session ended", async () => {
    const s = await startServer([{ name: "alice", password: "pw" }]);
    servers.push(s);
    const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    clients.push(c);
    expect((await c.store("STOR one.bin", randomBytes(1000))).final.code).toBe(226);
    await until(async () => (await s.users.get("alice"))!.usedBytes === 1000, 10_000, "the first figure is saved");

    const lock = await lockStore(path.join(s.dataDir, "users.db"));
    expect((await c.store("STOR two.bin", randomBytes(3000))).final.code).toBe(226);
    await c.quit();
    await lock.release();
    const home = s.homeOf("alice");
    await until(async () => {
      const u = (await s.users.get("alice"))!;
      return u.usedBytes === diskBytes(home) && !u.usageDirty;
    }, 10_000, "the stored figure equals the bytes on disk");
    expect(diskBytes(home)).toBe(4000);

    // The next login goes on from the saved figure.
    const d = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    clients.push(d);
    expect(await d.usedBytes()).toBe(4000);
  });
});
