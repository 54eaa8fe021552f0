// FTP bounce and data-connection theft (RFC 2577 §3 and §4): PORT/EPRT may only name the control connection's
// own peer on an unprivileged port, and a passive port accepts only the control connection's peer.

import { writeFileSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { connectData, RawFtp, readAll } from "../helpers/raw-ftp.js";
import { withTimeout } from "../helpers/util.js";
import { captureLog, type CapturedLog } from "./log-capture.js";

let s: RunningServer;
let log: CapturedLog;
/** A listener on 127.0.0.2 that records any connection the server is tricked into making. */
let victim: net.Server;
let victimPort: number;
const victimHits: string[] = [];

beforeAll(async () => {
  log = captureLog("info");
  s = await startServer([{ name: "alice", password: "secret" }], { logger: log.logger, dataTimeoutMs: 3000 });
  writeFileSync(path.join(s.homeOf("alice"), "secret.txt"), "for alice only\n");
  victim = net.createServer((sock) => {
    victimHits.push(sock.remoteAddress ?? "?");
    sock.destroy();
  });
  await new Promise<void>((r) => victim.listen(0, "127.0.0.2", r));
  victimPort = (victim.address() as net.AddressInfo).port;
});

afterAll(async () => {
  victim?.close();
  await s?.close();
});

async function login(): Promise<RawFtp> {
  return RawFtp.login(s.port, "alice", "secret", { type: "I" });
}

describe("active mode bounce", () => {
  it("refuses PORT and EPRT to another address than the client's, and opens nothing", async () => {
    const c = await login();
    const p = (n: number) => `${n >> 8},${n & 255}`;
    const port = await c.cmd(`PORT 127,0,0,2,${p(victimPort)}`);
    expect(port.code).toBe(500);
    const eprt = await c.cmd(`EPRT |1|127.0.0.2|${victimPort}|`);
    expect(eprt.code).toBe(500);
    // Another family than the control connection's is refused before any address check (RFC 2428 §2: 522).
    expect((await c.cmd(`EPRT |2|::1|${victimPort}|`)).code).toBe(522);
    expect((await c.cmd(`PORT 10,0,0,1,${p(victimPort)}`)).code).toBe(500);
    // No set-up was kept: the transfer has no data connection to use.
    expect((await c.cmd("RETR secret.txt")).code).toBe(425);
    await new Promise((r) => setTimeout(r, 200));
    expect(victimHits).toEqual([]);
    expect(log.events("bounce-refused").length).toBeGreaterThanOrEqual(3);
    await c.close();
  });

  it("refuses PORT and EPRT to a privileged port of the client itself", async () => {
    const c = await login();
    // RFC 959 §5.4: PORT's replies are 200, 500, 501, 421 and 530 (no 504); EPRT answers the same.
    const port = await c.cmd("PORT 127,0,0,1,0,21");
    expect(port.code).toBe(500);
    expect(port.text).toMatch(/1024 or above/);
    expect((await c.cmd("EPRT |1|127.0.0.1|1023|")).code).toBe(500);
    expect((await c.cmd("PORT 127,0,0,1,4,0")).code).toBe(200); // 1024 is fine
    await c.close();
  });
});

describe("passive connection theft", () => {
  /** The client's own data connection to `port` (from `from`) gets secret.txt, whole, between a 150 and a 226. */
  async function retrievedOwn(c: RawFtp, port: number, from?: string): Promise<void> {
    const data = await connectData("127.0.0.1", port, from);
    expect((await c.cmd("RETR secret.txt")).code).toBe(150);
    expect((await withTimeout(readAll(data), 5000, "no data")).toString()).toBe("for alice only\n");
    expect((await c.read()).code).toBe(226);
  }

  // A connection from elsewhere is hung up on, and the set-up goes on waiting for the client's own: failing the
  // transfer instead would let anyone who can reach the passive range break every user's transfers by knocking on it.
  it("drops a passive connection from 127.0.0.2 made before the transfer, and serves the client's own after it", async () => {
    const c = await login();
    const port = await c.epsvPort();
    const thief = await connectData("127.0.0.1", port, "127.0.0.2");
    // The server hangs up on the thief without sending it anything.
    expect((await readAll(thief, 5000)).length).toBe(0);
    expect(log.events("data-foreign-peer").some((e) => String(e.from).endsWith("127.0.0.2"))).toBe(true);
    await retrievedOwn(c, port);
    await c.close();
  });

  it("drops a passive connection from 127.0.0.2 made while the transfer waits: no data leaked, the client's own is served", async () => {
    const c = await login();
    const port = await c.epsvPort();
    c.send("RETR secret.txt");
    await new Promise((res) => setTimeout(res, 100));
    const thieves = [await connectData("127.0.0.1", port, "127.0.0.2"), await connectData("127.0.0.1", port, "127.0.0.2")];
    for (const thief of thieves) expect((await readAll(thief, 5000)).toString()).not.toContain("alice");
    expect(await c.silentFor(100)).toBe(true);
    const data = await connectData("127.0.0.1", port);
    expect((await c.read()).code).toBe(150);
    expect((await withTimeout(readAll(data), 5000, "no data")).toString()).toBe("for alice only\n");
    expect((await c.read()).code).toBe(226);
    await c.close();
  });

  it("logs a passive set-up's foreign connections once, however many come, and still serves the client's own", async () => {
    const c = await login();
    const port = await c.epsvPort();
    const before = log.events("data-foreign-peer").length;
    // Anyone who can reach the passive range may knock as often as they like: each knock is hung up on, and the log
    // gets one warning for the set-up, not one line per connection.
    for (let i = 0; i < 20; i++) {
      const thief = await connectData("127.0.0.1", port, "127.0.0.2");
      expect((await readAll(thief, 5000)).length).toBe(0);
    }
    expect(log.events("data-foreign-peer").length - before).toBe(1);
    await retrievedOwn(c, port);
    await c.close();
  });

  it("still answers 425 when only foreign connections came before the data timeout", async () => {
    const c = await login();
    const port = await c.epsvPort();
    const thief = await connectData("127.0.0.1", port, "127.0.0.2");
    expect((await readAll(thief, 5000)).length).toBe(0);
    const retr = await c.cmd("RETR secret.txt", 10_000);
    expect(retr.code).toBe(425);
    await c.close();
  });

  it("serves a client that is itself on 127.0.0.2 over passive connections from 127.0.0.2", async () => {
    const c = await RawFtp.connect(s.port, { localAddress: "127.0.0.2" });
    await c.login("alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    await retrievedOwn(c, port, "127.0.0.2");
    await c.close();
  });
});
