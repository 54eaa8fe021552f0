// myftp against myftpd: the full matrix with HASH and RANG, so resume checks the existing part by hash
// and every transfer is verified by SHA-256; plus quota (AVBL, SITE QUOTA, 552) and per-user limits (421).
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { assertBuilt, killAll, makeFile, runMyftp, sha256, sizeOf, tempDir } from "./cli-helpers.js";
import { defineClientMatrix, type ServerUnderTest } from "./matrix.js";

const MiB = 1024 * 1024;
const USER = { name: "alice", password: "s3cret alice" };

function adapt(s: RunningServer): ServerUnderTest {
  return {
    url: (path = "") => s.url(USER.name, USER.password, `/${path}`),
    urlNoPassword: (path = "") => `ftp://${USER.name}@${s.host}:${s.port}/${path}`,
    user: USER.name,
    password: USER.password,
    host: s.host,
    port: s.port,
    home: s.homeOf(USER.name),
    stop: () => s.close(),
  };
}

defineClientMatrix("myftpd", async () => adapt(await startServer([{ ...USER, quota: null }])), { hash: true });

describe("myftp against myftpd: quota, limits, HASH", () => {
  let work: { path: string; remove(): Promise<void> };
  const servers: RunningServer[] = [];

  beforeAll(async () => {
    assertBuilt();
    work = await tempDir();
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    for (const s of servers) await s.close();
    await work?.remove();
  });

  it("shows the quota and stops with a clear line when an upload would exceed it", async () => {
    const s = await startServer([{ ...USER, quota: 3 * MiB }]);
    servers.push(s);
    const srv = adapt(s);
    await makeFile(join(work.path, "fits.bin"), MiB);
    await makeFile(join(work.path, "toobig.bin"), 4 * MiB);
    const ok = await runMyftp(["put", join(work.path, "fits.bin"), srv.url("fits.bin")]);
    expect(ok.code).toBe(0);
    const q = await runMyftp([srv.url()], { stdin: "quota\n" });
    expect(q.stderr).toBe("");
    expect(q.code).toBe(0);
    const avail = /^available: (\d+) bytes/m.exec(q.stdout);
    expect(avail).not.toBeNull();
    expect(Number(avail![1])).toBe(2 * MiB);
    const full = await runMyftp(["put", join(work.path, "toobig.bin"), srv.url("toobig.bin")]);
    expect(full.code).toBe(6);
    expect(full.stderr).toMatch(/^myftp: put .*toobig\.bin: no space left on the server: quota full \(552 .*\)\n$/);
    expect(await sizeOf(join(srv.home, "toobig.bin"))).toBe(-1);
  });

  it("backs off when the per-user connection limit answers 421, and still gets the file", async () => {
    const s = await startServer([{ ...USER, quota: null }], { maxSessionsPerUser: 2 });
    servers.push(s);
    const srv = adapt(s);
    await makeFile(join(srv.home, "limited.bin"), 6 * MiB);
    const dst = join(work.path, "limited.bin");
    // Slow enough that all four connections are wanted at once.
    const r = await runMyftp(["get", "-n", "4", "--limit-rate", "8M", srv.url("limited.bin"), dst]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/refused connection \d \(421\); backing off/);
    expect(r.stdout).toContain("SHA-256 verified");
    expect(await sha256(dst)).toBe(await sha256(join(srv.home, "limited.bin")));
  });

  it("prints the server's SHA-256 of files with the hash command", async () => {
    const s = await startServer([{ ...USER, quota: null }]);
    servers.push(s);
    const srv = adapt(s);
    await makeFile(join(srv.home, "h1.bin"), 777_777);
    await makeFile(join(srv.home, "h 2.bin"), 0);
    const r = await runMyftp([srv.url()], { stdin: 'hash h1.bin "h 2.bin"\nhash nope.bin\n' });
    expect(r.stdout).toContain(`SHA-256 ${await sha256(join(srv.home, "h1.bin"))} h1.bin\n`);
    expect(r.stdout).toContain(`SHA-256 ${await sha256(join(srv.home, "h 2.bin"))} h 2.bin\n`);
    expect(r.stderr).toMatch(/^myftp: hash nope\.bin: the server refused: .*\(550\)\n$/);
    expect(r.code).toBe(5);
  });
});
