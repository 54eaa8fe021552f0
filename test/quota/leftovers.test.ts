// Overwrites that end early: an overwrite that received nothing keeps the old file, and temporary upload files left
// behind by a crash are put right when the user's usage is recounted at the next login: an upload's temporary file
// takes its target's place (what arrived is kept, as after a broken connection, so a resume continues it), any other
// is removed, and neither is counted twice. A delete or a rename over a file marks the stored figure dirty before it
// removes anything, so a crash in the middle of one is recounted too.

import { randomBytes } from "node:crypto";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LocalStorage, TEMP_PREFIX } from "../../src/storage/local.js";
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

  it("broken off, it keeps the prefix and what arrived, and ends the file there (a resume continues it)", async () => {
    const s = await start();
    const c = await login(s);
    expect((await c.store("STOR mid.bin", a)).final.code).toBe(226);
    const d = await c.epsv();
    await c.expect("REST 50000", 350);
    expect((await c.cmd("STOR mid.bin")).code).toBe(150);
    d.write(Buffer.alloc(10_000, "b"));
    const home = s.homeOf("alice");
    await until(
      () => readdirSync(home).some((n) => n.startsWith(TEMP_PREFIX) && statSync(path.join(home, n)).size === 60_000),
      5000,
      "10,000 bytes after the offset",
    );
    c.send("ABOR");
    expect((await c.read()).code).toBe(426);
    expect((await c.read()).code).toBe(226);
    d.destroy();
    const got = readFileSync(path.join(home, "mid.bin"));
    expect(got.equals(Buffer.concat([a.subarray(0, 50_000), Buffer.alloc(10_000, "b")]))).toBe(true);
    expect((await c.expect("SITE QUOTA", 200)).text).toContain("used 60000 of");
  });

  it.each([10_000, 90_000])("REST %i keeps the file's permission bits and its prefix, however the prefix is copied", async (rest) => {
    const s = await start();
    const c = await login(s);
    expect((await c.store("STOR mid.bin", a)).final.code).toBe(226);
    const file = path.join(s.homeOf("alice"), "mid.bin");
    chmodSync(file, 0o664);
    expect((await c.cmd(`REST ${rest}`)).code).toBe(350);
    expect((await c.store("STOR mid.bin", Buffer.alloc(1000, "r"))).final.code).toBe(226);
    expect(statSync(file).mode & 0o777).toBe(0o664);
    expect(readFileSync(file).equals(Buffer.concat([a.subarray(0, rest), Buffer.alloc(1000, "r")]))).toBe(true);
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
  const tempNames = (dir: string) => readdirSync(dir).filter((n) => n.startsWith(TEMP_PREFIX));

  it("an upload's named temporary file takes its target's place; others go; the figure is the disk's", async () => {
    const s = await start();
    const home = s.homeOf("alice");
    writeFileSync(path.join(home, "doc.bin"), Buffer.alloc(3000, "a"));
    const partial = randomBytes(5000);
    writeFileSync(path.join(home, `${TEMP_PREFIX}0123456789ab.doc.bin`), partial);
    // A REST inside a file: its temporary file is a copy of the old one, with new bytes from the offset.
    mkdirSync(path.join(home, "sub"));
    writeFileSync(path.join(home, "sub", "mid.bin"), Buffer.alloc(4000, "m"));
    const copied = Buffer.concat([Buffer.alloc(1000, "m"), Buffer.alloc(500, "n"), Buffer.alloc(2500, "m")]);
    writeFileSync(path.join(home, "sub", `${TEMP_PREFIX}00000000000a.mid.bin`), copied);
    // An overwrite that received nothing: the old file stays.
    writeFileSync(path.join(home, "keep.bin"), Buffer.alloc(700, "k"));
    writeFileSync(path.join(home, `${TEMP_PREFIX}aaaaaaaaaaaa.keep.bin`), "");
    // The old content of a file being freed (a plain temporary name), and a temporary file whose target is now a directory.
    writeFileSync(path.join(home, `${TEMP_PREFIX}bbbbbbbbbbbb`), randomBytes(9000));
    mkdirSync(path.join(home, "d"));
    writeFileSync(path.join(home, `${TEMP_PREFIX}cccccccccccc.d`), randomBytes(600));
    await s.users.setUsage("alice", 3000 + 4000 + 700, true);

    const c = await login(s);
    const used = 5000 + 4000 + 700;
    expect((await c.expect("SITE QUOTA", 200)).text).toContain(`used ${used} of`);
    expect(readFileSync(path.join(home, "doc.bin")).equals(partial)).toBe(true);
    expect(readFileSync(path.join(home, "sub", "mid.bin")).equals(copied)).toBe(true);
    expect(readFileSync(path.join(home, "keep.bin")).equals(Buffer.alloc(700, "k"))).toBe(true);
    expect(readdirSync(home).sort()).toEqual(["d", "doc.bin", "keep.bin", "sub"]);
    expect(readdirSync(path.join(home, "sub"))).toEqual(["mid.bin"]);
    expect(readdirSync(path.join(home, "d"))).toEqual([]);
    expect(diskBytes(home)).toBe(used);
    await until(
      async () => {
        await s.server.quota.flushAll();
        const u = await s.users.get("alice");
        return u!.usedBytes === used && !u!.usageDirty;
      },
      5000,
      "clean stored figure",
    );
    await withTimeout(c.quit(), 5000, "quit");
  });

  for (const rest of [0, 2000]) {
    it(`a crash in the middle of an overwrite${rest ? " with REST inside the file" : ""} keeps what arrived, so a resume makes the new file`, async () => {
      const s = await start();
      const home = s.homeOf("alice");
      const c = await login(s);
      const old = Buffer.alloc(30_000, "o");
      const neu = randomBytes(60_000);
      expect((await c.store("STOR doc.bin", old)).final.code).toBe(226);
      // The client sends new content (from the REST offset) and the server dies after 20,000 bytes of it arrived.
      const d = await c.epsv();
      if (rest) await c.expect(`REST ${rest}`, 350);
      expect((await c.cmd("STOR doc.bin")).code).toBe(150);
      d.write(neu.subarray(rest, rest + 20_000));
      const temp = () => tempNames(home).find((n) => statSync(path.join(home, n)).size >= rest + 20_000);
      await until(() => temp() !== undefined, 5000, "the bytes in the temporary file");
      // It names its target, so that the recount after a crash can put it in place.
      expect(temp()).toMatch(/^\.myftp-upload-[0-9a-f]{12}\.doc\.bin$/);
      await until(
        () => readFileSync(path.join(home, temp()!)).subarray(rest, rest + 20_000).equals(neu.subarray(rest, rest + 20_000)),
        5000,
        "all 20,000 bytes written",
      );
      const row = (await s.users.get("alice"))!;
      expect(row.usageDirty).toBe(true);
      const snapshot = mkdtempSync(path.join(tmpdir(), "myftp-crash-"));
      cpSync(home, snapshot, { recursive: true });
      d.destroy();

      // The restart: that home and that figure.
      const s2 = await start(snapshot);
      await s2.users.setUsage("alice", row.usedBytes, row.usageDirty);
      const c2 = await login(s2);
      // What arrived replaced the old content past the offset (the old bytes before it stay), and the figure is
      // the disk's.
      const kept = Buffer.concat([old.subarray(0, rest), neu.subarray(rest, rest + 20_000)]);
      expect(readFileSync(path.join(snapshot, "doc.bin")).equals(kept)).toBe(true);
      expect(tempNames(snapshot)).toEqual([]);
      expect((await c2.expect("SITE QUOTA", 200)).text).toContain(`used ${kept.length} of`);
      // A client resuming at the server's SIZE, as curl -C - does, ends with the new file.
      const size = Number((await c2.expect("SIZE doc.bin", 213)).text);
      expect(size).toBe(rest + 20_000);
      await c2.expect(`REST ${size}`, 350);
      expect((await c2.store("STOR doc.bin", neu.subarray(size))).final.code).toBe(226);
      const whole = Buffer.concat([old.subarray(0, rest), neu.subarray(rest)]);
      expect(readFileSync(path.join(snapshot, "doc.bin")).equals(whole)).toBe(true);
      expect((await c2.expect("SITE QUOTA", 200)).text).toContain(`used ${whole.length} of`);
      expect(diskBytes(snapshot)).toBe(whole.length);
      await withTimeout(c2.quit(), 5000, "quit");
      rmSync(snapshot, { recursive: true, force: true });
    });
  }

  it("an upload over a file whose name leaves no room in a temporary name holds its digest, so a crash keeps what arrived", async () => {
    const s = await start();
    const home = s.homeOf("alice");
    const c = await login(s);
    const name = "n".repeat(240);
    const other = "m".repeat(240); // a neighbour of the same length, which must not be taken for the target
    expect((await c.store(`STOR ${name}`, Buffer.alloc(1000, "o"))).final.code).toBe(226);
    expect((await c.store(`STOR ${other}`, Buffer.alloc(300, "x"))).final.code).toBe(226);
    const d = await c.epsv();
    expect((await c.cmd(`STOR ${name}`)).code).toBe(150);
    d.write(Buffer.alloc(500, "n"));
    await until(() => tempNames(home).some((n) => statSync(path.join(home, n)).size === 500), 5000, "temporary file written");
    expect(tempNames(home)[0]).toMatch(/^\.myftp-upload-[0-9a-f]{12}#[0-9a-f]{32}$/);
    const row = (await s.users.get("alice"))!;
    expect(row.usageDirty).toBe(true);
    const snapshot = mkdtempSync(path.join(tmpdir(), "myftp-crash-"));
    cpSync(home, snapshot, { recursive: true });
    d.end();
    expect((await c.read()).code).toBe(226);
    expect(statSync(path.join(home, name)).size).toBe(500);

    // The restart over the home as the crash left it: what arrived takes the long name's place.
    const s2 = await start(snapshot);
    await s2.users.setUsage("alice", row.usedBytes, row.usageDirty);
    const c2 = await login(s2);
    expect((await c2.expect("SITE QUOTA", 200)).text).toContain(`used ${500 + 300} of`);
    expect(readFileSync(path.join(snapshot, name)).equals(Buffer.alloc(500, "n"))).toBe(true);
    expect(readFileSync(path.join(snapshot, other)).equals(Buffer.alloc(300, "x"))).toBe(true);
    expect(tempNames(snapshot)).toEqual([]);
    await withTimeout(c2.quit(), 5000, "quit");
    rmSync(snapshot, { recursive: true, force: true });
  });

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

describe("an overwrite deep down with a short name", () => {
  it("still gets a temporary file where the path has no room for the digest form", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "myftp-deep-"));
    try {
      const storage = await LocalStorage.open(root);
      // Directories of 200-byte names down to a path of about 4090 bytes, then a file of a 40-byte name.
      let dir = storage.root;
      const parts: string[] = [];
      while (Buffer.byteLength(path.join(dir, "d".repeat(200), "f".repeat(40))) < 4050) {
        dir = path.join(dir, "d".repeat(200));
        parts.push("d".repeat(200));
      }
      const pad = 4090 - Buffer.byteLength(path.join(dir, "f".repeat(40)));
      if (pad > 1) {
        dir = path.join(dir, "e".repeat(pad - 1));
        parts.push("e".repeat(pad - 1));
      }
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, "f".repeat(40)), "old");
      const vpath = `/${[...parts, "f".repeat(40)].join("/")}`;
      const t = await storage.openTemp(vpath, 0);
      await t.handle.close();
      expect(Buffer.byteLength(t.tempPath)).toBeLessThanOrEqual(4095);
      expect(path.basename(t.tempPath)).toMatch(/^\.myftp-upload-[0-9a-f]{12}$/);
      await storage.removeTemp(t.tempPath);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
