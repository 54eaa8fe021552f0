// STAT of a large directory answers its listing over the control connection, made a batch of lines per turn of the
// event loop (as LIST's are): every entry comes, in one reply, with nothing else between its lines. (How long the loop
// is held is a matter for the bench, not for a timed assertion here.)
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

let srv: RunningServer;
const ENTRIES = 50_000;

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "secret" }]);
  const big = path.join(srv.homeOf("alice"), "big");
  mkdirSync(big);
  for (let i = 0; i < ENTRIES; i++) writeFileSync(path.join(big, `an-entry-with-a-rather-long-name-${String(i).padStart(6, "0")}.dat`), "");
}, 60_000);
afterAll(async () => {
  await srv.close();
});

/** Sends STAT and resolves with the number of lines of its reply; counts as the bytes come, keeping none. */
function statLines(c: RawFtp, arg: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let lines = 0;
    let tail = "";
    const timer = setTimeout(() => reject(new Error("no end of the STAT reply")), 30_000);
    const onData = (chunk: Buffer) => {
      const text = tail + chunk.toString("latin1");
      let i = -1;
      while ((i = text.indexOf("\r\n", i + 1)) !== -1) lines++;
      tail = text.slice(text.lastIndexOf("\r\n") + 2);
      if (/(^|\r\n)213 [^\r\n]*\r\n$/.test(text.slice(-64))) {
        clearTimeout(timer);
        c.sock.off("data", onData);
        resolve(lines);
      }
    };
    c.sock.on("data", onData);
    c.sock.write(`STAT ${arg}\r\n`);
  });
}

describe("STAT of a large directory", () => {
  it("lists every entry in one reply, also while another session is answered meanwhile", async () => {
    const c = await RawFtp.login(srv.port, "alice", "secret");
    const other = await RawFtp.login(srv.port, "alice", "secret");
    c.sock.removeAllListeners("data");
    try {
      const listing = statLines(c, "big");
      // Another session's commands are answered while the listing is made.
      for (let i = 0; i < 20; i++) expect((await other.cmd("NOOP")).code).toBe(200);
      expect(await listing).toBe(ENTRIES + 2);
      expect(await statLines(c, "big")).toBe(ENTRIES + 2);
    } finally {
      c.sock.destroy();
      await other.close();
    }
  }, 60_000);
});
