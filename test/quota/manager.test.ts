// The quota manager hands out one live ledger per user: however sessions come and go, two ledgers of one user
// never exist at once (two would each let the user fill the whole quota).

import { rmSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { QuotaManager, type LedgerSource } from "../../src/core/quota.js";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { tempDir } from "../helpers/myftpd.js";

let dirs: string[] = [];
let stores: SqliteUserStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(): Promise<{ manager: QuotaManager; src: LedgerSource }> {
  const dir = tempDir();
  dirs.push(dir);
  const store = new SqliteUserStore(path.join(dir, "users.db"));
  stores.push(store);
  await store.add({ name: "alice", passwordHash: "$argon2id$x", home: dir, quotaBytes: 1000 });
  await store.setUsage("alice", 100, false);
  const src: LedgerSource = { name: "alice", home: dir, quotaBytes: 1000, usedBytes: 100, usageDirty: false, scan: async () => 100 };
  return { manager: new QuotaManager(store), src };
}

describe("QuotaManager", () => {
  it("a login in the same turn as the last logout keeps the one live ledger", async () => {
    const { manager, src } = await setup();
    const first = await manager.acquire(src);
    manager.release(first);
    const again = manager.acquire(src); // before the release has finished forgetting the ledger
    expect(await again).toBe(first);
    await first.flush();
    await new Promise((r) => setTimeout(r, 10));
    expect(await manager.acquire(src)).toBe(first);
    expect(await manager.peek("alice")).toBe(first);
  });

  it("forgets a ledger nobody holds, and loads a fresh one at the next login", async () => {
    const { manager, src } = await setup();
    const first = await manager.acquire(src);
    manager.release(first);
    await first.flush();
    await new Promise((r) => setTimeout(r, 10));
    expect(await manager.peek("alice")).toBeUndefined();
    const next = await manager.acquire(src);
    expect(next).not.toBe(first);
    expect(next.used).toBe(100);
  });
});

describe("the recount after an admin's figure", () => {
  it("drops a count during which an upload began and ended, and counts again once things are still", async () => {
    const { manager, src } = await setup();
    let firstCount: ((n: number) => void) | null = null;
    let counts = 0;
    const ledger = await manager.acquire({
      ...src,
      recount: () => {
        counts++;
        // The first count reads the disk before the upload below lands; the second one after it.
        return counts === 1 ? new Promise<number>((resolve) => (firstCount = resolve)) : Promise.resolve(5500);
      },
    });
    expect(ledger.used).toBe(100);
    // `myftpd user rescan` from another process stores a figure: the ledger counts the home itself.
    const admin = new SqliteUserStore(path.join(dirs[0]!, "users.db"));
    stores.push(admin);
    await admin.setUsage("alice", 5000, false);
    const refreshed = ledger.refresh();
    for (let i = 0; i < 100 && !firstCount; i++) await new Promise((r) => setTimeout(r, 5));
    expect(firstCount).not.toBeNull();
    // An upload that begins and ends while the count runs.
    ledger.beginWrite();
    ledger.reserve(500);
    ledger.endWrite();
    firstCount!(5000);
    await refreshed;
    await ledger.flush();
    expect(counts).toBe(2);
    expect(ledger.used).toBe(5500);
  });
});
