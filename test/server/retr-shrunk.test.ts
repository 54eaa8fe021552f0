// A file that shrinks while RETR sends it: fewer bytes go than the 150 announced, so the transfer ends with 451, not
// with a 226 that would have the client take a cut file for the whole one. The same on the event loop and in a
// transfer process. The file is cut right after the 150, while the client reads nothing yet: the server cannot have
// read all of 64 MiB by then (the data connection's buffers hold far less), so its next read finds the end early.

import { mkdirSync, truncateSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp, readAll } from "../helpers/raw-ftp.js";

const SIZE = 64 * 1024 * 1024;

let servers: RunningServer[] = [];
let clients: RawFtp[] = [];

afterEach(async () => {
  for (const c of clients) c.sock.destroy();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
});

describe("RETR of a file that shrinks while it is sent", () => {
  for (const transferProcesses of [0, 1]) {
    it(`answers 451 (transfer processes: ${transferProcesses})`, { timeout: 60_000 }, async () => {
      const s = await startServer([{ name: "alice", password: "pw", quota: null }], { transferProcesses });
      servers.push(s);
      const home = s.homeOf("alice");
      mkdirSync(home, { recursive: true });
      const file = path.join(home, "big.bin");
      writeFileSync(file, Buffer.alloc(SIZE, 7));
      const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
      clients.push(c);
      const data = await c.epsv();
      const prelim = await c.cmd("RETR big.bin");
      expect(prelim.code).toBe(150);
      truncateSync(file, 1000);
      const got = await readAll(data);
      const final = await c.read(30_000);
      expect(final.code).toBe(451);
      expect(final.text).toBe("File shrank while it was sent; try again");
      expect(got.length).toBeLessThan(SIZE);
      // The session goes on, and the file as it is now is sent whole.
      const again = await c.retrieve("RETR big.bin");
      expect(again.final.code).toBe(226);
      expect(again.data.length).toBe(1000);
    });
  }
});
