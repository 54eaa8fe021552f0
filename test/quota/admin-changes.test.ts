// What an admin changes with `myftpd user` while the server runs reaches the sessions already logged in: a lower
// quota holds at once; a deleted user, or one given another home, is disconnected with 421 and the counter of the
// old home never writes over the new home's figure; a rescan during an upload keeps the figure marked dirty, so a
// crash before the upload ends still makes the next login count the home.
import { mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { QuotaLedger } from "../../src/core/quota.js";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { runMyftpd as myftpd, startServer, startServerProcess, tempDir, type RunningProcess, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { until } from "../helpers/util.js";

const dirs: string[] = [];
const procs: RunningProcess[] = [];
const clients: RawFtp[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.sock.destroy();
  for (const p of procs.splice(0)) await p.stop("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function serverWith(users: { name: string; home: string; quota: string }[]): Promise<{ data: string; proc: RunningProcess }> {
  const data = tempDir("myftp-admin-changes-");
  dirs.push(data);
  for (const u of users) {
    const r = await myftpd(["user", "add", u.name, "--password-stdin", "--home", u.home, "--quota", u.quota, "--data", data], "secret\n");
    expect(r.code, r.stderr).toBe(0);
  }
  const proc = await startServerProcess(["--log-level", "silent"], data);
  procs.push(proc);
  return { data, proc };
}

async function login(proc: RunningProcess, name: string): Promise<RawFtp> {
  const c = await RawFtp.login(proc.port, name, "secret", { type: "I" });
  clients.push(c);
  return c;
}

async function quota(c: RawFtp): Promise<{ used: number; limit: number }> {
  const m = /used (\d+) of (\d+) bytes/.exec((await c.expect("SITE QUOTA", 200)).text)!;
  return { used: Number(m[1]), limit: Number(m[2]) };
}

function bytesIn(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
}

async function storedUsage(data: string, name: string): Promise<{ usedBytes: number | null; usageDirty: boolean }> {
  const store = new SqliteUserStore(path.join(data, "users.db"), { readonly: true });
  try {
    const u = (await store.get(name))!;
    return { usedBytes: u.usedBytes, usageDirty: u.usageDirty };
  } finally {
    store.close();
  }
}

describe("admin changes while sessions are logged in", () => {
  it("a lower quota holds for the open session at once", async () => {
    const base = tempDir("myftp-admin-home-");
    dirs.push(base);
    const { data, proc } = await serverWith([{ name: "alice", home: path.join(base, "alice"), quota: "10MB" }]);
    const c = await login(proc, "alice");
    expect((await c.store("STOR a.bin", Buffer.alloc(4_000_000, 1))).final.code).toBe(226);
    expect((await myftpd(["user", "set", "alice", "--quota", "2MB", "--data", data])).code).toBe(0);
    await until(async () => (await quota(c)).limit === 2_000_000, 10_000, "the session sees the new quota");
    expect((await c.store("STOR b.bin", Buffer.alloc(1_000_000, 2))).final.code).toBe(552);
    expect((await quota(c)).used).toBe(bytesIn(path.join(base, "alice")));
    // Deleting frees as before; under the new limit a small upload fits again.
    await c.expect("DELE a.bin", 250);
    expect((await c.store("STOR b.bin", Buffer.alloc(1_000_000, 2))).final.code).toBe(226);
  });

  it("a deleted user's sessions are closed with 421, and the user cannot log in again", async () => {
    const base = tempDir("myftp-admin-home-");
    dirs.push(base);
    const { data, proc } = await serverWith([{ name: "bob", home: path.join(base, "bob"), quota: "10MB" }]);
    const c = await login(proc, "bob");
    expect((await myftpd(["user", "del", "bob", "--data", data])).code).toBe(0);
    const r = await c.read(10_000);
    expect(r.code).toBe(421);
    const again = await RawFtp.connect(proc.port);
    clients.push(again);
    await again.expect("USER bob", 331);
    expect((await again.cmd("PASS secret")).code).toBe(530);
  });

  it("a user given another home is disconnected from the old one, and the new home is counted on its own", async () => {
    const base = tempDir("myftp-admin-home-");
    dirs.push(base);
    const oldHome = path.join(base, "old");
    const newHome = path.join(base, "new");
    mkdirSync(newHome);
    writeFileSync(path.join(newHome, "eight.bin"), Buffer.alloc(8_000_000, 8));
    const { data, proc } = await serverWith([{ name: "alice", home: oldHome, quota: "10MB" }]);
    const c = await login(proc, "alice");
    expect((await c.store("STOR six.bin", Buffer.alloc(6_000_000, 6))).final.code).toBe(226);
    const set = await myftpd(["user", "set", "alice", "--home", newHome, "--data", data]);
    expect(set.code, set.stderr).toBe(0);
    expect((await c.read(10_000)).code).toBe(421);
    const d = await login(proc, "alice");
    expect(await quota(d)).toEqual({ used: 8_000_000, limit: 10_000_000 });
    expect((await d.store("STOR nine.bin", Buffer.alloc(9_000_000, 9))).final.code).toBe(552);
    expect(bytesIn(newHome)).toBe(8_000_000);
    await d.quit();
    // The figure stored for alice is the new home's, whatever the old home's counter did when its session ended.
    await until(async () => (await storedUsage(data, "alice")).usedBytes === 8_000_000, 10_000, "stored figure of the new home");
    expect(await procs[0]!.stop("SIGTERM")).toBe(0);
    procs.length = 0;
    expect((await storedUsage(data, "alice")).usedBytes).toBe(8_000_000);
  });

  it("a rescan while an upload runs keeps the figure marked dirty until the upload ends", async () => {
    const base = tempDir("myftp-admin-home-");
    dirs.push(base);
    const { data, proc } = await serverWith([{ name: "alice", home: path.join(base, "alice"), quota: "100MB" }]);
    const c = await login(proc, "alice");
    const dc = await c.epsv();
    expect((await c.cmd("STOR up.bin")).code).toBe(150);
    dc.write(Buffer.alloc(1_000_000, 7));
    await until(async () => (await storedUsage(data, "alice")).usageDirty, 10_000, "the running upload marks the figure dirty");
    const r = await myftpd(["user", "rescan", "alice", "--data", data]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/counts again at the next login/);
    expect((await storedUsage(data, "alice")).usageDirty).toBe(true);
    const list = await myftpd(["user", "list", "--data", data]);
    expect(list.stdout).toMatch(/^alice .*\*/m);
    expect(list.stdout).toMatch(/counts the home again at the next login/);
    await new Promise<void>((resolve) => dc.end(resolve));
    expect((await c.read(10_000)).code).toBe(226);
    await until(
      async () => {
        const u = await storedUsage(data, "alice");
        return !u.usageDirty && u.usedBytes === 1_000_000;
      },
      10_000,
      "clean figure after the upload",
    );
  });
});

describe("one live usage counter per home", () => {
  let rs: RunningServer | null = null;
  afterEach(async () => {
    await rs?.close();
    rs = null;
  });
  /** The server's look at the store, now (its timer is set far off in these tests). */
  const sync = () => (rs!.server as unknown as { syncAccounts(): Promise<void> }).syncAccounts();
  const sessionOf = async (name: string) => {
    const c = await RawFtp.login(rs!.port, name, "secret", { type: "I" });
    clients.push(c);
    return c;
  };

  it("a rename tells the user's counter that the tree moved, so a count of the home across it is not used", async () => {
    rs = await startServer([{ name: "alice", password: "secret", quota: 10_000_000 }], { accountSyncMs: 3_600_000 });
    const c = await sessionOf("alice");
    expect((await c.store("STOR a.bin", "abc")).final.code).toBe(226);
    const noted = vi.spyOn(QuotaLedger.prototype, "noteChange");
    try {
      await c.expect("RNFR a.bin", 350);
      await c.expect("RNTO b.bin", 250);
      expect(noted).toHaveBeenCalledTimes(1);
    } finally {
      noted.mockRestore();
    }
  });

  it("a login to the new home before the server's look at the store keeps the one counter of that home", async () => {
    rs = await startServer([{ name: "alice", password: "secret", quota: 10_000_000 }], { accountSyncMs: 3_600_000 });
    const old = await sessionOf("alice");
    const newHome = path.join(rs.dataDir, "newhome");
    mkdirSync(newHome);
    // The admin's change, through another connection to the store (as `myftpd user set --home` makes it).
    const admin = new SqliteUserStore(path.join(rs.dataDir, "users.db"));
    await admin.update("alice", { home: newHome });
    admin.close();
    const early = await sessionOf("alice");
    await sync();
    expect((await old.read(5_000)).code).toBe(421);
    const later = await sessionOf("alice");
    const a = await early.store("STOR a.bin", Buffer.alloc(6_000_000, 1));
    const b = await later.store("STOR b.bin", Buffer.alloc(6_000_000, 2));
    expect([a.final.code, b.final.code].sort()).toEqual([226, 552]);
    expect(bytesIn(newHome)).toBe(6_000_000);
  });

  it("a new home that does not resolve yet (its volume not mounted) still disconnects the old home's sessions", async () => {
    rs = await startServer([{ name: "alice", password: "secret", quota: 10_000_000 }], { accountSyncMs: 3_600_000 });
    const old = await sessionOf("alice");
    expect((await old.store("STOR six.bin", Buffer.alloc(6_000_000, 6))).final.code).toBe(226);
    const newHome = path.join(rs.dataDir, "vol", "newhome");
    const admin = new SqliteUserStore(path.join(rs.dataDir, "users.db"));
    await admin.update("alice", { home: newHome });
    admin.close();
    await sync();
    expect((await old.read(5_000)).code).toBe(421);
    mkdirSync(newHome, { recursive: true });
    const fresh = await sessionOf("alice");
    expect(await quota(fresh)).toEqual({ used: 0, limit: 10_000_000 });
  });

  it("a home changed to another path of the same directory keeps its sessions and its one counter", async () => {
    rs = await startServer([{ name: "alice", password: "secret", quota: 10_000_000 }], { accountSyncMs: 3_600_000 });
    const first = await sessionOf("alice");
    const link = path.join(rs.dataDir, "homes-link");
    symlinkSync(path.join(rs.dataDir, "home"), link);
    const admin = new SqliteUserStore(path.join(rs.dataDir, "users.db"));
    await admin.update("alice", { home: path.join(link, "alice") });
    admin.close();
    await sync();
    expect(await first.silentFor(300)).toBe(true);
    const second = await sessionOf("alice");
    const a = await first.store("STOR a.bin", Buffer.alloc(6_000_000, 1));
    const b = await second.store("STOR b.bin", Buffer.alloc(6_000_000, 2));
    expect([a.final.code, b.final.code].sort()).toEqual([226, 552]);
  });
});
