// What a server that is not root may do, as it says and as it does: CWD into a directory it may not search (mode
// 000) is refused with 550 and leaves the working directory as it was (accepting it would leave the session in a
// directory where every relative command fails); the MLSD/MLST perm facts (RFC 3659 §7.5.5) follow the mode bits,
// owners and the directory's permissions.
//
// Permissions mean nothing to root, so when the tests run as root the server runs as nobody (65534) over a data
// directory handed to that user.

import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hashPassword } from "../../src/users/password.js";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { until } from "../helpers/util.js";

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;

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

/** A data directory with user alice (password "secret") whose home holds what `fill` makes there. */
async function aliceData(prefix: string, fill: (home: string) => void, quotaBytes = 1024 ** 3): Promise<{ data: string; home: string }> {
  const data = tempDir(prefix);
  dataDir = data;
  const home = path.join(data, "home", "alice");
  mkdirSync(home, { recursive: true });
  fill(home);
  const store = new SqliteUserStore(path.join(data, "users.db"));
  await store.add({ name: "alice", passwordHash: await hashPassword("secret"), home, quotaBytes });
  store.close();
  return { data, home };
}

/** Hands everything below `p` to nobody. */
function chownAll(p: string): void {
  chownSync(p, NOBODY, NOBODY);
  if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownAll(path.join(p, e));
}

describe("CWD into a directory without search permission", () => {
  it("answers 550 and keeps the working directory", async () => {
    const { data, home } = await aliceData("myftp-cwd-perm-", (h) => {
      mkdirSync(path.join(h, "sub", "locked"), { recursive: true });
      writeFileSync(path.join(h, "sub", "a.txt"), "a");
    });
    if (asRoot) chownAll(data);
    chmodSync(path.join(home, "sub", "locked"), 0o000);
    proc = await startServerProcess(["--log-level", "silent"], data, asRoot ? { uid: NOBODY } : {});
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

describe("perm facts", () => {
  it.skipIf(!asRoot)("follow the mode bits and owners as the server's user sees them", async () => {
    const { data, home } = await aliceData("myftp-perm-facts-", (h) => {
      mkdirSync(path.join(h, "sub"));
      writeFileSync(path.join(h, "own.txt"), "own");
      writeFileSync(path.join(h, "ro.txt"), "ro");
    });
    chownAll(data);
    chmodSync(path.join(home, "ro.txt"), 0o444);
    // Left to root: a file nobody may only read, a directory nobody may list but not change, and its file.
    writeFileSync(path.join(home, "rootfile.txt"), "root");
    mkdirSync(path.join(home, "rootdir"), { mode: 0o755 });
    writeFileSync(path.join(home, "rootdir", "inner.txt"), "inner");
    mkdirSync(path.join(home, "closed"), { mode: 0o700 });
    // A sticky directory anyone may write, with root's files and one of nobody's.
    mkdirSync(path.join(home, "sticky"));
    chmodSync(path.join(home, "sticky"), 0o1777);
    writeFileSync(path.join(home, "sticky", "root666.txt"), "root666");
    chmodSync(path.join(home, "sticky", "root666.txt"), 0o666);
    writeFileSync(path.join(home, "sticky", "rootown.txt"), "rootown");
    writeFileSync(path.join(home, "sticky", "mine.txt"), "mine");
    chownSync(path.join(home, "sticky", "mine.txt"), NOBODY, NOBODY);
    // root's link to nobody's file: the link's owner, not the file's, decides who may remove the name.
    symlinkSync("mine.txt", path.join(home, "sticky", "rootlink"));
    // Readable but not searchable by nobody: its names could be read, nothing about them.
    mkdirSync(path.join(home, "nox"));
    writeFileSync(path.join(home, "nox", "in.txt"), "in");
    chownSync(path.join(home, "nox"), NOBODY, NOBODY);
    chmodSync(path.join(home, "nox"), 0o600);

    proc = await startServerProcess(["--log-level", "silent"], data, { uid: NOBODY });
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
    // In the sticky directory only nobody's own file may be removed, renamed or replaced.
    const sticky = await facts("/sticky");
    expect(sticky.get("root666.txt")).toBe("arw");
    expect(sticky.get("rootown.txt")).toBe("r");
    expect(sticky.get("mine.txt")).toBe("adfrw");
    expect(sticky.get("rootlink")).toBe("arw");
    expect(await mlst("/sticky/rootlink")).toBe("arw");
    expect(await mlst("/sticky/mine.txt")).toBe("adfrw");
    expect((await c.cmd("DELE sticky/rootlink")).code).toBe(550);
    expect((await c.retrieve("LIST /")).data.toString()).toMatch(/^drwxrwxrwt .* sticky\r$/m);
    // Root's file there may not be replaced by another, so STOR writes it in place (it may be written), leaving no
    // second name of it behind; renaming over it is refused.
    expect((await c.store("STOR sticky/root666.txt", "x")).final.code).toBe(226);
    expect(readFileSync(path.join(home, "sticky", "root666.txt"), "utf8")).toBe("x");
    expect(statSync(path.join(home, "sticky", "root666.txt")).uid).toBe(0);
    await c.expect("RNFR sticky/mine.txt", 350);
    expect((await c.cmd("RNTO sticky/root666.txt")).code).toBe(550);
    expect((await c.cmd("DELE sticky/rootown.txt")).code).toBe(550);
    expect(readdirSync(path.join(home, "sticky")).sort()).toEqual(["mine.txt", "root666.txt", "rootlink", "rootown.txt"]);
    // A directory nobody may read but not search is refused, not listed as empty.
    for (const verb of ["LIST", "NLST", "MLSD"]) expect((await c.retrieve(`${verb} nox`)).final.code).toBe(550);
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

describe("STOR over a writable file in a directory the server may not change", () => {
  it("writes the file in place: an aborted one keeps just what arrived, and the usage stays exact", async () => {
    const { data, home } = await aliceData(
      "myftp-in-place-",
      (h) => {
        mkdirSync(path.join(h, "locked"));
        writeFileSync(path.join(h, "locked", "w.bin"), Buffer.alloc(100_000, "a"));
        writeFileSync(path.join(h, "locked", "ro.txt"), "ro");
      },
      300_000,
    );
    if (asRoot) chownAll(data);
    const locked = path.join(home, "locked");
    const file = path.join(locked, "w.bin");
    chmodSync(path.join(locked, "ro.txt"), 0o444);
    chmodSync(locked, 0o555);
    proc = await startServerProcess(["--log-level", "silent"], data, asRoot ? { uid: NOBODY } : {});
    const c = await RawFtp.login(proc.port, "alice", "secret", { type: "I" });
    clients.push(c);
    const used = async () => Number(/used (\d+) of/.exec((await c.expect("SITE QUOTA", 200)).text)![1]);
    const diskBytes = () => readdirSync(locked).reduce((n, f) => n + statSync(path.join(locked, f)).size, 0);

    const mlsd = (await c.retrieve("MLSD /locked")).data.toString("utf8");
    expect(mlsd).toMatch(/perm=arw; w\.bin\r\n/);
    expect(mlsd).toMatch(/perm=r; ro\.txt\r\n/);
    expect((await c.store("STOR locked/w.bin", "new")).final.code).toBe(226);
    expect(readFileSync(file, "utf8")).toBe("new");
    expect(readdirSync(locked).sort()).toEqual(["ro.txt", "w.bin"]);
    // What the directory or the file does not allow stays refused.
    expect((await c.store("STOR locked/ro.txt", "x")).final.code).toBe(550);
    expect((await c.store("STOR locked/other.bin", "x")).final.code).toBe(550);
    expect(await used()).toBe(diskBytes());

    // An overwrite that stops after 1000 bytes leaves those 1000 bytes (a prefix a resume continues), not them
    // followed by the old content.
    expect((await c.store("STOR locked/w.bin", Buffer.alloc(100_000, "a"))).final.code).toBe(226);
    const d = await c.epsv();
    expect((await c.cmd("STOR locked/w.bin")).code).toBe(150);
    d.write(Buffer.alloc(1000, "b"));
    await until(() => readFileSync(file).subarray(0, 1000).equals(Buffer.alloc(1000, "b")), 10_000, "first bytes written in place");
    // While it runs the file holds just what arrived (the old bytes went with the first new one), so a crash now
    // would leave a file a resume continues, not new bytes followed by old ones.
    expect(statSync(file).size).toBe(1000);
    c.send("ABOR");
    expect((await c.read()).code).toBe(426);
    expect((await c.read()).code).toBe(226);
    d.destroy();
    expect(readFileSync(file).equals(Buffer.alloc(1000, "b"))).toBe(true);
    expect((await c.cmd("SIZE locked/w.bin")).text).toBe("1000");
    expect(await used()).toBe(diskBytes());
    // A resume from there completes the file.
    await c.expect("REST 1000", 350);
    expect((await c.store("STOR locked/w.bin", Buffer.alloc(500, "c"))).final.code).toBe(226);
    expect(readFileSync(file).equals(Buffer.concat([Buffer.alloc(1000, "b"), Buffer.alloc(500, "c")]))).toBe(true);

    // Past the quota: refused, and whatever is left of the file is counted exactly.
    expect((await c.store("STOR locked/w.bin", Buffer.alloc(400_000, "q"))).final.code).toBe(552);
    const left = readFileSync(file);
    expect(left.length).toBeLessThanOrEqual(300_000);
    expect(await used()).toBe(diskBytes());
    expect(readdirSync(locked).sort()).toEqual(["ro.txt", "w.bin"]);
  });
});

describe("STOR in place that ends before any byte came", () => {
  async function lockedFile(): Promise<{ c: RawFtp; file: string }> {
    const { data, home } = await aliceData("myftp-in-place-early-", (h) => {
      mkdirSync(path.join(h, "locked"));
      writeFileSync(path.join(h, "locked", "w.bin"), Buffer.alloc(100_000, "a"));
    });
    if (asRoot) chownAll(data);
    chmodSync(path.join(home, "locked"), 0o555);
    proc = await startServerProcess(["--log-level", "silent"], data, asRoot ? { uid: NOBODY } : {});
    const c = await RawFtp.login(proc.port, "alice", "secret", { type: "I" });
    clients.push(c);
    return { c, file: path.join(home, "locked", "w.bin") };
  }

  it("leaves the file as it was after an ABOR", async () => {
    const { c, file } = await lockedFile();
    const d = await c.epsv();
    expect((await c.cmd("STOR locked/w.bin")).code).toBe(150);
    c.send("ABOR");
    expect((await c.read()).code).toBe(426);
    expect((await c.read()).code).toBe(226);
    d.destroy();
    expect(readFileSync(file).equals(Buffer.alloc(100_000, "a"))).toBe(true);
  });

  it("leaves the file as it was after REST and a reset data connection", async () => {
    const { c, file } = await lockedFile();
    const d = await c.epsv();
    await c.expect("REST 1000", 350);
    expect((await c.cmd("STOR locked/w.bin")).code).toBe(150);
    d.resetAndDestroy();
    expect((await c.read()).code).toBeGreaterThanOrEqual(400);
    expect(readFileSync(file).equals(Buffer.alloc(100_000, "a"))).toBe(true);
  });
});
