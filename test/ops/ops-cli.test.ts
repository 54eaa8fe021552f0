// Operating myftpd through the built command line: what `user` commands may remove, create and print, how the user
// store file is protected, and what `serve` refuses at start.
import { chmodSync, chownSync, existsSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { MYFTPD_BIN, runMyftpd as myftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { runProcess } from "../helpers/util.js";

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

const modeOf = (f: string) => statSync(f).mode & 0o777;

/** `myftpd ARGS` under umask 022, the usual one, whatever the test runner's is. */
function myftpdUmask022(args: string[], input?: string) {
  return runProcess("sh", ["-c", 'umask 022 && exec "$0" "$@"', process.execPath, MYFTPD_BIN, ...args], { input });
}

describe("the user store file", () => {
  it("is created 0600 in a data directory that exists, and SQLite gives its -wal and -shm the same mode", async () => {
    const data = newDir();
    const r = await myftpdUmask022(["user", "add", "alice", "--password-stdin", "--data", data], "pw\n");
    expect(r.code, r.stderr).toBe(0);
    const db = path.join(data, "users.db");
    expect(modeOf(db)).toBe(0o600);
    // A running server keeps the -wal and -shm files.
    const p = await startServerProcess(["--log-level", "silent"], data);
    procs.push(p);
    expect(existsSync(`${db}-wal`) && existsSync(`${db}-shm`)).toBe(true);
    expect(modeOf(`${db}-wal`)).toBe(0o600);
    expect(modeOf(`${db}-shm`)).toBe(0o600);
  });

  it("is tightened to 0600, with a warning, when it was readable by others", async () => {
    const data = newDir();
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "pw\n")).code).toBe(0);
    const db = path.join(data, "users.db");
    chmodSync(db, 0o644);
    const r = await myftpd(["user", "set", "alice", "--quota", "5MB", "--data", data]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: .*users\.db was readable by others \(mode 0644\): changed it to 0600/);
    expect(modeOf(db)).toBe(0o600);
    // serve does the same, and logs it.
    chmodSync(db, 0o640);
    const p = await startServerProcess(["--log-level", "warn"], data);
    procs.push(p);
    expect(modeOf(db)).toBe(0o600);
    expect(p.output()).toMatch(/"event":"store-mode".*users\.db was readable by others \(mode 0640\)/);
  });
});

describe("user commands on a data directory without a user store", () => {
  it.each([
    ["list"],
    ["del", "alice"],
    ["passwd", "alice", "--password-stdin"],
    ["set", "alice", "--quota", "5MB"],
    ["rescan", "--all"],
  ])("user %s says so (exit 2) and creates nothing", async (...args) => {
    const base = newDir();
    const missing = path.join(base, "typo");
    const r = await myftpd(["user", ...args, "--data", missing], "pw\n");
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/the data directory .*typo has no user store/);
    expect(existsSync(missing)).toBe(false);
    // A directory that exists but holds no store gets no store either.
    const r2 = await myftpd(["user", ...args, "--data", base], "pw\n");
    expect(r2.code, r2.stderr).toBe(2);
    expect(existsSync(path.join(base, "users.db"))).toBe(false);
  });

  it("--config takes the data directory from serve's config file, relative to it; --data wins", async () => {
    const base = newDir();
    const conf = path.join(base, "etc", "myftpd.toml");
    mkdirSync(path.dirname(conf));
    writeFileSync(conf, 'data = "../srv"\nport = 2121\n');
    const add = await myftpd(["user", "add", "alice", "--password-stdin", "--config", conf], "pw\n");
    expect(add.code, add.stderr).toBe(0);
    expect(await userNames(path.join(base, "srv"))).toEqual(["alice"]);
    const list = await myftpd(["user", "list", "--json", "--config", conf]);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).map((u: { name: string }) => u.name)).toEqual(["alice"]);
    const other = path.join(base, "other");
    const add2 = await myftpd(["user", "add", "bob", "--password-stdin", "--config", conf, "--data", other], "pw\n");
    expect(add2.code, add2.stderr).toBe(0);
    expect(await userNames(other)).toEqual(["bob"]);
    expect(await userNames(path.join(base, "srv"))).toEqual(["alice"]);
    // A bad config file is refused like serve refuses it.
    writeFileSync(conf, 'data = "../srv"\nbogus = 1\n');
    const bad = await myftpd(["user", "list", "--config", conf]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown key "bogus"/);
  });
});

/** Runs myftpd as user nobody when the tests run as root (root writes anywhere), else as ourselves. */
function myftpdAsNobody(args: string[], input?: string) {
  if (process.getuid?.() !== 0) return myftpd(args, input);
  return runProcess("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, MYFTPD_BIN, ...args], { input });
}

describe("a data directory this user cannot write", () => {
  async function readonlyData(): Promise<string> {
    const base = newDir();
    const data = path.join(base, "data");
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "pw\n")).code).toBe(0);
    if (process.getuid?.() === 0) {
      for (const p of [base, data, path.join(data, "users.db")]) chownSync(p, 65534, 65534);
    }
    chmodSync(path.join(data, "users.db"), 0o400);
    chmodSync(data, 0o500);
    return data;
  }

  it("user list reads it; commands that write say why they cannot, and change nothing", async () => {
    const data = await readonlyData();
    try {
      const list = await myftpdAsNobody(["user", "list", "--data", data]);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toMatch(/^alice\s/m);
      const set = await myftpdAsNobody(["user", "set", "alice", "--quota", "5MB", "--data", data]);
      expect(set.code).toBe(1);
      expect(set.stderr).toMatch(/cannot write the user store .*users\.db: the data directory or the file is not writable/);
      expect(set.stderr).not.toMatch(/^myftpd: attempt to write/);
      const json = await myftpdAsNobody(["user", "list", "--json", "--data", data]);
      expect(JSON.parse(json.stdout)[0].quotaBytes).toBe(1024 ** 3);
    } finally {
      chmodSync(data, 0o700);
    }
  });
});
