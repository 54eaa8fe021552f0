// Issue 3, the admission settings as `myftpd serve` takes them: config file keys and flags for max-sessions,
// max-queue, queue-timeout, max-sessions-per-user, max-connections-per-ip, idle-timeout and hash-workers.
// Needs `npm run build` (the CLI runs from dist/).

import { rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runMyftpd as myftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { sleep, withTimeout } from "../helpers/util.js";

let procs: RunningProcess[] = [];
let clients: RawFtp[] = [];
let dirs: string[] = [];

afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const p of procs) await p.stop("SIGKILL");
  procs = [];
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

async function dataDirWithAlice(): Promise<string> {
  const data = tempDir();
  dirs.push(data);
  const r = await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "pw\n");
  expect(r.code, r.stderr).toBe(0);
  writeFileSync(path.join(data, "home", "alice", "f.txt"), "abc");
  return data;
}

async function track<T extends RawFtp>(p: Promise<T>): Promise<T> {
  const c = await p;
  clients.push(c);
  return c;
}

describe("myftpd serve admission settings", () => {
  it("config file keys: max-sessions, max-queue, queue-timeout, max-sessions-per-user, hash-workers", async () => {
    const data = await dataDirWithAlice();
    const config = path.join(data, "myftpd.toml");
    writeFileSync(
      config,
      ["max-sessions = 2", "max-queue = 1", "queue-timeout = 1", "max-sessions-per-user = 1", "hash-workers = 1", 'log-level = "silent"'].join("\n"),
    );
    const p = await startServerProcess(["--config", config, "--pasv-range", "0-0"], data);
    procs.push(p);
    const a = await track(RawFtp.login(p.port, "alice", "pw", { type: "I" }));
    expect((await a.expect("HASH f.txt", 213)).text).toMatch(/^SHA-256 0-2 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad f\.txt$/);

    const second = await track(RawFtp.connect(p.port));
    await second.expect("USER alice", 331);
    const refused = await second.cmd("PASS pw");
    expect(refused.code).toBe(421);
    expect(refused.text).toMatch(/limit 1/);
    await withTimeout(second.closed, 3000, "per-user refusal closes");

    await track(RawFtp.connect(p.port)); // takes the second slot
    const waiting = await track(RawFtp.open(p.port));
    expect(await waiting.silentFor(300)).toBe(true);
    const full = await track(RawFtp.open(p.port));
    expect((await full.read()).code).toBe(421);
    const timedOut = await waiting.read(4000);
    expect(timedOut.code).toBe(421);
    await withTimeout(waiting.closed, 3000, "closed after the queue timeout");
  });

  it("flags: max-connections-per-ip and idle-timeout (seconds)", async () => {
    const data = await dataDirWithAlice();
    const p = await startServerProcess(
      ["--max-connections-per-ip", "2", "--idle-timeout", "1", "--log-level", "silent", "--pasv-range", "0-0"],
      data,
    );
    procs.push(p);
    const a = await track(RawFtp.login(p.port, "alice", "pw", { type: "I" }));
    await track(RawFtp.connect(p.port));
    const third = await track(RawFtp.open(p.port));
    const r = await third.read();
    expect(r.code).toBe(421);
    expect(r.text).toMatch(/limit 2/);
    const idle = await a.read(4000);
    expect(idle.code).toBe(421);
    expect(idle.text).toMatch(/idle/i);
    await withTimeout(a.closed, 3000, "idle session closed");
    // The address is below its limit again once the server has seen the close: a new connection gets in.
    let admitted: RawFtp | null = null;
    for (let i = 0; i < 30 && !admitted; i++) {
      const c = await track(RawFtp.open(p.port));
      const g = await c.read();
      if (g.code === 220) admitted = c;
      else await sleep(100);
    }
    expect(admitted).not.toBeNull();
  });

  it("bad values are refused with exit code 2 and a message naming the setting", async () => {
    const data = tempDir();
    dirs.push(data);
    const flag = await myftpd(["serve", "--data", data, "--port", "0", "--max-sessions", "0"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/max-sessions/);
    const neg = await myftpd(["serve", "--data", data, "--port", "0", "--queue-timeout", "-5"]);
    expect(neg.code).toBe(2);
    const config = path.join(data, "c.toml");
    writeFileSync(config, 'hash-workers = "many"\n');
    const file = await myftpd(["serve", "--data", data, "--port", "0", "--config", config]);
    expect(file.code).toBe(2);
    expect(file.stderr).toMatch(/hash-workers/);
  });
});
