// A figure that could not be saved (the store locked by another process) is kept in memory after the user's last
// session ended, and saved once the lock is gone. If meanwhile an admin gave the user another home (which clears the
// stored figure) or removed the user, that figure counts a home that is no longer the user's: it must not be written
// over the cleared one, or the next login would trust it for the new home.

import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { killLockHolders, lockStore } from "../helpers/store-lock.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { until } from "../helpers/util.js";

let servers: RunningServer[] = [];
let clients: RawFtp[] = [];

afterEach(async () => {
  killLockHolders();
  for (const c of clients) await c.close();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
});


/**
 * alice's server, with a first upload saved; then, while another process holds the store locked with `change` (an
 * admin's write, `?` being the new home) done in its transaction, a second upload and alice's logout: her figure is
 * left unsaved, and the lock is released.
 */
async function unsavedAcrossAdminChange(change: string): Promise<{ s: RunningServer; newHome: string }> {
  const s = await startServer([{ name: "alice", password: "pw" }]);
  servers.push(s);
  const newHome = path.join(s.dataDir, "elsewhere");
  mkdirSync(newHome);
  const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
  clients.push(c);
  expect((await c.store("STOR one.bin", randomBytes(1000))).final.code).toBe(226);
  await until(async () => (await s.users.get("alice"))!.usedBytes === 1000, 10_000, "the first figure is saved");

  const lock = await lockStore(path.join(s.dataDir, "users.db"), change, newHome);
  expect((await c.store("STOR two.bin", randomBytes(3000))).final.code).toBe(226);
  await c.quit();
  await until(async () => (await s.server.quota.peek("alice"))?.unsaved === true, 10_000, "the figure is unsaved");
  await lock.release();
  return { s, newHome };
}

describe("an unsaved figure of a user an admin changed meanwhile", () => {
  it("is not saved over the cleared figure of the user's new home", { timeout: 30_000 }, async () => {
    // The admin's change (as `myftpd user set --home` writes it) is made in the transaction that locks the store.
    const { s, newHome } = await unsavedAcrossAdminChange("UPDATE users SET home = ?, used_bytes = NULL WHERE name = 'alice'");
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
    expect(await d.usedBytes()).toBe(0);
    await until(async () => (await s.users.get("alice"))!.usedBytes === 0, 10_000, "the new home's figure is saved");
  });

  it("is not saved over a rescan's figure of the user's new home", { timeout: 30_000 }, async () => {
    // `myftpd user set --home` and then `myftpd user rescan` (the new home is empty), made while the server cannot save.
    const { s } = await unsavedAcrossAdminChange("UPDATE users SET home = ?, used_bytes = 0, usage_dirty = 0 WHERE name = 'alice'");
    await until(
      async () => (await s.server.quota.peek("alice")) === undefined || (await s.users.get("alice"))!.usedBytes !== 0,
      10_000,
      "the old figure is dealt with",
    );
    expect((await s.users.get("alice"))!.usedBytes).toBe(0);
    const d = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    clients.push(d);
    expect(await d.usedBytes()).toBe(0);
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
