// A STOR whose data connection is refused (425) leaves the file as it was, as one that never got a data connection
// does: here under --require-tls-session-reuse, where a PROT P data connection that starts a new TLS session is
// refused once it is open. A new file must not be left behind empty.

import { existsSync, readFileSync, rmSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

describe("STOR refused at the data connection's TLS handshake", () => {
  let srv: RunningServer;
  let certDir: string;

  beforeAll(async () => {
    const cert = await testCertificate();
    certDir = cert.dir;
    srv = await startServer([{ name: "alice", password: "secret" }], {
      tls: { cert: readFileSync(cert.cert), key: readFileSync(cert.key) },
      requireTlsSessionReuse: true,
    });
  });
  afterAll(async () => {
    await srv?.close();
    rmSync(certDir, { recursive: true, force: true });
  });

  async function secureLogin(): Promise<RawFtp> {
    const c = await RawFtp.connect(srv.port);
    expect((await c.authTls()).code).toBe(234);
    await c.login("alice", "secret", { type: "I" });
    await c.protect();
    return c;
  }

  it("leaves no new file behind and counts nothing", async () => {
    const c = await secureLogin();
    const r = await c.store("STOR fresh.bin", Buffer.alloc(1000, 1), { secure: true, resume: false });
    expect(r.prelim.code).toBe(150);
    expect(r.final.code).toBe(425);
    expect(existsSync(path.join(srv.homeOf("alice"), "fresh.bin"))).toBe(false);
    expect((await c.cmd("SITE QUOTA")).text).toContain("used 0 of");
    await c.close();
  });

  it("APPE to a new file likewise", async () => {
    const c = await secureLogin();
    const r = await c.store("APPE fresh2.bin", Buffer.alloc(1000, 1), { secure: true, resume: false });
    expect(r.final.code).toBe(425);
    expect(existsSync(path.join(srv.homeOf("alice"), "fresh2.bin"))).toBe(false);
    await c.close();
  });
});
