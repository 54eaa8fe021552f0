// REST and RANG: a transfer takes a pending RANG first, so a REST sent after the RANG must not stay behind for a
// later plain transfer (a STOR would then keep that many bytes of the old file before the new ones). A REST
// replaces a pending RANG, a RANG a pending REST, and a refused REST (501) leaves neither, as a refused RANG does.
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

let srv: RunningServer;

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "secret" }]);
});
afterAll(async () => {
  await srv.close();
});

describe("REST after RANG", () => {
  it("replaces the range, and nothing is left for the next transfer", async () => {
    const c = await RawFtp.login(srv.port, "alice", "secret", { type: "I" });
    try {
      const file = path.join(srv.homeOf("alice"), "f.txt");
      expect((await c.store("STOR f.txt", "0123456789")).final.code).toBe(226);

      await c.expect("RANG 1 2", 350);
      await c.expect("REST 5", 350);
      const first = await c.retrieve("RETR f.txt");
      expect(first.final.code).toBe(226);
      expect(first.data.toString()).toBe("56789");
      // Nothing pending any more: a plain RETR is the whole file, a plain STOR replaces it whole.
      expect((await c.retrieve("RETR f.txt")).data.toString()).toBe("0123456789");
      await c.expect("RANG 1 2", 350);
      await c.expect("REST 5", 350);
      await c.expect("RANG 0 1", 350);
      expect((await c.retrieve("RETR f.txt")).data.toString()).toBe("01");
      expect((await c.store("STOR f.txt", "abc")).final.code).toBe(226);
      expect(readFileSync(file, "utf8")).toBe("abc");

      // A refused REST clears the one before it.
      await c.expect("REST 2", 350);
      await c.expect("REST x", 501);
      expect((await c.retrieve("RETR f.txt")).data.toString()).toBe("abc");
      await c.expect("REST 1", 350);
      await c.expect("REST -1", 501);
      expect((await c.store("STOR f.txt", "xyz")).final.code).toBe(226);
      expect(readFileSync(file, "utf8")).toBe("xyz");
      expect((await c.cmd("SIZE f.txt")).text).toBe("3");
    } finally {
      await c.close();
    }
  });
});
