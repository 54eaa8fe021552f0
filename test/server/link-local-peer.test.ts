// Peers with a link-local IPv6 address: Node reports them with their zone ("fe80::1%eth0"). Such a client is served
// like any other (per-address limits, login defender, bounce checks), and an address with a zone in EPRT is refused
// as a foreign host, not as a local error.

import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

const LINK_LOCAL = "fe80::1%lo";

let s: RunningServer;
let v6: RunningServer;
/** Hands its connections to the server as if they came from LINK_LOCAL (no link-local route is needed). */
let relay: net.Server;
let relayPort: number;
const thrown: unknown[] = [];

beforeAll(async () => {
  s = await startServer([{ name: "alice", password: "secret" }], { maxLoginFailures: 2, loginFailureDelayMs: 10 });
  v6 = await startServer([{ name: "alice", password: "secret" }], { host: "::1" });
  relay = net.createServer((sock) => {
    Object.defineProperty(sock, "remoteAddress", { value: LINK_LOCAL });
    try {
      s.server.accept(sock);
    } catch (err) {
      // In the real listener this would be an uncaught exception: the whole server would stop.
      thrown.push(err);
      sock.destroy();
    }
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
  relayPort = (relay.address() as net.AddressInfo).port;
});

afterAll(async () => {
  relay?.close();
  await s?.close();
  await v6?.close();
});

describe("a link-local IPv6 peer", () => {
  it("is greeted, logs in, and its failed logins are scored and banned by its own address", async () => {
    const c = await RawFtp.login(relayPort, "alice", "secret");
    expect((await c.cmd("PWD")).code).toBe(257);
    await c.close();
    expect(thrown).toEqual([]);

    const bad = await RawFtp.connect(relayPort);
    expect((await bad.cmd("USER alice")).code).toBe(331);
    expect((await bad.cmd("PASS wrong")).code).toBe(530);
    expect((await bad.cmd("USER alice")).code).toBe(331);
    expect((await bad.cmd("PASS wrong")).code).toBe(421);
    await bad.closed;
    const refused = await RawFtp.open(relayPort);
    expect((await refused.read()).code).toBe(421);
    await refused.closed;
    expect(thrown).toEqual([]);
    // The ban holds for that address only: the same server still serves 127.0.0.1.
    const other = await RawFtp.login(s.port, "alice", "secret");
    await other.close();
  });
});

describe("EPRT with a zone", () => {
  it("is refused as another host's address (500), not with a local error", async () => {
    const c = await RawFtp.login(v6.port, "alice", "secret", { host: "::1" });
    const r = await c.cmd("EPRT |2|fe80::1%lo|5000|");
    expect(r.code).toBe(500);
    expect(r.text).toMatch(/client's own/);
    expect((await c.cmd("NOOP")).code).toBe(200);
    await c.close();
  });
});

describe("EPRT from a link-local peer", () => {
  it("takes the peer's own address written without a zone (the client cannot know the server's name for the link)", async () => {
    const peer = "fe80::5%lo";
    const own = net.createServer((sock) => {
      Object.defineProperty(sock, "remoteAddress", { value: peer });
      s.server.accept(sock);
    });
    await new Promise<void>((r) => own.listen(0, "127.0.0.1", r));
    try {
      const c = await RawFtp.login((own.address() as net.AddressInfo).port, "alice", "secret");
      expect((await c.cmd("EPRT |2|fe80::5|5000|")).code).toBe(200);
      expect((await c.cmd("EPRT |2|fe80::5%lo|5000|")).code).toBe(200);
      // Another host on the link, with or without a zone, is still refused.
      expect((await c.cmd("EPRT |2|fe80::6|5000|")).code).toBe(500);
      expect((await c.cmd("EPRT |2|fe80::5%eth9|5000|")).code).toBe(500);
      await c.close();
    } finally {
      own.close();
    }
  });
});
