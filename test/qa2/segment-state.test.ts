// A saved segment state (LOCAL.myftp-segments, left by a killed `get -n N`) describes a local file whose ranges are
// partly filled and partly still zeros. Continuing it is only right while the remote file is the one it was taken
// from; a state that no longer fits must really start over, and a finished download must not leave one behind.
import { readdir, readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { startPyftpd, type PeerServer } from "../helpers/peers.js";
import { sha256File } from "../helpers/util.js";
import { assertBuilt, killAll, makeFile, runAndKill, runMyftp, sizeOf, tempDir } from "../client/cli-helpers.js";

const MiB = 1024 * 1024;

/** Kill a slow `get -n 4` once 256 KiB of its ranges are in, leaving its state file behind. */
async function killedSegmentedGet(url: string, dst: string): Promise<void> {
  const state = `${dst}.myftp-segments`;
  await runAndKill(["get", "-n", "4", "--limit-rate", "1M", url, dst], async () => {
    const text = await readFile(state, "utf8").catch(() => "");
    if (!text) return false;
    const st = JSON.parse(text) as { segments: { start: number; pos: number }[] };
    return st.segments.reduce((a, s) => a + s.pos - s.start, 0) >= 256 * 1024;
  });
  expect(await sizeOf(state)).toBeGreaterThan(0);
}

/** Replace a file by other bytes of the same size, modified a minute from now. */
async function replaceSameSize(path: string, size: number): Promise<void> {
  await makeFile(path, size);
  const later = new Date(Date.now() + 60_000);
  await utimes(path, later, later);
}

describe("segment state of a killed segmented download", () => {
  let work: { path: string; remove(): Promise<void> };
  let myftpd: RunningServer;
  let pyftpd: PeerServer;

  beforeAll(async () => {
    assertBuilt();
    work = await tempDir("myftp-qa2-seg-");
    myftpd = await startServer();
    pyftpd = await startPyftpd();
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await myftpd?.close();
    await pyftpd?.stop();
    await work?.remove();
  });

  it("without HASH: a remote file replaced (same size) since the killed run is fetched again, not patched", async () => {
    const size = 2 * MiB;
    const remote = join(pyftpd.home, "changed.bin");
    await makeFile(remote, size);
    const dst = join(work.path, "changed-py.bin");
    await killedSegmentedGet(pyftpd.url(undefined, "changed.bin"), dst);
    await replaceSameSize(remote, size);
    const r = await runMyftp(["get", pyftpd.url(undefined, "changed.bin"), dst]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("get changed.bin: the remote file changed after the segmented download began; starting over");
    expect(await sha256File(dst)).toBe(await sha256File(remote));
    expect(await sizeOf(`${dst}.myftp-segments`)).toBe(-1);
  });

  it("with HASH: the ranges already fetched are checked, and a replaced remote file starts over instead of failing", async () => {
    const size = 2 * MiB;
    const remote = join(myftpd.homeOf("alice"), "changed.bin");
    await makeFile(remote, size);
    const dst = join(work.path, "changed-myftpd.bin");
    await killedSegmentedGet(myftpd.url("alice", "secret", "/changed.bin"), dst);
    await replaceSameSize(remote, size);
    const r = await runMyftp(["get", myftpd.url("alice", "secret", "/changed.bin"), dst]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("starting over");
    expect(await sha256File(dst)).toBe(await sha256File(remote));
    expect((await readdir(work.path)).filter((n) => n.startsWith("changed-myftpd.bin."))).toEqual([]);
  });

  it("a state that does not match starts over: its half-filled local file is never taken as a finished prefix", async () => {
    // A state saved for the same local file under another remote name (e.g. given from another directory), the local
    // file preallocated to the full size with only the first range filled.
    const size = 1 * MiB;
    const remote = join(pyftpd.home, "other.bin");
    await makeFile(remote, size);
    const old = new Date(Date.now() - 3600_000);
    await utimes(remote, old, old);
    const dst = join(work.path, "other.bin");
    const content = await readFile(remote);
    const local = Buffer.alloc(size);
    content.copy(local, 0, 0, 100_000);
    await writeFile(dst, local);
    const half = size / 2;
    await writeFile(
      `${dst}.myftp-segments`,
      JSON.stringify({ version: 1, remote: "sub/other.bin", size, segments: [{ start: 0, end: half, pos: 100_000 }, { start: half, end: size, pos: half }] }),
    );
    const r = await runMyftp(["get", pyftpd.url(undefined, "other.bin"), dst]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("the saved segment state does not match the remote file any more; starting over");
    expect(await sha256File(dst)).toBe(await sha256File(remote));
  });

  it("a finished get --no-resume removes the old segment state, so the next get finds the file complete", async () => {
    const size = 2 * MiB;
    const remote = join(myftpd.homeOf("alice"), "again.bin");
    await makeFile(remote, size);
    const dst = join(work.path, "again.bin");
    await killedSegmentedGet(myftpd.url("alice", "secret", "/again.bin"), dst);
    const fresh = await runMyftp(["get", "--no-resume", myftpd.url("alice", "secret", "/again.bin"), dst]);
    expect(fresh.stderr).toBe("");
    expect(fresh.code).toBe(0);
    expect(await sizeOf(`${dst}.myftp-segments`)).toBe(-1);
    const again = await runMyftp(["get", myftpd.url("alice", "secret", "/again.bin"), dst]);
    expect(again.stderr).toBe("");
    expect(again.code).toBe(0);
    expect(again.stdout).toBe("get again.bin: already complete (SHA-256 verified)\n");
    expect(await sha256File(dst)).toBe(await sha256File(remote));
  });
});
