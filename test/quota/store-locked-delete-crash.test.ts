// A delete marks the user's stored usage figure dirty, and has that written, before it removes anything: a crash
// between the removal and the saving of the lowered figure then makes the next start count the home instead of
// trusting a figure that still counts the removed file. A store that another process holds locked for a moment (an
// admin's command, a backup) must not let the delete go ahead without the mark: it waits for the lock to go (without
// holding the server's thread), as the store's busy timeout did.

import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { killLockHolders, lockStore } from "../helpers/store-lock.js";
import { bytesOnDisk, Ctl, myftpd, until } from "../qa/qa-util.js";

let proc: RunningProcess | undefined;
const ctls: Ctl[] = [];

afterEach(async () => {
  for (const c of ctls.splice(0)) c.close();
  killLockHolders();
  await proc?.stop("SIGKILL");
  proc = undefined;
});

async function stored(file: string): Promise<{ usedBytes: number | null; usageDirty: boolean }> {
  const store = new SqliteUserStore(file);
  try {
    return (await store.get("alice"))!;
  } finally {
    store.close();
  }
}

describe("a delete while the user store is locked for a moment, and a crash right after it", () => {
  it("leaves a figure the next start does not trust wrongly", { timeout: 30_000 }, async () => {
    const data = tempDir("myftp-delcrash-");
    mkdirSync(data, { recursive: true });
    const add = await myftpd(["user", "add", "alice", "--data", data, "--quota", "10MiB", "--password-stdin"], { input: "secret\n" });
    expect(add.code).toBe(0);
    const db = path.join(data, "users.db");
    const home = path.join(data, "home", "alice");
    proc = await startServerProcess(["--pasv-range", "0-0", "--log-level", "warn"], data);
    const ctl = await Ctl.login(proc.port);
    ctls.push(ctl);
    expect((await ctl.store("STOR f", randomBytes(5000))).final.code).toBe(226);
    await until(async () => {
      const u = await stored(db);
      return u.usedBytes === 5000 && !u.usageDirty;
    }, 10_000, "the figure is saved");

    const lock = await lockStore(db);
    const dele = ctl.cmd("DELE f");
    await lock.releaseSoon(300);
    expect((await dele).code).toBe(250);
    await proc.stop("SIGKILL");
    proc = undefined;

    expect(bytesOnDisk(home)).toBe(0);
    const u = await stored(db);
    expect(u.usageDirty || u.usedBytes === 0).toBe(true);
  });
});
