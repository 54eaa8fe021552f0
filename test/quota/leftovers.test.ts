// Overwrites that end early: an overwrite that received nothing keeps the old file, and temporary upload files left
// behind by a crash are removed (not counted) when the user's usage is recounted at the next login.

import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TEMP_PREFIX } from "../../src/storage/local.js";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { diskBytes, until, withTimeout } from "../helpers/util.js";

let servers: RunningServer[] = [];
let clients: RawFtp[] = [];

afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
});

async function start(): Promise<RunningServer> {
  const s = await startServer([{ name: "alice", password: "pw", quota: 1 << 20 }]);
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
