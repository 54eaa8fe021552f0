// Review of the transfer processes (8051ed2, 5cf3be0): cases where a transfer handed to a transfer process behaves
// differently from the same transfer run in the server (transferProcesses: 0), or never ends.

import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { hashPassword } from "../../src/users/password.js";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { MYFTPD_BIN, startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { loginBinary, RawFtp } from "../helpers/raw-ftp.js";

// fork() as the server calls it, except that while `failSpawn` is set the spawn itself fails the way it does when the
// system is out of processes or memory (EAGAIN, ENOMEM...) or the binary is missing: Node reports those
// asynchronously, with an 'error' event and no 'exit' (the same path as the ENOENT used here).
const ctl = vi.hoisted(() => ({ failSpawn: false }));
vi.mock("node:child_process", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:child_process")>();
  return {
    ...real,
    fork: ((modulePath: string, args: string[], options: Record<string, unknown>) =>
      real.fork(modulePath, args, ctl.failSpawn ? { ...options, execPath: "/nonexistent/node" } : options)) as typeof real.fork,
  };
});

const MiB = 1024 * 1024;

describe("transfer processes (review)", () => {
  let srv: RunningServer | null = null;
  const clients: RawFtp[] = [];

  afterEach(async () => {
    ctl.failSpawn = false;
    for (const c of clients.splice(0)) c.sock.destroy();
    await srv?.close();
    srv = null;
  });

  const login = (s: RunningServer) => loginBinary(s.port, clients);

  // upload.ts passes `accounted` (= the old file size) as the first grant, so the transfer process writes anything
  // below the old size without asking, and the RANG end check in beforeWrite never runs for those bytes.
  it.each([0, 1])("RANG+STOR into an existing file never writes past the range (transferProcesses %i)", async (n) => {
    srv = await startServer([{ name: "alice", password: "secret" }], { transferProcesses: n });
    const c = await login(srv);
    const file = path.join(srv.homeOf("alice"), "r.bin");
    const old = Buffer.alloc(MiB, 0x41);
    writeFileSync(file, old);
    await c.expect("RANG 0 9", 350);
    const put = await c.store("STOR r.bin", Buffer.alloc(100 * 1024, 0x42), { timeoutMs: 10_000 });
    expect(put.final.code).toBe(501);
    const now = readFileSync(file);
    expect(now.length).toBe(MiB);
    // Bytes 10 and on are outside the range: they must still be the old ones.
    expect(now.subarray(10).equals(old.subarray(10))).toBe(true);
  });

  // TransferChild settles `ready` only on a probe reply or 'exit'. A spawn that fails asynchronously emits 'error'
  // (swallowed) and 'close'/'disconnect', never 'exit', so `ready` never settles, start() never returns, and the
  // transfer waits in acquire() forever (after its 150); `starting` stays set, so every later transfer that needs a
  // new transfer process waits on it too. The stall watchdog cannot help: it aborts a signal nobody is waiting on.
  it("a transfer process that cannot be spawned: the transfer runs in the server and ends", async () => {
    srv = await startServer([{ name: "alice", password: "secret" }], { transferProcesses: 1, idleTimeoutMs: 2000, dataTimeoutMs: 2000 });
    const c = await login(srv);
    ctl.failSpawn = true;
    const body = randomBytes(2 * MiB);
    const put = await c.store("STOR s.bin", body, { timeoutMs: 8000 }).catch((err: Error) => err);
    expect(put).not.toBeInstanceOf(Error);
    expect((put as { final: { code: number } }).final.code).toBe(226);
    expect(readFileSync(path.join(srv.homeOf("alice"), "s.bin")).equals(body)).toBe(true);
  });
});

// The transfer process reopens the server's descriptor through /proc/PPID/fd/N, which is a new open() with a new
// permission check on the inode, not a dup of the server's descriptor. openTemp creates the temporary file of a
// fresh STOR over an existing file with the old file's mode (O_CREAT: the server's descriptor is writable whatever
// the mode), so over a read-only file the server process can write the temp file but the transfer process cannot
// reopen it: 150 then 550 "Permission denied", where the same STOR in the server gives 226. (Same for new files under
// a umask that takes the owner's write bit.) Root bypasses the check, so the server runs as nobody here.
describe("transfer processes as a non-root server (review)", () => {
  const dirs: string[] = [];
  const procs: import("node:child_process").ChildProcess[] = [];
  const clients: RawFtp[] = [];

  afterEach(() => {
    for (const c of clients.splice(0)) c.sock.destroy();
    for (const p of procs.splice(0)) p.kill("SIGKILL");
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function serveAsNobody(transferProcesses: number): Promise<{ port: number; home: string }> {
    const { spawn } = await import("node:child_process");
    const dataDir = tempDir("myftp-review-nobody-");
    dirs.push(dataDir);
    const home = path.join(dataDir, "home", "alice");
    mkdirSync(home, { recursive: true });
    const store = new SqliteUserStore(path.join(dataDir, "users.db"));
    await store.add({ name: "alice", passwordHash: await hashPassword("secret"), home, quotaBytes: 1024 ** 3 });
    store.close();
    const root = process.getuid?.() === 0;
    const uid = root ? 65534 : undefined;
    if (root) {
      const chownAll = (p: string) => {
        chownSync(p, 65534, 65534);
        if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownAll(path.join(p, e));
      };
      chownAll(dataDir);
    }
    const args = [MYFTPD_BIN, "serve", "--data", dataDir, "--host", "127.0.0.1", "--port", "0", "--log-level", "silent"];
    const child = spawn(process.execPath, [...args, "--transfer-processes", String(transferProcesses)], {
      stdio: ["ignore", "pipe", "pipe"],
      ...(uid !== undefined ? { uid, gid: uid } : {}),
    });
    procs.push(child);
    let out = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`myftpd did not start:\n${out}`)), 15_000);
      child.stderr!.on("data", () => {
        const m = /ftp:\/\/[^\s/]+:(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`myftpd exited with ${code}:\n${out}`));
      });
    });
    return { port, home };
  }

  it.each([0, 1])("a fresh STOR over a read-only file gives the same reply either way (transferProcesses %i)", async (n) => {
    const { port, home } = await serveAsNobody(n);
    const c = await RawFtp.login(port, "alice", "secret");
    clients.push(c);
    await c.expect("TYPE I", 200);
    const file = path.join(home, "ro.bin");
    writeFileSync(file, "old");
    if (process.getuid?.() === 0) chownSync(file, 65534, 65534);
    chmodSync(file, 0o444);
    const body = randomBytes(MiB);
    const put = await c.store("STOR ro.bin", body, { timeoutMs: 10_000 });
    // Either way a file the server may not write is not replaced (though its directory would allow the rename).
    expect(put.final.code).toBe(550);
    expect(readFileSync(file, "utf8")).toBe("old");
    expect(readdirSync(home)).toEqual(["ro.bin"]);
  });
});
