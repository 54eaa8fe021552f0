// aria2c against myftpd over ftp://: a plain download, --continue resuming a truncated local copy (REST), a download
// split over four connections (-x4 -s4, each a REST and a RETR of its own range), active mode, UTF-8 names, and the
// exit codes for a missing file and a wrong password.
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { killRunning, sha256File } from "../helpers/util.js";
import { hasCommand, run, sha256 } from "./fixtures.js";

const EIGHT_MIB = 8 * 1024 * 1024;

describe.skipIf(!hasCommand("aria2c"))("aria2c", () => {
  let srv: RunningServer;
  let home: string;
  let local: string;
  let bigHash: string;

  beforeAll(async () => {
    srv = await startServer([{ name: "alice", password: "aria2 secret" }]);
    home = srv.homeOf("alice");
    local = tempDir("myftp-aria2-");
    const big = randomBytes(EIGHT_MIB);
    bigHash = sha256(big);
    writeFileSync(path.join(home, "big file.bin"), big);
    writeFileSync(path.join(home, "测试文件.txt"), "utf-8 name\n");
    writeFileSync(path.join(home, "zero.bin"), "");
  });
  afterEach(() => killRunning());
  afterAll(async () => {
    killRunning();
    await srv?.close();
    rmSync(local, { recursive: true, force: true });
  });

  const url = (p: string) => srv.url("alice", "aria2 secret", "/" + p.split("/").map(encodeURIComponent).join("/"));

  /** Runs aria2c into `local` with its log (info level) on stdout, so the FTP commands it sent can be checked. */
  function aria2c(args: string[]) {
    const flags = ["--dir", local, "--log=-", "--log-level=info", "--console-log-level=warn", "--summary-interval=0", "--connect-timeout=5", "--timeout=20", "--max-tries=1", "--check-certificate=false"];
    return run("aria2c", [...flags, ...args], { cwd: local });
  }

  /** The FTP requests aria2c logged (the line after each "Requesting:"). */
  function requests(log: string): string[] {
    return logged(log, "Requesting");
  }

  /** The first line of each FTP reply aria2c took in (the line after each "Response received:"). */
  function responses(log: string): string[] {
    return logged(log, "Response received");
  }

  function logged(log: string, what: string): string[] {
    const lines = log.split("\n");
    const out: string[] = [];
    for (let i = 0; i + 1 < lines.length; i++) if (lines[i]!.endsWith(` - ${what}:`)) out.push(lines[i + 1]!.trim());
    return out;
  }

  it("downloads a file of several MiB intact", async () => {
    const r = await aria2c(["--out", "plain.bin", url("big file.bin")]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await sha256File(path.join(local, "plain.bin"))).toBe(bigHash);
    expect(requests(r.stdout)).toContain("RETR big file.bin");
  });

  it("--continue resumes a truncated local copy with REST and ends with the right bytes", async () => {
    const out = path.join(local, "resumed.bin");
    const first = await aria2c(["--out", "resumed.bin", url("big file.bin")]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    truncateSync(out, 3_000_000);
    const r = await aria2c(["--continue=true", "--out", "resumed.bin", url("big file.bin")]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rest = requests(r.stdout).find((l) => l.startsWith("REST "));
    expect(rest, r.stdout).toBeDefined();
    const offset = Number(rest!.slice(5));
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThanOrEqual(3_000_000);
    expect(r.stdout).toMatch(new RegExp(`350 Restarting at ${offset}`));
    expect(await sha256File(out)).toBe(bigHash);

    // A local copy that is already whole: nothing is fetched again and it stays intact.
    const again = await aria2c(["--continue=true", "--out", "resumed.bin", url("big file.bin")]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(await sha256File(out)).toBe(bigHash);
  });

  it("-x4 -s4 splits the download over four connections, each with REST, and the pieces join intact", async () => {
    // The rate limit keeps the first connection from fetching the whole file before the others have logged in.
    const r = await aria2c(["-x4", "-s4", "--min-split-size=1M", "--max-download-limit=4M", "--out", "split.bin", url("big file.bin")]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await sha256File(path.join(local, "split.bin"))).toBe(bigHash);
    const rests = requests(r.stdout).filter((l) => l.startsWith("REST ")).map((l) => Number(l.slice(5)));
    expect(new Set(rests.filter((o) => o > 0)).size, r.stdout).toBeGreaterThanOrEqual(2);
    expect(requests(r.stdout).filter((l) => l === "RETR big file.bin").length).toBeGreaterThanOrEqual(3);
  });

  it("downloads in active mode (--ftp-pasv=false), a UTF-8 name and a 0-byte file", async () => {
    const a = await aria2c(["--ftp-pasv=false", "--out", "active.bin", url("big file.bin")]);
    expect(a.code, a.stdout + a.stderr).toBe(0);
    expect(requests(a.stdout).some((l) => /^(PORT|EPRT) /.test(l))).toBe(true);
    expect(await sha256File(path.join(local, "active.bin"))).toBe(bigHash);

    const u = await aria2c(["--out", "utf8.txt", url("测试文件.txt")]);
    expect(u.code, u.stdout + u.stderr).toBe(0);
    expect(readFileSync(path.join(local, "utf8.txt"), "utf8")).toBe("utf-8 name\n");
    expect(responses(u.stdout)).toContain("226 Transfer complete (11 bytes)");

    const z = await aria2c(["--out", "zero.bin", url("zero.bin")]);
    expect(z.code, z.stdout + z.stderr).toBe(0);
    expect(readFileSync(path.join(local, "zero.bin")).length).toBe(0);
  });

  // aria2c reads the 150 and then waits for its control socket to be readable again before it parses the 226; a 226
  // that came in the same read as the 150 sat in its buffer until --timeout ran out (60 s by default), after which it
  // ended the download without ever taking the 226 in.
  it.each([["passive", []], ["active", ["--ftp-pasv=false"]]])("takes in the 226 of a small file (%s mode)", async (mode, flags) => {
    writeFileSync(path.join(home, `small-${mode}.txt`), "a few bytes\n");
    const r = await aria2c([...flags, "--timeout=5", "--out", `small-${mode}.txt`, url(`small-${mode}.txt`)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(readFileSync(path.join(local, `small-${mode}.txt`), "utf8")).toBe("a few bytes\n");
    expect(responses(r.stdout), r.stdout).toContain("226 Transfer complete (12 bytes)");
  });

  it("a missing file and a wrong password fail with aria2c's exit codes", async () => {
    const missing = await aria2c(["--out", "missing.bin", url("no such file.bin")]);
    expect(missing.code).toBe(3); // resource not found
    const bad = await run("aria2c", ["--dir", local, "--max-tries=1", "--connect-timeout=5", "--out", "bad.bin", `ftp://alice:wrong@127.0.0.1:${srv.port}/zero.bin`]);
    expect(bad.code).not.toBe(0);
  });
});
