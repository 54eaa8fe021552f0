// Operating myftpd through the built command line: what `user` commands may remove, create and print, how the user
// store file is protected, and what `serve` refuses at start.
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { spawn, spawnSync } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { lockDataDir } from "../../src/cli/pid-lock.js";
import { MYFTPD_BIN, ROOT, runMyftpd as myftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { runProcess, until, withTimeout } from "../helpers/util.js";

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

/** `myftpd ARGS` under a given umask, whatever the test runner's is. */
function myftpdUmask(umask: string, args: string[], input?: string) {
  return runProcess("sh", ["-c", `umask ${umask} && exec "$0" "$@"`, process.execPath, MYFTPD_BIN, ...args], { input });
}

/** `myftpd ARGS` under umask 022, the usual one. */
function myftpdUmask022(args: string[], input?: string) {
  return myftpdUmask("022", args, input);
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
    await until(() => /"event":"store-mode".*users\.db was readable by others \(mode 0640\)/.test(p.output()), 5000, "store-mode logged");
  });

  it("a read-only user list tightens a loose store too, and leaves no -wal or -shm readable by others", async () => {
    const data = newDir();
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "pw\n")).code).toBe(0);
    const db = path.join(data, "users.db");
    for (const suffix of ["-wal", "-shm"]) rmSync(db + suffix, { force: true });
    chmodSync(db, 0o644); // as an older version left it
    const r = await myftpd(["user", "list", "--data", data]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: .*users\.db was readable by others \(mode 0644\): changed it to 0600/);
    expect(r.stderr).not.toMatch(/-wal|-shm/);
    for (const f of readdirSync(data).filter((n) => n.startsWith("users.db"))) expect(modeOf(path.join(data, f)), f).toBe(0o600);
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

  it("a refused first user add leaves no store and no data directory behind", async () => {
    const base = newDir();
    const typo = path.join(base, "typo");
    for (const input of ["\n", "x".repeat(1025) + "\n"]) {
      const r = await myftpd(["user", "add", "alice", "--password-stdin", "--data", typo], input);
      expect(r.code).toBe(2);
      expect(existsSync(typo)).toBe(false);
      const list = await myftpd(["user", "list", "--data", typo]);
      expect(list.code).toBe(2);
      expect(list.stderr).toMatch(/has no user store/);
    }
    // In a data directory that exists, the new store file goes, the directory stays.
    const r = await myftpd(["user", "add", "alice", "--password-stdin", "--data", base], "\n");
    expect(r.code).toBe(2);
    expect(readdirSync(base)).toEqual([]);
    // A store that was there stays, with its users.
    expect((await myftpd(["user", "add", "bob", "--password-stdin", "--data", base], "pw\n")).code).toBe(0);
    expect((await myftpd(["user", "add", "carol", "--password-stdin", "--data", base], "\n")).code).toBe(2);
    expect(await userNames(base)).toEqual(["bob"]);
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

describe("one server per data directory", () => {
  const pidFile = (data: string) => path.join(data, "myftpd.pid");
  const serveOn = async (data: string) => {
    const p = await startServerProcess(["--log-level", "silent"], data);
    procs.push(p);
    return p;
  };

  it("a second serve on the same data directory refuses to start (exit 1); the PID file goes with the first", async () => {
    const data = newDir();
    const first = await serveOn(data);
    expect(readFileSync(pidFile(data), "utf8").trim()).toBe(String(first.child.pid));
    const second = await myftpd(["serve", "--data", data, "--host", "127.0.0.1", "--port", "0", "--log-level", "silent"]);
    expect(second.code, second.stdout).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`another myftpd \\(PID ${first.child.pid}\\) is serving the data directory`));
    expect(readFileSync(pidFile(data), "utf8").trim()).toBe(String(first.child.pid));
    expect(await first.stop("SIGTERM")).toBe(0);
    expect(existsSync(pidFile(data))).toBe(false);
    const again = await serveOn(data);
    expect(await again.stop("SIGINT")).toBe(0);
    expect(existsSync(pidFile(data))).toBe(false);
  });

  it("takes over the PID file of a server that crashed, or one whose PID now belongs to another program", async () => {
    const data = newDir();
    const crashed = await serveOn(data);
    await crashed.stop("SIGKILL");
    expect(readFileSync(pidFile(data), "utf8").trim()).toBe(String(crashed.child.pid));
    const next = await serveOn(data);
    expect(readFileSync(pidFile(data), "utf8").trim()).toBe(String(next.child.pid));
    await next.stop("SIGKILL");
    // A live process that is not a server on this directory, even one whose name says myftpd (a log tail, an
    // editor): the PID file only informs, the lock decides.
    const sleeper = spawn("bash", ["-c", "exec -a myftpd-log-tail sleep 30"], { stdio: "ignore" });
    try {
      await until(() => readFileSync(`/proc/${sleeper.pid}/cmdline`, "utf8").startsWith("myftpd-log-tail"), 5000, "renamed sleeper");
      writeFileSync(pidFile(data), `${sleeper.pid}\n`);
      const p = await serveOn(data);
      expect(readFileSync(pidFile(data), "utf8").trim()).toBe(String(p.child.pid));
    } finally {
      sleeper.kill("SIGKILL");
    }
  });

  it("a server in another PID namespace (another container on the same volume) is seen too", async (ctx) => {
    if (process.getuid?.() !== 0 || spawnSync("unshare", ["--pid", "--fork", "--mount-proc", "true"], { timeout: 10_000 }).status !== 0) {
      ctx.skip(); // needs root and unshare(1)
    }
    const data = newDir();
    const first = await serveOn(data);
    // Started as PID 1 of a new namespace: its own PID means nothing here, and ours nothing there.
    const second = await runProcess("unshare", ["--pid", "--fork", "--mount-proc", process.execPath, MYFTPD_BIN, "serve", "--data", data, "--host", "127.0.0.1", "--port", "0", "--log-level", "silent"]);
    expect(second.code, second.stdout).toBe(1);
    expect(second.stderr).toMatch(/another myftpd \(PID \d+\) is serving the data directory/);
    expect(await first.stop("SIGTERM")).toBe(0);
    const inside = spawn("unshare", ["--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM", process.execPath, MYFTPD_BIN, "serve", "--data", data, "--host", "127.0.0.1", "--port", "0", "--log-level", "silent"], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      let out = "";
      inside.stdout!.on("data", (b: Buffer) => (out += b.toString()));
      inside.stderr!.on("data", (b: Buffer) => (out += b.toString()));
      await until(() => out.includes("ftp://"), 10_000, "namespaced server listening");
      expect(readFileSync(pidFile(data), "utf8").trim()).toBe("1");
      const third = await myftpd(["serve", "--data", data, "--host", "127.0.0.1", "--port", "0", "--log-level", "silent"]);
      expect(third.code).toBe(1);
      expect(third.stderr).toMatch(/another myftpd \(PID 1\) is serving the data directory/);
    } finally {
      // unshare waits for its child and passes no signal on: the server (its child) is stopped itself.
      const kids = readFileSync(`/proc/${inside.pid}/task/${inside.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
      for (const k of kids) process.kill(Number(k), "SIGTERM");
      await until(() => inside.exitCode !== null || inside.signalCode !== null, 10_000, "namespaced server stopped");
    }
  });

  it("of two servers started at once over a stale PID file, exactly one runs", async () => {
    for (let round = 0; round < 8; round++) {
      const data = newDir();
      writeFileSync(pidFile(data), "999999999\n");
      const results = await Promise.allSettled([serveOn(data), serveOn(data)]);
      const up = results.filter((r) => r.status === "fulfilled");
      const refused = results.filter((r) => r.status === "rejected");
      expect(up.length, JSON.stringify(results.map((r) => (r.status === "rejected" ? String(r.reason) : "up")))).toBe(1);
      expect(String((refused[0] as PromiseRejectedResult).reason)).toMatch(/exited with 1[\s\S]*another myftpd/);
      const winner = (up[0] as PromiseFulfilledResult<RunningProcess>).value;
      expect(readFileSync(pidFile(data), "utf8").trim()).toBe(String(winner.child.pid));
      await winner.stop("SIGTERM");
    }
  });
});

describe("a server started while `myftpd user rescan` holds the data directory", () => {
  it("waits for the rescan, saying so, and then starts", async () => {
    const data = newDir();
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "secret\n")).code).toBe(0);
    // What a rescan with no server running holds while it settles the homes.
    const unlock = lockDataDir(data, { role: "rescan" });
    let unlocked = false;
    const child = spawn(process.execPath, [MYFTPD_BIN, "serve", "--data", data, "--host", "127.0.0.1", "--port", "0", "--log-level", "silent"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await until(() => err.includes(`waiting for myftpd user rescan (PID ${process.pid})`), 10_000, `waiting message:\n${err}`);
      await new Promise((r) => setTimeout(r, 300));
      expect(err).not.toMatch(/listening/);
      expect(child.exitCode).toBeNull();
      unlock();
      unlocked = true;
      await until(() => /myftpd listening on ftp:\/\//.test(err), 15_000, `listening after the rescan:\n${err}`);
    } finally {
      if (!unlocked) unlock();
      child.kill("SIGTERM");
      await exited;
    }
  });

  it("of two servers waiting for a rescan, one starts when it is done and the other is refused at once", async () => {
    const data = newDir();
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "secret\n")).code).toBe(0);
    const unlock = lockDataDir(data, { role: "rescan" });
    let unlocked = false;
    const servers = [0, 1].map(() => {
      const child = spawn(process.execPath, [MYFTPD_BIN, "serve", "--data", data, "--host", "127.0.0.1", "--port", "0", "--log-level", "silent"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const s = { child, err: "", code: undefined as number | null | undefined };
      child.stderr!.on("data", (b: Buffer) => (s.err += b.toString()));
      child.once("exit", (code) => (s.code = code));
      return s;
    });
    try {
      await until(() => servers.every((s) => s.err.includes("waiting for myftpd user rescan")), 10_000, "both waiting");
      unlock();
      unlocked = true;
      await until(() => servers.some((s) => /myftpd listening/.test(s.err)) && servers.some((s) => s.code !== undefined), 10_000, "one serves, one refused");
      const refused = servers.find((s) => s.code !== undefined)!;
      expect(refused.code).toBe(1);
      expect(refused.err).toMatch(/another myftpd \(PID \d+\) is serving the data directory/);
    } finally {
      if (!unlocked) unlock();
      for (const s of servers) if (s.code === undefined) s.child.kill("SIGTERM");
      await until(() => servers.every((s) => s.code !== undefined), 10_000, "servers stopped");
    }
  });

  it("a rescan with a server running leaves the server's lock and PID file alone", async () => {
    const data = newDir();
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "secret\n")).code).toBe(0);
    const p = await startServerProcess(["--log-level", "silent"], data);
    procs.push(p);
    const r = await myftpd(["user", "rescan", "alice", "--data", data]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(data, "myftpd.pid"), "utf8").trim()).toBe(String(p.child.pid));
  });
});

describe("the demo user of a fresh data directory", () => {
  it("is created only once the server listens, so a start that fails leaves none and the next one prints its password", async () => {
    const data = path.join(newDir(), "fresh");
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      const r = await myftpd(["serve", "--data", data, "--host", "127.0.0.1", "--port", String(port), "--log-level", "silent"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/EADDRINUSE/);
      expect(r.stdout + r.stderr).not.toMatch(/created user demo/);
      // Nor a user store: the data directory is still fresh for the next start.
      expect(existsSync(path.join(data, "users.db"))).toBe(false);
    } finally {
      blocker.close();
    }
    const p = await startServerProcess(["--log-level", "silent"], data);
    procs.push(p);
    await until(() => /created user demo/.test(p.output()), 10_000, "demo password printed");
    const m = /ftp:\/\/demo:([^@\s]+)@/.exec(p.output());
    const c = await RawFtp.login(p.port, "demo", m![1]!);
    await c.close();
  });
});

describe("the server's standard output", () => {
  it("is JSON log lines only; the lines for a person, the demo password among them, go to standard error", async () => {
    const data = path.join(newDir(), "fresh");
    const child = spawn(process.execPath, [MYFTPD_BIN, "serve", "--data", data, "--host", "127.0.0.1", "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    try {
      await until(() => /created user demo/.test(err), 15_000, `demo password on stderr:\n${err}\n${out}`);
      const m = /^myftpd listening on ftp:\/\/127\.0\.0\.1:(\d+)\/ /m.exec(err);
      expect(m, err).not.toBeNull();
      const password = /ftp:\/\/demo:([^@\s]+)@/.exec(err)![1]!;
      const c = await RawFtp.login(Number(m![1]), "demo", password);
      await c.close();
      await until(() => out.includes('"session-close"') || out.includes('"session-open"'), 10_000, `session logged:\n${out}`);
      const lines = out.trimEnd().split("\n");
      const events = lines.map((l) => (JSON.parse(l) as { event?: string; port?: number }));
      expect(events.find((e) => e.event === "listening")?.port).toBe(Number(m![1]));
      expect(out).not.toContain(password);
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  });
});

describe("usage that cannot be saved", () => {
  it("is logged at error level once per streak of failures, naming the user and the reason; uploads go on", async () => {
    const data = newDir();
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "secret\n")).code).toBe(0);
    const db = path.join(data, "users.db");
    // A store file the server's user cannot write: SQLite then opens it read-only, and every write of it fails.
    const root = process.getuid?.() === 0;
    if (root) {
      const chownAll = (p: string) => {
        chownSync(p, 65534, 65534);
        if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownAll(path.join(p, e));
      };
      chownAll(data);
    }
    chmodSync(db, 0o400);
    const p = await startServerProcess(["--log-level", "info", "--transfer-processes", "0"], data, root ? { uid: 65534 } : {});
    procs.push(p);
    const c = await RawFtp.login(p.port, "alice", "secret");
    try {
      await c.expect("TYPE I", 200);
      for (const name of ["a.bin", "b.bin", "c.bin"]) {
        const r = await c.store(`STOR ${name}`, Buffer.alloc(1000, 1));
        expect(r.final.code).toBe(226);
      }
      await until(() => /"event":"usage-not-saved"/.test(p.output()), 10_000, "usage-not-saved logged");
    } finally {
      await c.close();
    }
    const lines = p.output().split("\n").filter((l) => l.includes('"event":"usage-not-saved"'));
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!);
    expect(entry.level).toBe(50); // pino's error
    expect(entry.user).toBe("alice");
    expect(entry.reason).toMatch(/readonly database/);
  });
});

describe("the myftpd bin", () => {
  it("starts node with the memory reducer off, run through a link as npm makes one, with its arguments as given", async () => {
    const dir = newDir();
    // Spaces in the link's path and in an argument: the shell line must pass both on whole.
    mkdirSync(path.join(dir, "bin dir"));
    const link = path.join(dir, "bin dir", "myftpd");
    symlinkSync(MYFTPD_BIN, link);
    const version = spawnSync(link, ["--version"], { encoding: "utf8", timeout: 15_000 });
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).version);

    const data = path.join(dir, "data dir");
    const child = spawn(link, ["serve", "--data", data, "--host", "127.0.0.1", "--port", "0", "--log-level", "silent"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    child.stdout!.resume();
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await until(() => /myftpd listening on ftp:\/\//.test(err), 15_000, `bin serve listening:\n${err}`);
      // The shell replaced itself with node: the process started is the server, with the option and the arguments.
      const argv = readFileSync(`/proc/${child.pid}/cmdline`, "utf8").split("\0");
      expect(argv).toContain("--no-memory-reducer");
      expect(argv.slice(argv.indexOf("serve"))).toEqual(["serve", "--data", data, "--host", "127.0.0.1", "--port", "0", "--log-level", "silent", ""]);
      expect(Number(readFileSync(path.join(data, "myftpd.pid"), "utf8"))).toBe(child.pid);
      child.kill("SIGTERM");
      expect(await withTimeout(exited, 10_000, "the server did not exit on SIGTERM")).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});

describe("npm start", () => {
  it("SIGTERM to npm reaches the server, which exits and leaves no process behind", async () => {
    // In a copy of the package, so the build npm start runs does not rewrite the dist/ other tests are using.
    const pkg = newDir();
    for (const f of ["package.json", "tsconfig.json", "src", "scripts"]) cpSync(path.join(ROOT, f), path.join(pkg, f), { recursive: true });
    symlinkSync(path.join(ROOT, "node_modules"), path.join(pkg, "node_modules"));
    const data = path.join(pkg, "data");
    const npm = spawn("npm", ["start", "--", "--host", "127.0.0.1", "--port", "0", "--log-level", "silent"], {
      cwd: pkg,
      env: { ...process.env, MYFTPD_DATA: data },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    npm.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    npm.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    const exited = new Promise<void>((resolve) => npm.once("exit", () => resolve()));
    let serverPid = 0;
    try {
      await until(() => /myftpd listening on ftp:\/\//.test(out), 30_000, `npm start listening:\n${out}`);
      serverPid = Number(readFileSync(path.join(data, "myftpd.pid"), "utf8"));
      expect(serverPid).toBeGreaterThan(0);
      // Started as the bin starts it.
      expect(readFileSync(`/proc/${serverPid}/cmdline`, "utf8").split("\0")).toContain("--no-memory-reducer");
      npm.kill("SIGTERM");
      await withTimeout(exited, 10_000, "npm did not exit");
      const alive = () => {
        try {
          process.kill(serverPid, 0);
          return true;
        } catch {
          return false;
        }
      };
      await until(() => !alive(), 10_000, `server PID ${serverPid} still running after npm exited`);
      expect(existsSync(path.join(data, "myftpd.pid"))).toBe(false);
    } finally {
      if (npm.exitCode === null && npm.signalCode === null) npm.kill("SIGKILL");
      if (serverPid > 0) {
        try {
          process.kill(serverPid, "SIGKILL");
        } catch {
          // gone, as it should be
        }
      }
    }
  });
});

describe("homes that are missing", () => {
  it("user add makes the home with mode 0750, whatever the umask", async () => {
    const data = newDir();
    const r = await myftpdUmask("077", ["user", "add", "alice", "--password-stdin", "--data", data], "pw\n");
    expect(r.code, r.stderr).toBe(0);
    expect(modeOf(path.join(data, "home", "alice"))).toBe(0o750);
  });

  it("a login to a home that does not exist is refused with 421 and logged; the home is not made", async () => {
    const data = newDir();
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "secret\n")).code).toBe(0);
    const home = path.join(data, "home", "alice");
    rmSync(home, { recursive: true });
    const p = await startServerProcess(["--log-level", "info"], data);
    procs.push(p);
    // Named at start already (the log is on stdout, which may reach us after the listening line on stderr).
    await until(() => /"event":"home-missing","user":"alice"/.test(p.output()), 5000, "home-missing at start");
    const c = await RawFtp.connect(p.port);
    try {
      expect((await c.cmd("USER alice")).code).toBe(331);
      expect((await c.cmd("PASS secret")).code).toBe(421);
    } finally {
      await c.close().catch(() => undefined);
    }
    expect(existsSync(home)).toBe(false);
    await until(() => p.output().split("\n").filter((l) => /"event":"home-missing"/.test(l)).length === 2, 5000, "login logged");
    const entry = JSON.parse(p.output().split("\n").filter((l) => /"event":"home-missing"/.test(l))[1]!);
    expect(entry).toMatchObject({ level: 50, user: "alice", home });
  });

  it("user rescan of a missing home says so (exit 1) and keeps the stored figure", async () => {
    const data = newDir();
    for (const name of ["alice", "bob"]) {
      expect((await myftpd(["user", "add", name, "--password-stdin", "--data", data], "pw\n")).code).toBe(0);
    }
    writeFileSync(path.join(data, "home", "bob", "f"), Buffer.alloc(500));
    expect((await myftpd(["user", "rescan", "--all", "--data", data])).code).toBe(0);
    rmSync(path.join(data, "home", "bob"), { recursive: true });
    const r = await myftpd(["user", "rescan", "bob", "--data", data]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bob: home .*bob does not exist/);
    expect(r.stdout).not.toMatch(/bob: 0 bytes/);
    const list = JSON.parse((await myftpd(["user", "list", "--json", "--data", data])).stdout);
    expect(list.find((u: { name: string }) => u.name === "bob").usedBytes).toBe(500);
  });
});

describe("--home refusals", () => {
  it("a home that is a regular file, or an empty --home, is refused with exit 2 and a clear message", async () => {
    const data = newDir();
    const file = path.join(data, "afile");
    writeFileSync(file, "x");
    const add = await myftpd(["user", "add", "alice", "--home", file, "--password-stdin", "--data", data], "pw\n");
    expect(add.code).toBe(2);
    expect(add.stderr).toMatch(/home .*afile exists and is not a directory; nothing changed/);
    const below = await myftpd(["user", "add", "alice", "--home", path.join(file, "sub"), "--password-stdin", "--data", data], "pw\n");
    expect(below.code).toBe(2);
    expect(below.stderr).toMatch(/is a file; nothing changed/);
    const empty = await myftpd(["user", "add", "alice", "--home", "", "--password-stdin", "--data", data], "pw\n");
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/--home needs a directory/);
    expect(await userNames(data)).toEqual([]);
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "pw\n")).code).toBe(0);
    for (const home of [file, ""]) {
      const set = await myftpd(["user", "set", "alice", "--home", home, "--data", data]);
      expect(set.code, set.stderr).toBe(2);
    }
  });
});

describe("serve and TLS that cannot be set up", () => {
  const serveArgs = (data: string, ...more: string[]) => [
    "serve", "--data", data, "--host", "127.0.0.1", "--port", "0", "--log-level", "silent", ...more,
  ];

  it.each(["key.pem", "cert.pem"])("refuses to start (exit 2) when DATA/tls lacks %s of the pair", async (gone) => {
    const data = newDir();
    const made = await myftpd(["cert", "--host", "localhost", "--data", data]);
    expect(made.code, made.stderr).toBe(0);
    rmSync(path.join(data, "tls", gone));
    const r = await myftpd(serveArgs(data));
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`is there but .*${gone.replace(".", "\\.")} is missing, so TLS cannot be set up`));
    expect(r.stdout + r.stderr).not.toMatch(/listening/);
  });

  it("--require-tls-session-reuse without a certificate is refused like --require-tls, leaving no data directory behind", async () => {
    const data = path.join(newDir(), "fresh");
    for (const flag of ["--require-tls", "--require-tls-session-reuse"]) {
      const r = await myftpd(serveArgs(data, flag));
      expect(r.code, `${flag}: ${r.stdout}`).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`${flag} needs a certificate`));
      expect(existsSync(data)).toBe(false);
    }
  });

  it("a switch a config file turns on is turned off by its --no- flag", async () => {
    const data = newDir();
    const conf = path.join(data, "myftpd.toml");
    writeFileSync(conf, "require-tls = true\n");
    const on = await myftpd(serveArgs(data, "--config", conf));
    expect(on.code, on.stdout).toBe(2);
    expect(on.stderr).toMatch(/--require-tls needs a certificate/);
    const p = await startServerProcess(["--config", conf, "--no-require-tls", "--log-level", "silent"], data);
    procs.push(p);
    const c = await RawFtp.connect(p.port);
    expect((await c.cmd("USER nobody-here")).code).toBe(331); // plain logins are not refused up front
    c.sock.destroy();
  });
});

describe("password length", () => {
  it("add and passwd refuse passwords over 1024 bytes of UTF-8 (exit 2); one of 1024 bytes logs in", async () => {
    const data = newDir();
    const longest = "é".repeat(512); // 1024 bytes
    const tooLong = `${longest}x`;
    const refused = await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], `${tooLong}\n`);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/password of 1025 bytes refused: at most 1024 bytes/);
    expect(await userNames(data)).toEqual([]);
    const big = await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], `${"x".repeat(3 * 1024 * 1024)}\n`);
    expect(big.code).toBe(2);
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], `${longest}\n`)).code).toBe(0);
    const passwd = await myftpd(["user", "passwd", "alice", "--password-stdin", "--data", data], `${tooLong}\n`);
    expect(passwd.code).toBe(2);
    const p = await startServerProcess(["--log-level", "silent"], data);
    procs.push(p);
    const c = await RawFtp.login(p.port, "alice", longest);
    await c.close();
  });
});

describe("myftpd --version", () => {
  it("prints the package's version and exits 0", async () => {
    const version = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).version;
    for (const flag of ["--version", "-V"]) {
      const r = await myftpd([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(version);
    }
  });
});
