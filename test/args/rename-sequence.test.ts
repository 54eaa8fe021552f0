// RNTO must follow its RNFR at once (RFC 959 §4.1.3). A refused command in between, a second RNFR naming a missing
// file above all, ends the rename: the RNTO that follows gets 503, and the file of the first RNFR stays where it is.
import { existsSync, readFileSync } from "node:fs";
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

describe("RNFR followed by a refused command", () => {
  it("answers the RNTO after it with 503 and renames nothing", async () => {
    const c = await RawFtp.login(srv.port, "alice", "secret", { type: "I" });
    try {
      expect((await c.store("STOR keep.txt", "kept")).final.code).toBe(226);
      const home = srv.homeOf("alice");
      const refused = ["RNFR missing.txt", "RNFR", "NOOP x", "XYZZY", "DELE missing.txt", "RNFR .myftp-upload-x"];
      for (const between of refused) {
        await c.expect("RNFR keep.txt", 350);
        expect((await c.cmd(between)).code).toBeGreaterThanOrEqual(500);
        const r = await c.cmd("RNTO moved.txt");
        expect(r.code, `RNTO after ${between}: ${r.all}`).toBe(503);
        expect(existsSync(path.join(home, "moved.txt"))).toBe(false);
        expect(readFileSync(path.join(home, "keep.txt"), "utf8")).toBe("kept");
      }
      // A refused RNTO (no argument) ends the rename: the next RNTO has nothing to rename.
      await c.expect("RNFR keep.txt", 350);
      expect((await c.cmd("RNTO")).code).toBe(501);
      await c.expect("RNTO moved.txt", 503);
      // So does a line too long to be a command.
      await c.expect("RNFR keep.txt", 350);
      expect((await c.cmd(`NOOP ${"x".repeat(5000)}`)).code).toBe(500);
      await c.expect("RNTO moved.txt", 503);
      expect(existsSync(path.join(home, "moved.txt"))).toBe(false);
      // A CR inside a line is refused whole; it ends the rename too.
      await c.expect("RNFR keep.txt", 350);
      c.sendRaw("RNFR missing\rx\r\n");
      expect((await c.read()).code).toBe(501);
      await c.expect("RNTO moved.txt", 503);
      // A second RNFR that succeeds replaces the first, and RNTO right after it still works.
      expect((await c.store("STOR other.txt", "other")).final.code).toBe(226);
      await c.expect("RNFR keep.txt", 350);
      await c.expect("RNFR other.txt", 350);
      await c.expect("RNTO moved.txt", 250);
      expect(readFileSync(path.join(home, "moved.txt"), "utf8")).toBe("other");
      expect(readFileSync(path.join(home, "keep.txt"), "utf8")).toBe("kept");
    } finally {
      await c.close();
    }
  });
});
