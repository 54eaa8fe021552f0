// Command lines the server must not act on in part, resumes it cannot count right, and the order of replies
// around a transfer: a CR inside a line (raw, or Telnet's CR NUL for a CR in a name) makes the whole line refused
// (501), never run on the name cut short at the CR; REST and RANG in ASCII mode are refused (the file's offsets are
// not the wire's); an ABOR sent in one packet with the RETR stops that transfer; STAT and NOOP during a transfer
// wait behind a command sent before them, so the replies keep the order of the commands.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

let srv: RunningServer;
let home: string;
const open: RawFtp[] = [];
const BIG = 32 << 20;

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "secret" }]);
  home = srv.homeOf("alice");
  writeFileSync(path.join(home, "big.bin"), randomBytes(BIG));
});
afterEach(async () => {
  for (const c of open.splice(0)) c.sock.destroy();
});
afterAll(async () => {
  await srv.close();
});

async function login(type: "A" | "I" = "I"): Promise<RawFtp> {
  const c = await RawFtp.login(srv.port, "alice", "secret", { type });
  open.push(c);
  return c;
}

/** Reads the data connection to its end; resolves with the byte count. */
function drain(d: net.Socket): Promise<number> {
  return new Promise((resolve) => {
    let n = 0;
    d.on("data", (b: Buffer) => (n += b.length));
    d.on("close", () => resolve(n));
    d.resume();
  });
}

describe("a CR inside a command line", () => {
  it("refuses the whole line: nothing acts on the name cut short at the CR", async () => {
    writeFileSync(path.join(home, "victim"), "precious");
    const c = await login();
    const d = await c.epsv();
    c.sendRaw(Buffer.from("STOR victim\r\0.txt\r\n", "latin1"));
    expect((await c.read()).code).toBe(501);
    d.destroy();
    c.sendRaw(Buffer.from("DELE victim\r\0zzz\r\n", "latin1"));
    expect((await c.read()).code).toBe(501);
    c.sendRaw("MKD d\rq\r\n");
    expect((await c.read()).code).toBe(501);
    // The session goes on, in step.
    expect((await c.cmd("NOOP")).code).toBe(200);
    expect(readFileSync(path.join(home, "victim"), "utf8")).toBe("precious");
    expect(existsSync(path.join(home, "d"))).toBe(false);
  });
});

describe("lines ended by CR NUL or a CR alone (Telnet-style clients)", () => {
  it("are answered once nothing more follows the CR", async () => {
    const c = await RawFtp.open(srv.port);
    open.push(c);
    expect((await c.read()).code).toBe(220);
    c.sendRaw(Buffer.from("USER alice\r\0", "latin1"));
    expect((await c.read()).code).toBe(331);
    c.sendRaw(Buffer.from("PASS secret\r\0", "latin1"));
    expect((await c.read()).code).toBe(230);
    c.sendRaw("PWD\r");
    expect((await c.read()).code).toBe(257);
    // An LF that comes after the line was ended at its CR is that line's end, not an empty command.
    c.sendRaw("\n");
    expect((await c.cmd("NOOP")).code).toBe(200);
  });
});

describe("REST and RANG in ASCII mode", () => {
  it("are refused at RETR and STOR (550), and ASCII RETR announces no byte count", async () => {
    writeFileSync(path.join(home, "lines.txt"), "l1\nl2\nl3\n");
    const c = await login("A");
    await c.expect("REST 8", 350);
    const r = await c.retrieve("RETR lines.txt");
    expect(r.final.code).toBe(550);
    expect(r.final.text).toMatch(/ASCII/);
    await c.expect("REST 6", 350);
    expect((await c.store("STOR lines.txt", "c\r\n")).final.code).toBe(550);
    expect(readFileSync(path.join(home, "lines.txt"), "utf8")).toBe("l1\nl2\nl3\n");
    // Without an offset ASCII works as before; the 150 does not give the file's size as the bytes to come.
    const whole = await c.retrieve("RETR lines.txt");
    expect(whole.final.code).toBe(226);
    expect(whole.prelim.text).not.toMatch(/bytes\)/);
    expect(whole.data.toString()).toBe("l1\r\nl2\r\nl3\r\n");
    // The offset still works in binary mode.
    await c.expect("TYPE I", 200);
    await c.expect("REST 6", 350);
    expect((await c.retrieve("RETR lines.txt")).data.toString()).toBe("l3\n");
  });
});

describe("replies around a transfer", () => {
  it("an ABOR sent in the same packet as RETR aborts that transfer (426, 226)", async () => {
    const c = await login();
    const d = await c.epsv();
    const got = drain(d);
    c.sendRaw("RETR big.bin\r\nABOR\r\n");
    const codes: number[] = [];
    for (let i = 0; i < 3 && !codes.includes(226); i++) codes.push((await c.read()).code);
    expect(codes.filter((x) => x !== 150)).toEqual([426, 226]);
    d.destroy();
    expect(await got).toBeLessThan(BIG);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("STAT and NOOP sent behind another command during a transfer are answered after it, in order", async () => {
    const c = await login();
    const d = await c.epsv();
    d.pause();
    expect((await c.cmd("RETR big.bin")).code).toBe(150);
    // The transfer is held up by the unread data connection; a NOOP alone is answered at once.
    expect((await c.cmd("NOOP")).code).toBe(200);
    c.sendRaw("PWD\r\nNOOP\r\n");
    // Nothing may come before the transfer's own reply now.
    expect(await c.silentFor(200)).toBe(true);
    const got = drain(d);
    const codes = [(await c.read(30_000)).code, (await c.read()).code, (await c.read()).code];
    expect(codes).toEqual([226, 257, 200]);
    expect(await got).toBe(BIG);
  });
});
