// Replies when the environment fails rather than the request: a home on a file system mounted read-only answers
// 550 "Read-only file system" (a permanent condition, not RFC 959's transient 451 "local error"), and a server out of
// file descriptors answers 451 saying so, keeps serving the sessions it has, and works again once sessions close.
// The live tests need root (a tmpfs mount, prlimit on the server's process) and skip themselves where that fails.

import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { errorReply } from "../../src/core/errors.js";
import { runMyftpd, startServer, startServerProcess, tempDir, type RunningProcess, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { useTmpfs } from "../helpers/tmpfs.js";
import { diskBytes } from "../helpers/util.js";

const errno = (code: string) => Object.assign(new Error(`${code}: failed`), { code });

describe("errno to reply", () => {
  it("names a read-only file system and a shortage of file descriptors", () => {
    expect(errorReply(errno("EROFS"))).toEqual({ code: 550, text: "Read-only file system" });
    expect(errorReply(errno("EMFILE"))).toEqual({ code: 451, text: "Server out of file handles; try again later" });
    expect(errorReply(errno("ENFILE"))).toEqual({ code: 451, text: "Server out of file handles; try again later" });
  });
});

const fs_ = useTmpfs("1m", "readonly");
const mountPoint = fs_.path;

let servers: RunningServer[] = [];
let procs: RunningProcess[] = [];
let clients: RawFtp[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of clients) c.sock.destroy();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
  for (const p of procs) await p.stop("SIGKILL");
  procs = [];
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("a home on a read-only file system", () => {
  it("answers 550 Read-only file system, and the usage stays that of the disk", async (ctx) => {
    if (!fs_.mounted) ctx.skip();
    const home = path.join(mountPoint, "alice");
    mkdirSync(home, { recursive: true });
    const s = await startServer([{ name: "alice", password: "pw", home }], { transferProcesses: 0 });
    servers.push(s);
    const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    clients.push(c);
    expect((await c.store("STOR keep.bin", "x".repeat(1000))).final.code).toBe(226);
    const ro = spawnSync("mount", ["-o", "remount,ro", mountPoint], { encoding: "utf8", timeout: 10_000 });
    if (ro.status !== 0) ctx.skip();
    try {
      for (const cmd of ["STOR new.bin", "APPE keep.bin"]) {
        const r = await c.store(cmd, "y".repeat(100));
        expect(r.final.code, cmd).toBe(550);
        expect(r.final.text, cmd).toBe("Read-only file system");
      }
      expect((await c.cmd("DELE keep.bin")).code).toBe(550);
      expect((await c.cmd("MKD d")).text).toBe("Read-only file system");
      expect(await c.usedBytes()).toBe(diskBytes(home));
    } finally {
      spawnSync("mount", ["-o", "remount,rw", mountPoint], { timeout: 10_000 });
    }
    expect((await c.store("STOR new.bin", "y".repeat(100))).final.code).toBe(226);
  });
});

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

describe("a server out of file descriptors", () => {
  it("answers 451 saying so, keeps its sessions, and recovers when sessions close", { timeout: 60_000 }, async (ctx) => {
    if (process.platform !== "linux" || process.getuid?.() !== 0) ctx.skip();
    const data = tempDir("myftp-fds-");
    dirs.push(data);
    const add = await runMyftpd(["user", "add", "alice", "--password-stdin", "--quota", "1MiB", "--data", data], "pw\n");
    expect(add.code, add.stderr).toBe(0);
    const p = await startServerProcess(
      // A data connection the server has no descriptor to accept is closed by it unseen: the RETR that waits for it
      // gives up after the data timeout (425), kept short here.
      ["--log-level", "silent", "--transfer-processes", "0", "--max-sessions-per-user", "100", "--max-connections-per-ip", "100", "--pasv-range", "0-0", "--data-timeout", "1"],
      data,
    );
    procs.push(p);
    const pid = p.child.pid!;
    const first = await RawFtp.login(p.port, "alice", "pw", { type: "I" });
    clients.push(first);
    expect((await first.store("STOR a.bin", "a".repeat(5000))).final.code).toBe(226);
    // Room for a few more sessions, then none.
    const limit = openFds(pid) + 6;
    const pl = spawnSync("prlimit", ["--pid", String(pid), `--nofile=${limit}:${limit}`], { encoding: "utf8", timeout: 10_000 });
    if (pl.status !== 0) ctx.skip();
    const extra: RawFtp[] = [];
    for (let i = 0; i < 20 && openFds(pid) < limit; i++) {
      try {
        const c = await RawFtp.login(p.port, "alice", "pw", { type: "I" });
        extra.push(c);
        clients.push(c);
      } catch {
        break; // the server could not take the connection (libuv closes what it cannot accept)
      }
    }
    expect(openFds(pid)).toBe(limit);
    // No descriptor left for the file: a clear, transient refusal, and the session goes on.
    let refused = false;
    for (let i = 0; i < 10 && !refused; i++) {
      const r = await first.retrieve("RETR a.bin");
      if (r.final.code === 226) continue; // a descriptor was free for a moment
      if (r.final.code === 425) continue; // the file opened, but the data connection could not be accepted
      expect(r.final.code).toBe(451);
      expect(r.final.text).toBe("Server out of file handles; try again later");
      refused = true;
    }
    expect(refused).toBe(true);
    await first.expect("NOOP", 200);
    expect(await first.usedBytes()).toBe(diskBytes(path.join(data, "home", "alice")));
    // Sessions closing free descriptors: the same session works again.
    for (const c of extra) await c.quit();
    const r = await first.retrieve("RETR a.bin");
    expect(r.final.code).toBe(226);
    expect(r.data.length).toBe(5000);
    expect((await first.store("APPE a.bin", "b".repeat(100))).final.code).toBe(226);
  });
});
