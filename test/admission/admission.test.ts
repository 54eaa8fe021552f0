// Issue 3, admission: the FIFO session queue, per-user and per-IP limits, and the idle timeout, against a real
// in-process server with raw sockets, curl and Python's ftplib.

import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ServerOptions } from "../../src/server/server.js";
import { holdUserLookups, startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { runProcess, sleep, until, withTimeout } from "../helpers/util.js";
import { captureLog } from "../security/log-capture.js";

let servers: RunningServer[] = [];
let clients: RawFtp[] = [];
let dirs: string[] = [];

afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

const USERS = [
  { name: "alice", password: "pw" },
  { name: "bob", password: "pw" },
];

async function start(opts: Partial<ServerOptions>): Promise<RunningServer> {
  const s = await startServer(USERS, opts);
  servers.push(s);
  return s;
}

async function open(s: RunningServer): Promise<RawFtp> {
  const c = await RawFtp.open(s.port);
  clients.push(c);
  return c;
}

async function greeted(s: RunningServer): Promise<RawFtp> {
  const c = await open(s);
  expect((await c.read()).code).toBe(220);
  return c;
}

async function login(s: RunningServer, name = "alice"): Promise<RawFtp> {
  const c = await RawFtp.login(s.port, name, "pw", { type: "I" });
  clients.push(c);
  return c;
}

/** Opens a connection and waits until the server has put it in the queue. */
async function queued(s: RunningServer): Promise<RawFtp> {
  const before = s.server.admission.waiting;
  const c = await open(s);
  await until(() => s.server.admission.waiting === before + 1, 3000, "connection queued");
  return c;
}

describe("admission queue", () => {
  it("max-sessions 3, max-queue 2: 4th and 5th wait silently, 6th gets 421, the waiters get 220 in order", async () => {
    const s = await start({ maxSessions: 3, maxQueue: 2 });
    const active = [await login(s), await login(s), await greeted(s)];
    const c4 = await queued(s);
    const c5 = await queued(s);
    const c6 = await open(s);
    const refused = await c6.read();
    expect(refused.code).toBe(421);
    await withTimeout(c6.closed, 3000, "6th closed");
    expect(await c4.silentFor(400)).toBe(true);
    expect(await c5.silentFor(0)).toBe(true);
    expect(s.server.sessionCount).toBe(3);

    await active[0]!.quit();
    const g4 = await c4.read(1000);
    expect(g4.code).toBe(220);
    expect(await c5.silentFor(300)).toBe(true);

    active[2]!.send("QUIT");
    const g5 = await c5.read(1000);
    expect(g5.code).toBe(220);
    expect(c4.firstByteAt!).toBeLessThan(c5.firstByteAt!);
    // Both are real sessions now.
    await c4.expect("USER bob", 331);
    await c4.expect("PASS pw", 230);
    await c5.expect("USER alice", 331);
    await c5.expect("PASS pw", 230);
    expect(s.server.admission.waiting).toBe(0);
    expect(s.server.sessionCount).toBe(3);
  });

  it("a waiter that leaves gives its place to the next one", async () => {
    const s = await start({ maxSessions: 1, maxQueue: 2 });
    const holder = await login(s);
    const leaver = await queued(s);
    const next = await queued(s);
    await leaver.close();
    await until(() => s.server.admission.waiting === 1, 3000, "leaver removed from the queue");
    await holder.quit();
    expect((await next.read(1000)).code).toBe(220);
    expect(s.server.admission.running).toBe(1);
  });

  it("whatever a waiting client sends early is held and answered after its 220", async () => {
    const s = await start({ maxSessions: 1, maxQueue: 1 });
    const holder = await login(s);
    const c = await queued(s);
    c.send("USER alice");
    c.send("PASS pw");
    c.send("PWD");
    expect(await c.silentFor(400)).toBe(true);
    await holder.quit();
    expect((await c.read(1000)).code).toBe(220);
    expect((await c.read()).code).toBe(331);
    expect((await c.read()).code).toBe(230);
    const pwd = await c.read();
    expect(pwd.code).toBe(257);
    expect(pwd.text).toMatch(/^"\/"/);
  });

  it("a server that shuts down tells waiters 421 and starts none of them", async () => {
    const log = captureLog("info");
    const s = await start({ maxSessions: 1, maxQueue: 2, logger: log.logger });
    const holder = await login(s);
    const waiter = await queued(s);
    waiter.send("USER alice");
    const closing = s.server.close();
    expect((await waiter.read(3000)).code).toBe(421);
    expect((await holder.read(3000)).code).toBe(421);
    await closing;
    expect(log.events("session-open")).toHaveLength(1);
  });

  it("a wait past the queue timeout gets 421 and the connection closes", async () => {
    const s = await start({ maxSessions: 1, maxQueue: 3, queueTimeoutMs: 500 });
    await login(s);
    const c = await queued(s);
    const r = await c.read(3000);
    expect(r.code).toBe(421);
    await withTimeout(c.closed, 3000, "closed after queue timeout");
    expect(s.server.admission.waiting).toBe(0);
    expect(s.server.sessionCount).toBe(1);
  });

  it("curl and ftplib both succeed when they have to queue briefly", async () => {
    const s = await start({ maxSessions: 1, maxQueue: 4 });
    const content = randomBytes(50_000);
    writeFileSync(path.join(s.homeOf("alice"), "q.bin"), content);
    const holder = await login(s);
    const dir = tempDir();
    dirs.push(dir);
    const curlOut = path.join(dir, "curl.bin");
    const curl = runProcess("curl", ["-sS", "--max-time", "20", "-o", curlOut, s.url("alice", "pw", "/q.bin")], { timeoutMs: 25_000 });
    await until(() => s.server.admission.waiting === 1, 5000, "curl queued");
    const script = `
import ftplib, sys, io
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=20)
ftp.login("bob", "pw")
ftp.storbinary("STOR up.txt", io.BytesIO(b"queued upload"))
buf = io.BytesIO()
ftp.retrbinary("RETR up.txt", buf.write)
print(buf.getvalue().decode())
ftp.quit()
`;
    const py = runProcess("python3", ["-c", script, String(s.port)], { timeoutMs: 25_000 });
    await until(() => s.server.admission.waiting === 2, 5000, "ftplib queued");
    await sleep(300);
    await holder.quit();
    const [c, p] = await Promise.all([curl, py]);
    expect(c.code, c.stderr).toBe(0);
    expect(readFileSync(curlOut).equals(content)).toBe(true);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout.trim()).toBe("queued upload");
  });
});

describe("a slot frees whichever way a session ends", () => {
  async function slotPassesOn(s: RunningServer, end: (holder: RawFtp) => Promise<void>, loggedIn = true) {
    const holder = loggedIn ? await login(s) : await greeted(s);
    const waiter = await queued(s);
    expect(await waiter.silentFor(100)).toBe(true);
    await end(holder);
    expect((await waiter.read(3000)).code).toBe(220);
    await withTimeout(holder.closed, 3000, "holder closed");
    return waiter;
  }

  it("QUIT", async () => {
    const s = await start({ maxSessions: 1, maxQueue: 1 });
    await slotPassesOn(s, async (h) => {
      expect((await h.cmd("QUIT")).code).toBe(221);
    });
  });

  it("idle timeout", async () => {
    const s = await start({ maxSessions: 1, maxQueue: 1, idleTimeoutMs: 600, queueTimeoutMs: 10_000 });
    await slotPassesOn(s, async (h) => {
      const r = await h.read(3000);
      expect(r.code).toBe(421);
      expect(r.text).toMatch(/idle/i);
    });
  });

  it("a connection reset by the client", async () => {
    const s = await start({ maxSessions: 1, maxQueue: 1 });
    await slotPassesOn(s, async (h) => {
      h.sock.resetAndDestroy();
    });
  });

  it("a connection destroyed in the middle of a transfer", async () => {
    const s = await start({ maxSessions: 1, maxQueue: 1 });
    await slotPassesOn(s, async (h) => {
      const d = await h.epsv();
      expect((await h.cmd("STOR x.bin")).code).toBe(150);
      d.write(randomBytes(10_000));
      await sleep(50);
      h.sock.destroy();
      d.destroy();
    });
  });

  it("a server-side error that ends the session", async () => {
    const s = await start({ maxSessions: 1, maxQueue: 1 });
    await slotPassesOn(s, async (h) => {
      await h.expect("USER alice", 331);
      // The user store fails under the session: the session ends with 421, the server keeps going.
      s.users.close();
      const r = await h.cmd("PASS pw");
      expect(r.code).toBe(421);
    }, false);
    expect(s.server.sessionCount).toBe(1);
  });

  it("the per-user limit closing a session at PASS", async () => {
    const s = await start({ maxSessions: 2, maxQueue: 1, maxSessionsPerUser: 1 });
    await login(s, "alice");
    await slotPassesOn(s, async (h) => {
      await h.expect("USER alice", 331);
      expect((await h.cmd("PASS pw")).code).toBe(421);
    }, false);
  });
});

describe("per-user and per-IP limits", () => {
  it("the per-user limit refuses at PASS with 421 and says why; other users and later logins are fine", async () => {
    const s = await start({ maxSessionsPerUser: 2 });
    const a1 = await login(s, "alice");
    await login(s, "alice");
    const c = await greeted(s);
    await c.expect("USER alice", 331);
    const r = await c.cmd("PASS pw");
    expect(r.code).toBe(421);
    expect(r.text).toMatch(/too many sessions for user alice/i);
    expect(r.text).toMatch(/limit 2/);
    await withTimeout(c.closed, 3000, "closed after per-user refusal");
    await login(s, "bob");
    await a1.quit();
    await until(() => s.server.sessionsOf("alice") === 1, 3000, "alice count drops");
    await login(s, "alice");
  });

  it("the per-user limit holds when logins race each other", async () => {
    const s = await start({ maxSessionsPerUser: 1 });
    const cs = await Promise.all([greeted(s), greeted(s), greeted(s)]);
    for (const c of cs) await c.expect("USER alice", 331);
    for (const c of cs) c.send("PASS pw");
    const codes = (await Promise.all(cs.map((c) => c.read()))).map((r) => r.code).sort();
    expect(codes).toEqual([230, 421, 421]);
    expect(s.server.sessionsOf("alice")).toBe(1);
  });

  it("the per-IP limit refuses at connect with 421; queued connections count too", async () => {
    const s = await start({ maxConnectionsPerIp: 2, maxSessions: 1, maxQueue: 5 });
    const a = await login(s);
    const q = await queued(s);
    const c = await open(s);
    const r = await c.read();
    expect(r.code).toBe(421);
    expect(r.text).toMatch(/too many connections from your address/i);
    await withTimeout(c.closed, 3000, "closed after per-IP refusal");
    await a.close();
    expect((await q.read(3000)).code).toBe(220);
    // One connection is left from this address, so one more is accepted (and waits for the only slot).
    const again = await queued(s);
    await q.close();
    expect((await again.read(3000)).code).toBe(220);
  });
});

describe("idle timeout", () => {
  it("closes an idle session with 421, but commands keep it alive", async () => {
    const s = await start({ idleTimeoutMs: 700 });
    const busy = await login(s);
    const idle = await login(s);
    for (let i = 0; i < 6; i++) {
      await sleep(250);
      await busy.expect("NOOP", 200);
    }
    const r = await idle.read(1000);
    expect(r.code).toBe(421);
    expect(r.text).toMatch(/idle/i);
    await withTimeout(idle.closed, 3000, "idle session closed");
    expect(busy.isClosed).toBe(false);
    expect(s.server.sessionCount).toBe(1);
  });

  it("never fires during a long slow transfer (curl --limit-rate both ways)", async () => {
    const s = await start({ idleTimeoutMs: 800 });
    const dir = tempDir();
    dirs.push(dir);
    // Upload ~2.4 s at 100 KiB/s.
    const up = randomBytes(240 * 1024);
    writeFileSync(path.join(dir, "up.bin"), up);
    const u = await runProcess(
      "curl",
      ["-sS", "--max-time", "30", "--limit-rate", "100K", "-T", path.join(dir, "up.bin"), s.url("alice", "pw", "/up.bin")],
      { timeoutMs: 35_000 },
    );
    expect(u.code, u.stderr).toBe(0);
    expect(readFileSync(path.join(s.homeOf("alice"), "up.bin")).equals(up)).toBe(true);
    // Download ~2.5 s: the file is larger than what the socket buffers can hold, so the server is still sending.
    const down = randomBytes(20 * 1024 * 1024);
    writeFileSync(path.join(s.homeOf("alice"), "down.bin"), down);
    const out = path.join(dir, "down.bin");
    const d = await runProcess(
      "curl",
      ["-sS", "--max-time", "30", "--limit-rate", "8M", "-o", out, s.url("alice", "pw", "/down.bin")],
      { timeoutMs: 35_000 },
    );
    expect(d.code, d.stderr).toBe(0);
    expect(readFileSync(out).equals(down)).toBe(true);
  });
});

describe("login timeout", () => {
  it("ends a session that sends NOOPs but never logs in, so the client queued behind it gets the slot", async () => {
    const log = captureLog("info");
    const s = await start({ maxSessions: 1, maxQueue: 1, queueTimeoutMs: 20_000, idleTimeoutMs: 20_000, loginTimeoutMs: 600, logger: log.logger });
    const hog = await greeted(s);
    const waiter = await queued(s);
    // The hog keeps itself busy well inside the idle timeout; at most 60 NOOPs (about 9 s).
    let last: Awaited<ReturnType<RawFtp["cmd"]>> | null = null;
    for (let i = 0; i < 60 && !hog.isClosed; i++) {
      await sleep(150);
      last = await hog.cmd("NOOP").catch(() => null);
      if (last === null || last.code !== 200) break;
    }
    expect(last?.code).toBe(421);
    expect(last?.text).toMatch(/login timeout/i);
    await withTimeout(hog.closed, 3000, "hog closed");
    expect(log.events("login-timeout")).toHaveLength(1);
    expect((await waiter.read(5000)).code).toBe(220);
    await waiter.login("alice", "pw");
  });

  it("leaves a logged-in session alone, and lets a login under way at the deadline finish", async () => {
    const s = await start({ loginTimeoutMs: 400, idleTimeoutMs: 20_000 });
    const early = await login(s);
    // The user store answers the second login only after its deadline has passed.
    const lookups = holdUserLookups(s);
    const late = await greeted(s);
    expect((await late.cmd("USER bob")).code).toBe(331);
    const answer = late.cmd("PASS pw", 10_000);
    await until(lookups.held, 3000, "password check under way");
    await sleep(800);
    lookups.release();
    expect((await answer).code).toBe(230);
    for (let i = 0; i < 4; i++) {
      await sleep(200);
      await early.expect("NOOP", 200);
      await late.expect("NOOP", 200);
    }
    expect(s.server.sessionCount).toBe(2);
  });
});
