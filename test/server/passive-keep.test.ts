// A passive listener is kept for a short while after its connection was taken, so a client fetching file after
// file gets the same port back. What connects to a kept port while no set-up waits is closed unserved and the port
// is given up; it also closes by itself when no PASV comes, and with the session.

import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { announcedPort, connectData, portRefused, RawFtp, readAll, retrieveOn } from "../helpers/raw-ftp.js";
import { until } from "../helpers/util.js";

let s: RunningServer;
const small = randomBytes(16 * 1024);
const other = randomBytes(3000);

beforeAll(async () => {
  s = await startServer([{ name: "alice", password: "secret" }]);
  writeFileSync(path.join(s.homeOf("alice"), "a.bin"), small);
  writeFileSync(path.join(s.homeOf("alice"), "b.bin"), other);
});

afterAll(async () => {
  await s?.close();
});

describe("kept passive listener", () => {
  it("gives the same port to the next EPSV and PASV, and each transfer gets its own file", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const p1 = await c.epsvPort();
    const r1 = await retrieveOn(c, p1, "a.bin");
    expect(r1.code).toBe(226);
    expect(r1.data.equals(small)).toBe(true);
    const p2 = await c.epsvPort();
    expect(p2).toBe(p1);
    const r2 = await retrieveOn(c, p2, "b.bin");
    expect(r2.code).toBe(226);
    expect(r2.data.equals(other)).toBe(true);
    const pasv = await c.cmd("PASV");
    expect(pasv.code).toBe(227);
    expect(announcedPort(pasv.text)).toBe(p1);
    const r3 = await retrieveOn(c, p1, "a.bin");
    expect(r3.code).toBe(226);
    expect(r3.data.equals(small)).toBe(true);
    await c.close();
  });

  it.each([
    ["the client's own address", undefined],
    ["another address", "127.0.0.2"],
  ])(
    "closes a connection from %s to the kept port while no set-up waits and gives the port up; the next transfer is not disturbed",
    async (_, from) => {
      const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
      const port = await c.epsvPort();
      expect((await retrieveOn(c, port, "b.bin")).code).toBe(226);
      // Between transfers: the port still accepts, but hangs up without sending anything, and closes (whoever
      // connected knows the port now).
      const stray = await connectData("127.0.0.1", port, from);
      expect((await readAll(stray, 5000)).length).toBe(0);
      await until(() => portRefused(port), 2000, "the kept port given up");
      const again = await c.epsvPort();
      expect(again).not.toBe(port);
      const r = await retrieveOn(c, again, "a.bin");
      expect(r.code).toBe(226);
      expect(r.data.equals(small)).toBe(true);
      await c.close();
    },
  );

  it("still hangs up on a connection from another address to a reused port, and serves the client's own", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "b.bin")).code).toBe(226);
    expect(await c.epsvPort()).toBe(port);
    const thief = await connectData("127.0.0.1", port, "127.0.0.2");
    expect((await readAll(thief, 5000)).length).toBe(0);
    const r = await retrieveOn(c, port, "a.bin");
    expect(r.code).toBe(226);
    expect(r.data.equals(small)).toBe(true);
    await c.close();
  });

  it("closes the kept port when no PASV comes within two seconds", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "b.bin")).code).toBe(226);
    await until(() => portRefused(port), 4000, "the kept port closed by its timer");
    // The next EPSV opens a fresh listener and works.
    const fresh = await c.epsvPort();
    const r = await retrieveOn(c, fresh, "a.bin");
    expect(r.code).toBe(226);
    expect(r.data.equals(small)).toBe(true);
    await c.close();
  });

  it("closes the kept port with the session", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "b.bin")).code).toBe(226);
    expect((await c.cmd("QUIT")).code).toBe(221);
    await until(() => portRefused(port), 200, "the kept port closed with the session");
    await c.close();
  });

  it("moves on to a kept port after PORT: active transfers are unaffected and the next EPSV still works", async () => {
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    const port = await c.epsvPort();
    expect((await retrieveOn(c, port, "b.bin")).code).toBe(226);
    const act = await c.retrieve("RETR a.bin", { how: "PORT" });
    expect(act.final.code).toBe(226);
    expect(act.data.equals(small)).toBe(true);
    const next = await c.retrieve("RETR b.bin", { how: "EPSV" });
    expect(next.final.code).toBe(226);
    expect(next.data.equals(other)).toBe(true);
    await c.close();
  });
});
