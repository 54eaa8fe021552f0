// Server options seen over the wire: idle timeout, failed-login delay, the announced PASV address, the passive port
// range, IPv6 control connections; and ordering details of the control loop around transfers.
import { readFileSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { connectData, RawFtp, readAll, writeAll } from "../helpers/raw-ftp.js";
import { withTimeout } from "../helpers/util.js";

const servers: RunningServer[] = [];
const conns: RawFtp[] = [];

afterEach(async () => {
  for (const c of conns.splice(0)) await c.close();
  for (const s of servers.splice(0)) await s.close();
});

async function server(options: Parameters<typeof startServer>[1] = {}): Promise<RunningServer> {
  const s = await startServer([{ name: "alice", password: "secret" }], options);
  servers.push(s);
  return s;
}

async function login(s: RunningServer, host = "127.0.0.1"): Promise<RawFtp> {
  const c = await RawFtp.open(s.port, { host });
  conns.push(c);
  expect((await c.read()).code).toBe(220);
  expect((await c.cmd("USER alice")).code).toBe(331);
  expect((await c.cmd("PASS secret")).code).toBe(230);
  return c;
}

describe("timeouts and delays", () => {
  it("closes an idle session with 421", async () => {
    const s = await server({ idleTimeoutMs: 300 });
    const c = await login(s);
    const r = await c.read(5000);
    expect(r.code).toBe(421);
    await withTimeout(c.closed, 3000, "connection not closed after idle 421");
  });

  it("keeps a session that sends commands alive past the idle time", async () => {
    const s = await server({ idleTimeoutMs: 1000 });
    const c = await login(s);
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 250));
      expect((await c.cmd("NOOP")).code).toBe(200);
    }
  });

  it("keeps a session alive while its transfer moves data", async () => {
    const s = await server({ idleTimeoutMs: 400 });
    const c = await login(s);
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("STOR trickle.bin")).code).toBe(150);
    const sock = await dc.get();
    for (let i = 0; i < 8; i++) {
      sock.write("x".repeat(100));
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(c.pending).toBe("");
    await writeAll(sock, "end");
    expect((await c.read()).code).toBe(226);
  });

  it("aborts an upload that stalls past the idle and data timeouts with 426, keeps what arrived, and goes on", async () => {
    const s = await server({ idleTimeoutMs: 300, dataTimeoutMs: 500 });
    const c = await login(s);
    expect((await c.cmd("TYPE I")).code).toBe(200);
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("STOR stalled.bin")).code).toBe(150);
    const sock = await dc.get();
    sock.write("only this"); // and then nothing, without closing
    const r = await c.read(5000);
    expect(r.code).toBe(426);
    expect(r.text).toMatch(/stalled/i);
    // The session is still usable, and the partial file is there for a later resume.
    expect((await c.cmd("SIZE stalled.bin")).lines[0]).toBe("213 9");
    sock.destroy();
  });

  it("aborts a download whose client stops reading, with 426", async () => {
    const s = await server({ idleTimeoutMs: 300, dataTimeoutMs: 500 });
    writeFileSync(path.join(s.homeOf("alice"), "big.bin"), Buffer.alloc(64 << 20));
    const c = await login(s);
    expect((await c.cmd("TYPE I")).code).toBe(200);
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("RETR big.bin")).code).toBe(150);
    const sock = await dc.get();
    sock.pause(); // never read: the socket buffers fill and nothing more moves
    const r = await c.read(10_000);
    expect(r.code).toBe(426);
    expect(r.text).toMatch(/stalled/i);
    expect((await c.cmd("NOOP")).code).toBe(200);
    sock.destroy();
  });

  it("answers a failed login with 530 only after the configured delay", async () => {
    const s = await server({ loginFailureDelayMs: 400 });
    const c = await RawFtp.connect(s.port);
    conns.push(c);
    await c.cmd("USER alice");
    const t0 = Date.now();
    expect((await c.cmd("PASS wrong")).code).toBe(530);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
  });
});

describe("passive mode settings", () => {
  it("announces the configured PASV address", async () => {
    const s = await server({ pasvAddress: "192.0.2.44" });
    const c = await login(s);
    expect((await c.cmd("PASV")).text).toMatch(/\(192,0,2,44,\d+,\d+\)/);
  });

  it("hands out ports from the configured range only, and answers an exhausted range without dropping the session", async () => {
    // A small range in a quiet part of the port space; a port another program holds is skipped by the server.
    const base = 41000 + Math.floor(Math.random() * 2000) * 3;
    const s = await server({ pasvRange: [base, base + 2] });
    const sessions = [await login(s), await login(s), await login(s), await login(s)];
    const replies = [];
    for (const c of sessions) replies.push(await c.cmd("EPSV"));
    const ok = replies.filter((r) => r.code === 229);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(ok.length).toBeLessThanOrEqual(3);
    for (const r of ok) {
      const port = Number(/\|\|\|(\d+)\|/.exec(r.text)![1]);
      expect(port).toBeGreaterThanOrEqual(base);
      expect(port).toBeLessThanOrEqual(base + 2);
    }
    const refused = replies.find((r) => r.code !== 229)!;
    expect(refused).toBeDefined();
    expect(refused.code).toBe(425);
    const last = sessions[replies.indexOf(refused)]!;
    expect((await last.cmd("NOOP")).code).toBe(200);
    // A freed port can be handed out again.
    const holder = sessions[replies.indexOf(ok[0]!)]!;
    expect((await holder.cmd("ABOR")).code).toBe(225);
    expect((await last.cmd("EPSV")).code).toBe(229);
  });

  it("closes the first passive port when PASV is sent again", async () => {
    const s = await server();
    const c = await login(s);
    const first = await c.epsvPort();
    await c.epsvPort();
    await expect(connectData("127.0.0.1", first)).rejects.toThrow();
  });
});

describe("IPv6 control connections", () => {
  it("EPSV and EPRT work over ::1; PASV is refused; EPSV 1 is 522", async () => {
    const s = await server({ host: "::1" });
    writeFileSync(path.join(s.homeOf("alice"), "six.txt"), "over IPv6");
    const c = await login(s, "::1");
    expect((await c.cmd("PASV")).code).toBeGreaterThanOrEqual(500);
    expect((await c.cmd("EPSV 1")).code).toBe(522);
    expect((await c.cmd("EPSV 2")).code).toBe(229);
    const r = await c.retrieve("RETR six.txt", { how: "EPSV" });
    expect(r.final.code).toBe(226);
    expect(r.data.toString()).toBe("over IPv6");
    // Active mode to our own ::1 listener.
    const l = net.createServer();
    await new Promise<void>((res) => l.listen(0, "::1", res));
    const port = (l.address() as net.AddressInfo).port;
    const accepted = new Promise<net.Socket>((res) => l.once("connection", res));
    expect((await c.cmd(`EPRT |2|::1|${port}|`)).code).toBe(200);
    expect((await c.cmd("RETR six.txt")).code).toBe(150);
    const data = await readAll(await withTimeout(accepted, 5000, "no active IPv6 connection"));
    l.close();
    expect(data.toString()).toBe("over IPv6");
    expect((await c.read()).code).toBe(226);
    // RFC 2428 §2: the wrong family (or an unknown one) is 522 naming the protocol to use, not a bounce refusal.
    expect((await c.cmd("EPRT |1|127.0.0.1|2000|")).all).toBe("522 Network protocol not supported, use (2)");
    expect((await c.cmd("EPRT |3|::1|2000|")).all).toBe("522 Network protocol not supported, use (2)");
    expect((await c.cmd("EPSV 1")).all).toBe("522 Network protocol not supported, use (2)");
    // A foreign IPv6 host is still refused as a bounce.
    expect((await c.cmd("EPRT |2|2001:db8::1|2000|")).code).toBe(500);
  });

  it("refuses PASV over IPv6 with --pasv-address too (the IPv4 address announced could not be used)", async () => {
    const s = await server({ host: "::", pasvAddress: "127.0.0.1" });
    const six = await login(s, "::1");
    const r = await six.cmd("PASV");
    expect(r.code).toBe(500);
    expect(r.text).toMatch(/use EPSV/);
    expect((await six.cmd("EPSV")).code).toBe(229);
    // Over IPv4 (an IPv4-mapped peer on the same listener) the configured address is announced.
    const four = await login(s, "127.0.0.1");
    expect((await four.cmd("PASV")).text).toMatch(/\(127,0,0,1,\d+,\d+\)/);
  });
});

describe("a dual-stack listener (host ::)", () => {
  it("serves an IPv4 client over PASV, EPSV, PORT and EPRT", async () => {
    const s = await server({ host: "::" });
    writeFileSync(path.join(s.homeOf("alice"), "f.txt"), "dual");
    const c = await login(s, "127.0.0.1");
    for (const how of ["PASV", "EPSV", "PORT", "EPRT"] as const) {
      const r = await c.retrieve("RETR f.txt", { how });
      expect(r.prelim.code, `${how}: ${r.prelim.all}`).toBe(150);
      expect(r.final.code, how).toBe(226);
      expect(r.data.toString(), how).toBe("dual");
    }
  });
});

describe("control loop around transfers", () => {
  it("answers commands sent during a transfer after its 226, in order", async () => {
    const s = await server();
    const c = await login(s);
    await c.cmd("TYPE I");
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("STOR queued.bin")).code).toBe(150);
    const sock = await dc.get();
    c.send("PWD");
    c.send("SYST");
    await new Promise((r) => setTimeout(r, 100));
    expect(c.pending).toBe("");
    await writeAll(sock, "payload");
    expect((await c.read()).code).toBe(226);
    expect((await c.read()).code).toBe(257);
    expect((await c.read()).code).toBe(215);
  });

  it("ABOR while the transfer still waits for its data connection: 426 for the transfer, then 226", async () => {
    const s = await server({ dataTimeoutMs: 10_000 });
    writeFileSync(path.join(s.homeOf("alice"), "f"), "x");
    const c = await login(s);
    await c.epsvPort();
    c.send("RETR f");
    await new Promise((r) => setTimeout(r, 100));
    c.send("ABOR");
    const a = await c.read();
    const b = await c.read();
    expect([a.code, b.code]).toEqual([426, 226]);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("QUIT during an upload waits for it: 226 with every byte stored, then 221 (RFC 959 §4.1.1)", async () => {
    const s = await server();
    const c = await login(s);
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("STOR q.bin")).code).toBe(150);
    const sock = await dc.get();
    const body = Buffer.alloc(3_000_000, 5);
    sock.write(body.subarray(0, 1000));
    c.send("QUIT");
    await new Promise((r) => setTimeout(r, 200));
    await writeAll(sock, body.subarray(1000));
    expect((await c.read(10_000)).code).toBe(226);
    expect((await c.read()).code).toBe(221);
    await withTimeout(c.closed, 3000, "not closed after QUIT");
    expect(readFileSync(path.join(s.homeOf("alice"), "q.bin")).equals(body)).toBe(true);
  });

  it("QUIT during a download: the whole file, 226, then 221", async () => {
    const s = await server();
    const body = Buffer.alloc(32 << 20, 9); // more than the socket buffers hold, so it is still being sent at QUIT
    writeFileSync(path.join(s.homeOf("alice"), "r.bin"), body);
    const c = await login(s);
    const sock = await (await c.dataConnection("EPSV")).get();
    sock.pause();
    expect((await c.cmd("RETR r.bin")).code).toBe(150);
    c.send("QUIT");
    await new Promise((r) => setTimeout(r, 200));
    const reading = readAll(sock);
    sock.resume();
    const got = await reading;
    expect(got.length).toBe(body.length);
    expect(got.equals(body)).toBe(true);
    expect((await c.read(10_000)).code).toBe(226);
    expect((await c.read()).code).toBe(221);
    await withTimeout(c.closed, 3000, "not closed after QUIT");
  });
});
