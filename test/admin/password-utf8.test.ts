// `myftpd user add/passwd --password-stdin` with bytes that are not UTF-8 (a Latin-1 "café"): refused with exit code
// 2. It was stored with U+FFFD in place of each such byte, a password no client could send as typed (the server
// answers a command line that is not UTF-8 with 501) and that every other such byte would also match.
import { rmSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { verifyPassword } from "../../src/users/password.js";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { MYFTPD_BIN, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { runProcess } from "../helpers/util.js";

const dirs: string[] = [];
const procs: RunningProcess[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Runs myftpd with these bytes on stdin (runProcess writes strings as UTF-8, so the bytes go through a shell). */
function withStdinBytes(hex: string, args: string[]) {
  return runProcess("sh", ["-c", `printf '${hex}\\n' | "$0" "$@"`, process.execPath, MYFTPD_BIN, ...args]);
}

describe("a password that is not UTF-8", () => {
  it("is refused by user add and user passwd; a UTF-8 one works for login", async () => {
    const data = tempDir("myftp-pwutf8-");
    dirs.push(data);
    const add = await withStdinBytes("caf\\351", ["user", "add", "alice", "--password-stdin", "--data", data]);
    expect(add.code, add.stderr).toBe(2);
    expect(add.stderr).toMatch(/not UTF-8/);

    const ok = await withStdinBytes("caf\\303\\251", ["user", "add", "alice", "--password-stdin", "--data", data]);
    expect(ok.code, ok.stderr).toBe(0);
    const passwd = await withStdinBytes("x\\377y", ["user", "passwd", "alice", "--password-stdin", "--data", data]);
    expect(passwd.code, passwd.stderr).toBe(2);
    const store = new SqliteUserStore(path.join(data, "users.db"));
    try {
      expect(await verifyPassword((await store.get("alice"))!.passwordHash, "café")).toBe(true);
    } finally {
      store.close();
    }
    const p = await startServerProcess(["--log-level", "silent"], data);
    procs.push(p);
    const c = await RawFtp.login(p.port, "alice", "café");
    await c.close();
  });
});
