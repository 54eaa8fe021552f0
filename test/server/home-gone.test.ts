// A home removed, renamed or replaced by a file while its user is logged in: the session's commands say that the
// home is no longer available (550), not "Permission denied" (which reads as a rights problem of the path asked
// for), nor list the file that took the home's place; the session itself goes on, and the usage figure is untouched.

import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

let servers: RunningServer[] = [];
let clients: RawFtp[] = [];

afterEach(async () => {
  for (const c of clients) c.sock.destroy();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
});

const GONE = "Your home directory is no longer available";

async function setUp(): Promise<{ c: RawFtp; home: string }> {
  const s = await startServer([{ name: "alice", password: "pw" }], { transferProcesses: 0 });
  servers.push(s);
  const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
  clients.push(c);
  expect((await c.store("STOR a.bin", "a".repeat(1000))).final.code).toBe(226);
  return { c, home: s.homeOf("alice") };
}

async function expectGone(c: RawFtp): Promise<void> {
  for (const cmd of ["SIZE a.bin", "DELE a.bin", "MKD d", "CWD d", "MDTM a.bin"]) {
    const r = await c.cmd(cmd);
    expect(r.code, cmd).toBe(550);
    expect(r.text, cmd).toBe(GONE);
  }
  for (const cmd of ["STOR b.bin", "APPE a.bin"]) {
    const r = await c.store(cmd, "b".repeat(10));
    expect(r.final.code, cmd).toBe(550);
    expect(r.final.text, cmd).toBe(GONE);
  }
  const l = await c.retrieve("LIST");
  expect(l.final.code).toBe(550);
  expect(l.final.text).toBe(GONE);
  await c.expect("NOOP", 200);
  expect((await c.expect("SITE QUOTA", 200)).text).toMatch(/used 1000 of/);
}

describe("the home goes away under a logged-in session", () => {
  it("removed", async () => {
    const { c, home } = await setUp();
    rmSync(home, { recursive: true });
    await expectGone(c);
  });

  it("renamed", async () => {
    const { c, home } = await setUp();
    renameSync(home, `${home}.moved`);
    try {
      await expectGone(c);
    } finally {
      rmSync(`${home}.moved`, { recursive: true, force: true });
    }
  });

  it("moved away and made anew: a missing name in the new home is only missing", async () => {
    const { c, home } = await setUp();
    // The old directory stays (elsewhere), so the new one is another inode.
    renameSync(home, `${home}.old`);
    mkdirSync(home);
    try {
      const r = await c.cmd("SIZE a.bin");
      expect(r.code).toBe(550);
      expect(r.text).not.toBe(GONE);
      expect((await c.store("STOR b.bin", "b".repeat(10))).final.code).toBe(226);
      expect((await c.expect("SIZE b.bin", 213)).text).toBe("10");
    } finally {
      rmSync(`${home}.old`, { recursive: true, force: true });
    }
  });

  it("replaced by a file", async () => {
    const { c, home } = await setUp();
    rmSync(home, { recursive: true });
    writeFileSync(home, "not a home");
    await expectGone(c);
  });
});
