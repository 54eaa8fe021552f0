// rclone's FTP backend against myftpd: a tree with nested directories, a file of a few MiB, a 0-byte file and odd
// names copied up and back (MLSD and LIST listings, sizes and MFMT times), mkdir/rmdir/delete/moveto, check,
// explicit and implicit FTPS, and an upload past the quota that fails with 552 and leaves the usage figure exact.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { diskBytes, killRunning, sha256File } from "../helpers/util.js";
import { hasCommand, makeFixtures, run, sha256, tree } from "./fixtures.js";

const PASSWORD = "rclone secret";
const QUOTA = 24 * 1024 * 1024;

describe.skipIf(!hasCommand("rclone"))("rclone FTP backend", () => {
  let srv: RunningServer;
  let home: string;
  let local: string;
  let certDir: string;
  let obscured: string;
  let srcTree: Map<string, string>;

  beforeAll(async () => {
    const cert = await testCertificate();
    certDir = cert.dir;
    srv = await startServer([{ name: "alice", password: PASSWORD, quota: QUOTA }], {
      tls: { cert: readFileSync(cert.cert), key: readFileSync(cert.key) },
      implicitTlsPort: 0,
    });
    home = srv.homeOf("alice");
    local = tempDir("myftp-rclone-");
    const src = path.join(local, "src");
    makeFixtures(src);
    makeFixtures(path.join(src, "nested 目录", "deeper"));
    writeFileSync(path.join(src, "four-mib.bin"), randomBytes(4 * 1024 * 1024));
    srcTree = await tree(src);
    const o = await run("rclone", ["obscure", PASSWORD]);
    expect(o.code, o.stderr).toBe(0);
    obscured = o.stdout.trim();
  });
  afterEach(() => killRunning());
  afterAll(async () => {
    killRunning();
    await srv?.close();
    rmSync(local, { recursive: true, force: true });
    rmSync(certDir, { recursive: true, force: true });
  });

  /**
   * Runs rclone on an on-the-fly `:ftp:` remote. --ftp-concurrency stays below the server's sessions per user (10):
   * rclone's pool would otherwise keep redialling on the 421 rather than wait for one of its idle connections.
   */
  function rclone(args: string[], input?: string) {
    const flags = [
      "--config", path.join(local, "none.conf"),
      "--cache-dir", path.join(local, "cache"),
      "--ftp-host", "127.0.0.1",
      "--ftp-port", String(srv.port),
      "--ftp-user", "alice",
      "--ftp-pass", obscured,
      "--ftp-concurrency", "4",
      "--retries", "1",
      "--low-level-retries", "1",
      "--contimeout", "5s",
      "--timeout", "20s",
    ];
    return run("rclone", [...flags, ...args], { cwd: local, input });
  }

  async function used(): Promise<number> {
    const c = await RawFtp.login(srv.port, "alice", PASSWORD);
    try {
      return await c.usedBytes();
    } finally {
      await c.close();
    }
  }

  it("copies a tree up and back down, every file intact, with sizes and times in lsjson", async () => {
    const up = await rclone(["copy", "src", ":ftp:tree"]);
    expect(up.code, up.stderr).toBe(0);
    expect(await tree(path.join(home, "tree"))).toEqual(srcTree);
    // MFMT set the server's times to the sources' (whole seconds).
    const srcBig = statSync(path.join(local, "src", "four-mib.bin"));
    expect(Math.floor(statSync(path.join(home, "tree", "four-mib.bin")).mtimeMs / 1000)).toBe(Math.floor(srcBig.mtimeMs / 1000));

    for (const extra of [[], ["--ftp-disable-mlsd"]]) {
      const ls = await rclone(["lsjson", "-R", ":ftp:tree", ...extra]);
      expect(ls.code, ls.stderr).toBe(0);
      const entries = JSON.parse(ls.stdout) as { Path: string; Size: number; IsDir: boolean; ModTime: string }[];
      const files = new Map(entries.filter((e) => !e.IsDir).map((e) => [e.Path, e]));
      expect([...files.keys()].sort()).toEqual([...srcTree.keys()].sort());
      expect(files.get("four-mib.bin")!.Size).toBe(4 * 1024 * 1024);
      expect(files.get("zero.bin")!.Size).toBe(0);
      expect(files.get("nested 目录/deeper/测试文件.txt")!.Size).toBe(statSync(path.join(local, "src", "nested 目录", "deeper", "测试文件.txt")).size);
      expect(Math.floor(Date.parse(files.get("four-mib.bin")!.ModTime) / 60_000)).toBe(Math.floor(srcBig.mtimeMs / 60_000));
      expect(entries.filter((e) => e.IsDir).map((e) => e.Path).sort()).toEqual(["nested 目录", "nested 目录/deeper"]);
    }

    const lsf = await rclone(["lsf", "--format", "ps", ":ftp:tree"]);
    expect(lsf.code, lsf.stderr).toBe(0);
    expect(lsf.stdout.split("\n")).toContain("name with spaces.txt;" + statSync(path.join(local, "src", "name with spaces.txt")).size);
    expect(lsf.stdout.split("\n")).toContain("nested 目录/;-1");

    const down = await rclone(["copy", ":ftp:tree", "down"]);
    expect(down.code, down.stderr).toBe(0);
    expect(await tree(path.join(local, "down"))).toEqual(srcTree);

    // check compares sizes (and with --download, the bytes): no differences.
    for (const extra of [[], ["--download"]]) {
      const check = await rclone(["check", "src", ":ftp:tree", ...extra]);
      expect(check.code, check.stderr).toBe(0);
      expect(check.stderr).toMatch(/0 differences found/);
    }
    expect(await used()).toBe(diskBytes(home));
  });

  it("mkdir, rmdir, delete and moveto (rename) with spaces and UTF-8", async () => {
    writeFileSync(path.join(local, "one file.txt"), "moved around\n");
    const r1 = await rclone(["mkdir", ":ftp:ops/子 dir"]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(statSync(path.join(home, "ops", "子 dir")).isDirectory()).toBe(true);

    expect((await rclone(["copyto", "one file.txt", ":ftp:ops/one file.txt"])).code).toBe(0);
    const mv = await rclone(["moveto", ":ftp:ops/one file.txt", ":ftp:ops/子 dir/移动 后.txt"]);
    expect(mv.code, mv.stderr).toBe(0);
    expect(existsSync(path.join(home, "ops", "one file.txt"))).toBe(false);
    expect(readFileSync(path.join(home, "ops", "子 dir", "移动 后.txt"), "utf8")).toBe("moved around\n");

    // A directory moved as a whole (RNFR/RNTO of the directory).
    const mvDir = await rclone(["moveto", ":ftp:ops/子 dir", ":ftp:ops/renamed dir"]);
    expect(mvDir.code, mvDir.stderr).toBe(0);
    expect(readFileSync(path.join(home, "ops", "renamed dir", "移动 后.txt"), "utf8")).toBe("moved around\n");

    // rmdir of a directory that is not empty fails and removes nothing.
    const notEmpty = await rclone(["rmdir", ":ftp:ops/renamed dir"]);
    expect(notEmpty.code).not.toBe(0);
    expect(existsSync(path.join(home, "ops", "renamed dir", "移动 后.txt"))).toBe(true);

    const del = await rclone(["delete", ":ftp:ops/renamed dir/移动 后.txt"]);
    expect(del.code, del.stderr).toBe(0);
    expect(existsSync(path.join(home, "ops", "renamed dir", "移动 后.txt"))).toBe(false);
    const rmd = await rclone(["rmdir", ":ftp:ops/renamed dir"]);
    expect(rmd.code, rmd.stderr).toBe(0);
    expect(existsSync(path.join(home, "ops", "renamed dir"))).toBe(false);

    // rcat streams from stdin (PutStream), cat reads a range back (REST).
    const rcat = await rclone(["rcat", ":ftp:ops/streamed.txt"], "streamed text\n");
    expect(rcat.code, rcat.stderr).toBe(0);
    const cat = await rclone(["cat", "--offset", "9", "--count", "4", ":ftp:ops/streamed.txt"]);
    expect(cat.code, cat.stderr).toBe(0);
    expect(cat.stdout).toBe("text");
    expect(await used()).toBe(diskBytes(home));
  });

  it("works over explicit FTPS (AUTH TLS, PROT P) and implicit FTPS", async () => {
    const tlsFlags = ["--ftp-explicit-tls", "--ftp-no-check-certificate"];
    const sub = path.join("src", "nested 目录");
    const up = await rclone(["copy", sub, ":ftp:tls", ...tlsFlags]);
    expect(up.code, up.stderr).toBe(0);
    const want = await tree(path.join(local, sub));
    expect(await tree(path.join(home, "tls"))).toEqual(want);
    const big = await rclone(["copyto", "src/four-mib.bin", ":ftp:tls/four-mib.bin", ...tlsFlags]);
    expect(big.code, big.stderr).toBe(0);
    expect(await sha256File(path.join(home, "tls", "four-mib.bin"))).toBe(srcTree.get("four-mib.bin"));

    const ls = await rclone(["lsf", "-R", ":ftp:tls", ...tlsFlags]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain("deeper/测试文件.txt");
    const down = await rclone(["copy", ":ftp:tls", "tls-down", ...tlsFlags]);
    expect(down.code, down.stderr).toBe(0);
    expect(await tree(path.join(local, "tls-down"))).toEqual(new Map([...want, ["four-mib.bin", srcTree.get("four-mib.bin")!]]));

    // Implicit FTPS: --ftp-port names the implicit port, given after the plain one rclone() puts first (the last one wins).
    const implicit = ["--ftp-tls", "--ftp-no-check-certificate", "--ftp-port", String(srv.server.implicitTlsPort)];
    const iup = await rclone(["copyto", "src/mib.bin", ":ftp:implicit/mib.bin", ...implicit]);
    expect(iup.code, iup.stderr).toBe(0);
    expect(await sha256File(path.join(home, "implicit", "mib.bin"))).toBe(srcTree.get("mib.bin"));
    const idown = await rclone(["copyto", ":ftp:implicit/mib.bin", "implicit-mib.bin", ...implicit]);
    expect(idown.code, idown.stderr).toBe(0);
    expect(await sha256File(path.join(local, "implicit-mib.bin"))).toBe(srcTree.get("mib.bin"));
  });

  it("an upload past the quota fails with 552, and the usage stays exact", async () => {
    const before = await used();
    expect(before).toBe(diskBytes(home));
    const room = QUOTA - before;
    expect(room).toBeGreaterThan(1024 * 1024);
    const data = randomBytes(room + 1024 * 1024);
    writeFileSync(path.join(local, "too-big.bin"), data);

    for (const extra of [[], ["--ftp-explicit-tls", "--ftp-no-check-certificate"]]) {
      const r = await rclone(["copyto", "too-big.bin", ":ftp:over/too-big.bin", ...extra]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/552 Quota exceeded/);
      expect(existsSync(path.join(home, "over", "too-big.bin"))).toBe(false);
      expect(await used()).toBe(before);
      expect(diskBytes(home)).toBe(before);
    }

    // What fits still goes, and is counted to the byte.
    const fits = data.subarray(0, room - 10);
    writeFileSync(path.join(local, "fits.bin"), fits);
    const ok = await rclone(["copyto", "fits.bin", ":ftp:over/fits.bin"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await sha256File(path.join(home, "over", "fits.bin"))).toBe(sha256(fits));
    expect(await used()).toBe(QUOTA - 10);
    expect(diskBytes(home)).toBe(QUOTA - 10);
    const del = await rclone(["delete", ":ftp:over"]);
    expect(del.code, del.stderr).toBe(0);
    expect(await used()).toBe(before);
  });

});
