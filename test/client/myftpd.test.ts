// myftp against myftpd: the full matrix with HASH and RANG, so resume checks the existing part by hash
// and every transfer is verified by SHA-256; plus quota (AVBL, SITE QUOTA, 552) and per-user limits (421).
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { startServer, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { sha256File } from "../helpers/util.js";
import { clientWorkDir, makeFile, runMyftp, sizeOf } from "./cli-helpers.js";
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
  const servers: RunningServer[] = [];
  const work = clientWorkDir(async () => {
    for (const s of servers) await s.close();
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
    expect(await sha256File(dst)).toBe(await sha256File(join(srv.home, "limited.bin")));
  });

  it("get -n of an empty file that is not here yet fetches it, and says so (not 'already complete')", async () => {
    const s = await startServer([{ ...USER, quota: null }]);
    servers.push(s);
    const srv = adapt(s);
    await writeFile(join(srv.home, "empty.bin"), "");
    const dst = join(work.path, "empty-seg.bin");
    const r = await runMyftp(["get", "-n", "4", srv.url("empty.bin"), dst]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain("already complete");
    expect(r.stdout).toMatch(/get empty\.bin: 0 B in /);
    expect(await sizeOf(dst)).toBe(0);
    // A second run finds it there.
    const again = await runMyftp(["get", "-n", "4", srv.url("empty.bin"), dst]);
    expect(again.stdout).toContain("already complete");
  });

  it("talks to a server on the IPv6 loopback", async () => {
    const s6 = await startServer([{ ...USER, quota: null }], { host: "::1" });
    servers.push(s6);
    await makeFile(join(s6.homeOf(USER.name), "six.bin"), 300_000);
    const url = `ftp://${USER.name}:${encodeURIComponent(USER.password)}@[::1]:${s6.port}/six.bin`;
    const dst = join(work.path, "six.bin");
    const r = await runMyftp(["get", url, dst]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("SHA-256 verified");
    expect(await sha256File(dst)).toBe(await sha256File(join(s6.homeOf(USER.name), "six.bin")));
  });

  it("prints the server's SHA-256 of files with the hash command", async () => {
    const s = await startServer([{ ...USER, quota: null }]);
    servers.push(s);
    const srv = adapt(s);
    await makeFile(join(srv.home, "h1.bin"), 777_777);
    await makeFile(join(srv.home, "h 2.bin"), 0);
    const r = await runMyftp([srv.url()], { stdin: 'hash h1.bin "h 2.bin"\nhash nope.bin\n' });
    expect(r.stdout).toContain(`SHA-256 ${await sha256File(join(srv.home, "h1.bin"))} h1.bin\n`);
    expect(r.stdout).toContain(`SHA-256 ${await sha256File(join(srv.home, "h 2.bin"))} h 2.bin\n`);
    expect(r.stderr).toMatch(/^myftp: hash nope\.bin: the server refused: .*\(550\)\n$/);
    expect(r.code).toBe(5);
  });
});

describe("myftp against myftpd over FTPS", () => {
  let s: RunningServer;
  let certDir: Awaited<ReturnType<typeof testCertificate>>;
  let cert: string;
  let implicitPort: number;
  const work = clientWorkDir(async () => {
    await s?.close();
    if (certDir) await rm(certDir.dir, { recursive: true, force: true });
  });

  beforeAll(async () => {
    certDir = await testCertificate();
    cert = certDir.cert;
    s = await startServer([{ ...USER, quota: null }], {
      tls: { cert: await readFile(cert), key: await readFile(certDir.key) },
      implicitTlsPort: 0,
      requireTls: true,
      requireTlsSessionReuse: true,
    });
    implicitPort = s.server.implicitTlsPort!;
    await makeFile(join(s.homeOf(USER.name), "tls.bin"), 5 * MiB);
  });

  const explicitUrl = (p = "") => adapt(s).url(p);
  const implicitUrl = (p = "") => `ftps://${USER.name}:${encodeURIComponent(USER.password)}@127.0.0.1:${implicitPort}/${p}`;

  it("gets and puts with explicit TLS (--tls), verified by SHA-256, also in segments", async () => {
    const home = s.homeOf(USER.name);
    const a = join(work.path, "explicit.bin");
    const r = await runMyftp(["get", "--tls", "--ca", cert, explicitUrl("tls.bin"), a]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("SHA-256 verified");
    expect(await sha256File(a)).toBe(await sha256File(join(home, "tls.bin")));
    const up = await runMyftp(["put", "--tls", "--ca", cert, a, explicitUrl("explicit-up.bin")]);
    expect(up.code).toBe(0);
    expect(await sha256File(join(home, "explicit-up.bin"))).toBe(await sha256File(a));
    const seg = join(work.path, "explicit-seg.bin");
    const rs = await runMyftp(["get", "-n", "3", "--tls", "--insecure", explicitUrl("tls.bin"), seg]);
    expect(rs.stderr).toBe("");
    expect(rs.code).toBe(0);
    expect(await sha256File(seg)).toBe(await sha256File(join(home, "tls.bin")));
  });

  it("gets, puts and lists with implicit TLS (ftps://)", async () => {
    const home = s.homeOf(USER.name);
    const b = join(work.path, "implicit.bin");
    const r = await runMyftp(["get", "--ca", cert, implicitUrl("tls.bin"), b]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(await sha256File(b)).toBe(await sha256File(join(home, "tls.bin")));
    const up = await runMyftp(["put", "--ca", cert, b, implicitUrl("implicit-up.bin")]);
    expect(up.code).toBe(0);
    expect(await sha256File(join(home, "implicit-up.bin"))).toBe(await sha256File(b));
    const sh = await runMyftp(["--ca", cert, implicitUrl()], { stdin: "ls\nhash tls.bin\n" });
    expect(sh.stderr).toBe("");
    expect(sh.code).toBe(0);
    expect(sh.stdout).toContain("(TLS implicit)");
    expect(sh.stdout).toMatch(/^- +5242880 .* tls\.bin$/m);
    expect(sh.stdout).toContain(`SHA-256 ${await sha256File(join(home, "tls.bin"))} tls.bin`);
  });

  it("explains a refused plain login and an untrusted certificate in one line", async () => {
    const plain = await runMyftp(["ls", explicitUrl()]);
    expect(plain.code).toBe(4);
    expect(plain.stderr).toMatch(/^myftp: login refused by the server \(530 .*\)\n$/);
    const untrusted = await runMyftp(["ls", implicitUrl()]);
    expect(untrusted.code).toBe(3);
    expect(untrusted.stderr).toMatch(/^myftp: TLS failed: .* \(use --insecure or --ca FILE for a self-signed certificate\)\n$/);
  });
});
