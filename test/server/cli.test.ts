// The myftpd command line as a separate process (the built bin): first start on an empty data dir, SIGTERM, and
// `myftpd user add/list/del/passwd/set` exit codes and messages.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { hashPassword, verifyPassword } from "../../src/users/password.js";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { runMyftpd as myftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { until, withTimeout } from "../helpers/util.js";

const dirs: string[] = [];
const procs: RunningProcess[] = [];
const conns: RawFtp[] = [];

function newDataDir(): string {
  const d = tempDir("myftp-cli-");
  dirs.push(d);
  return d;
}

afterEach(async () => {
  for (const c of conns.splice(0)) await c.close();
  for (const p of procs.splice(0)) await p.stop("SIGKILL");
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function serve(dataDir: string, args: string[] = []): Promise<RunningProcess> {
  const p = await startServerProcess(["--log-level", "silent", ...args], dataDir);
  procs.push(p);
  return p;
}

async function loginTo(port: number, user: string, password: string): Promise<RawFtp> {
  const c = await RawFtp.login(port, user, password);
  conns.push(c);
  return c;
}

async function withUsersDb<T>(dataDir: string, fn: (store: SqliteUserStore) => Promise<T>): Promise<T> {
  const store = new SqliteUserStore(path.join(dataDir, "users.db"));
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

function userRows(dataDir: string) {
  return withUsersDb(dataDir, (store) => store.list());
}

async function passwordOk(dataDir: string, name: string, password: string): Promise<boolean> {
  return withUsersDb(dataDir, async (store) => verifyPassword((await store.get(name))?.passwordHash, password));
}

/** Users written straight into the store, as a data directory from before a `user add` check would hold them. */
async function storeUsers(dataDir: string, users: { name: string; home: string; password?: string }[]): Promise<void> {
  await withUsersDb(dataDir, async (store) => {
    for (const u of users) {
      const passwordHash = u.password === undefined ? "x" : await hashPassword(u.password);
      await store.add({ name: u.name, passwordHash, home: u.home, quotaBytes: 1000 });
    }
  });
}

describe("myftpd serve", () => {
  it("on an empty data dir creates demo and prints a login URL that works; only once", async () => {
    const data = path.join(newDataDir(), "fresh");
    const p = await serve(data);
    await withTimeout(
      (async () => {
        while (!/ftp:\/\/demo:/.test(p.output())) await new Promise((r) => setTimeout(r, 20));
      })(),
      10_000,
      "no demo URL printed",
    );
    const m = /ftp:\/\/demo:([^@\s]+)@([^:/\s]+):(\d+)\//.exec(p.output());
    expect(m, p.output()).not.toBeNull();
    expect(m![2]).toBe("127.0.0.1");
    expect(Number(m![3])).toBe(p.port);
    const password = decodeURIComponent(m![1]!);
    expect(password.length).toBeGreaterThanOrEqual(12);
    const c = await loginTo(Number(m![3]), "demo", password);
    expect((await c.cmd("PWD")).code).toBe(257);
    expect(statSync(path.join(data, "home", "demo")).isDirectory()).toBe(true);
    // The clear password reaches no file in the data dir.
    const db = readFileSync(path.join(data, "users.db"));
    expect(db.includes(Buffer.from(password))).toBe(false);
    expect(await p.stop("SIGTERM")).toBe(0);

    const again = await serve(data);
    await new Promise((r) => setTimeout(r, 200));
    expect(again.output()).not.toMatch(/demo:/);
    expect(again.output()).toMatch(new RegExp(`ftp://127\\.0\\.0\\.1:${again.port}`));
    expect(await again.stop("SIGTERM")).toBe(0);
  });

  it("SIGTERM: idle sessions get 421, a running upload may finish, and the process exits 0 within 5 s", async () => {
    const data = newDataDir();
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "pw-bob\n")).code).toBe(0);
    const p = await serve(data);
    const idle = await loginTo(p.port, "bob", "pw-bob");
    const anon = await RawFtp.connect(p.port);
    conns.push(anon);
    const busy = await loginTo(p.port, "bob", "pw-bob");
    await busy.cmd("TYPE I");
    const dc = await busy.dataConnection("EPSV");
    expect((await busy.cmd("STOR up.bin")).code).toBe(150);
    const sock = await dc.get();
    sock.write(Buffer.alloc(1000, 1));

    const started = Date.now();
    const exited = p.stop("SIGTERM");
    expect((await idle.read()).code).toBe(421);
    expect((await anon.read()).code).toBe(421);
    // The upload is still allowed to complete during the grace period.
    sock.end(Buffer.alloc(1000, 2));
    expect((await busy.read()).code).toBe(226);
    expect((await busy.read()).code).toBe(421);
    expect(await withTimeout(exited, 5000, "myftpd did not exit within 5 s")).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(statSync(path.join(data, "home", "bob", "up.bin")).size).toBe(2000);
    await Promise.all([idle.closed, anon.closed, busy.closed].map((c) => withTimeout(c, 2000, "session not closed")));
  });

  it("SIGTERM with a stalled transfer: 421 after the grace and exit 0 within 5 s", async () => {
    const data = newDataDir();
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "pw\n")).code).toBe(0);
    const p = await serve(data);
    const busy = await loginTo(p.port, "bob", "pw");
    const dc = await busy.dataConnection("EPSV");
    expect((await busy.cmd("STOR stalled.bin")).code).toBe(150);
    (await dc.get()).write("partial");
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const exited = p.stop("SIGTERM");
    // It stops accepting at once, while the transfer still has its grace.
    await new Promise((r) => setTimeout(r, 300));
    await expect(RawFtp.connect(p.port)).rejects.toThrow();
    expect((await busy.read(6000)).code).toBe(421);
    expect(await withTimeout(exited, 5000, "myftpd did not exit within 5 s")).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    // The cut-off upload is kept for a resume.
    expect(readFileSync(path.join(data, "home", "bob", "stalled.bin"), "utf8")).toBe("partial");
  });

  it("logs session open/close, logins and transfers as JSON lines, never the password", async () => {
    const data = newDataDir();
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "Pw-Never-Logged-1\n")).code).toBe(0);
    const p = await serve(data, ["--log-level", "info"]);
    const bad = await RawFtp.connect(p.port);
    conns.push(bad);
    await bad.cmd("USER bob");
    expect((await bad.cmd("PASS Wrong-Never-Logged-2")).code).toBe(530);
    const c = await loginTo(p.port, "bob", "Pw-Never-Logged-1");
    await c.cmd("TYPE I");
    expect((await c.store("STOR logged.bin", Buffer.alloc(1234))).final.code).toBe(226);
    expect((await c.quit()).code).toBe(221);
    expect(await p.stop("SIGTERM")).toBe(0);
    const out = p.output();
    expect(out).not.toContain("Never-Logged");
    const events = out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const find = (e: string) => events.filter((x) => x.event === e);
    expect(find("session-open").length).toBeGreaterThanOrEqual(2);
    expect(find("session-close").length).toBeGreaterThanOrEqual(2);
    expect(find("login-failed")[0]).toMatchObject({ user: "bob" });
    expect(find("login")[0]).toMatchObject({ user: "bob" });
    const t = find("transfer").find((x) => x.verb === "STOR");
    expect(t).toMatchObject({ user: "bob", path: "/logged.bin", bytes: 1234, result: "ok" });
    expect(typeof t!.ms).toBe("number");
  });

  it("Ctrl-C (SIGINT to the process group): a binary upload in a transfer process still gets its grace", async () => {
    const data = newDataDir();
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "pw\n")).code).toBe(0);
    const p = await startServerProcess(["--log-level", "silent"], data, { ownGroup: true });
    procs.push(p);
    const busy = await loginTo(p.port, "bob", "pw");
    await busy.cmd("TYPE I");
    const dc = await busy.dataConnection("EPSV");
    expect((await busy.cmd("STOR group.bin")).code).toBe(150);
    const sock = await dc.get();
    sock.write(Buffer.alloc(300_000, 1));
    const file = path.join(data, "home", "bob", "group.bin");
    await until(() => existsSync(file) && statSync(file).size > 0, 5000, "upload under way");
    const exited = p.stop("SIGINT", true);
    await new Promise((r) => setTimeout(r, 200));
    sock.end(Buffer.alloc(300_000, 2));
    expect((await busy.read()).code).toBe(226);
    expect((await busy.read()).code).toBe(421);
    expect(await withTimeout(exited, 5000, "myftpd did not exit within 5 s")).toBe(0);
    expect(statSync(path.join(data, "home", "bob", "group.bin")).size).toBe(600_000);
  });

  it("SIGINT also stops it with exit 0", async () => {
    const p = await serve(newDataDir());
    expect(await withTimeout(p.stop("SIGINT"), 5000, "no exit")).toBe(0);
  });

  it("refuses a bad config value at start with exit 2 and a message naming the key", async () => {
    const data = newDataDir();
    const r = await myftpd(["serve", "--data", data, "--port", "99999"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/port/);
  });
});

describe("myftpd user", () => {
  it("add, list, passwd, set and del a user; the user can log in", async () => {
    const data = newDataDir();
    const add = await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "first-pw\n");
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/added user bob/);
    expect(add.stdout).not.toContain("first-pw");
    const bobHome = path.join(data, "home", "bob");
    expect(statSync(bobHome).isDirectory()).toBe(true);

    const custom = path.join(data, "elsewhere", "carol");
    const add2 = await myftpd(["user", "add", "carol", "--data", data, "--home", custom, "--quota", "5MiB", "--password-stdin"], "carol-pw\r\n");
    expect(add2.code, add2.stderr).toBe(0);
    expect(statSync(custom).isDirectory()).toBe(true);
    // The line end (CRLF too) is not part of the password.
    expect(await passwordOk(data, "carol", "carol-pw")).toBe(true);

    const list = await myftpd(["user", "list", "--data", data]);
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+HOME\s+USED\s+QUOTA$/);
    expect(lines.find((l) => l.startsWith("bob "))).toMatch(new RegExp(`^bob\\s+${bobHome}\\s+.*1\\.00 GiB$`));
    expect(lines.find((l) => l.startsWith("carol "))).toMatch(new RegExp(`^carol\\s+${custom}\\s+.*5\\.00 MiB$`));
    const json = JSON.parse((await myftpd(["user", "list", "--json", "--data", data])).stdout) as { name: string; quotaBytes: number | null }[];
    expect(json.find((u) => u.name === "carol")?.quotaBytes).toBe(5 * 1024 * 1024);

    const p = await serve(data);
    const c = await loginTo(p.port, "bob", "first-pw");
    expect((await c.cmd("PWD")).code).toBe(257);
    expect(p.output()).not.toMatch(/demo/);

    const pw = await myftpd(["user", "passwd", "bob", "--data", data, "--password-stdin"], "second-pw\n");
    expect(pw.code, pw.stderr).toBe(0);
    expect(await passwordOk(data, "bob", "second-pw")).toBe(true);
    expect(await passwordOk(data, "bob", "first-pw")).toBe(false);
    const c2 = await loginTo(p.port, "bob", "second-pw");
    expect((await c2.cmd("NOOP")).code).toBe(200);

    const set = await myftpd(["user", "set", "bob", "--data", data, "--quota", "unlimited"]);
    expect(set.code, set.stderr).toBe(0);
    expect((await userRows(data)).find((u) => u.name === "bob")?.quotaBytes).toBeNull();
    const newHome = path.join(data, "moved-bob");
    expect((await myftpd(["user", "set", "bob", "--data", data, "--home", newHome, "--quota", "2GB"])).code).toBe(0);
    const bob = (await userRows(data)).find((u) => u.name === "bob")!;
    expect(bob.home).toBe(newHome);
    expect(bob.quotaBytes).toBe(2e9);
    expect(statSync(newHome).isDirectory()).toBe(true);

    const del = await myftpd(["user", "del", "bob", "--data", data]);
    expect(del.code, del.stderr).toBe(0);
    expect(existsSync(bobHome)).toBe(true); // kept without --purge
    expect((await userRows(data)).map((u) => u.name)).toEqual(["carol"]);
    const purge = await myftpd(["user", "del", "carol", "--purge", "--data", data]);
    expect(purge.code, purge.stderr).toBe(0);
    expect(existsSync(custom)).toBe(false);
    expect((await myftpd(["user", "list", "--data", data])).stdout.trim()).toBe("no users");
  });

  it("refuses bad names with exit 2 and changes nothing", async () => {
    const data = newDataDir();
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "pw\n")).code).toBe(0);
    const homesBefore = readdirSync(path.join(data, "home")).sort();
    for (const name of ["bad name", "a/b", "../evil", ".hidden", "x".repeat(65), "ünï", "", "a:b"]) {
      const r = await myftpd(["user", "add", name, "--data", data, "--password-stdin"], "pw\n");
      expect(r.code, `add ${JSON.stringify(name)}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/myftpd: /);
    }
    const dash = await myftpd(["user", "add", "-bad", "--data", data, "--password-stdin"], "pw\n");
    expect(dash.code).toBe(2);
    expect(readdirSync(path.join(data, "home")).sort()).toEqual(homesBefore);
    expect((await userRows(data)).map((u) => u.name)).toEqual(["bob"]);
    for (const cmd of [["del", "bad name"], ["passwd", "a/b", "--password-stdin"], ["set", ".x", "--quota", "1"]]) {
      const r = await myftpd(["user", ...cmd, "--data", data], "pw\n");
      expect(r.code, cmd.join(" ")).toBe(2);
    }
  });

  it("refuses bad sizes with exit 2 and changes nothing", async () => {
    const data = newDataDir();
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin", "--quota", "1MB"], "pw\n")).code).toBe(0);
    for (const q of ["10XB", "lots", "1.5", "5 GiB extra"]) {
      const r = await myftpd(["user", "add", "carol", "--data", data, "--quota", q, "--password-stdin"], "pw\n");
      expect(r.code, q).toBe(2);
      expect(r.stderr).toMatch(/size/);
      const s = await myftpd(["user", "set", "bob", "--data", data, "--quota", q]);
      expect(s.code, q).toBe(2);
    }
    expect(existsSync(path.join(data, "home", "carol"))).toBe(false);
    const rows = await userRows(data);
    expect(rows.map((u) => u.name)).toEqual(["bob"]);
    expect(rows[0]!.quotaBytes).toBe(1e6);
  });

  it("refuses a duplicate user with exit 2 and keeps the old password", async () => {
    const data = newDataDir();
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "original\n")).code).toBe(0);
    const r = await myftpd(["user", "add", "bob", "--data", data, "--quota", "1KB", "--password-stdin"], "other\n");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/already exists/);
    expect(await passwordOk(data, "bob", "original")).toBe(true);
    expect((await userRows(data))[0]!.quotaBytes).toBe(1024 ** 3);
  });

  it("refuses a home that is, holds or lies inside another user's home, by any path to it, and changes nothing", async () => {
    const data = newDataDir();
    const bobHome = path.join(data, "home", "bob");
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "pw\n")).code).toBe(0);
    const link = path.join(data, "link-to-bob");
    symlinkSync(bobHome, link);
    const refused = [bobHome, `${bobHome}/`, path.join(bobHome, "inner"), path.join(data, "home"), data, path.join(link, "sub", "deeper")];
    for (const home of refused) {
      const r = await myftpd(["user", "add", "carol", "--data", data, "--home", home, "--password-stdin"], "pw\n");
      expect(r.code, home).toBe(2);
      expect(r.stderr, home).toMatch(/overlaps the home of user bob/);
    }
    expect(existsSync(path.join(bobHome, "inner"))).toBe(false);
    expect(existsSync(path.join(link, "sub"))).toBe(false);
    expect((await userRows(data)).map((u) => u.name)).toEqual(["bob"]);

    // A sibling whose name only starts like bob's home is apart.
    const bobby = path.join(data, "home", "bobby");
    const add = await myftpd(["user", "add", "carol", "--data", data, "--home", bobby, "--password-stdin"], "pw\n");
    expect(add.code, add.stderr).toBe(0);
    const set = await myftpd(["user", "set", "carol", "--data", data, "--home", path.join(link, "x")]);
    expect(set.code).toBe(2);
    expect(set.stderr).toMatch(/overlaps the home of user bob/);
    expect((await userRows(data)).find((u) => u.name === "carol")?.home).toBe(bobby);
    // Moving a user within their own home is no overlap with anyone.
    const own = await myftpd(["user", "set", "carol", "--data", data, "--home", path.join(bobby, "moved")]);
    expect(own.code, own.stderr).toBe(0);

    // A home stored through a link is compared by where it leads.
    const real = path.join(data, "real-dan");
    mkdirSync(real);
    const danLink = path.join(data, "dan-link");
    symlinkSync(real, danLink);
    expect((await myftpd(["user", "add", "dan", "--data", data, "--home", danLink, "--password-stdin"], "pw\n")).code).toBe(0);
    const inside = await myftpd(["user", "add", "eve", "--data", data, "--home", path.join(real, "eve"), "--password-stdin"], "pw\n");
    expect(inside.code).toBe(2);
    expect(inside.stderr).toMatch(/overlaps the home of user dan/);
    expect((await userRows(data)).map((u) => u.name).sort()).toEqual(["bob", "carol", "dan"]);
  });

  it("keeps homes away from the server's own files: refused at user add/set, and such a user cannot log in", async () => {
    const data = newDataDir();
    const parent = path.dirname(data);
    for (const home of [data, parent, path.join(data, "tls")]) {
      const r = await myftpd(["user", "add", "carol", "--data", data, "--home", home, "--password-stdin"], "pw\n");
      expect(r.code, home).toBe(2);
      expect(r.stderr, home).toMatch(/server's own files/);
    }
    expect((await userRows(data)).map((u) => u.name)).toEqual([]);
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "bob-pw\n")).code).toBe(0);
    const set = await myftpd(["user", "set", "bob", "--data", data, "--home", data]);
    expect(set.code).toBe(2);
    expect(set.stderr).toMatch(/server's own files/);

    // One made before the check (straight into the store): the server names it at start and refuses its logins.
    expect((await myftpd(["cert", "--data", data])).code).toBe(0);
    await storeUsers(data, [
      { name: "mal", home: parent, password: "mal-pw" },
      { name: "tia", home: path.join(data, "tls"), password: "tia-pw" },
    ]);
    const p = await serve(data, ["--log-level", "warn"]);
    await until(() => p.output().split("home-holds-server-files").length === 3, 5000, "a warning per such user");
    for (const name of ["mal", "tia"]) {
      const c = await RawFtp.open(p.port);
      conns.push(c);
      expect((await c.read()).code).toBe(220);
      expect((await c.cmd(`USER ${name}`)).code).toBe(331);
      expect((await c.cmd(`PASS ${name}-pw`)).code).toBe(421);
      await withTimeout(c.closed, 3000, "not closed after the refused login");
    }
    const bob = await loginTo(p.port, "bob", "bob-pw");
    expect((await bob.cmd("PWD")).code).toBe(257);
  });

  it("refuses to purge a home that overlaps another user's, from before the check", async () => {
    const data = newDataDir();
    const outer = path.join(data, "outer");
    mkdirSync(path.join(outer, "inner"), { recursive: true });
    await storeUsers(data, [
      { name: "ann", home: outer },
      { name: "ben", home: path.join(outer, "inner") },
    ]);
    for (const [name, other] of [["ann", "ben"], ["ben", "ann"]]) {
      const r = await myftpd(["user", "del", name!, "--purge", "--data", data]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`refusing to purge .*overlaps the home of user ${other}`));
    }
    expect(existsSync(path.join(outer, "inner"))).toBe(true);
    expect((await userRows(data)).map((u) => u.name)).toEqual(["ann", "ben"]);
    // Without --purge the home stays, so deleting the user is fine.
    expect((await myftpd(["user", "del", "ben", "--data", data])).code).toBe(0);
  });

  it("serve warns about users whose homes overlap from before the check", async () => {
    const data = newDataDir();
    const shared = path.join(data, "shared");
    mkdirSync(path.join(shared, "inner"), { recursive: true });
    const link = path.join(data, "link-to-shared");
    symlinkSync(shared, link);
    await storeUsers(data, [
      { name: "ann", home: shared },
      { name: "ben", home: path.join(link, "inner") },
      { name: "cy", home: path.join(data, "apart") },
      { name: "dee", home: path.join(data, "pair") },
      { name: "eli", home: path.join(data, "pair") },
    ]);
    const p = await serve(data, ["--log-level", "warn"]);
    await until(() => /home-overlap/.test(p.output()), 5000, "the home-overlap warning");
    await until(() => p.output().split("home-overlap").length === 3, 5000, "both home-overlap warnings");
    const lines = p.output().split("\n").filter((l) => l.includes("home-overlap"));
    expect(lines).toHaveLength(2);
    expect(lines.map((l) => (JSON.parse(l) as { users: string[] }).users.sort().join(",")).sort()).toEqual(["ann,ben", "dee,eli"]);
  });

  it("refuses unknown users, empty passwords, nothing to set and a missing terminal with exit 2", async () => {
    const data = newDataDir();
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "pw\n")).code).toBe(0);
    const cases: [string[], string | undefined, RegExp][] = [
      [["del", "ghost"], undefined, /no user ghost/],
      [["passwd", "ghost", "--password-stdin"], "pw\n", /no user ghost/],
      [["set", "ghost", "--quota", "1"], undefined, /no user ghost/],
      [["set", "bob"], undefined, /nothing to change/],
      [["add", "carol", "--password-stdin"], "\n", /empty password/],
      [["passwd", "bob", "--password-stdin"], "", /empty password/],
      [["add", "dave"], undefined, /password-stdin/],
    ];
    for (const [args, input, msg] of cases) {
      const r = await myftpd(["user", ...args, "--data", data], input);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(msg);
    }
    expect((await userRows(data)).map((u) => u.name)).toEqual(["bob"]);
    expect(await passwordOk(data, "bob", "pw")).toBe(true);
    expect(existsSync(path.join(data, "home", "carol"))).toBe(false);
    expect(existsSync(path.join(data, "home", "dave"))).toBe(false);
  });
});
