// A figure that could not be saved while another process held the user store locked gets a last attempt when the
// server shuts down. That attempt waits for a short lock (as every usage write did before usage saving stopped
// waiting on the server's thread): failing at once would leave the store's older figure, marked clean, which the next
// start trusts.

import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { startServer } from "../helpers/myftpd.js";
import { killLockHolders, lockStore } from "../helpers/store-lock.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { diskBytes, until } from "../helpers/util.js";

let dirs: string[] = [];

afterEach(() => {
  killLockHolders();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

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
    await lock.releaseSoon(400);
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
