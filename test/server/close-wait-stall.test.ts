// The end of a download waits a moment for the client to close its side of the data connection (see
// retr-final-reply.test.ts). That wait moves no byte, yet it is not a stall: every byte has gone and the wait ends by
// itself. A short stall limit (idle and data timeouts below the wait) must not turn a complete download into a 426.

import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { closedAfterEach } from "../helpers/cleanup.js";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

const { servers, clients, sockets } = closedAfterEach();

/** A passive data connection that stays open after the server's end of data, and what it delivers up to that end. */
async function holdOpen(c: RawFtp): Promise<{ data: Promise<Buffer> }> {
  const port = await c.epsvPort();
  const d = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  sockets.push(d);
  d.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    d.once("connect", resolve);
    d.once("error", reject);
  });
  const data = new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    d.on("data", (b: Buffer) => parts.push(b));
    d.once("end", () => resolve(Buffer.concat(parts)));
    d.once("error", reject);
  });
  return { data };
}

describe("a client that holds the data connection open after a download, with a short stall limit", () => {
  for (const [label, size, transferProcesses] of [
    ["on the event loop", 1000, 0],
    ["in a transfer process", 1 << 20, 1],
  ] as const) {
    it(`gets 226 for a complete RETR (${label})`, { timeout: 30_000 }, async () => {
      const content = randomBytes(size);
      const s = await startServer([{ name: "alice", password: "pw", quota: null }], { transferProcesses, idleTimeoutMs: 0, dataTimeoutMs: 300 });
      servers.push(s);
      writeFileSync(path.join(s.homeOf("alice"), "f.bin"), content);
      const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
      clients.push(c);
      for (let round = 0; round < 2; round++) {
        const { data } = await holdOpen(c);
        expect((await c.cmd("RETR f.bin")).code).toBe(150);
        expect((await data).equals(content)).toBe(true);
        expect((await c.read(10_000)).code).toBe(226);
      }
      if (transferProcesses > 0) expect(s.server.transfers.handedOver).toBeGreaterThan(0);
    });
  }

  it("gets 226 for a complete LIST", { timeout: 30_000 }, async () => {
    const s = await startServer([{ name: "alice", password: "pw", quota: null }], { idleTimeoutMs: 0, dataTimeoutMs: 300 });
    servers.push(s);
    writeFileSync(path.join(s.homeOf("alice"), "a.txt"), "abc");
    const c = await RawFtp.login(s.port, "alice", "pw");
    clients.push(c);
    const { data } = await holdOpen(c);
    expect((await c.cmd("LIST")).code).toBe(150);
    expect((await data).toString()).toContain("a.txt");
    expect((await c.read(10_000)).code).toBe(226);
  });
});
