// A directory of the home swapped for a link to the outside while an upload into it runs (a local process can rename
// directories in a home and plant links there; FTP users cannot). What the server does to the file when the upload
// ends (cut it back after a refusal, remove a refused new file, cut it to the bytes that arrived) must reach the file
// it opened, or nothing: never a file of the same name outside the home. One user per test: each home is used once.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import type { Socket } from "node:net";
import { RawFtp } from "../helpers/raw-ftp.js";
import { until } from "../helpers/util.js";

const OUTSIDE_CONTENT = Buffer.alloc(5000, "o");
const QUOTA = 2000;

let srv: RunningServer;
let outside: string;
const open: RawFtp[] = [];

beforeAll(async () => {
  srv = await startServer([
    { name: "carol", password: "secret", quota: QUOTA },
    { name: "erin", password: "secret", quota: QUOTA },
    { name: "dave", password: "secret" },
  ]);
});
afterAll(async () => {
  await srv.close();
});

beforeEach(() => {
  outside = mkdtempSync(path.join(tmpdir(), "myftp-outside-"));
  for (const n of ["victim.txt", "new.txt", "big.bin"]) writeFileSync(path.join(outside, n), OUTSIDE_CONTENT);
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  rmSync(outside, { recursive: true, force: true });
});

async function login(user: string): Promise<RawFtp> {
  const c = await RawFtp.login(srv.port, user, "secret", { type: "I" });
  open.push(c);
  return c;
}

/** Writes bytes on a data connection, leaving it open. */
function send(sock: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve) => sock.write(data, () => resolve()));
}

/** Puts a link to the outside directory where the home's directory `d` was (moved to `d-away`). */
function swapIn(home: string): void {
  renameSync(path.join(home, "d"), path.join(home, "d-away"));
  symlinkSync(outside, path.join(home, "d"));
}

/** Starts `command`, sends `first` bytes and waits until the file at `onDisk` holds `expectSize` bytes. */
async function startUpload(c: RawFtp, command: string, first: number, onDisk: string, expectSize: number) {
  const data = await c.epsv();
  const reply = await c.cmd(command);
  expect(reply.code).toBe(150);
  await send(data, Buffer.alloc(first, "n"));
  await until(() => existsSync(onDisk) && statSync(onDisk).size >= expectSize, 10_000, "the first bytes on disk");
  return data;
}

function expectOutsideUntouched(): void {
  for (const n of ["victim.txt", "new.txt", "big.bin"]) {
    expect(readFileSync(path.join(outside, n)).equals(OUTSIDE_CONTENT), n).toBe(true);
  }
}

describe("a directory swapped for a link to the outside during an upload", () => {
  it("APPE refused over quota does not cut the outside file of the same name", async () => {
    const home = srv.homeOf("carol");
    mkdirSync(path.join(home, "d"));
    writeFileSync(path.join(home, "d", "victim.txt"), Buffer.alloc(500, "i"));
    const c = await login("carol");
    const data = await startUpload(c, "APPE d/victim.txt", 100, path.join(home, "d", "victim.txt"), 600);
    swapIn(home);
    // Past the quota: the upload is refused and its file cut back to its old 500 bytes.
    await send(data, Buffer.alloc(QUOTA, "n"));
    data.end();
    expect((await c.read()).code).toBe(552);
    expectOutsideUntouched();
    // The file the upload wrote is back to its old size, and that is what the quota counts.
    expect(statSync(path.join(home, "d-away", "victim.txt")).size).toBe(500);
    expect((await c.cmd("SITE QUOTA")).text).toContain("used 500 of");
  });

  it("a new file refused over quota is not removed outside", async () => {
    const home = srv.homeOf("erin");
    mkdirSync(path.join(home, "d"));
    const c = await login("erin");
    const data = await startUpload(c, "STOR d/new.txt", 100, path.join(home, "d", "new.txt"), 100);
    swapIn(home);
    await send(data, Buffer.alloc(QUOTA, "n"));
    data.end();
    expect((await c.read()).code).toBe(552);
    expectOutsideUntouched();
    // The refused file holds nothing any more (it is no longer where the upload made it, so it stays, empty).
    const left = path.join(home, "d-away", "new.txt");
    expect(existsSync(left) ? statSync(left).size : 0).toBe(0);
    expect((await c.cmd("SITE QUOTA")).text).toContain("used 0 of");
  });

  it("a finished upload cut to the bytes that arrived does not cut the outside file", async () => {
    const home = srv.homeOf("dave");
    mkdirSync(path.join(home, "d"));
    const c = await login("dave");
    const data = await startUpload(c, "STOR d/big.bin", 1000, path.join(home, "d", "big.bin"), 1000);
    swapIn(home);
    data.end();
    expect((await c.read()).code).toBe(226);
    expectOutsideUntouched();
    // The file that was uploaded, wherever it is now, holds what arrived.
    expect(statSync(path.join(home, "d-away", "big.bin")).size).toBe(1000);
  });
});
