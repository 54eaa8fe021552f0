// At shutdown every unsaved usage figure gets a last attempt, which may wait out a lock another process holds on the
// store (the wait blocks the server's thread). A store that stays locked must cost that wait once, not once per user
// with an unsaved figure: a hundred users would hold the shutdown for a hundred busy timeouts.
import { describe, expect, it } from "vitest";
import { QuotaManager, type LedgerSource, type UsageStore } from "../../src/core/quota.js";

/** A store locked by another process for good: every write fails; records whether each write would have waited. */
function lockedStore(): UsageStore & { waits: boolean[]; locked: boolean } {
  const rows = new Map<string, { usedBytes: number | null; usageDirty: boolean }>();
  const store = {
    waits: [] as boolean[],
    locked: false,
    async setUsage(name: string, usedBytes: number | null, dirty: boolean, opts?: { wait?: boolean }) {
      if (store.locked) {
        store.waits.push(opts?.wait !== false);
        throw Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY" });
      }
      rows.set(name, { usedBytes, usageDirty: dirty });
    },
    async get(name: string) {
      return rows.get(name) ?? { usedBytes: null, usageDirty: false };
    },
  };
  return store;
}

const source = (name: string): LedgerSource => ({
  name,
  home: `/nonexistent/${name}`,
  quotaBytes: null,
  usedBytes: null,
  usageDirty: false,
  scan: async () => 0,
});

describe("QuotaManager.stopAll with the store locked for good", () => {
  it("waits for the lock once, not once per unsaved figure", async () => {
    const store = lockedStore();
    const manager = new QuotaManager(store);
    const ledgers = [];
    for (const name of ["alice", "bob", "carol"]) ledgers.push(await manager.acquire(source(name)));
    store.locked = true;
    for (const l of ledgers) {
      l.reserve(10);
      l.release(5);
      await l.flush();
      expect(l.unsaved).toBe(true);
    }
    store.waits.length = 0;
    await manager.stopAll();
    expect(store.waits.filter((w) => w)).toHaveLength(1);
    expect(store.waits.length).toBeGreaterThanOrEqual(3);
  });
});
