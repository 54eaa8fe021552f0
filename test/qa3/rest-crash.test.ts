// A REST inside an existing file followed by STOR writes to a temporary file that starts with a copy of the old
// bytes before the offset. If the server is killed before a byte of the upload arrived, the recount after the crash
// must keep the old file whole, as a failure that received nothing does while the server lives (README: "one that
// received nothing is removed, keeping the old file"); if bytes did arrive, the prefix and those bytes take the
// file's place, so that a resume at SIZE continues them.

import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { bytesOnDisk, Ctl, myftpd, until } from "../qa/qa-util.js";

const PREFIX = ".myftp-upload-";
const OLD = randomBytes(300_000);
const OFFSET = 1000;

function tempFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith(PREFIX));
}

describe("a REST+STOR inside a file cut by a crash", () => {
  let proc: RunningProcess | undefined;
  const ctls: Ctl[] = [];
  const socks: net.Socket[] = [];
  afterEach(async () => {
    for (const c of ctls.splice(0)) c.close();
    for (const s of socks.splice(0)) s.destroy();
    await proc?.stop("SIGKILL");
    proc = undefined;
  });

  /** A data directory with alice, a running server, and OLD stored as "f" through it. */
  async function setUp(quota = "10MiB"): Promise<{ data: string; home: string; ctl: Ctl }> {
    const data = tempDir("myftp-qa3-");
    const home = path.join(data, "home", "alice");
    mkdirSync(data, { recursive: true });
    const add = await myftpd(["user", "add", "alice", "--data", data, "--quota", quota, "--password-stdin"], { input: "secret\n" });
    expect(add.code).toBe(0);
    proc = await startServerProcess(["--pasv-range", "0-0", "--log-level", "warn"], data);
    const ctl = await Ctl.login(proc.port);
    ctls.push(ctl);
    expect((await ctl.store("STOR f", OLD)).final.code).toBe(226);
    return { data, home, ctl };
  }

  /** REST OFFSET, STOR f with the data connection open; `bytes` sent on it; waits until the temporary file holds them. */
  async function startRestStor(ctl: Ctl, home: string, bytes: Buffer): Promise<void> {
    const d = await ctl.data();
    socks.push(d);
    await ctl.expect(`REST ${OFFSET}`, 350);
    expect((await ctl.cmd("STOR f")).code).toBe(150);
    if (bytes.length > 0) d.write(bytes);
    const want = OFFSET + bytes.length;
    await until(() => tempFiles(home).some((n) => statSync(path.join(home, n)).size === want), 10_000, `temporary file of ${want} bytes`);
  }

  it("keeps the old file whole when nothing of the upload arrived (recount at login after a restart)", async () => {
    const { data, home, ctl } = await setUp();
    await startRestStor(ctl, home, Buffer.alloc(0));
    await proc!.stop("SIGKILL");

    proc = await startServerProcess(["--pasv-range", "0-0", "--log-level", "warn"], data);
    const again = await Ctl.login(proc.port);
    ctls.push(again);
    expect((await again.cmd("SIZE f")).text).toBe(`213 ${OLD.length}`);
    expect(readFileSync(path.join(home, "f")).equals(OLD)).toBe(true);
    expect(tempFiles(home)).toEqual([]);
    expect(await again.used()).toBe(bytesOnDisk(home));
  });

  it("keeps the old file whole when nothing of the upload arrived (myftpd user rescan with no server)", async () => {
    const { data, home, ctl } = await setUp();
    await startRestStor(ctl, home, Buffer.alloc(0));
    await proc!.stop("SIGKILL");
    proc = undefined;

    const rescan = await myftpd(["user", "rescan", "alice", "--data", data]);
    expect(rescan.code).toBe(0);
    expect(rescan.stdout).toContain(`alice: ${OLD.length} bytes`);
    expect(readFileSync(path.join(home, "f")).equals(OLD)).toBe(true);
    expect(tempFiles(home)).toEqual([]);
  });

  it("puts the old prefix and what arrived in place of the file when bytes did arrive, and a resume at SIZE completes it", async () => {
    const { data, home, ctl } = await setUp();
    const fresh = randomBytes(50_000);
    await startRestStor(ctl, home, fresh.subarray(0, 20_000));
    await proc!.stop("SIGKILL");

    proc = await startServerProcess(["--pasv-range", "0-0", "--log-level", "warn"], data);
    const again = await Ctl.login(proc.port);
    ctls.push(again);
    expect((await again.cmd("SIZE f")).text).toBe(`213 ${OFFSET + 20_000}`);
    await again.expect(`REST ${OFFSET + 20_000}`, 350);
    expect((await again.store("STOR f", fresh.subarray(20_000))).final.code).toBe(226);
    const want = Buffer.concat([OLD.subarray(0, OFFSET), fresh]);
    expect(readFileSync(path.join(home, "f")).equals(want)).toBe(true);
    expect(tempFiles(home)).toEqual([]);
    expect(await again.used()).toBe(want.length);
  });

  it("has the figure marked dirty in the store before the copy of the old bytes begins", { timeout: 60_000 }, async () => {
    // A crash during the copy (or between it and the first byte) must find the figure dirty at the next start, which
    // then counts the home and removes the temporary file; a clean figure would be trusted and the file left behind.
    const { data, home, ctl } = await setUp("1GiB");
    const big = randomBytes(48 * 1024 * 1024);
    expect((await ctl.store("STOR big", big)).final.code).toBe(226);
    const d = await ctl.data();
    socks.push(d);
    await ctl.expect(`REST ${big.length - 10}`, 350);
    ctl.send("STOR big");
    // The copy of the old bytes shows as a temporary file: the server is stopped right then and the store read.
    let seen = false;
    for (let i = 0; i < 200_000 && !seen; i++) {
      seen = tempFiles(home).length > 0;
      if (!seen) await new Promise((r) => setImmediate(r));
    }
    expect(seen).toBe(true);
    proc!.child.kill("SIGSTOP");
    try {
      const list = await myftpd(["user", "list", "--json", "--data", data]);
      expect(list.code).toBe(0);
      const alice = (JSON.parse(list.stdout) as { name: string; usageDirty: boolean }[]).find((u) => u.name === "alice");
      expect(alice?.usageDirty).toBe(true);
    } finally {
      proc!.child.kill("SIGCONT");
    }
    expect((await ctl.read()).code).toBe(150);
  });

  it("an upload that ends without a byte still cuts the file at the offset, with a current modification time", async () => {
    const { home, ctl } = await setUp();
    const before = Date.now();
    await ctl.expect(`REST ${OFFSET}`, 350);
    expect((await ctl.store("STOR f", Buffer.alloc(0))).final.code).toBe(226);
    const st = statSync(path.join(home, "f"));
    expect(st.size).toBe(OFFSET);
    expect(st.mtimeMs).toBeGreaterThan(before - 5_000);
    expect(await ctl.used()).toBe(OFFSET);
  });
});
