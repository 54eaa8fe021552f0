// Without a certificate AUTH, PBSZ, PROT and CCC are not implemented: 502 whatever their argument (none, one, an
// extra one), before login and after, never a 501 syntax error that would suggest another form works.
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

const LINES = ["AUTH", "AUTH TLS", "AUTH KERBEROS", "PBSZ", "PBSZ 0", "PROT", "PROT P", "CCC", "CCC x"];

describe("the security commands without a certificate", () => {
  it("answer 502 to every form, before and after login", async () => {
    const c = await RawFtp.connect(srv.port);
    try {
      for (const line of LINES) expect((await c.cmd(line)).code, line).toBe(502);
      await c.login("alice", "secret");
      for (const line of LINES) expect((await c.cmd(line)).code, line).toBe(502);
      expect((await c.cmd("NOOP")).code).toBe(200);
    } finally {
      await c.close();
    }
  });
});
