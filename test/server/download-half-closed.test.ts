// A client may shut down its sending side of a download's data connection as soon as it has connected (it has
// nothing to send there). The server still sends the whole file and answers 226, wherever the transfer runs: on the
// event loop, or in a transfer process that was handed the connection.

import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { closedAfterEach } from "../helpers/cleanup.js";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp, type DataHow } from "../helpers/raw-ftp.js";

const { servers, clients, sockets } = closedAfterEach();

/** Everything the data connection delivers until it closes. */
function readUntilClosed(d: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    d.on("data", (b: Buffer) => parts.push(b));
    d.on("error", () => undefined);
    d.once("close", () => resolve(Buffer.concat(parts)));
  });
}

describe("a download whose client half-closed the data connection at once", () => {
  for (const [label, size, transferProcesses] of [
    ["on the event loop", 100_000, 0],
    ["in a transfer process", 1 << 20, 1],
  ] as const) {
    for (const how of ["EPSV", "PORT"] as DataHow[]) {
      it(`arrives whole with 226 (${label}, ${how})`, { timeout: 30_000 }, async () => {
        const content = randomBytes(size);
        const s = await startServer([{ name: "alice", password: "pw", quota: null }], { transferProcesses });
        servers.push(s);
        writeFileSync(path.join(s.homeOf("alice"), "f.bin"), content);
        const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
        clients.push(c);
        for (let round = 0; round < 3; round++) {
          const dc = await c.dataConnection(how);
          const opening = await c.cmd("RETR f.bin");
          expect(opening.code).toBe(150);
          const d = await dc.get();
          sockets.push(d);
          d.end();
          const got = await readUntilClosed(d);
          expect((await c.read(10_000)).code).toBe(226);
          expect(got.equals(content)).toBe(true);
        }
        if (transferProcesses > 0) expect(s.server.transfers.handedOver).toBe(3);
      });
    }
  }
});
