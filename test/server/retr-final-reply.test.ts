// The end of a download: the final reply waits until the client has read to the end of the data connection and
// closed its side (at most a moment), so that it never reaches the client in the same read as the 150. A client that
// reads the 150, takes the data and only then waits for its control connection to become readable (aria2c) would not
// see a 226 that came along with the 150 until its timeout. What a client sends on a download's data connection is
// read and dropped, so the server's close cannot reset the connection and cut the file's end off.

import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { closedAfterEach } from "../helpers/cleanup.js";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

const { servers, clients, sockets } = closedAfterEach();

async function setUp(files: Record<string, Buffer>, transferProcesses = 0): Promise<RawFtp> {
  const s = await startServer([{ name: "alice", password: "pw", quota: null }], { transferProcesses });
  servers.push(s);
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(s.homeOf("alice"), name), content);
  const c = await RawFtp.login(s.port, "alice", "pw");
  clients.push(c);
  await c.expect("TYPE I", 200);
  return c;
}

/** A passive data connection that stays open after the server's end of data (half-open), as a slow client's does. */
async function halfOpenData(c: RawFtp): Promise<net.Socket> {
  const port = await c.epsvPort();
  const d = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  sockets.push(d);
  d.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    d.once("connect", resolve);
    d.once("error", reject);
  });
  return d;
}

/** Everything the data connection delivers up to the server's end of data; the connection itself stays open. */
function readToEnd(d: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    d.on("data", (b: Buffer) => parts.push(b));
    d.once("end", () => resolve(Buffer.concat(parts)));
    d.once("error", reject);
  });
}

describe("the final reply of a download", () => {
  it("comes after the client closed the data connection, not along with the 150", async () => {
    const c = await setUp({ "small.txt": Buffer.from("eleven byte") });
    for (let round = 0; round < 3; round++) {
      const d = await halfOpenData(c);
      const data = readToEnd(d);
      const opening = await c.cmd("RETR small.txt");
      expect(opening.code).toBe(150);
      expect((await data).toString()).toBe("eleven byte");
      // The data has all arrived and the client still holds its side open: no final reply yet.
      expect(await c.silentFor(250)).toBe(true);
      d.end();
      expect((await c.read()).code).toBe(226);
    }
  });

  it("comes anyway, a moment later, when the client holds the data connection open", async () => {
    const c = await setUp({ "a.txt": Buffer.from("abc") });
    const d = await halfOpenData(c);
    const data = readToEnd(d);
    expect((await c.cmd("RETR a.txt")).code).toBe(150);
    expect((await data).toString()).toBe("abc");
    expect((await c.read(10_000)).code).toBe(226);
    // The session goes on as usual.
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  for (const [label, size, transferProcesses] of [
    ["on the event loop", 200 * 1024, 0],
    ["in a transfer process", 4 * 1024 * 1024, 1],
  ] as const) {
    it(`arrives whole when the client wrote on the data connection (${label})`, { timeout: 30_000 }, async () => {
      const content = randomBytes(size);
      const c = await setUp({ "f.bin": content }, transferProcesses);
      for (let round = 0; round < 3; round++) {
        const port = await c.epsvPort();
        const d = net.connect({ host: "127.0.0.1", port });
        sockets.push(d);
        d.on("error", () => undefined);
        await new Promise<void>((resolve) => d.once("connect", resolve));
        // Bytes the server never asked for, on a download's data connection.
        d.write(Buffer.alloc(4096, 1));
        d.pause();
        const got = new Promise<Buffer | Error>((resolve) => {
          const parts: Buffer[] = [];
          d.on("data", (b: Buffer) => parts.push(b));
          d.once("end", () => resolve(Buffer.concat(parts)));
          d.once("error", (e) => resolve(e));
        });
        expect((await c.cmd("RETR f.bin")).code).toBe(150);
        // The client starts reading only once the server has written what fits in the connection's buffers.
        await new Promise((r) => setTimeout(r, 200));
        d.resume();
        const result = await got;
        expect(result).toBeInstanceOf(Buffer);
        expect((result as Buffer).equals(content)).toBe(true);
        expect((await c.read(10_000)).code).toBe(226);
      }
    });
  }
});
