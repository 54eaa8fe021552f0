// MLSD and MLST perm facts (RFC 3659 §7.5.5) say what the server's own user may do with each entry, from the
// mode bits, owner and group, and from whether the entry's directory takes new and removed names.
//
// Permissions mean nothing to root, so the server runs as nobody (65534) over a data directory handed to that user,
// with a few entries left to root. Making files another user owns needs root: elsewhere the test is skipped.

import { chmodSync, chownSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hashPassword } from "../../src/users/password.js";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;

describe("perm facts", () => {
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

  it.skipIf(!asRoot)("follow the mode bits and owners as the server's user sees them", async () => {
    dataDir = tempDir("myftp-perm-facts-");
    const home = path.join(dataDir, "home", "alice");
    mkdirSync(path.join(home, "sub"), { recursive: true });
    writeFileSync(path.join(home, "own.txt"), "own");
    writeFileSync(path.join(home, "ro.txt"), "ro");
    const store = new SqliteUserStore(path.join(dataDir, "users.db"));
    await store.add({ name: "alice", passwordHash: await hashPassword("secret"), home, quotaBytes: 1024 ** 3 });
    store.close();
    const chownAll = (p: string) => {
      chownSync(p, NOBODY, NOBODY);
      if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownAll(path.join(p, e));
    };
    chownAll(dataDir);
    chmodSync(path.join(home, "ro.txt"), 0o444);
    // Left to root: a file nobody may only read, a directory nobody may list but not change, and its file.
    writeFileSync(path.join(home, "rootfile.txt"), "root");
    mkdirSync(path.join(home, "rootdir"), { mode: 0o755 });
    writeFileSync(path.join(home, "rootdir", "inner.txt"), "inner");
    mkdirSync(path.join(home, "closed"), { mode: 0o700 });

    proc = await startServerProcess(["--log-level", "silent"], dataDir, { uid: NOBODY });
    const c = await RawFtp.login(proc.port, "alice", "secret", { type: "I" });
    clients.push(c);
    const facts = async (dir: string) => {
      const r = await c.retrieve(`MLSD ${dir}`);
      expect(r.final.code).toBe(226);
      const byName = new Map<string, string>();
      for (const line of r.data.toString("utf8").split("\r\n").filter(Boolean)) {
        byName.set(line.slice(line.indexOf("; ") + 2), /perm=([a-z]*);/.exec(line)![1]!);
      }
      return byName;
    };
    const top = await facts("/");
    expect(top.get("own.txt")).toBe("adfrw");
    expect(top.get("ro.txt")).toBe("dfr");
    expect(top.get("rootfile.txt")).toBe("dfr");
    expect(top.get("sub")).toBe("flcdmpe");
    expect(top.get("rootdir")).toBe("flde");
    expect(top.get("closed")).toBe("fd");
    expect((await facts("/rootdir")).get("inner.txt")).toBe("r");
    const mlst = async (p: string) => /perm=([a-z]*);/.exec((await c.expect(`MLST ${p}`, 250)).lines[1]!)![1];
    expect(await mlst("/rootdir/inner.txt")).toBe("r");
    expect(await mlst("/own.txt")).toBe("adfrw");
    // The home itself is never renamed or removed.
    expect(await mlst("/")).toBe("lcmpe");
    // The facts say what the server then does.
    expect((await c.cmd("DELE rootdir/inner.txt")).code).toBe(550);
    expect((await c.cmd("CWD closed")).code).toBe(550);
    expect((await c.store("APPE own.txt", "+")).final.code).toBe(226);
    // STOR over a file the server may not write is refused, though the directory would allow replacing it.
    expect((await c.store("STOR rootfile.txt", "x")).final.code).toBe(550);
    expect((await c.store("STOR ro.txt", "x")).final.code).toBe(550);
    expect((await c.store("STOR own.txt", "new")).final.code).toBe(226);
    expect((await c.cmd("SIZE rootfile.txt")).text).toBe("4");
    expect((await c.cmd("SIZE own.txt")).text).toBe("3");
  });
});
