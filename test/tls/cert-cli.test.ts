// `myftpd cert` and the TLS flags of `myftpd serve`, through the built CLI.

import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runMyftpd as myftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { runProcess } from "../helpers/util.js";

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function dataDir(): string {
  const d = tempDir("myftp-cert-");
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function serve(args: string[], dir: string): Promise<RunningProcess> {
  const p = await startServerProcess(args, dir);
  cleanup.push(() => p.stop());
  return p;
}

async function outputLine(p: RunningProcess, re: RegExp): Promise<RegExpExecArray> {
  for (let i = 0; i < 100; i++) {
    const m = re.exec(p.output());
    if (m) return m;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no line matching ${re} in:\n${p.output()}`);
}

describe("myftpd cert", () => {
  it("writes a self-signed certificate for the host and a 0600 key that matches it", async () => {
    const d = dataDir();
    const r = await myftpd(["cert", "--data", d, "--host", "ftp.example.test"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const certFile = path.join(d, "tls", "cert.pem");
    const keyFile = path.join(d, "tls", "key.pem");
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(d, "tls")).mode & 0o077).toBe(0);
    const x = new X509Certificate(readFileSync(certFile));
    expect(x.subject).toContain("CN=ftp.example.test");
    expect(x.subjectAltName).toContain("DNS:ftp.example.test");
    expect(x.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(x.checkIssued(x)).toBe(true); // self-signed
    expect(x.checkPrivateKey(createPrivateKey(readFileSync(keyFile)))).toBe(true);
    expect(new Date(x.validTo).getTime()).toBeGreaterThan(Date.now() + 365 * 86_400_000);
  });

  it("refuses to replace an existing certificate unless --force is given", async () => {
    const d = dataDir();
    expect((await myftpd(["cert", "--data", d, "--host", "a.test"])).code).toBe(0);
    const first = readFileSync(path.join(d, "tls", "cert.pem"), "utf8");
    const again = await myftpd(["cert", "--data", d, "--host", "b.test"]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/--force/);
    expect(readFileSync(path.join(d, "tls", "cert.pem"), "utf8")).toBe(first);
    expect((await myftpd(["cert", "--data", d, "--host", "b.test", "--force"])).code).toBe(0);
    expect(new X509Certificate(readFileSync(path.join(d, "tls", "cert.pem"))).subjectAltName).toContain("DNS:b.test");
  });

  it("refuses a host that is neither a name nor an address", async () => {
    const r = await myftpd(["cert", "--data", dataDir(), "--host", "bad host/name"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/host/);
  });
});

describe("myftpd serve with TLS", () => {
  it("uses DATA/tls by default; curl verifies it with --cacert over explicit and implicit FTPS", async () => {
    const d = dataDir();
    expect((await myftpd(["cert", "--data", d, "--host", "localhost"])).code).toBe(0);
    const p = await serve(["--implicit-tls-port", "0", "--require-tls", "--pasv-range", "0-0"], d);
    const login = await outputLine(p, /ftp:\/\/demo:([^@\s]+)@/);
    const password = login[1]!;
    const implicit = Number((await outputLine(p, /implicit FTPS on ftps:\/\/127\.0\.0\.1:(\d+)\//))[1]);
    expect(p.output()).toContain(`FTPS: AUTH TLS with ${path.join(d, "tls", "cert.pem")}`);
    writeFileSync(path.join(d, "home", "demo", "f.txt"), "secret file\n");
    const ca = path.join(d, "tls", "cert.pem");
    const plain = await runProcess("curl", ["-sS", `ftp://demo:${password}@127.0.0.1:${p.port}/f.txt`]);
    expect(plain.code).not.toBe(0);
    const explicit = await runProcess("curl", ["-sS", "--ssl-reqd", "--cacert", ca, `ftp://demo:${password}@localhost:${p.port}/f.txt`]);
    expect(explicit.stderr).toBe("");
    expect(explicit.stdout).toBe("secret file\n");
    const viaImplicit = await runProcess("curl", ["-sS", "--cacert", ca, `ftps://demo:${password}@127.0.0.1:${implicit}/f.txt`]);
    expect(viaImplicit.stdout).toBe("secret file\n");
  });

  it("takes --tls-cert and --tls-key from elsewhere", async () => {
    const certDir = dataDir();
    expect((await myftpd(["cert", "--data", certDir, "--host", "localhost"])).code).toBe(0);
    const d = dataDir();
    const p = await serve(
      ["--tls-cert", path.join(certDir, "tls", "cert.pem"), "--tls-key", path.join(certDir, "tls", "key.pem")],
      d,
    );
    const password = (await outputLine(p, /ftp:\/\/demo:([^@\s]+)@/))[1]!;
    const r = await runProcess("curl", ["-sS", "--ssl-reqd", "--cacert", path.join(certDir, "tls", "cert.pem"), "-l", `ftp://demo:${password}@localhost:${p.port}/`]);
    expect(r.code).toBe(0);
  });

  it("refuses to start TLS-only modes without a certificate, half a pair, or a bad file", async () => {
    const d = dataDir();
    const noCert = await myftpd(["serve", "--data", d, "--port", "0", "--require-tls"]);
    expect(noCert.code).toBe(2);
    expect(noCert.stderr).toMatch(/myftpd cert/);
    const noCertImplicit = await myftpd(["serve", "--data", d, "--port", "0", "--implicit-tls-port", "0"]);
    expect(noCertImplicit.code).toBe(2);
    const half = await myftpd(["serve", "--data", d, "--port", "0", "--tls-cert", path.join(d, "x.pem")]);
    expect(half.code).toBe(2);
    expect(half.stderr).toMatch(/--tls-cert and --tls-key/);
    writeFileSync(path.join(d, "junk.pem"), "not a certificate\n");
    const bad = await myftpd(["serve", "--data", d, "--port", "0", "--tls-cert", path.join(d, "junk.pem"), "--tls-key", path.join(d, "junk.pem")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/cannot use TLS certificate/);
  });

  it("refuses to start with a key of another type than the certificate (an RSA key beside an EC certificate)", async () => {
    const d = dataDir();
    expect((await myftpd(["cert", "--data", d, "--host", "localhost"])).code).toBe(0);
    const rsaKey = path.join(d, "rsa-key.pem");
    const gen = await runProcess("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsaKey]);
    expect(gen.code).toBe(0);
    const cert = path.join(d, "tls", "cert.pem");
    const r = await myftpd(["serve", "--data", d, "--port", "0", "--tls-cert", cert, "--tls-key", rsaKey]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot use TLS certificate .*cert\.pem with key .*rsa-key\.pem: the key does not belong to the certificate/);
  });
});
