// FTPS through real clients nobody here wrote: curl (explicit and implicit), lftp, Python's
// ftplib.FTP_TLS and basic-ftp. The server requires TLS and requires data connections to resume the control
// connection's TLS session, so every transfer that succeeds here was private and resumed. (Active mode goes through
// Python: curl 7.87-7.88 does not start TLS on an active data connection, curl issue #10666.)

import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { Client } from "basic-ftp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { runProcess } from "../helpers/util.js";

const PYTHON = "/usr/bin/python3";

let cert: Awaited<ReturnType<typeof testCertificate>>;
let srv: RunningServer;
let local: string;

beforeAll(async () => {
  cert = await testCertificate();
  srv = await startServer([{ name: "alice", password: "secret" }], {
    tls: { cert: readFileSync(cert.cert), key: readFileSync(cert.key) },
    implicitTlsPort: 0,
    requireTls: true,
    requireTlsSessionReuse: true,
  });
  local = tempDir("myftp-client-");
});

afterAll(async () => {
  await srv?.close();
  rmSync(cert.dir, { recursive: true, force: true });
  rmSync(local, { recursive: true, force: true });
});

function payload(name: string, size: number): { file: string; data: Buffer } {
  const data = randomBytes(size);
  const file = path.join(local, name);
  writeFileSync(file, data);
  return { file, data };
}

function onServer(name: string): Buffer {
  return readFileSync(path.join(srv.homeOf("alice"), name));
}

describe("curl", () => {
  it("uploads and downloads with --ssl-reqd, verifying the certificate with --cacert", async () => {
    const { file, data } = payload("curl-up.bin", 300_000);
    const base = `ftp://alice:secret@127.0.0.1:${srv.port}`;
    const up = await runProcess("curl", ["-sS", "--ssl-reqd", "--cacert", cert.cert, "-T", file, `${base}/curl.bin`]);
    expect(up.stderr).toBe("");
    expect(up.code).toBe(0);
    expect(onServer("curl.bin").equals(data)).toBe(true);
    const out = path.join(local, "curl-down.bin");
    const down = await runProcess("curl", ["-sS", "--ssl-reqd", "--cacert", cert.cert, "-o", out, `${base}/curl.bin`]);
    expect(down.code).toBe(0);
    expect(readFileSync(out).equals(data)).toBe(true);
  });

  it("speaks implicit FTPS on its own port (ftps://)", async () => {
    const port = srv.server.implicitTlsPort!;
    expect(port).toBeGreaterThan(0);
    const { file, data } = payload("curl-implicit.bin", 200_000);
    const base = `ftps://alice:secret@127.0.0.1:${port}`;
    const up = await runProcess("curl", ["-sS", "--cacert", cert.cert, "-T", file, `${base}/implicit.bin`]);
    expect(up.code).toBe(0);
    expect(onServer("implicit.bin").equals(data)).toBe(true);
    const list = await runProcess("curl", ["-sS", "--cacert", cert.cert, "-l", `${base}/`]);
    expect(list.code).toBe(0);
    expect(list.stdout.split(/\r?\n/)).toContain("implicit.bin");
    const out = path.join(local, "curl-implicit-down.bin");
    const down = await runProcess("curl", ["-sS", "--cacert", cert.cert, "-o", out, `${base}/implicit.bin`]);
    expect(down.code).toBe(0);
    expect(readFileSync(out).equals(data)).toBe(true);
  });
});

describe("lftp", () => {
  it("puts, lists and gets with ftp:ssl-force", async () => {
    const { file, data } = payload("lftp-up.bin", 250_000);
    const out = path.join(local, "lftp-down.bin");
    const script = [
      "set ftp:ssl-force true",
      "set ssl:verify-certificate no",
      "set net:max-retries 1",
      "set net:timeout 10",
      "set cmd:fail-exit true",
      `open -u alice,secret -p ${srv.port} 127.0.0.1`,
      `put ${file} -o lftp.bin`,
      "cls -1",
      `get lftp.bin -o ${out}`,
    ].join("; ");
    const r = await runProcess("lftp", ["-c", script], { timeoutMs: 45_000 });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("lftp.bin");
    expect(onServer("lftp.bin").equals(data)).toBe(true);
    expect(readFileSync(out).equals(data)).toBe(true);
  });
});

describe("Python ftplib.FTP_TLS", () => {
  // Stock FTP_TLS opens each data connection as a new TLS session. Passing the control socket's session to
  // wrap_socket (a three-line subclass) makes it resume, which works under TLS 1.3 and TLS 1.2 alike.
  const script = String.raw`
import ftplib, io, ssl, sys
port, cafile, tls12, active = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
ctx = ssl.create_default_context(cafile=cafile)
if tls12:
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
class ResumingFTP_TLS(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size
f = ResumingFTP_TLS(context=ctx)
f.connect("127.0.0.1", port, timeout=15)
f.login("alice", "secret")
f.prot_p()
f.set_pasv(not active)
data = bytes(range(256)) * 1000
f.storbinary("STOR py.bin", io.BytesIO(data))
out = io.BytesIO()
f.retrbinary("RETR py.bin", out.write)
assert out.getvalue() == data, "downloaded bytes differ"
assert "py.bin" in f.nlst()
print(f.sock.version())
f.quit()
`;

  for (const [tls12, active] of [[false, false], [true, false], [false, true]]) {
    const how = `${tls12 ? "TLS 1.2" : "TLS 1.3"}, ${active ? "active (PORT)" : "passive"}`;
    it(`stores, retrieves and lists with prot_p (${how}, certificate verified against the CA file)`, async () => {
      const file = path.join(local, "ftps_session_test.py");
      writeFileSync(file, script);
      const r = await runProcess(PYTHON, [file, String(srv.port), cert.cert, tls12 ? "1" : "0", active ? "1" : "0"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(tls12 ? "TLSv1.2" : "TLSv1.3");
      expect(onServer("py.bin").length).toBe(256_000);
    });
  }
});

describe("basic-ftp", () => {
  it("uploads, lists and downloads with secure: true", async () => {
    const { file, data } = payload("basic-up.bin", 180_000);
    const client = new Client(15_000);
    try {
      await client.access({
        host: "127.0.0.1",
        port: srv.port,
        user: "alice",
        password: "secret",
        secure: true,
        secureOptions: { rejectUnauthorized: false },
      });
      await client.uploadFrom(file, "basic.bin");
      expect((await client.list()).map((e) => e.name)).toContain("basic.bin");
      const out = path.join(local, "basic-down.bin");
      await client.downloadTo(out, "basic.bin");
      expect(readFileSync(out).equals(data)).toBe(true);
    } finally {
      client.close();
    }
    expect(onServer("basic.bin").equals(data)).toBe(true);
  });
});
