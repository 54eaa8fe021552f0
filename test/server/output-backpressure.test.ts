// A client that sends commands and does not read the replies: the server stops running its commands once the replies
// wait unsent (so they cannot pile up in its memory), runs them all in order once the client reads again, and the
// idle timeout still ends such a session.
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { sleep, until } from "../helpers/util.js";

let srv: RunningServer;
const open: RawFtp[] = [];
const PAIRS = 300;

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "secret" }], { idleTimeoutMs: 3000 });
  // STAT of this directory answers about 80 KB over the control connection.
  const big = path.join(srv.homeOf("alice"), "big");
  mkdirSync(big);
  for (let i = 0; i < 1000; i++) writeFileSync(path.join(big, `a-file-with-a-rather-long-name-${String(i).padStart(4, "0")}`), "");
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});
afterAll(async () => {
  await srv.close();
});

function made(): number {
  return readdirSync(srv.homeOf("alice")).filter((n) => n.startsWith("d")).length;
}

describe("replies the client does not read", () => {
  it("hold back the next commands until the client reads, then every command runs in order", async () => {
    const c = await RawFtp.login(srv.port, "alice", "secret");
    open.push(c);
    c.sock.pause();
    let flood = "";
    for (let i = 0; i < PAIRS; i++) flood += `STAT big\r\nMKD d${i}\r\n`;
    c.sendRaw(flood);
    await sleep(1500);
    // About 24 MB of replies were asked for; only what the socket buffers hold may have been answered.
    expect(made()).toBeLessThan(PAIRS / 2);
    c.sock.resume();
    for (let i = 0; i < PAIRS; i++) {
      expect((await c.read()).code).toBe(213);
      const r = await c.read();
      expect(r.code).toBe(257);
      expect(r.text).toContain(`/d${i}`);
    }
    expect(made()).toBe(PAIRS);
  });

  it("during a transfer, let STAT wait its turn once its answers go unread", async () => {
    writeFileSync(path.join(srv.homeOf("alice"), "f"), Buffer.alloc(8 << 20));
    const c = await RawFtp.login(srv.port, "alice", "secret", { type: "I" });
    open.push(c);
    const data = await c.epsv();
    data.pause();
    expect((await c.cmd("RETR f")).code).toBe(150);
    c.sock.pause();
    // Each STAT answers some 300 bytes during a transfer: 30 MB for them all.
    const count = 100_000;
    c.sendRaw("STAT\r\n".repeat(count));
    await sleep(1000);
    // Count the replies as they come (the end line of each STAT, and the transfer's end).
    let answered = 0;
    let ended = false;
    let tail = "";
    c.sock.removeAllListeners("data");
    c.sock.on("data", (chunk: Buffer) => {
      const lines = (tail + chunk.toString("latin1")).split("\r\n");
      tail = lines.pop()!;
      for (const l of lines) {
        if (l.startsWith("211 ")) answered++;
        else if (l.startsWith("426 ")) ended = true;
      }
    });
    c.sock.resume();
    // While the transfer runs, the STATs the server held back wait for it: the answers stop short of the count.
    let seen = -1;
    for (let i = 0; i < 50 && answered !== seen; i++) {
      seen = answered;
      await sleep(300);
    }
    expect(answered).toBeLessThan(count);
    expect(ended).toBe(false);
    // Once the transfer ends, every STAT is answered, none lost.
    data.destroy();
    await until(() => answered === count && ended, 20_000, "every STAT answered after the transfer");
  });

  it("leave the session to the idle timeout", async () => {
    const c = await RawFtp.login(srv.port, "alice", "secret");
    open.push(c);
    c.sock.pause();
    let flood = "";
    for (let i = 0; i < 200; i++) flood += "STAT big\r\n";
    c.sendRaw(flood);
    await until(() => srv.server.sessionsOf("alice") === 0, 10_000, "the session ends");
  });
});
