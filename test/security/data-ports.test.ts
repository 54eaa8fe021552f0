// Passive ports under abuse, with a range of only 3 ports: a PASV flood holds at most one port per session, one
// pending data connection per set-up, and the port comes back on every path (success, error, ABOR, timeout,
// disconnect).

import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { announcedPort, connectData, RawFtp, readAll } from "../helpers/raw-ftp.js";
import { freeRange } from "./ports.js";

let s: RunningServer;
let range: [number, number];
const big = randomBytes(4 << 20);

beforeAll(async () => {
  range = await freeRange(3);
  s = await startServer([{ name: "alice", password: "secret" }], { pasvRange: range, dataTimeoutMs: 800, maxConnectionsPerIp: 50 });
  writeFileSync(path.join(s.homeOf("alice"), "small.txt"), "small\n");
  writeFileSync(path.join(s.homeOf("alice"), "big.bin"), big);
});

afterAll(async () => {
  await s?.close();
});

async function login(): Promise<RawFtp> {
  return RawFtp.login(s.port, "alice", "secret", { type: "I" });
}

async function settle(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`never happened: ${what} (in use: ${s.server.passivePorts.inUse})`);
}

const inUse = () => s.server.passivePorts.inUse;

describe("passive port range of 3", () => {
  it("a PASV flood holds one port; other sessions still get theirs; a full range answers 425 and recovers", async () => {
    const flooder = await login();
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const r = await flooder.cmd(i % 2 ? "PASV" : "EPSV");
      expect([227, 229]).toContain(r.code);
      seen.add(announcedPort(r.text));
      expect(inUse()).toBe(1);
    }
    for (const p of seen) {
      expect(p).toBeGreaterThanOrEqual(range[0]);
      expect(p).toBeLessThanOrEqual(range[1]);
    }
    const b = await login();
    const c = await login();
    expect((await b.cmd("EPSV")).code).toBe(229);
    expect((await c.cmd("EPSV")).code).toBe(229);
    expect(inUse()).toBe(3);
    const d = await login();
    const full = await d.cmd("EPSV");
    expect(full.code).toBe(425);
    expect((await d.cmd("NOOP")).code).toBe(200); // the session goes on
    await b.cmd("QUIT");
    await settle(() => inUse() === 2, "QUIT frees the port");
    expect((await d.cmd("EPSV")).code).toBe(229);
    for (const x of [flooder, c, d]) await x.close();
    await settle(() => inUse() === 0, "disconnects free every port");
  });

  it("accepts one connection per set-up: a second connection to the port is not served", async () => {
    const c = await login();
    const r = await c.cmd("EPSV");
    const port = announcedPort(r.text);
    const first = await connectData("127.0.0.1", port);
    const firstData = readAll(first);
    // The second connection is refused, or accepted and closed at once: either way it gets no byte.
    const second = await connectData("127.0.0.1", port).catch(() => null);
    const secondData = second ? readAll(second) : Promise.resolve(Buffer.alloc(0));
    const prelim = await c.cmd("RETR small.txt");
    expect(prelim.code).toBe(150);
    const [a, b] = await Promise.all([firstData, secondData]);
    expect(a.toString()).toBe("small\n");
    expect(b.length).toBe(0);
    expect((await c.read()).code).toBe(226);
    expect(inUse()).toBe(0);
    await c.close();
  });

  it("frees the port after success, a failed command, ABOR, a data timeout and a disconnect", async () => {
    const c = await login();
    // success
    const ok = await c.retrieve("RETR small.txt", { secure: false });
    expect(ok.final.code).toBe(226);
    expect(inUse()).toBe(0);
    // error before the data connection is used
    expect((await c.cmd("EPSV")).code).toBe(229);
    expect((await c.cmd("RETR missing.txt")).code).toBe(550);
    expect(inUse()).toBe(0);
    // ABOR with a pending set-up
    expect((await c.cmd("EPSV")).code).toBe(229);
    expect(inUse()).toBe(1);
    expect((await c.cmd("ABOR")).code).toBe(225);
    expect(inUse()).toBe(0);
    // ABOR while the transfer waits for its connection
    // (the 150 comes only once the data connection is there, so nothing is answered before ABOR)
    expect((await c.cmd("EPSV")).code).toBe(229);
    c.send("RETR small.txt");
    await new Promise((r) => setTimeout(r, 100));
    c.send("ABOR");
    const aborted = [await c.read(), await c.read()].map((r) => r.code);
    expect(aborted[0]).toBe(426);
    expect(aborted[1]).toBe(226);
    expect(inUse()).toBe(0);
    // ABOR in the middle of a large download
    const r = await c.cmd("EPSV");
    const data = await connectData("127.0.0.1", announcedPort(r.text));
    data.pause();
    expect((await c.cmd("RETR big.bin")).code).toBe(150);
    c.send("ABOR");
    expect((await c.read()).code).toBe(426);
    expect((await c.read()).code).toBe(226);
    data.destroy();
    expect(inUse()).toBe(0);
    // nobody connects in time
    expect((await c.cmd("EPSV")).code).toBe(229);
    expect((await c.cmd("RETR small.txt")).code).toBe(425);
    expect(inUse()).toBe(0);
    // disconnect with a set-up pending
    expect((await c.cmd("EPSV")).code).toBe(229);
    expect(inUse()).toBe(1);
    await c.close();
    await settle(() => inUse() === 0, "disconnect frees the port");
    // disconnect in the middle of a transfer
    const d = await login();
    const r2 = await d.cmd("EPSV");
    const data2 = await connectData("127.0.0.1", announcedPort(r2.text));
    data2.pause();
    expect((await d.cmd("RETR big.bin")).code).toBe(150);
    await d.close();
    data2.destroy();
    await settle(() => inUse() === 0 && s.server.sessionCount === 0, "a transfer cut by disconnect frees everything");
  });
});
