// FTPS at the protocol level (RFC 4217), over raw sockets with exact replies: AUTH TLS, PBSZ, PROT, CCC, data
// protection, implicit TLS, TLS versions, --require-tls and --require-tls-session-reuse.

import { readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { connectData, RawFtp, readAll, secureClient } from "../helpers/raw-ftp.js";
import { runProcess, withTimeout } from "../helpers/util.js";

const PYTHON = "/usr/bin/python3";
const USERS = [{ name: "alice", password: "secret" }];

let cert: Awaited<ReturnType<typeof testCertificate>>;
let material: { cert: Buffer; key: Buffer };
const servers: RunningServer[] = [];

async function server(options: Parameters<typeof startServer>[1] = {}): Promise<RunningServer> {
  const s = await startServer(USERS, { dataTimeoutMs: 3000, ...options });
  servers.push(s);
  writeFileSync(path.join(s.homeOf("alice"), "hello.txt"), "hello over TLS\n");
  return s;
}

beforeAll(async () => {
  cert = await testCertificate();
  material = { cert: readFileSync(cert.cert), key: readFileSync(cert.key) };
});

afterAll(async () => {
  for (const s of servers) await s.close();
  rmSync(cert.dir, { recursive: true, force: true });
});

/** Connects, secures the control connection and logs in. */
async function secureLogin(port: number, opts: tls.ConnectionOptions = {}): Promise<RawFtp> {
  const c = await RawFtp.connect(port);
  const r = await c.authTls(opts);
  expect(r.code).toBe(234);
  await c.login("alice", "secret", { type: "I" });
  return c;
}

describe("without a certificate", () => {
  it("answers AUTH TLS, PBSZ, PROT and CCC with 502 and lists no TLS features", async () => {
    const s = await server();
    const c = await RawFtp.connect(s.port);
    const feat = await c.cmd("FEAT");
    expect(feat.code).toBe(211);
    expect(feat.lines.map((l) => l.trim())).not.toContain("AUTH TLS");
    expect(feat.lines.map((l) => l.trim())).not.toContain("PBSZ");
    expect((await c.cmd("AUTH TLS")).code).toBe(502);
    // Not implemented without a certificate, as AUTH: 502, not "AUTH first".
    expect((await c.cmd("PBSZ 0")).code).toBe(502);
    expect((await c.cmd("PROT P")).code).toBe(502);
    expect((await c.cmd("CCC")).code).toBe(502);
    // HELP leaves them out as FEAT does.
    const help = (await c.cmd("HELP")).lines.join(" ").split(/\s+/);
    expect(help).toContain("RETR");
    for (const v of ["AUTH", "PBSZ", "PROT", "CCC"]) expect(help).not.toContain(v);
    expect((await c.cmd("HELP AUTH")).code).toBe(502);
    await c.close();
  });
});

describe("explicit FTPS (AUTH TLS)", () => {
  let s: RunningServer;
  beforeAll(async () => {
    s = await server({ tls: material, implicitTlsPort: 0 });
  });

  it("lists AUTH TLS, PBSZ and PROT in FEAT", async () => {
    const c = await RawFtp.connect(s.port);
    const lines = (await c.cmd("FEAT")).lines.map((l) => l.trim());
    expect(lines).toEqual(expect.arrayContaining(["AUTH TLS", "PBSZ", "PROT"]));
    const help = (await c.cmd("HELP")).lines.join(" ").split(/\s+/);
    expect(help).toEqual(expect.arrayContaining(["AUTH", "PBSZ", "PROT", "CCC"]));
    expect((await c.cmd("HELP AUTH")).code).toBe(214);
    await c.close();
  });

  it("enforces the RFC 4217 order: AUTH, then PBSZ, then PROT", async () => {
    const c = await RawFtp.connect(s.port);
    expect((await c.cmd("PBSZ 0")).code).toBe(503);
    expect((await c.cmd("PROT P")).code).toBe(503);
    expect((await c.cmd("CCC")).code).toBe(503);
    expect((await c.cmd("AUTH KERBEROS_V4")).code).toBe(504);
    expect((await c.authTls()).code).toBe(234);
    expect((c.sock as tls.TLSSocket).encrypted).toBe(true);
    expect((await c.cmd("AUTH TLS")).code).toBe(503);
    expect((await c.cmd("PROT P")).code).toBe(503); // no PBSZ yet
    expect((await c.cmd("PBSZ x")).code).toBe(501);
    const pbsz = await c.cmd("PBSZ 1024");
    expect(pbsz.code).toBe(200);
    expect(pbsz.text).toBe("PBSZ=0");
    expect((await c.cmd("PROT S")).code).toBe(536);
    expect((await c.cmd("PROT E")).code).toBe(536);
    expect((await c.cmd("PROT Q")).code).toBe(504);
    expect((await c.cmd("PROT C")).code).toBe(200);
    expect((await c.cmd("PROT P")).code).toBe(200);
    expect((await c.cmd("CCC")).code).toBe(533);
    // Still TLS after the refused CCC.
    expect((await c.cmd("NOOP")).code).toBe(200);
    await c.close();
  });

  it("accepts AUTH SSL as an alias", async () => {
    const c = await RawFtp.connect(s.port);
    expect((await c.authTls({}, "AUTH SSL")).code).toBe(234);
    await c.login("alice", "secret", { type: "I" });
    await c.close();
  });

  it("refuses AUTH after login", async () => {
    const c = await RawFtp.connect(s.port);
    await c.login("alice", "secret", { type: "I" });
    expect((await c.cmd("AUTH TLS")).code).toBe(503);
    await c.close();
  });

  it("drops commands sent in clear behind AUTH TLS and forgets a USER given before it", async () => {
    const c = await RawFtp.connect(s.port);
    expect((await c.cmd("USER alice")).code).toBe(331);
    // A man in the middle could append commands after AUTH TLS; they must not run once TLS is up.
    c.send("AUTH TLS\r\nUSER mallory");
    const r = await c.read();
    expect(r.code).toBe(234);
    const raw = c.sock;
    raw.removeAllListeners("data");
    raw.removeAllListeners("close");
    const secure = await secureClient(tls.connect({ socket: raw, rejectUnauthorized: false }));
    secure.write("PASS secret\r\n");
    const reply = await withTimeout(
      new Promise<string>((resolve) => secure.once("data", (b: Buffer) => resolve(b.toString()))),
      5000,
      "no reply",
    );
    // Neither the USER before AUTH nor the injected one counts.
    expect(reply).toMatch(/^503 /);
    secure.destroy();
  });

  it("sends data in TLS under PROT P, resuming the control session", async () => {
    const c = await secureLogin(s.port);
    await c.protect();
    await c.waitSession();
    const r = await c.retrieve("RETR hello.txt", { secure: true, resume: true });
    expect(r.prelim.code).toBe(150);
    expect(r.final.code).toBe(226);
    expect(r.data.toString()).toBe("hello over TLS\n");
    expect(r.reused).toBe(true);
    const up = Buffer.alloc(200_000, 7);
    const st = await c.store("STOR up.bin", up, { secure: true });
    expect(st.final.code).toBe(226);
    expect(readFileSync(path.join(s.homeOf("alice"), "up.bin")).equals(up)).toBe(true);
    await c.close();
  });

  it("fails the transfer with 425 when a PROT P data connection does not speak TLS", async () => {
    const c = await secureLogin(s.port);
    await c.protect();
    const raw = await c.epsv();
    const prelim = await c.cmd("RETR hello.txt");
    expect(prelim.code).toBe(150);
    raw.write("this is not a TLS ClientHello\r\n");
    const data = await readAll(raw);
    const final = await c.read();
    expect(final.code).toBe(425);
    expect(final.lines).toHaveLength(1);
    expect(data.toString()).not.toContain("hello over TLS");
    // The session goes on.
    expect((await c.cmd("NOOP")).code).toBe(200);
    await c.close();
  });

  it("answers ABOR while the data connection's TLS handshake is pending and while TLS data flows", async () => {
    writeFileSync(path.join(s.homeOf("alice"), "big.bin"), Buffer.alloc(8 << 20, 1));
    const c = await secureLogin(s.port);
    await c.protect();
    // Connected, but the client never starts TLS: the server waits in its handshake until ABOR.
    const raw = await c.epsv();
    expect((await c.cmd("RETR big.bin")).code).toBe(150);
    c.send("ABOR");
    expect((await c.read()).code).toBe(426);
    expect((await c.read()).code).toBe(226);
    await readAll(raw);
    // TLS data flowing (the client reads nothing, so the server is blocked writing).
    await c.waitSession();
    const raw2 = await c.epsv();
    expect((await c.cmd("RETR big.bin")).code).toBe(150);
    const t = await secureClient(tls.connect({ socket: raw2, rejectUnauthorized: false, session: c.session }));
    t.pause();
    await new Promise((r) => setTimeout(r, 100));
    c.send("ABOR");
    expect((await c.read()).code).toBe(426);
    expect((await c.read()).code).toBe(226);
    t.destroy();
    expect((await c.retrieve("RETR hello.txt", { secure: true })).final.code).toBe(226);
    await c.close();
  });

  it("sends data in clear under PROT C", async () => {
    const c = await secureLogin(s.port);
    expect((await c.cmd("PBSZ 0")).code).toBe(200);
    expect((await c.cmd("PROT C")).code).toBe(200);
    const r = await c.retrieve("RETR hello.txt", { secure: false });
    expect(r.final.code).toBe(226);
    expect(r.data.toString()).toBe("hello over TLS\n");
    await c.close();
  });

  it("negotiates TLS 1.3 by default and TLS 1.2 when the client caps there", async () => {
    const a = await secureLogin(s.port);
    expect((a.sock as tls.TLSSocket).getProtocol()).toBe("TLSv1.3");
    await a.close();
    const b = await secureLogin(s.port, { maxVersion: "TLSv1.2" });
    expect((b.sock as tls.TLSSocket).getProtocol()).toBe("TLSv1.2");
    await b.protect();
    await b.waitSession();
    const r = await b.retrieve("RETR hello.txt", { secure: true, resume: true, tls: { maxVersion: "TLSv1.2" } });
    expect(r.final.code).toBe(226);
    expect(r.reused).toBe(true);
    await b.close();
  });

  it("refuses TLS 1.1 with a protocol_version alert and closes that session only", async () => {
    const c = await RawFtp.connect(s.port);
    expect((await c.cmd("AUTH TLS")).code).toBe(234);
    const old = tls.connect({
      socket: c.sock,
      rejectUnauthorized: false,
      minVersion: "TLSv1",
      maxVersion: "TLSv1.1",
      ciphers: "DEFAULT:@SECLEVEL=0",
    });
    const err = await secureClient(old).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).toBe("ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION");
    const next = await secureLogin(s.port);
    expect((await next.cmd("NOOP")).code).toBe(200);
    await next.close();
  });

  it("closes a session whose TLS handshake is garbage, and keeps serving others", async () => {
    const c = await RawFtp.connect(s.port);
    expect((await c.cmd("AUTH TLS")).code).toBe(234);
    c.sock.write(Buffer.from("\x16\x03\x01\x00\x05hello garbage that is not TLS\r\n", "latin1"));
    await withTimeout(c.closed, 5000, "server kept a broken TLS session open");
    const next = await secureLogin(s.port);
    expect((await next.cmd("PWD")).code).toBe(257);
    await next.close();
  });

  it("speaks TLS from the first byte on the implicit port, with data private by default", async () => {
    const c = await RawFtp.connect(s.server.implicitTlsPort!, { implicit: true });
    expect((c.sock as tls.TLSSocket).encrypted).toBe(true);
    await c.login("alice", "secret", { type: "I" });
    expect((await c.cmd("STAT")).lines.join("\n")).toContain("data: private");
    await c.waitSession();
    const r = await c.retrieve("RETR hello.txt", { secure: true, resume: true });
    expect(r.final.code).toBe(226);
    expect(r.data.toString()).toBe("hello over TLS\n");
    expect((await c.cmd("PROT C")).code).toBe(200);
    const clear = await c.retrieve("RETR hello.txt", { secure: false });
    expect(clear.final.code).toBe(226);
    expect(clear.data.toString()).toBe("hello over TLS\n");
    await c.close();
  });

  it("does not greet an implicit-port client that does not speak TLS", async () => {
    const raw = await connectData("127.0.0.1", s.server.implicitTlsPort!);
    raw.write("USER alice\r\n");
    const got = await readAll(raw, 5000);
    expect(got.toString()).not.toContain("220");
  });
});

describe("implicit FTPS and admission", () => {
  it("puts implicit connections through the per-address limit and the admission queue", async () => {
    const s = await server({ tls: material, implicitTlsPort: 0, maxConnectionsPerIp: 2, maxSessions: 1, maxQueue: 1 });
    const port = s.server.implicitTlsPort!;
    const first = await RawFtp.connect(port, { implicit: true });
    // The only session slot is taken: the next one waits, silently, in the queue.
    const queued = await RawFtp.open(port, { implicit: true });
    expect(await withTimeout(queued.read(400), 1000, "x").then(() => "greeted", () => "silent")).toBe("silent");
    // Past the per-address limit: 421 over TLS.
    const third = await RawFtp.open(port, { implicit: true });
    const refused = await third.read();
    expect(refused.code).toBe(421);
    await first.cmd("QUIT");
    expect((await queued.read()).code).toBe(220);
    await queued.login("alice", "secret", { type: "I" });
    await queued.close();
  });
});

describe("--require-tls", () => {
  let s: RunningServer;
  beforeAll(async () => {
    s = await server({ tls: material, requireTls: true, implicitTlsPort: 0 });
  });

  it("refuses USER and PASS before AUTH TLS with 530, but answers FEAT and SYST", async () => {
    const c = await RawFtp.connect(s.port);
    expect((await c.cmd("FEAT")).code).toBe(211);
    expect((await c.cmd("SYST")).code).toBe(215);
    const u = await c.cmd("USER alice");
    expect(u.code).toBe(530);
    expect(u.text).toMatch(/AUTH TLS/);
    expect((await c.cmd("PASS secret")).code).toBe(530);
    expect((await c.authTls()).code).toBe(234);
    await c.login("alice", "secret", { type: "I" });
    await c.close();
  });

  it("refuses transfers under PROT C with 521 and runs them under PROT P", async () => {
    const c = await secureLogin(s.port);
    const before = s.server.passivePorts.inUse;
    const r = await c.retrieve("RETR hello.txt", { secure: false }); // no PROT yet: clear
    expect(r.prelim.code).toBe(521);
    expect(s.server.passivePorts.inUse).toBe(before);
    expect((await c.cmd("PBSZ 0")).code).toBe(200);
    expect((await c.cmd("PROT C")).code).toBe(200);
    expect((await c.retrieve("LIST", { secure: false })).prelim.code).toBe(521);
    expect((await c.cmd("PROT P")).code).toBe(200);
    await c.waitSession();
    const ok = await c.retrieve("RETR hello.txt", { secure: true });
    expect(ok.final.code).toBe(226);
    expect(ok.data.toString()).toBe("hello over TLS\n");
    await c.close();
  });

  it("lets implicit-TLS clients log in directly", async () => {
    const c = await RawFtp.connect(s.server.implicitTlsPort!, { implicit: true });
    await c.login("alice", "secret", { type: "I" });
    await c.close();
  });

  it("is refused by curl without TLS and accepted with --ssl-reqd", async () => {
    const plain = await runProcess("curl", ["-sS", `ftp://alice:secret@127.0.0.1:${s.port}/hello.txt`]);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/530/);
    const secure = await runProcess("curl", ["-sS", "--ssl-reqd", "-k", `ftp://alice:secret@127.0.0.1:${s.port}/hello.txt`]);
    expect(secure.code).toBe(0);
    expect(secure.stdout).toBe("hello over TLS\n");
  });
});

describe("--require-tls-session-reuse", () => {
  let strict: RunningServer;
  let lenient: RunningServer;
  beforeAll(async () => {
    strict = await server({ tls: material, requireTlsSessionReuse: true });
    lenient = await server({ tls: material });
  });

  it("accepts a data connection that resumes the control session", async () => {
    const c = await secureLogin(strict.port);
    await c.protect();
    await c.waitSession();
    const r = await c.retrieve("RETR hello.txt", { secure: true, resume: true });
    expect(r.reused).toBe(true);
    expect(r.final.code).toBe(226);
    expect(r.data.toString()).toBe("hello over TLS\n");
    await c.close();
  });

  it("refuses a data connection that starts a new TLS session with 425", async () => {
    const c = await secureLogin(strict.port);
    await c.protect();
    const r = await c.retrieve("RETR hello.txt", { secure: true, resume: false });
    expect(r.prelim.code).toBe(150);
    expect(r.final.code).toBe(425);
    expect(r.final.text).toMatch(/reuse/i);
    expect(r.data.toString()).not.toContain("hello");
    // The same session then succeeds by resuming.
    await c.waitSession();
    const ok = await c.retrieve("RETR hello.txt", { secure: true, resume: true });
    expect(ok.final.code).toBe(226);
    await c.close();
  });

  it("refuses a data connection that resumes another control connection's session", async () => {
    const victim = await secureLogin(strict.port);
    const other = await secureLogin(strict.port);
    await victim.protect();
    const own = await victim.waitSession();
    // Another client from the same address, with a session (ticket) of its own from this server.
    victim.session = await other.waitSession();
    const r = await victim.retrieve("RETR hello.txt", { secure: true, resume: true });
    expect(r.final.code).toBe(425);
    expect(r.data.toString()).not.toContain("hello");
    // Its own session is taken.
    victim.session = own;
    const ok = await victim.retrieve("RETR hello.txt", { secure: true, resume: true });
    expect(ok.reused).toBe(true);
    expect(ok.final.code).toBe(226);
    await victim.close();
    await other.close();
  });

  it("refuses Python ftplib resuming another control connection's session, under TLS 1.3 and 1.2", async () => {
    const dir = tempDir("myftp-client-");
    const file = path.join(dir, "other_session.py");
    writeFileSync(
      file,
      String.raw`
import ftplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
if sys.argv[3] == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
class Resuming(ftplib.FTP_TLS):
    session_from = None
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        session = (self.session_from or self).sock.session
        return self.context.wrap_socket(conn, server_hostname=self.host, session=session), size
def login():
    f = Resuming(context=ctx)
    f.connect("127.0.0.1", int(sys.argv[1]), timeout=10)
    f.login("alice", "secret")
    f.prot_p()
    return f
def fetch(f):
    chunks = []
    try:
        f.retrbinary("RETR hello.txt", chunks.append)
        return "OK " + b"".join(chunks).decode().strip()
    except Exception as e:
        return "REFUSED"
other = login()
fetch(other)
victim = login()
print("own", fetch(victim))
victim.session_from = other
print("other", fetch(victim))
`,
    );
    for (const version of ["1.3", "1.2"]) {
      const r = await runProcess(PYTHON, [file, String(strict.port), cert.cert, version]);
      expect(r.stdout).toContain("own OK hello over TLS");
      expect(r.stdout).toContain("other REFUSED");
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("ties implicit FTPS data connections to their own control connection too", async () => {
    const implicit = await server({ tls: material, requireTlsSessionReuse: true, implicitTlsPort: 0 });
    const port = implicit.server.implicitTlsPort!;
    const victim = await RawFtp.login(port, "alice", "secret", { implicit: true, type: "I" });
    const other = await RawFtp.login(port, "alice", "secret", { implicit: true, type: "I" });
    const own = await victim.waitSession();
    victim.session = await other.waitSession();
    expect((await victim.retrieve("RETR hello.txt", { secure: true, resume: true })).final.code).toBe(425);
    victim.session = own;
    const ok = await victim.retrieve("RETR hello.txt", { secure: true, resume: true });
    expect(ok.final.code).toBe(226);
    await victim.close();
    await other.close();
  });

  it("refuses stock Python FTP_TLS (which does not resume) but serves it when reuse is not required", async () => {
    const dir = tempDir("myftp-client-");
    const file = path.join(dir, "stock_ftps.py");
    writeFileSync(
      file,
      String.raw`
import ftplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
f = ftplib.FTP_TLS(context=ctx)
f.connect("127.0.0.1", int(sys.argv[1]), timeout=10)
f.login("alice", "secret")
f.prot_p()
chunks = []
try:
    f.retrbinary("RETR hello.txt", chunks.append)
    print("OK", b"".join(chunks).decode().strip())
except Exception as e:
    print("REFUSED", type(e).__name__, e)
`,
    );
    const refused = await runProcess(PYTHON, [file, String(strict.port), cert.cert]);
    expect(refused.stdout).toMatch(/^REFUSED /);
    expect(refused.stdout).not.toContain("hello over TLS");
    const served = await runProcess(PYTHON, [file, String(lenient.port), cert.cert]);
    expect(served.stdout.trim()).toBe("OK hello over TLS");
    rmSync(dir, { recursive: true, force: true });
  });
});

