// FTPS failures are one clear line with exit code 3: ftps:// (implicit TLS) against a plain FTP port, and a
// certificate that the CA given with --ca did not sign (the hint must not tell the user to do what they did).
import { readFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { startPyftpd, type PeerServer } from "../helpers/peers.js";
import { assertBuilt, killAll, runMyftp, tempDir } from "../client/cli-helpers.js";

describe("FTPS failures in one line", () => {
  let work: { path: string; remove(): Promise<void> };
  let plain: RunningServer;
  let secure: RunningServer;
  let peer: PeerServer;
  let ca: string;
  let otherCa: string;

  beforeAll(async () => {
    assertBuilt();
    work = await tempDir("myftp-qa2-tls-");
    plain = await startServer();
    const cert = await testCertificate();
    ca = cert.cert;
    otherCa = (await testCertificate()).cert;
    secure = await startServer([{ name: "alice", password: "secret" }], {
      tls: { cert: readFileSync(cert.cert), key: readFileSync(cert.key) },
    });
    peer = await startPyftpd();
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await plain?.close();
    await secure?.close();
    await peer?.stop();
    await work?.remove();
  });

  const noTls = (port: number) =>
    `myftp: TLS failed: the server at 127.0.0.1:${port} did not answer in TLS (ftps:// is implicit TLS; for AUTH TLS on an FTP port use ftp:// with --tls)\n`;

  it("ftps:// against a plain FTP port (myftpd and pyftpdlib)", async () => {
    const a = await runMyftp(["ls", "--insecure", `ftps://alice:secret@127.0.0.1:${plain.port}/`], { cwd: work.path });
    expect(a.stderr).toBe(noTls(plain.port));
    expect(a.code).toBe(3);
    const b = await runMyftp(["get", "--insecure", peer.url(undefined, "x.bin", "ftps")], { cwd: work.path });
    expect(b.stderr).toBe(noTls(peer.port));
    expect(b.code).toBe(3);
  });

  it("--ca with a CA that did not sign the server's certificate", async () => {
    const r = await runMyftp(["ls", "--tls", "--ca", otherCa, `ftp://alice:secret@localhost:${secure.port}/`], { cwd: work.path });
    expect(r.stderr).toBe(`myftp: TLS failed: the server's certificate is not signed by the CA in ${otherCa} (self-signed certificate)\n`);
    expect(r.code).toBe(3);
    const ok = await runMyftp(["ls", "--tls", "--ca", ca, `ftp://alice:secret@localhost:${secure.port}/`], { cwd: work.path });
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
  });
});
