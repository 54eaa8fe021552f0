// The quota manager hands out one live ledger per user: however sessions come and go, two ledgers of one user
// never exist at once (two would each let the user fill the whole quota).

import { rmSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { QuotaLedger, QuotaManager, type LedgerSource, type UsageStore } from "../../src/core/quota.js";
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

/** A user store of one row, in memory, for a ledger on its own. */
function memoryStore(used: number): { row: { usedBytes: number | null; usageDirty: boolean }; store: UsageStore } {
  const row = { usedBytes: used as number | null, usageDirty: false };
  const store: UsageStore = {
    async setUsage(_n, usedBytes, dirty) {
      row.usedBytes = usedBytes;
      row.usageDirty = dirty;
    },
    async get() {
      return { ...row };
    },
  };
  return { row, store };
}

describe("a recount that things keep moving under", () => {
  it("is dropped when a rename came during it (the moved entry may be counted twice or not at all)", async () => {
    const { row, store } = memoryStore(1000);
    let ledger!: QuotaLedger;
    let counts = 0;
    // The first count misses a file a rename moved across the walk; the second sees the tree as it is.
    const recount = async () => {
      counts++;
      if (counts === 1) ledger.noteChange();
      return counts === 1 ? 0 : 5000;
    };
    ledger = new QuotaLedger("alice", 1000, 10_000, store, { used: 1000, dirty: false }, recount);
    row.usedBytes = 4000; // an admin's figure
    await ledger.refresh();
    expect(counts).toBe(1);
    expect(ledger.used).toBe(1000);
    await ledger.persist();
    expect(counts).toBe(2);
    expect(ledger.used).toBe(5000);
    expect(row).toEqual({ usedBytes: 5000, usageDirty: false });
  });

  it("leaves the stored figure marked dirty while the count is due, so a crash then counts the home at the next start", async () => {
    const { row, store } = memoryStore(1000);
    let ledger!: QuotaLedger;
    // The first counts each see a delete of 10 bytes happen meanwhile, so they are not used; then things are still.
    let disk = 5000;
    let counts = 0;
    const recount = async () => {
      counts++;
      const n = disk;
      if (counts <= 3) {
        disk -= 10;
        ledger.release(10);
      }
      return n;
    };
    ledger = new QuotaLedger("alice", 1000, 10_000, store, { used: 1000, dirty: false }, recount);
    row.usedBytes = 5000; // an admin's figure
    ledger.release(10);
    await ledger.flush();
    // After the first dropped count: the figure stored is the old one, but marked dirty.
    expect(counts).toBeGreaterThanOrEqual(1);
    expect(row.usageDirty || row.usedBytes === disk).toBe(true);
    // Once things are still, a count lands and the figure is the disk's, clean.
    for (let i = 0; i < 20 && counts < 4; i++) await ledger.flush();
    await ledger.persist();
    expect(row).toEqual({ usedBytes: disk, usageDirty: false });
  });
});
