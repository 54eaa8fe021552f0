// Uploads that run out of disk space (452) on a small tmpfs mounted for the test: an overwrite keeps the old file
// (it needed room for old and new at once), a new file keeps what arrived for a later resume, and the usage stays
// equal to the bytes on disk either way. Mounting needs root with CAP_SYS_ADMIN; where that is missing the tests
// are skipped and say so.

import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { useTmpfs } from "../helpers/tmpfs.js";
import { diskBytes, until } from "../helpers/util.js";

const MiB = 1024 * 1024;

const fs_ = useTmpfs("8m", "diskfull");
const mountPoint = fs_.path;

let servers: RunningServer[] = [];
let clients: RawFtp[] = [];

afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  for (const s of servers) await s.close();
  servers = [];
  if (fs_.mounted) for (const name of readdirSync(mountPoint)) rmSync(path.join(mountPoint, name), { recursive: true, force: true });
});

async function setUp(transferProcesses?: number): Promise<{ s: RunningServer; c: RawFtp; home: string }> {
  const home = path.join(mountPoint, "alice");
  mkdirSync(home);
  const s = await startServer([{ name: "alice", password: "pw", quota: 100 * MiB, home }], transferProcesses === undefined ? {} : { transferProcesses });
  servers.push(s);
  const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
  clients.push(c);
  return { s, c, home };
}


const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("disk full", () => {
  for (const [label, processes] of [
    ["in a transfer process", undefined],
    ["in the server process", 0],
  ] as const) {
    it(`an overwrite that runs out of disk keeps the old file (${label})`, async (ctx) => {
      if (!fs_.mounted) ctx.skip();
      const { c, home } = await setUp(processes);
      const old = randomBytes(5 * MiB);
      expect((await c.store("STOR big.bin", old)).final.code).toBe(226);
      // 5 MiB more do not fit beside the old 5 MiB on an 8 MiB file system.
      const r = await c.store("STOR big.bin", randomBytes(5 * MiB));
      expect(r.final.code).toBe(452);
      expect(sha(readFileSync(path.join(home, "big.bin")))).toBe(sha(old));
      expect(readdirSync(home)).toEqual(["big.bin"]);
      await until(async () => (await c.usedBytes()) === diskBytes(home), 5000, "usage equals the disk");
      expect(await c.usedBytes()).toBe(5 * MiB);
    });
  }

  it("a new file that runs out of disk keeps what arrived, and APPE finishes it once there is room", async (ctx) => {
    if (!fs_.mounted) ctx.skip();
    const { c, home } = await setUp();
    const filler = randomBytes(4 * MiB);
    expect((await c.store("STOR filler.bin", filler)).final.code).toBe(226);
    const content = randomBytes(6 * MiB);
    expect((await c.store("STOR new.bin", content)).final.code).toBe(452);
    const kept = statSync(path.join(home, "new.bin")).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(content.length);
    expect(readFileSync(path.join(home, "new.bin")).equals(content.subarray(0, kept))).toBe(true);
    await until(async () => (await c.usedBytes()) === diskBytes(home), 5000, "usage equals the disk");
    await c.expect("DELE filler.bin", 250);
    expect((await c.store("APPE new.bin", content.subarray(kept))).final.code).toBe(226);
    expect(sha(readFileSync(path.join(home, "new.bin")))).toBe(sha(content));
    await until(async () => (await c.usedBytes()) === diskBytes(home), 5000, "usage equals the disk");
    expect(await c.usedBytes()).toBe(6 * MiB);
  });
});
