// CWD into a directory the server may not search (mode 000) is refused with 550 and leaves the working directory
// as it was: accepting it would leave the session in a directory where every relative command fails.
//
// Permissions mean nothing to root, so when the tests run as root the server runs as nobody (65534) over a data
// directory handed to that user.

import { chmodSync, chownSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hashPassword } from "../../src/users/password.js";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

const NOBODY = 65534;

describe("CWD into a directory without search permission", () => {
  let proc: RunningProcess | undefined;
  let dataDir: string | undefined;
  const clients: RawFtp[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.sock.destroy();
    await proc?.stop();
    proc = undefined;
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    dataDir = undefined;
  });

  it("answers 550 and keeps the working directory", async () => {
    dataDir = tempDir("myftp-cwd-perm-");
    const home = path.join(dataDir, "home", "alice");
    mkdirSync(path.join(home, "sub", "locked"), { recursive: true });
    writeFileSync(path.join(home, "sub", "a.txt"), "a");
    const store = new SqliteUserStore(path.join(dataDir, "users.db"));
    await store.add({ name: "alice", passwordHash: await hashPassword("secret"), home, quotaBytes: 1024 ** 3 });
    store.close();
    const root = process.getuid?.() === 0;
    if (root) {
      const chownAll = (p: string) => {
        chownSync(p, NOBODY, NOBODY);
        if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownAll(path.join(p, e));
      };
      chownAll(dataDir);
    }
    chmodSync(path.join(home, "sub", "locked"), 0o000);
    proc = await startServerProcess(["--log-level", "silent"], dataDir, root ? { uid: NOBODY } : {});
    const c = await RawFtp.login(proc.port, "alice", "secret");
    clients.push(c);
    await c.expect("CWD /sub", 250);
    expect((await c.cmd("CWD locked")).code).toBe(550);
    expect((await c.cmd("PWD")).text).toContain('"/sub"');
    // Relative commands still work where the session stands.
    await c.expect("TYPE I", 200);
    expect((await c.cmd("SIZE a.txt")).code).toBe(213);
    // A searchable directory is entered as before.
    chmodSync(path.join(home, "sub", "locked"), 0o100);
    await c.expect("CWD locked", 250);
    expect((await c.cmd("PWD")).text).toContain('"/sub/locked"');
  });
});
