// Operating myftpd through the built command line: what `user` commands may remove, create and print, how the user
// store file is protected, and what `serve` refuses at start.
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { runMyftpd as myftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";

const dirs: string[] = [];
const procs: RunningProcess[] = [];

function newDir(): string {
  const d = tempDir("myftp-ops-");
  dirs.push(d);
  return d;
}

afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop("SIGKILL");
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A user written straight into the store, as an older version could have left it. */
async function storeUser(dataDir: string, name: string, home: string): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  const store = new SqliteUserStore(path.join(dataDir, "users.db"));
  try {
    await store.add({ name, passwordHash: "x", home, quotaBytes: 1000 });
  } finally {
    store.close();
  }
}

async function userNames(dataDir: string): Promise<string[]> {
  const store = new SqliteUserStore(path.join(dataDir, "users.db"));
  try {
    return (await store.list()).map((u) => u.name);
  } finally {
    store.close();
  }
}

describe("user del --purge", () => {
  it("refuses a home that holds the data directory, and removes nothing", async () => {
    const parent = newDir();
    const data = path.join(parent, "data");
    writeFileSync(path.join(parent, "keep.txt"), "x");
    await storeUser(data, "old", parent);
    const r = await myftpd(["user", "del", "old", "--purge", "--data", data]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/refusing to purge .* holds .*nothing changed/);
    expect(existsSync(path.join(data, "users.db"))).toBe(true);
    expect(existsSync(path.join(parent, "keep.txt"))).toBe(true);
    expect(await userNames(data)).toEqual(["old"]);
  });

  it("refuses a home that holds the TLS folder (a link out of the data directory)", async () => {
    const base = newDir();
    const data = path.join(base, "data");
    const keys = path.join(base, "elsewhere", "keys");
    mkdirSync(keys, { recursive: true });
    writeFileSync(path.join(keys, "key.pem"), "k");
    mkdirSync(data, { recursive: true });
    symlinkSync(keys, path.join(data, "tls"));
    await storeUser(data, "old", path.join(base, "elsewhere"));
    const r = await myftpd(["user", "del", "old", "--purge", "--data", data]);
    expect(r.code, r.stderr).toBe(2);
    expect(existsSync(path.join(keys, "key.pem"))).toBe(true);
    expect(await userNames(data)).toEqual(["old"]);
  });

  it("refuses the root directory", async () => {
    const data = newDir();
    await storeUser(data, "old", "/");
    const r = await myftpd(["user", "del", "old", "--purge", "--data", data]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/refusing to purge \/: it is the root directory/);
    expect(await userNames(data)).toEqual(["old"]);
  });
});
