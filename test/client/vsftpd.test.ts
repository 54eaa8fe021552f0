// myftp against vsftpd: explicit TLS with a self-signed certificate (required for login and data),
// anonymous login, and a server that lists with LIST only (no MLSD, no MFMT, no HASH).
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { testCertificate } from "../helpers/myftpd.js";
import { startVsftpd, type VsftpdServer } from "../helpers/peers.js";
import { sha256File } from "../helpers/util.js";
import { assertBuilt, killAll, makeFile, runMyftp, tempDir } from "./cli-helpers.js";

const MiB = 1024 * 1024;

describe("myftp against vsftpd", () => {
  let work: { path: string; remove(): Promise<void> };
  let tls: VsftpdServer;
  let plain: VsftpdServer;
  let certDir: Awaited<ReturnType<typeof testCertificate>>;
  let cert: string;

  beforeAll(async () => {
    assertBuilt();
    work = await tempDir();
    certDir = await testCertificate();
    cert = certDir.cert;
    tls = await startVsftpd({ tls: { certFile: cert, keyFile: certDir.key } });
    plain = await startVsftpd();
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await tls?.stop();
    await plain?.stop();
    await work?.remove();
    if (certDir) await rm(certDir.dir, { recursive: true, force: true });
  });

  it("gets, puts and lists over explicit TLS, trusting the certificate with --ca or --insecure", async () => {
    await makeFile(join(tls.home, "secret.bin"), 2 * MiB);
    const a = join(work.path, "tls-a.bin");
    const r1 = await runMyftp(["get", "--tls", "--ca", cert, tls.url("secret.bin"), a]);
    expect(r1.stderr).toBe("");
    expect(r1.code).toBe(0);
    expect(await sha256File(a)).toBe(await sha256File(join(tls.home, "secret.bin")));
    const b = join(work.path, "tls-b.bin");
    const r2 = await runMyftp(["get", "--tls", "--insecure", tls.url("secret.bin"), b]);
    expect(r2.code).toBe(0);
    expect(await sha256File(b)).toBe(await sha256File(join(tls.home, "secret.bin")));
    const up = await runMyftp(["put", "--tls", "--ca", cert, b, tls.url("back.bin")]);
    expect(up.stderr).toBe("");
    expect(up.code).toBe(0);
    expect(await sha256File(join(tls.home, "back.bin"))).toBe(await sha256File(b));
    const shell = await runMyftp(["--tls", "--ca", cert, tls.url()], { stdin: "ls\nget secret.bin shell.bin\n", cwd: work.path });
    expect(shell.stderr).toBe("");
    expect(shell.code).toBe(0);
    expect(shell.stdout).toContain("(TLS explicit)");
    expect(shell.stdout).toMatch(/^- +2097152 .* secret\.bin$/m);
    expect(await sha256File(join(work.path, "shell.bin"))).toBe(await sha256File(join(tls.home, "secret.bin")));
  });

  it("puts and gets an empty file over explicit TLS (the upload waits for the data handshake before it ends)", async () => {
    const empty = join(work.path, "empty.bin");
    await writeFile(empty, "");
    const up = await runMyftp(["put", "--tls", "--ca", cert, empty, tls.url("empty.bin")]);
    expect(up.stderr).toBe("");
    expect(up.code).toBe(0);
    expect((await readFile(join(tls.home, "empty.bin"))).length).toBe(0);
    const back = join(work.path, "empty-back.bin");
    const down = await runMyftp(["get", "--tls", "--ca", cert, tls.url("empty.bin"), back]);
    expect(down.stderr).toBe("");
    expect(down.code).toBe(0);
    expect((await readFile(back)).length).toBe(0);
  });

  it("refuses a certificate it cannot check, and says a server wants TLS, in one line each", async () => {
    const r = await runMyftp(["ls", "--tls", tls.url()]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^myftp: TLS failed: .*self-signed.* \(use --insecure or --ca FILE for a self-signed certificate\)\n$/);
    const noTls = await runMyftp(["ls", tls.url()]);
    expect(noTls.code).toBe(4);
    expect(noTls.stderr).toBe("myftp: login refused by the server (530 Anonymous sessions must use encryption.)\n");
    const notOffered = await runMyftp(["ls", "--tls", "--insecure", plain.url()]);
    expect(notOffered.code).toBe(3);
    expect(notOffered.stderr).toMatch(/^myftp: the server does not offer TLS \(.*\)\n$/);
  });

  it("mirrors with a server that only has LIST, using MDTM for times", async () => {
    await mkdir(join(plain.home, "t", "sub"), { recursive: true });
    await writeFile(join(plain.home, "t", "a.txt"), "a\n");
    await makeFile(join(plain.home, "t", "sub", "b.bin"), 100_000);
    const dst = join(work.path, "vs-mirror");
    const r1 = await runMyftp(["mirror", plain.url("t"), dst]);
    expect(r1.stderr).toBe("");
    expect(r1.code).toBe(0);
    expect(r1.stdout).toMatch(/^mirror: 2 transferred .*, 0 unchanged$/m);
    expect(await readFile(join(dst, "a.txt"), "utf8")).toBe("a\n");
    expect(await sha256File(join(dst, "sub", "b.bin"))).toBe(await sha256File(join(plain.home, "t", "sub", "b.bin")));
    const r2 = await runMyftp(["mirror", plain.url("t"), dst]);
    expect(r2.stdout).toMatch(/^mirror: 0 transferred .*, 2 unchanged$/m);
    const r3 = await runMyftp(["mirror", "-R", dst, plain.url("t2/")]);
    expect(r3.stderr).toBe("");
    expect(r3.code).toBe(0);
    expect(await readFile(join(plain.home, "t2", "a.txt"), "utf8")).toBe("a\n");
    expect(await sha256File(join(plain.home, "t2", "sub", "b.bin"))).toBe(await sha256File(join(dst, "sub", "b.bin")));
    const r4 = await runMyftp(["mirror", "-R", dst, plain.url("t2/")]);
    expect(r4.stdout).toMatch(/^mirror --reverse: 0 transferred .*, 2 unchanged$/m);
  });
});
