// STOU (RFC 959 §4.1.3) over raw control connections: the name the server picks, or the variant of a taken one, in
// the 150 (RFC 1123 §4.1.2.9) and the 226; exclusive creation against other uploads of the same name; quota, ABOR and
// a broken data connection counted exactly; REST refused; the jail; the command table's 530 and 425; HELP and FEAT;
// PROT P.

import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, storeMatchesDisk, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { portRefused, RawFtp, type Reply, sessionInNewDir } from "../helpers/raw-ftp.js";
import { diskBytes, until } from "../helpers/util.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

const clients: RawFtp[] = [];
const sockets: Socket[] = [];
const servers: RunningServer[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of clients.splice(0)) await c.close();
});
afterAll(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function start(quota: number | null = 1024 ** 3, opts = {}): Promise<RunningServer> {
  const s = await startServer([{ name: "alice", password: "secret", quota }], { maxSessionsPerUser: 20, ...opts });
  servers.push(s);
  return s;
}

async function login(s: RunningServer): Promise<RawFtp> {
  const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
  clients.push(c);
  return c;
}

/** The name a STOU's 150 gives ("150 FILE: name"); fails on any other reply. */
function fileName(prelim: Reply): string {
  expect(prelim.code, prelim.all).toBe(150);
  const m = /^FILE: (.+)$/.exec(prelim.text);
  expect(m, prelim.all).not.toBeNull();
  return m![1]!;
}

/** SITE QUOTA's figure, the ledger's stored figure and the disk agree, once no upload runs; gives that figure. */
async function settledUsage(s: RunningServer, c: RawFtp): Promise<number> {
  const used = await storeMatchesDisk(s, "alice", 5000);
  expect(await c.usedBytes()).toBe(used);
  return used;
}

describe("STOU: the names", () => {
  let srv: RunningServer;
  let home: string;
  let n = 0;

  beforeAll(async () => {
    srv = await start();
    home = srv.homeOf("alice");
  });

  /** A fresh directory in the home, made the session's working directory. */
  async function inDir(): Promise<{ c: RawFtp; dir: string; name: string }> {
    const name = `d${n++}`;
    return { ...(await sessionInNewDir(() => login(srv), home, name)), name };
  }

  it("without an argument: a new name in the current directory, given in the 150 and the 226, holding the bytes", async () => {
    const { c, dir } = await inDir();
    const handed = srv.server.transfers.handedOver;
    const data = randomBytes(300 * KiB);
    const r = await c.store("STOU", data);
    const name = fileName(r.prelim);
    expect(name).toMatch(/^stou-[0-9a-f]{12}$/);
    expect(r.final.all).toBe(`226 Transfer complete (${data.length} bytes); stored as ${name}`);
    expect(readdirSync(dir)).toEqual([name]);
    expect(sha(readFileSync(path.join(dir, name)))).toBe(sha(data));
    // A second one gets a name of its own; "STOU " with an empty argument is STOU alone.
    const again = await c.store("STOU ", "second");
    const other = fileName(again.prelim);
    expect(again.final.code).toBe(226);
    expect(other).not.toBe(name);
    expect(readFileSync(path.join(dir, other), "utf8")).toBe("second");
    // Binary uploads go to a transfer process, as STOR's do.
    expect(srv.server.transfers.handedOver).toBe(handed + 2);
  });

  it("with a free name: that name, and a 0-byte upload makes an empty file", async () => {
    const { c, dir } = await inDir();
    const data = randomBytes(70 * KiB);
    const r = await c.store("STOU new file.bin", data);
    expect(fileName(r.prelim)).toBe("new file.bin");
    expect(r.final.all).toBe(`226 Transfer complete (${data.length} bytes); stored as new file.bin`);
    expect(sha(readFileSync(path.join(dir, "new file.bin")))).toBe(sha(data));
    const empty = await c.store("STOU empty", Buffer.alloc(0));
    expect(fileName(empty.prelim)).toBe("empty");
    expect(empty.final.code).toBe(226);
    expect(statSync(path.join(dir, "empty")).size).toBe(0);
  });

  it("with a taken name: name.1, then name.2; the file, directory or link that had the name is untouched", async () => {
    const { c, dir } = await inDir();
    const old = randomBytes(50 * KiB);
    writeFileSync(path.join(dir, "taken.bin"), old);
    const before = statSync(path.join(dir, "taken.bin"));
    const one = randomBytes(20 * KiB);
    const two = randomBytes(30 * KiB);
    const r1 = await c.store("STOU taken.bin", one);
    expect(fileName(r1.prelim)).toBe("taken.bin.1");
    expect(r1.final.all).toBe(`226 Transfer complete (${one.length} bytes); stored as taken.bin.1`);
    const r2 = await c.store("STOU taken.bin", two);
    expect(fileName(r2.prelim)).toBe("taken.bin.2");
    expect(r2.final.code).toBe(226);
    const after = statSync(path.join(dir, "taken.bin"));
    expect(sha(readFileSync(path.join(dir, "taken.bin")))).toBe(sha(old));
    expect([after.ino, after.size, after.mtimeMs]).toEqual([before.ino, before.size, before.mtimeMs]);
    expect(sha(readFileSync(path.join(dir, "taken.bin.1")))).toBe(sha(one));
    expect(sha(readFileSync(path.join(dir, "taken.bin.2")))).toBe(sha(two));

    // A directory and a link (dangling: never followed, so its target is not created) take a name as a file does.
    mkdirSync(path.join(dir, "sub"));
    symlinkSync("missing-target", path.join(dir, "link"));
    expect(fileName((await c.store("STOU sub", "s")).prelim)).toBe("sub.1");
    expect(fileName((await c.store("STOU link", "l")).prelim)).toBe("link.1");
    expect(statSync(path.join(dir, "sub")).isDirectory()).toBe(true);
    expect(lstatSync(path.join(dir, "link")).isSymbolicLink()).toBe(true);
    expect(existsSync(path.join(dir, "missing-target"))).toBe(false);
    expect(readFileSync(path.join(dir, "sub.1"), "utf8")).toBe("s");
    expect(readFileSync(path.join(dir, "link.1"), "utf8")).toBe("l");
  });

  it("the 150 names the file from the current directory as the argument did", async () => {
    const { c, dir, name } = await inDir();
    mkdirSync(path.join(dir, "in"));
    writeFileSync(path.join(dir, "in", "x"), "old");
    const r1 = await c.store("STOU in/x", "1");
    expect(fileName(r1.prelim)).toBe("in/x.1");
    expect(r1.final.text).toMatch(/; stored as in\/x\.1$/);
    const r2 = await c.store(`STOU /${name}/in/x`, "2");
    expect(fileName(r2.prelim)).toBe(`/${name}/in/x.2`);
    await c.expect("CWD in", 250);
    const r3 = await c.store("STOU ../y", "3");
    expect(fileName(r3.prelim)).toBe("../y");
    expect(readFileSync(path.join(dir, "in", "x.1"), "utf8")).toBe("1");
    expect(readFileSync(path.join(dir, "in", "x.2"), "utf8")).toBe("2");
    expect(readFileSync(path.join(dir, "y"), "utf8")).toBe("3");
    expect(readFileSync(path.join(dir, "in", "x"), "utf8")).toBe("old");
  });

  it("with the name and name.1 to name.99 taken: 553 naming the bound, nothing created, the data set-up dropped", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "many"), "0");
    for (let i = 1; i <= 99; i++) writeFileSync(path.join(dir, `many.${i}`), String(i));
    const port = await c.epsvPort();
    const r = await c.cmd("STOU many");
    expect(r.all).toBe("553 No unique name left: many and many.1 to many.99 are taken");
    expect(readdirSync(dir)).toHaveLength(100);
    // The passive port is closed: a later transfer needs a new set-up.
    await until(() => portRefused(port), 2000, "passive port closed");
    expect((await c.cmd("STOU many")).code).toBe(425);
    // A gap is found.
    await c.expect("DELE many.57", 250);
    const again = await c.store("STOU many", "new");
    expect(fileName(again.prelim)).toBe("many.57");
    expect(readFileSync(path.join(dir, "many.57"), "utf8")).toBe("new");
    for (let i = 1; i <= 99; i++) if (i !== 57) expect(readFileSync(path.join(dir, `many.${i}`), "utf8")).toBe(String(i));
  });

  it("a taken name near the longest a file name may be: 553 once the variants grow too long, naming the ones taken", async () => {
    const { c, dir } = await inDir();
    // 254 bytes: "name.1" would be 256, past the file system's 255.
    const full = "f".repeat(254);
    writeFileSync(path.join(dir, full), "0");
    const port = await c.epsvPort();
    expect((await c.cmd(`STOU ${full}`)).all).toBe(`553 No unique name left: ${full} is taken, and ${full}.1 would be too long`);
    await until(() => portRefused(port), 2000, "passive port closed");
    // 253 bytes: name.1 to name.9 fit in 255 bytes, name.10 does not.
    const near = "n".repeat(253);
    for (const n of [near, ...Array.from({ length: 9 }, (_, i) => `${near}.${i + 1}`)]) writeFileSync(path.join(dir, n), "0");
    await c.epsvPort();
    expect((await c.cmd(`STOU ${near}`)).all).toBe(`553 No unique name left: ${near} and ${near}.1 to ${near}.9 are taken, and ${near}.10 would be too long`);
    expect(readdirSync(dir)).toHaveLength(11);
    // A gap among the ones that fit is found.
    await c.expect(`DELE ${near}.4`, 250);
    const r = await c.store(`STOU ${near}`, "new");
    expect(fileName(r.prelim)).toBe(`${near}.4`);
    expect(readFileSync(path.join(dir, `${near}.4`), "utf8")).toBe("new");
  });

  it("an argument that names no file is refused with 553: a trailing slash, '.', '..', a server temporary name", async () => {
    const { c, dir } = await inDir();
    mkdirSync(path.join(dir, "sub"));
    for (const arg of ["sub/", ".", "..", "sub/..", "/", ".myftp-upload-0123456789ab.x"]) {
      const r = await c.store(`STOU ${arg}`, "x");
      expect(r.prelim.code, `${arg}: ${r.prelim.all}`).toBe(553);
    }
    expect(readdirSync(dir)).toEqual(["sub"]);
    expect(readdirSync(path.join(dir, "sub"))).toEqual([]);
    await c.epsvPort();
    expect((await c.cmd("STOU sub/")).all).toBe("553 STOU needs a file name, or none to have one chosen");
    expect((await c.cmd("STOU x")).all).toBe("425 Use PORT, EPRT, PASV or EPSV first");
  });

  it("a missing directory in the argument: 550, as for STOR", async () => {
    const { c, dir } = await inDir();
    const r = await c.store("STOU nowhere/x", "x");
    expect(r.prelim.code).toBe(550);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("a name longer than a file name may be: 553, nothing created", async () => {
    const { c, dir } = await inDir();
    const r = await c.store(`STOU ${"n".repeat(256)}`, "x");
    expect(r.prelim.all).toBe("553 Invalid path");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("TYPE A stores CRLF line ends as LF, as STOR does", async () => {
    const { c, dir } = await inDir();
    await c.expect("TYPE A", 200);
    const r = await c.store("STOU text.txt", "a\r\nb\r\n".repeat(1000));
    expect(fileName(r.prelim)).toBe("text.txt");
    expect(r.final.code).toBe(226);
    expect(readFileSync(path.join(dir, "text.txt"), "utf8")).toBe("a\nb\n".repeat(1000));
  });
});

describe("STOU beside other uploads of the same name", () => {
  let srv: RunningServer;
  let home: string;
  let n = 0;

  beforeAll(async () => {
    srv = await start();
    home = srv.homeOf("alice");
  });

  async function dir(): Promise<{ name: string; dir: string }> {
    const name = `c${n++}`;
    mkdirSync(path.join(home, name));
    return { name, dir: path.join(home, name) };
  }

  it("two STOUs of one name sent at once: two files, each whole", async () => {
    const { name, dir: d } = await dir();
    const a = await login(srv);
    const b = await login(srv);
    const da = randomBytes(400 * KiB);
    const db = randomBytes(300 * KiB);
    const [ra, rb] = await Promise.all([a.store(`STOU ${name}/same.bin`, da), b.store(`STOU ${name}/same.bin`, db)]);
    const na = fileName(ra.prelim);
    const nb = fileName(rb.prelim);
    expect([na, nb].sort()).toEqual([`${name}/same.bin`, `${name}/same.bin.1`]);
    expect([ra.final.code, rb.final.code]).toEqual([226, 226]);
    expect(readdirSync(d).sort()).toEqual(["same.bin", "same.bin.1"]);
    expect(sha(readFileSync(path.join(home, na)))).toBe(sha(da));
    expect(sha(readFileSync(path.join(home, nb)))).toBe(sha(db));
  });

  it("six STOUs of one name at once: six names, each file the one its session sent", async () => {
    const { name, dir: d } = await dir();
    const sessions = await Promise.all([0, 1, 2, 3, 4, 5].map(() => login(srv)));
    const payloads = sessions.map((_, i) => randomBytes(64 * KiB + i));
    const replies = await Promise.all(sessions.map((c, i) => c.store(`STOU ${name}/f`, payloads[i]!)));
    const names = replies.map((r) => fileName(r.prelim));
    expect(replies.map((r) => r.final.code)).toEqual([226, 226, 226, 226, 226, 226]);
    expect([...names].sort()).toEqual(["f", "f.1", "f.2", "f.3", "f.4", "f.5"].map((f) => `${name}/${f}`));
    names.forEach((shown, i) => expect(sha(readFileSync(path.join(home, shown))), shown).toBe(sha(payloads[i]!)));
    expect(readdirSync(d)).toHaveLength(6);
  });

  it("a name another session is still uploading is passed over; the file a STOU writes is claimed as STOR's is", async () => {
    const { name, dir: d } = await dir();
    const a = await login(srv);
    const b = await login(srv);
    // A STOU that has sent half its data and waits.
    const dc = await a.dataConnection("EPSV");
    expect(fileName(await a.cmd(`STOU ${name}/held.bin`))).toBe(`${name}/held.bin`);
    const sock = await dc.get();
    sockets.push(sock);
    const first = randomBytes(100 * KiB);
    sock.write(first);
    await until(() => existsSync(path.join(d, "held.bin")) && statSync(path.join(d, "held.bin")).size === first.length, 5000, "half the upload on disk");
    // Another STOU of the name gets the next one; STOR, APPE, DELE and RNFR of the file being written wait with 450.
    const other = randomBytes(10 * KiB);
    const rb = await b.store(`STOU ${name}/held.bin`, other);
    expect(fileName(rb.prelim)).toBe(`${name}/held.bin.1`);
    expect(rb.final.code).toBe(226);
    expect((await b.store(`STOR ${name}/held.bin`, "x")).prelim.code).toBe(450);
    expect((await b.store(`APPE ${name}/held.bin`, "x")).prelim.code).toBe(450);
    expect((await b.cmd(`DELE ${name}/held.bin`)).code).toBe(450);
    expect((await b.cmd(`RNFR ${name}/held.bin`)).code).toBe(450);
    // The held upload ends whole.
    const rest = randomBytes(50 * KiB);
    sock.end(rest);
    expect((await a.read()).all).toBe(`226 Transfer complete (${first.length + rest.length} bytes); stored as ${name}/held.bin`);
    expect(sha(readFileSync(path.join(d, "held.bin")))).toBe(sha(Buffer.concat([first, rest])));
    expect(sha(readFileSync(path.join(d, "held.bin.1")))).toBe(sha(other));
  });

  it("a new file a STOR is writing is passed over too", async () => {
    const { name, dir: d } = await dir();
    const a = await login(srv);
    const b = await login(srv);
    const dc = await a.dataConnection("EPSV");
    expect((await a.cmd(`STOR ${name}/stored.bin`)).code).toBe(150);
    const sock = await dc.get();
    sockets.push(sock);
    sock.write(Buffer.alloc(10 * KiB, 7));
    await until(() => existsSync(path.join(d, "stored.bin")) && statSync(path.join(d, "stored.bin")).size === 10 * KiB, 5000, "STOR's first bytes on disk");
    const rb = await b.store(`STOU ${name}/stored.bin`, "unique");
    expect(fileName(rb.prelim)).toBe(`${name}/stored.bin.1`);
    sock.end(Buffer.alloc(10 * KiB, 8));
    expect((await a.read()).code).toBe(226);
    expect(readFileSync(path.join(d, "stored.bin")).equals(Buffer.concat([Buffer.alloc(10 * KiB, 7), Buffer.alloc(10 * KiB, 8)]))).toBe(true);
    expect(readFileSync(path.join(d, "stored.bin.1"), "utf8")).toBe("unique");
  });
});

describe("STOU: quota and transfers cut off", () => {
  it("past the quota: 150 with the name, then 552; the new file is removed and the usage is exact", async () => {
    const s = await start(MiB);
    const c = await login(s);
    const first = randomBytes(600 * KiB);
    expect(fileName((await c.store("STOU one.bin", first)).prelim)).toBe("one.bin");
    const r = await c.store("STOU one.bin", randomBytes(600 * KiB));
    expect(fileName(r.prelim)).toBe("one.bin.1");
    expect(r.final.code).toBe(552);
    expect(existsSync(path.join(s.homeOf("alice"), "one.bin.1"))).toBe(false);
    expect(readFileSync(path.join(s.homeOf("alice"), "one.bin")).equals(first)).toBe(true);
    expect(await settledUsage(s, c)).toBe(600 * KiB);
    // The name is free again, and the session goes on.
    const small = await c.store("STOU one.bin", randomBytes(100 * KiB));
    expect(fileName(small.prelim)).toBe("one.bin.1");
    expect(small.final.code).toBe(226);
    expect(await settledUsage(s, c)).toBe(700 * KiB);
  });

  it("ALLO past the quota: 552 before any data, and no file left", async () => {
    const s = await start(MiB);
    const c = await login(s);
    await c.expect(`ALLO ${2 * MiB}`, 200);
    const r = await c.store("STOU announced.bin", randomBytes(10 * KiB));
    expect(r.prelim.code).toBe(552);
    expect(readdirSync(s.homeOf("alice"))).toEqual([]);
    expect(await settledUsage(s, c)).toBe(0);
  });

  /** Starts a STOU, sends `bytes` and waits until they are on disk; gives the data socket and the name. */
  async function partial(s: RunningServer, c: RawFtp, arg: string, bytes: number): Promise<{ sock: Socket; name: string }> {
    const dc = await c.dataConnection("EPSV");
    const name = fileName(await c.cmd(`STOU ${arg}`));
    const sock = await dc.get();
    sockets.push(sock);
    sock.write(randomBytes(bytes));
    const file = path.join(s.homeOf("alice"), name);
    await until(() => existsSync(file) && statSync(file).size >= bytes, 5000, "partial bytes on disk");
    return { sock, name };
  }

  // With a quota far from full, a transfer process is granted room ahead of what it writes: the surplus goes back.
  it.each([
    ["1 MiB", MiB],
    ["1 GiB", 1024 * MiB],
  ])("ABOR (quota %s): 426 then 226; the partial file stays, counted exactly, and REST+STOR of the announced name resumes it", async (_, quota) => {
    const s = await start(quota);
    const c = await login(s);
    const { sock, name } = await partial(s, c, "", 256 * KiB);
    c.send("ABOR");
    expect([(await c.read()).code, (await c.read()).code]).toEqual([426, 226]);
    sock.destroy();
    const file = path.join(s.homeOf("alice"), name);
    const used = await settledUsage(s, c);
    expect(used).toBe(statSync(file).size);
    expect(used).toBeGreaterThanOrEqual(256 * KiB);
    await c.expect(`REST ${used}`, 350);
    expect((await c.store(`STOR ${name}`, randomBytes(100 * KiB))).final.code).toBe(226);
    expect(statSync(file).size).toBe(used + 100 * KiB);
    expect(await settledUsage(s, c)).toBe(used + 100 * KiB);
  });

  it.each([
    ["1 MiB", MiB],
    ["1 GiB", 1024 * MiB],
  ])("a broken data connection (quota %s): 426; the partial file stays, counted exactly", async (_, quota) => {
    const s = await start(quota);
    const c = await login(s);
    const { sock, name } = await partial(s, c, "broken.bin", 128 * KiB);
    expect(name).toBe("broken.bin");
    sock.resetAndDestroy();
    expect((await c.read()).code).toBe(426);
    const used = await settledUsage(s, c);
    expect(used).toBe(statSync(path.join(s.homeOf("alice"), name)).size);
    expect(used).toBeGreaterThanOrEqual(128 * KiB);
  });

  it("a session that ends mid-upload leaves the partial file, counted exactly at the next login", async () => {
    const s = await start(MiB);
    const c = await login(s);
    const { sock, name } = await partial(s, c, "gone.bin", 300 * KiB);
    // The control connection goes first and the session ends, cutting the transfer; only then the data connection
    // (closed first, its end would complete the upload).
    c.sock.destroy();
    await until(() => s.server.sessionCount === 0, 5000, "session closed");
    sock.destroy();
    const c2 = await login(s);
    const used = await settledUsage(s, c2);
    expect(used).toBe(statSync(path.join(s.homeOf("alice"), name)).size);
    expect(used).toBeGreaterThanOrEqual(300 * KiB);
  });

  it("REST or RANG before STOU: 503, nothing created, and used up so the next STOU stores the whole file", async () => {
    const s = await start(MiB);
    const c = await login(s);
    const home = s.homeOf("alice");
    await c.expect("REST 100", 350);
    const r = await c.store("STOU r.bin", "whole file");
    expect(r.prelim.all).toBe("503 REST and RANG do not apply to STOU, which always stores a new file; send STOU again");
    expect(readdirSync(home)).toEqual([]);
    // The refusal drops the data set-up, as every refused transfer does.
    expect((await c.cmd("STOU r.bin")).all).toBe("425 Use PORT, EPRT, PASV or EPSV first");
    const again = await c.store("STOU r.bin", "whole file");
    expect(fileName(again.prelim)).toBe("r.bin");
    expect(again.final.code).toBe(226);
    expect(readFileSync(path.join(home, "r.bin"), "utf8")).toBe("whole file");

    await c.expect("RANG 5 9", 350);
    expect((await c.store("STOU r.bin", "ranged")).prelim.code).toBe(503);
    const third = await c.store("STOU r.bin", "third");
    expect(fileName(third.prelim)).toBe("r.bin.1");
    expect(readdirSync(home).sort()).toEqual(["r.bin", "r.bin.1"]);
    expect(readFileSync(path.join(home, "r.bin"), "utf8")).toBe("whole file");
    // REST 0 starts at the first byte: nothing to refuse.
    await c.expect("REST 0", 350);
    expect(fileName((await c.store("STOU r.bin", "fourth")).prelim)).toBe("r.bin.2");
    expect(await settledUsage(s, c)).toBe("whole file".length + "third".length + "fourth".length);
  });
});

describe("STOU and the jail", () => {
  let srv: RunningServer;
  let home: string;
  let outside: string;

  beforeAll(async () => {
    srv = await start();
    home = srv.homeOf("alice");
    outside = mkdtempSync(path.join(tmpdir(), "myftp-stou-outside-"));
    writeFileSync(path.join(outside, "secret.txt"), "secret");
    symlinkSync(outside, path.join(home, "outdir"));
    symlinkSync(path.join(outside, "secret.txt"), path.join(home, "outfile"));
    symlinkSync(path.join(outside, "created.txt"), path.join(home, "dangling"));
    mkdirSync(path.join(home, "j", "sub"), { recursive: true });
  });
  afterAll(() => rmSync(outside, { recursive: true, force: true }));

  it("'..' stops at the home: ../x from the home and ../../../x from below it land in the home", async () => {
    const c = await login(srv);
    const r1 = await c.store("STOU ../x", "1");
    expect(fileName(r1.prelim)).toBe("../x");
    expect(r1.final.code).toBe(226);
    await c.expect("CWD /j/sub", 250);
    const r2 = await c.store("STOU ../../../x", "2");
    expect(fileName(r2.prelim)).toBe("../../../x.1");
    expect(readFileSync(path.join(home, "x"), "utf8")).toBe("1");
    expect(readFileSync(path.join(home, "x.1"), "utf8")).toBe("2");
    expect(existsSync(path.join(path.dirname(home), "x"))).toBe(false);
    expect(existsSync(path.join(path.dirname(home), "x.1"))).toBe(false);
  });

  it("an absolute path is the home's: /etc/passwd-like paths are missing there (550), and nothing outside changes", async () => {
    const c = await login(srv);
    expect((await c.store("STOU /etc/passwd", "x")).prelim.code).toBe(550);
    expect((await c.store(`STOU ${outside}/new.txt`, "x")).prelim.code).toBe(550);
    expect(readdirSync(outside)).toEqual(["secret.txt"]);
  });

  it("a link leading outside is no way out: a directory link is refused, a file link is a taken name", async () => {
    const c = await login(srv);
    expect((await c.store("STOU outdir/new.txt", "x")).prelim.code).toBe(550);
    expect((await c.store("STOU outdir/secret.txt", "x")).prelim.code).toBe(550);
    // The name is taken (by the link): the upload gets the next one, in the home; the link is not followed.
    const r1 = await c.store("STOU outfile", "mine");
    expect(fileName(r1.prelim)).toBe("outfile.1");
    const r2 = await c.store("STOU dangling", "mine too");
    expect(fileName(r2.prelim)).toBe("dangling.1");
    expect(readFileSync(path.join(home, "outfile.1"), "utf8")).toBe("mine");
    expect(readFileSync(path.join(home, "dangling.1"), "utf8")).toBe("mine too");
    expect(readdirSync(outside)).toEqual(["secret.txt"]);
    expect(readFileSync(path.join(outside, "secret.txt"), "utf8")).toBe("secret");
  });
});

describe("STOU and the command table", () => {
  let srv: RunningServer;

  beforeAll(async () => {
    srv = await start();
  });

  it("before login: 530, with or without a name", async () => {
    const c = await RawFtp.connect(srv.port);
    clients.push(c);
    expect((await c.cmd("STOU")).code).toBe(530);
    expect((await c.cmd("STOU x")).code).toBe(530);
    expect(readdirSync(srv.homeOf("alice"))).toEqual([]);
  });

  it("without PASV, EPSV, PORT or EPRT: 425, and nothing is created", async () => {
    const c = await login(srv);
    expect((await c.cmd("STOU")).all).toBe("425 Use PORT, EPRT, PASV or EPSV first");
    expect((await c.cmd("STOU x")).all).toBe("425 Use PORT, EPRT, PASV or EPSV first");
    expect(readdirSync(srv.homeOf("alice"))).toEqual([]);
  });

  it("HELP lists STOU and gives its syntax; FEAT has no line for it", async () => {
    const c = await login(srv);
    const words = (await c.expect("HELP", 214)).lines.slice(1, -1).join(" ").split(/\s+/);
    expect(words).toContain("STOU");
    expect((await c.cmd("HELP stou")).all).toBe("214 Syntax: STOU [<sp> path] (store under a new, unique name)");
    const feats = (await c.expect("FEAT", 211)).lines.slice(1, -1).map((l) => l.trim());
    expect(feats.length).toBeGreaterThan(5);
    expect(feats.filter((f) => /STOU/i.test(f))).toEqual([]);
  });
});

describe("STOU under PROT P", () => {
  let srv: RunningServer;
  let certDir: string;

  beforeAll(async () => {
    const cert = await testCertificate();
    certDir = cert.dir;
    srv = await start(MiB, { tls: { cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, requireTlsSessionReuse: true });
  });
  afterAll(() => rmSync(certDir, { recursive: true, force: true }));

  async function secureLogin(): Promise<RawFtp> {
    const c = await RawFtp.connect(srv.port);
    clients.push(c);
    expect((await c.authTls()).code).toBe(234);
    await c.login("alice", "secret", { type: "I" });
    await c.protect();
    return c;
  }

  it("stores over a TLS data connection; one refused at its handshake (425) leaves no file behind", async () => {
    const c = await secureLogin();
    const data = randomBytes(200 * KiB);
    const r = await c.store("STOU tls.bin", data, { secure: true });
    expect(fileName(r.prelim)).toBe("tls.bin");
    expect(r.final.code).toBe(226);
    expect(sha(readFileSync(path.join(srv.homeOf("alice"), "tls.bin")))).toBe(sha(data));
    // A data connection that does not resume the control connection's TLS session is refused once open.
    const refused = await c.store("STOU tls.bin", data, { secure: true, resume: false });
    expect(fileName(refused.prelim)).toBe("tls.bin.1");
    expect(refused.final.code).toBe(425);
    expect(readdirSync(srv.homeOf("alice"))).toEqual(["tls.bin"]);
    expect(await settledUsage(srv, c)).toBe(data.length);
  });
});
