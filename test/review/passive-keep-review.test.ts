// Review of the kept passive listener (data-channel.ts) and the inline small-file read (local.ts readNow).
//
// Everything runs against a real server (startServer, in this process) on 127.0.0.1 with real sockets. Where a test
// needs "a connection that reached the kept port before the PASV" it writes the PASV and opens the stray connection
// before the server's event loop gets to poll again (the server runs in this process), so the kernel has both ready
// when the server next looks: the control line first, the stray connection second. That is the order a busy server
// sees them in when the two arrive within one turn of its loop.

import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { announcedPort, connectData, portRefused, RawFtp, readAll, retrieveOn, secureClient } from "../helpers/raw-ftp.js";
import { sleep, until, withTimeout } from "../helpers/util.js";
import { freeRange } from "../security/ports.js";

const small = randomBytes(16 * 1024);
const other = randomBytes(3000);

/** Collects what a socket receives; `done` settles when it ends or closes (bounded). */
function collect(sock: net.Socket): { done: Promise<Buffer>; got: () => Buffer } {
  const chunks: Buffer[] = [];
  sock.on("data", (c: Buffer) => chunks.push(c));
  sock.on("error", () => undefined);
  const done = withTimeout(
    new Promise<Buffer>((resolve) => sock.once("close", () => resolve(Buffer.concat(chunks)))),
    10_000,
    "stray connection did not close",
  ).catch(() => Buffer.concat(chunks));
  return { done, got: () => Buffer.concat(chunks) };
}

/**
 * Sends `line` on the control connection and opens a TCP connection to `port` (from `from`) before the server's
 * loop polls again; returns the stray socket. The connect() of an IP address is issued on the next tick.
 */
async function lineThenStray(c: RawFtp, line: string, port: number, from?: string): Promise<net.Socket> {
  c.send(line);
  const stray = net.connect({ host: "127.0.0.1", port, localAddress: from });
  stray.on("error", () => undefined);
  await new Promise<void>((r) => process.nextTick(r));
  // Hold this (the server's) loop a moment so the kernel completes the handshake before the next poll.
  const t = Date.now() + 30;
  while (Date.now() < t) {
    /* spin */
  }
  return stray;
}

// ---------------------------------------------------------------------------------------------------------------
describe("kept listener, system-chosen ports", () => {
  let s: RunningServer;
  beforeAll(async () => {
    s = await startServer([{ name: "alice", password: "secret" }], { maxConnectionsPerIp: 50 });
    writeFileSync(path.join(s.homeOf("alice"), "a.bin"), small);
    writeFileSync(path.join(s.homeOf("alice"), "b.bin"), other);
  });
  afterAll(async () => {
    await s?.close();
  });

  it("a same-host connection made just before the next EPSV is not served: the port is given up, the EPSV gets a fresh one", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
    // The port is kept and no set-up waits on it. A connection arrives now, together with the next EPSV.
    const stray = await lineThenStray(c, "EPSV", port);
    const strayData = collect(stray);
    const epsv = await c.read();
    expect(epsv.code).toBe(229);
    const fresh = announcedPort(epsv.text);
    expect(fresh).not.toBe(port);
    // The client's own connection for this EPSV, and the transfer.
    const own = await connectData("127.0.0.1", fresh);
    const ownData = collect(own);
    const prelim = await c.cmd("RETR b.bin");
    const final = prelim.code === 150 ? await c.read(10_000) : prelim;
    const [strayGot, ownGot] = await Promise.all([strayData.done, ownData.done]);
    stray.destroy();
    own.destroy();
    // README: "While no set-up waits on it, whatever connects is closed unserved".
    expect(
      { strayBytes: strayGot.length, ownBytes: ownGot.length, final: final.all },
      "the stray connection (made before EPSV was answered) was served the file",
    ).toEqual({ strayBytes: 0, ownBytes: other.length, final: "226 Transfer complete (3000 bytes)" });
    await c.close();
  });

  it("a foreign connection made just before the next EPSV does not fail that EPSV's transfer", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
    const thief = await lineThenStray(c, "EPSV", port, "127.0.0.2");
    const thiefData = collect(thief);
    const epsv = await c.read();
    expect(epsv.code).toBe(229);
    const fresh = announcedPort(epsv.text);
    expect(fresh).not.toBe(port);
    const r = await retrieveOn(c, fresh, "b.bin").catch((e: Error) => ({ code: -1, data: Buffer.from(e.message) }));
    expect((await thiefData.done).length).toBe(0); // never served: the sameHost check holds
    expect(r.code, "the next transfer was refused because of a connection that predates its EPSV").toBe(226);
    expect(r.data.equals(other)).toBe(true);
    await c.close();
  });

  it("a foreign host that keeps knocking on the kept port cannot fail the session's next transfer", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
    // The port is known in advance now (it is the last one, and it accepts-and-closes while kept).
    let stop = false;
    const knocker = (async () => {
      for (let i = 0; i < 5000 && !stop; i++) {
        const k = await connectData("127.0.0.1", port, "127.0.0.2").catch(() => null);
        k?.destroy();
        await new Promise((r) => setImmediate(r));
      }
    })();
    await sleep(20);
    let r: { code: number; data: Buffer };
    try {
      const next = await c.epsvPort();
      expect(next).not.toBe(port); // a knock gives the kept port up
      await sleep(5); // the client's round trip to its data connection
      r = await retrieveOn(c, next, "b.bin").catch((e: Error) => ({ code: -1, data: Buffer.from(e.message) }));
    } finally {
      stop = true;
      await withTimeout(knocker, 5000, "knocker did not stop");
    }
    expect(r.code, "the transfer failed because a foreign host knew the reused port in advance").toBe(226);
    await c.close();
  });

  it("a pipelined EPSV + RETR on a reused port: data goes to the client, nothing to a connection made during the transfer", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
    // During the next transfer a second connection to the port is closed unserved.
    const again = await c.epsvPort();
    expect(again).toBe(port);
    const data = await connectData("127.0.0.1", port);
    const prelim = await c.cmd("RETR a.bin");
    expect(prelim.code).toBe(150);
    const late = await connectData("127.0.0.1", port).catch(() => null);
    const lateGot = late ? await readAll(late, 5000) : Buffer.alloc(0);
    expect(lateGot.length).toBe(0);
    expect((await readAll(data, 10_000)).equals(small)).toBe(true);
    expect((await c.read()).code).toBe(226);
    await c.close();
  });

  it("REST on a reused port sends the tail only", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
    expect(await c.epsvPort()).toBe(port);
    expect((await c.cmd("REST 1000")).code).toBe(350);
    const r = await retrieveOn(c, port, "a.bin");
    expect(r.code).toBe(226);
    expect(r.data.equals(small.subarray(1000))).toBe(true);
    // A REST past the end: 5xx, the reused port is closed with the set-up, the session goes on.
    expect(await c.epsvPort()).toBe(port);
    expect((await c.cmd(`REST ${small.length + 10}`)).code).toBe(350);
    const bad = await c.cmd("RETR a.bin");
    expect(bad.code).toBeGreaterThanOrEqual(500);
    await until(() => portRefused(port), 2000, "port closed after the failed RETR");
    const next = await c.retrieve("RETR b.bin", { how: "EPSV" });
    expect(next.final.code).toBe(226);
    await c.close();
  });

  it("ABOR before the data connection came closes the reused port, and the next EPSV works", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
    expect(await c.epsvPort()).toBe(port);
    // RETR with no data connection yet, then ABOR.
    c.send("RETR a.bin");
    await sleep(50);
    c.send("ABOR");
    const r1 = await c.read();
    const r2 = await c.read();
    expect([r1.code, r2.code]).toContain(226);
    expect([425, 426]).toContain(r1.code);
    await until(() => portRefused(port), 2000, "port closed after ABOR before connect");
    const after = await c.retrieve("RETR b.bin", { how: "EPSV" });
    expect(after.final.code).toBe(226);
    expect(after.data.equals(other)).toBe(true);
    await c.close();
  });

  it("ABOR during an upload on a kept port: 426 then 226, the port is still kept and serves the next transfer", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
    expect(await c.epsvPort()).toBe(port);
    const up = await connectData("127.0.0.1", port);
    expect((await c.cmd("STOR abor-up.bin")).code).toBe(150);
    up.write(Buffer.alloc(1000, 7)); // and never end
    await sleep(100);
    c.send("ABOR");
    const r1 = await c.read();
    const r2 = await c.read();
    expect([r1.code, r2.code]).toEqual([426, 226]);
    up.destroy();
    expect(await c.epsvPort()).toBe(port);
    const r = await retrieveOn(c, port, "b.bin");
    expect(r.code).toBe(226);
    expect(r.data.equals(other)).toBe(true);
    await c.close();
  });

  it("the keep timer closes the port again after it fired once (refresh of a fired timer)", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    for (let round = 0; round < 2; round++) {
      const port = await c.epsvPort();
      expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
      expect(await portRefused(port)).toBe(false);
      await until(() => portRefused(port), 4000, `kept port closes by its timer (round ${round})`);
    }
    await c.close();
  });

  it("inline reads: ASCII conversion, an empty file, exactly 64 KiB and 64 KiB + 1 come out right", async () => {
    const home = s.homeOf("alice");
    writeFileSync(path.join(home, "t.txt"), "one\ntwo\n");
    writeFileSync(path.join(home, "empty.bin"), Buffer.alloc(0));
    const k64 = randomBytes(64 * 1024);
    const k64p1 = randomBytes(64 * 1024 + 1);
    writeFileSync(path.join(home, "k64.bin"), k64);
    writeFileSync(path.join(home, "k64p1.bin"), k64p1);
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "A" });
    const a = await c.retrieve("RETR t.txt");
    expect(a.final.code).toBe(226);
    expect(a.data.toString()).toBe("one\r\ntwo\r\n");
    await c.expect("TYPE I", 200);
    const e = await c.retrieve("RETR empty.bin");
    expect(e.final.code).toBe(226);
    expect(e.data.length).toBe(0);
    const x = await c.retrieve("RETR k64.bin");
    expect(x.final.code).toBe(226);
    expect(x.data.equals(k64)).toBe(true);
    const y = await c.retrieve("RETR k64p1.bin");
    expect(y.final.code).toBe(226);
    expect(y.data.equals(k64p1)).toBe(true);
    expect((await c.cmd("REST 65535")).code).toBe(350);
    const z = await c.retrieve("RETR k64p1.bin");
    expect(z.final.code).toBe(226);
    expect(z.data.equals(k64p1.subarray(65535))).toBe(true);
    await c.close();
  });

  it("EPSV ALL: PORT refused, EPSV keeps reusing the port", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    expect((await c.cmd("EPSV ALL")).code).toBe(200);
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
    expect((await c.cmd("PORT 127,0,0,1,200,10")).code).toBe(503);
    expect((await c.cmd("PASV")).code).toBe(503);
    expect(await c.epsvPort()).toBe(port);
    const r = await retrieveOn(c, port, "b.bin");
    expect(r.code).toBe(226);
    expect(r.data.equals(other)).toBe(true);
    await c.close();
  });

  it("a second EPSV while a reused one is pending (client already connected) gives a fresh port; the old connection is not served", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
    expect(await c.epsvPort()).toBe(port);
    const early = await connectData("127.0.0.1", port);
    const earlyGot = collect(early);
    const p2 = await c.epsvPort();
    expect(p2).not.toBe(port);
    expect(await portRefused(port)).toBe(true);
    const r = await retrieveOn(c, p2, "b.bin");
    expect(r.code).toBe(226);
    expect(r.data.equals(other)).toBe(true);
    expect((await earlyGot.done).length).toBe(0);
    await c.close();
  });

  it("server close() closes a kept port, and leaves no server socket or ref'd timer behind", async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === "TCPServerWrap").length;
    const s2 = await startServer([{ name: "alice", password: "secret" }]);
    writeFileSync(path.join(s2.homeOf("alice"), "a.bin"), small);
    const c = await RawFtp.login(s2.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "a.bin")).code).toBe(226);
    expect(s2.server.passivePorts.inUse).toBe(0); // system-chosen ports are not counted
    const t0 = Date.now();
    await withTimeout(s2.close(), 10_000, "server close");
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await portRefused(port)).toBe(true);
    await c.closed.catch(() => undefined);
    const servers = () => process.getActiveResourcesInfo().filter((r) => r === "TCPServerWrap").length;
    // (the other server of this file may still have a port of its own kept for up to 2 s)
    await until(() => servers() <= before, 3000, `server sockets left after close: ${servers()} > ${before}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe("kept listener, a passive range of 16", () => {
  let s: RunningServer;
  let range: [number, number];
  const inUse = () => s.server.passivePorts.inUse;
  beforeAll(async () => {
    range = await freeRange(16);
    s = await startServer([{ name: "alice", password: "secret" }], {
      pasvRange: range,
      dataTimeoutMs: 1500,
      maxConnectionsPerIp: 60,
      maxSessionsPerUser: 60,
    });
    writeFileSync(path.join(s.homeOf("alice"), "a.bin"), small);
    writeFileSync(path.join(s.homeOf("alice"), "b.bin"), other);
  });
  afterAll(async () => {
    await s?.close();
  });

  async function login(): Promise<RawFtp> {
    return RawFtp.login(s.port, "alice", "secret", { type: "I" });
  }

  it("keeps a port while less than half the range is busy, not from half on; every port comes back", async () => {
    const holders: RawFtp[] = [];
    // 6 sessions hold a pending EPSV each (busy = 6); a 7th transfers: 7 busy at keep time (14 < 16) => kept.
    for (let i = 0; i < 6; i++) {
      const h = await login();
      await h.epsvPort();
      holders.push(h);
    }
    expect(inUse()).toBe(6);
    const k = await login();
    const kp = await k.epsvPort();
    expect((await retrieveOn(k, kp, "a.bin")).code).toBe(226);
    expect(inUse()).toBe(7); // (a probe would give the kept port up, so only the count is checked)
    // One more holder (8 busy); the next session's listener is the 9th at keep time (18 >= 16) => closed at once.
    const h7 = await login();
    await h7.epsvPort();
    holders.push(h7);
    const n = await login();
    const np = await n.epsvPort();
    expect(inUse()).toBe(9);
    expect((await retrieveOn(n, np, "b.bin")).code).toBe(226);
    await until(() => inUse() === 8, 2000, `not kept from half the range on (in use ${inUse()})`);
    // The kept one closes by its timer.
    await until(() => inUse() === 7, 4000, `kept port closes after 2 s (in use ${inUse()})`);
    for (const c of [...holders, k, n]) await c.close();
    await until(() => inUse() === 0, 3000, `all ports back (in use ${inUse()})`);
  });

  it("a full range takes back a port that another session merely keeps", async () => {
    const k = await login();
    const kp = await k.epsvPort();
    expect((await retrieveOn(k, kp, "a.bin")).code).toBe(226);
    expect(inUse()).toBe(1); // kept, idle
    const others: RawFtp[] = [];
    for (let i = 0; i < 15; i++) {
      const o = await login();
      expect((await o.cmd("EPSV")).code).toBe(229);
      others.push(o);
    }
    expect(inUse()).toBe(16);
    const late = await login();
    others.push(late);
    const r = await late.cmd("EPSV");
    try {
      expect(r.code, `EPSV refused while port ${kp} is merely kept: ${r.all}`).toBe(229);
    } finally {
      for (const c of [...others, k]) await c.close();
      await until(() => inUse() === 0, 3000, `all ports back (in use ${inUse()})`);
    }
  });

  it("every port comes back after: keep + QUIT, keep + PORT, keep + foreign connection, keep + timeout, QUIT during an upload", async () => {
    // keep + QUIT
    const a = await login();
    const ap = await a.epsvPort();
    expect((await retrieveOn(a, ap, "a.bin")).code).toBe(226);
    expect(inUse()).toBe(1);
    await a.quit();
    await until(() => inUse() === 0, 2000, "QUIT frees the kept port");

    // keep + PORT + active transfer + no further PASV
    const b = await login();
    const bp = await b.epsvPort();
    expect((await retrieveOn(b, bp, "a.bin")).code).toBe(226);
    const act = await b.retrieve("RETR b.bin", { how: "PORT" });
    expect(act.final.code).toBe(226);
    await until(() => inUse() === 0, 4000, "kept port freed by its timer after PORT");
    await b.close();

    // keep + reuse + foreign connection => 425 and the port freed
    const c = await login();
    const cp = await c.epsvPort();
    expect((await retrieveOn(c, cp, "a.bin")).code).toBe(226);
    expect(await c.epsvPort()).toBe(cp);
    const thief = await connectData("127.0.0.1", cp, "127.0.0.2");
    await readAll(thief, 5000);
    expect((await c.cmd("RETR a.bin")).code).toBe(425);
    expect(inUse()).toBe(0);
    await c.close();

    // keep + reuse + nobody connects => data timeout 425, port freed
    const d = await login();
    const dp = await d.epsvPort();
    expect((await retrieveOn(d, dp, "a.bin")).code).toBe(226);
    expect(await d.epsvPort()).toBe(dp);
    expect((await d.cmd("RETR a.bin", 5000)).code).toBe(425);
    expect(inUse()).toBe(0);
    await d.close();

    // QUIT during an upload on a reused port
    const e = await login();
    const ep = await e.epsvPort();
    expect((await retrieveOn(e, ep, "a.bin")).code).toBe(226);
    expect(await e.epsvPort()).toBe(ep);
    const up = await connectData("127.0.0.1", ep);
    expect((await e.cmd("STOR up.bin")).code).toBe(150);
    up.write(Buffer.alloc(1000, 7));
    await sleep(100);
    e.send("QUIT"); // waits for the upload (RFC 959 §4.1.1): it ends when the client closes the data connection
    await sleep(100);
    up.end();
    await withTimeout(e.closed, 5000, "session did not end after QUIT during the upload");
    await until(() => inUse() === 0, 2000, `QUIT during a transfer frees the port (in use ${inUse()})`);
    expect(await portRefused(ep)).toBe(true);
    up.destroy();
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe("kept listener with PROT P", () => {
  let s: RunningServer;
  let certDir: string;
  beforeAll(async () => {
    const cert = await testCertificate();
    certDir = cert.dir;
    s = await startServer([{ name: "alice", password: "secret" }], {
      tls: { cert: readFileSync(cert.cert), key: readFileSync(cert.key) },
      requireTlsSessionReuse: true,
    });
    writeFileSync(path.join(s.homeOf("alice"), "a.bin"), small);
    writeFileSync(path.join(s.homeOf("alice"), "b.bin"), other);
  });
  afterAll(async () => {
    await s?.close();
    rmSync(certDir, { recursive: true, force: true });
  });

  it("TLS data connections on a reused port: both transfers resume the control session; a refused handshake keeps the next one working", async () => {
    const c = await RawFtp.connect(s.port);
    expect((await c.authTls()).code).toBe(234);
    await c.login("alice", "secret", { type: "I" });
    await c.protect();
    await c.waitSession();
    const p1 = await c.epsvPort();
    const raw1 = await connectData("127.0.0.1", p1);
    expect((await c.cmd("RETR a.bin")).code).toBe(150);
    const t1 = await secureClient(tls.connect({ socket: raw1, rejectUnauthorized: false, session: c.session }));
    expect(t1.isSessionReused()).toBe(true);
    expect((await readAll(t1, 10_000)).equals(small)).toBe(true);
    expect((await c.read()).code).toBe(226);

    const p2 = await c.epsvPort();
    expect(p2).toBe(p1);
    const r2 = await c.retrieve("RETR b.bin", { how: "EPSV", secure: true });
    expect(r2.final.code).toBe(226);
    expect(r2.reused).toBe(true);
    expect(r2.data.equals(other)).toBe(true);

    // Without resumption the handshake is refused (425); the port was still kept, the next transfer works.
    const r3 = await c.retrieve("RETR a.bin", { how: "EPSV", secure: true, resume: false });
    expect(r3.final.code).toBe(425);
    const r4 = await c.retrieve("RETR a.bin", { how: "EPSV", secure: true });
    expect(r4.final.code).toBe(226);
    expect(r4.data.equals(small)).toBe(true);
    await c.close();
  });
});
