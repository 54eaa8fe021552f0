// GNU wget against myftpd: ftp://user:pass@host:port/path for one file, -c resuming a truncated copy (REST), -r
// retrieving a tree (wget sends LIST -a and parses the Unix ls lines: names with spaces and UTF-8, nested
// directories, a 0-byte file), -N fetching nothing the second time, active mode, explicit FTPS, and exit codes.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { killRunning, sha256File } from "../helpers/util.js";
import { hasCommand, makeFixtures, run, sha256, tree } from "./fixtures.js";

const PASSWORD = "wget secret";

describe.skipIf(!hasCommand("wget"))("wget", () => {
  let srv: RunningServer;
  let home: string;
  let local: string;
  let certDir: string;
  let bigHash: string;
  let remoteTree: Map<string, string>;

  beforeAll(async () => {
    const cert = await testCertificate();
    certDir = cert.dir;
    srv = await startServer([{ name: "alice", password: PASSWORD }], {
      tls: { cert: readFileSync(cert.cert), key: readFileSync(cert.key) },
    });
    home = srv.homeOf("alice");
    local = tempDir("myftp-wget-");
    const big = randomBytes(5 * 1024 * 1024 + 3);
    bigHash = sha256(big);
    writeFileSync(path.join(home, "big file.bin"), big);
    makeFixtures(path.join(home, "site"));
    makeFixtures(path.join(home, "site", "子 目录", "deeper"));
    mkdirSync(path.join(home, "site", "empty dir"));
    remoteTree = await tree(path.join(home, "site"));
  });
  afterEach(() => killRunning());
  afterAll(async () => {
    killRunning();
    await srv?.close();
    rmSync(local, { recursive: true, force: true });
    rmSync(certDir, { recursive: true, force: true });
  });

  const url = (p: string, scheme = "ftp") =>
    srv.url("alice", PASSWORD, "/" + p.split("/").map(encodeURIComponent).join("/")).replace(/^ftp:/, `${scheme}:`);

  /** Runs wget in dir, with -d so that the FTP commands it sends ("--> ...") and the replies are in its output. */
  function wget(args: string[], dir: string) {
    mkdirSync(dir, { recursive: true });
    return run("wget", ["-d", "--tries=1", "--timeout=20", "--no-config", ...args], { cwd: dir, env: { HOME: local } });
  }

  it("fetches one file by its URL, intact", async () => {
    const d = path.join(local, "one");
    const r = await wget([url("big file.bin")], d);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(path.join(d, "big file.bin"))).toBe(bigHash);
    expect(r.stderr).toMatch(/^--> RETR big file\.bin$/m);
    expect(r.stderr).toMatch(/^226 Transfer complete \(5242883 bytes\)/m);
  });

  it("-c resumes a truncated copy with REST", async () => {
    const d = path.join(local, "resume");
    expect((await wget([url("big file.bin")], d)).code).toBe(0);
    const file = path.join(d, "big file.bin");
    truncateSync(file, 2_000_000);
    const r = await wget(["-c", url("big file.bin")], d);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^--> REST 2000000$/m);
    expect(r.stderr).toMatch(/^350 Restarting at 2000000\b/m);
    expect(r.stderr).toMatch(/^226 Transfer complete \(3242883 bytes\)/m);
    expect(await sha256File(file)).toBe(bigHash);

    // Already whole: wget sees the size (SIZE) and fetches nothing.
    const again = await wget(["-c", url("big file.bin")], d);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/^--> RETR /m);
    expect(await sha256File(file)).toBe(bigHash);
  });

  it("-r retrieves a tree from LIST -a (spaces, UTF-8, nested and empty directories, a 0-byte file)", async () => {
    const d = path.join(local, "recursive");
    const r = await wget(["-r", "-nH", url("site") + "/"], d);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^--> LIST -a$/m);
    expect(await tree(path.join(d, "site"))).toEqual(remoteTree);
    expect(existsSync(path.join(d, "site", "empty dir"))).toBe(true);

    // -N: the times and sizes from the listing match what the first run kept, so nothing is fetched again.
    const again = await wget(["-r", "-N", "-nH", url("site") + "/"], d);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/^--> RETR /m);
    expect(again.stderr).toMatch(/Remote file no newer than local file/);
  });

  it("-r in active mode (--no-passive-ftp) and over explicit FTPS", async () => {
    const a = path.join(local, "active");
    const r = await wget(["-r", "-nH", "--no-passive-ftp", url("site/子 目录") + "/"], a);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^--> (PORT|EPRT) /m);
    const sub = new Map([...remoteTree].filter(([k]) => k.startsWith("子 目录/")).map(([k, v]) => [k.slice("子 目录/".length), v]));
    expect(await tree(path.join(a, "site", "子 目录"))).toEqual(sub);

    const s = path.join(local, "secure");
    const t = await wget(["-r", "-nH", "--no-check-certificate", url("site/子 目录", "ftps") + "/"], s);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stderr).toMatch(/^--> AUTH TLS$/m);
    expect(t.stderr).toMatch(/^200 Protection level set to P/m);
    expect(await tree(path.join(s, "site", "子 目录"))).toEqual(sub);
  });

  it("a missing file and a wrong password give wget's exit codes", async () => {
    const d = path.join(local, "errors");
    const missing = await wget([url("no such.bin")], d);
    expect(missing.code).toBe(8); // the server issued an error response
    expect(missing.stderr).toMatch(/^550 /m);
    const bad = await wget([`ftp://alice:wrong@127.0.0.1:${srv.port}/big%20file.bin`], d);
    expect(bad.code).toBe(6); // authentication failure
    expect(bad.stderr).toMatch(/^530 /m);
  });
});
