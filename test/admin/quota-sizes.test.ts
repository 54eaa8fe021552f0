// `myftpd user add/set --quota` with a decimal fraction that makes whole bytes: "2.01KB" is 2010 bytes, though
// 2.01 * 1000 is 2009.9999999999998 in floating point. The figure the server enforces is the exact one.
import { rmSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { runMyftpd as myftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

const dirs: string[] = [];
const procs: RunningProcess[] = [];
const conns: RawFtp[] = [];

afterEach(async () => {
  for (const c of conns.splice(0)) await c.close();
  for (const p of procs.splice(0)) await p.stop("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function quotaOf(data: string, name: string): Promise<number | null> {
  const r = await myftpd(["user", "list", "--json", "--data", data]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { name: string; quotaBytes: number | null }[]).find((u) => u.name === name)!.quotaBytes;
}

describe("quota sizes with a decimal fraction", () => {
  it("takes 2.01KB as 2010 bytes and 1.07GB as 1070000000, and the server enforces that figure", async () => {
    const data = tempDir("myftp-sizes-");
    dirs.push(data);
    const add = await myftpd(["user", "add", "alice", "--quota", "2.01KB", "--password-stdin", "--data", data], "pw\n");
    expect(add.code, add.stderr).toBe(0);
    expect(await quotaOf(data, "alice")).toBe(2010);

    const p = await startServerProcess(["--log-level", "silent", "--pasv-range", "0-0"], data);
    procs.push(p);
    const c = await RawFtp.login(p.port, "alice", "pw", { type: "I" });
    conns.push(c);
    expect((await c.expect("SITE QUOTA", 200)).text).toMatch(/of 2010 bytes/);

    for (const [size, bytes] of [["1.07GB", 1_070_000_000], ["2.03 MB", 2_030_000], ["0.29KB", 290]] as const) {
      const set = await myftpd(["user", "set", "alice", "--quota", size, "--data", data]);
      expect(set.code, `${size}: ${set.stderr}`).toBe(0);
      expect(await quotaOf(data, "alice"), size).toBe(bytes);
    }
    // Fractions that are not whole bytes are still refused.
    const r = await myftpd(["user", "set", "alice", "--quota", "1.0001KB", "--data", data]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a whole number of bytes/);
    expect(await quotaOf(data, "alice")).toBe(290);
  });
});

describe("the units --quota takes", () => {
  it("are those --help lists: TB and TiB too, as the refusal of a bad size says", async () => {
    const data = tempDir("myftp-sizes-");
    dirs.push(data);
    const bad = await myftpd(["user", "add", "alice", "--quota", "5XB", "--password-stdin", "--data", data], "pw\n");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/KB\/MB\/GB\/TB, KiB\/MiB\/GiB\/TiB/);
    for (const cmd of ["add", "set"]) {
      const help = await myftpd(["user", cmd, "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout.replace(/\s+/g, " "), `user ${cmd} --help`).toContain("--quota <size> quota: bytes, KB/MB/GB/TB, KiB/MiB/GiB/TiB, or unlimited");
    }
    const add = await myftpd(["user", "add", "alice", "--quota", "2TB", "--password-stdin", "--data", data], "pw\n");
    expect(add.code, add.stderr).toBe(0);
    expect(await quotaOf(data, "alice")).toBe(2 * 1000 ** 4);
    const set = await myftpd(["user", "set", "alice", "--quota", "1TiB", "--data", data]);
    expect(set.code, set.stderr).toBe(0);
    expect(await quotaOf(data, "alice")).toBe(1024 ** 4);
  });
});
