// Overwrites that end early: an overwrite that received nothing keeps the old file, and temporary upload files left
// behind by a crash are removed (not counted) when the user's usage is recounted at the next login. A delete or a
// rename over a file marks the stored figure dirty before it removes anything, so a crash in the middle of one is
// recounted too.

import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TEMP_PREFIX } from "../../src/storage/local.js";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { diskBytes, until, withTimeout } from "../helpers/util.js";
import { holdThreadPool, type HeldPool } from "../review/review-util.js";

let servers: RunningServer[] = [];
let clients: RawFtp[] = [];

afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
});

async function start(home?: string): Promise<RunningServer> {
  const s = await startServer([{ name: "alice", password: "pw", quota: 1 << 20, home }]);
  servers.push(s);
  return s;
}

async function login(s: RunningServer): Promise<RawFtp> {
  const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
  clients.push(c);
  return c;
}

describe("overwrites that end early", () => {
  it("an overwrite aborted before any byte arrived leaves the old file as it was", async () => {
    const s = await start();
    const c = await login(s);
    const old = randomBytes(50_000);
    expect((await c.store("STOR keep.bin", old)).final.code).toBe(226);

    const d = await c.epsv();
    expect((await c.cmd("STOR keep.bin")).code).toBe(150);
    c.send("ABOR");
    expect((await c.read()).code).toBe(426);
    expect((await c.read()).code).toBe(226);
    d.destroy();

    expect(readFileSync(path.join(s.homeOf("alice"), "keep.bin")).equals(old)).toBe(true);
    const names = readdirSync(s.homeOf("alice"));
    expect(names.filter((n) => n.startsWith(TEMP_PREFIX))).toEqual([]);
    const q = await c.expect("SITE QUOTA", 200);
    expect(q.text).toContain(`used ${old.length} of`);
  });

  it("an overwrite whose data connection closes empty (a zero-byte STOR) replaces the file with an empty one", async () => {
    const s = await start();
    const c = await login(s);
    expect((await c.store("STOR zero.bin", randomBytes(1000))).final.code).toBe(226);
    expect((await c.store("STOR zero.bin", Buffer.alloc(0))).final.code).toBe(226);
    expect(readFileSync(path.join(s.homeOf("alice"), "zero.bin")).length).toBe(0);
  });
});

describe("REST+STOR inside an existing file", () => {
  const a = Buffer.alloc(100_000, "a");

  it("refused for quota, it leaves the old bytes as they were", async () => {
    const s = await start(); // 1 MiB
    const c = await login(s);
    expect((await c.store("STOR mid.bin", a)).final.code).toBe(226);
    expect((await c.store("STOR filler.bin", Buffer.alloc(900_000, "f"))).final.code).toBe(226);
    expect((await c.cmd("REST 50000")).code).toBe(350);
    const r = await c.store("STOR mid.bin", Buffer.alloc(400_000, "b"));
    expect(r.final.code).toBe(552);
    expect(readFileSync(path.join(s.homeOf("alice"), "mid.bin")).equals(a)).toBe(true);
    expect(readdirSync(s.homeOf("alice")).filter((n) => n.startsWith(TEMP_PREFIX))).toEqual([]);
    expect((await c.expect("SITE QUOTA", 200)).text).toContain("used 1000000 of");
    expect(diskBytes(s.homeOf("alice"))).toBe(1_000_000);
  });

  it("completed, it keeps the prefix, writes from the offset and ends the file there", async () => {
    const s = await start();
    const c = await login(s);
    expect((await c.store("STOR mid.bin", a)).final.code).toBe(226);
    expect((await c.cmd("REST 50000")).code).toBe(350);
    expect((await c.store("STOR mid.bin", Buffer.alloc(10_000, "b"))).final.code).toBe(226);
    const got = readFileSync(path.join(s.homeOf("alice"), "mid.bin"));
    expect(got.equals(Buffer.concat([a.subarray(0, 50_000), Buffer.alloc(10_000, "b")]))).toBe(true);
    expect((await c.expect("SITE QUOTA", 200)).text).toContain("used 60000 of");
  });
});

describe("temporary upload files left by a crash", () => {
  it("are removed when a dirty usage figure is recounted at login", async () => {
    const s = await start();
    const home = s.homeOf("alice");
    writeFileSync(path.join(home, "real.bin"), randomBytes(3000));
    const leftover = path.join(home, `${TEMP_PREFIX}abcdef012345`);
    writeFileSync(leftover, randomBytes(7000));
    // What a crash in the middle of an upload leaves in the store: a figure marked dirty.
    await s.users.setUsage("alice", 1234, true);

    const c = await login(s);
    const q = await c.expect("SITE QUOTA", 200);
    expect(q.text).toContain("used 3000 of");
    expect(readdirSync(home).sort()).toEqual(["real.bin"]);
    await until(
      async () => {
        await s.server.quota.flushAll();
        const u = await s.users.get("alice");
        return u!.usedBytes === 3000 && !u!.usageDirty;
      },
      5000,
      "clean stored figure",
    );
    expect(diskBytes(home)).toBe(3000);
    await withTimeout(c.quit(), 5000, "quit");
  });
});

describe("a crash while a delete or a rename over a file frees its blocks", () => {
  const tempNames = (dir: string) => readdirSync(dir).filter((n) => n.startsWith(TEMP_PREFIX));

  for (const verb of ["DELE", "RNTO"] as const) {
    it(`${verb}: the stored figure is dirty before the file goes, so a crash then is recounted and swept at the next login`, async () => {
      const s = await start();
      const home = s.homeOf("alice");
      const c = await login(s);
      expect((await c.store("STOR f.bin", randomBytes(300_000))).final.code).toBe(226);
      const g = randomBytes(100_000);
      if (verb === "RNTO") expect((await c.store("STOR g.bin", g)).final.code).toBe(226);
      await s.server.quota.flushAll();
      const before = verb === "DELE" ? 300_000 : 400_000;
      expect(await s.users.get("alice")).toMatchObject({ usedBytes: before, usageDirty: false });

      // With every thread of the pool held, the old content waits under a temporary name to be freed: the state a
      // kill -9 at this point leaves behind is the store as it is and the home as it is.
      const scratch = mkdtempSync(path.join(tmpdir(), "myftp-pool-"));
      const snapshot = mkdtempSync(path.join(tmpdir(), "myftp-crash-"));
      let held: HeldPool | null = holdThreadPool(scratch);
      let crashed: { usedBytes: number | null; usageDirty: boolean };
      try {
        if (verb === "DELE") c.send("DELE f.bin");
        else {
          await c.expect("RNFR g.bin", 350);
          c.send("RNTO f.bin");
        }
        await until(() => tempNames(home).length === 1, 5000, "the old content under a temporary name");
        const row = (await s.users.get("alice"))!;
        crashed = { usedBytes: row.usedBytes, usageDirty: row.usageDirty };
        cpSync(home, snapshot, { recursive: true });
        await held.release();
        held = null;
        expect((await c.read()).code).toBe(250);
      } finally {
        await held?.release();
        rmSync(scratch, { recursive: true, force: true });
      }
      // The figure the crash would have left is marked dirty (its count still holds the file being freed).
      expect(crashed).toEqual({ usedBytes: before, usageDirty: true });

      // Without the crash: a clean figure that matches the disk, and no temporary name.
      const after = verb === "DELE" ? 0 : g.length;
      await until(
        async () => {
          await s.server.quota.flushAll();
          const u = (await s.users.get("alice"))!;
          return u.usedBytes === after && !u.usageDirty;
        },
        5000,
        "clean stored figure",
      );
      expect(tempNames(home)).toEqual([]);
      expect(diskBytes(home)).toBe(after);

      // The restart after the crash: that home and that figure. The login recounts, and the temporary name goes.
      expect(tempNames(snapshot)).toHaveLength(1);
      const s2 = await start(snapshot);
      await s2.users.setUsage("alice", crashed.usedBytes, crashed.usageDirty);
      const c2 = await login(s2);
      expect((await c2.expect("SITE QUOTA", 200)).text).toContain(`used ${after} of`);
      expect(tempNames(snapshot)).toEqual([]);
      expect(diskBytes(snapshot)).toBe(after);
      expect(readdirSync(snapshot)).toEqual(verb === "DELE" ? [] : ["f.bin"]);
      if (verb === "RNTO") expect(readFileSync(path.join(snapshot, "f.bin")).equals(g)).toBe(true);
      rmSync(snapshot, { recursive: true, force: true });
    });
  }

  it("DELE of a missing file writes nothing to the store", async () => {
    const s = await start();
    const c = await login(s);
    await s.server.quota.flushAll();
    let writes = 0;
    const setUsage = s.users.setUsage.bind(s.users);
    s.users.setUsage = async (...args) => {
      writes++;
      return setUsage(...args);
    };
    expect((await c.cmd("DELE nothing.bin")).code).toBe(550);
    await s.server.quota.flushAll();
    expect(writes).toBe(0);
  });
});
