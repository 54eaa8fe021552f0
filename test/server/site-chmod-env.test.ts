// SITE CHMOD where the environment refuses the change: a home on a file system mounted read-only, a file the server's
// user does not own (a server that is not root may change only its own files' modes), and an immutable file (which
// refuses even root). Each answers 550 with a text that says why, and the mode stays as it was.
// Needs root (a tmpfs mount, a server run as nobody, chattr); each test skips itself where its set-up fails.

import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hashPassword } from "../../src/users/password.js";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { startServer, startServerProcess, tempDir, type RunningProcess, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { useTmpfs } from "../helpers/tmpfs.js";

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const fs_ = useTmpfs("1m", "chmod-readonly");

const modeOf = (p: string) => statSync(p).mode & 0o7777;

let servers: RunningServer[] = [];
let proc: RunningProcess | undefined;
let clients: RawFtp[] = [];
const dirs: string[] = [];
const immutable: string[] = [];

afterEach(async () => {
  // Before anything is removed: an immutable file cannot be.
  for (const f of immutable.splice(0)) spawnSync("chattr", ["-i", f], { timeout: 10_000 });
  for (const c of clients) c.sock.destroy();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
  await proc?.stop();
  proc = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("SITE CHMOD on a read-only file system", () => {
  it("answers 550 naming the read-only file system", async (ctx) => {
    if (!fs_.mounted) ctx.skip();
    const home = path.join(fs_.path, "alice");
    mkdirSync(home, { recursive: true });
    writeFileSync(path.join(home, "f.txt"), "f");
    chmodSync(path.join(home, "f.txt"), 0o644);
    const s = await startServer([{ name: "alice", password: "pw", home }]);
    servers.push(s);
    const c = await RawFtp.login(s.port, "alice", "pw");
    clients.push(c);
    const ro = spawnSync("mount", ["-o", "remount,ro", fs_.path], { encoding: "utf8", timeout: 10_000 });
    if (ro.status !== 0) ctx.skip();
    try {
      const r = await c.cmd("SITE CHMOD 600 f.txt");
      expect(r.code, r.all).toBe(550);
      expect(r.text).toBe("Can't change the mode of /f.txt: read-only file system");
      expect(modeOf(path.join(home, "f.txt"))).toBe(0o644);
    } finally {
      spawnSync("mount", ["-o", "remount,rw", fs_.path], { timeout: 10_000 });
    }
    await c.expect("SITE CHMOD 600 f.txt", 200);
    expect(modeOf(path.join(home, "f.txt"))).toBe(0o600);
  });
});

/** Hands everything below `p` to nobody. */
function chownAll(p: string): void {
  chownSync(p, NOBODY, NOBODY);
  if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownAll(path.join(p, e));
}

describe("SITE CHMOD of a file the server's user does not own", () => {
  it.skipIf(!asRoot)("answers 550 saying it is not the server's to change, and changes the server's own files", async () => {
    const data = tempDir("myftp-chmod-owner-");
    dirs.push(data);
    const home = path.join(data, "home", "alice");
    mkdirSync(home, { recursive: true });
    writeFileSync(path.join(home, "mine.txt"), "mine");
    const store = new SqliteUserStore(path.join(data, "users.db"));
    await store.add({ name: "alice", passwordHash: await hashPassword("secret"), home, quotaBytes: 1024 ** 2 });
    store.close();
    chownAll(data);
    // Left to root, in nobody's home.
    writeFileSync(path.join(home, "roots.txt"), "root");
    chmodSync(path.join(home, "roots.txt"), 0o644);
    chmodSync(path.join(home, "mine.txt"), 0o644);
    proc = await startServerProcess(["--log-level", "silent"], data, { uid: NOBODY });
    const c = await RawFtp.login(proc.port, "alice", "secret");
    clients.push(c);
    const r = await c.cmd("SITE CHMOD 666 roots.txt");
    expect(r.code, r.all).toBe(550);
    expect(r.text).toBe("Operation not permitted: the server's user does not own it");
    expect(modeOf(path.join(home, "roots.txt"))).toBe(0o644);
    await c.expect("SITE CHMOD 600 mine.txt", 200);
    expect(modeOf(path.join(home, "mine.txt"))).toBe(0o600);
  });
});

describe("SITE CHMOD of an immutable file", () => {
  it("answers 550 Operation not permitted", async (ctx) => {
    const s = await startServer([{ name: "alice", password: "pw" }]);
    servers.push(s);
    const f = path.join(s.homeOf("alice"), "frozen.txt");
    writeFileSync(f, "frozen");
    chmodSync(f, 0o644);
    if (spawnSync("chattr", ["+i", f], { timeout: 10_000 }).status !== 0) ctx.skip();
    immutable.push(f);
    const c = await RawFtp.login(s.port, "alice", "pw");
    clients.push(c);
    const r = await c.cmd("SITE CHMOD 600 frozen.txt");
    expect(r.code, r.all).toBe(550);
    // The server's user owns it (root, or whoever runs the tests): the file itself refuses.
    expect(r.text).toBe("Operation not permitted");
    expect(modeOf(f)).toBe(0o644);
  });
});
