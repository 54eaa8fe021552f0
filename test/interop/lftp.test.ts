// lftp against myftpd: mirror both ways (every fixture size, odd names, nested directories), pget -n 4 (parallel
// ranged downloads with REST), passive and active modes, and jail escapes refused.
import { existsSync, mkdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { killRunning, sha256File } from "../helpers/util.js";
import { makeFixtures, run, tree } from "./fixtures.js";

let srv: RunningServer;
let home: string;
let local: string;
let hashes: Map<string, string>;

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "lftp,secret" }]);
  home = srv.homeOf("alice");
  local = tempDir("myftp-lftp-");
  hashes = makeFixtures(path.join(local, "src"), { big: true });
  // A nested directory with an odd name, to mirror recursively.
  makeFixtures(path.join(local, "src", "nested 目录", "-deeper"));
  symlinkSync("/etc", path.join(home, "etc"));
});
afterEach(() => killRunning());
afterAll(async () => {
  killRunning();
  await srv.close();
  rmSync(local, { recursive: true, force: true });
});

const BASE = ["set ftp:ssl-allow no", "set net:max-retries 1", "set net:timeout 15", "set net:reconnect-interval-base 1", "set cmd:fail-exit yes", "set xfer:clobber yes"];

function lftp(commands: string[], settings: string[] = []) {
  // The password holds a comma, so it is given with --password rather than inside -u.
  const script = [...BASE, ...settings, `open --user alice --password 'lftp,secret' -p ${srv.port} 127.0.0.1`, ...commands].join("; ");
  return run("lftp", ["-c", script], { timeoutMs: 120_000, cwd: local });
}

describe("lftp mirror", () => {
  it("mirrors a tree up (mirror -R) and back down, every file intact", async () => {
    const srcTree = await tree(path.join(local, "src"));
    expect(srcTree.size).toBeGreaterThan(8);
    const up = await lftp(["mirror -R src mirrored"]);
    expect(up.code, up.stderr).toBe(0);
    expect(await tree(path.join(home, "mirrored"))).toEqual(srcTree);
    for (const [name, hash] of hashes) expect(srcTree.get(name)).toBe(hash);

    const down = await lftp(["mirror mirrored back"]);
    expect(down.code, down.stderr).toBe(0);
    expect(await tree(path.join(local, "back"))).toEqual(srcTree);
    rmSync(path.join(local, "back"), { recursive: true });
  });

  it("mirrors in active mode (PORT) too", async () => {
    const srcTree = await tree(path.join(local, "src", "nested 目录"));
    const up = await lftp(["mirror -R 'src/nested 目录' active-up"], ["set ftp:passive-mode off"]);
    expect(up.code, up.stderr).toBe(0);
    expect(await tree(path.join(home, "active-up"))).toEqual(srcTree);
    const down = await lftp(["mirror active-up active-down"], ["set ftp:passive-mode off"]);
    expect(down.code, down.stderr).toBe(0);
    expect(await tree(path.join(local, "active-down"))).toEqual(srcTree);
  });

  it("mirrors with EPSV preferred", async () => {
    const srcTree = await tree(path.join(local, "src", "nested 目录", "-deeper"));
    const up = await lftp(["mirror -R 'src/nested 目录/-deeper' epsv-up"], ["set ftp:prefer-epsv yes"]);
    expect(up.code, up.stderr).toBe(0);
    expect(await tree(path.join(home, "epsv-up"))).toEqual(srcTree);
  });

  it("a second mirror -R --only-newer sends nothing (sizes and MFMT times match)", async () => {
    const first = await lftp(["mirror -R --no-perms --verbose=1 'src/nested 目录' mirrored-2"]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/Transferring file/);
    const again = await lftp(["mirror -R --no-perms --only-newer --verbose=1 'src/nested 目录' mirrored-2"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toMatch(/Transferring file/);
    expect(await tree(path.join(home, "mirrored-2"))).toEqual(await tree(path.join(local, "src", "nested 目录")));
  });
});

describe("lftp pget", () => {
  it("pget -n 4 of 50 MiB arrives intact", async () => {
    const r = await lftp(["pget -n 4 mirrored/fifty.bin -o pget-fifty.bin"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(path.join(local, "pget-fifty.bin"))).toBe(hashes.get("fifty.bin"));
    rmSync(path.join(local, "pget-fifty.bin"));
  });

  it("pget -n 4 of 1 MiB and of a tiny file", async () => {
    const r = await lftp(["pget -n 4 mirrored/mib.bin -o pget-mib.bin", "pget -n 4 mirrored/one.bin -o pget-one.bin"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(path.join(local, "pget-mib.bin"))).toBe(hashes.get("mib.bin"));
    expect(await sha256File(path.join(local, "pget-one.bin"))).toBe(hashes.get("one.bin"));
  });
});

describe("lftp file commands", () => {
  it("put, get, mkdir, mv, rm, rmdir, ls with UTF-8 names", async () => {
    const r = await lftp([
      "mkdir -p ops/子目录",
      "put src/测试文件.txt -o ops/子目录/测试文件.txt",
      "mv ops/子目录/测试文件.txt 'ops/子目录/renamed file.txt'",
      "get 'ops/子目录/renamed file.txt' -o got.txt",
      "cls -1 ops/子目录/",
      "rm 'ops/子目录/renamed file.txt'",
      "rmdir ops/子目录",
      "cls -1 ops/",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(path.join(local, "got.txt"))).toBe(hashes.get("测试文件.txt"));
    expect(r.stdout).toContain("renamed file.txt");
    expect(existsSync(path.join(home, "ops", "子目录"))).toBe(false);
    expect(statSync(path.join(home, "ops")).isDirectory()).toBe(true);
  });

  it("resumes a download with get -c", async () => {
    const partial = path.join(local, "resume-mib.bin");
    const { writeFileSync, readFileSync } = await import("node:fs");
    writeFileSync(partial, readFileSync(path.join(local, "src", "mib.bin")).subarray(0, 400_000));
    const r = await lftp(["get -c mirrored/mib.bin -o resume-mib.bin"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(partial)).toBe(hashes.get("mib.bin"));
  });

  it("resumes an upload with put -c", async () => {
    const { writeFileSync, readFileSync } = await import("node:fs");
    mkdirSync(path.join(home, "resume-up"), { recursive: true });
    writeFileSync(path.join(home, "resume-up", "mib.bin"), readFileSync(path.join(local, "src", "mib.bin")).subarray(0, 123_457));
    const r = await lftp(["put -c src/mib.bin -o resume-up/mib.bin"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(path.join(home, "resume-up", "mib.bin"))).toBe(hashes.get("mib.bin"));
  });
});

describe("lftp and the jail", () => {
  it("cannot get, list or enter anything outside the home", async () => {
    for (const cmd of ["get etc/passwd -o stolen1", "get /etc/passwd -o stolen2", "get ../../../../etc/passwd -o stolen3", "cd /etc", "cls /etc/", "cd ../../../etc"]) {
      const r = await lftp([cmd], ["set cmd:fail-exit yes"]);
      expect(r.code, cmd).not.toBe(0);
      expect(r.stdout).not.toContain("root:");
    }
    for (const f of ["stolen1", "stolen2", "stolen3"]) {
      const p = path.join(local, f);
      if (existsSync(p)) expect(statSync(p).size, f).toBe(0);
    }
  });

  it("cannot put through a planted link", async () => {
    const r = await lftp(["put src/one.bin -o etc/myftp-lftp-never"]);
    expect(r.code).not.toBe(0);
    expect(existsSync("/etc/myftp-lftp-never")).toBe(false);
  });

  it("cd .. at / stays in the home", async () => {
    const r = await lftp(["cd ../../..", "quote PWD", "cls -1"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^257 "\/" /m);
    expect(r.stdout).toContain("mirrored");
  });
});
