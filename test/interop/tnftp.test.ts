// tnftp (the NetBSD ftp client) against myftpd, driven by a command script: login, ls/dir, mkdir/cd, put/get of a
// file of a few MiB, a 0-byte file and odd names, reget (resume), mput/mget with globs, rename/delete/rmdir, passive
// (EPSV, PASV) and active (EPRT, PORT) data connections, SITE QUOTA, an upload past the quota, and sunique (STOU).
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { diskBytes, killRunning, sha256File } from "../helpers/util.js";
import { hasCommand, makeFixtures, ODD_NAMES, run, sha256 } from "./fixtures.js";

const QUOTA = 40 * 1024 * 1024;

describe.skipIf(!hasCommand("tnftp"))("tnftp", () => {
  let srv: RunningServer;
  let home: string;
  let local: string;
  let hashes: Map<string, string>;

  beforeAll(async () => {
    srv = await startServer([{ name: "alice", password: "tn secret", quota: QUOTA }]);
    home = srv.homeOf("alice");
    local = tempDir("myftp-tnftp-");
    hashes = makeFixtures(path.join(local, "src"));
    const big = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(path.join(local, "src", "big.bin"), big);
    hashes.set("big.bin", sha256(big));
  });
  afterEach(() => killRunning());
  afterAll(async () => {
    killRunning();
    await srv?.close();
    rmSync(local, { recursive: true, force: true });
  });

  /** Runs tnftp with a command script in `cwd` (-n: no auto-login, -i: no prompts, -v: print every reply). */
  async function tnftp(commands: string[], cwd: string) {
    const input = ['user alice "tn secret"', "binary", ...commands, "quit", ""].join("\n");
    const r = await run("tnftp", ["-n", "-i", "-v", "127.0.0.1", String(srv.port)], { input, cwd, env: { HOME: local } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^230 /m);
    return r;
  }

  function dir(name: string): string {
    const d = path.join(local, name);
    mkdirSync(d, { recursive: true });
    return d;
  }

  const q = (name: string) => `"${name}"`;

  it("put, ls, dir, get: every file intact, listings in ls -l form", async () => {
    const src = path.join(local, "src");
    const names = [...hashes.keys()];
    const up = await tnftp(['mkdir "up 目录"', 'cd "up 目录"', ...names.map((n) => `put ${q(n)}`), "ls", "dir big.bin"], src);
    expect(up.stdout).toMatch(/^257 "\/up 目录" created/m);
    expect(up.stdout).not.toMatch(/^5\d\d /m);
    for (const n of names) expect(await sha256File(path.join(home, "up 目录", n)), n).toBe(hashes.get(n));
    expect(up.stdout).toMatch(/^-rw-r--r-- 1 alice alice +3145745 \w{3} [ \d]\d [\d ]\d:\d\d big\.bin$/m);
    expect(up.stdout).toMatch(/^-rw-r--r-- 1 alice alice +0 .* zero\.bin$/m);
    expect(up.stdout).toMatch(/ name with spaces\.txt$/m);

    const down = dir("down");
    const get = await tnftp(['cd "up 目录"', ...names.map((n) => `get ${q(n)}`)], down);
    expect(get.stdout).not.toMatch(/^5\d\d /m);
    for (const n of names) expect(await sha256File(path.join(down, n)), n).toBe(hashes.get(n));
  });

  it("reget resumes a truncated download with REST", async () => {
    expect((await tnftp(["mkdir re", "cd re", "put big.bin"], path.join(local, "src"))).stdout).toMatch(/^226 /m);
    const d = dir("reget");
    writeFileSync(path.join(d, "big.bin"), readFileSync(path.join(local, "src", "big.bin")).subarray(0, 1_000_001));
    const r = await tnftp(["cd re", "reget big.bin"], d);
    expect(r.stdout).toMatch(/^350 Restarting at 1000001\b/m);
    expect(r.stdout).toMatch(/^226 Transfer complete \(2145744 bytes\)/m);
    expect(await sha256File(path.join(d, "big.bin"))).toBe(hashes.get("big.bin"));

    // A local copy that is already whole: REST at the end, nothing sent, the file unchanged.
    const again = await tnftp(["cd re", "reget big.bin"], d);
    expect(again.stdout).toMatch(/^226 Transfer complete \(0 bytes\)/m);
    expect(await sha256File(path.join(d, "big.bin"))).toBe(hashes.get("big.bin"));
    truncateSync(path.join(d, "big.bin"), 0);
  });

  it("mput and mget with globs; rename, delete and rmdir", async () => {
    const src = path.join(local, "src");
    const up = await tnftp(["mkdir globs", "cd globs", "mput *.txt", "mput *.bin", "nlist"], src);
    expect(up.stdout).not.toMatch(/^5\d\d /m);
    const txt = ODD_NAMES.filter((n) => n.endsWith(".txt")).sort();
    expect(readdirSync(path.join(home, "globs")).filter((n) => n.endsWith(".txt")).sort()).toEqual(txt);

    const d = dir("mget");
    const r = await tnftp(["cd globs", "mget *.txt", "mget z*"], d);
    expect(r.stdout).not.toMatch(/^5\d\d /m);
    expect(readdirSync(d).sort()).toEqual([...txt, "zero.bin"].sort());
    for (const n of readdirSync(d)) expect(await sha256File(path.join(d, n)), n).toBe(hashes.get(n));

    const ops = await tnftp([
      "cd globs",
      `rename ${q("name with spaces.txt")} ${q("改名 后.txt")}`,
      "delete one.bin",
      "cd /",
      "rmdir globs", // not empty: refused
      "mdelete globs/*",
      "rmdir globs",
    ], d);
    expect(ops.stdout).toMatch(/^350 /m);
    expect(ops.stdout).toMatch(/^250 Rename successful/m);
    expect(ops.stdout).toMatch(/^250 File \/globs\/one\.bin deleted/m);
    expect(ops.stdout).toMatch(/^550 Directory not empty/m);
    expect(ops.stdout).toMatch(/^250 File \/globs\/改名 后\.txt deleted/m);
    expect(ops.stdout).toMatch(/^250 Directory \/globs removed/m);
    expect(existsSync(path.join(home, "globs"))).toBe(false);
  });

  it.each([
    ["EPSV", []],
    ["PASV", ["epsv4 off"]],
    ["EPRT", ["passive off"]],
    ["PORT", ["passive off", "epsv4 off"]],
  ])("transfers and lists over %s", async (verb, settings) => {
    const d = dir(`mode-${verb}`);
    writeFileSync(path.join(d, "up.bin"), readFileSync(path.join(local, "src", "big.bin")));
    const r = await tnftp([...settings, `mkdir m-${verb}`, `cd m-${verb}`, "put up.bin", "get up.bin back.bin", "ls"], d);
    const setup = verb === "EPSV" ? /^229 / : verb === "PASV" ? /^227 / : new RegExp(`^200 ${verb} command successful`);
    expect(r.stdout.split("\n").filter((l) => setup.test(l)).length, r.stdout).toBe(3);
    expect(r.stdout).not.toMatch(/^5\d\d /m);
    expect(r.stdout).toMatch(/ up\.bin$/m);
    expect(await sha256File(path.join(home, `m-${verb}`, "up.bin"))).toBe(hashes.get("big.bin"));
    expect(await sha256File(path.join(d, "back.bin"))).toBe(hashes.get("big.bin"));
  });

  it("sunique puts with STOU: a free name is kept, a taken one gets name.1, name.2, and no file is overwritten", async () => {
    const d = dir("sunique");
    const datas = [randomBytes(100_000), randomBytes(70_000), randomBytes(5)];
    const subs = ["one", "two", "three"];
    subs.forEach((sub, i) => {
      mkdirSync(path.join(d, sub));
      writeFileSync(path.join(d, sub, "data.bin"), datas[i]!);
    });
    const r = await tnftp(["mkdir uniq", "cd uniq", "sunique", ...subs.flatMap((sub) => [`lcd ${sub}`, "put data.bin", "lcd .."]), "ls"], d);
    expect(r.stdout).toMatch(/^Store unique on\.?$/m);
    expect(r.stdout).not.toMatch(/^5\d\d /m);
    // RFC 1123 §4.1.2.9: the 150 names the file stored.
    const named = r.stdout.split("\n").filter((l) => l.startsWith("150 FILE"));
    expect(named, r.stdout).toEqual(["150 FILE: data.bin", "150 FILE: data.bin.1", "150 FILE: data.bin.2"]);
    expect(r.stdout).toMatch(/^226 Transfer complete \(100000 bytes\); stored as data\.bin$/m);
    expect(readdirSync(path.join(home, "uniq")).sort()).toEqual(["data.bin", "data.bin.1", "data.bin.2"]);
    for (const [name, data] of [["data.bin", datas[0]!], ["data.bin.1", datas[1]!], ["data.bin.2", datas[2]!]] as const) {
      expect(readFileSync(path.join(home, "uniq", name)).equals(data), name).toBe(true);
    }
  });

  it("quote SITE QUOTA shows the exact usage; a put past the quota gets 552 and changes nothing", async () => {
    const used = diskBytes(home);
    const d = dir("quota");
    const r1 = await tnftp(["quote SITE QUOTA"], d);
    expect(r1.stdout).toMatch(new RegExp(`^200 Quota for alice: used ${used} of ${QUOTA} bytes`, "m"));

    writeFileSync(path.join(d, "too-big.bin"), randomBytes(QUOTA - used + 4096));
    const r2 = await tnftp(["put too-big.bin", "quote SITE QUOTA"], d);
    expect(r2.stdout).toMatch(/^552 /m);
    expect(r2.stdout).toMatch(new RegExp(`^200 Quota for alice: used ${used} of`, "m"));
    expect(existsSync(path.join(home, "too-big.bin"))).toBe(false);
    expect(diskBytes(home)).toBe(used);
  });
});
