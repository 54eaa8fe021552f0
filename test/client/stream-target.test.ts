// `get` into what is not a file the client can position or cut: standard output (`-`), a device, a FIFO. The bytes
// go out in order and are verified as they pass; progress and notes stay off standard output.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { startScripted } from "../helpers/scripted-ftp.js";
import { BIN, clientWorkDir, collect, makeFile, runMyftp, spawnMyftp } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

/** Run myftp and keep its standard output as bytes. */
async function runBinary(args: string[], cwd: string, stdin?: string): Promise<{ code: number | null; out: Buffer; stderr: string }> {
  const child = spawnMyftp(args, { cwd, stdin });
  const chunks: Buffer[] = [];
  child.stdout!.on("data", (d: Buffer) => chunks.push(d));
  const r = await collect(child);
  return { code: r.code, out: Buffer.concat(chunks), stderr: r.stderr };
}

describe("get into standard output, a device or a FIFO", () => {
  let s: RunningServer;
  let file: Buffer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });
  const url = (p: string) => s.url(USER.name, USER.password, `/${p}`);

  it("writes the file's bytes to standard output with `-`, the summary on standard error, and no file named -", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    await makeFile(join(s.homeOf(USER.name), "data.bin"), 3 * 1024 * 1024 + 17);
    file = await readFile(join(s.homeOf(USER.name), "data.bin"));
    const r = await runBinary(["get", url("data.bin"), "-"], work.path);
    expect(r.code).toBe(0);
    expect(createHash("sha256").update(r.out).digest("hex")).toBe(createHash("sha256").update(file).digest("hex"));
    expect(r.stderr).toMatch(/get data\.bin: .*SHA-256 verified/);
    expect(existsSync(join(work.path, "-"))).toBe(false);
  });

  it("in the shell, `get FILE -` puts the bytes between the other commands' output", async () => {
    const r = await runBinary([url("")], work.path, "get data.bin -\npwd\n");
    expect(r.code).toBe(0);
    // The shell's own lines ("connected to ...") come before the bytes; pwd's answer after them.
    const at = r.out.indexOf(file);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(r.out.subarray(0, at).toString()).toMatch(/^connected to .*\n$/);
    expect(r.out.subarray(at + file.length).toString()).toBe("/\n");
    expect(r.stderr).toMatch(/SHA-256 verified/);
  });

  it("writes into /dev/null, and a device that refuses the bytes is a local error (exit 8)", async () => {
    const ok = await runMyftp(["get", url("data.bin"), "/dev/null"], { cwd: work.path });
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/SHA-256 verified/);
    const full = await runMyftp(["get", url("data.bin"), "/dev/full"], { cwd: work.path });
    expect(full.code).toBe(8);
    expect(full.stderr).toMatch(/no space left/);
  });

  it("writes into a FIFO that a reader holds", async () => {
    const fifo = join(work.path, "pipe");
    const mk = spawn("mkfifo", [fifo]);
    await new Promise((r) => mk.once("close", r));
    // The reader opens the FIFO (waiting for a writer) and reads until myftp closes it.
    const reader = spawn("sh", ["-c", 'exec sha256sum < "$1"', "sh", fifo], { stdio: ["ignore", "pipe", "inherit"] });
    let sum = "";
    reader.stdout.on("data", (d: Buffer) => (sum += d.toString()));
    const done = new Promise((res) => reader.once("close", res));
    const r = await runMyftp(["-q", "get", url("data.bin"), fifo], { cwd: work.path });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    await done;
    expect(sum.split(" ")[0]).toBe(createHash("sha256").update(file).digest("hex"));
  });

  it("refuses ranges over several connections into a stream (exit 2)", async () => {
    const r = await runMyftp(["get", "-n", "2", url("data.bin"), "-"], { cwd: work.path });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs a regular file/);
  });

  it("put - uploads standard input, verified by its hash; a directory URL is refused (exit 2)", async () => {
    const data = randomBytes(2 * 1024 * 1024 + 5);
    const child = spawn(process.execPath, [BIN, "put", "-", url("sub-in.bin")], { cwd: work.path, env: { ...process.env, HOME: work.path } });
    child.stdin.end(data);
    const r = await collect(child);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/put standard input: .*SHA-256 verified/);
    expect((await readFile(join(s.homeOf(USER.name), "sub-in.bin"))).equals(data)).toBe(true);
    const dir = await runMyftp(["put", "-", url("")], { cwd: work.path, stdin: "x" });
    expect(dir.code).toBe(2);
    expect(dir.stderr).toMatch(/must name the file/);
  });

  it("a retry after a transfer cut off continues standard output at the byte that reached it, nothing twice", async () => {
    const size = 3 * 1024 * 1024;
    const srv = await startScripted({ files: { "f.bin": size }, cutFirstRetr: 1024 * 1024 });
    try {
      // Slowed, so that bytes of the cut attempt still wait in the client when it gives that attempt up.
      const r = await runBinary(["--limit-rate", "2M", "get", srv.url("f.bin"), "-"], work.path);
      expect(r.stderr).toMatch(/retry 1\/3/);
      expect(r.code).toBe(0);
      const want = Buffer.alloc(size);
      for (let i = 0; i < size; i++) want[i] = i % 251;
      expect(r.out.length).toBe(size);
      expect(r.out.equals(want)).toBe(true);
    } finally {
      await srv.stop();
    }
  });

  it("a remote file named - is fetched into ./- when no LOCAL is given (standard output only when asked for)", async () => {
    const srv = await startScripted({ files: { "-": 1000 } });
    try {
      const r = await runBinary(["get", srv.url("-")], work.path);
      expect(r.code).toBe(0);
      expect(r.out.toString()).toMatch(/^get -: .* verified$/m);
      expect(r.out.length).toBeLessThan(1000); // lines, not the file
      expect((await readFile(join(work.path, "-"))).length).toBe(1000);
    } finally {
      await srv.stop();
    }
  });
});
