// A 0xFF byte inside a command's argument followed by text (a Latin-1 "ÿ" from a client that does not send UTF-8) is
// not a Telnet command: the line must be refused as not UTF-8, never act on the name with that byte left out (which
// names another file, here one that would be overwritten or deleted). A lone IAC at the line's start (lftp's
// Synch before ABOR) still goes.
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

describe("a 0xFF byte inside an argument", () => {
  it("is refused with 501, leaving the file whose name lacks it alone", async () => {
    const c = await RawFtp.login(srv.port, "alice", "secret", { type: "I" });
    try {
      expect((await c.store("STOR a.txt", "original")).final.code).toBe(226);
      const line = (verb: string) => Buffer.concat([Buffer.from(`${verb} `), Buffer.from([0xff]), Buffer.from("a.txt\r\n")]);

      // The upload is refused before its data connection is used.
      await c.dataConnection("EPSV");
      c.sendRaw(line("STOR"));
      expect((await c.read()).code).toBe(501);
      c.sendRaw(line("DELE"));
      expect((await c.read()).code).toBe(501);
      c.sendRaw(line("SIZE"));
      expect((await c.read()).code).toBe(501);
      // In the middle of a name too.
      c.sendRaw(Buffer.concat([Buffer.from("DELE a"), Buffer.from([0xff]), Buffer.from(".txt\r\n")]));
      expect((await c.read()).code).toBe(501);

      expect(readFileSync(path.join(srv.homeOf("alice"), "a.txt"), "utf8")).toBe("original");
      expect((await c.cmd("SIZE a.txt")).text).toBe("8");
      // A lone IAC before a command (the Synch whose DM went as urgent data) is still taken out.
      c.sendRaw(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff]), Buffer.from("NOOP\r\n")]));
      expect((await c.read()).code).toBe(200);
    } finally {
      await c.close();
    }
  });
});
