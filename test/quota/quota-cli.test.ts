// Issue 3, quota through the real `myftpd` process: a crash mid-upload (SIGKILL) followed by a restart must find
// the usage dirty and recount it; `myftpd user list` shows used/quota; `myftpd user rescan NAME|--all` fixes drift.
// Needs `npm run build` (the CLI runs from dist/).

import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { runMyftpd as myftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { diskBytes, until } from "../helpers/util.js";

const KiB = 1024;
const MiB = 1024 * 1024;

let procs: RunningProcess[] = [];
let clients: RawFtp[] = [];
let dirs: string[] = [];

afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const p of procs) await p.stop("SIGKILL");
  procs = [];
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

async function addUser(data: string, name: string, quota: string): Promise<string> {
  const r = await myftpd(["user", "add", name, "--quota", quota, "--password-stdin", "--data", data], "pw\n");
  expect(r.code, r.stderr).toBe(0);
  return path.join(data, "home", name);
}

async function serve(data: string): Promise<RunningProcess> {
  const p = await startServerProcess(["--log-level", "silent", "--hash-workers", "1", "--pasv-range", "0-0"], data);
  procs.push(p);
  return p;
}

async function login(port: number, name = "alice"): Promise<RawFtp> {
  const c = await RawFtp.login(port, name, "pw", { type: "I" });
  clients.push(c);
  return c;
}


function readRecord(data: string, name: string) {
  const store = new SqliteUserStore(path.join(data, "users.db"));
  try {
    return store.get(name);
  } finally {
    store.close();
  }
}

interface ListedUser {
  name: string;
  usedBytes: number | null;
  quotaBytes: number | null;
}

async function listJson(data: string): Promise<ListedUser[]> {
  const r = await myftpd(["user", "list", "--json", "--data", data]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ListedUser[];
}

describe("quota across a crash", () => {
  it("SIGKILL mid-upload leaves the usage marked dirty; the restart recounts it to match the disk", async () => {
    const data = tempDir();
    dirs.push(data);
    const home = await addUser(data, "alice", "1MiB");
    const p1 = await serve(data);
    const c = await login(p1.port);
    expect((await c.store("STOR done.bin", randomBytes(200 * KiB))).final.code).toBe(226);

    const d = await c.epsv();
    expect((await c.cmd("STOR cut.bin")).code).toBe(150);
    d.write(randomBytes(300 * KiB));
    const cut = path.join(home, "cut.bin");
    await until(() => existsSync(cut) && statSync(cut).size >= 300 * KiB, 5000, "partial upload on disk");
    // While the upload runs the stored figure is flagged as untrustworthy.
    await until(async () => (await readRecord(data, "alice"))!.usageDirty, 5000, "usage marked dirty");

    expect(await p1.stop("SIGKILL")).toBe(null);
    d.destroy();
    await c.close();
    const afterCrash = (await readRecord(data, "alice"))!;
    expect(afterCrash.usageDirty).toBe(true);
    const disk = diskBytes(home);
    expect(disk).toBeGreaterThanOrEqual(500 * KiB);
    // The figure stored before the crash does not know about the partial upload.
    expect(afterCrash.usedBytes).not.toBe(disk);

    const p2 = await serve(data);
    const c2 = await login(p2.port);
    expect(await c2.usedBytes()).toBe(disk);
    expect((await c2.expect("AVBL", 213)).text).toBe(String(MiB - disk));
    const listed = (await listJson(data)).find((u) => u.name === "alice")!;
    expect(listed).toMatchObject({ usedBytes: disk, quotaBytes: MiB });
    expect((await readRecord(data, "alice"))!.usageDirty).toBe(false);
    // The partial file can be resumed and the counter follows it.
    const have = statSync(cut).size;
    await c2.expect(`REST ${have}`, 350);
    expect((await c2.store("STOR cut.bin", randomBytes(10 * KiB))).final.code).toBe(226);
    expect(await c2.usedBytes()).toBe(disk + 10 * KiB);
    expect(diskBytes(home)).toBe(disk + 10 * KiB);
  });

  it("SIGTERM during an upload shuts down cleanly and the next start trusts the stored figure", async () => {
    const data = tempDir();
    dirs.push(data);
    const home = await addUser(data, "alice", "1MiB");
    const p1 = await serve(data);
    const c = await login(p1.port);
    const d = await c.epsv();
    expect((await c.cmd("STOR part.bin")).code).toBe(150);
    d.write(randomBytes(100 * KiB));
    const part = path.join(home, "part.bin");
    await until(() => existsSync(part) && statSync(part).size >= 100 * KiB, 5000, "partial upload on disk");
    expect(await p1.stop("SIGTERM")).toBe(0);
    d.destroy();
    const rec = (await readRecord(data, "alice"))!;
    expect(rec.usageDirty).toBe(false);
    expect(rec.usedBytes).toBe(diskBytes(home));
  });
});

describe("myftpd user list and rescan", () => {
  it("user list shows used and quota; rescan NAME and --all fix drift made behind the server's back", async () => {
    const data = tempDir();
    dirs.push(data);
    const homeA = await addUser(data, "alice", "1MiB");
    const homeB = await addUser(data, "bob", "unlimited");
    const p = await serve(data);
    const a = await login(p.port, "alice");
    expect((await a.store("STOR a.bin", randomBytes(100_000))).final.code).toBe(226);
    const b = await login(p.port, "bob");
    expect((await b.store("STOR b.bin", randomBytes(2000))).final.code).toBe(226);
    await a.quit();
    await b.quit();
    await until(async () => (await readRecord(data, "alice"))!.usedBytes === 100_000, 5000, "alice persisted");
    await until(async () => (await readRecord(data, "bob"))!.usedBytes === 2000, 5000, "bob persisted");

    const text = await myftpd(["user", "list", "--data", data]);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/NAME\s+HOME\s+USED\s+QUOTA/);
    expect(lines.find((l) => l.startsWith("alice"))).toMatch(/97\.7 KiB\s+1\.00 MiB$/);
    expect(lines.find((l) => l.startsWith("bob"))).toMatch(/1\.95 KiB\s+unlimited$/);

    // Drift: files written straight into the homes while nobody is logged in.
    mkdirSync(path.join(homeA, "deep/er"), { recursive: true });
    writeFileSync(path.join(homeA, "deep/er/x.bin"), Buffer.alloc(50_000));
    writeFileSync(path.join(homeB, "y.bin"), Buffer.alloc(7000));
    expect((await listJson(data)).find((u) => u.name === "alice")!.usedBytes).toBe(100_000);

    const one = await myftpd(["user", "rescan", "alice", "--data", data]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/alice: 150000 bytes .*was 100000 bytes/);
    let listed = await listJson(data);
    expect(listed.find((u) => u.name === "alice")!.usedBytes).toBe(150_000);
    expect(listed.find((u) => u.name === "bob")!.usedBytes).toBe(2000);
    // The running server picks the fixed figure up at the next login.
    const a2 = await login(p.port, "alice");
    expect(await a2.usedBytes()).toBe(150_000);
    expect((await a2.expect("AVBL", 213)).text).toBe(String(MiB - 150_000));
    await a2.quit();

    const all = await myftpd(["user", "rescan", "--all", "--data", data]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/bob: 9000 bytes/);
    listed = await listJson(data);
    expect(listed.find((u) => u.name === "bob")!.usedBytes).toBe(9000);
    expect(listed.find((u) => u.name === "alice")!.usedBytes).toBe(diskBytes(homeA));
    const b2 = await login(p.port, "bob");
    expect(await b2.usedBytes()).toBe(9000);

    // Refusals exit 2 and change nothing.
    expect((await myftpd(["user", "rescan", "--data", data])).code).toBe(2);
    expect((await myftpd(["user", "rescan", "nobody", "--data", data])).code).toBe(2);
    expect((await myftpd(["user", "rescan", "alice", "--all", "--data", data])).code).toBe(2);
  });

  it("rescan names a directory it cannot read (a path past the system's limit), exits 1 and counts the rest", async () => {
    const data = tempDir();
    dirs.push(data);
    const home = await addUser(data, "alice", "1MiB");
    writeFileSync(path.join(home, "seen.bin"), Buffer.alloc(3000));
    // A tree whose deepest directory is past PATH_MAX, made behind the server's back: renaming its top directory
    // takes two short paths, so the kernel allows it.
    let rel = "top";
    while (home.length + rel.length + 1 + 200 < 4095 - 20) rel += "/" + "n".repeat(200);
    mkdirSync(path.join(home, rel), { recursive: true });
    writeFileSync(path.join(home, rel, "hidden.bin"), Buffer.alloc(5000));
    renameSync(path.join(home, "top"), path.join(home, "T".repeat(255)));
    // A second tree whose deepest directory stays within the limit, but not the file in it: the directory can be
    // read, the file cannot be reached.
    let rel2 = "top2";
    while (home.length + 1 + rel2.length + 201 < 3840) rel2 += "/" + "m".repeat(200);
    rel2 += "/" + "m".repeat(3840 - (home.length + 1 + rel2.length) - 1);
    mkdirSync(path.join(home, rel2), { recursive: true });
    expect(path.join(home, rel2).length).toBe(3840);
    writeFileSync(path.join(home, rel2, "hidden2.bin"), Buffer.alloc(7000));
    renameSync(path.join(home, "top2"), path.join(home, "U".repeat(255)));

    const r = await myftpd(["user", "rescan", "alice", "--data", data]);
    expect(r.code).toBe(1);
    const warnings = r.stderr.trim().split("\n");
    expect(warnings).toHaveLength(2);
    for (const w of warnings) expect(w).toMatch(/^myftpd: warning: alice: cannot read .* \(ENAMETOOLONG\); the files below it are not counted$/);
    expect(r.stdout).toMatch(/alice: 3000 bytes/);
    // Put back within the limit, everything is counted again and the rescan is clean.
    renameSync(path.join(home, "T".repeat(255)), path.join(home, "top"));
    renameSync(path.join(home, "U".repeat(255)), path.join(home, "top2"));
    const again = await myftpd(["user", "rescan", "alice", "--data", data]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toBe("");
    expect(again.stdout).toMatch(/alice: 15000 bytes/);
  });

  it("a rescan while the user is logged in reaches the live sessions and is not overwritten by them", async () => {
    const data = tempDir();
    dirs.push(data);
    const home = await addUser(data, "alice", "1MiB");
    const p = await serve(data);
    const a = await login(p.port);
    const b = await login(p.port);
    expect((await a.store("STOR a.bin", randomBytes(100 * KiB))).final.code).toBe(226);
    writeFileSync(path.join(home, "drift.bin"), Buffer.alloc(600 * KiB));
    expect(await a.usedBytes()).toBe(100 * KiB);

    const r = await myftpd(["user", "rescan", "alice", "--data", data]);
    expect(r.code, r.stderr).toBe(0);
    // Both live sessions see the recount, and the quota is enforced with it.
    expect(await a.usedBytes()).toBe(700 * KiB);
    expect((await b.expect("AVBL", 213)).text).toBe(String(MiB - 700 * KiB));
    expect((await b.store("STOR big.bin", randomBytes(400 * KiB))).final.code).toBe(552);
    expect((await a.store("STOR small.bin", randomBytes(200 * KiB))).final.code).toBe(226);
    await a.quit();
    await b.quit();
    await until(async () => (await listJson(data))[0]!.usedBytes === 900 * KiB, 5000, "stored figure includes the recount");
    expect(diskBytes(home)).toBe(900 * KiB);
    const c = await login(p.port);
    expect(await c.usedBytes()).toBe(900 * KiB);
  });
});
