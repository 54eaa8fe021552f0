// ABOR then NOOP (or STAT) sent together during a transfer: the replies keep the order of the commands, the
// transfer's 426 and ABOR's 226 before NOOP's 200 (RFC 959 §4.1.3, §5.4). Found by the mixed-load soak: NOOP was
// answered at once, ahead of an ABOR still waiting for its transfer to stop.

import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

let servers: RunningServer[] = [];
let clients: RawFtp[] = [];

afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
});

describe("ABOR with a command behind it", () => {
  it.each([
    ["STOR", "NOOP", 200],
    ["RETR", "NOOP", 200],
    ["STOR", "STAT", 211],
  ])("%s, then ABOR and %s in one packet: 426, 226, then its reply", async (verb, after, code) => {
    const s = await startServer([{ name: "alice", password: "secret" }]);
    servers.push(s);
    writeFileSync(path.join(s.homeOf("alice"), "big.bin"), randomBytes(8 * 1024 * 1024));
    const c = await RawFtp.login(s.port, "alice", "secret", { type: "I" });
    clients.push(c);
    const d = await c.epsv();
    expect((await c.cmd(`${verb} ${verb === "STOR" ? "up.bin" : "big.bin"}`)).code).toBe(150);
    if (verb === "STOR") await new Promise<void>((resolve) => d.write(Buffer.alloc(64 * 1024), () => resolve()));
    else await new Promise<void>((resolve) => d.once("data", () => resolve()));
    c.sendRaw(`ABOR\r\n${after}\r\n`);
    const codes = [(await c.read()).code, (await c.read()).code, (await c.read()).code];
    d.destroy();
    expect(codes).toEqual([426, 226, code]);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });
});
